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
from sqlalchemy.orm import Session

from flightdeck.api.wire import MAX_TARGET
from flightdeck.db.attrs import global_value
from flightdeck.db.engine import Database
from flightdeck.db.models import VM, Appliance, Host, HostBoot, Interface
from flightdeck.planner.macs import is_mac, normalize_mac
from flightdeck.services.base import reading, writing


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


def is_this_frontend(db: Database, target: str) -> bool:
    """Whether `target` (a MAC or a host name) is this machine: the frontend this database was
    made on (`rocks init frontend`: appliance frontend, not a VM of it).

    On a virtual frontend the owner's `rocks set cluster power <itself>` must leave the
    frontend alone (it runs there); the original likewise skipped "the local frontend". On the
    physical frontend a virtual frontend is a VM of this database, so never this machine.
    """
    if not target or len(target) > MAX_TARGET:
        return False
    with reading(db) as s:
        q = select(Host.id).join(Appliance, Appliance.id == Host.appliance_id)
        q = q.where(Appliance.name == "frontend", ~Host.id.in_(select(VM.host_id)))
        if is_mac(target):
            q = q.join(Interface, Interface.host_id == Host.id).where(
                Interface.mac == normalize_mac(target)
            )
        else:  # its name, or the name of one of its interfaces (its public FQDN)
            named = select(Interface.host_id).where(Interface.name == target)
            q = q.where((Host.name == target) | Host.id.in_(named))
        return s.scalar(q.limit(1)) is not None


def names_by_mac(db: Database, macs: list[str]) -> dict[str, str]:
    """MAC -> the name of the host of this database with that MAC (on a virtual frontend: the
    nodes' virtual-side names, compute-0-0 for hosted-vm-0-0-1)."""
    wanted = _macs(macs)
    if not wanted:
        return {}
    with reading(db) as s:
        rows = s.execute(
            select(Interface.mac, Host.name)
            .join(Host, Host.id == Interface.host_id)
            .where(Interface.mac.in_(wanted))
        ).all()
    return {mac: name for mac, name in rows if mac}


def airboss_attribute(db: Database) -> str | None:
    """The `airboss` attribute (where this site's Airboss is), if set."""
    with reading(db) as s:
        return global_value(s, "airboss")


def _macs(given: list[str]) -> list[str]:
    """The MACs among `given`, normalized, each once (anything not a MAC is ignored)."""
    return sorted({normalize_mac(m) for m in given if is_mac(m)})


def _host_ids(s: Session, macs: list[str]) -> set[int]:
    """The ids of this database's hosts with these MACs (anything not a MAC is ignored)."""
    wanted = _macs(macs)
    if not wanted:
        return set()
    return set(s.scalars(select(Interface.host_id).where(Interface.mac.in_(wanted))).all())


def mark_install(db: Database, macs: list[str]) -> dict[int, str | None]:
    """Boot action `install` for the hosts of this database with these MACs; what each had.

    An owner's `power install` reaches the VM through the Airboss, but the machine that
    PXE-serves it is the frontend whose database names it: on a virtual frontend, that is this
    one, whose boot action for compute-0-0 the physical side cannot set. So `rocks` sets it
    here first (one transaction) and `restore` puts it back for a target the Airboss refused.
    Returns host id -> previous action (None: the host had no boot row).
    """
    if not any(is_mac(m) for m in macs):
        return {}  # names sent as they are: nothing of this database's to mark
    before: dict[int, str | None] = {}
    with writing(db) as s:
        for host_id in sorted(_host_ids(s, macs)):
            row = s.get(HostBoot, host_id)
            before[host_id] = None if row is None else row.action
            if row is None:
                s.add(HostBoot(host_id=host_id, action="install"))
            else:
                row.action = "install"
    return before


def restore(db: Database, before: dict[int, str | None], refused: list[str]) -> None:
    """Put back the boot actions `mark_install` replaced, for the refused MACs."""
    if not before or not refused:
        return
    with writing(db) as s:
        for host_id in _host_ids(s, refused) & before.keys():
            action, row = before[host_id], s.get(HostBoot, host_id)
            if action is None:
                if row is not None:
                    s.delete(row)
            elif row is not None:
                row.action = action
            else:
                s.add(HostBoot(host_id=host_id, action=action))
