"""Who may act on what: the target string checked alone, resolved once, and the key's scope.

The owner's text is checked on its own first (`api.wire.check_target`, the contract's target
rule: length, characters) before anything reaches the database. `authorise(db, keyid, text)`
then looks it up: exactly one host, by MAC, by its physical-side name, or by its name on the
public network (a virtual frontend's FQDN, `add cluster fe-fqdn=`, or `frontend-0-0-0-public`,
which the guide's `rocks list host macs vi-1.rocksclusters.org` uses) — never a host
expression: no patterns, appliances, racks or IPs. It must be a VM the key covers:

* a key on a virtual frontend covers that frontend and the VMs of its cluster (`cluster_id`);
* a key on any other VM covers that VM;
* nothing else, ever: the physical frontend and the VM containers are not VMs.

The answer is a `Target`: the VM's ids (and its exact name and container, for messages and
per-container limits). Everything after the authorisation works on it; the owner's text is
kept only to be echoed back and logged. Every refusal is `Refused` with a precise reason for
the audit log; the owner is told only that the target is not a VM they may control, so the
Airboss is no oracle for what exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from flightdeck.api.wire import check_target
from flightdeck.db.engine import Database, core_reads
from flightdeck.db.models import VM, Cluster, Host, Interface, Network, PublicKey
from flightdeck.db.prepared import Prepared
from flightdeck.errors import FlightdeckError
from flightdeck.planner.macs import is_mac, normalize_mac


class Refused(FlightdeckError):
    """The key may not act on this target. `reason` is precise, for the audit log only."""

    code = "forbidden"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Q:
    """The statements of the per-request path, built once (building a statement costs more
    than running it on a small table); values are bound at execution."""

    container = aliased(Host)
    _scope = (
        select(PublicKey.host_id, Cluster.id, VM.id)
        .outerjoin(Cluster, Cluster.frontend_id == PublicKey.host_id)
        .outerjoin(VM, VM.host_id == PublicKey.host_id)
        .where(PublicKey.fingerprint == bindparam("keyid"))
    )
    scope = Prepared(_scope)
    #: `scope` with each row's public key: the gate's first read, what verifies the signature
    #: and what the key covers in one statement (`keys_and_scope`).
    keys_and_scope = Prepared(_scope.add_columns(PublicKey.public_key))
    _host = (
        select(Host.id, Host.name, VM.id, VM.cluster_id, container.name)
        .outerjoin(VM, VM.host_id == Host.id)
        .outerjoin(container, container.id == VM.container_id)
    )
    by_name = Prepared(_host.where(Host.name == bindparam("name")).limit(1))
    by_mac = Prepared(
        _host.join(Interface, Interface.host_id == Host.id)
        .where(Interface.mac == bindparam("mac"))
        .limit(1)
    )
    #: A name on the public network (unique: add cluster refuses an fe-fqdn that is taken).
    by_public_name = Prepared(
        _host.join(Interface, Interface.host_id == Host.id)
        .join(Network, Network.id == Interface.network_id)
        .where(Network.name == "public", func.lower(Interface.name) == bindparam("name"))
        .limit(1)
    )


@dataclass(frozen=True)
class KeyScope:
    """What one key covers: the clusters whose frontend holds it, the VMs that hold it."""

    clusters: frozenset[int]
    vms: frozenset[int]

    def covers(self, host_id: int, cluster_id: int | None) -> bool:
        return host_id in self.vms or (cluster_id is not None and cluster_id in self.clusters)


@dataclass(frozen=True)
class Target:
    """A VM a verified key may act on, resolved once: its ids, exact name and container."""

    host_id: int
    cluster_id: int | None
    #: The VM's name (exact, never an expression) and its container's, for messages and the
    #: Airboss's per-container limit.
    name: str
    container: str | None
    #: What the request called it (a MAC or the name), echoed back in answers.
    given: str
    #: Everything else the key covers (a cluster's MAC list shows only those nodes).
    scope: KeyScope


def key_scope(s: Session | Connection, keyid: str) -> KeyScope:
    """What the key covers, in one query."""
    return _scope_of(_Q.scope.execute(s, {"keyid": keyid}).all())


def keys_and_scope(conn: Connection, keyid: str) -> tuple[list[str], KeyScope]:
    """The PEMs registered under `keyid` and what the key covers, in one query: the gate reads
    both at once, in the request's transaction, and authorises with that scope (`authorise_in`)
    later in the same transaction."""
    rows = _Q.keys_and_scope.execute(conn, {"keyid": keyid}).all()
    return list(dict.fromkeys(pem for *_ids, pem in rows)), _scope_of(rows)


def _scope_of(rows: Sequence[Sequence[Any]]) -> KeyScope:
    """A scope from rows that start (host id, cluster id, VM id) of the key's holders."""
    clusters = frozenset(r[1] for r in rows if r[1] is not None)
    vms = frozenset(r[0] for r in rows if r[2] is not None)
    return KeyScope(clusters, vms)


