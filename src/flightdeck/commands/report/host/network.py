"""rocks report host network"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Print the network files of VM containers: systemd-networkd units or RHEL ifcfg"
    description = (
        "The Rocks scheme (the guide, section 3.6): each Ethernet interface renamed p<dev>, a "
        "bridge <dev> carrying its IP, an 802.1Q interface p<dev>.<vlan> for each cluster VLAN "
        "with a VM on the container. A line '# file <path>' starts each file; '# remove <path>' "
        "names a file that must not exist. Nothing is written: see 'rocks sync host network'."
    )
    args = SOME_HOSTS
    params = (
        Param(
            "format",
            "networkd (systemd-networkd .link/.netdev/.network units) or ifcfg (RHEL, as the "
            "original wrote them)",
            default_text="attribute kvm_network_format, else networkd",
        ),
    )
    writes = False
    examples = (
        Example("rocks report host network vm-container-0-0", "Its systemd-networkd units."),
        Example(
            "rocks report host network vm-container-0-0 format=ifcfg",
            "Its ifcfg files, modprobe aliases and VLAN bring-up lines, as the original's.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.network import report_network

        reports = report_network(self.ctx.db, p.args, p["format"])
        for host, text, problems in reports:
            if len(reports) > 1:
                self.say(f"# host {host}")
            self.ctx.out.write(text)
            for problem in problems:
                self.ctx.err.write(f"warning - {problem}\n")
