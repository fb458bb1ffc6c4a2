"""Key generation, loading and parsing: good keys in every spelling, bad keys refused clearly."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from flightdeck.crypto import keys
from flightdeck.errors import NotFound, UserError

SSH_KEYGEN = shutil.which("ssh-keygen")
needs_ssh_keygen = pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen is not installed")
HAVE_BCRYPT = importlib.util.find_spec("bcrypt") is not None

WEAK_RSA_MESSAGE = (
    "RSA keys under 2048 bits are refused: they can be factored; use bits=3072 or type=ed25519"
)


def _spki(key: keys.PrivateKey | keys.PublicKey) -> bytes:
    """The DER public key: compares keys of any form."""
    pub: keys.PublicKey
    if isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        pub = key.public_key()
    else:
        pub = key
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _ssh_keygen(*args: str) -> str:
    assert SSH_KEYGEN is not None
    done = subprocess.run(
        [SSH_KEYGEN, *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


# --- generate --------------------------------------------------------------------------------


def test_generates_ed25519_by_default() -> None:
    assert isinstance(keys.generate_private_key(), ed25519.Ed25519PrivateKey)


def test_generates_rsa_of_the_requested_size(rsa_key: rsa.RSAPrivateKey) -> None:
    assert rsa_key.key_size == 3072
    assert keys.DEFAULT_RSA_BITS == 3072


def test_rsa_1024_is_refused_at_generation() -> None:
    with pytest.raises(UserError) as info:
        keys.generate_private_key("rsa", 1024)
    assert str(info.value) == WEAK_RSA_MESSAGE


def test_absurd_rsa_size_and_unknown_types_are_refused() -> None:
    with pytest.raises(UserError, match="over 16384"):
        keys.generate_private_key("rsa", 32768)
    with pytest.raises(UserError, match="type=ed25519 or type=rsa"):
        keys.generate_private_key("dsa")


# --- write and load private keys -------------------------------------------------------------


def test_ed25519_is_openssh_and_encrypted_when_given_a_passphrase(
    ed_key: keys.PrivateKey, tmp_path: Path
) -> None:
    clear = keys.private_key_to_pem(ed_key, None)
    assert clear.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    sealed = keys.private_key_to_pem(ed_key, b"correct horse")
    assert sealed != clear
    assert _spki(keys.load_private_key(sealed, b"correct horse")) == _spki(ed_key)
    # OpenSSH itself reads it: the owner logs in to the virtual frontend with the same file.
    if shutil.which("ssh-keygen"):
        path = tmp_path / "private.key"
        path.write_bytes(clear)
        path.chmod(0o600)
        got = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True
        ).stdout
        assert got.split()[:2] == keys.public_key_to_openssh(ed_key.public_key()).split()[:2]


def test_rsa_is_pkcs8_and_encrypted_when_given_a_passphrase(rsa_key: rsa.RSAPrivateKey) -> None:
    clear = keys.private_key_to_pem(rsa_key, None)
    assert clear.startswith(b"-----BEGIN PRIVATE KEY-----")
    sealed = keys.private_key_to_pem(rsa_key, b"correct horse")
    assert sealed.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert _spki(keys.load_private_key(sealed, b"correct horse")) == _spki(rsa_key)


def test_empty_passphrase_is_refused(ed_key: keys.PrivateKey) -> None:
    with pytest.raises(UserError, match="passphrase is empty"):
        keys.private_key_to_pem(ed_key, b"")


def test_loads_from_a_path(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(keys.private_key_to_pem(rsa_key, None))
    assert _spki(keys.load_private_key(path)) == _spki(rsa_key)
    assert _spki(keys.load_private_key(str(path))) == _spki(rsa_key)


def test_encrypted_key_without_passphrase_says_so(tmp_path: Path, ed_key: keys.PrivateKey) -> None:
    path = tmp_path / "secret.pem"
    path.write_bytes(keys.private_key_to_pem(ed_key, b"pw"))
    with pytest.raises(UserError) as info:
        keys.load_private_key(path)
    assert str(info.value) == f"private key {path} is encrypted: give its passphrase"


def test_wrong_passphrase_says_so(tmp_path: Path, ed_key: keys.PrivateKey) -> None:
    path = tmp_path / "secret.pem"
    path.write_bytes(keys.private_key_to_pem(ed_key, b"pw"))
    with pytest.raises(UserError, match="passphrase is wrong"):
        keys.load_private_key(path, b"not it")


def test_needless_passphrase_is_ignored(ed_key: keys.PrivateKey) -> None:
    pem = keys.private_key_to_pem(ed_key, None)
    assert _spki(keys.load_private_key(pem, b"whatever")) == _spki(ed_key)


def test_reads_pkcs1_rsa_private_keys_encrypted_or_not(rsa_key: rsa.RSAPrivateKey) -> None:
    fmt = serialization.PrivateFormat.TraditionalOpenSSL
    clear = rsa_key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    assert clear.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert _spki(keys.load_private_key(clear)) == _spki(rsa_key)
    sealed = rsa_key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(b"pw")
    )
    assert _spki(keys.load_private_key(sealed, b"pw")) == _spki(rsa_key)
    with pytest.raises(UserError, match="is encrypted: give its passphrase"):
        keys.load_private_key(sealed)
    with pytest.raises(UserError, match="passphrase is wrong"):
        keys.load_private_key(sealed, b"nope")


def test_reads_openssh_private_keys(ed_key: keys.PrivateKey) -> None:
    data = ed_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    assert data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert _spki(keys.load_private_key(data)) == _spki(ed_key)


@needs_ssh_keygen
@pytest.mark.parametrize("kind", [["-t", "ed25519"], ["-t", "rsa", "-b", "3072"]])
def test_reads_keys_made_by_ssh_keygen(tmp_path: Path, kind: list[str]) -> None:
    path = tmp_path / "id"
    _ssh_keygen("-q", *kind, "-N", "", "-C", "me@example", "-f", str(path))
    key = keys.load_private_key(path)
    pub = keys.parse_public_key(Path(f"{path}.pub").read_text())
    assert _spki(key) == _spki(pub)


@needs_ssh_keygen
def test_encrypted_openssh_key(tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    _ssh_keygen("-q", "-t", "ed25519", "-N", "s3cret", "-f", str(path))
    with pytest.raises(UserError) as info:
        keys.load_private_key(path)
    assert str(info.value) == f"private key {path} is encrypted: give its passphrase"
    if HAVE_BCRYPT:
        assert isinstance(keys.load_private_key(path, b"s3cret"), ed25519.Ed25519PrivateKey)
        with pytest.raises(UserError, match="passphrase is wrong"):
            keys.load_private_key(path, b"wrong")
    else:
        # The pilot must work with only `cryptography`: say exactly what is missing.
        with pytest.raises(UserError, match="needs the Python package 'bcrypt'"):
            keys.load_private_key(path, b"s3cret")


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        keys.load_private_key(tmp_path / "nope")


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a directory"):
        keys.load_private_key(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file_is_refused(tmp_path: Path, ed_key: keys.PrivateKey) -> None:
    path = tmp_path / "locked.pem"
    path.write_bytes(keys.private_key_to_pem(ed_key, None))
    path.chmod(0)
    with pytest.raises(UserError, match="cannot be read"):
        keys.load_private_key(path)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n-----END OPENSSH PRIVATE KEY-----\n",
        b"\x00" * 100_000,
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(UserError) as info:
        keys.load_private_key(data, name="k")
    assert str(info.value).startswith("private key k ")
    assert "\n" not in str(info.value)


def test_public_key_given_as_private_is_refused(ed_key: keys.PrivateKey) -> None:
    pem = keys.public_key_to_pem(ed_key.public_key()).encode()
    with pytest.raises(UserError, match="is a public key"):
        keys.load_private_key(pem)
    line = keys.public_key_to_openssh(ed_key.public_key()).encode()
    with pytest.raises(UserError, match="is a public key"):
        keys.load_private_key(line)


def _pkcs8(key: dsa.DSAPrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_refused_private_key_types() -> None:
    with pytest.raises(UserError, match="is a DSA key: only Ed25519 and RSA"):
        keys.load_private_key(_pkcs8(dsa.generate_private_key(1024)))
    with pytest.raises(UserError, match=r"is an ECDSA \(secp256r1\) key"):
        keys.load_private_key(_pkcs8(ec.generate_private_key(ec.SECP256R1())))


def test_rsa_1024_private_key_is_refused(rsa1024_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UserError, match="is RSA-1024: RSA keys under 2048 bits are refused"):
        keys.load_private_key(_pkcs8(rsa1024_key))


# --- public keys -----------------------------------------------------------------------------


def test_public_pem_is_spki_and_round_trips(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = keys.public_key_to_pem(rsa_key.public_key())
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert _spki(keys.parse_public_key(pem)) == _spki(rsa_key)


def test_parses_pkcs1_rsa_public_keys(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert pem.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    assert _spki(keys.parse_public_key(pem)) == _spki(rsa_key)


def test_ssh_rsa_line_is_converted(rsa_key: rsa.RSAPrivateKey) -> None:
    line = keys.public_key_to_openssh(rsa_key.public_key(), "alice@laptop")
    assert line.startswith("ssh-rsa AAAA") and line.endswith(" alice@laptop")
    pub = keys.parse_public_key(line + "\n")
    assert keys.public_key_to_pem(pub) == keys.public_key_to_pem(rsa_key.public_key())


def test_ssh_ed25519_line_with_a_spaced_comment(ed_key: keys.PrivateKey) -> None:
    line = keys.public_key_to_openssh(ed_key.public_key(), "my laptop key")
    assert _spki(keys.parse_public_key(line)) == _spki(ed_key)


@needs_ssh_keygen
def test_rfc4716_block_from_ssh_keygen(tmp_path: Path) -> None:
    path = tmp_path / "id"
    _ssh_keygen("-q", "-t", "ed25519", "-N", "", "-f", str(path))
    block = _ssh_keygen("-e", "-f", f"{path}.pub")
    assert block.startswith("---- BEGIN SSH2 PUBLIC KEY ----")
    pub = keys.parse_public_key(block)
    assert keys.fingerprint(pub) == keys.fingerprint(
        keys.parse_public_key(Path(f"{path}.pub").read_text())
    )


def test_short_rsa_public_keys_are_refused_in_every_spelling(
    rsa1024_key: rsa.RSAPrivateKey,
) -> None:
    pub = rsa1024_key.public_key()
    spellings = [
        pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    ]
    for text in spellings:
        with pytest.raises(UserError, match="RSA-1024: RSA keys under 2048 bits are refused"):
            keys.parse_public_key(text)


def test_dsa_and_ecdsa_public_keys_are_refused() -> None:
    ec_pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    dsa_pub = dsa.generate_private_key(1024).public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    with pytest.raises(UserError, match="ECDSA"):
        keys.parse_public_key(ec_pub.public_bytes(serialization.Encoding.PEM, spki))
    with pytest.raises(UserError, match=r"ECDSA key \(ecdsa-sha2-nistp256\)"):
        keys.parse_public_key(
            ec_pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        )
    with pytest.raises(UserError, match="DSA"):
        keys.parse_public_key(dsa_pub.public_bytes(serialization.Encoding.PEM, spki))
    with pytest.raises(UserError, match=r"DSA key \(ssh-dss\)"):
        keys.parse_public_key("ssh-dss AAAAB3NzaC1kc3MAAACBAP comment")


def test_a_pasted_private_key_is_refused_and_named(ed_key: keys.PrivateKey) -> None:
    pem = keys.private_key_to_pem(ed_key, None)
    with pytest.raises(UserError, match="is a PRIVATE key: keep it secret"):
        keys.parse_public_key(pem)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("hello", "is not a public key"),
        ("ssh-ed25519", "no key data"),
        ("ssh-ed25519 !!!notbase64", "damaged"),
        ("ssh-ed25519 AAAA", "holds another kind of key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "damaged PEM"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "is a certificate"),
        ("-----BEGIN FOO-----\nAAAA\n-----END FOO-----", "unsupported kind"),
        ("ssh-ed25519-cert-v01@openssh.com AAAA", "OpenSSH certificate"),
        ("ssh-ed25519 AAAA x\nssh-ed25519 AAAA y", "more than one line"),
        ("---- BEGIN SSH2 PUBLIC KEY ----\n!!\n---- END SSH2 PUBLIC KEY ----", "damaged SSH2"),
        ("x" * 70_000, "too large"),
    ],
)
def test_garbage_public_keys_are_refused(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        keys.parse_public_key(text, name="key 'k'")
    assert str(info.value).startswith("key 'k' ")
    assert "\n" not in str(info.value)


def test_ssh_type_label_must_match_the_blob(
    ed_key: keys.PrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    ed_blob = keys.public_key_to_openssh(ed_key.public_key()).split()[1]
    with pytest.raises(UserError, match="holds another kind of key"):
        keys.parse_public_key(f"ssh-rsa {ed_blob}")


def test_two_pem_blocks_are_refused(ed_key: keys.PrivateKey, ed_key_b: keys.PrivateKey) -> None:
    both = keys.public_key_to_pem(ed_key.public_key()) + keys.public_key_to_pem(
        ed_key_b.public_key()
    )
    with pytest.raises(UserError, match="more than one PEM block"):
        keys.parse_public_key(both)


def test_non_ascii_bytes_are_refused() -> None:
    with pytest.raises(UserError, match="not ASCII"):
        keys.parse_public_key(b"\xff\xfe")


# --- fingerprints and algorithms -------------------------------------------------------------


def test_fingerprint_format(ed_key: keys.PrivateKey) -> None:
    fp = keys.fingerprint(ed_key.public_key())
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", fp)
    assert keys.fingerprint(ed_key.public_key()) == fp


@needs_ssh_keygen
def test_fingerprint_equals_ssh_keygen(
    tmp_path: Path, ed_key: keys.PrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    for key in (ed_key, rsa_key):
        path = tmp_path / "key.pub"
        path.write_text(keys.public_key_to_openssh(key.public_key(), "c") + "\n")
        printed = _ssh_keygen("-lf", str(path)).split()[1]
        assert keys.fingerprint(key.public_key()) == printed


@needs_ssh_keygen
def test_fingerprint_of_an_ssh_keygen_key(tmp_path: Path) -> None:
    path = tmp_path / "id"
    _ssh_keygen("-q", "-t", "ed25519", "-N", "", "-f", str(path))
    printed = _ssh_keygen("-lf", str(path)).split()[1]
    assert keys.fingerprint(keys.load_private_key(path).public_key()) == printed


def test_algorithm_and_description(ed_key: keys.PrivateKey, rsa_key: rsa.RSAPrivateKey) -> None:
    assert keys.key_algorithm(ed_key.public_key()) == "ed25519"
    assert keys.key_algorithm(rsa_key.public_key()) == "rsa-pss-sha512"
    assert keys.describe_key(ed_key.public_key()) == "ED25519"
    assert keys.describe_key(rsa_key.public_key()) == "RSA-3072"
