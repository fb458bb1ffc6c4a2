"""What the Airboss does for an owner, once their request's signature has verified.

Everything here is synchronous and short; the daemon (`flightdeck.airboss`) runs it in worker
threads. The order of a request is fixed by the daemon, and this module provides its steps:

1. `public_keys(keyid)` and `record_nonce(...)`: the two database touches signature
   verification needs (the registered keys with that fingerprint; the replay cache).
2. `check_target(text)`: the target string is validated on its own — length, characters —
   before anything reaches the database. Only then `authorise(keyid, target)` looks it up:
   exactly one host, by MAC or by its physical-side name (never a host expression: no
   patterns, appliances, racks or IPs), which must be a VM the key covers:
   * a key on a virtual frontend covers that frontend and the VMs of its cluster (`cluster_id`);
   * a key on any other VM covers that VM;
   * nothing else, ever: the physical frontend and the VM containers are not VMs.
   Every refusal is `Refused` with a precise reason for the audit log; the owner is told only
   that the target is not a VM they may control, so the Airboss is no oracle for what exists.
3. The operation: `power`, `cluster_nodes`, `iso_images`, `set_iso`; for a console,
   `console_place` (where the VM runs and where its VNC server can be reached), then
   `vnc_endpoint` or `open_serial` (libvirt) for the relay in `flightdeck.airboss.console`.
4. `audit(...)`: one row per request, whatever the outcome.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import posixpath
import re
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from flightdeck.crypto import keys as ck
from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import host_order
from flightdeck.db.models import VM, AuditEntry, Cluster, Host, Interface, Nonce, PublicKey
from flightdeck.errors import FlightdeckError, UserError
from flightdeck.planner.macs import is_mac, normalize_mac
from flightdeck.services.base import reading

if TYPE_CHECKING:
    from flightdeck.virt.console import SerialStream

#: The power actions an owner may ask for.
POWER_ACTIONS = ("on", "off", "install", "reset", "shutdown")
#: Longest target accepted (a host name's limit); anything longer never reaches the database.
MAX_TARGET = 253
_TARGET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
#: Longest CD-ROM image name accepted (a file name's limit on Linux).
MAX_ISO_NAME = 255
#: The consoles an owner may open: the VM's VNC screen (RFB) or its first serial port.
CONSOLE_KINDS = ("vnc", "serial")


class InvalidTarget(UserError):
    """The target string is not a MAC or a host name (checked before any lookup)."""

    code = "invalid-target"


class Refused(FlightdeckError):
    """The key may not act on this target. `reason` is precise, for the audit log only."""

    code = "forbidden"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ActionFailed(FlightdeckError):
    """The operation was allowed but did not succeed (already running, container down...)."""

    code = "action-failed"


@contextlib.contextmanager
def _read(db: Database) -> Iterator[Connection]:
    """A read-only transaction on a bare connection: the per-request reads are a few columns
    each, and an ORM session would cost more than the queries themselves."""
    with db.engine.connect() as conn, conn.begin():
        yield conn


class _Q:
    """The statements of the per-request path, built once (building a statement costs more
    than running it on a small table); values are bound at execution."""

    container = aliased(Host)
    keys = select(PublicKey.public_key).where(PublicKey.fingerprint == bindparam("keyid"))
    insert_nonce = insert(Nonce)
    insert_audit = insert(AuditEntry)
    scope = (
        select(PublicKey.host_id, Cluster.id, VM.id)
        .outerjoin(Cluster, Cluster.frontend_id == PublicKey.host_id)
        .outerjoin(VM, VM.host_id == PublicKey.host_id)
        .where(PublicKey.fingerprint == bindparam("keyid"))
    )
    _host = (
        select(Host.id, Host.name, VM.id, VM.cluster_id, container.name)
        .outerjoin(VM, VM.host_id == Host.id)
        .outerjoin(container, container.id == VM.container_id)
    )
    by_name = _host.where(Host.name == bindparam("name")).limit(1)
    by_mac = (
        _host.join(Interface, Interface.host_id == Host.id)
        .where(Interface.mac == bindparam("mac"))
        .limit(1)
    )
    cluster = select(Cluster.frontend_id, Cluster.vlan).where(Cluster.id == bindparam("cid"))
    _in_cluster = (VM.cluster_id == bindparam("cid")) | (Host.id == bindparam("fe"))
    members = (
        select(Host.id, Host.name)
        .outerjoin(VM, VM.host_id == Host.id)
        .where(_in_cluster)
        .order_by(*host_order())
    )
    cluster_macs = (
        select(Interface.host_id, Interface.mac)
        .join(Host, Host.id == Interface.host_id)
        .outerjoin(VM, VM.host_id == Host.id)
        .where(_in_cluster, Interface.vlan == bindparam("vlan"), Interface.mac.is_not(None))
        .order_by(Interface.device)
    )
    host_macs = (
        select(Interface.host_id, Interface.mac)
        .where(Interface.host_id == bindparam("host"), Interface.mac.is_not(None))
        .order_by(Interface.device)
    )


# Keys and nonces (signature verification) ------------------------------------------------------

_parsed: dict[str, ck.PublicKey] = {}
_parsed_lock = threading.Lock()


def _parse_cached(pem: str) -> ck.PublicKey | None:
    """A stored PEM, parsed once per process (the lookup itself is never cached)."""
    with _parsed_lock:
        key = _parsed.get(pem)
    if key is None:
        try:
            key = ck.parse_public_key(pem)
        except UserError:
            return None  # a row written by hand that is not a usable key: it verifies nothing
        with _parsed_lock:
            if len(_parsed) > 10_000:
                _parsed.clear()
            _parsed[pem] = key
    return key


def public_keys(db: Database, keyid: str) -> list[ck.PublicKey]:
    """The registered public keys whose fingerprint is `keyid`, read afresh on every request.

    Not cached: a key removed with `rocks remove host key` is refused from the next request on.
    """
    with _read(db) as conn:
        pems = conn.scalars(_Q.keys, {"keyid": keyid}).all()
    return [k for k in (_parse_cached(p) for p in pems) if k is not None]


def record_nonce(db: Database, keyid: str, nonce: str, keep_until: int) -> bool:
    """Record a signature's nonce; True when it was recorded before (a replay).

    The insert is its own committed transaction and (keyid, nonce) is the primary key, so of
    two concurrent copies of one request exactly one inserts and the other gets the integrity
    error: the database decides the race, in this process or another Airboss on the same
    database. It is a plain transaction, not `writing()`, on purpose: on PostgreSQL that takes
    the site-wide write lock, and a long `rocks add cluster` must not stall every owner.
    """
    try:
        with db.engine.begin() as conn:
            conn.execute(_Q.insert_nonce, {"keyid": keyid, "nonce": nonce, "expires": keep_until})
    except IntegrityError:
        return True
    return False


def purge_nonces(db: Database, now: int) -> int:
    """Forget the nonces of signatures that can no longer be accepted; how many were dropped."""
    with db.engine.begin() as conn:
        result = conn.execute(delete(Nonce).where(Nonce.expires < now))
    return int(result.rowcount or 0)


# Targets and authorisation ----------------------------------------------------------------------


def check_target(text: object) -> str:
    """`text` if it can be a MAC or a host name; `InvalidTarget` otherwise (no lookup done)."""
    if not isinstance(text, str) or not text:
        raise InvalidTarget("target must be a MAC address or a host name")
    if len(text) > MAX_TARGET:
        raise InvalidTarget(f"target is {len(text)} characters long: at most {MAX_TARGET}")
    if not _TARGET_RE.fullmatch(text):
        raise InvalidTarget(
            "target must be a MAC address or a host name (letters, digits, '.', '-', '_', ':')"
        )
    return text


@dataclass(frozen=True)
class Target:
    """A VM a verified key may act on: its physical-side name and where it runs."""

    name: str
    host_id: int
    cluster_id: int | None
    container: str | None
    #: What the request called it (a MAC or the name), for messages.
    given: str


@dataclass(frozen=True)
class _Scope:
    clusters: frozenset[int]
    vms: frozenset[int]

    def covers(self, host_id: int, cluster_id: int | None) -> bool:
        return host_id in self.vms or (cluster_id is not None and cluster_id in self.clusters)


def _scope(s: Session | Connection, keyid: str) -> _Scope:
    """What the key covers, in one query: the clusters it fronts and the VMs it sits on."""
    rows = s.execute(_Q.scope, {"keyid": keyid}).all()
    clusters = frozenset(cid for _h, cid, _v in rows if cid is not None)
    vms = frozenset(hid for hid, _c, vid in rows if vid is not None)
    return _Scope(clusters, vms)


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
        row = s.execute(_Q.by_mac, {"mac": normalize_mac(target)}).first()
    else:
        row = s.execute(_Q.by_name, {"name": target}).first()
    if row is None:
        return None
    hid, name, vm_id, cluster_id, container = row
    return _Found(hid, name, vm_id is not None, cluster_id, container)


def _not_yours(target: str, reason: str) -> Refused:
    return Refused(
        reason,
        f"{target} is not a VM your key may control: it must be a VM of the cluster (or the VM) "
        "your key is registered on",
    )


def _authorise(s: Session | Connection, keyid: str, target: str) -> tuple[Target, _Scope]:
    check_target(target)
    scope = _scope(s, keyid)
    if not scope.clusters and not scope.vms:
        raise _not_yours(target, "key-covers-nothing")
    found = _lookup(s, target)
    if found is None:
        raise _not_yours(target, "unknown-target")
    if not found.is_vm:
        raise _not_yours(target, f"not-a-vm ({found.name})")
    if not scope.covers(found.host_id, found.cluster_id):
        raise _not_yours(target, f"out-of-scope ({found.name})")
    return Target(found.name, found.host_id, found.cluster_id, found.container, target), scope


def authorise(db: Database, keyid: str, target: str) -> Target:
    """The VM `target` names, if the key `keyid` covers it; `Refused` otherwise."""
    with _read(db) as conn:
        return _authorise(conn, keyid, target)[0]


# Operations -------------------------------------------------------------------------------------


def _one(results: Sequence[object]) -> str:
    (outcome,) = results
    if not getattr(outcome, "ok", False):
        raise ActionFailed(str(getattr(outcome, "message", "the operation failed")))
    return str(getattr(outcome, "message", ""))


def power(db: Database, target: Target, action: str) -> str:
    """Power a VM on, off (hard), install (boot action install, then on), reset or shutdown."""
    from flightdeck.db.hostexpr import HostIds
    from flightdeck.services import lifecycle
    from flightdeck.services.bootactions import set_host_boot

    names = HostIds.of(target.host_id)  # resolved once, by the authorisation: never re-read
    if action == "on":
        return _one(lifecycle.start_vms(db, names))
    if action == "off":
        return _one(lifecycle.stop_vms(db, names))
    if action == "install":
        set_host_boot(db, names, "install")  # refused if its kernel is missing here
        return _one(lifecycle.start_vms(db, names))
    if action == "reset":
        return _one(lifecycle.reset_vms(db, names))
    if action == "shutdown":
        return _one(lifecycle.shutdown_vms(db, names))
    raise UserError(f"action {action!r} is not one of {', '.join(POWER_ACTIONS)}")


@dataclass(frozen=True)
class Node:
    """One line of `list host macs`: a node's MACs on its cluster's VLAN and its name."""

    name: str
    macs: list[str]
    frontend: bool
    status: str | None = None


def _nodes(conn: Connection, scope: _Scope, target: Target) -> list[Node]:
    if target.cluster_id is None:
        hosts = [(target.host_id, target.name, False)]
        found = conn.execute(_Q.host_macs, {"host": target.host_id}).all()
    else:
        fe_id, vlan = conn.execute(_Q.cluster, {"cid": target.cluster_id}).one()
        params = {"cid": target.cluster_id, "fe": fe_id, "vlan": vlan}
        members = conn.execute(_Q.members, params).all()
        ordered = sorted(members, key=lambda m: m[0] != fe_id)  # the frontend first
        hosts = [(hid, name, hid == fe_id) for hid, name in ordered]
        found = conn.execute(_Q.cluster_macs, params).all()
    macs: dict[int, list[str]] = {}
    for hid, mac in found:
        macs.setdefault(hid, []).append(mac)
    return [
        Node(name, macs.get(hid, []), fe)
        for hid, name, fe in hosts
        if scope.covers(hid, target.cluster_id)
    ]


def cluster_nodes(db: Database, keyid: str, target: str) -> tuple[Target, list[Node]]:
    """The target VM, and the nodes of its cluster that the key covers, frontend first.

    One read transaction for the authorisation and the listing. MACs are those on the
    cluster's VLAN, so a frontend's public NIC is not listed (as the original); a VM outside
    any cluster lists all of its MACs. `Refused` when the key does not cover the target.
    """
    with _read(db) as conn:
        found, scope = _authorise(conn, keyid, target)
        return found, _nodes(conn, scope, found)


def with_states(db: Database, nodes: list[Node]) -> list[Node]:
    """The same nodes with their live state (one libvirt listing per container, in parallel)."""
    from flightdeck.services.lifecycle import statuses

    states = statuses(db, [n.name for n in nodes])
    return [dataclasses.replace(n, status=states.get(n.name, "nostate")) for n in nodes]


@dataclass(frozen=True)
class IsoPlace:
    """Where a VM's CD-ROM images come from: its container and that container's ISO directory."""

    container: str
    uri: str
    directory: str


def iso_place(db: Database, target: Target) -> IsoPlace:
    """The container and `kvm_iso_dir` of the target VM (an error when either is missing)."""
    from flightdeck.services.domains import container_uris

    with reading(db) as s:
        vm = s.scalar(select(VM).where(VM.host_id == target.host_id))
        if vm is None or vm.container is None:
            raise ActionFailed(f"{target.name} has no container: ask the administrator")
        directory = attrs.resolve(s, vm.container, "kvm_iso_dir")
        if not directory or not posixpath.isabs(directory):
            raise ActionFailed(
                f"no ISO directory is configured for {target.name}'s container: ask the "
                "administrator to set the kvm_iso_dir attribute"
            )
        uri = container_uris(s, [vm.container])[vm.container.id]
        return IsoPlace(vm.container.name, uri, posixpath.normpath(directory))


def _catalogue(place: IsoPlace) -> dict[str, str]:
    from flightdeck.virt import hypervisor as hv
    from flightdeck.virt.isos import iso_catalogue

    conn = hv.connect(place.container, place.uri)
    return iso_catalogue(conn, place.directory)


def iso_images(db: Database, target: Target) -> list[str]:
    """The names of the images the target VM's CD-ROM may hold."""
    return sorted(_catalogue(iso_place(db, target)))


