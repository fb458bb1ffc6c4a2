"""rocks list host attr"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "List the attributes that apply to hosts, resolved host > appliance > global"
    args = HOSTS
    params = (Param("attr", "only this attribute"),)
    writes = False
    examples = (Example("rocks list host attr vm-container-0-0", "What a container sees."),)
    records = "one per attribute that applies to a host"
    fields = (
        Field("host", "the host"),
        Field("attr", "the attribute's name"),
        Field("value", "the value that applies, exactly as it was set"),
        Field("source", "where the value comes from: H host, A appliance, G global"),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_host_attrs

        t = self.table(keep_owner=True)
        t.extend(list_host_attrs(self.ctx.db, p.args, p["attr"]))
        self.emit(t)
