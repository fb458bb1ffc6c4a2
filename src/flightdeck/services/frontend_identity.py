"""A virtual frontend's image install: its identity and the installer's kernel command line.

Starting a virtual frontend whose boot action is `install` and whose install action is
`install vm frontend image` boots the installer image directly (libvirt kernel boot). Its command
line, made here, carries the URLs of the frontend image and of the VM's identity on the boot
server's public listener and the SHA-256 of both, and the VM's public address. The identity (a tar
rendered by `flightdeck.pxe.identity` from this database) is written to a root-only snapshot in the
same read transaction the command line is made in, so what the VM fetches is exactly what was
hashed. `flightdeck.services.frontend_image` builds the image and answers the installer.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from flightdeck import config
from flightdeck.db import attrs
from flightdeck.db.models import Cluster, Host, HostBoot, Interface, Route
from flightdeck.db.models import PublicKey as KeyRow
from flightdeck.errors import NotFound, UserError
from flightdeck.planner.cluster import FRONTEND_INSTALL
from flightdeck.pxe import identity as ident

if TYPE_CHECKING:
    from flightdeck.pxe.frontend_image import FrontendImage

#: The boot action of an image install (the planner gives it to new virtual frontends).
FRONTEND_IMAGE_INSTALL = FRONTEND_INSTALL
#: Where `rocks create frontend image` put the image (a directory with image.json).
IMAGE_ATTR = "kvm_frontend_image"
#: The Airboss a virtual frontend's owner commands use when nothing else is configured: the
#: physical frontend's, through the guide's `ssh -L 8677:localhost:8677` tunnel.
DEFAULT_AIRBOSS = "localhost:8677"
#: A virtual frontend's own private address, as a Rocks frontend's (eth0, on the cluster VLAN).
PRIVATE_IP = "10.1.1.1"
PRIVATE_NETMASK = "255.255.0.0"


def identity_dir() -> Path:
    return config.state_dir() / "frontend" / "identity"


def snapshot_path(mac: str) -> Path:
    return identity_dir() / f"{mac.replace(':', '-')}.tar"


def current_image(s: Session) -> FrontendImage:
    """The registered frontend image (FrontendImage); NotFound naming the command that builds it."""
    from flightdeck.pxe.frontend_image import current

    where = attrs.global_value(s, IMAGE_ATTR)
    image = current(Path(where)) if where else None
    if image is None:
        raise NotFound(
            "no frontend image is built"
            + (f" in {where}" if where else "")
            + ": run rocks create frontend image"
        )
    return image


def is_image_install(s: Session, host: Host) -> bool:
    """Whether `host` is due to install from the frontend image (kernel boot of the installer)."""
    boot = s.get(HostBoot, host.id)
    return (
        host.install_action == FRONTEND_IMAGE_INSTALL
        and boot is not None
        and boot.action == "install"
    )


# Identity -----------------------------------------------------------------------------------------


def _interfaces(s: Session, host: Host) -> tuple[Interface, Interface]:
    public = next(
        (i for i in host.interfaces if i.network and i.network.name == "public" and i.mac), None
    )
    private = next(
        (i for i in host.interfaces if i.vlan and i.mac and i is not public),
        None,
    )
    if public is None or not public.ip or private is None:
        raise UserError(
            f"{host.name} is not a virtual frontend with a public and a private (VLAN) interface: "
            "only frontends made by rocks add cluster install from the frontend image"
        )
    return public, private


def _ssh_keys(s: Session, host: Host) -> list[str]:
    from flightdeck.crypto.keys import parse_public_key, public_key_to_openssh

    out = []
    for row in s.scalars(select(KeyRow).where(KeyRow.host_id == host.id).order_by(KeyRow.id)):
        comment = f"flightdeck-key-{row.id}"
        out.append(public_key_to_openssh(parse_public_key(row.public_key), comment))
    return out


#: This frontend's ssh host keys, the default of attribute airboss_tunnel_host_keys.
HOST_KEY_FILES = (
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/ssh/ssh_host_ecdsa_key.pub",
    "/etc/ssh/ssh_host_rsa_key.pub",
)


def _host_keys(value: str | None) -> list[str]:
    """The physical frontend's ssh host keys (`type base64` each), from the files named."""
    paths = value.split() if value else HOST_KEY_FILES
    keys = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError:
            if value:
                raise UserError(
                    f"attribute airboss_tunnel_host_keys names {path}, which cannot be read"
                ) from None
            continue
        keys.append(" ".join(text.split()[:2]))
    return keys


