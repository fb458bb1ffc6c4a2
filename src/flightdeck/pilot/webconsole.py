"""`web=yes` on `pilot open host console` and `rocks open host console`: a link for a browser.

One signed request (`POST /v1/console/token`) buys a token for one console of one VM; the link
is `<Airboss URL>/console/?token=<t>&kind=<vnc|serial>`, whose page (served by the Airboss,
`flightdeck.airboss.web`) opens the console with it. The token works once, within 60 s, for
that VM and that kind only, and is bound to the key that asked: the link is as good as the key
for that one console, so it is printed (to be pasted into a browser), never opened or stored.
Through the usual tunnel (`ssh -L 8677:localhost:8677 <frontend>`) the link is
`http://localhost:8677/console/...`, which the laptop's browser reaches through the tunnel too.
"""

from __future__ import annotations

from collections.abc import Callable

from flightdeck.api.operations import PAGE
from flightdeck.pilot.client import AirbossClient, AirbossError

#: What the owner is told next to the link (on standard error: the link alone is on stdout).
HINT = "open it in a browser within 60 s; it works once (for another session, ask again)"


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
