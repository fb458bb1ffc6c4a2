"""Links for a browser: `web=yes` on `open host console`, and `open dashboard`.

One signed request (`POST /v1/console/token`) buys a token for one console of one VM; the link
is `<Airboss URL>/console/?token=<t>&kind=<vnc|serial>`, whose page (served by the Airboss,
`flightdeck.airboss.web`) opens the console with it. The token works once, within 60 s, for
that VM and that kind only, and is bound to the key that asked: the link is as good as the key
for that one console, so it is printed (to be pasted into a browser), never opened or stored.
Through the usual tunnel (`ssh -L 8677:localhost:8677 <frontend>`) the link is
`http://localhost:8677/console/...`, which the laptop's browser reaches through the tunnel too.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping

from flightdeck.api.operations import DASHBOARD_PAGE, PAGE
from flightdeck.pilot.client import AirbossClient, AirbossError

#: What the owner is told next to the link (on standard error: the link alone is on stdout).
HINT = "open it in a browser within 60 s; it works once (for another session, ask again)"
DASHBOARD_HINT = (
    "open it in a browser within 60 s; it works once. The session it starts ends after a "
    "quarter of an hour (dashboard_idle) without a click, or when your key is removed"
)


def web_console_url(client: AirbossClient, target: str, kind: str) -> str:
    """The browser console link for `target`'s `kind` console (vnc or serial)."""
    from flightdeck.pilot.console import check_kind

    answer = client.console_token(target, check_kind(kind))
    if not answer.path.startswith(f"{PAGE}?token="):
        raise AirbossError("bad-response", "the Airboss's console token answer has no page path")
    return f"{client.address}{answer.path}"


def print_web_console(
    client: AirbossClient,
    target: str,
    kind: str,
    say: Callable[[str], object],
    warn: Callable[[str], object],
) -> int:
    say(web_console_url(client, target, kind))
    warn(HINT)
    return 0


def dashboard_url(
    client: AirbossClient, target: str, names: Mapping[str, str] | None = None
) -> str:
    """The one-time dashboard link for `target`'s cluster; `names` (MAC -> the node's name on
    the virtual frontend) travel in the fragment, which the browser never sends anywhere."""
    answer = client.dashboard_link(target)
    if not answer.link.startswith(f"{DASHBOARD_PAGE}?link="):
        raise AirbossError("bad-response", "the Airboss's dashboard answer has no page path")
    fragment = urllib.parse.urlencode(sorted((names or {}).items()))
    return f"{client.address}{answer.link}" + (f"#{fragment}" if fragment else "")
