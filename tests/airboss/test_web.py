"""The browser console's static site (`flightdeck.airboss.web`): what it serves, what it never does.

The assets are the real ones: our page and glue in the repository's `web/`, and noVNC and
xterm.js as `npm ci` installed them in `web/node_modules` (scripts/test.sh runs
`fd_web_assets`). The traversal tests use a web directory of their own in tmp_path with files
and symbolic links placed where an attacker would want them.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from starlette.applications import Starlette

from flightdeck.airboss import config, web

REPO_WEB = Path(__file__).resolve().parents[2] / "web"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
#: `import ... from '<x>'` and `import('<x>')` in an ES module.
IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(\s*)['"]([^'"]+)['"]""")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def call(app: Any, raw_path: str, method: str = "GET") -> Answer:
    """One request straight into the ASGI app: the raw path exactly as given, no sockets."""
    path, _, query = raw_path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": urllib.parse.unquote(path), "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "", "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8677),
    }
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # the client never goes away (cancelled when the answer ends)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body)


@pytest.fixture(scope="module")
def installed() -> Path:
    missing = web.missing_assets(REPO_WEB)
    if missing is not None:
        pytest.fail(f"{missing} (scripts/test.sh does it: fd_web_assets)")
    return REPO_WEB


@pytest.fixture
def app(installed: Path) -> Starlette:
    return Starlette(routes=web.routes(installed))


def assert_secured(answer: Answer, *, page: bool) -> None:
    h = answer.headers
    policy = h["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "*" not in policy
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == ("no-store" if page else "no-cache")


# The page -------------------------------------------------------------------------------------


def test_the_page_is_served_with_a_fresh_style_nonce_and_strict_headers(app: Starlette) -> None:
    nonces = set()
    for _ in range(2):
        answer = call(app, "/console/?token=abc&kind=vnc")
        assert answer.status == 200
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert_secured(answer, page=True)
        nonce = re.search(r"'nonce-([A-Za-z0-9_-]{24})'", answer.headers["content-security-policy"])
        assert nonce, answer.headers["content-security-policy"]
        html = answer.body.decode()
        assert f'<meta name="fd-style-nonce" content="{nonce.group(1)}">' in html
        assert "__STYLE_NONCE__" not in html
        assert '<script type="module" src="console.js"></script>' in html
        assert "<script>" not in html and " on" not in html.split("<body>", 1)[1].split("=")[0]
        nonces.add(nonce.group(1))
    assert len(nonces) == 2


def test_the_bare_prefix_redirects_to_the_page_keeping_the_query(app: Starlette) -> None:
    answer = call(app, "/console?token=t0k&kind=serial")
    assert answer.status == 308
    assert answer.headers["location"] == "/console/?token=t0k&kind=serial"
    assert_secured(answer, page=True)


def test_the_page_never_sends_the_token_anywhere_but_the_websocket() -> None:
    """The glue reads the token once, strips it from the address bar, uses it in one place."""
    js = (REPO_WEB / "console.js").read_text()
    assert "window.history.replaceState(null, '', window.location.pathname);" in js
    uses = [line.strip() for line in js.splitlines() if re.search(r"\btoken\b", line)
            and not line.strip().startswith(("//", "*", "/**"))]
    assert uses == [
        "const token = params.get('token');",
        "const query = new URLSearchParams({ token, kind });",
        "if (!token) {",
    ]
    assert "return `${scheme}//${window.location.host}/v1/console?${query}`;" in js
    for leak in ("localStorage", "sessionStorage", "document.cookie", "fetch(", "XMLHttpRequest",
                 "sendBeacon", "console.log"):
        assert leak not in js


# The assets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "file", "media"),
    [
        ("console.js", "console.js", JS),
        ("console.css", "console.css", CSS),
        ("novnc/core/rfb.js", "node_modules/@novnc/novnc/core/rfb.js", JS),
        ("novnc/vendor/pako/lib/zlib/inflate.js",
         "node_modules/@novnc/novnc/vendor/pako/lib/zlib/inflate.js", JS),
        ("xterm/lib/xterm.mjs", "node_modules/@xterm/xterm/lib/xterm.mjs", JS),
        ("xterm/css/xterm.css", "node_modules/@xterm/xterm/css/xterm.css", CSS),
        ("xterm-addon-fit/lib/addon-fit.mjs",
         "node_modules/@xterm/addon-fit/lib/addon-fit.mjs", JS),
    ],
)
def test_assets_are_served_byte_for_byte_with_their_type(
    app: Starlette, installed: Path, path: str, file: str, media: str
) -> None:
    answer = call(app, f"/console/{path}")
    assert answer.status == 200, answer.body[:200]
    assert answer.headers["content-type"] == media
    assert answer.body == (installed / file).read_bytes()
    assert_secured(answer, page=False)
    head = call(app, f"/console/{path}", method="HEAD")
    assert head.status == 200 and head.body == b""


