"""Attributes: named strings at global, appliance and host level.

A host's value of an attribute is its own if set, else its appliance's, else the global one,
as in Rocks. Values are stored exactly as given (raw XML fragments included); nothing is
escaped on the way in.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

# Its home is db.attrcore (no ORM); callers know it here too.
from flightdeck.db.attrcore import is_true as is_true
from flightdeck.db.models import ApplianceAttr, GlobalAttr, Host, HostAttr
from flightdeck.errors import UserError

ATTR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


def check_attr_name(name: str) -> str:
    if not ATTR_NAME_RE.match(name):
        raise UserError(
            f"invalid attribute name {name!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or '_' (at most 128 characters)"
        )
    return name


@dataclass(frozen=True)
class Resolved:
    name: str
    value: str
    #: Where the value comes from: "H" host, "A" appliance, "G" global (Rocks' source column).
    source: str


#: `Session.info` key of the attribute cache of a `cached` block.
_CACHE = "flightdeck.attrs"


@dataclass
class _Levels:
    """Every attribute of the hosts and appliances read so far, and every global one."""

    globals: dict[str, str] | None = None
    by_app: dict[int, dict[str, str]] = field(default_factory=dict)
    by_host: dict[int, dict[str, str]] = field(default_factory=dict)

    def load(self, session: Session, hosts: list[Host]) -> None:
        """Read what is missing for `hosts`: at most three queries, whatever the count."""
        if self.globals is None:
            found = session.execute(select(GlobalAttr.name, GlobalAttr.value)).tuples().all()
            self.globals = dict(found)
        hids = sorted({h.id for h in hosts} - self.by_host.keys())
        aids = sorted({h.appliance_id for h in hosts} - self.by_app.keys())
        for levels, ids, model, key in (
            (self.by_host, hids, HostAttr, HostAttr.host_id),
            (self.by_app, aids, ApplianceAttr, ApplianceAttr.appliance_id),
        ):
            if not ids:
                continue
            for i in ids:
                levels[i] = {}
            rows = session.execute(select(key, model.name, model.value).where(key.in_(ids)))
            for owner, n, v in rows.tuples():
                levels[owner][n] = v

    def value(self, host: Host, name: str) -> str | None:
        assert self.globals is not None
        own = self.by_host[host.id]
        if name in own:
            return own[name]
        app = self.by_app[host.appliance_id]
        return app[name] if name in app else self.globals.get(name)


@contextlib.contextmanager
def cached(session: Session) -> Iterator[None]:
    """Within the block, `resolve`, `resolve_many`, `resolve_all` and `global_value` read each
    host's attributes once (every name at once), then answer from memory: starting a VM
    resolved ~9 attributes of the VM and its container at three queries each.

    Only for a block that writes no attribute (a read transaction): nothing here sees a write
    made inside the block. Nested blocks share the outer one's cache.
    """
    if _CACHE in session.info:
        yield
        return
    session.info[_CACHE] = _Levels()
    try:
        yield
    finally:
        del session.info[_CACHE]


def preload(session: Session, hosts: Iterable[Host]) -> None:
    """In a `cached` block, read the attributes of all `hosts` now: three queries for all of
    them, where asking host by host costs two more for each host not yet read. Elsewhere,
    nothing."""
    _cache(session, list(hosts))


def _cache(session: Session, hosts: list[Host]) -> _Levels | None:
    levels: _Levels | None = session.info.get(_CACHE)
    if levels is not None:
        levels.load(session, hosts)
    return levels


def resolve(session: Session, host: Host, name: str) -> str | None:
    """The value of `name` for `host`, or None when no level sets it."""
    return resolve_many(session, [host], name).get(host.id)


def resolve_many(session: Session, hosts: Iterable[Host], name: str) -> dict[int, str]:
    """The value of `name` for each host that has one (three queries whatever the count)."""
    hosts = list(hosts)
    if not hosts:
        return {}
    levels = _cache(session, hosts)
    if levels is not None:
        found = {h.id: levels.value(h, name) for h in hosts}
        return {hid: v for hid, v in found.items() if v is not None}
    ids = [h.id for h in hosts]
    own = dict(
        session.execute(
            select(HostAttr.host_id, HostAttr.value).where(
                HostAttr.name == name, HostAttr.host_id.in_(ids)
            )
        )
        .tuples()
        .all()
    )
    by_app = dict(
        session.execute(
            select(ApplianceAttr.appliance_id, ApplianceAttr.value).where(
                ApplianceAttr.name == name
            )
        )
        .tuples()
        .all()
    )
    glob = session.scalar(select(GlobalAttr.value).where(GlobalAttr.name == name))
    out: dict[int, str] = {}
    for h in hosts:
        value = own.get(h.id, by_app.get(h.appliance_id, glob))
        if value is not None:
            out[h.id] = value
    return out


def resolve_all(session: Session, host: Host) -> list[Resolved]:
    """Every attribute that applies to `host`, with its source, sorted by name (three queries,
    or none inside a `cached` block that has read them)."""
    levels = _cache(session, [host])
    if levels is None:
        levels = _Levels()
        levels.load(session, [host])
    assert levels.globals is not None
    merged: dict[str, Resolved] = {}
    for source, values in (
        ("G", levels.globals),
        ("A", levels.by_app[host.appliance_id]),
        ("H", levels.by_host[host.id]),
    ):
        merged.update({n: Resolved(n, v, source) for n, v in values.items()})
    return [merged[k] for k in sorted(merged, key=str.lower)]


def values_of(session: Session, host: Host) -> dict[str, str]:
    """name -> value of every attribute that applies to `host` (what a plan or a spec reads)."""
    return {r.name: r.value for r in resolve_all(session, host)}


def global_value(session: Session, name: str) -> str | None:
    levels: _Levels | None = session.info.get(_CACHE)
    if levels is not None:
        levels.load(session, [])
        assert levels.globals is not None
        return levels.globals.get(name)
    return session.scalar(select(GlobalAttr.value).where(GlobalAttr.name == name))


def set_global(session: Session, name: str, value: str) -> None:
    row = session.get(GlobalAttr, check_attr_name(name))
    if row is None:
        session.add(GlobalAttr(name=name, value=value))
    else:
        row.value = value


def set_host(session: Session, host: Host, name: str, value: str) -> None:
    row = session.get(HostAttr, (host.id, check_attr_name(name)))
    if row is None:
        session.add(HostAttr(host_id=host.id, name=name, value=value))
    else:
        row.value = value


def set_appliance(session: Session, appliance_id: int, name: str, value: str) -> None:
    row = session.get(ApplianceAttr, (appliance_id, check_attr_name(name)))
    if row is None:
        session.add(ApplianceAttr(appliance_id=appliance_id, name=name, value=value))
    else:
        row.value = value
