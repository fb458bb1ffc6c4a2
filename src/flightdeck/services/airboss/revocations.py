"""Revoked capability tokens: what the Airboss refuses from the moment a token is revoked.

Tokens are never stored; a revocation stores only an id (the Biscuit revocation id of a
token's block, 128 hex digits), the host whose key the token is rooted in, who revoked it and
when. Revoking a token's id also refuses every token attenuated from it (an attenuated token
carries its parents' ids). The check reads the table on every token request (a few ids, one
indexed query), so a revocation holds from the next request on, on every Airboss replica and
after any restart.

Two ways in: the owner (`pilot revoke token=`, a signed request: the Airboss checks that the
token is rooted in the signing key, so an owner can revoke only their own tokens) and the
administrator (`rocks remove host token <frontend> id=`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import resolve_host
from flightdeck.db.models import PublicKey, RevokedToken
from flightdeck.errors import Conflict, UserError
from flightdeck.services.base import reading
from flightdeck.services.listings import RevokedRow as RevokedRow
from flightdeck.services.listings import list_revoked as list_revoked

#: A Biscuit revocation id: an Ed25519 signature, in hex.
TOKEN_ID = re.compile(r"[0-9a-f]{128}")
_REVOKED = select(RevokedToken.token_id).where(
    RevokedToken.token_id.in_(bindparam("ids", expanding=True))
)


def first_revoked(db: Database, ids: Sequence[str]) -> str | None:
    """The first of `ids` that was revoked, or None (one query; `ids` are a token's blocks)."""
    with db.engine.connect() as conn, conn.begin():
        return first_revoked_in(conn, ids)


def first_revoked_in(conn: Connection, ids: Sequence[str]) -> str | None:
    """`first_revoked` inside the caller's transaction."""
    if not ids:
        return None
    found = set(conn.scalars(_REVOKED, {"ids": list(ids)}).all())
    return next((i for i in ids if i in found), None)


def check_token_id(text: str | None) -> str:
    word = (text or "").strip().lower()
    if not TOKEN_ID.fullmatch(word):
        raise UserError(
            "id= must be a token id: 128 hex digits (the token_id of rocks list airboss log, "
            "or what pilot create token prints)"
        )
    return word


def owned_token_id(db: Database, keyid: str, text: str) -> str:
    """The id of `text` (a token's base64, as `pilot` keeps it) if it is rooted in the key
    `keyid`; `UserError` otherwise (an owner revokes only tokens of their own key)."""
    from flightdeck.crypto import capability
    from flightdeck.services.airboss.keys import PublicKeys

    word = text.strip()
    if len(word) > capability.MAX_TOKEN_CHARS:
        raise UserError("the token is too long to be one")
    for key in PublicKeys(db)(keyid):
        token_id = capability.token_id_for(word, key)
        if token_id is not None:
            return token_id
    raise UserError("the token is not rooted in the key that signed this request")


def _insert(db: Database, token_id: str, host_id: int, keyid: str | None, by: str) -> bool:
    """Record a revocation; False when the id was revoked already (nothing changes)."""
    values = {
        "token_id": token_id,
        "host_id": host_id,
        "keyid": keyid,
        "revoked_by": by[:255],
        "revoked_at": dt.datetime.now(dt.UTC),
    }
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(RevokedToken), values)
    except IntegrityError:
        return False
    return True


def revoke_by_owner(db: Database, token_id: str, host_id: int, keyid: str) -> bool:
    """The owner's revocation (the Airboss checked the token is rooted in `keyid`)."""
    return _insert(db, check_token_id(token_id), host_id, keyid, f"owner {keyid}")


def revoke_by_admin(db: Database, frontend: str, token_id: str | None, user: str) -> str:
    """`rocks remove host token <frontend> id=`: refuse that token from now on; its host's
    name. The host must hold a key (a token is rooted in one)."""
    word = check_token_id(token_id)
    with reading(db) as s:
        host = resolve_host(s, frontend)
        has_key = s.scalar(select(PublicKey.id).where(PublicKey.host_id == host.id).limit(1))
        name, host_id = host.name, host.id
    if has_key is None:
        raise UserError(
            f"{name} has no registered key, so no token is rooted in it (see rocks list host key)"
        )
    if not _insert(db, word, host_id, None, f"admin {user}"):
        raise Conflict(f"token {word[:16]}... is revoked already (see rocks list host token)")
    return name


