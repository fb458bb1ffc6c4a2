"""rocks sync host network"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, SOME_HOSTS, Example, Param, Parsed
from flightdeck.errors import FlightdeckError


class Command(Base):
    summary = "Write the network files of VM containers and, with apply=yes, apply them live"
    description = (
        "Writes what 'rocks report host network' prints, on each container over ssh (as root, "
        "BatchMode), or on this machine with local=yes (how a container configures itself). "
        "With apply=yes the live devices are brought to the plan through netlink (iproute2 "
        "over ssh): what is missing is created, what differs is fixed, the VLAN interfaces and "
        "bridges of clusters that are gone are removed; nothing else is touched. A step that "
        "fails undoes the steps before it. Prints what changed, or 'no change'."
    )
    args = SOME_HOSTS
    params = (
        Param("apply", "also change the live network (netlink)", BOOL, default=False),
        Param("local", "this machine is the container: write and apply here", BOOL, default=False),
        Param("root", "write the files under this directory instead of /", default_text="/"),
        Param("netns", "with local=yes: apply inside this network namespace (labs, tests)"),
        Param(
            "format",
            "networkd or ifcfg",
            default_text="attribute kvm_network_format, else networkd",
        ),
    )
    examples = (
        Example("rocks sync host network vm-container-0-0", "Write its files over ssh."),
        Example(
            "rocks sync host network vm-container-0-0 local=yes apply=yes",
            "On the container itself (at boot): write the files and apply them live.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.network import sync_network

        results = sync_network(
            self.ctx.db,
            p.args,
            apply=p["apply"],
            local=p["local"],
            root=p["root"],
            netns=p["netns"],
            fmt=p["format"],
        )
        for r in results:
            for w in r.warnings:
                self.ctx.err.write(f"warning - {w}\n")
            if not r.ok:
                self.ctx.err.write(f"error - {r.host}: {r.error}\n")
                continue
            for change in r.changes:
                self.say(f"{r.host}: {change}")
            if not r.changes:
                self.say(f"{r.host}: no change")
        failed = [r.host for r in results if not r.ok]
        if failed:
            raise FlightdeckError(
                f"{len(failed)} of {len(results)} host(s) failed: {', '.join(failed)}"
            )
