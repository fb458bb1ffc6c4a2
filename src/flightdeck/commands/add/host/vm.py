"""rocks add host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import COUNT, POSITIVE, SOME_HOSTS, Example, Param, Parsed
from flightdeck.planner import defaults

HOSTED = ("hosted vm", "hosted-vm")


class Command(Base):
    summary = "Add a VM to the database on each given VM container"
    description = """
        The disk spec is <type>:<absolute path>,<device>,<bus> with type file, raw, qcow2,
        qed or phy (e.g. qcow2:/var/lib/flightdeck/disks/compute-0-0-0.vda,vda,virtio);
        several disks are space-separated with sizes in disksize, in GB.
    """
    args = SOME_HOSTS
    params = (
        Param("membership", "appliance of the VM (Compute, Hosted VM...)", required=True),
        Param("name", "VM name", default_text="<appliance>-<rack>-<rank>-<slice>"),
        Param("mem", "memory, MB", POSITIVE, default=defaults.MEM_MB),
        Param("cpus", "vCPUs", POSITIVE, default=defaults.CPUS),
        Param("slice", "slice number in the name", COUNT, default_text="next free"),
        Param("mac", "MAC of the first NIC", default_text="next VM MAC"),
        Param("num-macs", "number of NICs", POSITIVE, default=1),
        Param("disk", "disk spec(s)", default_text="qcow2 in kvm_disk_dir"),
        Param("disksize", "disk size(s), GB", default_text=str(defaults.DISK_GB)),
        Param("vlan", "VLAN per NIC, comma-separated; none or 0 = untagged"),
        Param("ip", "IP of the first NIC", default_text="next free of subnet (none for Hosted VM)"),
        Param("subnet", "network of the first NIC", default="private"),
    )
    examples = (
        Example(
            'rocks add host vm vm-container-0-0 membership="Compute"',
            "added VM compute-0-0-0 on physical node vm-container-0-0",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.vms import AddVMRequest, add_host_vm

        req = AddVMRequest(
            containers=p.args,
            membership=p["membership"],
            name=p["name"],
            mem_mb=p["mem"],
            cpus=p["cpus"],
            slice=p["slice"],
            mac=p["mac"],
            num_macs=p["num_macs"],
            disk=p["disk"],
            disksize=p["disksize"],
            vlan=p["vlan"],
            ip=p["ip"],
            subnet=p["subnet"],
        )
        added = add_host_vm(self.ctx.db, req)
        for vm, container in added:
            self.say(f"added VM {vm} on physical node {container}")
        if added and not p["vlan"] and p["membership"].strip().lower() in HOSTED:
            self.ctx.err.write(
                "warning - a Hosted VM belongs on a virtual cluster's VLAN: without vlan= its "
                "eth0 is on the private network, untagged, with no address (add vlan=<id> to "
                "put it on a cluster: rocks list host vlan)\n"
            )
