"""Boot actions: named kernel + ramdisk + arguments (Rocks `bootaction`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from flightdeck.db.engine import Database
from flightdeck.db.models import BootAction, Host
from flightdeck.errors import Conflict, NotFound, UserError
from flightdeck.services.base import writing
from flightdeck.services.domains import FRONTEND_INSTALL

if TYPE_CHECKING:
    from flightdeck.pxe.image import Image


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


# The installer image ---------------------------------------------------------------------------

#: The boot action computes install with (PXE); the virtual frontend uses FRONTEND_INSTALL.
INSTALL = "install"
SERIAL_CONSOLE = "console=ttyS0"
#: The installer image's /init writes its stamp to the disk when it sees fd.stamp=1.
INSTALL_ARGS = f"{SERIAL_CONSOLE} fd.stamp=1"


def with_serial_console(args: str | None) -> str:
    """`args` with `console=ttyS0` as the last console= word.

    The kernel makes the last `console=` /dev/console, and the installer prints its marker
    there: a serial console that is present but followed by `console=tty0` would print it on
    the VGA screen, where neither the tests nor the Airboss's serial console can read it.
    """
    words = (args or "").split()
    consoles = [w for w in words if w.startswith("console=")]
    if consoles and consoles[-1] == SERIAL_CONSOLE:
        return " ".join(words)
    return " ".join([*(w for w in words if w != SERIAL_CONSOLE), SERIAL_CONSOLE])


@dataclass(frozen=True)
class InstallerRegistered:
    """What `rocks create installer image` built and which boot actions now use it."""

    image: Image
    #: (boot action, kernel, ramdisk, args) as now stored.
    actions: list[tuple[str, str, str, str]]


def create_installer(db: Database, dest: Path | None, cache: Path | None) -> InstallerRegistered:
    """Build (or reuse) the installer image and point the install boot actions at it.

    `install vm frontend` (a virtual frontend's direct kernel boot) keeps its arguments, made
    to end with the serial console; `install` (PXE installs) is added or replaced with
    `console=ttyS0 fd.stamp=1`. The image is built before the transaction, which then only
    changes the two rows, so a failed build changes nothing in the database.
    """
    from flightdeck.pxe.image import build_image  # only this command needs the builder

    image = build_image(dest, cache)
    kernel, ramdisk = str(image.kernel), str(image.initrd)
    actions = []
    with writing(db) as s:
        for name in (FRONTEND_INSTALL, INSTALL):
            row = s.scalar(select(BootAction).where(BootAction.name == name))
            if row is None:
                row = BootAction(name=name)
                s.add(row)
            row.kernel, row.ramdisk = kernel, ramdisk
            row.args = with_serial_console(row.args) if name == FRONTEND_INSTALL else INSTALL_ARGS
            actions.append((name, kernel, ramdisk, row.args))
    return InstallerRegistered(image, actions)
