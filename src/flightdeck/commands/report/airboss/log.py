"""rocks report airboss log"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import COUNT, Example, Param, Parsed


class Command(Base):
    summary = "Export the Airboss's audit log as JSON Lines, to archive it before it is pruned"
    description = """
        One JSON object per line, oldest first, every column of the audit log including its
        hash-chain fields (chain, seq, prev, hash), so an archive can be verified as the
        owners verify their chains. older= exports only the rows older than that many days
        (what 'rocks remove airboss log older=' and the Airboss's retention, global attribute
        airboss_audit_days, default 90, would delete). Streams: any size, little memory.
    """
    params = (Param("older", "only rows older than this many days", COUNT),)
    writes = False
    examples = (
        Example(
            "rocks report airboss log older=90",
            "What the retention deletes next, to archive (e.g. piped to gzip into a file).",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.airboss.retention import cutoff, export

        before = None if p["older"] is None else cutoff(p["older"])
        for line in export(self.ctx.db, before):
            self.say(line)
