"""The ORM classes of the cluster database, mapped onto the Core tables of `db/tables.py`.

The schema itself (columns, types, constraints, indexes, names) is defined once, in
`flightdeck.db.tables`; each class here takes its table from there (`__table__`) and adds only
what the ORM needs: typed attributes and relationships. Writers and most services work with these
classes; read-only listings query the tables directly and never import this module (importing
`sqlalchemy.orm` and building these classes costs more than such a command's query).

Units: memory in MiB (`mem_mb`), disk sizes in GB of 10^9 bytes (`size_gb`, as the original),
times in seconds since the epoch (UTC) where they are integers.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from flightdeck.db import tables
from flightdeck.db.tables import NAMING

__all__ = ["BOOT_ACTIONS", "NAMING"]  # re-exported for the callers that import them from here

BOOT_ACTIONS = ("install", "os", "run")


class Base(DeclarativeBase):
    metadata = tables.metadata


class Appliance(Base):
    """A kind of host. `name` is the appliance (`vm-container`), `membership` its display name."""

    __table__ = tables.appliances
    id: Mapped[int]
    name: Mapped[str]
    membership: Mapped[str]
    public: Mapped[bool]
    comment: Mapped[str | None]


class Network(Base):
    """A subnet of the cluster (Rocks `subnets`): `private`, `public`, ..."""

    __table__ = tables.networks
    id: Mapped[int]
    name: Mapped[str]
    subnet: Mapped[str]
    netmask: Mapped[str]
    mtu: Mapped[int]
    dnszone: Mapped[str | None]


class Host(Base):
    """A physical machine or a VM; VMs also have a `VM` row."""

    __table__ = tables.hosts
    id: Mapped[int]
    name: Mapped[str]
    appliance_id: Mapped[int]
    rack: Mapped[int]
    rank: Mapped[int]
    cpus: Mapped[int]
    os: Mapped[str]
    comment: Mapped[str | None]
    run_action: Mapped[str]
    install_action: Mapped[str]

    appliance: Mapped[Appliance] = relationship(lazy="joined")
    interfaces: Mapped[list[Interface]] = relationship(
        back_populates="host",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Interface.id",
    )
    vm: Mapped[VM | None] = relationship(
        back_populates="host",
        foreign_keys="VM.host_id",
        cascade="all, delete-orphan",
        passive_deletes=True,
        uselist=False,
    )


class Interface(Base):
    """A network interface of a host (Rocks `networks`). `name` is the host's name on that net."""

    __table__ = tables.interfaces
    id: Mapped[int]
    host_id: Mapped[int]
    device: Mapped[str]
    mac: Mapped[str | None]
    ip: Mapped[str | None]
    network_id: Mapped[int | None]
    vlan: Mapped[int | None]
    module: Mapped[str | None]
    name: Mapped[str | None]
    options: Mapped[str | None]
    channel: Mapped[str | None]
    disable_kvm: Mapped[bool]

    host: Mapped[Host] = relationship(back_populates="interfaces")
    network: Mapped[Network | None] = relationship(lazy="joined")


class Route(Base):
    """A static route of one host (the virtual frontend's default route via the gateway)."""

    __table__ = tables.routes
    id: Mapped[int]
    host_id: Mapped[int]
    destination: Mapped[str]
    netmask: Mapped[str]
    gateway: Mapped[str]


class GlobalAttr(Base):
    __table__ = tables.global_attributes
    name: Mapped[str]
    value: Mapped[str]


class ApplianceAttr(Base):
    __table__ = tables.appliance_attributes
    appliance_id: Mapped[int]
    name: Mapped[str]
    value: Mapped[str]


class HostAttr(Base):
    __table__ = tables.host_attributes
    host_id: Mapped[int]
    name: Mapped[str]
    value: Mapped[str]


class BootAction(Base):
    """A named way to boot: a kernel, an initrd and arguments (Rocks `bootaction`)."""

    __table__ = tables.boot_actions
    id: Mapped[int]
    name: Mapped[str]
    kernel: Mapped[str | None]
    ramdisk: Mapped[str | None]
    args: Mapped[str | None]


class HostBoot(Base):
    """What a host does at its next boot: `install`, `os` or `run` (Rocks `boot`)."""

    __table__ = tables.host_boot
    host_id: Mapped[int]
    action: Mapped[str]


