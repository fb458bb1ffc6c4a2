"""`rocks init frontend`: create (or upgrade) the database and register this physical frontend.

What the original did at frontend install (reference §10.1): the default appliances, the
`private` and `public` networks, the frontend host with its two interfaces, the global
attributes later commands read (MAC base and mask, Airboss host, libvirt URI template, the
Kickstart_* names), the boot actions. Running it again with the same name changes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from sqlalchemy import select

from flightdeck.db import attrs
from flightdeck.db.engine import Database, open_database
from flightdeck.db.models import Appliance, BootAction, Host, HostBoot, Interface, Network
from flightdeck.errors import Conflict
from flightdeck.planner.addresses import check_ip_in_network, network_of
from flightdeck.planner.defaults import DEFAULT_LIBVIRT_URI_TEMPLATE
from flightdeck.planner.macs import DEFAULT_MAC_MASK, mac_base_from_ip, normalize_mac
from flightdeck.planner.names import validate_host_name
from flightdeck.services.base import writing

#: (appliance name, membership, public, attributes)
DEFAULT_APPLIANCES: tuple[tuple[str, str, bool, dict[str, str]], ...] = (
    ("frontend", "Frontend", True, {}),
    ("vm-container", "VM Container", True, {"kvm": "true", "managed": "true"}),
    ("hosted-vm", "Hosted VM", False, {}),
    ("compute", "Compute", True, {}),
)

LOCAL_LIBVIRT_URI = "qemu:///system"
DEFAULT_DISK_DIR = "/var/lib/flightdeck/disks"
DEFAULT_ISO_DIR = "/var/lib/flightdeck/isos"

#: The virtual-frontend install arguments of the original (reference §9.1); `{public}` is the
#: physical frontend's public name, where the virtual frontend fetches its install from.
FRONTEND_INSTALL_ARGS = (
    "ramdisk_size=150000 lang= devfs=nomount pxe kssendmac selinux=0 noipv6 "
    "ks=http://{public}/install/sbin/kickstart.cgi ksdevice=eth1 build airboss=localhost"
)


@dataclass(frozen=True)
class FrontendSpec:
    name: str
    public_ip: str
    public_netmask: str
    private_ip: str
    private_netmask: str
    private_hostname: str = "frontend-0-0"
    gateway: str | None = None
    dns_servers: str | None = None
    public_mac: str | None = None
    private_mac: str | None = None
    public_iface: str = "eth1"
    private_iface: str = "eth0"


@dataclass(frozen=True)
class InitResult:
    created: bool
    database: str


def init_frontend(spec: FrontendSpec, url: str | None = None) -> InitResult:
    """Create or upgrade the database, then register the frontend if it is not there yet."""
    validate_host_name(spec.name)
    validate_host_name(spec.private_hostname)
    public_net = network_of(spec.public_ip, spec.public_netmask)
    private_net = network_of(spec.private_ip, spec.private_netmask)
    check_ip_in_network(spec.public_ip, public_net, "public")
    check_ip_in_network(spec.private_ip, private_net, "private")
    gateway = spec.gateway or str(next(public_net.hosts()))
    check_ip_in_network(gateway, public_net, "public")
    # MACs are stored in one spelling (lower case, colons), as every other interface's.
    spec = replace(
        spec,
        public_mac=normalize_mac(spec.public_mac) if spec.public_mac else None,
        private_mac=normalize_mac(spec.private_mac) if spec.private_mac else None,
    )

    db = open_database(url, create=True)
    try:
        return _register(db, spec, public_net.network_address, private_net.network_address, gateway)
    finally:
        db.dispose()


def _register(
    db: Database, spec: FrontendSpec, public_addr: object, private_addr: object, gateway: str
) -> InitResult:
    with writing(db) as s:
        existing_public = attrs.global_value(s, "Kickstart_PublicHostname")
        if existing_public is not None:
            if existing_public != spec.name:
                raise Conflict(
                    f"this database already belongs to frontend {existing_public}, "
                    f"not {spec.name}: use another FLIGHTDECK_HOME for a new site"
                )
            return InitResult(created=False, database=db.url)

        apps: dict[str, Appliance] = {}
        for name, membership, is_public, app_attrs in DEFAULT_APPLIANCES:
            app = s.scalar(select(Appliance).where(Appliance.name == name))
            if app is None:
                app = Appliance(name=name, membership=membership, public=is_public)
                s.add(app)
                s.flush()
            apps[name] = app
            for key, value in app_attrs.items():
                attrs.set_appliance(s, app.id, key, value)

        domain = spec.name.split(".", 1)[1] if "." in spec.name else "local"
        private = Network(
            name="private",
            subnet=str(private_addr),
            netmask=spec.private_netmask,
            mtu=1500,
            dnszone="local",
        )
        public = Network(
            name="public",
            subnet=str(public_addr),
            netmask=spec.public_netmask,
            mtu=1500,
            dnszone=domain,
        )
        s.add_all([private, public])

        host = Host(
            name=spec.private_hostname,
            appliance_id=apps["frontend"].id,
            rack=0,
            rank=0,
            cpus=os.cpu_count() or 1,
            os="linux",
        )
        s.add(host)
        s.flush()
        s.add_all(
            [
                Interface(
                    host_id=host.id,
                    device=spec.private_iface,
                    mac=spec.private_mac,
                    ip=spec.private_ip,
                    network_id=private.id,
                    name=spec.private_hostname,
                ),
                Interface(
                    host_id=host.id,
                    device=spec.public_iface,
                    mac=spec.public_mac,
                    ip=spec.public_ip,
                    network_id=public.id,
                    name=spec.name,
                ),
                HostBoot(host_id=host.id, action="os"),
            ]
        )
        attrs.set_host(s, host, "kvm", "true")
        attrs.set_host(s, host, "libvirt_uri", LOCAL_LIBVIRT_URI)

        for key, value in {
            "Kickstart_PublicHostname": spec.name,
            "Kickstart_PrivateHostname": spec.private_hostname,
            "Kickstart_PublicAddress": spec.public_ip,
            "Kickstart_PublicNetmask": spec.public_netmask,
            "Kickstart_PrivateAddress": spec.private_ip,
            "Kickstart_PrivateNetmask": spec.private_netmask,
            "Kickstart_PublicGateway": gateway,
            "Kickstart_PublicDNSServers": spec.dns_servers or gateway,
            "vm_mac_base_addr": mac_base_from_ip(spec.public_ip),
            "vm_mac_base_addr_mask": DEFAULT_MAC_MASK,
            "airboss": "localhost",
            "libvirt_uri_template": DEFAULT_LIBVIRT_URI_TEMPLATE,
            "kvm_disk_dir": DEFAULT_DISK_DIR,
            "kvm_iso_dir": DEFAULT_ISO_DIR,
        }.items():
            attrs.set_global(s, key, value)

        s.add_all(
            [
                BootAction(name="os", kernel=None, ramdisk=None, args=None),
                BootAction(name="install", kernel=None, ramdisk=None, args=None),
                BootAction(
                    name="install vm frontend",
                    kernel=None,
                    ramdisk=None,
                    args=FRONTEND_INSTALL_ARGS.format(public=spec.name),
                ),
                # Filled in by `rocks create frontend image` (the installer that writes it).
                BootAction(name="install vm frontend image", kernel=None, ramdisk=None, args=None),
            ]
        )
    return InitResult(created=True, database=db.url)
