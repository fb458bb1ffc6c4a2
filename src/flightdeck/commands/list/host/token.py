"""rocks list host token"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import HOSTS, Example, Parsed


class Command(Base):
    summary = "List the revoked capability tokens of hosts (tokens themselves are not stored)"
    description = """
        One row per revoked token id: the host whose key the token is rooted in, the id, who
        revoked it (owner <key fingerprint> or admin <user>) and when. The Airboss refuses
        these tokens, and every token attenuated from them.
    """
    args = HOSTS
    writes = False
    examples = (
        Example("rocks list host token", "Every revoked token."),
        Example("rocks list host token frontend-0-0-0", "The revoked tokens of one cluster."),
    )
    records = "one per revoked token"
    fields = (
        Field("host", "the host whose key the token is rooted in"),
        Field("token_id", "the revoked id (128 hex digits)", column="token id"),
        Field("revoked_by", "owner <key fingerprint> or admin <user>", column="revoked by"),
        Field("revoked_at", "when (UTC)", "time", column="revoked at"),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_revoked

        t = self.table()
        for r in list_revoked(self.ctx.db, p.args):
            t.add(r.host, r.token_id, r.revoked_by, r.revoked_at)
        self.emit(t)
