"""Host expressions: the ways a command line may name hosts, compiled to typed queries.

A host expression is a name, an interface name (e.g. `frontend-0-0-0-public`), a MAC, an IP,
an appliance (`compute`, `vm-container`), a rack (`rack0`), or a pattern with `%` or `*`
(`_` is literal; patterns ignore case on every database, as host names do in DNS).
Nothing the user types is ever executed as SQL: every form is a bound parameter, and a string
like `select * from hosts` is simply a name that matches nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from flightdeck.db.models import Appliance, Host, Interface
from flightdeck.errors import NotFound, UserError
from flightdeck.planner.macs import is_mac, normalize_mac

RACK_RE = re.compile(r"^rack(\d+)$", re.IGNORECASE)
#: Longest expression we look at; longer input is refused before any query.
MAX_EXPR = 253


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("_", "\\_")
    return escaped.replace("*", "%")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_order() -> tuple[InstrumentedAttribute[Any], ...]:
    """The order hosts are listed in: rack, rank, then name."""
    return (Host.rack, Host.rank, Host.name)


def _match_one(session: Session, expr: str) -> list[Host]:
    base: Select[tuple[Host]] = select(Host)
    if "%" in expr or "*" in expr:
        return list(
            session.scalars(
                base.where(Host.name.ilike(_like(expr), escape="\\")).order_by(*host_order())
            )
        )
    m = RACK_RE.match(expr)
    if m:
        return list(
            session.scalars(base.where(Host.rack == int(m.group(1))).order_by(*host_order()))
        )
    host = session.scalars(base.where(Host.name == expr)).first()
    if host is not None:
        return [host]
    if is_mac(expr):
        iface_host = select(Interface.host_id).where(Interface.mac == normalize_mac(expr))
        return list(session.scalars(base.where(Host.id.in_(iface_host))))
    if _is_ip(expr):
        iface_host = select(Interface.host_id).where(Interface.ip == expr)
        return list(session.scalars(base.where(Host.id.in_(iface_host)).order_by(*host_order())))
    by_iface = select(Interface.host_id).where(Interface.name == expr)
    hosts = list(session.scalars(base.where(Host.id.in_(by_iface)).order_by(*host_order())))
    if hosts:
        return hosts
    appliance = select(Appliance.id).where(
        (Appliance.name == expr) | (Appliance.membership == expr)
    )
    hosts = list(
        session.scalars(base.where(Host.appliance_id.in_(appliance)).order_by(*host_order()))
    )
    if hosts:
        return hosts
    # A fully-qualified name whose first label is a host (espresso.example.org -> espresso).
    if "." in expr and not _is_ip(expr):
        short = expr.split(".", 1)[0]
        host = session.scalars(base.where(Host.name == short)).first()
        if host is not None:
            return [host]
    return []


def resolve_hosts(
    session: Session, exprs: Sequence[str], *, default_all: bool = True
) -> list[Host]:
    """The hosts named by `exprs`, deduplicated, in the order given (each expression sorted).

    No expressions means every host when `default_all`. An expression matching nothing is a
    NotFound naming it.
    """
    if not exprs:
        if not default_all:
            raise UserError("name at least one host")
        return list(session.scalars(select(Host).order_by(*host_order())))
    seen: set[int] = set()
    result: list[Host] = []
    for expr in exprs:
        if len(expr) > MAX_EXPR or not expr.strip():
            raise NotFound(f"unknown host {expr[:40]!r}{'...' if len(expr) > 40 else ''}")
        matched = _match_one(session, expr.strip())
        if not matched:
            raise NotFound(f"unknown host {expr!r}: see 'rocks list host' for the hosts there are")
        for h in matched:
            if h.id not in seen:
                seen.add(h.id)
                result.append(h)
    return result


def resolve_host(session: Session, expr: str) -> Host:
    """Exactly one host: an expression matching several is an error naming them."""
    hosts = resolve_hosts(session, [expr], default_all=False)
    if len(hosts) != 1:
        names = ", ".join(h.name for h in hosts[:5])
        raise UserError(f"{expr!r} names {len(hosts)} hosts ({names}...): name exactly one host")
    return hosts[0]


def host_names(hosts: Iterable[Host]) -> list[str]:
    return [h.name for h in hosts]
