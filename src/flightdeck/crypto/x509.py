"""A site CA and the Airboss's TLS certificate, made with `cryptography` (no openssl commands).

The Airboss listens beyond loopback only with TLS (`airboss/config.py`). A site without a PKI of
its own gets one here: a CA (Ed25519 would be smallest, but not every TLS client takes Ed25519
certificates yet: ECDSA P-256) and a server certificate for the frontend's public name and
address, signed by it. Virtual frontends receive the CA certificate in their identity, so their
owner commands verify the Airboss without a tunnel. Existing files are never overwritten: a site
that has its own CA names its files instead.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flightdeck.errors import Conflict, UserError

#: Validity, days: the CA for ten years, the server certificate for two (renew by removing it).
CA_DAYS = 3650
SERVER_DAYS = 730


@dataclass(frozen=True)
class Issued:
    """The files of a site CA and of the Airboss's certificate and key (PEM)."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    #: Whether the CA was made now (False: an existing one signed the certificate).
    new_ca: bool


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Flightdeck site"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _load_ca(cert: Path, key: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        ca = x509.load_pem_x509_certificate(cert.read_bytes())
        private = serialization.load_pem_private_key(key.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"the site CA {cert} / {key} cannot be used: {exc}") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise UserError(f"the site CA key {key} is not an ECDSA key: give an ECDSA CA")
    return ca, private


def _addresses(addresses: list[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    ips = []
    for a in addresses:
        try:
            ips.append(ipaddress.ip_address(a))
        except ValueError:
            raise UserError(f"{a!r} is not an IP address") from None
    return ips


def site_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, bool]:
    """The site CA in `directory` (`ca.crt`, `ca.key`), made there if it has none; and
    whether it was made now."""
    ca_cert, ca_key = directory / "ca.crt", directory / "ca.key"
    if ca_cert.exists():
        ca, private = _load_ca(ca_cert, ca_key)
        return ca, private, False
    if ca_key.exists():
        raise Conflict(f"{ca_key} exists without {ca_cert}: remove it or put the CA back")
    now = dt.datetime.now(dt.UTC)
    private = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Flightdeck site CA"))
        .issuer_name(_name("Flightdeck site CA"))
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False
        )
        .sign(private, hashes.SHA256())
    )
    _write(ca_key, _key_pem(private), 0o600)
    _write(ca_cert, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    return ca, private, True


def leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[str],
    addresses: list[str],
    usages: list[x509.ObjectIdentifier],
) -> tuple[bytes, bytes]:
    """A certificate (PEM) for `names` and `addresses` (its subjectAltName; the first name is
    its common name) with the extended key `usages`, signed by the CA; and its key (PEM).

    No keyUsage extension: libvirt requires keyEncipherment in one that is there, which an
    ECDSA key cannot do; without it, TLS libraries take the usage from the key itself."""
    if not names:
        raise UserError("a certificate needs at least one name")
    ips = _addresses(addresses)
    now = dt.datetime.now(dt.UTC)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ip) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(leaf_key)


def issue(directory: Path, names: list[str], addresses: list[str]) -> Issued:
    """The CA (made if `ca.crt`/`ca.key` are not in `directory`) and `airboss.crt`/`.key`.

    `names` and `addresses` go into the certificate's subjectAltName (the first name is its
    common name). Refuses to overwrite an existing Airboss certificate.
    """
    if not names:
        raise UserError("the Airboss certificate needs at least one name")
    _addresses(addresses)
    cert_path, key_path = directory / "airboss.crt", directory / "airboss.key"
    for existing in (cert_path, key_path):
        if existing.exists():
            raise Conflict(f"{existing} exists: remove it (and its key) to issue a new one")
    ca, private, new_ca = site_ca(directory)
    cert, key = leaf(ca, private, names, addresses, [ExtendedKeyUsageOID.SERVER_AUTH])
    _write(key_path, key, 0o600)
    _write(cert_path, cert, 0o644)
    return Issued(directory / "ca.crt", directory / "ca.key", cert_path, key_path, new_ca)
