"""rocks set host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import COUNT, ONE_HOST, POSITIVE, Example, Param, Parsed
from flightdeck.errors import UsageError

FIELDS = ("mem", "cpus", "disk", "disksize", "physnode", "slice")


class Command(Base):
    summary = "Change a VM: memory, vCPUs, disks, container (physnode) or slice"
    description = """
        disk= replaces all of the VM's disks (space-separated specs, sizes in disksize=);
        disksize= alone resizes the existing disks in order (0 keeps a size). Changes apply at
        the VM's next start.
    """
    args = ONE_HOST
    params = (
        Param("mem", "memory, MB", POSITIVE),
        Param("cpus", "vCPUs", POSITIVE),
        Param("disk", "disk spec(s), space-separated"),
        Param("disksize", "disk size(s) in GB, space-separated"),
        Param("physnode", "the VM container it runs on"),
        Param("slice", "slice number", COUNT),
    )
    examples = (
        Example("rocks set host vm compute-0-0-0 mem=2048 cpus=2", "A bigger VM."),
        Example(
            "rocks set host vm hosted-vm-0-0-0 physnode=vm-container-0-1", "Re-home a stopped VM."
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.vms import set_host_vm

        if not any(f in p.given for f in FIELDS):
            raise UsageError(f"nothing to change: give one of {', '.join(f + '=' for f in FIELDS)}")
        set_host_vm(
            self.ctx.db,
            p.args[0],
            mem=p["mem"],
            cpus=p["cpus"],
            disk=p["disk"],
            disksize=p["disksize"],
            physnode=p["physnode"],
            slice_=p["slice"],
        )