def iso_name(text: str, directory: str) -> str:
    """The image file name `text` asks for, relative to the ISO `directory`; `UserError` else.

    Accepted: a bare file name (`debian-12.iso`) or an absolute path directly in the directory.
    Refused: `..` or `.`, other directories, subdirectories, control characters, names that
    start with `-` or are longer than a file name can be.
    """
    if not text or len(text) > 1024 or any(not c.isprintable() for c in text):
        raise UserError("cdrom must be the name of an image in the ISO directory, or none")
    name = text
    if text.startswith("/"):
        if ".." in text.split("/"):
            raise UserError("cdrom may not contain '..'")
        parent, name = posixpath.split(posixpath.normpath(text))
        if parent != directory:
            raise UserError(
                f"cdrom {text!r} is not in the ISO directory {directory}: give an image's name"
            )
    if "/" in name or name in (".", "..") or name.startswith("-") or len(name) > MAX_ISO_NAME:
        raise UserError(
            "cdrom must be the name of an image in the ISO directory (no '/', '..' or "
            "leading '-'), or none"
        )
    return name


def set_iso(db: Database, keyid: str, target: Target, cdrom: str) -> str | None:
    """Put image `cdrom` (or `none`: nothing) in the VM's CD-ROM drive for its next start.

    The image must be in the catalogue of the VM's container (`virt.isos`). The key's right on
    the VM is checked again in the transaction that writes the change, so a key removed in the
    meantime changes nothing.
    """
    clear = cdrom.strip().lower() == "none"
    path: str | None = None
    if not clear:
        place = iso_place(db, target)
        name = iso_name(cdrom, place.directory)
        catalogue = _catalogue(place)
        if name not in catalogue:
            raise UserError(
                f"there is no image {name!r} in the ISO directory of {target.name}'s container "
                f"({len(catalogue)} image(s) there: ask for the list)"
            )
        path = catalogue[name]
    from flightdeck.services.base import writing

    with writing(db) as s:
        again = _authorise(s, keyid, target.given)[0]
        vm = s.scalar(select(VM).where(VM.host_id == again.host_id))
        assert vm is not None
        vm.cdrom_path = path
    return path


