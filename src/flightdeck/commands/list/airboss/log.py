"""rocks list airboss log"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import POSITIVE, Example, Param, Parsed


class Command(Base):
    summary = "List the Airboss's audit log: every request, accepted or why it was refused"
    description = """
        One row per request, oldest first: time (UTC), client address, key fingerprint,
        operation, target, and the result (the outcome, or the refusal's code and reason). A
        refused request's key is the one it claimed; only accepted and 'forbidden' rows have a
        key whose signature verified. Whoever may read the cluster database may read it (the
        SQLite file is root's; on PostgreSQL, the database's own rights). A request made
        with a capability token adds the token's id and its restrictions.
    """
    params = (Param("limit", "how many of the latest requests", POSITIVE, default=100),)
    writes = False
    examples = (
        Example("rocks list airboss log", "The last 100 requests."),
        Example("rocks list airboss log limit=20 output-format=json", "For a script."),
    )
    records = "one per request, oldest first"
    fields = (
        Field("time", "when it was decided (the table: YYYY-MM-DD HH:MM:SS, UTC)", "time"),
        Field("client", "the client's address", nullable=True),
        Field("key", "the key's fingerprint (SHA256:...) the request claimed", nullable=True),
        Field("operation", "what it asked for (power on, list macs...)", nullable=True),
        Field("target", "the VM it named, as it named it", nullable=True),
        Field("accepted", "whether it was carried out", "boolean"),
        Field("result", "the outcome, or the refusal's code and reason", nullable=True),
        Field(
            "token_id",
            "a capability token's id (what remove host token id= takes)",
            nullable=True,
            column="token id",
            hide_empty=True,
        ),
        Field(
            "restrictions",
            "the token's blocks (Datalog checks), ' | ' between blocks",
            nullable=True,
            hide_empty=True,
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_audit

        t = self.table(owner=False)
        for r in list_audit(self.ctx.db, p["limit"]):
            t.add(
                r.at,
                r.client,
                r.keyid,
                r.operation,
                r.target,
                r.accepted,
                r.reason,
                r.token_id,
                r.restrictions,
            )
        self.emit(t)
