"""The cluster database: every table, as typed SQLAlchemy 2.0 models.

Integrity lives here, not in the callers: unique host names, unique MACs, unique (network, IP),
one VLAN per cluster, foreign keys with the cascade each relation needs. Concurrent `rocks`
processes therefore cannot create duplicates even if a check in Python were to race.

Units: memory in MiB (`mem_mb`), disk sizes in GB of 10^9 bytes (`size_gb`, as the original),
times in seconds since the epoch (UTC) where they are integers.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BOOT_ACTIONS = ("install", "os", "run")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Appliance(Base):
    """A kind of host. `name` is the appliance (`vm-container`), `membership` its display name."""

    __tablename__ = "appliances"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    membership: Mapped[str] = mapped_column(String(64), unique=True)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str | None] = mapped_column(String(255))


class Network(Base):
    """A subnet of the cluster (Rocks `subnets`): `private`, `public`, ..."""

    __tablename__ = "networks"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    subnet: Mapped[str] = mapped_column(String(45))
    netmask: Mapped[str] = mapped_column(String(45))
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    dnszone: Mapped[str | None] = mapped_column(String(253))


class Host(Base):
    """A physical machine or a VM; VMs also have a `VM` row."""

    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    appliance_id: Mapped[int] = mapped_column(ForeignKey("appliances.id", ondelete="RESTRICT"))
    rack: Mapped[int] = mapped_column(Integer, default=0)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    cpus: Mapped[int] = mapped_column(Integer, default=1)
    os: Mapped[str] = mapped_column(String(32), default="linux")
    comment: Mapped[str | None] = mapped_column(String(255))
    run_action: Mapped[str] = mapped_column(String(64), default="os")
    install_action: Mapped[str] = mapped_column(String(64), default="install")

    __table_args__ = (CheckConstraint("cpus >= 1", name="cpus_positive"),)

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

    __tablename__ = "interfaces"
    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    device: Mapped[str] = mapped_column(String(32))
    mac: Mapped[str | None] = mapped_column(String(64), unique=True)
    ip: Mapped[str | None] = mapped_column(String(45))
    network_id: Mapped[int | None] = mapped_column(
        ForeignKey("networks.id", ondelete="RESTRICT"), index=True
    )
    vlan: Mapped[int | None] = mapped_column(Integer)
    module: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(253))
    options: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str | None] = mapped_column(String(64))
    disable_kvm: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("host_id", "device"),
        UniqueConstraint("network_id", "ip"),
        CheckConstraint("vlan IS NULL OR (vlan >= 0 AND vlan <= 4094)", name="vlan_range"),
    )

    host: Mapped[Host] = relationship(back_populates="interfaces")
    network: Mapped[Network | None] = relationship(lazy="joined")


class Route(Base):
    """A static route of one host (the virtual frontend's default route via the gateway)."""

    __tablename__ = "routes"
    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str] = mapped_column(String(45))
    netmask: Mapped[str] = mapped_column(String(45))
    gateway: Mapped[str] = mapped_column(String(45))
    __table_args__ = (UniqueConstraint("host_id", "destination", "netmask"),)


class GlobalAttr(Base):
    __tablename__ = "global_attributes"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ApplianceAttr(Base):
    __tablename__ = "appliance_attributes"
    appliance_id: Mapped[int] = mapped_column(
        ForeignKey("appliances.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class HostAttr(Base):
    __tablename__ = "host_attributes"
    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class BootAction(Base):
    """A named way to boot: a kernel, an initrd and arguments (Rocks `bootaction`)."""

    __tablename__ = "boot_actions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kernel: Mapped[str | None] = mapped_column(String(1024))
    ramdisk: Mapped[str | None] = mapped_column(String(1024))
    args: Mapped[str | None] = mapped_column(Text)


class HostBoot(Base):
    """What a host does at its next boot: `install`, `os` or `run` (Rocks `boot`)."""

    __tablename__ = "host_boot"
    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    action: Mapped[str] = mapped_column(String(16))
    __table_args__ = (CheckConstraint("action IN ('install', 'os', 'run')", name="action_known"),)


class Cluster(Base):
    """A virtual cluster: its virtual frontend and its own VLAN on `network` (default private)."""

    __tablename__ = "clusters"
    id: Mapped[int] = mapped_column(primary_key=True)
    frontend_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), unique=True
    )
    vlan: Mapped[int] = mapped_column(Integer, unique=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id", ondelete="RESTRICT"))
    __table_args__ = (CheckConstraint("vlan >= 2 AND vlan <= 4094", name="vlan_range"),)

    frontend: Mapped[Host] = relationship(foreign_keys=[frontend_id])
    network: Mapped[Network] = relationship()


class VM(Base):
    """The VM side of a host: where it runs, its memory, slice, CD-ROM and cluster."""

    __tablename__ = "vms"
    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), unique=True)
    container_id: Mapped[int | None] = mapped_column(
        ForeignKey("hosts.id", ondelete="SET NULL"), index=True
    )
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="SET NULL"), index=True
    )
    mem_mb: Mapped[int] = mapped_column(Integer, default=1024)
    slice: Mapped[int] = mapped_column(Integer, default=0)
    virt_type: Mapped[str] = mapped_column(String(16), default="hvm")
    cdrom_path: Mapped[str | None] = mapped_column(String(1024))
    __table_args__ = (CheckConstraint("mem_mb >= 1", name="mem_positive"),)

    host: Mapped[Host] = relationship(back_populates="vm", foreign_keys=[host_id])
    container: Mapped[Host | None] = relationship(foreign_keys=[container_id])
    cluster: Mapped[Cluster | None] = relationship()
    disks: Mapped[list[VMDisk]] = relationship(
        back_populates="vm",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="VMDisk.position",
    )


class VMDisk(Base):
    """One disk of a VM, in the original's spec terms (`type:prefix/name,device,bus`)."""

    __tablename__ = "vm_disks"
    id: Mapped[int] = mapped_column(primary_key=True)
    vm_id: Mapped[int] = mapped_column(ForeignKey("vms.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    vbd_type: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(1024))
    name: Mapped[str] = mapped_column(String(1024))
    device: Mapped[str] = mapped_column(String(16))
    bus: Mapped[str] = mapped_column(String(16))
    size_gb: Mapped[int] = mapped_column(Integer, default=36)
    __table_args__ = (
        UniqueConstraint("vm_id", "device"),
        CheckConstraint("size_gb >= 1", name="size_positive"),
    )
    vm: Mapped[VM] = relationship(back_populates="disks")


class PublicKey(Base):
    """A public key allowed to act, through the Airboss, on the host it is registered on."""

    __tablename__ = "public_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(128), index=True)
    public_key: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(4096))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    __table_args__ = (UniqueConstraint("host_id", "fingerprint"),)


class AuditEntry(Base):
    """One Airboss decision: who asked what of which target, and what was answered."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    client: Mapped[str | None] = mapped_column(String(255))
    keyid: Mapped[str | None] = mapped_column(String(128))
    operation: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    accepted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(1024))


class Nonce(Base):
    """A signature nonce seen by the Airboss, kept until it expires so replays fail."""

    __tablename__ = "nonces"
    keyid: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires: Mapped[int] = mapped_column(Integer, index=True)
