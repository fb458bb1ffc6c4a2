"""rocks list audit (pilot list audit)"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import POSITIVE, Args, Example, Param, Parsed


class Command(Base):
    summary = "List your cluster's audit chain through the Airboss (pilot verify audit checks it)"
    description = """
        Every Airboss decision about your cluster's VMs, oldest first: its place in the
        cluster's hash chain (seq), time, client, key, operation, target, outcome, and the
        token's id when a token was used. The Airboss signs the chain's head; pilot verify
        audit recomputes the chain and checks that signature.
    """
    args = Args("host", "a VM of your cluster (its frontend): MAC or name", min=1, max=1)
    params = (Param("since", "the first entry to list", POSITIVE), *AIRBOSS_PARAMS)
    writes = False
    owner = True
    examples = (
        Example("rocks list audit frontend-0-0-0 key=private.key", "The whole chain."),
        Example("rocks list audit frontend-0-0-0 since=100 output-format=json", "From entry 100."),
    )
    records = "one per audit entry, oldest first"
    fields = (
        Field("seq", "its place in the chain", "integer"),
        Field("time", "when (UTC)"),
        Field("client", "the client's address", nullable=True),
        Field("key", "the key (fingerprint) it was made with, or claimed", nullable=True),
        Field("operation", "what it asked for", nullable=True),
        Field("target", "the VM it named", nullable=True),
        Field("accepted", "whether it was carried out", "boolean"),
        Field("result", "the outcome, or the refusal's code and reason", nullable=True),
        Field(
            "token_id",
            "the capability token's id",
            nullable=True,
            column="token id",
            hide_empty=True,
        ),
        Field("hash", "the entry's hash (sha-256)", column=None),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.cli import owner

        client = owner.client(self, p)
        found = client.audit_chain(owner.target(self, p.args[0]), p["since"])
        t = self.table(owner=False)
        for e in found.entries:
            t.add(e.seq, e.at, e.client, e.keyid, e.operation, e.target, e.accepted, e.reason,
                  e.token_id, e.hash)  # fmt: skip
        self.emit(t)
