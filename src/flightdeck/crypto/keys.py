"""Key material for signed Airboss requests: make, load, parse, fingerprint.

Only two kinds of key are accepted, everywhere: Ed25519 (the default) and RSA of 2048 bits or
more. The original made 1024-bit RSA keys and signed with SHA-1 (reference §2.6, §4.3, §4.7.3);
both can be broken today, so they are refused at every door — when a key is generated, loaded,
or registered — with a message that says how to make a good one. DSA and ECDSA keys are refused
too: DSA is withdrawn (FIPS 186-5), and ECDSA would add a second curve family, with its
signature-encoding pitfalls, for no gain over Ed25519.

Users bring keys from OpenSSH as often as from OpenSSL, so both spellings are read: PEM
(PKCS#8, PKCS#1, SPKI), OpenSSH private keys and `ssh-ed25519 AAAA...` / `ssh-rsa AAAA...`
lines. A key is named by its OpenSSH SHA-256 fingerprint, the string `ssh-keygen -lf` prints, so
users can check which key the Airboss means without any Flightdeck tool; that string is also the
RFC 9421 `keyid`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

from flightdeck.errors import NotFound, UserError

__all__ = [
    "DEFAULT_RSA_BITS",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "PrivateKey",
    "PublicKey",
    "describe_key",
    "fingerprint",
    "generate_private_key",
    "key_algorithm",
    "load_private_key",
    "parse_public_key",
    "private_key_to_pem",
    "public_key_to_openssh",
    "public_key_to_pem",
]

PrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ed25519.Ed25519PublicKey | rsa.RSAPublicKey

#: Below this an RSA modulus is within reach of factoring (NIST SP 800-131A disallows it).
MIN_RSA_BITS = 2048
#: What we generate when asked for RSA: 128-bit security, as NIST recommends beyond 2030.
DEFAULT_RSA_BITS = 3072
#: Above this, verifying costs milliseconds per request for no security gain: refused.
MAX_RSA_BITS = 16384

#: Key files and pasted keys are small; anything bigger is not a key (and is not read whole).
_MAX_KEY_TEXT = 64 * 1024

_WEAK_RSA = (
    "RSA keys under 2048 bits are refused: they can be factored; use bits=3072 or type=ed25519"
)
_ACCEPTED = "only Ed25519 and RSA (2048 bits or more) keys are accepted"
_MAKE_ONE = "make one with `rocks create keys` or `ssh-keygen -t ed25519`"
_OPENSSH_ACCEPTED_TYPES = ("ssh-ed25519", "ssh-rsa")
_OPENSSH_REFUSED_TYPES = {
    "ssh-dss": "DSA",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "sk-ssh-ed25519@openssh.com": "a FIDO security-key (sk-ssh-ed25519)",
    "sk-ecdsa-sha2-nistp256@openssh.com": "a FIDO security-key (sk-ecdsa)",
}


# --------------------------------------------------------------------------------------------
# Generating and writing private keys
# --------------------------------------------------------------------------------------------


def generate_private_key(kind: str = "ed25519", bits: int = DEFAULT_RSA_BITS) -> PrivateKey:
    """Make a new private key: Ed25519 unless `kind="rsa"` (then `bits`, at least 2048).

    Ed25519 is the default because it is small, fast to verify, deterministic (no randomness
    at signing time to get wrong) and has no parameters to choose badly.
    """
    kind = kind.lower()
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa":
        if bits < MIN_RSA_BITS:
            raise UserError(_WEAK_RSA)
        if bits > MAX_RSA_BITS:
            raise UserError(
                f"RSA keys over {MAX_RSA_BITS} bits are refused: they are slow and no safer; "
                "use bits=3072 or type=ed25519"
            )
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    raise UserError(f"key type {kind!r} is not supported: use type=ed25519 or type=rsa")


def private_key_to_pem(key: PrivateKey, passphrase: bytes | None) -> bytes:
    """The private key file `rocks create keys` writes: one file for the Airboss and for ssh.

    Ed25519 keys in OpenSSH's own format (`BEGIN OPENSSH PRIVATE KEY`): OpenSSH (9.2 in Debian
    12) cannot read Ed25519 keys in PKCS#8, and the owner logs in to their virtual frontend with
    `ssh -i private.key`. RSA keys in PKCS#8 PEM, which OpenSSH and OpenSSL both read. All our
    loaders read both. A passphrase encrypts with the best available cipher (bcrypt KDF for the
    OpenSSH format); an empty one is refused rather than silently writing a clear-text key.
    """
    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        encryption = serialization.NoEncryption()
    elif not passphrase:
        raise UserError("the passphrase is empty: type a passphrase, or ask for a key without one")
    else:
        encryption = serialization.BestAvailableEncryption(passphrase)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
        )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


# --------------------------------------------------------------------------------------------
# Loading private keys
# --------------------------------------------------------------------------------------------


def load_private_key(
    source: str | os.PathLike[str] | bytes,
    passphrase: bytes | None = None,
    *,
    name: str | None = None,
) -> PrivateKey:
    """Read a private key from a file path, or from the key text itself when given bytes.

    Reads PEM (PKCS#8, PKCS#1 `RSA PRIVATE KEY`, encrypted or not) and OpenSSH
    (`~/.ssh/id_ed25519`) keys. `name` labels the key in error messages (default: the path).
    Every failure is a one-line `UserError` (`NotFound` for a missing file) that says what is
    wrong and what to do: encrypted without a passphrase, wrong passphrase, not a key, or a key
    of a refused type or size.
    """
    if isinstance(source, bytes):
        data = source
        label = name or "(given as text)"
    else:
        label = name or os.fspath(source)
        data = _read_key_file(source, label)
    if len(data) > _MAX_KEY_TEXT:
        raise UserError(f"private key {label} is not a private key: it is too large")

    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
        key = _load_with(serialization.load_ssh_private_key, data, passphrase, label)
    elif b"-----BEGIN" in data and b"PRIVATE KEY-----" in data:
        key = _load_with(serialization.load_pem_private_key, data, passphrase, label)
    elif b"-----BEGIN PUBLIC KEY-----" in data or data.lstrip().startswith(b"ssh-"):
        raise UserError(
            f"private key {label} is a public key: give the private key file "
            "(for OpenSSH, the file without .pub)"
        )
    else:
        raise UserError(f"private key {label} is not a PEM or OpenSSH private key: {_MAKE_ONE}")
    return _accept_private_key(key, f"private key {label}")


def _read_key_file(path: str | os.PathLike[str], label: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(_MAX_KEY_TEXT + 1)
    except FileNotFoundError:
        raise NotFound(
            f"private key {label} does not exist: give the path of your key file or {_MAKE_ONE}"
        ) from None
    except IsADirectoryError:
        raise UserError(f"private key {label} is a directory: give the key file") from None
    except OSError as exc:
        raise UserError(f"private key {label} cannot be read: {exc.strerror}") from None


#: A cryptography loader. Its result is taken as `object`: each cryptography release may add key
#: types to what its loaders return (51 added ML-DSA hybrids); `_accept_private_key` narrows it.
_Loader: TypeAlias = Callable[[bytes, bytes | None], object]


def _load_with(
    loader: _Loader, data: bytes, passphrase: bytes | None, label: str
) -> object:
    """Run one cryptography loader and turn its assorted exceptions into one-line errors."""
    try:
        return loader(data, passphrase)
    except TypeError as exc:
        if passphrase is not None:
            # "Password was given but private key is not encrypted": the passphrase is
            # simply not needed; read the key without it.
            return _load_with(loader, data, None, label)
        raise UserError(f"private key {label} is encrypted: give its passphrase") from exc
    except UnsupportedAlgorithm as exc:
        if "bcrypt" in str(exc):
            raise UserError(
                f"private key {label} is an encrypted OpenSSH key; reading it needs the Python "
                "package 'bcrypt': install it (pip install bcrypt)"
            ) from None
        raise UserError(f"private key {label} is of an unsupported type: {_ACCEPTED}") from None
    except ValueError:
        if passphrase is not None and _is_encrypted(loader, data):
            raise UserError(
                f"private key {label} could not be decrypted: the passphrase is wrong"
            ) from None
        raise UserError(
            f"private key {label} is damaged or of an unsupported type: {_ACCEPTED}"
        ) from None


def _is_encrypted(loader: _Loader, data: bytes) -> bool:
    """True when the key data loads only with a passphrase (so a failure means a wrong one)."""
    try:
        loader(data, None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return False


def _accept_private_key(key: object, label: str) -> PrivateKey:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        _check_rsa_size(key.key_size, label)
        return key
    raise UserError(f"{label} is {_kind_name(key)} key: {_ACCEPTED}; {_MAKE_ONE}")


# --------------------------------------------------------------------------------------------
# Public keys
# --------------------------------------------------------------------------------------------


def public_key_to_pem(pub: PublicKey) -> str:
    """The SPKI `-----BEGIN PUBLIC KEY-----` block: what `rocks create keys` prints and stores."""
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def public_key_to_openssh(pub: PublicKey, comment: str = "") -> str:
    """The one-line OpenSSH form, `ssh-ed25519 AAAA... comment`."""
    line = pub.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")
    return f"{line} {comment}".rstrip() if comment else line


def parse_public_key(text: str | bytes, *, name: str = "the public key") -> PublicKey:
    """Read one public key given as text, in any of the spellings users paste.

    Accepts PEM SPKI (`BEGIN PUBLIC KEY`), PEM PKCS#1 (`BEGIN RSA PUBLIC KEY`), RFC 4716
    (`BEGIN SSH2 PUBLIC KEY`, what `ssh-keygen -e` prints) and OpenSSH lines
    (`ssh-ed25519 AAAA... comment`, `ssh-rsa AAAA...`). Refuses, each with its own message: a
    private key pasted by mistake (it must not end up in the database), DSA and ECDSA keys, RSA
    under 2048 bits, several keys at once, and anything else. `name` labels the key in errors.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise UserError(f"{name} is not a public key: it is not ASCII text") from None
    if len(text) > _MAX_KEY_TEXT:
        raise UserError(f"{name} is not a public key: it is too large")
    text = text.strip()
    if not text:
        raise UserError(f"{name} is empty: give a PEM public key or an OpenSSH key line")
    if text.startswith("-----BEGIN"):
        return _parse_armoured_public_key(text, name)
    return _parse_openssh_line(text, name)


def _parse_armoured_public_key(text: str, name: str) -> PublicKey:
    if text.count("-----BEGIN") != 1:
        raise UserError(f"{name} holds more than one PEM block: give exactly one public key")
    header = text.splitlines()[0].strip()
    if "PRIVATE KEY" in header:
        raise UserError(
            f"{name} is a PRIVATE key: keep it secret and give its public key instead "
            "(`openssl pkey -pubout` or the .pub file)"
        )
    if header in ("-----BEGIN PUBLIC KEY-----", "-----BEGIN RSA PUBLIC KEY-----"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnsupportedAlgorithm):
            raise UserError(f"{name} is a damaged PEM public key: copy it again") from None
        return _accept_public_key(key, name)
    if "CERTIFICATE" in header:
        raise UserError(
            f"{name} is a certificate: give its public key (`openssl x509 -pubkey -noout`)"
        )
    raise UserError(f"{name} is a PEM block of an unsupported kind ({header.strip('- ')})")


def _parse_rfc4716(text: str, name: str) -> PublicKey:
    """RFC 4716 `---- BEGIN SSH2 PUBLIC KEY ----` blocks, as `ssh-keygen -e` writes them."""
    lines = [line.strip() for line in text.splitlines()]
    if lines[-1] != "---- END SSH2 PUBLIC KEY ----" or text.count("---- BEGIN") != 1:
        raise UserError(f"{name} is a damaged SSH2 public key block: copy it again")
    body: list[str] = []
    continued = False
    for line in lines[1:-1]:
        if continued or ":" in line:
            # A header ("Comment: ..."), possibly continued with a trailing backslash.
            continued = line.endswith("\\")
            continue
        body.append(line)
    try:
        blob = base64.b64decode("".join(body), validate=True)
    except ValueError:
        raise UserError(f"{name} is a damaged SSH2 public key block: copy it again") from None
    kind = _ssh_blob_type(blob)
    return _parse_openssh_line(f"{kind} {base64.b64encode(blob).decode('ascii')}", name)


def _ssh_blob_type(blob: bytes) -> str:
    """The key type string at the head of an SSH wire-format public key blob."""
    if len(blob) < 4:
        return ""
    size = int.from_bytes(blob[:4], "big")
    kind = blob[4 : 4 + size]
    return kind.decode("ascii", "replace") if size <= 64 else ""


def _parse_openssh_line(text: str, name: str) -> PublicKey:
    if text.startswith("---- BEGIN SSH2 PUBLIC KEY ----"):
        return _parse_rfc4716(text, name)
    if "\n" in text:
        raise UserError(f"{name} holds more than one line: give exactly one public key")
    fields = text.split()
    kind = fields[0]
    if kind in _OPENSSH_REFUSED_TYPES:
        raise UserError(
            f"{name} is {_OPENSSH_REFUSED_TYPES[kind]} key ({kind}): {_ACCEPTED}; {_MAKE_ONE}"
        )
    if kind not in _OPENSSH_ACCEPTED_TYPES:
        if kind.endswith("-cert-v01@openssh.com"):
            raise UserError(f"{name} is an OpenSSH certificate: give the plain public key")
        raise UserError(
            f"{name} is not a public key: give a PEM public key or an OpenSSH line "
            "such as `ssh-ed25519 AAAA... comment`"
        )
    if len(fields) < 2:
        raise UserError(f"{name} has no key data after {kind!r}: copy the whole line")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except ValueError:
        raise UserError(f"{name} is a damaged {kind} key: copy the whole line again") from None
    if _ssh_blob_type(blob) != kind:
        raise UserError(f"{name} says {kind!r} but holds another kind of key: copy it again")
    try:
        key = serialization.load_ssh_public_key(f"{kind} {fields[1]}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm):
        raise UserError(f"{name} is a damaged {kind} key: copy the whole line again") from None
    return _accept_public_key(key, name)


def _accept_public_key(key: object, name: str) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey):
        _check_rsa_size(key.key_size, name)
        return key
    raise UserError(f"{name} is {_kind_name(key)} key: {_ACCEPTED}; {_MAKE_ONE}")


def _check_rsa_size(bits: int, label: str) -> None:
    if bits < MIN_RSA_BITS:
        raise UserError(f"{label} is RSA-{bits}: {_WEAK_RSA}")
    if bits > MAX_RSA_BITS:
        raise UserError(
            f"{label} is RSA-{bits}: RSA keys over {MAX_RSA_BITS} bits are refused: "
            "they are slow and no safer; use bits=3072 or type=ed25519"
        )


def _kind_name(key: object) -> str:
    """'a DSA', 'an ECDSA (secp256r1)'...: for messages about refused keys."""
    if isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey):
        return "a DSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"an ECDSA ({key.curve.name})"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "an Ed448"
    if isinstance(
        key,
        x25519.X25519PrivateKey | x25519.X25519PublicKey | x448.X448PrivateKey | x448.X448PublicKey,
    ):
        return "a key-agreement (X25519/X448)"
    return f"a {type(key).__name__}"


# --------------------------------------------------------------------------------------------
# Names and algorithms
# --------------------------------------------------------------------------------------------


def fingerprint(pub: PublicKey) -> str:
    """`SHA256:<base64, unpadded>` of the OpenSSH wire-format key: what `ssh-keygen -lf` prints.

    This is the key's name everywhere (the RFC 9421 `keyid`, the audit log, `rocks list host
    key`), so a user can match it against their own key with standard tools.
    """
    line = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def key_algorithm(pub: PublicKey) -> str:
    """The RFC 9421 algorithm we sign with for this key: `ed25519` or `rsa-pss-sha512`.

    For RSA, PSS rather than PKCS#1 v1.5: PSS has a security proof and is the RFC 9421
    registry's first RSA choice; v1.5 (`rsa-v1_5-sha256`) is still verified, for keys whose
    signing tools only do v1.5, but never produced by default.
    """
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "ed25519"
    return "rsa-pss-sha512"


def describe_key(pub: PublicKey) -> str:
    """`ED25519` or `RSA-3072`: the kind and size, for listings and messages."""
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "ED25519"
    return f"RSA-{pub.key_size}"
