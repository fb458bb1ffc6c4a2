"""`rocks add|list|remove host key`: every spelling of a good key, and every bad one refused."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from flightdeck.crypto import keys as ck


def _pub(key: Any, fmt: str) -> str:
    pub = key.public_key()
    if fmt == "spki":
        return pub.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    if fmt == "pkcs1":
        return pub.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.PKCS1).decode()
    line = pub.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()
    return f"{line} someone@laptop"


@pytest.fixture(scope="module")
def rsa3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 3072)


@pytest.fixture(scope="module")
def rsa1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 1024)


def keys_of(site: Any, host: str) -> list[dict[str, Any]]:
    return list(json.loads(site.rocks.ok("list", "host", "key", host, "fingerprint=yes",
                                         "output-format=json")))


@pytest.mark.parametrize("fmt", ["spki", "pkcs1", "openssh"])
def test_rsa_keys_in_every_spelling(site: Any, rsa3072: Any, fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "key.pub"
    path.write_text(_pub(rsa3072, fmt))
    site.rocks.ok("add", "host", "key", site.cluster_a[1], f"key={path}", "description=ops")
    (row,) = keys_of(site, site.cluster_a[1])
    assert row["type"] == "RSA-3072" and row["description"] == "ops"
    assert row["fingerprint"] == ck.fingerprint(rsa3072.public_key())


def test_openssh_line_given_as_text(site: Any) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    site.rocks.ok("add", "host", "key", site.plain, f"key={_pub(key, 'openssh')}")
    (row,) = [r for r in keys_of(site, site.plain) if r["type"] == "ED25519"
              and r["fingerprint"] == ck.fingerprint(key.public_key())]
    assert row["public_key"].startswith("-----BEGIN PUBLIC KEY-----\n")  # stored as PEM


def test_guide_layout_one_pem_line_per_row(site: Any) -> None:
    out = site.rocks.ok("list", "host", "key", site.cluster_a[0])
    lines = out.splitlines()
    # The guide's HOST ID PUBLIC KEY; a description comes last (seed 004).
    assert lines[0].split() == ["HOST", "ID", "PUBLIC", "KEY", "DESCRIPTION"]
    pem = site.owners["alice"].public_pem.strip().splitlines()
    first = lines[1].split()
    assert first[0] == f"{site.cluster_a[0]}:" and first[2:] == [*pem[0].split(), "alice"]
    assert len(lines) == 1 + len(pem)
    for line, text in zip(lines[2:], pem[1:], strict=True):
        assert line.startswith(":") and line.split()[-1] == text.split()[-1]
        assert line.split()[0] == ":"


@pytest.mark.filterwarnings("ignore:SSH DSA key support is deprecated")
@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("rsa1024", "RSA-1024"),
        ("dsa", "DSA"),
        ("ecdsa", "ECDSA"),
        ("private", "PRIVATE key"),
        ("garbage", "not a public key"),
        ("empty-file", "empty"),
        ("two", "more than one"),
        ("certificate-line", "certificate"),
    ],
)
def test_bad_keys_are_refused_with_the_reason(
    site: Any, rsa1024: Any, tmp_path: Path, make: str, message: str
) -> None:
    texts = {
        "rsa1024": lambda: _pub(rsa1024, "spki"),
        "dsa": lambda: _pub(dsa.generate_private_key(1024), "openssh"),
        "ecdsa": lambda: _pub(ec.generate_private_key(ec.SECP256R1()), "spki"),
        "private": lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode(),
        "garbage": lambda: "hello world",
        "empty-file": lambda: "",
        "two": lambda: site.owners["mallory"].public_pem * 2,
        "certificate-line": lambda: "ssh-ed25519-cert-v01@openssh.com AAAA",
    }
    path = tmp_path / "bad.pub"
    path.write_text(texts[make]())
    before = site.rocks.dump()["public_keys"]
    r = site.rocks("add", "host", "key", site.cluster_a[0], f"key={path}")
    assert r.code == 1 and message in r.err, r.err
    assert "BEGIN" not in r.err  # no key material echoed
    assert site.rocks.dump()["public_keys"] == before


def test_duplicate_key_is_refused(site: Any, tmp_path: Path) -> None:
    path = tmp_path / "alice.pub"
    path.write_text(site.owners["alice"].public_pem)
    r = site.rocks("add", "host", "key", site.cluster_a[0], f"key={path}")
    assert r.code == 1
    assert f"the public key already exists for host {site.cluster_a[0]}" in r.err


@pytest.mark.parametrize("host", ["frontend-0-0", "vm-container-0-0"])
def test_keys_only_on_vms(site: Any, host: str, tmp_path: Path) -> None:
    path = tmp_path / "m.pub"
    path.write_text(site.owners["mallory"].public_pem)
    r = site.rocks("add", "host", "key", host, f"key={path}")
    assert r.code == 1 and f"host {host} is not a VM" in r.err


def test_remove_host_key(site: Any) -> None:
    (row,) = keys_of(site, site.cluster_a[0])
    r = site.rocks("remove", "host", "key", site.cluster_a[0], "id=999")
    assert r.code == 1
    assert f"public key with id 999 doesn't exist for host {site.cluster_a[0]}" in r.err
    r = site.rocks("remove", "host", "key", site.cluster_a[0])
    assert r.code == 1 and "must supply an ID for the key" in r.err
    # Another host's key id is not this host's.
    r = site.rocks("remove", "host", "key", site.cluster_b[0], f"id={row['id']}")
    assert r.code == 1
    site.rocks.ok("remove", "host", "key", site.cluster_a[0], f"id={row['id']}")
    assert keys_of(site, site.cluster_a[0]) == []


def test_key_commands_need_root_but_listing_does_not(
    site: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "m.pub"
    path.write_text(site.owners["mallory"].public_pem)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    r = site.rocks("add", "host", "key", site.cluster_a[0], f"key={path}")
    assert r.code == 1 and "must be run as root" in r.err
    r = site.rocks("remove", "host", "key", site.cluster_a[0], "id=1")
    assert r.code == 1 and "must be run as root" in r.err
    assert site.rocks("list", "host", "key").code == 0
