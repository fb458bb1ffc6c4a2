"""The browser pages and their assets, unauthenticated: the console under `/console/`, the
dashboard under `/dashboard/` (its API, `/dashboard/api/`, is `airboss.dashboard`'s).

The dashboard's page (`web/dashboard.html`, `dashboard.js`, `dashboard.css`) likewise carries
no credential: it reads the one-time link token from its address, strips it, and redeems it
for a session cookie with a same-origin request; it uses no upstream package.

`pilot open host console ... web=yes` prints `/console/?token=<t>&kind=vnc|serial`. The page
(`web/console.html`, `console.js`, `console.css` in the repository) reads the token from its own
address, strips it from the address bar, and opens the WebSocket `/v1/console?token=...&kind=...`,
which the Airboss authenticates: the token (single-use, 60 s, bound to a key, a VM and a kind)
is the credential, so these static files need none.

What is served, and nothing else (every other path under `/console/` is 404, with no listing):

* `/console/`: the page, with a fresh random nonce for xterm.js's own `<style>` elements;
* `/console/console.js`, `/console/console.css`: our glue;
* the upstream libraries, installed from the npm registry into `web/node_modules` by
  `npm ci` (scripts/lib/common.sh `fd_web_assets`), only from the allowlisted directories of
  `VENDOR` and only `.js`, `.mjs` and `.css` files: noVNC's ES modules (`core/`, its vendored
  `pako`), xterm.js's ES module build and style sheet, and its fit add-on.

Each path segment must be a plain name (no `..`, no hidden files, no backslashes), and the file's
real path (symbolic links resolved) must stay inside the allowlisted directory.

Every answer carries a strict Content-Security-Policy (scripts, styles, images and connections
from this origin only; no inline script, no framing), `X-Content-Type-Options: nosniff` and
`Referrer-Policy: no-referrer` (the token is in the page's URL: never let it leave in a
Referer); the page itself is `Cache-Control: no-store`.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

log = logging.getLogger("flightdeck.airboss.web")

PREFIX = "/console/"
PAGE = "console.html"
#: Our own files, served from the web directory itself.
OWN = ("console.js", "console.css")
DASHBOARD_PREFIX = "/dashboard/"
DASHBOARD_PAGE = "dashboard.html"
DASHBOARD_OWN = ("dashboard.js", "dashboard.css")
#: URL name -> (npm package under node_modules, the only directories served from it).
VENDOR: dict[str, tuple[str, tuple[str, ...]]] = {
    "novnc": ("@novnc/novnc", ("core", "vendor/pako/lib")),
    "xterm": ("@xterm/xterm", ("lib", "css")),
    "xterm-addon-fit": ("@xterm/addon-fit", ("lib",)),
}
#: File types served, by suffix (ES modules need a JavaScript type to load at all).
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
NONCE_PLACEHOLDER = b"__STYLE_NONCE__"
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")

MISSING = (
    "The browser console is not installed on this Airboss (its page or the noVNC and xterm.js "
    "packages are missing). The administrator installs them with `npm ci` in the Airboss's "
    "web directory (setting web_dir; see the Airboss log). Meanwhile use "
    "`pilot open host console` without web=yes."
)


def default_web_dir() -> Path | None:
    """The repository's `web/` when running from a source tree, else None (set `web_dir`)."""
    here = Path(__file__).resolve().parents[3] / "web"
    return here if (here / PAGE).is_file() else None


def csp(nonce: str | None = None) -> str:
    """The Content-Security-Policy: this origin only; `nonce` admits the page's style elements.

    `connect-src 'self'` covers the WebSocket to this same host and port (ws: or wss:);
    `img-src data:` is noVNC's cursor, which it draws into a data: URL.
    """
    styles = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    return (
        "default-src 'none'; script-src 'self'; "
        f"style-src {styles}; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def security_headers(*, page: bool, nonce: str | None = None) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp(nonce),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "no-store" if page else "no-cache",
    }


def _inside(path: Path, root: Path) -> bool:
    """`path` is a regular file whose real path is under `root`'s real path."""
    try:
        real = path.resolve(strict=True)
        return real.is_relative_to(root.resolve(strict=True)) and real.is_file()
    except (OSError, RuntimeError):  # missing, a loop of links, unreadable
        return False


