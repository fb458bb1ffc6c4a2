"""The ISO catalogue of a container: the images an owner may put in a VM's CD-ROM drive.

The original accepted any absolute path that had no `..` in it (reference §4.4, §4.7.10), so an
owner could attach `/etc/shadow` or another tenant's disk as a CD-ROM. Here an owner names an
image of the container's ISO directory (attribute `kvm_iso_dir`), and only what this module
lists is accepted: the regular files directly in that directory.

* A container on this machine (a libvirt URI without a host: `qemu:///system`, `test:///...`)
  is read on the local file system. A symbolic link is listed only when it resolves to a
  regular file inside the directory itself; one that leads out (`evil.iso -> /etc/shadow`) is
  left out, and so are directories, devices and sockets.
* A remote container is read through the libvirt storage API (a directory pool on
  `kvm_iso_dir`, which works over any libvirt transport): its file volumes. libvirt follows
  symbolic links when it lists a directory pool and does not say which entries are links, so on
  a remote container the administrator must keep links out of the ISO directory (it is theirs;
  owners cannot write to it).
"""

from __future__ import annotations

import os
import stat
from urllib.parse import urlsplit

from flightdeck.errors import NotFound
from flightdeck.virt.hypervisor import Hypervisor

#: More than this many entries in an ISO directory is not a catalogue: listing stops there.
MAX_ENTRIES = 10_000


def is_local(uri: str) -> bool:
    """True when `uri` reaches the libvirt of this machine (no host in the URI)."""
    return not urlsplit(uri).netloc


def _local(directory: str) -> dict[str, str]:
    real_dir = os.path.realpath(directory)
    try:
        entries = list(os.scandir(real_dir))[:MAX_ENTRIES]
    except FileNotFoundError:
        raise NotFound(f"the ISO directory {directory} does not exist") from None
    except OSError as exc:
        raise NotFound(f"the ISO directory {directory} cannot be read: {exc.strerror}") from None
    found: dict[str, str] = {}
    for entry in entries:
        path = os.path.join(directory, entry.name)
        try:
            if entry.is_symlink():
                # The resolved file is what the VM gets, so a link swapped later changes nothing.
                path = os.path.realpath(entry.path)
                if os.path.dirname(path) != real_dir:
                    continue  # leads out of the directory (or into a subdirectory)
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue
            elif not entry.is_file(follow_symlinks=False):
                continue
        except OSError:
            continue  # vanished, or a dangling link
        found[entry.name] = path
    return found


def _remote(conn: Hypervisor, directory: str) -> dict[str, str]:
    pool = conn.pool_for(directory)
    found: dict[str, str] = {}

    def listing() -> list[tuple[str, str]]:
        pool.refresh(0)
        out = []
        for vol in pool.listAllVolumes(0)[:MAX_ENTRIES]:
            if vol.info()[0] == 0:  # VIR_STORAGE_VOL_FILE
                out.append((vol.name(), vol.path()))
        return out

    with conn._storage():  # no refresh while another thread creates a volume there
        listed = conn._call(f"listing the ISO directory {directory}", listing)
    for name, path in listed:
        if "/" not in name and os.path.dirname(path) == os.path.normpath(directory):
            found[name] = path
    return found


def iso_catalogue(conn: Hypervisor, directory: str) -> dict[str, str]:
    """The images of `directory` on the container of `conn`: file name -> absolute path."""
    directory = os.path.normpath(directory)
    if is_local(conn.uri):
        return _local(directory)
    return _remote(conn, directory)
