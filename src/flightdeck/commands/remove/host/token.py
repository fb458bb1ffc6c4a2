"""rocks remove host token"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Revoke a capability token rooted in a host's key (refused from the next request)"
    description = """
        Tokens are never stored, so a token is revoked by its id: the token_id column of rocks
        list airboss log (every request made with a token names it), or what pilot create
        token and pilot attenuate print. Revoking a token also revokes every token attenuated
        from it. The host is the virtual frontend or VM whose key the token is rooted in; rocks
        list host token shows the revoked ids. Owners revoke their own tokens with pilot
        revoke token=<file>.
    """
    args = ONE_HOST
    params = (Param("id", "the token's id: 128 hex digits", required=True),)
    examples = (
        Example(
            "rocks remove host token frontend-0-0-0 id=3f6a...e01c",
            "Refuse that token (and the tokens made from it) from now on.",
        ),
    )

    def run(self, p: Parsed) -> None:
        import getpass

        from flightdeck.services.airboss.revocations import revoke_by_admin

        revoke_by_admin(self.ctx.db, p.args[0], p["id"], getpass.getuser())
