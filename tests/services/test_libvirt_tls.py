"""`rocks report host libvirt-tls`: certificates libvirt accepts, for the right names, written
by a script with the right modes; the site CA made once and reused."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from flightdeck.virt.hypervisor import batch_uri


def _install(rocks: Any, tmp_path: Path, *argv: str) -> str:
    script = rocks.ok("report", "host", "libvirt-tls", *argv, f"ca-dir={tmp_path / 'ca'}")
    subprocess.run(["sh"], input=script, text=True, check=True, capture_output=True)
    return str(script)


def _verify(cert_path: Path, ca_path: Path) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    assert cert.issuer == ca.subject
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    return cert


def test_a_container_gets_a_server_certificate_for_its_names_and_address(
    espresso: Any, tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    script = _install(espresso, tmp_path, "vm-container-0-0", f"pkipath={pki}")
    assert "umask 077" in script
    files = sorted(p.name for p in pki.iterdir())
    assert files == ["cacert.pem", "servercert.pem", "serverkey.pem"]
    assert (pki / "serverkey.pem").stat().st_mode & 0o777 == 0o600
    cert = _verify(pki / "servercert.pem", pki / "cacert.pem")
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = alt.get_values_for_type(x509.DNSName)
    assert names[0] == "vm-container-0-0" and "vm-container-0-0.local" in names
    ips = interface_ips(espresso, "vm-container-0-0")
    assert alt.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(i) for i in ips]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_the_frontend_gets_both_and_the_ca_is_made_once(espresso: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    r = espresso("report", "host", "libvirt-tls", "frontend-0-0", f"pkipath={first}",
                 f"ca-dir={tmp_path / 'ca'}")  # fmt: skip
    assert r.code == 0 and "made the site CA" in r.err
    subprocess.run(["sh"], input=r.out, text=True, check=True)
    assert {p.name for p in first.iterdir()} == {"cacert.pem", "servercert.pem",
        "serverkey.pem", "clientcert.pem", "clientkey.pem"}  # fmt: skip
    client = _verify(first / "clientcert.pem", first / "cacert.pem")
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    _install(espresso, tmp_path, "vm-container-0-1", "role=client", f"pkipath={second}")
    assert (first / "cacert.pem").read_bytes() == (second / "cacert.pem").read_bytes()
    assert {p.name for p in second.iterdir()} == {"cacert.pem", "clientcert.pem", "clientkey.pem"}


def test_the_standard_layout_and_bad_input(espresso: Any, tmp_path: Path) -> None:
    out = espresso.ok("report", "host", "libvirt-tls", "vm-container-0-0",
                      f"ca-dir={tmp_path / 'ca'}")  # fmt: skip
    for path in ("/etc/pki/CA/cacert.pem", "/etc/pki/libvirt/servercert.pem",
                 "/etc/pki/libvirt/private/serverkey.pem"):  # fmt: skip
        assert f"cat > {path} <<'FLIGHTDECK_PEM'" in out
    espresso.refused("report", "host", "libvirt-tls", "vm-container-0-0", "role=admin",
                     says="role=admin is not one of server, client, both")  # fmt: skip
    espresso.refused("report", "host", "libvirt-tls", "vm-container-0-0", "pkipath=rel/dir",
                     says="pkipath=rel/dir must be an absolute directory")  # fmt: skip


def interface_ips(rocks: Any, host: str) -> list[str]:
    import json

    rows = json.loads(rocks.ok("list", "host", "interface", host, "output-format=json"))
    return sorted(r["ip"] for r in rows if r["ip"])


def test_ssh_uris_never_prompt() -> None:
    assert batch_uri("qemu+ssh://root@c/system") == "qemu+ssh://root@c/system?no_tty=1"
    assert batch_uri("qemu+ssh://c/system?keyfile=/k") == "qemu+ssh://c/system?keyfile=/k&no_tty=1"
    assert batch_uri("qemu+ssh://c/system?no_tty=0") == "qemu+ssh://c/system?no_tty=0"
    for other in ("qemu:///system", "test:///default", "qemu+tls://c/system"):
        assert batch_uri(other) == other
