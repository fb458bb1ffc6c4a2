"""CD-ROM images for owners: the catalogue of the VM's container, and the drive's image.

Only images in the ISO directory of the VM's container (attribute `kvm_iso_dir`) are offered,
named by their file name; the catalogue is read through libvirt's storage API
(`virt.isos`), so it works for remote containers and never follows a link out of the
directory.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from sqlalchemy import select

from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.models import VM
from flightdeck.errors import ActionFailed, UserError
from flightdeck.services.airboss.access import Target, recheck
from flightdeck.services.base import reading, writing

#: Longest CD-ROM image name accepted (a file name's limit on Linux).
MAX_ISO_NAME = 255


@dataclass(frozen=True)
class IsoPlace:
    """Where a VM's CD-ROM images come from: its container and that container's ISO directory."""

    container: str
    uri: str
    directory: str


def iso_place(db: Database, target: Target) -> IsoPlace:
    """The container and `kvm_iso_dir` of the target VM (an error when either is missing)."""
    from flightdeck.services.domains import container_uris

    with reading(db) as s:
        vm = s.scalar(select(VM).where(VM.host_id == target.host_id))
        if vm is None or vm.container is None:
            raise ActionFailed(f"{target.name} has no container: ask the administrator")
        directory = attrs.resolve(s, vm.container, "kvm_iso_dir")
        if not directory or not posixpath.isabs(directory):
            raise ActionFailed(
                f"no ISO directory is configured for {target.name}'s container: ask the "
                "administrator to set the kvm_iso_dir attribute"
            )
        uri = container_uris(s, [vm.container])[vm.container.id]
        return IsoPlace(vm.container.name, uri, posixpath.normpath(directory))


def _catalogue(place: IsoPlace) -> dict[str, str]:
    from flightdeck.virt import hypervisor as hv
    from flightdeck.virt.isos import iso_catalogue

    conn = hv.connect(place.container, place.uri)
    return iso_catalogue(conn, place.directory)


def iso_images(db: Database, target: Target) -> list[str]:
    """The names of the images the target VM's CD-ROM may hold."""
    return sorted(_catalogue(iso_place(db, target)))


def iso_name(text: str, directory: str) -> str:
    """The image file name `text` asks for, relative to the ISO `directory`; `UserError` else.

    Accepted: a bare file name (`debian-12.iso`) or an absolute path directly in the directory.
    Refused: `..` or `.`, other directories, subdirectories, control characters, names that
    start with `-` or are longer than a file name can be.
    """
    if not text or len(text) > 1024 or any(not c.isprintable() for c in text):
        raise UserError("cdrom must be the name of an image in the ISO directory, or none")
    name = text
    if text.startswith("/"):
        if ".." in text.split("/"):
            raise UserError("cdrom may not contain '..'")
        parent, name = posixpath.split(posixpath.normpath(text))
        if parent != directory:
            raise UserError(
                f"cdrom {text!r} is not in the ISO directory {directory}: give an image's name"
            )
    if "/" in name or name in (".", "..") or name.startswith("-") or len(name) > MAX_ISO_NAME:
        raise UserError(
            "cdrom must be the name of an image in the ISO directory (no '/', '..' or "
            "leading '-'), or none"
        )
    return name


def set_iso(db: Database, keyid: str, target: Target, cdrom: str) -> str | None:
    """Put image `cdrom` (or `none`: nothing) in the VM's CD-ROM drive for its next start.

    The image must be in the catalogue of the VM's container (`virt.isos`). The key's right on
    the VM (by its id) is checked again in the transaction that writes the change, so a key
    removed in the meantime changes nothing.
    """
    clear = cdrom.strip().lower() == "none"
    path: str | None = None
    if not clear:
        place = iso_place(db, target)
        name = iso_name(cdrom, place.directory)
        catalogue = _catalogue(place)
        if name not in catalogue:
            raise UserError(
                f"there is no image {name!r} in the ISO directory of {target.name}'s container "
                f"({len(catalogue)} image(s) there: ask for the list)"
            )
        path = catalogue[name]
    with writing(db) as s:
        recheck(s, keyid, target)
        vm = s.scalar(select(VM).where(VM.host_id == target.host_id))
        assert vm is not None  # recheck found it
        vm.cdrom_path = path
    return path