def _module_graph(app: Starlette, entry: str) -> set[str]:
    """Every URL path the browser fetches to load the ES module at `entry`, all answered 200."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        answer = call(app, url)
        assert answer.status == 200, f"{url} is not served (imported by the module graph)"
        assert answer.headers["content-type"] == JS
        for spec in IMPORT.findall(answer.body.decode()):
            if spec.startswith(("./", "../", "/")):
                todo.append(urllib.parse.urljoin(url, spec))
    return seen


def test_every_module_the_page_imports_is_served(app: Starlette) -> None:
    """The allowlist covers noVNC's whole import graph (checked again on every npm upgrade)."""
    graph = _module_graph(app, "/console/console.js")
    assert {"/console/novnc/core/rfb.js", "/console/xterm/lib/xterm.mjs",
            "/console/xterm-addon-fit/lib/addon-fit.mjs",
            "/console/novnc/vendor/pako/lib/zlib/inflate.js"} <= graph
    assert len(graph) > 30


# What is never served -------------------------------------------------------------------------

UNLISTED = [
    "/console/console.html",            # the page lives at /console/ only
    "/console/package.json",
    "/console/package-lock.json",
    "/console/.gitignore",
    "/console/node_modules/@xterm/xterm/lib/xterm.mjs",
    "/console/novnc/package.json",
    "/console/novnc/docs/API.md",
    "/console/novnc/vendor/pako/README.md",
    "/console/novnc/vendor/pako/LICENSE",
    "/console/xterm/lib/xterm.mjs.map",
    "/console/xterm/src/browser/Terminal.ts",
    "/console/xterm/package.json",
    "/console/novnc/core/",             # no directory listings
    "/console/novnc/core",
    "/console/novnc/",
    "/console/novnc",
    "/console/xterm/lib//xterm.mjs",
    "/console/nothing.js",
    "/console/CONSOLE.JS",
]
TRAVERSAL = [
    "/console/../pyproject.toml",
    "/console/%2e%2e/pyproject.toml",
    "/console/%2E%2E/%2E%2E/etc/passwd",
    "/console/novnc/core/../../../../package-lock.json",
    "/console/novnc/core/..%2f..%2fpackage.json",
    "/console/novnc/core%2f..%2f..%2fpackage.json",
    "/console/xterm/lib/..%5c..%5cpackage.json",
    "/console/novnc/core/./rfb.js",
    "/console/novnc/core/%00rfb.js",
    "/console/novnc/core/rfb.js%00.css",
    "/console//etc/passwd.css",
    "/console/%2fetc%2fpasswd.css",
    "/console/novnc/core/~/rfb.js",
]


@pytest.mark.parametrize("path", UNLISTED + TRAVERSAL)
def test_unlisted_paths_and_traversal_are_404(app: Starlette, path: str) -> None:
    answer = call(app, path)
    assert answer.status == 404, f"{path} answered {answer.status}: {answer.body[:120]!r}"
    assert answer.body == b"not found\n"
    assert_secured(answer, page=False)


def test_other_methods_are_refused(app: Starlette) -> None:
    for method in ("POST", "PUT", "DELETE"):
        assert call(app, "/console/console.js", method=method).status == 405


@pytest.fixture
def trap(tmp_path: Path, installed: Path) -> Path:
    """A web dir whose allowlisted directories hold links and files that point elsewhere."""
    root = tmp_path / "web"
    root.mkdir()
    for name in ("console.html", "console.js", "console.css"):
        shutil.copy(installed / name, root / name)
    secret = tmp_path / "secret.js"
    secret.write_text("SECRET\n")
    for package, dirs in web.VENDOR.values():
        base = root / "node_modules" / package
        base.mkdir(parents=True)
        (base / "package.json").write_text("{}\n")
        (base / "secret.js").write_text("SECRET\n")
        for d in dirs:
            (base / d).mkdir(parents=True)
            (base / d / "ok.js").write_text("export const ok = 1;\n")
            (base / d / "out.js").symlink_to(secret)
            (base / d / "up.js").symlink_to(base / "secret.js")
            (base / d / "dir.js").mkdir()
            (base / d / "data.json").write_text("{}\n")
    (root / "node_modules" / "@xterm" / "xterm" / "lib" / "linked").symlink_to(tmp_path)
    return root


