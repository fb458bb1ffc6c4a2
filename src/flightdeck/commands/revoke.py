"""rocks revoke (pilot revoke)"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import Example, Param, Parsed


class Command(Base):
    summary = "Revoke a capability token made with your key, and every token made from it"
    description = """
        Sends the token to the Airboss in a request signed with your key (key=): the
        Airboss checks the token is rooted in that key and refuses its id from then on, on
        every replica and after restarts. A token cannot revoke itself: the key must sign.
        The administrator can do the same with rocks remove host token.
    """
    params = (
        Param("token", "the token file to revoke", required=True),
        *(p for p in AIRBOSS_PARAMS if p.name != "token"),
    )
    writes = False
    owner = True
    examples = (
        Example("rocks revoke token=slurm.token key=private.key", "Slurm may no longer act."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.api.operations import REVOKE, RevokeRequest
        from flightdeck.cli import owner
        from flightdeck.pilot.keyfile import find_key, load_key
        from flightdeck.pilot.settings import defaults
        from flightdeck.pilot.tokenfile import read_token

        token = read_token(p["token"])
        from flightdeck.pilot.client import AirbossClient

        client = AirbossClient(
            load_key(find_key(p["key"])),
            owner.airboss_address(self, p["airboss"]),
            cafile=p["ca"] or defaults().ca,
        )
        answer = client.call(REVOKE, RevokeRequest(token.text))
        state = "revoked" if answer.revoked else "was revoked already"
        self.say(f"token {answer.token_id} ({answer.host}): {state}")
