"""Consoles: where a VM's VNC server and serial port are reached, and opening them.

Database only (`console_place`), then libvirt (`vnc_endpoint`, `open_serial`) for the relay in
`flightdeck.airboss.console`, which the Airboss runs on its per-container pool.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.models import VM
from flightdeck.errors import ActionFailed
from flightdeck.services.airboss.access import Target
from flightdeck.services.base import reading

if TYPE_CHECKING:
    from flightdeck.virt.console import SerialStream


@dataclass(frozen=True)
class ConsolePlace:
    """Where a VM's consoles are: its container, and the address its VNC server listens on."""

    vm: str
    container: str
    uri: str
    #: The address the Airboss connects to for VNC; None when there is no reachable one
    #: (`vnc_problem` says why).
    vnc_host: str | None
    vnc_problem: str | None = None


def _uri_host(uri: str) -> str | None:
    """The host of a libvirt URI; None for a local one (`qemu:///system`, `test:///...`)."""
    try:
        host = urllib.parse.urlsplit(uri).hostname
    except ValueError:
        return None
    return None if not host or host == "localhost" else host


def console_place(db: Database, target: Target) -> ConsolePlace:
    """Where the target VM's consoles are reached (database only).

    The VNC address: loopback for a container that is this machine (its libvirt URI has no
    host), else the container's `vnc_listen` attribute, the address its VMs' VNC servers
    listen on (the designer's default, 127.0.0.1, is reachable only from the container
    itself: then there is no VNC console through the Airboss, and the message says which
    attribute to set). `0.0.0.0` / `::` mean the container's own address (its URI's host).
    Serial consoles need none of this: they go through libvirt's stream, remote or not.
    """
    from flightdeck.services.domains import container_uris

    with reading(db) as s:
        vm = s.scalar(select(VM).where(VM.host_id == target.host_id))
        if vm is None or vm.container is None:
            raise ActionFailed(f"{target.name} has no container: ask the administrator")
        uri = container_uris(s, [vm.container])[vm.container.id]
        remote = _uri_host(uri)
        host: str | None = "127.0.0.1"
        problem = None
        if remote is not None:
            listen = (attrs.resolve(s, vm.container, "vnc_listen") or "").strip()
            if listen in ("0.0.0.0", "::", "[::]"):
                host = remote
            elif not listen or listen.startswith("127.") or listen in ("::1", "localhost"):
                host = None
                problem = (
                    f"the VNC console of {target.name} is not reachable from the Airboss: ask "
                    f"the administrator to set the vnc_listen attribute of {vm.container.name} "
                    "to an address of that container the frontend reaches"
                )
            else:
                host = listen
        return ConsolePlace(target.name, vm.container.name, uri, host, problem)


def vnc_endpoint(place: ConsolePlace) -> tuple[str, int]:
    """(address, TCP port) of the running VM's VNC server (asks libvirt for the port)."""
    from flightdeck.virt import hypervisor as hv
    from flightdeck.virt.console import vnc_port

    if place.vnc_host is None:
        raise ActionFailed(place.vnc_problem or f"{place.vm} has no reachable VNC console")
    return place.vnc_host, vnc_port(hv.connect(place.container, place.uri), place.vm)


def open_serial(place: ConsolePlace) -> SerialStream:
    """The running VM's serial console, attached (takes it over from an earlier session)."""
    from flightdeck.virt import hypervisor as hv
    from flightdeck.virt.console import SerialStream

    return SerialStream.open(hv.connect(place.container, place.uri), place.vm)
