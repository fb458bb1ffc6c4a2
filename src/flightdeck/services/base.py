"""What every service shares: the write transaction and the translation of integrity errors.

Services are the only place that opens a transaction. A service does all of its work inside
one `writing(db)` block, so an error anywhere leaves the database as it was; a uniqueness race
that slipped past a service's own checks comes back as a Conflict naming the clash.

Read-only listings use `reading_core(db)`: a Core connection on `flightdeck.db.tables`, so the
command never imports `sqlalchemy.orm` (this module does not import it either, but for typing).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from flightdeck.db.engine import Database
from flightdeck.errors import Conflict

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_CONSTRAINTS = {
    "hosts.name": "a host with that name already exists",
    "uq_hosts_name": "a host with that name already exists",
    "interfaces.mac": "that MAC address is already used by another interface",
    "uq_interfaces_mac": "that MAC address is already used by another interface",
    "interfaces.network_id, interfaces.ip": "that IP address is already used on that network",
    "uq_interfaces_network_id_ip": "that IP address is already used on that network",
    "interfaces.host_id, interfaces.device": "the host already has an interface of that name",
    "uq_interfaces_host_id_device": "the host already has an interface of that name",
    "clusters.vlan": "that VLAN is already used by another cluster",
    "uq_clusters_vlan": "that VLAN is already used by another cluster",
}


def integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig)
    for key, message in _CONSTRAINTS.items():
        if re.search(re.escape(key) + r"\b", text):
            return message
    first = text.strip().splitlines()[0] if text.strip() else type(exc.orig).__name__
    return f"the change conflicts with existing data ({first})"


@contextlib.contextmanager
def writing(db: Database) -> Iterator[Session]:
    """One write transaction; IntegrityError becomes a Conflict, nothing is kept."""
    try:
        with db.transaction(write=True) as session:
            yield session
    except IntegrityError as exc:
        raise Conflict(integrity_message(exc)) from None


@contextlib.contextmanager
def reading(db: Database) -> Iterator[Session]:
    with db.transaction(write=False) as session:
        yield session


@contextlib.contextmanager
def reading_core(db: Database) -> Iterator[Connection]:
    """One read transaction on a Core connection (same snapshot rules as `reading`)."""
    with db.reading_core() as conn:
        yield conn
