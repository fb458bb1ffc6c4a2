"""rocks list host boot"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import HOSTS, Example, Parsed


class Command(Base):
    summary = "List what each host does at its next boot (install or os)"
    args = HOSTS
    writes = False
    examples = (Example("rocks list host boot", "Every host's boot action."),)
    records = "one per host"
    fields = (
        Field("host", "the host"),
        Field("action", "its next boot: install, os or run", nullable=True),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_boot

        t = self.table(keep_owner=True)
        t.extend(list_boot(self.ctx.db, p.args))
        self.emit(t)
