"""Virtual frontends' image installs: build and register the image, answer the installer.

The flow (docs/provisioning.md has the picture):

1. `rocks create frontend image` builds the image (`flightdeck.pxe.frontend_image`) and points the
   boot action `install vm frontend image` at the installer image, whose /init writes images.
   New virtual frontends install with that boot action (`add cluster`).
2. Starting such a frontend boots the installer with the image's and the identity's URLs and
   checksums (`flightdeck.services.frontend_identity`).
3. The boot server answers `GET /frontend/image/<sha256>` (the current or previous image),
   `GET /frontend/<mac>/identity`, `POST /frontend/<mac>/done` and `/failed`; the last three only
   from the address the database gives that MAC, as every install report.
4. On `done` the boot action becomes `os`; once the installer has powered the VM off, it is
   started again (`lifecycle.restart_when_off`), now from its own disk, and its first boot makes
   it a frontend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.models import BootAction, Cluster, Host, HostBoot, Interface
from flightdeck.errors import NotFound, PermissionDenied
from flightdeck.services.base import reading, writing
from flightdeck.services.frontend_identity import (
    FRONTEND_IMAGE_INSTALL,
    IMAGE_ATTR,
    snapshot_path,
)

if TYPE_CHECKING:
    from flightdeck.pxe.frontend_image import FrontendImage
    from flightdeck.pxe.image import Image

IMAGE_ARGS = "console=ttyS0"


@dataclass(frozen=True)
class ImageRegistered:
    """What `rocks create frontend image` built and registered."""

    image: FrontendImage
    installer: Image
    #: Virtual frontends that install with another boot action (the hint names them).
    others: list[tuple[str, str]]


def create_frontend_image(
    db: Database,
    dest: Path | None,
    cache: Path | None,
    *,
    wheel: Path | None = None,
    sources: Path | None = None,
    refresh: bool = False,
    say: Callable[[str], None] | None = None,
) -> ImageRegistered:
    """Build (or reuse) the frontend image, then register it, in one short transaction.

    The installer image (which writes the frontend image) is built or reused first. Nothing in
    the database changes when a build fails.
    """
    from flightdeck.pxe.frontend_image import build_frontend_image, default_dest
    from flightdeck.pxe.image import build_image

    installer = build_image()
    image = build_frontend_image(
        installer, dest, cache, wheel=wheel, sources=sources, refresh=refresh, say=say
    )
    where = Path(dest) if dest is not None else default_dest()
    with writing(db) as s:
        row = s.scalar(select(BootAction).where(BootAction.name == FRONTEND_IMAGE_INSTALL))
        if row is None:
            row = BootAction(name=FRONTEND_IMAGE_INSTALL)
            s.add(row)
        row.kernel, row.ramdisk = str(installer.kernel), str(installer.initrd)
        row.args = IMAGE_ARGS
        attrs.set_global(s, IMAGE_ATTR, str(where))
        others = [
            (h.name, h.install_action)
            for h in s.scalars(
                select(Host)
                .join(Cluster, Cluster.frontend_id == Host.id)
                .where(Host.install_action != FRONTEND_IMAGE_INSTALL)
                .order_by(Host.name)
            )
        ]
    return ImageRegistered(image, installer, others)


def image_file(db: Database, sha256: str) -> Path:
    """The image file whose bytes hash to `sha256`: the current image or the one before it."""
    from flightdeck.pxe.frontend_image import current

    with reading(db) as s:
        where = attrs.global_value(s, IMAGE_ATTR)
    if not where:
        raise NotFound("no frontend image is registered")
    image = current(Path(where))
    if image is not None and image.sha256 == sha256:
        return image.path
    older = Path(where) / f"frontend-{sha256[:16]}.img.gz"
    if older.is_file():
        return older  # the installer checks the full checksum as it streams
    raise NotFound(f"no frontend image {sha256[:16]}: it was rebuilt; install the VM again")


# The boot server's answers ------------------------------------------------------------------------


def _node(s: Session, mac: str, peer: str) -> tuple[Host, Interface]:
    row = s.execute(
        select(Host, Interface)
        .join(Interface, Interface.host_id == Host.id)
        .where(Interface.mac == mac)
    ).first()
    if row is None:
        raise NotFound(f"MAC {mac} is not in the database")
    host, iface = row[0], row[1]
    if not iface.ip or iface.ip != peer:
        raise PermissionDenied(
            f"request for {host.name} ({mac}) came from {peer}, not from its address "
            f"{iface.ip or '(none)'}"
        )
    if host.install_action != FRONTEND_IMAGE_INSTALL:
        raise PermissionDenied(f"{host.name} does not install from the frontend image")
    return host, iface


def identity_for(db: Database, mac: str, peer: str) -> bytes:
    """The identity snapshot of the VM with public MAC `mac`, only to that VM's own address."""
    with reading(db) as s:
        _node(s, mac, peer)
    try:
        return snapshot_path(mac).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no identity was prepared for {mac}: start the VM again") from None


def complete(
    db: Database, mac: str, peer: str, restart: Callable[[str], None] | None = None
) -> str:
    """An image install is done: boot action `os`, then (in the background) boot the VM again."""
    with writing(db) as s:
        host, _iface = _node(s, mac, peer)
        row = s.get(HostBoot, host.id)
        if row is None:
            s.add(HostBoot(host_id=host.id, action="os"))
        else:
            row.action = "os"
        name = host.name
    with contextlib.suppress(FileNotFoundError):
        snapshot_path(mac).unlink()
    if restart is not None:
        restart(name)
    return name


def reporter(db: Database, mac: str, peer: str) -> str:
    """The VM that may report on its image install from `peer` (NotFound, PermissionDenied).

    Also what a refusal (the installer's checksum did not match) comes to: it is logged, the
    boot action stays `install`.
    """
    with reading(db) as s:
        host, _iface = _node(s, mac, peer)
        return host.name
