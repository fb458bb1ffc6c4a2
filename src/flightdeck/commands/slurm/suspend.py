"""rocks slurm suspend (pilot slurm suspend): Slurm's SuspendProgram"""

from __future__ import annotations

from typing import ClassVar

from flightdeck.cli.params import Example
from flightdeck.commands.slurm.resume import Command as Resume


class Command(Resume):
    summary = "Slurm's SuspendProgram: power off the nodes of a hostlist through the Airboss"
    description = """
        Slurm's SuspendProgram contract, as slurm resume: one hostlist argument, a line per
        node, a non-zero exit when any failed. The nodes are powered off (hard: Slurm calls
        it once they are idle and drained of jobs). See docs/slurm.md.
    """
    action: ClassVar[str] = "off"
    examples = (
        Example(
            "rocks slurm suspend compute-0-[0-3] token=/etc/slurm/power.token "
            "map=/etc/slurm/nodes.map",
            "What slurmctld runs to power four idle nodes off.",
        ),
    )
