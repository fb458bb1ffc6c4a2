"""The owner's dashboard with 64 nodes: page load and click-to-state in a real browser.

One run, one machine: a site of 1 frontend + 63 computes on 8 containers (each a libvirt test
driver of its own node file, so power really changes domain states inside the Airboss), one
`airboss serve`, headless Chromium (Debian's, tests/chromium.py) in a fresh profile. In order,
`--runs` times each:

* `page load`       - a new link (pilot's client, not timed), then from navigating to it until
                      the page shows 64 rows with their states: the page and its two files,
                      the link redeemed, the event stream opened, 64 nodes' states read over 8
                      containers, rendered;
* `click to state`  - a click on a stopped compute's On button until its row says `active`:
                      the power request through the dashboard's API, the event stream woken,
                      the 64 states read again, the row updated (never a reload);

and their baselines, same run, same Airboss: `signed GET /v1/nodes` (the same 64 nodes and
states as a signed request of pilot's client: what the page's data costs without a browser)
and `signed power on` + `signed GET /v1/nodes` (the click's work without the page).

    .venv/bin/python bench/dashboard.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import start_airboss, test_driver_site

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chromium import Browser  # the browser tests' DevTools client

VENV_BIN = Path(sys.executable).parent
CONTAINERS, COMPUTES = 8, 63
FE = "frontend-0-0-0"


def site(home: str, env: dict[str, str]) -> None:
    test_driver_site(home, env, CONTAINERS, COMPUTES)
    subprocess.run([str(VENV_BIN / "rocks"), "add", "host", "key", FE, f"key={home}/owner.pub"],
                   env=env, check=True, capture_output=True, text=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    from flightdeck.api.operations import NODES, NodesRequest
    from flightdeck.crypto import keys as ck
    from flightdeck.pilot.client import AirbossClient

    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, FLIGHTDECK_HOME=home)
        env.pop("FLIGHTDECK_DB", None)
        key = ck.generate_private_key()
        Path(home, "owner.pub").write_text(ck.public_key_to_pem(key.public_key()))
        site(home, env)
        proc, address = start_airboss(Path(home), env, "--set", "rate=1000", "--set",
                                      "burst=1000", "--set", "dashboard_sessions=100")
        Path(home, "chromium").mkdir()
        browser: Browser | None = None
        try:
            browser = Browser(Path(home) / "chromium" / "profile")
            client = AirbossClient(key, address)
            fe_mac = client.macs(FE)[0].macs[0]
            computes = [n.host for n in client.macs(FE) if not n.frontend]
            load, click, nodes_api, click_api = [], [], [], []
            tab = browser.tab()
            for i in range(a.runs):
                link = f"http://{address}{client.dashboard_link(fe_mac).link}"
                t0 = time.perf_counter()
                tab.send("Page.navigate", url=link)
                tab.wait(f"document.querySelectorAll('#nodes tbody tr[data-state]').length === "
                         f"{COMPUTES + 1}", 60, "64 rows")
                load.append(time.perf_counter() - t0)

                host = computes[2 * i]
                state = f"document.querySelector('tr[data-host=\"{host}\"]').dataset.state"
                t0 = time.perf_counter()
                tab.eval(f"document.querySelector('tr[data-host=\"{host}\"] "
                         "button[data-action=\"on\"]').click()")
                tab.wait(f"{state} === 'active'", 60, f"{host} active")
                click.append(time.perf_counter() - t0)

                t0 = time.perf_counter()
                listed = client.call(NODES, NodesRequest(fe_mac)).nodes
                nodes_api.append(time.perf_counter() - t0)
                assert len(listed) == COMPUTES + 1

                other = computes[2 * i + 1]
                t0 = time.perf_counter()
                client.power(other, "on")
                client.call(NODES, NodesRequest(fe_mac))
                click_api.append(time.perf_counter() - t0)
            problems = tab.problems()
            tab.close()
        finally:
            if browser is not None:
                browser.close()
            proc.terminate()
            proc.wait(30)

    def row(what: str, xs: list[float]) -> None:
        print(f"{what:<52} median {statistics.median(xs) * 1000:8.1f} ms  "
              f"min {min(xs) * 1000:8.1f} ms")

    print(f"1 frontend + {COMPUTES} computes on {CONTAINERS} containers (test driver), "
          f"{a.runs} runs, headless Chromium")
    row("page load: link to 64 rows shown", load)
    row("baseline: signed GET /v1/nodes (pilot's client)", nodes_api)
    row("click On to 'active' shown on the page", click)
    row("baseline: signed power on + signed GET /v1/nodes", click_api)
    if problems:
        print("page problems:", *problems, sep="\n  ")


if __name__ == "__main__":
    main()
