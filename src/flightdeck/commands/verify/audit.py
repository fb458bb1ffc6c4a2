"""rocks verify audit (pilot verify audit)"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import Args, Example, Param, Parsed


class Command(Base):
    summary = "Check your cluster's audit chain: names the first entry altered, removed or moved"
    description = """
        Fetches the cluster's audit chain and the head the Airboss signed, recomputes every
        entry's hash from its content and the entry before it, and checks the head's
        signature. Pin the Airboss's audit key with airboss-key=<file> (rocks report service
        airboss prints it); without it the key the Airboss publishes is used, which proves
        only that the chain was not changed behind the Airboss's back. A chain pruned for
        retention (attribute airboss_audit_days) is verified from its checkpoint, which the
        Airboss signed when it pruned; first entries missing without one are reported. Exit
        status 1 and the first entry that does not verify when the chain is broken.
    """
    args = Args("host", "a VM of your cluster (its frontend): MAC or name", min=1, max=1)
    params = (
        Param("airboss-key", "the Airboss's audit public key (PEM file) to check heads with"),
        *AIRBOSS_PARAMS,
    )
    writes = False
    owner = True
    examples = (
        Example(
            "rocks verify audit frontend-0-0-0 key=private.key airboss-key=airboss.pem",
            "Check the whole chain against the pinned key.",
        ),
    )

    def run(self, p: Parsed) -> None:
        import dataclasses

        from cryptography.hazmat.primitives.asymmetric import ed25519

        from flightdeck.cli import owner
        from flightdeck.crypto import auditchain
        from flightdeck.crypto.keys import fingerprint, parse_public_key
        from flightdeck.errors import FlightdeckError, UserError

        client = owner.client(self, p)
        if p["airboss_key"]:
            try:
                with open(p["airboss_key"], "rb") as handle:
                    pem = handle.read(64 * 1024).decode("ascii", "replace")
            except OSError as exc:
                raise UserError(f"cannot read {p['airboss-key']}: {exc.strerror}") from None
        else:
            pem = client.audit_key()["key"]
        key = parse_public_key(pem, name="the Airboss's audit key")
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise UserError("the Airboss's audit key must be Ed25519")
        found = client.audit_chain(owner.target(self, p.args[0]))
        entries = [dataclasses.asdict(e) for e in found.entries]
        cut = dataclasses.asdict(found.checkpoint) if found.checkpoint else None
        problem = auditchain.verify(
            entries, dataclasses.asdict(found.head), key, checkpoint=cut, complete=True
        )
        if problem is not None:
            raise FlightdeckError(f"audit chain {found.head.chain} is broken at {problem}")
        since = f" from checkpoint {found.checkpoint.seq}" if found.checkpoint else ""
        self.say(
            f"audit chain {found.head.chain}: {len(entries)} entries verified{since}, head "
            f"{found.head.seq} signed by {fingerprint(key)}"
        )
