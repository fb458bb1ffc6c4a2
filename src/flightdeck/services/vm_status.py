"""Live VM status, read on SQLAlchemy Core: each container asked once, containers in parallel.

Why a module of its own: `rocks list host vm status=y`, `list cluster status=y` and `list host
macs status=yes` read a few columns, then ask libvirt; importing the ORM and the mapped classes
for that cost each process ~130 ms (the listings themselves read Core, `services.listings`).
The reads here name `db/tables.py` tables; `services.lifecycle` re-exports what it used to hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select

from flightdeck.attrsubject import Subject, subject
from flightdeck.db import attrcore, tables
from flightdeck.db.engine import Database
from flightdeck.errors import UserError
from flightdeck.services.base import reading_core
from flightdeck.services.network_read import container_uri
from flightdeck.virt import hypervisor as hv

#: Names up to which the VMs asked for are selected with an `IN` list (SQLite's bound-parameter
#: cap); beyond, every VM row is read and filtered here.
_FEW_NAMES = 5000


def check_connect_timeout(value: str | None, who: str | Subject) -> float:
    """`kvm_connect_timeout`: seconds to wait for a container's libvirt (default 10)."""
    if value is None or not value.strip():
        return hv.DEFAULT_CONNECT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(
            f"{subject(who).attr('kvm_connect_timeout')} is {value!r}: give seconds, e.g. 10"
        )
    return seconds


def statuses(db: Database, names: Sequence[str] | None = None) -> dict[str, str]:
    """Live status of the VMs named exactly (all VMs when None): one listing per container,
    containers in parallel; a container that does not answer gives `nostate-error`, a VM on
    no container too. A running virtual frontend is `installing` while its boot action is
    `install`, `ready` once its guest agent answers (its image starts the agent last)."""
    h, v, c, b = tables.hosts.c, tables.vms.c, tables.clusters.c, tables.host_boot.c
    wanted = None if names is None else set(names)
    with reading_core(db) as conn:
        q = (
            select(h.name, v.container_id, c.id, b.action)
            .join_from(tables.hosts, tables.vms, v.host_id == h.id)
            .outerjoin(tables.clusters, c.frontend_id == h.id)
            .outerjoin(tables.host_boot, b.host_id == h.id)
        )
        if wanted is not None and len(wanted) <= _FEW_NAMES:
            q = q.where(h.name.in_(sorted(wanted)))
        rows = [row for row in conn.execute(q).tuples() if wanted is None or row[0] in wanted]
        boxes = attrcore.resolve_hosts(conn, sorted({row[1] for row in rows if row[1]}))
    uris: dict[int, str] = {}
    timeouts: dict[int, float] = {}
    for cid, (cname, resolved) in boxes.items():
        values = attrcore.values(resolved)
        uris[cid] = container_uri(cname, values)
        timeouts[cid] = check_connect_timeout(values.get("kvm_connect_timeout"), cname)
    result: dict[str, str] = {}
    by_container: dict[int, list[str]] = {}
    #: Virtual frontends: name -> whether its boot action is install.
    fronts: dict[str, bool] = {}
    for name, cid, cluster, action in rows:
        if cluster is not None:
            fronts[name] = action == "install"
        if cid is None or cid not in boxes:
            result[name] = hv.STATUS_ERROR
        else:
            by_container.setdefault(cid, []).append(name)

    def listing(cid: int) -> Callable[[], dict[str, str]]:
        def states() -> dict[str, str]:
            conn = hv.connect(boxes[cid][0], uris[cid], timeouts[cid])
            found = conn.states()
            for name in by_container[cid]:
                if name in fronts and found.get(name) == "active":
                    if fronts[name]:
                        found[name] = "installing"
                    elif conn.agent_answers(name):
                        found[name] = "ready"
            return found

        return states

    timeout = max(timeouts.values(), default=hv.DEFAULT_CONNECT_TIMEOUT) + 5
    jobs = {str(cid): listing(cid) for cid in by_container}
    for key, states in hv.parallel(jobs, timeout=timeout, workers=32).items():
        for name in by_container[int(key)]:
            if isinstance(states, BaseException):
                result[name] = hv.STATUS_ERROR
            else:
                result[name] = states.get(name, "nostate")
    return result