# Consoles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsolePlace:
    """Where a VM's consoles are: its container, and the address its VNC server listens on."""

    vm: str
    container: str
    uri: str
    #: The address the Airboss connects to for VNC; None when there is no reachable one
    #: (`vnc_problem` says why).
    vnc_host: str | None
    vnc_problem: str | None = None


def _uri_host(uri: str) -> str | None:
    """The host of a libvirt URI; None for a local one (`qemu:///system`, `test:///...`)."""
    try:
        host = urllib.parse.urlsplit(uri).hostname
    except ValueError:
        return None
    return None if not host or host == "localhost" else host


def console_place(db: Database, target: Target) -> ConsolePlace:
    """Where the target VM's consoles are reached (database only).

    The VNC address: loopback for a container that is this machine (its libvirt URI has no
    host), else the container's `vnc_listen` attribute, the address its VMs' VNC servers
    listen on (the designer's default, 127.0.0.1, is reachable only from the container
    itself: then there is no VNC console through the Airboss, and the message says which
    attribute to set). `0.0.0.0` / `::` mean the container's own address (its URI's host).
    Serial consoles need none of this: they go through libvirt's stream, remote or not.
    """
    from flightdeck.services.domains import container_uris

    with reading(db) as s:
        vm = s.scalar(select(VM).where(VM.host_id == target.host_id))
        if vm is None or vm.container is None:
            raise ActionFailed(f"{target.name} has no container: ask the administrator")
        uri = container_uris(s, [vm.container])[vm.container.id]
        remote = _uri_host(uri)
        host: str | None = "127.0.0.1"
        problem = None
        if remote is not None:
            listen = (attrs.resolve(s, vm.container, "vnc_listen") or "").strip()
            if listen in ("0.0.0.0", "::", "[::]"):
                host = remote
            elif not listen or listen.startswith("127.") or listen in ("::1", "localhost"):
                host = None
                problem = (
                    f"the VNC console of {target.name} is not reachable from the Airboss: ask "
                    f"the administrator to set the vnc_listen attribute of {vm.container.name} "
                    "to an address of that container the frontend reaches"
                )
            else:
                host = listen
        return ConsolePlace(target.name, vm.container.name, uri, host, problem)