class Cluster(Base):
    """A virtual cluster: its virtual frontend and its own VLAN on `network` (default private)."""

    __table__ = tables.clusters
    id: Mapped[int]
    frontend_id: Mapped[int]
    vlan: Mapped[int]
    network_id: Mapped[int]

    frontend: Mapped[Host] = relationship(foreign_keys=[tables.clusters.c.frontend_id])
    network: Mapped[Network] = relationship()


class VM(Base):
    """The VM side of a host: where it runs, its memory, slice, CD-ROM and cluster."""

    __table__ = tables.vms
    id: Mapped[int]
    host_id: Mapped[int]
    container_id: Mapped[int | None]
    cluster_id: Mapped[int | None]
    mem_mb: Mapped[int]
    slice: Mapped[int]
    virt_type: Mapped[str]
    cdrom_path: Mapped[str | None]

    host: Mapped[Host] = relationship(back_populates="vm", foreign_keys=[tables.vms.c.host_id])
    container: Mapped[Host | None] = relationship(foreign_keys=[tables.vms.c.container_id])
    cluster: Mapped[Cluster | None] = relationship()
    disks: Mapped[list[VMDisk]] = relationship(
        back_populates="vm",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="VMDisk.position",
    )


class VMDisk(Base):
    """One disk of a VM, in the original's spec terms (`type:prefix/name,device,bus`)."""

    __table__ = tables.vm_disks
    id: Mapped[int]
    vm_id: Mapped[int]
    position: Mapped[int]
    vbd_type: Mapped[str]
    prefix: Mapped[str]
    name: Mapped[str]
    device: Mapped[str]
    bus: Mapped[str]
    size_gb: Mapped[int]

    vm: Mapped[VM] = relationship(back_populates="disks")


class PublicKey(Base):
    """A public key allowed to act, through the Airboss, on the host it is registered on."""

    __table__ = tables.public_keys
    id: Mapped[int]
    host_id: Mapped[int]
    fingerprint: Mapped[str]
    public_key: Mapped[str]
    description: Mapped[str | None]
    created_at: Mapped[dt.datetime]


class AuditEntry(Base):
    """One Airboss decision: who asked what of which target, and what was answered."""

    __table__ = tables.audit_log
    id: Mapped[int]
    at: Mapped[dt.datetime]
    client: Mapped[str | None]
    keyid: Mapped[str | None]
    operation: Mapped[str | None]
    target: Mapped[str | None]
    accepted: Mapped[bool]
    reason: Mapped[str | None]
    token_id: Mapped[str | None]
    restrictions: Mapped[str | None]
    chain: Mapped[str | None]
    seq: Mapped[int | None]
    prev: Mapped[str | None]
    hash: Mapped[str | None]


class AuditHead(Base):
    """The head of one audit hash chain."""

    __table__ = tables.audit_heads
    chain: Mapped[str]
    seq: Mapped[int]
    hash: Mapped[str]


class AuditCheckpoint(Base):
    """Where a pruned audit chain now starts, signed when it was pruned."""

    __table__ = tables.audit_checkpoints
    chain: Mapped[str]
    seq: Mapped[int]
    hash: Mapped[str]
    signed_at: Mapped[int]
    signature: Mapped[str]


class RevokedToken(Base):
    """A revoked capability token's id (the token itself is never stored)."""

    __table__ = tables.revoked_tokens
    id: Mapped[int]
    token_id: Mapped[str]
    host_id: Mapped[int]
    keyid: Mapped[str | None]
    revoked_by: Mapped[str]
    revoked_at: Mapped[dt.datetime]


class Nonce(Base):
    """A signature nonce seen by the Airboss, kept until it expires so replays fail."""

    __table__ = tables.nonces
    keyid: Mapped[str]
    nonce: Mapped[str]
    expires: Mapped[int]


class Job(Base):
    """A cluster power sequence run by the Airboss for an owner (see `tables.jobs`)."""

    __table__ = tables.jobs
    id: Mapped[int]
    cluster_id: Mapped[int]
    keyid: Mapped[str]
    action: Mapped[str]
    state: Mapped[str]
    created: Mapped[int]
    finished: Mapped[int | None]
    runner: Mapped[str]
    summary: Mapped[str | None]


class JobEvent(Base):
    """One node's outcome in a job."""

    __table__ = tables.job_events
    id: Mapped[int]
    job_id: Mapped[int]
    at_ms: Mapped[int]
    node: Mapped[str]
    ok: Mapped[bool]
    message: Mapped[str]
