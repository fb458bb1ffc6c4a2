"""The audit log as hash chains the owner can verify: entry hashes, signed heads, the verifier.

Each cluster has its own chain (`cluster:<id>`; a VM outside any cluster `vm:<host id>`;
requests never resolved to a VM go to `site`). Entry `seq` of a chain commits to entry
`seq - 1` through `prev`, so changing, removing or reordering a stored row breaks the chain
from that entry on. The Airboss signs the chain's head (its sequence number and hash, with the
time of signing) with its own Ed25519 key, published unauthenticated at `HEAD_KEY_PATH` and
printed by `rocks report service airboss`; an owner who pins that key (and keeps heads they
verified) detects a chain rewritten from scratch too.

Pure functions over plain values: the Airboss computes hashes when it writes
(`services.airboss.chain`), `pilot verify audit` recomputes them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

#: The hash before a chain's first entry.
GENESIS = "0" * 64
#: The fields of an entry that its hash covers, in this order.
FIELDS = (
    "chain",
    "seq",
    "at",
    "client",
    "keyid",
    "operation",
    "target",
    "accepted",
    "reason",
    "token_id",
    "restrictions",
)
HEAD_KEY_PATH = "/.well-known/flightdeck-audit-key"
_HEAD_TAG = "flightdeck-audit-head/1"


def moment(at: dt.datetime) -> str:
    """A time as hashed: UTC, microseconds, no zone suffix (what both databases give back)."""
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds")


def entry_hash(prev: str, entry: Mapping[str, object]) -> str:
    """sha-256 (hex) of the previous hash and the entry's fields as canonical JSON."""
    values = [entry.get(name) for name in FIELDS]
    canonical = json.dumps([prev, *values], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def head_message(chain: str, seq: int, digest: str, signed_at: int) -> bytes:
    return f"{_HEAD_TAG}\n{chain}\n{seq}\n{digest}\n{signed_at}".encode()


def sign_head(
    key: ed25519.Ed25519PrivateKey, chain: str, seq: int, digest: str, signed_at: int
) -> str:
    return base64.b64encode(key.sign(head_message(chain, seq, digest, signed_at))).decode()


def _signed(head: Mapping[str, object], chain: str, key: ed25519.Ed25519PublicKey) -> bool:
    """True if `head` (a chain head or checkpoint of `chain`) carries `key`'s signature."""
    if head.get("chain") != chain:
        return False
    try:
        signature = base64.b64decode(str(head.get("signature")), validate=True)
        key.verify(
            signature,
            head_message(chain, int(str(head["seq"])), str(head["hash"]),
                         int(str(head["signed_at"]))),
        )  # fmt: skip
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


@dataclass(frozen=True)
class Problem:
    """The first entry that does not verify, and how."""

    seq: int | None
    what: str

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "the chain"
        return f"{where}: {self.what}"


def verify(
    entries: Sequence[Mapping[str, object]],
    head: Mapping[str, object],
    airboss_key: ed25519.Ed25519PublicKey,
    *,
    start_prev: str | None = None,
    checkpoint: Mapping[str, object] | None = None,
    complete: bool = False,
) -> Problem | None:
    """None when `entries` (ascending `seq`, each with its stored `prev` and `hash`) form an
    unbroken chain ending at `head`, whose signature `airboss_key` made; else the first
    problem. `start_prev`: the hash before the first entry when it is not entry 1 (a head the
    owner verified before); without it, a listing that starts later is checked from its first
    entry's stored `prev`. `checkpoint`: where a pruned chain now starts (a head signed when it
    was pruned): its signature is checked and the chain must go on from it. `complete`: the
    listing is the whole chain, so it must start at entry 1 or right after the checkpoint."""
    chain = str(head.get("chain"))
    if not _signed(head, chain, airboss_key):
        return Problem(None, "the head's signature does not verify with the Airboss's key")
    prev: str | None = start_prev
    if checkpoint is not None:
        if not _signed(checkpoint, chain, airboss_key):
            return Problem(None, "the checkpoint's signature does not verify with the key")
        after = int(str(checkpoint["seq"]))
        entries = [e for e in entries if int(str(e.get("seq"))) > after]
        first = int(str(entries[0].get("seq"))) if entries else int(str(head["seq"])) + 1
        if start_prev is None:
            if first != after + 1:
                return Problem(after + 1, "missing: the chain does not go on from its signed "
                               f"checkpoint (entry {after})")  # fmt: skip
            prev = str(checkpoint["hash"])
    elif complete and entries and int(str(entries[0].get("seq"))) != 1 and start_prev is None:
        return Problem(1, "missing: the chain's first entries are gone and no signed "
                       "checkpoint says they were pruned")  # fmt: skip
    expected_seq: int | None = None
    for entry in entries:
        seq = int(str(entry.get("seq")))
        if entry.get("chain") != chain:
            return Problem(seq, f"belongs to chain {entry.get('chain')}, not {chain}")
        if expected_seq is None:
            if seq == 1 and prev is None:
                prev = GENESIS
            elif prev is None:
                prev = str(entry.get("prev"))
        elif seq != expected_seq:
            return Problem(expected_seq, f"missing or reordered (found entry {seq} next)")
        if entry.get("prev") != prev:
            return Problem(seq, "does not follow the entry before it (removed or reordered)")
        digest = entry_hash(prev or GENESIS, entry)
        if digest != entry.get("hash"):
            return Problem(seq, "altered: its content does not match its hash")
        prev, expected_seq = digest, seq + 1
    head_seq = int(str(head["seq"]))
    if expected_seq is not None and expected_seq - 1 != head_seq:
        return Problem(expected_seq, f"missing: the signed head is entry {head_seq}")
    if prev is not None and prev != head.get("hash"):
        return Problem(head_seq, "the last entry is not the signed head")
    return None
