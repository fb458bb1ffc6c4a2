"""The audit hash chains (`crypto.auditchain`): linking each new row, reading a chain back,
and the Airboss's key that signs chain heads.

Linking happens inside the audit row's own transaction, write first: the head row of the chain
is bumped (`UPDATE ... SET seq = seq + 1`) before anything is read, which takes the write lock
on SQLite and the row lock on PostgreSQL, so two Airboss threads or replicas appending to one
chain are serialised by the database and never fork it.

Each process remembers the head it last wrote per chain (`_Heads`), and first tries one
statement: set the head to the new entry's (seq, hash) where it is still exactly the one
remembered (seq and hash). Whoever appended since (another thread, replica or process, or a
transaction of ours that rolled back) makes that match no row, and the link is made the long
way: the head is never moved from a state this process did not read in the same statement.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from flightdeck.crypto import auditchain
from flightdeck.db.engine import Database, core_reads
from flightdeck.db.models import AuditCheckpoint, AuditEntry, AuditHead
from flightdeck.db.prepared import Prepared
from flightdeck.errors import UserError

SITE = "site"
#: Most entries one listing returns (ask again with since=).
MAX_ENTRIES = 5000


def chain_of(host_id: int, cluster_id: int | None) -> str:
    """The chain of a target: its cluster's, or its own for a VM outside any cluster."""
    return f"cluster:{cluster_id}" if cluster_id is not None else f"vm:{host_id}"


class _Q:
    """The linking statements, built once (building one costs more than running it)."""

    bump = Prepared(
        update(AuditHead)
        .where(AuditHead.chain == bindparam("c"))
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.hash)
    )
    start = Prepared(
        insert(AuditHead).values(chain=bindparam("c"), seq=1, hash=auditchain.GENESIS)
    )
    set_hash = Prepared(
        update(AuditHead).where(AuditHead.chain == bindparam("c")).values(hash=bindparam("h"))
    )
    #: The head moved on from exactly (seq, hash) `was`, or no row: someone else moved it.
    swap = Prepared(
        update(AuditHead)
        .where(
            AuditHead.chain == bindparam("c"),
            AuditHead.seq == bindparam("was_seq"),
            AuditHead.hash == bindparam("was_hash"),
        )
        .values(seq=bindparam("seq"), hash=bindparam("h"))
    )


class _Heads:
    """The (seq, hash) this process last wrote to each chain's head: a guess only, checked by
    the statement that uses it (`_Q.swap`). Bounded; thread-safe."""

    MAX = 4096

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def get(self, chain: str) -> tuple[int, str] | None:
        return self._last.get(chain)

    def wrote(self, chain: str, seq: int, digest: str) -> None:
        with self._lock:
            if len(self._last) >= self.MAX and chain not in self._last:
                self._last.clear()
            self._last[chain] = (seq, digest)


_HEADS = _Heads()


def _place(values: dict[str, Any], chain: str, seq: int, prev: str) -> str:
    """Put `values` at `seq` after `prev` in `chain`; its hash."""
    values.update(chain=chain, seq=seq, prev=prev)
    entry = {**values, "at": auditchain.moment(values["at"])}
    digest = auditchain.entry_hash(prev, entry)
    values["hash"] = digest
    return digest


def link(conn: Connection, values: dict[str, Any], chain: str) -> None:
    """Give `values` (an audit row about to be inserted on `conn`) its place in `chain`.

    One statement when this process wrote the chain's head last (`_Heads`); otherwise two on
    the head row: bump its `seq` and read it back (`RETURNING`), then store the new hash; a
    chain's first row inserts the head instead (seq 1)."""
    guess = _HEADS.get(chain)
    if guess is not None:
        was_seq, was_hash = guess
        digest = _place(values, chain, was_seq + 1, was_hash)
        moved = _Q.swap.execute(
            conn,
            {"c": chain, "was_seq": was_seq, "was_hash": was_hash, "seq": was_seq + 1,
             "h": digest},
        )  # fmt: skip
        if moved.rowcount == 1:
            _HEADS.wrote(chain, was_seq + 1, digest)
            return
    row = _Q.bump.execute(conn, {"c": chain}).first()
    if row is not None:
        seq, prev = row
    else:
        try:
            with conn.begin_nested():
                _Q.start.execute(conn, {"c": chain})
            seq, prev = 1, auditchain.GENESIS
        except IntegrityError:  # another writer made it first: bump theirs
            seq, prev = _Q.bump.execute(conn, {"c": chain}).one()
    digest = _place(values, chain, seq, prev)
    _Q.set_hash.execute(conn, {"c": chain, "h": digest})
    _HEADS.wrote(chain, seq, digest)


