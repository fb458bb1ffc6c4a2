"""`rocks report cluster`: a virtual cluster as the spec that `rocks apply cluster` reads.

Applying the printed spec to the same database changes nothing: every fact it prints is one
`apply` compares, and what it leaves out (a compute's CPUs equal to the computes' default, a
disk that is the default disk of that size) is what `apply` would give anyway.

The frontend is printed in full. The computes are printed as the defaults most of them share
(`cpus`, `memory`, `disk`, the containers in the order they were filled, the naming) and one
line per node with its name, container and what differs from those defaults.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import resolve_host
from flightdeck.errors import UserError
from flightdeck.planner.cluster import COMPUTE_INSTALL, FRONTEND_INSTALL
from flightdeck.planner.disks import DiskSpec, default_disk
from flightdeck.planner.names import cluster_compute_name
from flightdeck.services.base import reading
from flightdeck.services.spec import model as m
from flightdeck.services.spec.state import ClusterState, VMState, cluster_of, load

#: What a new compute gets (`add cluster`): boot action, install and run actions.
COMPUTE_BOOT = ("install", COMPUTE_INSTALL, "none")
FRONTEND_BOOT = ("install", FRONTEND_INSTALL, "os")


def plugin_attributes(plugins: Sequence[Any] | None = None) -> dict[str, str]:
    """Attribute name -> the plugin that declares it (a plugin's `attributes`, optional)."""
    if plugins is None:
        from flightdeck.services import plugins as plug

        plugins = plug.discover()
    out: dict[str, str] = {}
    for p in plugins:
        for name in getattr(p, "attributes", ()) or ():
            out.setdefault(str(name), str(getattr(p, "name", type(p).__name__)))
    return out


def _split_attrs(
    attrs: Mapping[str, str], declared: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    plain: dict[str, str] = {}
    by_plugin: dict[str, dict[str, str]] = {}
    for name, value in attrs.items():
        owner = declared.get(name)
        if owner is None:
            plain[name] = value
        else:
            by_plugin.setdefault(owner, {})[name] = value
    return plain, by_plugin


def _keys(v: VMState) -> tuple[m.KeyItem, ...]:
    from flightdeck.crypto import keys as ck

    out = []
    for k in v.keys:
        try:
            text = ck.public_key_to_openssh(ck.parse_public_key(k.pem))
        except UserError:
            text = k.pem  # as stored; apply reads the same spelling
        out.append(m.KeyItem(text, k.description))
    return tuple(out)


def disk_dir_of(v: VMState, dirs: Mapping[int, str]) -> str:
    return dirs[v.container.id] if v.container is not None else ""


def default_size(v: VMState, disk_dir: str) -> int | None:
    """The size of `v`'s disk when it is exactly the default disk a new VM there gets."""
    if len(v.disks) != 1:
        return None
    d = v.disks[0]
    for fmt in ("qcow2", "raw"):
        if d == default_disk(v.name, disk_dir, d.size_gb, fmt):
            return d.size_gb
    return None


def _disks(disks: Sequence[DiskSpec]) -> tuple[m.DiskItem, ...]:
    return tuple(m.DiskItem(d.format(), d.size_gb) for d in disks)


def _vm_item(
    v: VMState,
    disk_dir: str,
    declared: Mapping[str, str],
    *,
    cpus: int | None,
    memory: int | None,
    disk: int | None,
    boot: tuple[str, str, str] | None,
    path: m.Path = (),
) -> dict[str, Any]:
    """The fields of one VM that differ from the defaults given (None: always printed)."""
    out: dict[str, Any] = {"name": v.name, "path": path}
    if v.container is not None:
        out["container"] = v.container.name
    if cpus is None or v.host.cpus != cpus:
        out["cpus"] = v.host.cpus
    if memory is None or v.vm.mem_mb != memory:
        out["memory"] = v.vm.mem_mb
    size = default_size(v, disk_dir)
    if size is None:
        out["disks"] = _disks(v.disks)
    elif disk is None or size != disk:
        out["disk"] = size
    actual = (v.boot or "os", v.host.install_action, v.host.run_action)
    for key, value, default in zip(
        ("boot", "install_action", "run_action"), actual, boot or (None, None, None), strict=True
    ):
        if value != default:
            out[key] = value
    if v.vm.cdrom_path:
        out["cdrom"], out["cdrom_given"] = v.vm.cdrom_path, True
    plain, by_plugin = _split_attrs(v.attributes, declared)
    if plain:
        out["attributes"] = plain
    if by_plugin:
        out["plugins"] = by_plugin
    if v.keys:
        out["keys"] = _keys(v)
    return out


def _mode(values: Sequence[Any]) -> Any:
    return Counter(values).most_common(1)[0][0] if values else None


def spec_of(
    st: ClusterState, dirs: Mapping[int, str], declared: Mapping[str, str]
) -> m.ClusterSpec:
    fe = st.frontend
    fe_dir = disk_dir_of(fe, dirs)
    front = _vm_item(
        fe, fe_dir, declared, cpus=None, memory=None, disk=None, boot=None, path=("frontend",)
    )
    public_name = st.public.name if st.public is not None else None
    fqdn = public_name if public_name and public_name != f"{fe.name}-public" else None
    frontend = m.FrontendItem(
        ip=st.public.ip if st.public is not None and st.public.ip else "",
        fqdn=fqdn,
        gateway=st.gateway,
        **front,
    )
    nodes = st.computes
    cpus = _mode([v.host.cpus for v in nodes])
    memory = _mode([v.vm.mem_mb for v in nodes])
    sizes = [default_size(v, disk_dir_of(v, dirs)) for v in nodes]
    disk = _mode([s for s in sizes if s is not None])
    containers: list[str] = []
    for v in nodes:
        if v.container is not None and v.container.name not in containers:
            containers.append(v.container.name)
    naming = None
    if nodes and all(v.name == cluster_compute_name(fe.name, i) for i, v in enumerate(nodes)):
        naming = "cluster"
    items = tuple(
        m.VMItem(
            **_vm_item(
                v,
                disk_dir_of(v, dirs),
                declared,
                cpus=cpus,
                memory=memory,
                disk=disk,
                boot=COMPUTE_BOOT,
                path=("computes", "nodes", i),
            )
        )
        for i, v in enumerate(nodes)
    )
    computes = m.ComputesItem(
        nodes=items,
        cpus=cpus,
        memory=memory,
        disk=disk,
        containers=tuple(containers) if containers else None,
        naming=naming,
    )
    network = st.network.name if st.network.name != "private" else None
    return m.ClusterSpec(frontend, st.cluster.vlan, network, computes)


def report_cluster(db: Database, expr: str) -> m.ClusterSpec:
    """The cluster of virtual frontend `expr` as a spec."""
    from flightdeck.services.allocation import disk_dirs

    declared = plugin_attributes()
    with reading(db) as s:
        fe = resolve_host(s, expr)
        cluster = cluster_of(s, fe)
        if cluster is None:
            raise UserError(f"host {fe.name} is not a virtual frontend")
        st = load(s, cluster)
        boxes = {v.container.id: v.container for v in st.vms if v.container is not None}
        dirs = disk_dirs(s, list(boxes.values()))
        return spec_of(st, dirs, declared)
