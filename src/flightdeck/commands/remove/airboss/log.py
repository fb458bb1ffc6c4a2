"""rocks remove airboss log"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import COUNT, Example, Param, Parsed


class Command(Base):
    summary = "Delete the Airboss's audit rows older than some days (export them first)"
    description = """
        Deletes the audit rows decided more than older= days ago, in batches. The running
        Airboss does the same about once an hour for the global attribute airboss_audit_days
        (default 90; 0 keeps everything). Export first with 'rocks report airboss log
        older=<days>'. The owners' hash chains stay verifiable from what is left (each
        entry names its predecessor's hash; the chain heads are kept).
    """
    params = (Param("older", "delete rows older than this many days", COUNT, required=True),)
    examples = (
        Example(
            "rocks remove airboss log older=30",
            "Prune everything older than 30 days (after 'rocks report airboss log older=30').",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.airboss.retention import cutoff, prune

        removed = prune(self.ctx.db, cutoff(p["older"]))
        self.say(f"removed {removed} audit row(s) older than {p['older']} day(s)")
