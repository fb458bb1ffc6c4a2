"""rocks set host"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import COUNT, POSITIVE, SOME_HOSTS, Example, Param, Parsed
from flightdeck.errors import UsageError

FIELDS = ("membership", "rack", "rank", "cpus", "os", "comment", "name")


class Command(Base):
    summary = "Change hosts' membership, rack, rank, CPUs, OS, comment or name"
    args = SOME_HOSTS
    params = (
        Param("membership", "appliance or membership"),
        Param("rack", "rack number", COUNT),
        Param("rank", "rank in the rack", COUNT),
        Param("cpus", "number of CPUs (a VM's vCPUs)", POSITIVE),
        Param("os", "operating system"),
        Param("comment", "free text"),
        Param("name", "new name (one host only)"),
    )
    examples = (Example("rocks set host compute-0-0-0 cpus=4", "Four vCPUs from the next start."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.inventory import set_hosts

        changes = {f: p[f] for f in FIELDS if f in p.given}
        if not changes:
            raise UsageError(f"nothing to change: give one of {', '.join(f + '=' for f in FIELDS)}")
        set_hosts(self.ctx.db, p.args, changes)