def identity_of(s: Session, host: Host) -> ident.Identity:
    """The identity of virtual frontend `host`, from the database."""
    public, private = _interfaces(s, host)
    cluster = s.scalar(select(Cluster).where(Cluster.frontend_id == host.id))
    gateway = s.scalar(
        select(Route.gateway).where(Route.host_id == host.id, Route.destination == "0.0.0.0")
    ) or attrs.global_value(s, "Kickstart_PublicGateway")
    dns = attrs.global_value(s, "Kickstart_PublicDNSServers") or gateway or ""
    physical_name = attrs.global_value(s, "Kickstart_PublicHostname") or ""
    physical_ip = attrs.global_value(s, "Kickstart_PublicAddress") or ""
    ca = attrs.resolve(s, host, "airboss_ca")
    ca_text = Path(ca).read_text(encoding="utf-8") if ca and os.path.isfile(ca) else None
    assert public.network is not None
    return ident.Identity(
        fqdn=public.name or f"{host.name}-public",
        vm=host.name,
        public_ip=str(public.ip),
        public_netmask=public.network.netmask,
        public_mac=str(public.mac),
        gateway=str(gateway or ""),
        dns=[d.strip() for d in dns.split(",") if d.strip()],
        private_ip=PRIVATE_IP,
        private_netmask=PRIVATE_NETMASK,
        private_mac=str(private.mac),
        vlan=cluster.vlan if cluster is not None else int(private.vlan or 0),
        physical_name=physical_name,
        physical_ip=physical_ip,
        airboss=attrs.resolve(s, host, "airboss_url") or DEFAULT_AIRBOSS,
        airboss_ca=ca_text,
        ssh_keys=_ssh_keys(s, host),
        tunnel_user=attrs.resolve(s, host, "airboss_tunnel_user") or "airboss",
        physical_host_keys=_host_keys(attrs.resolve(s, host, "airboss_tunnel_host_keys")),
    )


def identity_tar(s: Session, host: Host) -> bytes:
    return ident.tar(identity_of(s, host))


def snapshot_identity(s: Session, host: Host) -> str:
    """Write the identity the VM will fetch (root-only file); its SHA-256."""
    data = identity_tar(s, host)
    public, _private = _interfaces(s, host)
    d = identity_dir()
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    path = snapshot_path(str(public.mac))
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


# The kernel command line --------------------------------------------------------------------------


def public_base(s: Session) -> str:
    """`http://<physical frontend public IP>:<port>`: the boot server's public listener."""
    from flightdeck.pxe.bootserver import DEFAULT_PORT
    from flightdeck.services.dhcp import service_state

    ip = attrs.global_value(s, "Kickstart_PublicAddress")
    if not ip:
        raise NotFound("the frontend has no public address: set attribute Kickstart_PublicAddress")
    port = service_state().get("port", DEFAULT_PORT)
    return f"http://{ip}:{port}"


def install_args(s: Session, host: Host) -> list[str]:
    """The installer's arguments for an image install of `host` (after the boot action's)."""
    image = current_image(s)
    public, _private = _interfaces(s, host)
    assert public.network is not None
    base = public_base(s)
    mac = str(public.mac)
    gateway = s.scalar(
        select(Route.gateway).where(Route.host_id == host.id, Route.destination == "0.0.0.0")
    )
    digest = hashlib.sha256(identity_tar(s, host)).hexdigest()
    prefix = ident.prefix(public.network.netmask)
    return [
        f"fd.host={host.name}",
        f"fd.image={base}/frontend/image/{image.sha256}",
        f"fd.image.sha256={image.sha256}",
        f"fd.identity={base}/frontend/{mac}/identity",
        f"fd.identity.sha256={digest}",
        f"fd.net={mac},{public.ip}/{prefix},{gateway or ''}",
        f"fd.report={base}/frontend/{mac}/done",
        f"fd.failed={base}/frontend/{mac}/failed",
    ]


def check_ready_to_install(s: Session, host: Host) -> None:
    """Refuse to start an image install that cannot work: no image, or no public boot server."""
    from flightdeck.services.dhcp import status

    current_image(s)
    running = status()
    if running.bootserver is None or not running.public_url:
        ip = attrs.global_value(s, "Kickstart_PublicAddress")
        raise UserError(
            f"{host.name} installs from the boot server on the public address {ip}, which is not "
            "running: rocks start service dhcp (on the frontend, with its public address)"
        )
