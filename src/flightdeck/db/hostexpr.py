"""Host expressions: the ways a command line may name hosts, compiled to typed queries.

A host expression is a name, an interface name (e.g. `frontend-0-0-0-public`), a MAC, an IP,
an appliance (`compute`, `vm-container`), a rack (`rack0`), or a pattern with `%` or `*`
(`_` is literal; patterns ignore case on every database, as host names do in DNS).
Nothing the user types is ever executed as SQL: every form is a bound parameter, and a string
like `select * from hosts` is simply a name that matches nothing.

A host's own name must read as that name and nothing else (`check_plain_name`): a VM named
`rack0`, `compute` or `52-54-00-12-34-56`, once given as a target, would be every host of
rack 0, every compute node or a MAC's host. Such names are refused where hosts are named.

What was resolved once is never resolved again: `HostIds` carries hosts already found (by the
Airboss's authorisation, or by a first resolution in a service) to the layers below as ids. A
VM called `rack0` is, as an expression, every host of rack 0; as `HostIds` it is itself.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from sqlalchemy import Column, ColumnElement, Connection, select

from flightdeck.db.tables import appliances, hosts, interfaces
from flightdeck.errors import NotFound, UserError
from flightdeck.planner.macs import is_mac, normalize_mac

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from flightdeck.db.models import Host

RACK_RE = re.compile(r"^rack(\d+)$", re.IGNORECASE)
#: Longest expression we look at; longer input is refused before any query.
MAX_EXPR = 253

T = TypeVar("T")
#: Runs one host query: a condition on the `hosts` table (None: every host) and whether to sort
#: by `host_order()`; returns the matching hosts in whatever form the caller works with.
Fetch = Callable[[ColumnElement[bool] | None, bool], list[T]]


@dataclass(frozen=True)
class HostIds:
    """Hosts named by their database ids: resolved already, never read as an expression."""

    ids: tuple[int, ...]

    @classmethod
    def of(cls, *ids: int) -> HostIds:
        return cls(tuple(ids))


#: What the services accept wherever they name hosts: expressions from a command line, or ids.
Hosts = Sequence[str] | HostIds


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("_", "\\_")
    return escaped.replace("*", "%")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def grammar_clash(name: str, appliance_words: Iterable[str]) -> str | None:
    """What the host-expression grammar reads `name` as, when that is more than a host's name.

    `appliance_words` are the appliances' names and memberships (compared ignoring case, as a
    site may spell them either way). None when `name` can only ever mean itself.
    """
    if "%" in name or "*" in name:
        return "a pattern (% and * match other hosts)"
    m = RACK_RE.match(name)
    if m:
        return f"rack {int(m.group(1))} (every host in it)"
    if is_mac(name):
        return f"MAC address {normalize_mac(name)}"
    if _is_ip(name):
        return f"IP address {name}"
    words = {w.lower(): w for w in appliance_words}
    if name.lower() in words:
        return f"appliance {name.lower()!r} (every host of it)"
    return None


def check_plain_name(conn: Connection | Session, name: str) -> str:
    """`name`, if host expressions can only read it as this host's name; else a UserError.

    For every place a host gets its name (`add host`, `set host name=`, `add host vm name=`,
    `add cluster fe-name=`): the error names the clash and the way out.
    """
    words = [w for row in conn.execute(select(appliances.c.name, appliances.c.membership))
             for w in row if w]  # fmt: skip
    clash = grammar_clash(name, words)
    if clash is not None:
        raise UserError(
            f"host name {name!r} is read by host expressions as {clash}: "
            "choose another name, e.g. compute-0-0"
        )
    return name


def host_order() -> tuple[Column[Any], ...]:
    """The order hosts are listed in: rack, rank, then name (table columns: Core and ORM alike)."""
    return (hosts.c.rack, hosts.c.rank, hosts.c.name)


def _match_one(fetch: Fetch[T], expr: str) -> list[T]:
    # Written once on the Core tables; `fetch` decides whether rows come back as ORM hosts
    # (writers) or bare ids (read-only listings that must not import the ORM).
    h, i, a = hosts.c, interfaces.c, appliances.c
    if "%" in expr or "*" in expr:
        return fetch(h.name.ilike(_like(expr), escape="\\"), True)
    m = RACK_RE.match(expr)
    if m:
        return fetch(h.rack == int(m.group(1)), True)
    found = fetch(h.name == expr, False)[:1]
    if found:
        return found
    if is_mac(expr):
        return fetch(h.id.in_(select(i.host_id).where(i.mac == normalize_mac(expr))), False)
    if _is_ip(expr):
        return fetch(h.id.in_(select(i.host_id).where(i.ip == expr)), True)
    matched = fetch(h.id.in_(select(i.host_id).where(i.name == expr)), True)
    if matched:
        return matched
    appliance = select(a.id).where((a.name == expr) | (a.membership == expr))
    matched = fetch(h.appliance_id.in_(appliance), True)
    if matched:
        return matched
    # A fully-qualified name whose first label is a host (espresso.example.org -> espresso).
    if "." in expr and not _is_ip(expr):
        return fetch(h.name == expr.split(".", 1)[0], False)[:1]
    return []


def _by_ids(fetch: Fetch[T], ident: Callable[[T], int], given: HostIds) -> list[T]:
    """The hosts of `given`, in its order; NotFound when one is gone (removed meanwhile)."""
    if not given.ids:
        raise UserError("name at least one host")
    found = {ident(row): row for row in fetch(hosts.c.id.in_(sorted(set(given.ids))), False)}
    missing = [i for i in given.ids if i not in found]
    if missing:
        raise NotFound(f"host id {missing[0]} does not exist (any more)")
    return [found[i] for i in dict.fromkeys(given.ids)]


def _resolve(
    fetch: Fetch[T], ident: Callable[[T], int], exprs: Hosts, default_all: bool
) -> list[T]:
    if isinstance(exprs, HostIds):
        return _by_ids(fetch, ident, exprs)
    if not exprs:
        if not default_all:
            raise UserError("name at least one host")
        return fetch(None, True)
    seen: set[int] = set()
    result: list[T] = []
    for expr in exprs:
        if len(expr) > MAX_EXPR or not expr.strip():
            raise NotFound(f"unknown host {expr[:40]!r}{'...' if len(expr) > 40 else ''}")
        matched = _match_one(fetch, expr.strip())
        if not matched:
            raise NotFound(f"unknown host {expr!r}: see 'rocks list host' for the hosts there are")
        for row in matched:
            key = ident(row)
            if key not in seen:
                seen.add(key)
                result.append(row)
    return result


def resolve_hosts(session: Session, exprs: Hosts, *, default_all: bool = True) -> list[Host]:
    """The hosts named by `exprs`, deduplicated, in the order given (each expression sorted).

    No expressions means every host when `default_all`. An expression matching nothing is a
    NotFound naming it. `HostIds` are looked up by id only, never as expressions.
    """
    from flightdeck.db.models import Host

    def fetch(where: ColumnElement[bool] | None, ordered: bool) -> list[Host]:
        query = select(Host)
        if where is not None:
            query = query.where(where)
        if ordered:
            query = query.order_by(*host_order())
        return list(session.scalars(query))

    return _resolve(fetch, lambda host: host.id, exprs, default_all)


def resolve_host_ids(conn: Connection, exprs: Hosts, *, default_all: bool = True) -> list[int]:
    """`resolve_hosts` on a Core connection: the same hosts, as ids, without the ORM."""

    def fetch(where: ColumnElement[bool] | None, ordered: bool) -> list[int]:
        query = select(hosts.c.id)
        if where is not None:
            query = query.where(where)
        if ordered:
            query = query.order_by(*host_order())
        return list(conn.scalars(query))

    return _resolve(fetch, lambda host_id: host_id, exprs, default_all)


def resolve_host(session: Session, expr: str | HostIds) -> Host:
    """Exactly one host: an expression matching several is an error naming them."""
    hosts = resolve_hosts(session, expr if isinstance(expr, HostIds) else [expr], default_all=False)
    if len(hosts) != 1:
        _not_one(expr, [h.name for h in hosts[:5]], len(hosts))
    return hosts[0]


def resolve_host_id(conn: Connection, expr: str) -> tuple[int, str]:
    """`resolve_host` on a Core connection: exactly one host, as (id, name)."""
    ids = resolve_host_ids(conn, [expr], default_all=False)
    named = select(hosts.c.id, hosts.c.name).where(hosts.c.id.in_(ids[:5]))
    found = dict(conn.execute(named).tuples().all())
    if len(ids) != 1:
        _not_one(expr, [found[i] for i in ids[:5]], len(ids))
    return ids[0], found[ids[0]]


def _not_one(expr: str | HostIds, names: list[str], count: int) -> NoReturn:
    raise UserError(f"{expr!r} names {count} hosts ({', '.join(names)}...): name exactly one host")


def host_names(hosts: Iterable[Host]) -> list[str]:
    return [h.name for h in hosts]
