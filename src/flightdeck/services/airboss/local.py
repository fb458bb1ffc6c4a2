"""The owner's side on a frontend: what `rocks ... key=` reads from this frontend's database.

On a frontend (the physical one, or a virtual one running its own Flightdeck) the owner
commands behave as the original (reference §2.5): a host name this database knows is sent as
its first MAC (the one identifier the physical side and a virtual frontend share), and the
Airboss is found in the `airboss` attribute. Anyone may run these commands, so the callers
treat a database that cannot be opened as "no local knowledge", not as an error.
"""

from __future__ import annotations

import os

from sqlalchemy import select

from flightdeck.api.wire import MAX_TARGET
from flightdeck.db.attrs import global_value
from flightdeck.db.engine import Database
from flightdeck.db.models import Host, Interface
from flightdeck.services.base import reading


def first_mac(db: Database, name: str) -> str | None:
    """The first MAC (by device) of the host called exactly `name`, if this database has it."""
    if not name or len(name) > MAX_TARGET or os.sep in name:
        return None
    with reading(db) as s:
        host = s.scalar(select(Host).where(Host.name == name))
        if host is None:
            return None
        return s.scalar(
            select(Interface.mac)
            .where(Interface.host_id == host.id, Interface.mac.is_not(None))
            .order_by(Interface.device)
            .limit(1)
        )


def airboss_attribute(db: Database) -> str | None:
    """The `airboss` attribute (where this site's Airboss is), if set."""
    with reading(db) as s:
        return global_value(s, "airboss")
