"""rocks list host vlan"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import BOOL, HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "List the cluster VLANs VM containers carry, their clusters, and if present live"
    description = (
        "One row per VLAN with a VM on the container: the device VMs attach to (p<dev>.<vlan>, "
        "or the bridge vlan<N> with kvm_vlan_mode=bridge), the clusters (virtual frontends), "
        "the number of VMs, and whether the device exists live (yes, down, no; '-' when not "
        "looked at: live=no, libvirt's test driver, or a container that did not answer)."
    )
    args = HOSTS
    params = (
        Param("live", "look at the live devices (locally or over ssh)", BOOL, default=True),
        Param("netns", "look in this network namespace of this machine (labs, tests)"),
    )
    writes = False
    examples = (Example("rocks list host vlan vm-container-0-0", "Its VLANs."),)
    records = "one per VLAN a container carries"
    fields = (
        Field("host", "the VM container"),
        Field("vlan", "the VLAN id", "integer"),
        Field("device", "what its VMs attach to: p<dev>.<vlan>, or the bridge vlan<N>"),
        Field(
            "clusters",
            "the virtual frontends of the clusters on that VLAN",
            "list of strings",
            column="cluster",
            sep=",",
        ),
        Field("vms", "how many of its VMs are on that container", "integer"),
        Field(
            "present",
            "whether the device exists live: yes, down or no (null: not looked at)",
            nullable=True,
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.network_read import list_vlans

        rows, notes = list_vlans(self.ctx.db, p.args, live=p["live"], netns=p["netns"])
        t = self.table(keep_owner=True)
        t.extend((r.host, r.vlan, r.device, list(r.clusters), r.vms, r.present) for r in rows)
        self.emit(t)
        for note in notes:
            self.ctx.err.write(f"warning - {note}\n")
