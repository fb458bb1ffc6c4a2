"""Attribute resolution on SQLAlchemy Core: host over appliance over global, for many hosts in
four reads, without the ORM.

Why apart from `db.attrs` (the ORM side, which writes too): a command that only reads (`rocks
list host attr`, `rocks list host vlan`) would otherwise import `sqlalchemy.orm` and the mapped
classes, which cost it more than its queries. The rule itself (a host's own value, else its
appliance's, else the global one; names compared exactly) is the same as `db.attrs`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from flightdeck.db import tables

TRUE_VALUES = frozenset({"true", "yes", "y", "on", "1"})

#: Hosts up to which the attributes of some hosts are read with an `IN` list of their ids;
#: beyond, every host attribute is read and filtered here (SQLite's bound-parameter cap).
FEW_HOSTS = 500

#: A host's resolved attributes: name -> (value, source), source "H", "A" or "G" (Rocks' column).
Resolved = dict[str, tuple[str, str]]


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_VALUES


def resolve_hosts(
    conn: Connection, ids: Sequence[int], name: str | None = None
) -> dict[int, tuple[str, Resolved]]:
    """host id -> (host name, its attributes), for the hosts `ids` (only `name` if given).
    Four reads whatever the host count."""
    h, g = tables.hosts.c, tables.global_attributes.c
    aa, ha = tables.appliance_attributes.c, tables.host_attributes.c
    few = len(ids) <= FEW_HOSTS
    hosts_q = select(h.id, h.name, h.appliance_id)
    host_attrs_q = select(ha.host_id, ha.name, ha.value)
    if few:
        hosts_q = hosts_q.where(h.id.in_(ids))
        host_attrs_q = host_attrs_q.where(ha.host_id.in_(ids))
    globals_q = select(g.name, g.value)
    apps_q = select(aa.appliance_id, aa.name, aa.value)
    if name is not None:
        globals_q = globals_q.where(g.name == name)
        apps_q = apps_q.where(aa.name == name)
        host_attrs_q = host_attrs_q.where(ha.name == name)
    info = {hid: (hname, app) for hid, hname, app in conn.execute(hosts_q).tuples()}
    shared: Resolved = {n: (v, "G") for n, v in conn.execute(globals_q).tuples()}
    by_app: dict[int, Resolved] = {}
    for app, n, v in conn.execute(apps_q).tuples():
        by_app.setdefault(app, {})[n] = (v, "A")
    by_host: dict[int, Resolved] = {}
    for hid, n, v in conn.execute(host_attrs_q).tuples():
        by_host.setdefault(hid, {})[n] = (v, "H")
    out: dict[int, tuple[str, Resolved]] = {}
    for hid in ids:
        if hid not in info:
            continue
        hname, app = info[hid]
        out[hid] = (hname, {**shared, **by_app.get(app, {}), **by_host.get(hid, {})})
    return out


def values(resolved: Resolved) -> dict[str, str]:
    """name -> value, without the sources."""
    return {n: v for n, (v, _source) in resolved.items()}
