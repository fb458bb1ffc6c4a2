"""Read-only listings on SQLAlchemy Core: the cheap, frequent `rocks list ...` commands.

Why a module of its own: these commands do a few milliseconds of work, yet importing
`sqlalchemy.orm` and building the mapped classes of `db/models.py` used to cost them ~120 ms
of a ~600 ms process. Everything here queries the `db/tables.py` tables through
`reading_core(db)` and imports neither the ORM nor the models (a test runs the commands in a
fresh interpreter and checks `sys.modules`). Each function is one read transaction.

`services.inventory` and `services.attributes` re-export these functions, so callers and tests
that know them there keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from flightdeck.db import tables
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import host_order, resolve_host_ids
from flightdeck.services.base import reading_core


@dataclass(frozen=True)
class HostRow:
    name: str
    membership: str
    cpus: int
    rack: int
    rank: int
    run_action: str
    install_action: str
    comment: str | None


@dataclass(frozen=True)
class NetworkRow:
    name: str
    subnet: str
    netmask: str
    mtu: int
    dnszone: str | None


def list_hosts(db: Database, exprs: Sequence[str]) -> list[HostRow]:
    """The hosts named by `exprs` (every host if none), by rack, rank and name."""
    h, a = tables.hosts.c, tables.appliances.c
    with reading_core(db) as conn:
        query = select(
            h.name,
            a.membership,
            h.cpus,
            h.rack,
            h.rank,
            h.run_action,
            h.install_action,
            h.comment,
        ).join_from(tables.hosts, tables.appliances, a.id == h.appliance_id)
        if exprs:
            query = query.where(h.id.in_(resolve_host_ids(conn, exprs)))
        query = query.order_by(*host_order())
        return [HostRow(*row) for row in conn.execute(query).tuples()]


def list_networks(db: Database) -> list[NetworkRow]:
    """Every network, in the order they were added."""
    n = tables.networks.c
    with reading_core(db) as conn:
        query = select(n.name, n.subnet, n.netmask, n.mtu, n.dnszone).order_by(n.id)
        return [NetworkRow(*row) for row in conn.execute(query).tuples()]


def list_appliances(db: Database) -> list[tuple[str, str, bool]]:
    """(appliance, membership, public) of every appliance, in the order they were added."""
    a = tables.appliances.c
    with reading_core(db) as conn:
        query = select(a.name, a.membership, a.public).order_by(a.id)
        return list(conn.execute(query).tuples().all())


def list_global(db: Database, name: str | None = None) -> list[tuple[str, str]]:
    """(name, value) of the global attributes (only `name` if given), by name."""
    g = tables.global_attributes.c
    with reading_core(db) as conn:
        query = select(g.name, g.value).order_by(g.name)
        if name:
            query = query.where(g.name == name)
        return [(n, v) for n, v in conn.execute(query).tuples()]