def test_links_out_of_the_allowlisted_directories_are_404(trap: Path) -> None:
    app = Starlette(routes=web.routes(trap))
    assert call(app, "/console/novnc/core/ok.js").body == b"export const ok = 1;\n"
    assert call(app, "/console/novnc/vendor/pako/lib/ok.js").status == 200
    for path in ("/console/novnc/core/out.js", "/console/novnc/core/up.js",
                 "/console/novnc/core/dir.js", "/console/novnc/core/data.json",
                 "/console/novnc/secret.js", "/console/xterm/lib/linked/secret.js",
                 "/console/novnc/vendor/ok.js"):
        answer = call(app, path)
        assert answer.status == 404, path
        assert b"SECRET" not in answer.body


# When the assets are missing ------------------------------------------------------------------


def test_missing_packages_give_a_clear_page_not_a_crash(trap: Path) -> None:
    shutil.rmtree(trap / "node_modules" / "@novnc")
    assert web.missing_assets(trap) == (
        f"{trap}/node_modules/@novnc/novnc is missing: run `npm ci` in {trap}"
    )
    app = Starlette(routes=web.routes(trap))
    answer = call(app, "/console/?token=t&kind=vnc")
    assert answer.status == 503
    assert "The browser console is not installed on this Airboss" in answer.body.decode()
    assert str(trap) not in answer.body.decode()  # no server paths to unauthenticated callers
    assert_secured(answer, page=True)
    assert call(app, "/console/novnc/core/rfb.js").status == 404
    assert call(app, "/console/console.js").status == 200


def test_no_web_directory_at_all(tmp_path: Path) -> None:
    assert web.missing_assets(None) is not None
    assert web.missing_assets(tmp_path).endswith("set web_dir to the repository's web/")
    app = Starlette(routes=web.routes(tmp_path / "nowhere"))
    assert call(app, "/console/").status == 503
    assert call(app, "/console/console.js").status == 404


def test_the_web_dir_setting(tmp_path: Path) -> None:
    assert web.default_web_dir() == REPO_WEB
    assert config.Settings().web_dir is None
    toml = tmp_path / "airboss.toml"
    toml.write_text(f'web_dir = "{tmp_path}"\n')
    assert config.load(str(toml)).web_dir == str(tmp_path)


# web=yes: the link the clients print, served by a real Airboss ----------------------------------


def test_pilot_and_rocks_print_a_link_the_airboss_serves(site: Any, carol: Any) -> None:
    import subprocess
    import sys
    import urllib.request

    from flightdeck.crypto import keys as ck

    key = site.tmp / "carol.key"
    key.write_bytes(ck.private_key_to_pem(carol.key, None))
    key.chmod(0o600)
    srv = site.server()
    mac = site.mac(site.plain)
    pilot = Path(sys.executable).parent / "pilot"
    done = subprocess.run(
        [str(pilot), "open", "host", "console", f"host={mac}", "console=serial", "web=yes",
         f"key={key}", f"airboss={srv.address}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert re.fullmatch(rf"{srv.url}/console/\?token=[A-Za-z0-9_-]{{43}}&kind=serial", link)
    assert done.stderr.strip() == (
        "open it in a browser within 60 s; it works once (for another session, ask again)")
    with urllib.request.urlopen(link, timeout=30) as page:
        assert page.status == 200
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert b'<script type="module" src="console.js"></script>' in page.read()
    issued = [r for r in site.audit(5) if r.operation == "console token serial"]
    assert issued and issued[-1].accepted and issued[-1].target == mac

    out = site.rocks.ok("open", "host", "console", site.plain, "web=yes", f"key={key}",
                        f"airboss={srv.address}")
    assert re.fullmatch(rf"{srv.url}/console/\?token=[A-Za-z0-9_-]{{43}}&kind=vnc\n", out)
    # Another cluster's VM: no link, the Airboss's refusal.
    refused = subprocess.run(
        [str(pilot), "open", "host", "console", f"host={site.mac(site.cluster_a[0])}",
         "web=yes", f"key={key}", f"airboss={srv.address}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert refused.returncode != 0 and refused.stdout == ""
    assert "is not a VM your key may control" in refused.stderr
    bad = subprocess.run(
        [str(pilot), "open", "host", "console", f"host={mac}", "console=rdp", "web=yes",
         f"key={key}", f"airboss={srv.address}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert bad.returncode != 0 and 'console must be "vnc" or "serial"' in bad.stderr
