"""Attributes: named strings at global, appliance and host level.

A host's value of an attribute is its own if set, else its appliance's, else the global one,
as in Rocks. Values are stored exactly as given (raw XML fragments included); nothing is
escaped on the way in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from flightdeck.db.models import ApplianceAttr, GlobalAttr, Host, HostAttr
from flightdeck.errors import UserError

ATTR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
TRUE_VALUES = frozenset({"true", "yes", "y", "on", "1"})


def check_attr_name(name: str) -> str:
    if not ATTR_NAME_RE.match(name):
        raise UserError(
            f"invalid attribute name {name!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or '_' (at most 128 characters)"
        )
    return name


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_VALUES


@dataclass(frozen=True)
class Resolved:
    name: str
    value: str
    #: Where the value comes from: "H" host, "A" appliance, "G" global (Rocks' source column).
    source: str


def resolve(session: Session, host: Host, name: str) -> str | None:
    """The value of `name` for `host`, or None when no level sets it."""
    return resolve_many(session, [host], name).get(host.id)


def resolve_many(session: Session, hosts: Iterable[Host], name: str) -> dict[int, str]:
    """The value of `name` for each host that has one (three queries whatever the count)."""
    hosts = list(hosts)
    if not hosts:
        return {}
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
    """Every attribute that applies to `host`, with its source, sorted by name."""
    merged: dict[str, Resolved] = {}
    for n, v in session.execute(select(GlobalAttr.name, GlobalAttr.value)).tuples():
        merged[n] = Resolved(n, v, "G")
    for n, v in session.execute(
        select(ApplianceAttr.name, ApplianceAttr.value).where(
            ApplianceAttr.appliance_id == host.appliance_id
        )
    ).tuples():
        merged[n] = Resolved(n, v, "A")
    for n, v in session.execute(
        select(HostAttr.name, HostAttr.value).where(HostAttr.host_id == host.id)
    ).tuples():
        merged[n] = Resolved(n, v, "H")
    return [merged[k] for k in sorted(merged, key=str.lower)]


def global_value(session: Session, name: str) -> str | None:
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
