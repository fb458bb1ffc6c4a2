"""The owner's dashboard in a real browser: headless Chromium, a real `airboss serve`, the link
from `pilot open dashboard`.

On conftest.py's site (its containers on libvirt's test driver, so power really changes the
domains' states inside the Airboss): the page shows the cluster's nodes, a power button pressed
with the keyboard changes the node's state on the page without a reload, the confirmation of a
hard power-off can be declined, the audit panel shows the page's own session, the CSP blocks
nothing and the page fetches nothing from elsewhere, it fits 1280x800 and a phone's width, a
reused link is refused, and removing the key ends the session on the open page. The screenshots
in docs/ are this test's (rewritten with `--regenerate-golden`). The same on real VMs (libvirtd,
QEMU) is in test_web_chromium.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

BIN = Path(sys.executable).parent
DOCS = Path(__file__).resolve().parents[2] / "docs"


def dashboard_link(owner: Any, tmp: Path, target: str, address: str) -> str:
    """The link `pilot open dashboard` prints (stdout), as an owner would run it."""
    key_file = tmp / f"{owner.name}.key"
    if not key_file.exists():
        from flightdeck.crypto import keys as ck

        key_file.write_bytes(ck.private_key_to_pem(owner.key, None))
        key_file.chmod(0o600)
    done = subprocess.run(
        [str(BIN / "pilot"), "open", "dashboard", f"host={target}", f"key={key_file}",
         f"airboss={address}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "works once" in done.stderr
    return done.stdout.strip()


def row(tab: Any, host: str, what: str = "dataset.state") -> Any:
    return tab.eval(f"document.querySelector('tr[data-host=\"{host}\"]')?.{what} ?? null")


def press(tab: Any, selector: str, key: str = "Enter", code: int = 13) -> None:
    """Focus an element and press a key on it, as a keyboard user does."""
    tab.eval(f"document.querySelector({json.dumps(selector)}).focus()")
    for kind in ("keyDown", "keyUp"):
        tab.send("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                 windowsVirtualKeyCode=code, **({"text": "\r"} if key == "Enter" and
                                                kind == "keyDown" else {}))


def screen(tab: Any, width: int, height: int, mobile: bool) -> bytes:
    tab.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
             deviceScaleFactor=1, mobile=mobile)
    time.sleep(0.3)  # a layout pass
    overflow = tab.eval("document.documentElement.scrollWidth")
    assert overflow <= width, f"the page is {overflow} px wide at {width} px"
    shot = tab.send("Page.captureScreenshot", format="png")
    return base64.b64decode(shot["data"])


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_dashboard_in_a_browser(
    site: Any, alice: Any, browser: Any, tab: Any, regenerate_golden: bool, tmp_path: Path
) -> None:
    server = site.server("--set", "dashboard_poll=0.5", "--set", "console_recheck=1")
    fe, compute = site.cluster_a[0], site.cluster_a[1]
    link = dashboard_link(alice, tmp_path, site.mac(fe), server.address)
    assert link.startswith(f"{server.url}/dashboard/?link=")

    # As `rocks open dashboard` on the virtual frontend adds them: names there, after '#'.
    link += f"#{site.mac(compute).replace(':', '%3A')}=compute-0-0&{site.mac(fe)}=%3Cb%3Ex"
    t0 = time.monotonic()
    tab.open(link)
    tab.wait("document.getElementById('status').dataset.state === 'ready'", 30, "a session")
    tab.wait(f"document.querySelectorAll('#nodes tbody tr').length === {len(site.cluster_a)}",
             30, "the nodes")
    print(f"\ndashboard: link to nodes shown {time.monotonic() - t0:.2f} s")
    assert tab.eval("window.location.href") == f"{server.url}/dashboard/"  # link and names gone
    assert tab.eval("[...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.host)"
                    ) == site.cluster_a
    assert row(tab, fe, "querySelector('.mac').textContent") == site.mac(fe)
    assert row(tab, fe, "querySelector('.action').textContent") == "install"
    assert row(tab, compute) == "nostate"
    assert row(tab, compute, "querySelector('.vname').textContent") == "compute-0-0"
    assert row(tab, fe, "querySelector('.vname').textContent") == "—"  # not a host name: dropped

    # Power on, from the keyboard: the state changes on the page, without a reload.
    tab.eval("window.fdSamePage = true")
    press(tab, f"tr[data-host='{compute}'] button[data-action='on']")
    tab.wait(f"document.querySelector('tr[data-host=\"{compute}\"]').dataset.state === 'active'",
             30, "the compute's state on the page")
    assert tab.eval("window.fdSamePage") is True
    row_audit = site.last()
    assert (row_audit.operation, row_audit.target, row_audit.accepted) == ("power on", compute,
                                                                           True)
    session = row_audit.token_id
    assert session.startswith("session:")
    tab.wait("[...document.querySelectorAll('#audit li.mine')].some(li => "
             "li.textContent.includes('power on'))", 30, "the audit entry of this session")

    # Readable at 1280x800 and at a phone's width; the screenshots in docs/ are these.
    wide = screen(tab, 1280, 800, mobile=False)
    phone = screen(tab, 390, 844, mobile=True)
    for name, png in (("dashboard.png", wide), ("dashboard-phone.png", phone)):
        (tmp_path / name).write_bytes(png)
        if regenerate_golden:
            (DOCS / name).write_bytes(png)
        assert (DOCS / name).exists(), f"docs/{name}: run once with --regenerate-golden"
    tab.send("Emulation.clearDeviceMetricsOverride")

    # A hard power-off asks first: declined (Escape), nothing happens; confirmed, it is done.
    press(tab, f"tr[data-host='{compute}'] button[data-action='off']")
    tab.wait("document.getElementById('confirm').open", 10, "the confirmation")
    assert tab.eval("document.activeElement.id") == "confirm-cancel"
    press(tab, "#confirm-cancel", "Escape", 27)
    tab.wait("!document.getElementById('confirm').open", 10, "the confirmation closing")
    time.sleep(1)
    assert row(tab, compute) == "active" and site.last().operation != "power off"
    press(tab, f"tr[data-host='{compute}'] button[data-action='off']")
    tab.wait("document.getElementById('confirm').open", 10, "the confirmation")
    press(tab, "#confirm-ok")
    tab.wait(f"['shutoff', 'nostate'].includes(document.querySelector("
             f"'tr[data-host=\"{compute}\"]').dataset.state)", 30, "the compute off on the page")


    assert tab.problems() == []  # the strict CSP blocked nothing the page needs
    outside = [u for u in tab.requested() if not u.startswith((server.url, "data:"))]
    assert outside == [], outside

    # The same link again (another tab): used already.
    again = browser.tab()
    try:
        again.open(link)
        again.wait("document.getElementById('status').dataset.state === 'refused'", 30,
                   "the reused link's refusal")
        assert "used already" in again.eval("document.getElementById('status').textContent")
    finally:
        again.close()
    assert site.last().reason.startswith("token-unknown")

    # The key removed: the open page is told its session ended, and its buttons are off.
    site.remove_key(alice, fe)
    tab.wait("document.getElementById('status').dataset.state === 'ended'", 30,
             "the page told that its session ended")
    assert "no longer covers" in tab.eval("document.getElementById('status').textContent")
    assert tab.eval("[...document.querySelectorAll('main button')].every(b => b.disabled)")
    assert any(r.operation == "dashboard events close" for r in site.audit(10))
