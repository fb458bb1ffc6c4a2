"""Headless Chromium (Debian's), driven over the DevTools protocol, for the browser tests.

Launched with the flags of feasibility.md and a new empty profile; its DevTools endpoint is on
a loopback port it picks itself (DevToolsActivePort). `Tab` is one page: evaluate JavaScript,
wait for a condition, read its status line, its problems (console errors, CSP violations,
exceptions) and every URL it asked for, and screenshots. The fixtures `browser` and `tab` are
tests/airboss/conftest.py's.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

websocket = pytest.importorskip("websocket")  # websocket-client: the CDP connection

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1024,768", "--remote-debugging-port=0",
)


# A small DevTools protocol client -------------------------------------------------------------


class CdpError(AssertionError):
    pass


class Tab:
    """One page target, over the browser's DevTools WebSocket (flat sessions)."""

    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.send(method, session=self.session, **params)

    def events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.browser.events
                if e.get("sessionId") == self.session and e["method"] == method]

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait(self, expression: str, timeout: float, what: str) -> Any:
        """Poll until `expression` is truthy; its value. Fails saying `what` and the status."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g} s; the status line says "
                                     f"{self.status()!r}")
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && !!document.getElementById('status')",
                  30, f"loading {url}")

    def status(self) -> tuple[str, str] | None:
        value = self.eval("(() => { const s = document.getElementById('status');"
                          " return s ? [s.dataset.state, s.textContent] : null; })()")
        return (value[0], value[1]) if value else None

    def settled(self, timeout: float = 30, past: tuple[str, ...] = ()) -> tuple[str, str]:
        """The status once it is no longer loading, connecting (or any state in `past`)."""
        states = json.dumps(["loading", "connecting", *past])
        self.wait("(() => { const s = document.getElementById('status');"
                  f" return s && !{states}.includes(s.dataset.state); }})()",
                  timeout, "the page settling")
        status = self.status()
        assert status is not None
        return status

    def terminal_text(self) -> str:
        return str(self.eval("document.querySelector('.xterm-rows')?.innerText ?? ''"))

    def problems(self) -> list[str]:
        """Console errors, CSP violations and uncaught exceptions seen in this tab."""
        out = [f"{e['entry']['source']}: {e['entry']['text']} {e['entry'].get('url', '')}"
               for e in self.events("Log.entryAdded") if e["entry"]["level"] == "error"]
        out += [f"exception: {e['exceptionDetails'].get('text')} "
                f"{e['exceptionDetails'].get('exception', {}).get('description', '')}"
                for e in self.events("Runtime.exceptionThrown")]
        out += [f"console.error: {e['args']}" for e in self.events("Runtime.consoleAPICalled")
                if e["type"] == "error"]
        return out

    def requested(self) -> list[str]:
        """Every URL this tab asked for: HTTP requests and WebSockets."""
        urls = [e["request"]["url"] for e in self.events("Network.requestWillBeSent")]
        return urls + [e["url"] for e in self.events("Network.webSocketCreated")]

    def screenshot_colours(self, selector: str) -> int:
        """How many distinct colours the element shows on screen (a PNG screenshot, decoded)."""
        from PIL import Image

        box = self.eval(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                        ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()")
        x, y, w, h = box
        assert w > 0 and h > 0, f"{selector} has no size: {box}"
        shot = self.send("Page.captureScreenshot", format="png",
                         clip={"x": x, "y": y, "width": w, "height": h, "scale": 1})
        image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
        colours = image.getcolors(maxcolors=1 << 20)
        assert colours is not None
        return len(colours)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.browser.send("Target.closeTarget", targetId=self.target)


class Browser:
    """Headless Chromium with a new empty profile, driven over its DevTools WebSocket."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.log = (profile.parent / "chromium.log").open("wb")
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError("chromium did not start: "
                                     + (profile.parent / "chromium.log").read_text()[-2000:])
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        # No Origin header: Chromium refuses DevTools WebSockets from other origins.
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=60,
                                              suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            answer = json.loads(self.ws.recv())
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise CdpError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))
            if "method" in answer:
                self.events.append(answer)

    def tab(self) -> Tab:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tab = Tab(self, session, target)
        for domain in ("Page", "Runtime", "Log", "Network"):
            tab.send(f"{domain}.enable")
        return tab

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
