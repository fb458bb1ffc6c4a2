"""Boot actions: named kernel + ramdisk + arguments (Rocks `bootaction`)."""

from __future__ import annotations

from sqlalchemy import select

from flightdeck.db.engine import Database
from flightdeck.db.models import BootAction, Host
from flightdeck.errors import Conflict, NotFound, UserError
from flightdeck.services.base import writing


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 128 or any(c in name for c in "\n\r\x00"):
        raise UserError(f"invalid boot action name {name!r}: 1-128 printable characters")
    return name


def add_bootaction(
    db: Database, name: str, kernel: str | None, ramdisk: str | None, args: str | None
) -> None:
    with writing(db) as s:
        if s.scalar(select(BootAction.id).where(BootAction.name == _check_name(name))):
            raise Conflict(f"boot action {name!r} exists: change it with rocks set bootaction")
        s.add(BootAction(name=name, kernel=kernel, ramdisk=ramdisk, args=args))


def set_bootaction(db: Database, name: str, changes: dict[str, str | None]) -> None:
    with writing(db) as s:
        row = s.scalar(select(BootAction).where(BootAction.name == name))
        if row is None:
            raise NotFound(f"no boot action {name!r}: see rocks list bootaction")
        for key, value in changes.items():
            setattr(row, key, None if value is not None and value.lower() == "none" else value)


def remove_bootaction(db: Database, name: str) -> None:
    with writing(db) as s:
        row = s.scalar(select(BootAction).where(BootAction.name == name))
        if row is None:
            raise NotFound(f"no boot action {name!r}: see rocks list bootaction")
        users = s.scalars(
            select(Host.name)
            .where((Host.install_action == name) | (Host.run_action == name))
            .limit(3)
        ).all()
        if users:
            raise Conflict(f"boot action {name!r} is used by {', '.join(users)}")
        s.delete(row)
