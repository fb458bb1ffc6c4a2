"""Public keys of the Airboss: add / list / remove host key, and the key lookup by fingerprint.

A key is registered on a host, and what it may do follows from that host (reference §2.6, §4.5,
with the original's weak spots fixed, §4.7):

* on a virtual frontend: that frontend and every VM of its cluster (`VM.cluster_id`, never
  "whatever carries the cluster's VLAN id");
* on any other VM: that VM only;
* on anything else (the physical frontend, a VM container, a physical compute): nothing, so
  registering one there is refused instead of silently granting nothing.

Keys are stored as the SPKI PEM block (`-----BEGIN PUBLIC KEY-----`) whatever spelling they were
given in (PEM SPKI or PKCS#1, OpenSSH `ssh-ed25519` / `ssh-rsa` lines, RFC 4716), with their
OpenSSH SHA-256 fingerprint, which is also the RFC 9421 `keyid` the Airboss looks them up by.
Ed25519 and RSA of 2048 bits or more only (`flightdeck.crypto.keys`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from flightdeck.crypto import keys as ck
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import resolve_host
from flightdeck.db.models import VM, Cluster, Host, PublicKey
from flightdeck.errors import Conflict, NotFound, UserError
from flightdeck.services.base import writing
from flightdeck.services.listings import KeyRow as KeyRow
from flightdeck.services.listings import list_host_keys as list_host_keys

#: Longest description kept (the column's size).
MAX_DESCRIPTION = 4096
#: A key file is small; anything larger is not read whole.
_MAX_KEY_FILE = 64 * 1024


def read_key_argument(value: str) -> str:
    """The key text of `key=`: the file's content when `value` names a file, else `value` itself.

    As the original: a path that exists is read, anything else is taken as the key itself (a
    pasted PEM block or OpenSSH line). Files are read up to 64 KiB; a key is never that large.
    """
    if not value.strip():
        raise UserError("key= is empty: give a public key file or the key itself")
    looks_like_key = value.lstrip().startswith(("-----BEGIN", "---- BEGIN", "ssh-"))
    if not looks_like_key and len(value) < 4096 and os.path.exists(value):
        if os.path.isdir(value):
            raise UserError(f"key={value} is a directory: give the public key file")
        try:
            with open(value, "rb") as handle:
                data = handle.read(_MAX_KEY_FILE + 1)
        except OSError as exc:
            raise UserError(f"cannot read the key file {value}: {exc.strerror}") from None
        if len(data) > _MAX_KEY_FILE:
            raise UserError(f"key file {value} is too large to be a public key")
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise UserError(f"key file {value} is not a public key: it is not ASCII text") from None
    return value


def _check_description(text: str | None) -> str | None:
    if text is None:
        return None
    if len(text) > MAX_DESCRIPTION:
        raise UserError(f"description is too long: at most {MAX_DESCRIPTION} characters")
    if any(not c.isprintable() for c in text):
        raise UserError("description may hold printable characters only (no newlines)")
    return text or None


def key_scope_kind(s: Session, host: Host) -> str | None:
    """What a key registered on `host` covers: 'cluster', 'vm', or None (nothing)."""
    if s.scalar(select(Cluster.id).where(Cluster.frontend_id == host.id)) is not None:
        return "cluster"
    if s.scalar(select(VM.id).where(VM.host_id == host.id)) is not None:
        return "vm"
    return None


def add_host_key(db: Database, host_expr: str, key: str, description: str | None = None) -> KeyRow:
    """Register a public key on one host (a virtual frontend or a VM); returns the new row."""
    text = read_key_argument(key)
    pub = ck.parse_public_key(text, name="the public key")
    fp = ck.fingerprint(pub)
    pem = ck.public_key_to_pem(pub)
    description = _check_description(description)
    with writing(db) as s:
        host = resolve_host(s, host_expr)
        if key_scope_kind(s, host) is None:
            raise UserError(
                f"host {host.name} is not a VM: a key registered there would allow nothing; "
                "register it on a virtual frontend (for its whole cluster) or on a VM"
            )
        existing = s.scalar(
            select(PublicKey.id).where(PublicKey.host_id == host.id, PublicKey.fingerprint == fp)
        )
        if existing is not None:
            raise Conflict(f"the public key already exists for host {host.name} (id {existing})")
        row = PublicKey(host_id=host.id, fingerprint=fp, public_key=pem, description=description)
        s.add(row)
        s.flush()
        return KeyRow(host.name, row.id, description, fp, ck.describe_key(pub), pem)


def remove_host_key(db: Database, host_expr: str, key_id: int | None) -> KeyRow:
    """Remove key `key_id` of one host; from then on the Airboss refuses its signatures."""
    if key_id is None:
        raise UserError("must supply an ID for the key (see 'rocks list host key')")
    with writing(db) as s:
        host = resolve_host(s, host_expr)
        row = s.scalar(
            select(PublicKey).where(PublicKey.host_id == host.id, PublicKey.id == key_id)
        )
        if row is None:
            raise NotFound(f"public key with id {key_id} doesn't exist for host {host.name}")
        gone = KeyRow(host.name, row.id, row.description, row.fingerprint, "", row.public_key)
        s.delete(row)
        return gone


#: What a tunnel-only account lets an owner's key do on the physical frontend: forward to the
#: Airboss's loopback port, nothing else (no shell, no PTY, no agent or X11, no other target).
TUNNEL_OPTIONS = (
    'restrict,port-forwarding,permitopen="localhost:{port}",permitopen="127.0.0.1:{port}"'
)


def tunnel_authorized_keys(db: Database, exprs: Sequence[str], port: int = 8677) -> list[str]:
    """authorized_keys lines for the tunnel account: every key of the named hosts (all), each
    allowed only `ssh -N -L <port>:localhost:<port>` to this frontend (the guide's tunnel)."""
    if not 1 <= port <= 65535:
        raise UserError(f"port={port} is not a TCP port (1-65535)")
    options = TUNNEL_OPTIONS.format(port=port)
    out = []
    for k in list_host_keys(db, exprs):
        try:
            line = ck.public_key_to_openssh(ck.parse_public_key(k.pem), f"flightdeck-key-{k.id}")
        except UserError:
            continue
        out.append(f"{options} {line} {k.host}")
    return out
