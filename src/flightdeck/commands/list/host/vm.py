"""rocks list host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Cell, Field
from flightdeck.cli.params import BOOL, HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "List VMs: container, slice, memory, vCPUs, MACs (and disks, live status)"
    args = HOSTS
    params = (
        Param("showdisks", "add DISK, DISKSIZE and CDROM columns", BOOL, default=False),
        Param("status", "add the live STATUS of each VM", BOOL, default=False),
    )
    writes = False
    examples = (Example("rocks list host vm showdisks=y", "Every VM with its disks."),)
    records = "one per VM (the table gives each further MAC and disk a row of its own)"
    fields = (
        Field("vm_host", "the VM's name", column="vm-host"),
        Field("slice", "its slice (the last number of its name)", "integer"),
        Field("mem", "its memory, MB", "integer"),
        Field("cpus", "its vCPUs", "integer"),
        Field("macs", "its MACs, eth0 first", "list of strings", column="mac", continued=True),
        Field("host", "the VM container it runs on", nullable=True),
        Field("virt_type", "hvm, as the original", column="virt-type"),
        Field("status", "its live state (active, shutoff, nostate...)", when="status"),
        Field(
            "disks",
            "its disk specs, <type>:<path>,<device>,<bus>",
            "list of strings",
            column="disk",
            continued=True,
            when="showdisks",
        ),
        Field(
            "disk_sizes",
            "the size of each disk, GB",
            "list of integers",
            column="disksize",
            continued=True,
            when="showdisks",
        ),
        Field("cdrom", "the CD-ROM image attached", nullable=True, when="showdisks"),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_host_vms

        t = self.table(keep_owner=True)
        vms = list_host_vms(self.ctx.db, p.args)
        live: dict[str, str] = {}
        if p["status"]:
            from flightdeck.services.vm_status import statuses

            live = statuses(self.ctx.db, [v.name for v in vms]) if vms else {}
        for vm in vms:
            row: list[Cell] = [
                vm.name,
                vm.slice,
                vm.mem_mb,
                vm.cpus,
                list(vm.macs),
                vm.container,
                vm.virt_type,
            ]
            if p["status"]:
                row.append(live.get(vm.name, "nostate"))
            if p["showdisks"]:
                row += [[d[0] for d in vm.disks], [d[1] for d in vm.disks], vm.cdrom]
            t.add(*row)
        self.emit(t)
