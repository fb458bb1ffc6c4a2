"""rocks add cluster"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, COUNT, INT, POSITIVE, Example, Param, Parsed
from flightdeck.planner import defaults


class Command(Base):
    summary = "Add a virtual cluster: a virtual frontend and N compute VMs on their own VLAN"
    description = """
        The frontend goes on fe-container (default: this physical frontend) with eth0 on the
        cluster's VLAN and eth1 on the public network with the given IP; computes go round
        robin over container-hosts (default: every kvm-capable physical host that is not a
        frontend), or where the most memory is free with placement=capacity. Everything is
        one transaction: on any error nothing is added.
    """
    params = (
        Param("ip", "public IP of the virtual frontend", required=True, positional=True),
        Param(
            "num-computes",
            "number of compute VMs (may be 0)",
            COUNT,
            required=True,
            positional=True,
        ),
        Param("cpus-per-compute", "vCPUs of each compute", POSITIVE, default=defaults.CPUS),
        Param("mem-per-compute", "memory of each compute, MB", POSITIVE, default=defaults.MEM_MB),
        Param("disk-per-compute", "disk of each compute, GB", POSITIVE, default=defaults.DISK_GB),
        Param("disk-per-frontend", "disk of the frontend, GB", POSITIVE, default=defaults.DISK_GB),
        Param("cpus-per-frontend", "vCPUs of the frontend", POSITIVE, default=defaults.CPUS),
        Param("mem-per-frontend", "memory of the frontend, MB", POSITIVE, default=defaults.MEM_MB),
        Param(
            "container-hosts",
            "space-separated VM containers for the computes",
            default_text="every kvm-capable physical host that is not a frontend",
        ),
        Param("vlan", "VLAN id of the cluster", INT, default_text="lowest free in 2..4094"),
        Param("subnet", "network the cluster VLAN rides on", default="private"),
        Param(
            "gateway",
            "public default gateway of the frontend",
            default_text="Kickstart_PublicGateway",
        ),
        Param("fe-name", "name of the virtual frontend", default_text="frontend-<rack>-<rank>-<n>"),
        Param(
            "fe-fqdn",
            "the virtual frontend's own public name (its hostname once installed)",
            default_text="<fe-name>-public",
        ),
        Param("fe-container", "where the frontend runs", default_text="this physical frontend"),
        Param(
            "cluster-naming", "name computes vm-<fe-name>-<i> (needs fe-name)", BOOL, default=False
        ),
        Param(
            "placement",
            "round-robin or capacity (needs kvm_mem_mb on the containers)",
            default="round-robin",
        ),
        Param("virt-type", "virtualisation type (only hvm)", default="hvm"),
    )
    examples = (
        Example(
            'rocks add cluster ip="137.110.119.118" num-computes=2',
            "The guide's virtual cluster: frontend-0-0-0 and two hosted VMs.",
        ),
        Example(
            "rocks add cluster 10.2.0.5 32 placement=capacity mem-per-compute=2048",
            "32 computes where memory is free.",
        ),
        Example(
            "rocks add cluster 137.110.119.118 2 fe-fqdn=vi-1.rocksclusters.org",
            "The guide's cluster, whose frontend calls itself vi-1.rocksclusters.org.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.cli.progress import Progress
        from flightdeck.planner.cluster import ClusterRequest
        from flightdeck.services.clusters import add_cluster

        req = ClusterRequest(
            ip=p["ip"],
            num_computes=p["num_computes"],
            cpus_per_compute=p["cpus_per_compute"],
            mem_per_compute=p["mem_per_compute"],
            disk_per_compute=p["disk_per_compute"],
            disk_per_frontend=p["disk_per_frontend"],
            cpus_per_frontend=p["cpus_per_frontend"],
            mem_per_frontend=p["mem_per_frontend"],
            container_hosts=(p["container_hosts"] or "").split(),
            vlan=p["vlan"],
            subnet=p["subnet"],
            gateway=p["gateway"],
            fe_name=p["fe_name"],
            fe_fqdn=p["fe_fqdn"],
            fe_container=p["fe_container"],
            cluster_naming=p["cluster_naming"],
            placement=p["placement"],
            virt_type=p["virt_type"],
        )
        bar = Progress(self.ctx.err)
        try:
            made = add_cluster(self.ctx.db, req, bar)
        finally:
            bar.close()
        lines = [f"created frontend VM named: {made.frontend}"]
        lines += [f"\tcreated compute VM named: {name}" for name, _ in made.computes]
        self.ctx.out.write("\n".join(lines) + "\n")
