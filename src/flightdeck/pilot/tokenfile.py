"""Capability token files: read (bounded) and written (0600, never over an existing file).

A token is a credential: whoever holds the file can do what it allows until it expires or is
revoked, so it is written readable by its owner only, as a private key is.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from flightdeck.errors import UserError

if TYPE_CHECKING:
    from flightdeck.crypto.capability import Token

#: A token file is small (a few KiB); anything larger is not read whole.
MAX_FILE = 64 * 1024


def capability() -> object:
    """`flightdeck.crypto.capability`, or a clear error when biscuit-python is missing."""
    try:
        from flightdeck.crypto import capability as module
    except ModuleNotFoundError as exc:
        if exc.name != "biscuit_auth":
            raise
        raise UserError("tokens need biscuit-python: pip install 'flightdeck[tokens]'") from None
    return module


def read_token(path: str) -> Token:
    """The token in file `path` (`-`: standard input)."""
    capability()
    from flightdeck.crypto.capability import load

    if not path:
        raise UserError("token= is empty: give a token file (pilot create token makes one)")
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_FILE + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_FILE + 1)
    except OSError as exc:
        raise UserError(f"cannot read the token file {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE:
        raise UserError(f"token file {path} is too large to be a token")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise UserError(f"token file {path} is not a token: it is not ASCII text") from None
    return load(text, name=f"token file {path}")


def write_token(path: str | None, token: Token, out: object) -> None:
    """Write `token` to `path` (mode 0600, never over an existing file), or to `out` (a text
    stream, e.g. standard output for `> t.token`) when no path is given."""
    text = token.dump()
    if not path:
        out.write(text)  # type: ignore[attr-defined]
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(
            f"{path} exists: give another file name (a token is never overwritten)"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot write the token file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