def vnc_endpoint(place: ConsolePlace) -> tuple[str, int]:
    """(address, TCP port) of the running VM's VNC server (asks libvirt for the port)."""
    from flightdeck.virt import hypervisor as hv
    from flightdeck.virt.console import vnc_port

    if place.vnc_host is None:
        raise ActionFailed(place.vnc_problem or f"{place.vm} has no reachable VNC console")
    return place.vnc_host, vnc_port(hv.connect(place.container, place.uri), place.vm)


def open_serial(place: ConsolePlace) -> SerialStream:
    """The running VM's serial console, attached (takes it over from an earlier session)."""
    from flightdeck.virt import hypervisor as hv
    from flightdeck.virt.console import SerialStream

    return SerialStream.open(hv.connect(place.container, place.uri), place.vm)


# Audit ------------------------------------------------------------------------------------------

_LIMITS = {"client": 255, "keyid": 128, "operation": 64, "target": 255, "reason": 1024}


def clip(text: str | None, limit: int) -> str | None:
    """Printable, bounded text for the audit log (a 10,000-character target is not stored)."""
    if text is None:
        return None
    if len(text) <= limit and text.isprintable():
        return text
    shown = "".join(c if c.isprintable() else f"\\x{ord(c) & 0xFF:02x}" for c in text[:limit])
    if len(text) <= limit and len(shown) <= limit:
        return shown
    suffix = f"... ({len(text)} characters)"
    return shown[: max(0, limit - len(suffix))] + suffix


