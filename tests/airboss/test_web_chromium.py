"""The browser console in a real browser: headless Chromium driven over the DevTools protocol.

Two parts:

* The page's glue (no libvirtd needed): the real `/console/` site on uvicorn, with a test
  WebSocket at `/v1/console` that plays the relay's two outcomes (accept and send bytes, or
  refuse the upgrade with 401 as the Airboss does). It checks what only a browser can show: the
  terminal draws the bytes, typed keys come back, the token leaves the address bar and goes
  nowhere but the WebSocket, a refusal is explained, and the strict CSP blocks nothing the
  page needs.
* End to end (libvirtd, QEMU under TCG): a real `airboss serve` and real VMs. The serial page
  shows the installer's FLIGHTDECK-BOOTED marker (read from the terminal's DOM); the VNC page
  paints a canvas of more than one colour (a CDP screenshot, decoded); a used token and an
  expired one (60 s) are refused, and the page says so.

Chromium is Debian's (`/usr/bin/chromium`), driven by tests/chromium.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airboss_process import Server, audit_rows, first_macs, start_airboss
from chromium import Browser, Tab
from libvirt_purge import purge

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

#: The marker the installer image prints on its serial console.
MARKER = "FLIGHTDECK-BOOTED"

# A uvicorn server in a thread, for the glue tests ---------------------------------------------


class ThreadServer:
    """An ASGI app on uvicorn on 127.0.0.1 and a free port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning", ws="wsproto"))
        self.thread = threading.Thread(target=self.server.run, name="web-test", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class PlayedRelay:
    """`/v1/console` as the relay behaves, scripted: token `good` is accepted once."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.used: set[str] = set()

    async def __call__(self, scope: Any, receive: Callable[..., Any], send: Callable[..., Any]
                       ) -> None:
        from urllib.parse import parse_qs

        query = parse_qs(scope["query_string"].decode())
        token = query.get("token", [""])[0]
        await receive()  # websocket.connect
        if token != "good" or token in self.used or query.get("kind") != ["serial"]:
            body = b'{"error":"token-unknown","message":"used already"}'
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "websocket.http.response.body", "body": body})
            return
        self.used.add(token)
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": f"guest says {MARKER}\r\n$ ".encode()})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            self.received += message.get("bytes") or (message.get("text") or "").encode()
            if b"\r" in self.received:
                await send({"type": "websocket.send", "bytes": b"\r\nbye\r\n"})
                await asyncio.sleep(0.2)
                await send({"type": "websocket.close", "code": 1000, "reason": "the VM stopped"})
                return


@pytest.fixture
def glue() -> Iterator[tuple[ThreadServer, PlayedRelay]]:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    from flightdeck.airboss import web

    relay = PlayedRelay()
    server = ThreadServer(Starlette(routes=[WebSocketRoute("/v1/console", relay),
                                            *web.routes()]))
    try:
        yield server, relay
    finally:
        server.stop()


def test_serial_page_draws_the_stream_sends_keys_and_keeps_the_token_to_itself(
    tab: Tab, glue: tuple[ThreadServer, PlayedRelay]
) -> None:
    server, relay = glue
    tab.open(f"{server.url}/console/?token=good&kind=serial")
    tab.wait(f"document.querySelector('.xterm-rows')?.innerText.includes('{MARKER}')", 30,
             "the marker in the terminal")
    assert tab.status() == ("connected",
                            "connected: serial console (what you type goes to the VM)")
    assert tab.eval("window.location.href") == f"{server.url}/console/"  # token stripped

    tab.send("Input.insertText", text="ls -l")
    tab.send("Input.dispatchKeyEvent", type="keyDown", key="Enter", code="Enter",
             windowsVirtualKeyCode=13, text="\r")
    tab.send("Input.dispatchKeyEvent", type="keyUp", key="Enter", code="Enter",
             windowsVirtualKeyCode=13)
    tab.wait("document.getElementById('status').dataset.state === 'closed'", 30,
             f"the keys reaching the relay (it has {bytes(relay.received)!r})")
    assert tab.status() == ("closed", "console closed: the VM stopped")
    assert bytes(relay.received) == b"ls -l\r"
    assert "bye" in tab.terminal_text()

    # The token went to the page's own address and to the WebSocket, nowhere else.
    with_token = [u for u in tab.requested() if "good" in u]
    assert with_token == [f"{server.url}/console/?token=good&kind=serial",
                          f"ws://127.0.0.1:{server.url.rsplit(':', 1)[1]}"
                          "/v1/console?token=good&kind=serial"], tab.requested()
    assert any(u.endswith("/console/xterm/lib/xterm.mjs") for u in tab.requested())
    assert tab.problems() == []  # the strict CSP blocked nothing (xterm's styles carry the nonce)


def test_a_refused_token_is_explained(tab: Tab, glue: tuple[ThreadServer, PlayedRelay]) -> None:
    server, _relay = glue
    tab.open(f"{server.url}/console/?token=used&kind=serial")
    state, text = tab.settled()
    assert state == "refused"
    assert text.startswith("refused: this link was already used, has expired")
    assert "pilot open host console host=<MAC> web=yes" in text
    assert tab.eval("window.location.href") == f"{server.url}/console/"


def test_a_page_without_a_token_says_what_to_do(
    tab: Tab, glue: tuple[ThreadServer, PlayedRelay]
) -> None:
    server, _relay = glue
    tab.open(f"{server.url}/console/")
    assert tab.settled() == (
        "refused", "this address carries no console credential (a link works once); ask for a "
        "new link: pilot open host console host=<MAC> web=yes")
    assert not [u for u in tab.requested() if u.startswith("ws:")]
    tab.open(f"{server.url}/console/?token=x&kind=telnet")
    assert tab.settled() == ("error", "kind must be vnc or serial in this address")
    assert tab.problems() == []


# End to end: a real Airboss, real VMs -----------------------------------------------------------

LIBVIRT_ENV = "FLIGHTDECK_TEST_LIBVIRT"
BIN = Path(sys.executable).parent
#: VLAN ids (bridges vlan<N>) tried, away from the other end-to-end tests' ranges.
VLANS = range(3699, 3599, -1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Lab:
    """A cluster (frontend + 1 compute) on the real libvirtd and an Airboss serving it."""

    def __init__(self, rocks: Any, tmp: Path, uri: str, token: str, vlan: int) -> None:
        self.rocks, self.tmp, self.uri, self.vlan = rocks, tmp, uri, vlan
        self.fe = f"fdw-{token}"
        self.compute = f"vm-{self.fe}-0"
        self.bridges = [f"vlan{vlan}", f"fdw{token}pub", f"fdw{token}prv"]
        self.made: list[str] = []
        self.airboss: Server | None = None

    def conn(self) -> Any:
        from flightdeck.virt import hypervisor as hv

        return hv.connect("e2e", self.uri, timeout=15).conn

    def macs(self) -> dict[str, str]:
        return first_macs(self.rocks.url, self.fe)

    def serve(self) -> str:
        """`airboss serve` on a free loopback port; its http://host:port."""
        conf = self.tmp / "airboss.toml"
        conf.write_text("rate = 1000.0\nburst = 1000\n")
        self.airboss = start_airboss(self.tmp, self.rocks.url, "--config", str(conf))
        return self.airboss.url

    def audit(self, n: int) -> list[Any]:
        return audit_rows(self.rocks.url, n)

    def cleanup(self) -> None:
        if self.airboss is not None:
            self.airboss.stop()
        purge(self.conn(), (self.compute, self.fe), self.tmp)
        for bridge in reversed(self.made):
            _ip("link", "del", bridge)


@pytest.fixture
def lab(rocks: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    uri = os.environ.get(LIBVIRT_ENV)
    if not uri:
        pytest.skip(f"{LIBVIRT_ENV} is not set (scripts/test.sh starts libvirtd and sets it)")
    if os.geteuid() != 0:
        pytest.fail(f"{LIBVIRT_ENV} is set but this test needs root (bridges)")
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    vlan = next((v for v in VLANS if not Path(f"/sys/class/net/vlan{v}").exists()), None)
    if vlan is None:
        pytest.fail(f"bridges vlan{VLANS[0]}..vlan{VLANS[-1]} all exist")
    it = Lab(rocks, tmp_path, uri, secrets.token_hex(3), vlan)
    try:
        for bridge in it.bridges:  # address-less, IPv6 off: nothing leaves them
            if Path(f"/sys/class/net/{bridge}").exists():
                pytest.fail(f"interface {bridge} exists already: not touching it")
            _ip("link", "add", "name", bridge, "type", "bridge")
            it.made.append(bridge)
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6").write_text("1\n")
            _ip("link", "set", bridge, "up")
        rocks.ok("init", "frontend", f"name={it.fe}.example.org", "public-ip=192.0.2.10",
                 "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
                 "private-netmask=255.255.0.0", f"public-iface={it.bridges[1]}",
                 f"private-iface={it.bridges[2]}")
        rocks.ok("set", "attr", "kvm_domain_type", "qemu")
        rocks.ok("set", "attr", "kvm_disk_dir", str(tmp_path / "disks"))
        rocks.ok("set", "host", "attr", "frontend-0-0", "libvirt_uri", uri)
        rocks.ok("set", "host", "attr", "frontend-0-0", "kvm_vlan_mode", "bridge")
        rocks.ok("add", "cluster", "192.0.2.20", "1", f"vlan={vlan}", f"fe-name={it.fe}",
                 "mem-per-frontend=256", "mem-per-compute=256", "disk-per-frontend=1",
                 "disk-per-compute=1", "cluster-naming=yes")
        # The busybox installer boots in seconds: these tests watch consoles, not installs.
        rocks.ok("set", "host", "installaction", it.fe, "action=install vm frontend")
        yield it
    finally:
        it.cleanup()


@pytest.mark.libvirtd
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_console_pages_on_real_vms(lab: Lab, browser: Browser) -> None:
    from flightdeck.pilot.client import AirbossClient
    from flightdeck.pxe.image import DEFAULT_CACHE, build_image
    from flightdeck.virt.console import wait_for_state

    # The frontend installs from the installer image (its marker on the serial console).
    image = build_image(DEFAULT_CACHE.parent / "e2e-installer", DEFAULT_CACHE)
    lab.rocks.ok("create", "installer", "image", f"dir={image.kernel.parent}",
                 f"cache={DEFAULT_CACHE}")
    actions = json.loads(lab.rocks.ok("list", "bootaction", "output-format=json"))
    args = next(a for a in actions if a["action"] == "install vm frontend")["args"]
    lab.rocks.ok("set", "bootaction", "action=install vm frontend", f"args={args} fd.host={lab.fe}")
    key, key_file = _owner(lab)
    url = lab.serve()
    address = url.split("://", 1)[1]
    client = AirbossClient(key, address)
    macs = lab.macs()

    # Asked for first, used last: by then it is more than 60 s old.
    stale = client.console_token(macs[lab.compute], "vnc")

    # 1. Serial: the marker in the terminal. The guest is held until the page is attached
    #    (a pty drops what is written while nobody reads it). The link is pilot's web=yes.
    lab.rocks.ok("start", "host", "vm", lab.fe)
    dom = lab.conn().lookupByName(lab.fe)
    dom.suspend()
    printed = subprocess.run(
        [str(BIN / "pilot"), "open", "host", "console", f"host={macs[lab.fe]}",
         "console=serial", "web=yes", f"key={key_file}", f"airboss={address}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert printed.returncode == 0, printed.stderr
    link = printed.stdout.strip()
    assert link.startswith(f"{url}/console/?token=") and link.endswith("&kind=serial"), link
    assert "within 60 s; it works once" in printed.stderr
    token = link.split("token=", 1)[1].split("&", 1)[0]
    tab = browser.tab()
    try:
        t0 = time.monotonic()
        tab.open(link)
        tab.wait("document.getElementById('status').dataset.state === 'connected'", 30,
                 "the serial console connecting")
        connected = time.monotonic() - t0
        assert token not in tab.eval("window.location.href")
        dom.resume()
        t0 = time.monotonic()
        tab.wait(f"document.querySelector('.xterm-rows').innerText.includes('{MARKER}')", 180,
                 "the boot marker in the terminal")
        print(f"\nserial page: link to connected {connected:.2f} s; resume to the marker in "
              f"the terminal {time.monotonic() - t0:.1f} s")
        text = tab.terminal_text()
        assert f"{MARKER} host={lab.fe} uptime=" in text, text
        # The installer powers off; the page says the console closed.
        state, said = tab.settled(120, past=("connected",))
        assert state == "closed", said
        assert tab.problems() == []

        # 2. The same link again (a reload): the token was used.
        tab.open(link)
        state, said = tab.settled()
        assert state == "refused" and "already used" in said, said
    finally:
        tab.close()
    assert wait_for_state(_hv(lab), lab.fe, {"shutoff", "nostate"}, 60) in {"shutoff", "nostate"}
    assert lab.audit(1)[-1].reason.startswith("token-unknown")

    # 3. VNC: the compute boots network-first and sits in iPXE; its screen is painted.
    lab.rocks.ok("start", "host", "vm", lab.compute)
    time.sleep(3)  # SeaBIOS and iPXE write their banners
    # The link from rocks (as the owner would type it; the host by name, the key file).
    link = lab.rocks.ok("open", "host", "console", lab.compute, "web=yes", f"key={key_file}",
                        f"airboss={address}").strip()
    assert link.startswith(f"{url}/console/?token=") and link.endswith("&kind=vnc"), link
    tab = browser.tab()
    try:
        t0 = time.monotonic()
        tab.open(link)
        state, said = tab.settled()
        assert (state, said) == ("connected", "connected: VNC (click the screen to send keys)")
        print(f"VNC page: link to connected {time.monotonic() - t0:.2f} s")
        tab.wait("(() => { const c = document.querySelector('#screen canvas');"
                 " return c && c.width > 0 && c.height > 0; })()", 30, "a framebuffer")
        colours = 0
        deadline = time.monotonic() + 60
        while colours < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            colours = tab.screenshot_colours("#screen canvas")
        assert colours >= 2, "the VNC canvas is blank"
        print(f"\nVNC canvas: {colours} colours")
        assert tab.problems() == []

        # 4. The stale token, now more than 60 s old: refused, and the audit log says why.
        wait = stale.expires + 1.5 - time.time()
        if wait > 0:
            time.sleep(wait)
        tab.open(url + stale.path)
        state, said = tab.settled()
        assert state == "refused" and "has expired" in said, said
    finally:
        tab.close()
    assert lab.audit(1)[-1].reason.startswith("token-expired")


def _owner(lab: Lab) -> tuple[Any, Path]:
    """The owner's key on the lab's frontend: the private key and its file (0600)."""
    from flightdeck.crypto import keys as ck

    key = ck.generate_private_key()
    key_file = lab.tmp / "owner.key"
    key_file.write_bytes(ck.private_key_to_pem(key, None))
    key_file.chmod(0o600)
    public = lab.tmp / "owner.pub"
    public.write_text(ck.public_key_to_pem(key.public_key()))
    lab.rocks.ok("add", "host", "key", lab.fe, f"key={public}", "description=owner")
    return key, key_file


@pytest.mark.libvirtd
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_dashboard_powers_a_real_vm(lab: Lab, browser: Browser) -> None:
    """Issue 19 on real VMs: the link from `rocks open dashboard`, a click on the compute's
    power button, its state on the page without a reload, the domain running in libvirtd,
    and the audit row naming the page's session."""
    _key, key_file = _owner(lab)
    url = lab.serve()
    link = lab.rocks.ok("open", "dashboard", lab.fe, f"key={key_file}",
                        f"airboss={url.split('://', 1)[1]}").strip()
    assert link.startswith(f"{url}/dashboard/?link="), link
    tab = browser.tab()
    try:
        t0 = time.monotonic()
        tab.open(link)
        tab.wait("document.querySelectorAll('#nodes tbody tr').length === 2", 30, "the nodes")
        print(f"\ndashboard on real VMs: link to nodes shown {time.monotonic() - t0:.2f} s")
        assert tab.eval("[...document.querySelectorAll('#nodes tbody tr')]"
                        ".map(r => r.dataset.host)") == [lab.fe, lab.compute]
        state = f"document.querySelector('tr[data-host=\"{lab.compute}\"]').dataset.state"
        assert tab.eval(state) in ("shutoff", "nostate")
        tab.eval("window.fdSamePage = true; document.querySelector("
                 f"'tr[data-host=\"{lab.compute}\"] button[data-action=\"on\"]').click()")
        t0 = time.monotonic()
        tab.wait(f"!['shutoff', 'nostate'].includes({state})", 60, "the compute's new state")
        print(f"dashboard on real VMs: click to state shown {time.monotonic() - t0:.2f} s "
              f"({tab.eval(state)})")
        assert tab.eval("window.fdSamePage") is True  # no reload
        assert lab.conn().lookupByName(lab.compute).isActive()
        assert tab.problems() == []
    finally:
        tab.close()
    power = [r for r in lab.audit(10) if r.operation == "power on"]
    assert power and power[-1].accepted and power[-1].token_id.startswith("session:")


def _hv(lab: Lab) -> Any:
    from flightdeck.virt import hypervisor as hv

    return hv.connect("e2e", lab.uri, timeout=15)

