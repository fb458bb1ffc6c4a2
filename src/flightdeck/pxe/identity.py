"""A virtual frontend's identity: the files that make one frontend image this cluster's frontend.

The physical frontend renders them from its database when the virtual frontend is installed; the
installer checks them against the SHA-256 on the kernel command line and unpacks them onto the
installed root, so the first boot already has its name, its addresses and its owner's keys:

- `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`;
- systemd-networkd: `.link` files naming each NIC by its MAC (eth0 the cluster's private network
  on its VLAN, eth1 public, as a Rocks frontend) and `.network` files giving the addresses, also
  matched by MAC, so the addresses are right even if a name is not;
- `/root/.ssh/authorized_keys`: the cluster's owner keys (`rocks add host key`), in OpenSSH form;
- `/etc/flightdeck/frontend.env`: the values first boot passes to `rocks init frontend`, each
  validated here and shell-quoted (the file is sourced by /bin/sh);
- `/etc/flightdeck/client.env`: where this frontend's `rocks ... key=` and `pilot` reach the
  physical frontend's Airboss (and the site CA when that is TLS).

Pure: same identity, same bytes (a tar with fixed owners, modes and times), so its checksum can be
put on the command line when the VM starts and checked when the installer fetches it.
"""

from __future__ import annotations

import io
import ipaddress
import re
import shlex
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

from flightdeck.errors import UserError
from flightdeck.planner.names import check_fqdn

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SSH_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( [ -~]*)?$"
)


@dataclass(frozen=True)
class Identity:
    """Everything a frontend image needs to become one cluster's frontend."""

    #: The virtual frontend's public FQDN (its own name, `add cluster fe-fqdn=`).
    fqdn: str
    #: Its name on the physical side (frontend-0-0-0), for the physical frontend's records.
    vm: str
    public_ip: str
    public_netmask: str
    public_mac: str
    gateway: str
    dns: Sequence[str]
    private_ip: str
    private_netmask: str
    private_mac: str
    vlan: int
    #: The physical frontend's public name and address (where its Airboss is).
    physical_name: str
    physical_ip: str
    #: What `airboss=` defaults to on the virtual frontend (localhost:8677 through a tunnel, or
    #: https://<physical>:<port> with the CA below).
    airboss: str
    airboss_ca: str | None
    #: authorized_keys lines (OpenSSH public keys with a comment).
    ssh_keys: Sequence[str]
    #: The account on the physical frontend the owner's `ssh -L 8677:localhost:8677 <it>`
    #: logs in as (a tunnel-only account, docs/airboss.md), and that frontend's ssh host keys
    #: (so the tunnel's first connection asks nothing).
    tunnel_user: str = "airboss"
    physical_host_keys: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_fqdn(self.fqdn)
        check_fqdn(self.physical_name, "the physical frontend's name")
        for what, ip in (
            ("public IP", self.public_ip),
            ("gateway", self.gateway),
            ("private IP", self.private_ip),
            ("physical frontend address", self.physical_ip),
            *(("DNS server", d) for d in self.dns),
        ):
            try:
                ipaddress.IPv4Address(ip)
            except ValueError:
                raise UserError(f"{self.vm}: {what} {ip!r} is not an IPv4 address") from None
        for what, mask in (("public", self.public_netmask), ("private", self.private_netmask)):
            prefix(mask, f"{self.vm}: {what} netmask")
        for what, mac in (("public", self.public_mac), ("private", self.private_mac)):
            if not _MAC.match(mac):
                raise UserError(f"{self.vm}: {what} MAC {mac!r} is not aa:bb:cc:dd:ee:ff")
        for key in self.ssh_keys:
            if "\n" in key or not _SSH_KEY.match(key):
                raise UserError(f"{self.vm}: an owner key is not one OpenSSH public key line")
        for key in self.physical_host_keys:
            if "\n" in key or not _SSH_KEY.match(key):
                raise UserError(f"{self.vm}: a host key of the physical frontend is not one line")
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", self.tunnel_user):
            raise UserError(f"{self.vm}: tunnel account {self.tunnel_user!r} is not a user name")
        if not re.fullmatch(r"[A-Za-z0-9.:/\[\]_-]{1,255}", self.airboss):
            raise UserError(f"{self.vm}: the Airboss address {self.airboss!r} is not an address")

    @property
    def short(self) -> str:
        return self.fqdn.split(".", 1)[0]


def prefix(netmask: str, what: str = "netmask") -> int:
    """The prefix length of a dotted netmask or of a prefix length given as text."""
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
    except ValueError:
        raise UserError(f"{what} {netmask!r} is not a netmask") from None


def _link(mac: str, name: str) -> str:
    return f"[Match]\nMACAddress={mac}\n\n[Link]\nName={name}\n"


def _network(mac: str, address: str, extra: str = "") -> str:
    return (
        f"[Match]\nMACAddress={mac}\n\n[Network]\nAddress={address}\n{extra}"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )


def env_file(ident: Identity) -> str:
    """`frontend.env`: shell assignments first boot sources (every value validated and quoted)."""
    values = {
        "FD_FQDN": ident.fqdn,
        "FD_VM": ident.vm,
        "FD_PUBLIC_IP": ident.public_ip,
        "FD_PUBLIC_NETMASK": ident.public_netmask,
        "FD_PUBLIC_MAC": ident.public_mac,
        "FD_GATEWAY": ident.gateway,
        "FD_DNS": ",".join(ident.dns),
        "FD_PRIVATE_IP": ident.private_ip,
        "FD_PRIVATE_NETMASK": ident.private_netmask,
        "FD_PRIVATE_MAC": ident.private_mac,
        "FD_VLAN": str(ident.vlan),
        "FD_PHYSICAL": ident.physical_name,
        "FD_PHYSICAL_IP": ident.physical_ip,
    }
    head = "# The identity of this virtual frontend, from the physical frontend's database.\n"
    return head + "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def client_env(ident: Identity) -> str:
    """`client.env`: the Airboss this frontend's owner commands talk to by default."""
    lines = [
        "# Where rocks ... key= and pilot reach the physical frontend's Airboss by default.\n",
        f"FLIGHTDECK_AIRBOSS={shlex.quote(ident.airboss)}\n",
    ]
    if ident.airboss_ca:
        lines.append(f"FLIGHTDECK_AIRBOSS_CA={shlex.quote(CA_PATH)}\n")
    return "".join(lines)


CA_PATH = "/etc/flightdeck/airboss-ca.pem"


def ssh_config(ident: Identity) -> str:
    """ssh's settings for the physical frontend: the guide's tunnel command works as typed."""
    return (
        "# The physical frontend, whose Airboss the owner reaches with\n"
        f"#   ssh -f -N -L 8677:localhost:8677 {ident.physical_name}\n"
        f"Host {ident.physical_name} {ident.physical_ip}\n"
        f"    User {ident.tunnel_user}\n"
        "    IdentityFile ~/private.key\n"
        "    IdentityFile ~/.ssh/id_ed25519\n"
        "    IdentityFile ~/.ssh/id_rsa\n"
        "    ExitOnForwardFailure yes\n"
        "    ServerAliveInterval 30\n"
    )


def known_hosts(ident: Identity) -> str:
    names = f"{ident.physical_name},{ident.physical_ip}"
    return "".join(f"{names} {' '.join(k.split()[:2])}\n" for k in ident.physical_host_keys)


def files(ident: Identity) -> dict[str, tuple[bytes, int]]:
    """Path in the image -> (content, mode)."""
    pub = f"{ident.public_ip}/{prefix(ident.public_netmask)}"
    priv = f"{ident.private_ip}/{prefix(ident.private_netmask)}"
    dns = "".join(f"DNS={d}\n" for d in ident.dns)
    hosts = (
        "127.0.0.1\tlocalhost\n"
        f"{ident.public_ip}\t{ident.fqdn} {ident.short}\n"
        f"{ident.physical_ip}\t{ident.physical_name}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    out: dict[str, str] = {
        "etc/hostname": ident.short + "\n",
        "etc/hosts": hosts,
        "etc/resolv.conf": "".join(f"nameserver {d}\n" for d in ident.dns),
        "etc/systemd/network/10-flightdeck-private.link": _link(ident.private_mac, "eth0"),
        "etc/systemd/network/10-flightdeck-public.link": _link(ident.public_mac, "eth1"),
        "etc/systemd/network/20-flightdeck-private.network": _network(ident.private_mac, priv),
        "etc/systemd/network/20-flightdeck-public.network": _network(
            ident.public_mac, pub, f"Gateway={ident.gateway}\n{dns}"
        ),
        "etc/flightdeck/frontend.env": env_file(ident),
        "etc/flightdeck/client.env": client_env(ident),
        "etc/ssh/ssh_config.d/flightdeck.conf": ssh_config(ident),
        "etc/ssh/ssh_known_hosts": known_hosts(ident),
    }
    if ident.airboss_ca:
        out[CA_PATH.lstrip("/")] = ident.airboss_ca
    result = {path: (text.encode(), 0o644) for path, text in out.items()}
    keys = "".join(k + "\n" for k in ident.ssh_keys)
    result["root/.ssh/authorized_keys"] = (keys.encode(), 0o600)
    return result


#: Directories the tar creates (with these modes) before its files.
DIRECTORIES = {"etc/flightdeck": 0o755, "root/.ssh": 0o700}


def tar(ident: Identity) -> bytes:
    """The identity as a tar: owner root, fixed modes, time 0, sorted (same input, same bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for path, mode in sorted(DIRECTORIES.items()):
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
            tf.addfile(info)
        for path, (data, mode) in sorted(files(ident).items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()