@dataclass(frozen=True)
class AuditRecord:
    """One decision: who (client address, key), what (operation, target), and the outcome."""

    client: str | None
    keyid: str | None
    operation: str | None
    target: str | None
    accepted: bool
    reason: str | None
    at: dt.datetime | None = None


def audit(db: Database, record: AuditRecord) -> int:
    """Append one decision to the audit log; returns its id.

    A plain committed transaction (not the site-wide write lock), like the nonce insert.
    """
    values = {
        "at": record.at or dt.datetime.now(dt.UTC),
        "client": clip(record.client, _LIMITS["client"]),
        "keyid": clip(record.keyid, _LIMITS["keyid"]),
        "operation": clip(record.operation, _LIMITS["operation"]),
        "target": clip(record.target, _LIMITS["target"]),
        "accepted": record.accepted,
        "reason": clip(record.reason, _LIMITS["reason"]),
    }
    with db.engine.begin() as conn:
        result = conn.execute(_Q.insert_audit, values)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: dt.datetime
    client: str | None
    keyid: str | None
    operation: str | None
    target: str | None
    accepted: bool
    reason: str | None


def list_audit(db: Database, limit: int | None = 100) -> list[AuditRow]:
    """The last `limit` decisions (all with None), oldest first."""
    if limit is not None and limit < 1:
        raise UserError(f"limit={limit} must be at least 1")
    with reading(db) as s:
        q = select(AuditEntry).order_by(AuditEntry.id.desc())
        if limit is not None:
            q = q.limit(limit)
        rows = list(s.scalars(q))
    return [
        AuditRow(r.id, r.at, r.client, r.keyid, r.operation, r.target, r.accepted, r.reason)
        for r in reversed(rows)
    ]


# The client side on a frontend ------------------------------------------------------------------


def first_mac(db: Database, name: str) -> str | None:
    """The first MAC (by device) of the host called `name` in this database, if there is one.

    What `rocks set host power <name> key=...` sends: the MAC is the one identifier the
    physical side and a virtual frontend share (reference §2.5).
    """
    if not name or len(name) > MAX_TARGET or os.sep in name:
        return None
    with reading(db) as s:
        host = s.scalar(select(Host).where(Host.name == name))
        if host is None:
            return None
        return s.scalar(
            select(Interface.mac)
            .where(Interface.host_id == host.id, Interface.mac.is_not(None))
            .order_by(Interface.device)
            .limit(1)
        )
