"""rocks slurm resume (pilot slurm resume): Slurm's ResumeProgram"""

from __future__ import annotations

from typing import ClassVar

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import Args, Example, Param, Parsed


class Command(Base):
    summary = "Slurm's ResumeProgram: power on the nodes of a hostlist through the Airboss"
    description = """
        Follows Slurm's contract: one hostlist argument (compute-0-[0-3]), one line per node
        on standard output, errors on standard error, a non-zero exit when any node failed.
        Slurm's node names are mapped to what the Airboss knows (map= file, else this
        virtual frontend's database, else as given) and powered in parallel. Give it a token
        that can do nothing else (pilot attenuate ops=power.on,power.off); see docs/slurm.md.
    """
    args = Args("hostlist", "the nodes, as Slurm gives them (compute-0-[0-3])", min=1, max=1)
    params = (
        Param("map", "a file of '<slurm node> <MAC or VM name>' lines"),
        *AIRBOSS_PARAMS,
    )
    writes = False
    owner = True
    action: ClassVar[str] = "on"
    examples = (
        Example(
            "rocks slurm resume compute-0-[0-3] token=/etc/slurm/power.token "
            "map=/etc/slurm/nodes.map",
            "What slurmctld runs to wake four nodes (through a wrapper script).",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.cli import owner
        from flightdeck.pilot import commands as c
        from flightdeck.pilot.hostlist import expand
        from flightdeck.pilot.slurm import read_map

        nodes = expand(p.args[0])
        client = owner.client(self, p)
        if p["map"] is not None:
            mapping = read_map(p["map"])
            sent = [mapping.get(n, n) for n in nodes]
            names = {m: n for n, m in zip(nodes, sent, strict=True) if m != n}
        else:
            sent, names = owner.targets(self, nodes)
        results = c.power_many(client, sent, self.action, workers=32, names=names)
        # Slurm's log names its node first: "compute-0-0 = hosted-vm-0-0-0 (<MAC>): started ..."
        shown = [
            c.Result(r.target, f"{node} = {r.host or r.target}", r.ok, r.message)
            for node, r in zip(nodes, results, strict=True)
        ]
        c.report(shown, self.say, self.ctx.warn)
