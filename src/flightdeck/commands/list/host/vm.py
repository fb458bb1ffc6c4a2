"""rocks list host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Cell, Table
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

    def run(self, p: Parsed) -> None:
        from flightdeck.services.vms import list_host_vms

        header = ["vm-host", "slice", "mem", "cpus", "mac", "host", "virt-type"]
        if p["status"]:
            header.append("status")
        if p["showdisks"]:
            header += ["disk", "disksize", "cdrom"]
        t = Table(header, keep_owner=True)
        vms = list_host_vms(self.ctx.db, p.args)
        live: dict[str, str] = {}
        if p["status"]:
            from flightdeck.services.lifecycle import statuses

            live = statuses(self.ctx.db, [v.name for v in vms]) if vms else {}
        for vm in vms:
            n = max(len(vm.macs), len(vm.disks) if p["showdisks"] else 0, 1)
            for i in range(n):
                mac = vm.macs[i] if i < len(vm.macs) else None
                row: list[Cell] = (
                    [vm.name, vm.slice, vm.mem_mb, vm.cpus, mac, vm.container, vm.virt_type]
                    if i == 0
                    else ["", None, None, None, mac, None, None]
                )
                if p["status"]:
                    row.append(live.get(vm.name, "nostate") if i == 0 else None)
                if p["showdisks"]:
                    disk = vm.disks[i] if i < len(vm.disks) else (None, None)
                    row += [disk[0], disk[1], vm.cdrom if i == 0 else None]
                t.add(*row)
        self.emit(t)
