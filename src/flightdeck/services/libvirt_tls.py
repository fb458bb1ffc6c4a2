"""`rocks report host libvirt-tls`: certificates for libvirt's TLS transport, from the site CA.

A site that reaches its VM containers as `qemu+tls://{host}/system` (attribute
`libvirt_uri_template`) needs, in libvirt's standard PKI layout:

* on every container (the server): the CA certificate, a server certificate for the names the
  frontend connects to (its name, its name in the private domain, its addresses) and its key;
* on the frontend (the client): the CA certificate, a client certificate and its key. The
  physical frontend is a container too (it runs the physical cluster's VMs): it gets both.

The CA is the site CA of `rocks create airboss certificate` (`/etc/pki/flightdeck/ca.crt`,
made there if missing). Each run issues a new certificate and key (nothing is kept: the key
exists only in what is printed) and prints a shell script that writes them, for the node:
`rocks report host libvirt-tls vm-container-0-0 | ssh vm-container-0-0 sh`. With `pkipath=`
the files go flat into one directory instead: what a client names with `?pkipath=<dir>` in its
URI, and a libvirtd with `ca_file`, `cert_file` and `key_file` in libvirtd.conf.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import select

from flightdeck.crypto.x509 import leaf, site_ca
from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import resolve_host
from flightdeck.db.models import Interface, Network
from flightdeck.errors import UserError
from flightdeck.services.airboss_tls import DEFAULT_DIR
from flightdeck.services.base import reading

#: Where libvirt looks for each file, system-wide (libvirt's "TLS x509 certificates" docs).
STANDARD = {
    "ca": "/etc/pki/CA/cacert.pem",
    "servercert": "/etc/pki/libvirt/servercert.pem",
    "serverkey": "/etc/pki/libvirt/private/serverkey.pem",
    "clientcert": "/etc/pki/libvirt/clientcert.pem",
    "clientkey": "/etc/pki/libvirt/private/clientkey.pem",
}
#: The same files in one directory (`?pkipath=<dir>`): libvirt's names there.
FLAT = {
    "ca": "cacert.pem",
    "servercert": "servercert.pem",
    "serverkey": "serverkey.pem",
    "clientcert": "clientcert.pem",
    "clientkey": "clientkey.pem",
}
ROLES = ("server", "client", "both")


@dataclass(frozen=True)
class PkiFile:
    """One file of the set-up: where it goes, its mode, its PEM text."""

    path: str
    mode: int
    text: str


@dataclass(frozen=True)
class TlsSetup:
    host: str
    role: str
    names: list[str]
    addresses: list[str]
    files: list[PkiFile]
    new_ca: bool


def _role(value: str | None, is_container: bool, is_frontend: bool) -> str:
    if value is None:
        return "both" if is_frontend else "server" if is_container else "client"
    word = value.strip().lower()
    if word not in ROLES:
        raise UserError(f"role={value} is not one of {', '.join(ROLES)}")
    return word


def libvirt_tls(
    db: Database,
    expr: str,
    role: str | None = None,
    pkipath: str | None = None,
    ca_dir: Path | None = None,
) -> TlsSetup:
    """The files that give `expr` (one host) its side of libvirt's TLS transport."""
    if pkipath is not None and not pkipath.startswith("/"):
        raise UserError(f"pkipath={pkipath} must be an absolute directory")
    with reading(db) as s:
        host = resolve_host(s, expr)
        is_frontend = host.appliance.name == "frontend"
        is_container = is_frontend or host.appliance.name == "vm-container"
        domains = {
            name: dns
            for name, dns in s.execute(select(Network.name, Network.dnszone)).tuples()
        }
        rows = s.execute(
            select(Interface.ip, Network.name)
            .outerjoin(Network, Network.id == Interface.network_id)
            .where(Interface.host_id == host.id, Interface.ip.is_not(None))
        ).tuples().all()
        public = attrs.global_value(s, "Kickstart_PublicHostname") if is_frontend else None
        name = host.name
    chosen = _role(role, is_container, is_frontend)
    names = [name]
    for _ip, net in rows:
        zone = domains.get(net or "")
        if zone and f"{name}.{zone}" not in names:
            names.append(f"{name}.{zone}")
    if public and public not in names:
        names.append(public)
    addresses = sorted({ip for ip, _net in rows if ip})
    ca, ca_key, new_ca = site_ca(ca_dir or DEFAULT_DIR)
    where = (
        {k: f"{pkipath.rstrip('/')}/{v}" for k, v in FLAT.items()} if pkipath else STANDARD
    )
    files = [PkiFile(where["ca"], 0o644, ca.public_bytes(serialization.Encoding.PEM).decode())]
    if chosen in ("server", "both"):
        cert, key = leaf(ca, ca_key, names, addresses, [ExtendedKeyUsageOID.SERVER_AUTH])
        files += [
            PkiFile(where["servercert"], 0o644, cert.decode()),
            PkiFile(where["serverkey"], 0o600, key.decode()),
        ]
    if chosen in ("client", "both"):
        cert, key = leaf(ca, ca_key, [name], [], [ExtendedKeyUsageOID.CLIENT_AUTH])
        files += [
            PkiFile(where["clientcert"], 0o644, cert.decode()),
            PkiFile(where["clientkey"], 0o600, key.decode()),
        ]
    return TlsSetup(name, chosen, names, addresses, files, new_ca)


def script(setup: TlsSetup) -> str:
    """A POSIX shell script that writes the files (keys 0600, never world-readable even for
    a moment: umask 077 while writing)."""
    lines = [
        "#!/bin/sh",
        f"# libvirt TLS for {setup.host} ({setup.role}), issued by the Flightdeck site CA",
        f"# server names: {', '.join(setup.names)}"
        + (f"; addresses: {', '.join(setup.addresses)}" if setup.addresses else ""),
        "set -e",
        "umask 077",
    ]
    for f in setup.files:
        path = shlex.quote(f.path)
        lines += [
            f"mkdir -p {shlex.quote(str(Path(f.path).parent))}",
            f"cat > {path} <<'FLIGHTDECK_PEM'",
            f.text.rstrip("\n"),
            "FLIGHTDECK_PEM",
            f"chmod {f.mode:o} {path}",
        ]
    if setup.role in ("server", "both"):
        lines += [
            "# libvirtd listens for TLS (port 16514) when started with --listen (Debian:",
            "# LIBVIRTD_ARGS=\"--listen\" in /etc/default/libvirtd) or by libvirtd-tls.socket;",
            "# its frontend then reaches it as qemu+tls://<name>/system.",
        ]
    return "\n".join(lines) + "\n"