def resolve_asset(
    web_dir: Path,
    path: str,
    own: tuple[str, ...] = OWN,
    vendor: dict[str, tuple[str, tuple[str, ...]]] = VENDOR,
) -> Path | None:
    """The file served at `/console/<path>` (`own` and `vendor`: another page's), or None (then
    the answer is 404).

    `path` is the decoded path below the prefix; every check here is on it, so neither
    percent-encoding nor symbolic links can reach outside the allowlisted directories.
    """
    parts = path.split("/")
    if not all(_SEGMENT.match(p) for p in parts):
        return None
    if Path(parts[-1]).suffix not in TYPES:
        return None
    if len(parts) == 1:
        mine = web_dir / parts[0]
        return mine if parts[0] in own and _inside(mine, web_dir) else None
    found = vendor.get(parts[0])
    if found is None:
        return None
    package, allowed = found
    base = web_dir / "node_modules" / package
    rest = "/".join(parts[1:])
    for directory in allowed:
        if rest.startswith(directory + "/"):
            candidate = base / rest
            return candidate if _inside(candidate, base / directory) else None
    return None


def missing_assets(
    web_dir: Path | None,
    page: str = PAGE,
    vendor: dict[str, tuple[str, tuple[str, ...]]] = VENDOR,
) -> str | None:
    """What is missing for the console (or `page`) to work (for the log), or None when all is
    there."""
    if web_dir is None:
        return "no web directory: set web_dir in airboss.toml (the repository's web/)"
    if not (web_dir / page).is_file():
        return f"{web_dir / page} does not exist: set web_dir to the repository's web/"
    for package, _dirs in vendor.values():
        if not (web_dir / "node_modules" / package / "package.json").is_file():
            return f"{web_dir}/node_modules/{package} is missing: run `npm ci` in {web_dir}"
    return None


class PageSite:
    """A page and its files under one prefix (`/console/`, `/dashboard/`), from `web_dir`."""

    def __init__(
        self,
        web_dir: Path | None,
        prefix: str = PREFIX,
        page_name: str = PAGE,
        own: tuple[str, ...] = OWN,
        vendor: dict[str, tuple[str, tuple[str, ...]]] = VENDOR,
    ) -> None:
        self.web_dir = web_dir
        self.prefix = prefix
        self.page_name = page_name
        self.own = own
        self.vendor = vendor

    def _not_found(self) -> Response:
        return Response(
            "not found\n",
            status_code=404,
            media_type="text/plain; charset=utf-8",
            headers=security_headers(page=False),
        )

    async def page(self, request: Request) -> Response:
        missing = await run_in_threadpool(
            missing_assets, self.web_dir, self.page_name, self.vendor
        )
        if missing is not None or self.web_dir is None:
            log.warning("the browser console cannot be served: %s", missing)
            return Response(
                '<!doctype html><html lang="en"><head><meta charset="utf-8">'
                "<title>Flightdeck console: not installed</title></head><body><p>"
                f"{MISSING}</p></body></html>\n",
                status_code=503,
                media_type="text/html; charset=utf-8",
                headers=security_headers(page=True),
            )
        html = await run_in_threadpool((self.web_dir / self.page_name).read_bytes)
        nonce = secrets.token_urlsafe(18)
        return Response(
            html.replace(NONCE_PLACEHOLDER, nonce.encode()),
            media_type="text/html; charset=utf-8",
            headers=security_headers(page=True, nonce=nonce),
        )

    async def asset(self, request: Request) -> Response:
        path = str(request.path_params["path"])
        if path == "":
            return await self.page(request)
        if self.web_dir is None:
            return self._not_found()
        found = await run_in_threadpool(resolve_asset, self.web_dir, path, self.own, self.vendor)
        if found is None:
            return self._not_found()
        return FileResponse(
            found, media_type=TYPES[found.suffix], headers=security_headers(page=False)
        )

    async def bare(self, request: Request) -> Response:
        """`/console` -> `/console/`, the query (the token) kept: same origin, never logged."""
        query = request.url.query
        return RedirectResponse(
            self.prefix + (f"?{query}" if query else ""),
            status_code=308,
            headers=security_headers(page=True),
        )


def routes(web_dir: str | Path | None = None) -> list[BaseRoute]:
    """The console's routes, to put before the Airboss's catch-all route.

    `web_dir` is the `web_dir` setting; None means the source tree's `web/` (if this is one).
    """
    where = Path(web_dir) if web_dir is not None else default_web_dir()
    site = PageSite(where)
    missing = missing_assets(where)
    if missing is not None:
        log.warning("the browser console is not available: %s", missing)
    board = PageSite(where, DASHBOARD_PREFIX, DASHBOARD_PAGE, DASHBOARD_OWN, {})
    return [
        Route("/console", endpoint=site.bare, methods=["GET", "HEAD"]),
        Route(PREFIX + "{path:path}", endpoint=site.asset, methods=["GET", "HEAD"]),
        Route("/dashboard", endpoint=board.bare, methods=["GET", "HEAD"]),
        Route(DASHBOARD_PREFIX + "{path:path}", endpoint=board.asset, methods=["GET", "HEAD"]),
    ]