@dataclass(frozen=True)
class _Found:
    host_id: int
    name: str
    is_vm: bool
    cluster_id: int | None
    container: str | None


def _lookup(s: Session | Connection, target: str) -> _Found | None:
    """The one host `target` names exactly (a MAC, else a name), with its VM row, in one query."""
    if is_mac(target):
        row = _Q.by_mac.execute(s, {"mac": normalize_mac(target)}).first()
    else:
        row = _Q.by_name.execute(s, {"name": target}).first()
        if row is None:
            row = _Q.by_public_name.execute(s, {"name": target.lower().rstrip(".")}).first()
    if row is None:
        return None
    hid, name, vm_id, cluster_id, container = row
    return _Found(hid, name, vm_id is not None, cluster_id, container)


def not_yours(target: str, reason: str) -> Refused:
    return Refused(
        reason,
        f"{target} is not a VM your key may control: it must be a VM of the cluster (or the VM) "
        "your key is registered on",
    )


def authorise_in(
    s: Session | Connection, keyid: str, target: str, scope: KeyScope | None = None
) -> Target:
    """`authorise` inside the caller's transaction; `scope`: the key's, read earlier in that
    same transaction (`keys_and_scope`), else read here."""
    check_target(target)
    if scope is None:
        scope = key_scope(s, keyid)
    if not scope.clusters and not scope.vms:
        raise not_yours(target, "key-covers-nothing")
    found = _lookup(s, target)
    if found is None:
        raise not_yours(target, "unknown-target")
    if not found.is_vm:
        raise not_yours(target, f"not-a-vm ({found.name})")
    if not scope.covers(found.host_id, found.cluster_id):
        raise not_yours(target, f"out-of-scope ({found.name})")
    return Target(found.host_id, found.cluster_id, found.name, found.container, target, scope)


def authorise(db: Database, keyid: str, target: str) -> Target:
    """The VM `target` names, if the key `keyid` covers it; `Refused` otherwise."""
    with core_reads(db) as conn:
        return authorise_in(conn, keyid, target)


def recheck(s: Session | Connection, keyid: str, target: Target) -> None:
    """`Refused` unless the key still covers the target's VM, by its id (inside a writing
    transaction: a key removed, or a VM moved, since the authorisation changes nothing)."""
    scope = key_scope(s, keyid)
    if not scope.clusters and not scope.vms:
        raise not_yours(target.given, "key-covers-nothing")
    row = s.execute(select(VM.cluster_id).where(VM.host_id == target.host_id)).first()
    if row is None:
        raise not_yours(target.given, f"unknown-target ({target.name})")
    if not scope.covers(target.host_id, row[0]):
        raise not_yours(target.given, f"out-of-scope ({target.name})")


_HOME = (
    select(Host.id, Host.name, VM.cluster_id, _Q.container.name)
    .join(PublicKey, PublicKey.host_id == Host.id)
    .join(VM, VM.host_id == Host.id)
    .outerjoin(_Q.container, _Q.container.id == VM.container_id)
    .where(PublicKey.fingerprint == bindparam("keyid"))
    .order_by(PublicKey.id)
    .limit(1)
)
_NAMES = select(Interface.mac).where(Interface.host_id == bindparam("host"))


def key_home_in(conn: Connection, keyid: str) -> Target:
    """The VM the key is registered on (its first, if several): the target of an operation
    that names none (`Scope.KEY`, revoking a token). Inside the caller's transaction."""
    row = conn.execute(_HOME, {"keyid": keyid}).first()
    if row is None:
        raise not_yours("(your key)", "key-covers-nothing")
    hid, name, cluster_id, container = row
    return Target(hid, cluster_id, name, container, name, key_scope(conn, keyid))


def target_names_in(conn: Connection, target: Target) -> list[str]:
    """Every name a capability token may restrict the target by: its name and its MACs.
    Inside the caller's transaction."""
    macs = [m for m in conn.scalars(_NAMES, {"host": target.host_id}).all() if m]
    return [target.name, *macs]