@dataclass(frozen=True)
class Head:
    chain: str
    seq: int
    hash: str


def read(
    db: Database | Connection, chain: str, since: int
) -> tuple[list[dict[str, Any]], Head]:
    """The entries of `chain` from `since` on (at most MAX_ENTRIES) and its head, in one read
    transaction (the head is the last entry listed or later); given a connection, in the
    caller's transaction (the Airboss's request's own)."""
    columns = [getattr(AuditEntry, f) for f in auditchain.FIELDS]
    with core_reads(db) as conn:
        row = conn.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.chain == chain)
        ).first()
        head = Head(chain, row[0], row[1]) if row else Head(chain, 0, auditchain.GENESIS)
        rows = conn.execute(
            select(*columns, AuditEntry.prev, AuditEntry.hash)
            .where(AuditEntry.chain == chain, AuditEntry.seq >= since, AuditEntry.seq <= head.seq)
            .order_by(AuditEntry.seq)
            .limit(MAX_ENTRIES + 1)
        ).all()
    if len(rows) > MAX_ENTRIES:
        raise UserError(f"over {MAX_ENTRIES} entries: ask for fewer with since=")
    return _entries(rows, (*auditchain.FIELDS, "prev", "hash")), head


def _entries(rows: Iterable[Sequence[Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """Audit rows as the entries the chain hashes: `names` -> value, `at` as hashed."""
    entries = []
    for r in rows:
        entry = dict(zip(names, r, strict=True))
        entry["at"] = auditchain.moment(entry["at"])
        entries.append(entry)
    return entries


def tail(db: Database, chain: str, after: int, count: int) -> list[dict[str, Any]]:
    """The last `count` entries of `chain` after entry `after`, oldest first (what an open
    dashboard shows: its newest entries, then each new one as it comes)."""
    columns = [getattr(AuditEntry, f) for f in auditchain.FIELDS]
    with db.engine.connect() as conn, conn.begin():
        rows = conn.execute(
            select(*columns)
            .where(AuditEntry.chain == chain, AuditEntry.seq > after)
            .order_by(AuditEntry.seq.desc())
            .limit(count)
        ).all()
    return _entries(reversed(rows), auditchain.FIELDS)


def checkpoint(conn: Connection, key: ed25519.Ed25519PrivateKey, head: Head) -> None:
    """Store `head` (the last entry about to be pruned) as its chain's signed checkpoint."""
    signed = signed_head(key, head)
    conn.execute(delete(AuditCheckpoint).where(AuditCheckpoint.chain == head.chain))
    conn.execute(insert(AuditCheckpoint).values(**signed))


def checkpoint_of(db: Database | Connection, chain: str) -> dict[str, Any] | None:
    """The signed checkpoint a pruned `chain` starts from, or None (never pruned)."""
    with core_reads(db) as conn:
        row = conn.execute(
            select(AuditCheckpoint.chain, AuditCheckpoint.seq, AuditCheckpoint.hash,
                   AuditCheckpoint.signed_at, AuditCheckpoint.signature)
            .where(AuditCheckpoint.chain == chain)
        ).first()  # fmt: skip
    if row is None:
        return None
    return dict(zip(("chain", "seq", "hash", "signed_at", "signature"), row, strict=True))


def key_path() -> Path:
    from flightdeck.config import state_dir

    return Path(os.environ.get("FLIGHTDECK_AUDIT_KEY") or state_dir() / "airboss-audit.key")


def airboss_key(path: Path | None = None) -> ed25519.Ed25519PrivateKey:
    """The Airboss's audit signing key, made (0600) on first use. Replicas of one Airboss share
    it by sharing the file (like the TLS key)."""
    path = path or key_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return airboss_key(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return key
    loaded = serialization.load_pem_private_key(data, None)
    if not isinstance(loaded, ed25519.Ed25519PrivateKey):
        raise UserError(f"{path} is not an Ed25519 private key")
    return loaded


def public_pem(key: ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def signed_head(key: ed25519.Ed25519PrivateKey, head: Head) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return {
        "chain": head.chain,
        "seq": head.seq,
        "hash": head.hash,
        "signed_at": now,
        "signature": auditchain.sign_head(key, head.chain, head.seq, head.hash, now),
    }
