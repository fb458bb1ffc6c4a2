"""Remove what an end-to-end test made on the shared libvirtd, and nothing else.

The suite's libvirtd may be running other tests' or the demo's VMs at the same time, so a test
names the domains it made and keeps its volumes in pools under its own tmp directory; this
destroys and undefines exactly those domains (managed-save images too) and deletes exactly
those pools with their volumes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import libvirt


def purge(conn: libvirt.virConnect, domains: Iterable[str], under: Path) -> list[str]:
    """Destroy and undefine `domains`, delete the pools whose directory is below `under`.

    Returns the problems met (a domain or pool that would not go), never raises for them, so
    a teardown always gets through the rest.
    """
    problems: list[str] = []
    for name in sorted(set(domains)):
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            continue  # never defined, or already gone
        try:
            if dom.isActive():
                dom.destroy()
        except libvirt.libvirtError as exc:
            # It may have powered itself off in between (an installer does): only a domain
            # that is still running is a problem; the undefine below goes ahead either way.
            if _still_active(dom):
                problems.append(f"domain {name}: {exc}")
                continue
        try:
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        except libvirt.libvirtError as exc:
            problems.append(f"domain {name}: {exc}")
    prefix = f"{under}/"
    for pool in conn.listAllStoragePools(0):
        try:
            target = pool.XMLDesc(0).split("<path>", 1)[1].split("</path>", 1)[0]
        except (IndexError, libvirt.libvirtError):
            continue
        if not target.startswith(prefix):
            continue
        try:
            if pool.isActive():
                pool.refresh(0)
                for vol in pool.listAllVolumes(0):
                    vol.delete(0)
                pool.destroy()
            pool.undefine()
        except libvirt.libvirtError as exc:
            problems.append(f"pool {pool.name()}: {exc}")
    return problems


def _still_active(dom: libvirt.virDomain) -> bool:
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError:
        return False  # gone altogether
