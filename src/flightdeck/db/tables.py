"""The cluster database schema, as SQLAlchemy Core tables: the one definition of every table.

Why Core and not the ORM here: a command that only reads (`rocks list appliance`) can query these
tables without importing `sqlalchemy.orm` or building the mapped classes, which costs more than
the query itself (about 120 ms of a 600 ms process on the 2-core CI machine). The ORM classes in
`flightdeck.db.models` are mapped onto these same `Table` objects, so writers and readers share one
schema, and the Alembic migrations are compared against `metadata` below.

Integrity lives here, not in the callers: unique host names, unique MACs, unique (network, IP),
one VLAN per cluster, foreign keys with the cascade each relation needs. Concurrent `rocks`
processes therefore cannot create duplicates even if a check in Python were to race.

Units: memory in MiB (`mem_mb`), disk sizes in GB of 10^9 bytes (`size_gb`, as the original),
times in seconds since the epoch (UTC) where they are integers.

Column order, types, nullability, Python-side defaults and constraint names are exactly those of
the declarative models they replaced (migration 0001 was generated from those); keep them in step
with the migrations (tests/db/test_schema.py compares the two).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from flightdeck.planner import defaults

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Every table of the cluster database (and what Alembic compares the migrations with).
metadata = MetaData(naming_convention=NAMING)


def _fk(target: str, ondelete: str) -> ForeignKey:
    return ForeignKey(target, ondelete=ondelete)


#: A kind of host. `name` is the appliance (`vm-container`), `membership` its display name.
appliances = Table(
    "appliances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("membership", String(64), nullable=False, unique=True),
    Column("public", Boolean, nullable=False, default=False),
    Column("comment", String(255), nullable=True),
)

#: A subnet of the cluster (Rocks `subnets`): `private`, `public`, ...
networks = Table(
    "networks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("subnet", String(45), nullable=False),
    Column("netmask", String(45), nullable=False),
    Column("mtu", Integer, nullable=False, default=1500),
    Column("dnszone", String(253), nullable=True),
)

#: A physical machine or a VM; VMs also have a `vms` row.
hosts = Table(
    "hosts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(253), nullable=False, unique=True),
    Column("appliance_id", Integer, _fk("appliances.id", "RESTRICT"), nullable=False),
    Column("rack", Integer, nullable=False, default=0),
    Column("rank", Integer, nullable=False, default=0),
    Column("cpus", Integer, nullable=False, default=defaults.CPUS),
    Column("os", String(32), nullable=False, default="linux"),
    Column("comment", String(255), nullable=True),
    Column("run_action", String(64), nullable=False, default="os"),
    Column("install_action", String(64), nullable=False, default="install"),
    CheckConstraint("cpus >= 1", name="cpus_positive"),
)

#: A network interface of a host (Rocks `networks`). `name` is the host's name on that net.
interfaces = Table(
    "interfaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host_id", Integer, _fk("hosts.id", "CASCADE"), nullable=False, index=True),
    Column("device", String(32), nullable=False),
    Column("mac", String(64), nullable=True, unique=True),
    Column("ip", String(45), nullable=True),
    Column("network_id", Integer, _fk("networks.id", "RESTRICT"), nullable=True, index=True),
    Column("vlan", Integer, nullable=True),
    Column("module", String(64), nullable=True),
    Column("name", String(253), nullable=True),
    Column("options", String(255), nullable=True),
    Column("channel", String(64), nullable=True),
    Column("disable_kvm", Boolean, nullable=False, default=False),
    UniqueConstraint("host_id", "device"),
    UniqueConstraint("network_id", "ip"),
    CheckConstraint("vlan IS NULL OR (vlan >= 0 AND vlan <= 4094)", name="vlan_range"),
)

#: A static route of one host (the virtual frontend's default route via the gateway).
routes = Table(
    "routes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host_id", Integer, _fk("hosts.id", "CASCADE"), nullable=False, index=True),
    Column("destination", String(45), nullable=False),
    Column("netmask", String(45), nullable=False),
    Column("gateway", String(45), nullable=False),
    UniqueConstraint("host_id", "destination", "netmask"),
)

#: Attributes at the three levels; a host's value wins over its appliance's over the global one.
global_attributes = Table(
    "global_attributes",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

appliance_attributes = Table(
    "appliance_attributes",
    metadata,
    Column("appliance_id", Integer, _fk("appliances.id", "CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

host_attributes = Table(
    "host_attributes",
    metadata,
    Column("host_id", Integer, _fk("hosts.id", "CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

#: A named way to boot: a kernel, an initrd and arguments (Rocks `bootaction`).
boot_actions = Table(
    "boot_actions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kernel", String(1024), nullable=True),
    Column("ramdisk", String(1024), nullable=True),
    Column("args", Text, nullable=True),
)

#: What a host does at its next boot: `install`, `os` or `run` (Rocks `boot`).
host_boot = Table(
    "host_boot",
    metadata,
    Column("host_id", Integer, _fk("hosts.id", "CASCADE"), primary_key=True),
    Column("action", String(16), nullable=False),
    CheckConstraint("action IN ('install', 'os', 'run')", name="action_known"),
)

#: A virtual cluster: its virtual frontend and its own VLAN on `network` (default private).
clusters = Table(
    "clusters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("frontend_id", Integer, _fk("hosts.id", "CASCADE"), nullable=False, unique=True),
    Column("vlan", Integer, nullable=False, unique=True),
    Column("network_id", Integer, _fk("networks.id", "RESTRICT"), nullable=False),
    CheckConstraint("vlan >= 2 AND vlan <= 4094", name="vlan_range"),
)

#: The VM side of a host: where it runs, its memory (MiB), slice, CD-ROM and cluster.
vms = Table(
    "vms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host_id", Integer, _fk("hosts.id", "CASCADE"), nullable=False, unique=True),
    Column("container_id", Integer, _fk("hosts.id", "SET NULL"), nullable=True, index=True),
    Column("cluster_id", Integer, _fk("clusters.id", "SET NULL"), nullable=True, index=True),
    Column("mem_mb", Integer, nullable=False, default=defaults.MEM_MB),
    Column("slice", Integer, nullable=False, default=0),
    Column("virt_type", String(16), nullable=False, default="hvm"),
    Column("cdrom_path", String(1024), nullable=True),
    CheckConstraint("mem_mb >= 1", name="mem_positive"),
)

#: One disk of a VM, in the original's spec terms (`type:prefix/name,device,bus`); GB of 10^9.
vm_disks = Table(
    "vm_disks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("vm_id", Integer, _fk("vms.id", "CASCADE"), nullable=False, index=True),
    Column("position", Integer, nullable=False, default=0),
    Column("vbd_type", String(16), nullable=False),
    Column("prefix", String(1024), nullable=False),
    Column("name", String(1024), nullable=False),
    Column("device", String(16), nullable=False),
    Column("bus", String(16), nullable=False),
    Column("size_gb", Integer, nullable=False, default=defaults.DISK_GB),
    UniqueConstraint("vm_id", "device"),
    CheckConstraint("size_gb >= 1", name="size_positive"),
)

#: A public key allowed to act, through the Airboss, on the host it is registered on.
public_keys = Table(
    "public_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host_id", Integer, _fk("hosts.id", "CASCADE"), nullable=False, index=True),
    Column("fingerprint", String(128), nullable=False, index=True),
    Column("public_key", Text, nullable=False),
    Column("description", String(4096), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("host_id", "fingerprint"),
)

#: One Airboss decision: who asked what of which target, and what was answered.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("client", String(255), nullable=True),
    Column("keyid", String(128), nullable=True),
    Column("operation", String(64), nullable=True),
    Column("target", String(255), nullable=True),
    Column("accepted", Boolean, nullable=False),
    Column("reason", String(1024), nullable=True),
    #: A request made with a capability token: the token's id (the revocation id of its last
    #: block before the request's binding) and its restrictions (its blocks' Datalog).
    Column("token_id", String(128), nullable=True),
    Column("restrictions", String(1024), nullable=True),
    #: The hash chain this row is in (`cluster:<id>`, `vm:<host id>`, `site`), its place in it,
    #: the previous entry's hash and its own (`crypto.auditchain`).
    Column("chain", String(32), nullable=True),
    Column("seq", Integer, nullable=True),
    Column("prev", String(64), nullable=True),
    Column("hash", String(64), nullable=True),
    UniqueConstraint("chain", "seq"),
)

#: The head of each audit hash chain: its last entry's sequence number and hash.
audit_heads = Table(
    "audit_heads",
    metadata,
    Column("chain", String(32), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

#: Where a pruned audit chain now starts: the last pruned entry's seq and hash, signed by the
#: Airboss's audit key when it was pruned (`services.airboss.retention`), so an owner verifies
#: what is left from a signed point, not from whatever the first remaining row says.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("chain", String(32), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signed_at", Integer, nullable=False),
    Column("signature", String(128), nullable=False),
)

#: A revoked capability token (tokens themselves are never stored): its revocation id, the
#: host whose key it is rooted in, who revoked it and when. Refused from then on, everywhere.
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_id", String(128), nullable=False, unique=True),
    Column("host_id", Integer, _fk("hosts.id", "CASCADE"), nullable=False, index=True),
    Column("keyid", String(128), nullable=True),
    Column("revoked_by", String(255), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: A signature nonce seen by the Airboss, kept until it expires (seconds since the epoch).
nonces = Table(
    "nonces",
    metadata,
    Column("keyid", String(128), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("expires", Integer, nullable=False, index=True),
)

#: A cluster power sequence the Airboss runs for an owner (`pilot set cluster power`): it goes
#: on when the client disconnects, and any replica reports it. Times in seconds since the epoch.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("cluster_id", Integer, _fk("clusters.id", "CASCADE"), nullable=False, index=True),
    Column("keyid", String(128), nullable=False),
    Column("action", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created", Integer, nullable=False),
    Column("finished", Integer, nullable=True),
    #: Which Airboss runs it (`<hostname>:<pid>`), to tell a job whose process went away.
    Column("runner", String(255), nullable=False),
    Column("summary", String(1024), nullable=True),
    CheckConstraint(
        "state IN ('running', 'done', 'failed', 'interrupted')", name="state_known"
    ),
)
#: One running job per cluster, whatever two replicas (or two requests) decide at once: the
#: index is PARTIAL (`WHERE state = 'running'`), as migration 0002 makes it. Its `where` is
#: not declared here: dialect options make SQLAlchemy import both dialects (~25 ms of every
#: `rocks` command); tests/db/test_schema.py checks the live index is partial.
Index("uq_jobs_one_running", jobs.c.cluster_id, unique=True)

#: One line of a job: a node's outcome, in the order they came (`at_ms` since the job began).
job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, _fk("jobs.id", "CASCADE"), nullable=False, index=True),
    Column("at_ms", Integer, nullable=False),
    Column("node", String(255), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("message", String(1024), nullable=False),
)
