"""Owners' private keys on disk: make one (`create keys`), find and open one (`key=`).

`create keys` writes a new key with mode 0600 and refuses to overwrite anything; it is
encrypted with a passphrase, asked twice on the terminal, unless `passphrase=no`. Ed25519 by
default; RSA of 2048 bits or more on request (3072 by default). The original made 1024-bit RSA
keys (reference §2.6); those are refused everywhere now.

Without `key=`, the client takes `~/.ssh/id_ed25519`, then `~/.ssh/id_rsa`, as the original.
An encrypted key is opened with a passphrase asked on the terminal; without a terminal (a batch
hook, say) it must be a key without one.
"""

from __future__ import annotations

import base64
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

from flightdeck.crypto import keys as ck
from flightdeck.errors import Conflict, NotFound, UserError

Ask = Callable[[str], str]


def default_keys() -> list[Path]:
    home = Path(os.path.expanduser("~"))
    return [home / ".ssh" / "id_ed25519", home / ".ssh" / "id_rsa"]


def find_key(given: str | None) -> Path:
    """The key file to use: `given`, else the first default that exists."""
    if given:
        path = Path(os.path.expanduser(given))
        if not path.is_file():
            raise NotFound(f"you need to provide a valid private key: {given} is not a file")
        return path
    for path in default_keys():
        if path.is_file():
            return path
    tried = " or ".join(str(p) for p in default_keys())
    raise NotFound(f"you need to provide a valid private key (key=<file>): no {tried}")


def is_encrypted(data: bytes) -> bool:
    """True when a PEM or OpenSSH private key needs a passphrase to open."""
    if b"ENCRYPTED" in data:  # PKCS#8 "ENCRYPTED PRIVATE KEY", or "Proc-Type: 4,ENCRYPTED"
        return True
    marker = b"-----BEGIN OPENSSH PRIVATE KEY-----"
    if marker in data:
        body = data.split(marker, 1)[1].split(b"-----END", 1)[0]
        try:
            blob = base64.b64decode(b"".join(body.split()))
        except ValueError:
            return False
        magic = b"openssh-key-v1\0"
        if blob.startswith(magic) and len(blob) >= len(magic) + 4:
            size = int.from_bytes(blob[len(magic) : len(magic) + 4], "big")
            cipher = blob[len(magic) + 4 : len(magic) + 4 + size]
            return cipher != b"none"
    return False


def _terminal() -> bool:
    return sys.stdin.isatty()


def load_key(
    path: Path, *, ask: Ask | None = None, interactive: bool | None = None
) -> ck.PrivateKey:
    """Open the private key at `path`, asking its passphrase on the terminal if it has one."""
    try:
        data = path.read_bytes()[: 64 * 1024 + 1]
    except OSError as exc:
        raise UserError(f"cannot read the private key {path}: {exc.strerror}") from None
    passphrase: bytes | None = None
    if is_encrypted(data):
        interactive = _terminal() if interactive is None else interactive
        if not interactive:
            raise UserError(
                f"private key {path} is encrypted and there is no terminal to ask its "
                "passphrase on: run on a terminal, or use a key without a passphrase"
            )
        phrase = (ask or getpass.getpass)(f"Enter pass phrase for {path}: ")
        passphrase = phrase.encode()
    return ck.load_private_key(data, passphrase, name=str(path))


def ask_new_passphrase(path: str, ask: Ask | None = None) -> bytes:
    """The passphrase for a new key, typed twice (as `openssl genrsa -des3` asks)."""
    ask = ask or getpass.getpass
    first = ask(f"Enter pass phrase for {path}: ")
    second = ask(f"Verifying - Enter pass phrase for {path}: ")
    if first != second:
        raise UserError("the two pass phrases differ: nothing was written")
    if len(first) < 4:
        raise UserError("the pass phrase is too short (at least 4 characters): nothing was written")
    return first.encode()


def create_key_file(
    path: str,
    *,
    passphrase: bool = True,
    kind: str = "ed25519",
    bits: int = ck.DEFAULT_RSA_BITS,
    ask: Ask | None = None,
    interactive: bool | None = None,
) -> str:
    """Write a new private key to `path` (0600, never over an existing file); its public PEM."""
    if not path:
        raise UserError("must supply a filename for the private key (key=<file>)")
    if os.path.lexists(path):
        raise Conflict(f"the key file '{path}' already exists")
    key = ck.generate_private_key(kind, bits)
    secret: bytes | None = None
    if passphrase:
        interactive = _terminal() if interactive is None else interactive
        if not interactive:
            raise UserError(
                "a passphrase can only be asked on a terminal: run on a terminal, or give "
                "passphrase=no for a key without one"
            )
        secret = ask_new_passphrase(path, ask)
    pem = ck.private_key_to_pem(key, secret)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise Conflict(f"the key file '{path}' already exists") from None
    except OSError as exc:
        raise UserError(f"cannot create the key file {path}: {exc.strerror}") from None
    try:
        if hasattr(os, "fchmod"):  # not on Windows
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return ck.public_key_to_pem(key.public_key())
