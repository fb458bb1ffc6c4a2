"""Attributes at the three levels: global, appliance and host (host > appliance > global).

A value of an attribute Flightdeck understands (`services/validation.py`) is checked before it
is stored, with the message it would get when used; others are stored as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete

from flightdeck.attrsubject import Subject
from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import resolve_hosts
from flightdeck.db.models import ApplianceAttr, GlobalAttr, HostAttr
from flightdeck.errors import NotFound
from flightdeck.services.base import writing
from flightdeck.services.inventory import find_appliance

# Read on Core in services.listings (no ORM import for `rocks list attr`); re-exported here.
from flightdeck.services.listings import list_appliance_attrs as list_appliance  # noqa: F401
from flightdeck.services.listings import list_global as list_global
from flightdeck.services.listings import list_host_attrs


def _count(result: object) -> int:
    """Rows a DELETE touched."""
    return cast(CursorResult[Any], result).rowcount


def _check(name: str, value: str, who: Subject) -> None:
    from flightdeck.services.validation import check

    check(attrs.check_attr_name(name), value, who)


def set_global(db: Database, name: str, value: str) -> None:
    _check(name, value, Subject("global"))
    with writing(db) as s:
        attrs.set_global(s, name, value)


def remove_global(db: Database, name: str) -> None:
    with writing(db) as s:
        if _count(s.execute(delete(GlobalAttr).where(GlobalAttr.name == name))) == 0:
            raise NotFound(f"there is no global attribute {name!r}")


def set_host(db: Database, exprs: Sequence[str], name: str, value: str) -> list[str]:
    with writing(db) as s:
        hosts = resolve_hosts(s, exprs, default_all=False)
        if hosts:
            _check(name, value, Subject("host", hosts[0].name))
        for h in hosts:
            attrs.set_host(s, h, name, value)
        return [h.name for h in hosts]


#: `list host attr`'s reading, on Core in services.listings (its name here kept for callers).
list_host = list_host_attrs


def remove_host(db: Database, exprs: Sequence[str], name: str) -> None:
    with writing(db) as s:
        hosts = resolve_hosts(s, exprs, default_all=False)
        removed = _count(
            s.execute(
                delete(HostAttr).where(
                    HostAttr.name == name, HostAttr.host_id.in_([h.id for h in hosts])
                )
            )
        )
        if removed == 0:
            raise NotFound(
                f"no host attribute {name!r} is set on {', '.join(h.name for h in hosts)}"
            )


def set_appliance(db: Database, appliances: Sequence[str], name: str, value: str) -> None:
    with writing(db) as s:
        found = [find_appliance(s, a) for a in appliances]
        if found:
            _check(name, value, Subject("appliance", found[0].name))
        for app in found:
            attrs.set_appliance(s, app.id, name, value)


def remove_appliance(db: Database, appliances: Sequence[str], name: str) -> None:
    with writing(db) as s:
        ids = [find_appliance(s, a).id for a in appliances]
        removed = _count(
            s.execute(
                delete(ApplianceAttr).where(
                    ApplianceAttr.name == name, ApplianceAttr.appliance_id.in_(ids)
                )
            )
        )
        if removed == 0:
            raise NotFound(f"no appliance attribute {name!r} is set on {', '.join(appliances)}")
