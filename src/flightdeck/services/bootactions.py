"""Boot actions: named kernel + ramdisk + arguments (Rocks `bootaction`).

What a boot action holds ends up in an iPXE script (the `kernel` and `initrd` lines, and its
name in a message): every field is checked when it is added or set (`flightdeck.pxe.ipxe.problem`:
no `#`, `;`, `$`, `&&`, `||`, no control characters; a kernel or ramdisk is one word), and the
script renderer checks again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import Hosts, resolve_hosts
from flightdeck.db.models import BOOT_ACTIONS, BootAction, Host, HostBoot
from flightdeck.errors import Conflict, NotFound, UserError
from flightdeck.pxe.ipxe import problem
from flightdeck.services.base import writing
from flightdeck.services.domains import FRONTEND_INSTALL

if TYPE_CHECKING:
    from flightdeck.pxe.image import Image


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 128 or not name.isprintable():
        raise UserError(f"invalid boot action name {name!r}: 1-128 printable characters")
    why = problem(name)
    if why is not None:
        raise UserError(f"boot action name {name!r} cannot go into an iPXE script: {why}")
    return name


def _check_fields(name: str, fields: dict[str, str | None]) -> None:
    """Refuse a kernel, ramdisk or argument that iPXE would read as syntax."""
    for what, value in fields.items():
        if value is None:
            continue
        why = problem(value)
        if why is None and what in ("kernel", "ramdisk") and value.split() != [value]:
            why = "it has white space (one path or URL)"
        if why is not None:
            raise UserError(
                f"boot action {name!r}: {what} {value!r} cannot go into an iPXE script: {why}"
            )


def is_url(value: str) -> bool:
    """A kernel or ramdisk given as a URL is fetched by iPXE itself, not served from here."""
    return "://" in value


def check_files(name: str, kernel: str | None, ramdisk: str | None) -> None:
    """Refuse a boot action whose kernel or ramdisk names a file that is not on this frontend.

    The boot server serves these files to PXE-booting nodes, so they must exist here. Not
    checked: URLs (iPXE fetches them), and 'install vm frontend', whose files are read by the
    VM container's libvirtd, which may be another machine.
    """
    if name == FRONTEND_INSTALL:
        return
    for what, value in (("kernel", kernel), ("ramdisk", ramdisk)):
        if value and not is_url(value) and not os.path.isfile(value):
            raise UserError(
                f"boot action {name!r}: {what} {value} does not exist on this frontend: give an "
                "existing file (rocks create installer image builds one) or an http:// URL"
            )


def add_bootaction(
    db: Database, name: str, kernel: str | None, ramdisk: str | None, args: str | None
) -> None:
    with writing(db) as s:
        if s.scalar(select(BootAction.id).where(BootAction.name == _check_name(name))):
            raise Conflict(f"boot action {name!r} exists: change it with rocks set bootaction")
        _check_fields(name, {"kernel": kernel, "ramdisk": ramdisk, "args": args})
        check_files(name, kernel, ramdisk)
        s.add(BootAction(name=name, kernel=kernel, ramdisk=ramdisk, args=args))


def set_bootaction(db: Database, name: str, changes: dict[str, str | None]) -> None:
    with writing(db) as s:
        row = s.scalar(select(BootAction).where(BootAction.name == name))
        if row is None:
            raise NotFound(f"no boot action {name!r}: see rocks list bootaction")
        for key, value in changes.items():
            setattr(row, key, None if value is not None and value.lower() == "none" else value)
        _check_fields(row.name, {k: getattr(row, k) for k in changes})
        check_files(
            row.name,
            row.kernel if "kernel" in changes else None,
            row.ramdisk if "ramdisk" in changes else None,
        )


def set_host_boot(db: Database, exprs: Hosts, action: str) -> list[str]:
    """`rocks set host boot`: what hosts do at their next boot, in one transaction.

    `install` and `run` are refused for a host whose boot action (its install_action or
    run_action row) names a kernel or ramdisk file that is missing here: the node would PXE
    boot into a 404. A boot action that names no kernel at all is allowed (the node is told so
    on its console and boots its disk).
    """
    action = action.strip().lower()
    if action not in BOOT_ACTIONS:
        raise UserError(f"invalid boot action {action!r}: use install, os or run")
    with writing(db) as s:
        hosts = resolve_hosts(s, exprs, default_all=False)
        checked: set[str] = set()  # most hosts share one boot action: look it up once
        for h in hosts:
            name = h.install_action if action == "install" else h.run_action
            if action != "os" and name not in checked:
                row = s.scalar(select(BootAction).where(BootAction.name == name))
                if row is not None:
                    check_files(row.name, row.kernel, row.ramdisk)
                checked.add(name)
            boot = s.get(HostBoot, h.id)
            if boot is None:
                s.add(HostBoot(host_id=h.id, action=action))
            else:
                boot.action = action
        return [h.name for h in hosts]


def set_host_action(db: Database, exprs: Sequence[str], which: str, name: str) -> list[str]:
    """`rocks set host installaction|runaction`: which boot-action row a host's `install` (or
    `run`) boots, in one transaction.

    The row must exist, and its kernel and ramdisk must be here (the same check as `set host
    boot`), so a node is never pointed at a boot the boot server cannot serve.
    """
    if which not in ("install", "run"):
        raise UserError(f"invalid action kind {which!r}: install or run")
    with writing(db) as s:
        row = s.scalar(select(BootAction).where(BootAction.name == name.strip()))
        if row is None:
            raise NotFound(f"no boot action {name.strip()!r}: see rocks list bootaction")
        check_files(row.name, row.kernel, row.ramdisk)
        hosts = resolve_hosts(s, exprs, default_all=False)
        for h in hosts:
            if which == "install":
                h.install_action = row.name
            else:
                h.run_action = row.name
        return [h.name for h in hosts]


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
