"""rocks report host vm config"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Parsed


class Command(Base):
    summary = "Print the libvirt domain XML of VMs, as the next start would define it"
    args = SOME_HOSTS
    writes = False
    examples = (Example("rocks report host vm config compute-0-0-0", "Its domain XML."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import domain_xml

        docs, warnings = domain_xml(self.ctx.db, p.args)
        for warning in warnings:
            self.ctx.err.write(f"warning - {warning}\n")
        for name, xml in docs:
            if len(docs) > 1:
                self.say(f"<!-- {name} -->")
            self.ctx.out.write(xml)
