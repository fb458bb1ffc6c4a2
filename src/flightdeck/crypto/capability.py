"""Attenuable capability tokens for owners: Biscuit (biscuit-python), rooted in the owner's key.

Why Biscuit: a standard, reviewed format whose tokens anyone can narrow offline (each appended
block may only add `check`s, and facts of appended blocks are never trusted) and nobody can
widen, with Ed25519 signatures we already use. The owner's registered Ed25519 key is the root
key: the Airboss verifies a token against the public key it already has, so a token can never
do more than the key does (the key's cluster), and needs no new secret on the Airboss.

A token says:

* its authority block, signed by the owner's key: `service("flightdeck-airboss")` (so a Biscuit
  the same key signed for another service is not an Airboss token) and the restrictions the
  owner chose at minting;
* each attenuation block (`attenuate`, no key needed): more restrictions, as `check`s on the
  facts the Airboss supplies for a request: `operation(..)` (see `OPERATIONS`), `host(..)` (the
  VM's physical-side name and each of its MACs), `time(..)` and `client(..)` (the address).

Proof of possession (`bind`): a token is never sent as it is kept. For every request the client
appends one more block, `check if request("<sha-256>")`, where the hash covers an RFC 9421
signature base (`crypto.httpsig.signature_base`) of the request's method, path, query and body
digest plus a fresh nonce, `created` and `expires` (at most `MAX_BINDING_LIFETIME` apart), sent
in the `Token-Binding` header. Only the holder of the token can append a block (Biscuit carries
the next block's signing key inside the token), so the appended block proves possession; the
Airboss refuses a token whose last block is not exactly that binding for this request, records
the nonce like a signature's (a replay is refused, also after a restart and on another replica),
and refuses a binding outside its short window. A captured request token is worth nothing: its
binding fails for any other request, and a block appended to it can only add checks.

File format (`Token.dump`): two lines, `flightdeck-token 1 <keyid>` (the root key's
fingerprint, a hint the verifier checks by signature) and the Biscuit in URL-safe base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import biscuit_auth as bx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from flightdeck.crypto import sfv
from flightdeck.crypto.digest import DigestRejected, content_digest, verify_content_digest
from flightdeck.crypto.httpsig import (
    COVERED,
    MAX_NONCE_LENGTH,
    MIN_NONCE_LENGTH,
    header_values,
    signature_base,
)
from flightdeck.crypto.keys import PrivateKey, PublicKey, describe_key, fingerprint
from flightdeck.errors import PermissionDenied, UserError

#: The operation names a token restricts (`api.operations.Operation.right`).
OPERATIONS: tuple[str, ...] = (
    "power.on",
    "power.off",
    "power.install",
    "power.reset",
    "power.shutdown",
    "macs",
    "cdrom",
    "console",
    "audit",
)
#: The authority fact that makes a Biscuit an Airboss token (domain separation).
SERVICE = "flightdeck-airboss"
MAGIC = "flightdeck-token"
VERSION = "1"
#: Bounds, checked before any parsing: the base64 text (characters), blocks, hosts per check.
MAX_TOKEN_CHARS = 16_384
MAX_BLOCKS = 16
MAX_HOSTS = 4096
MAX_CLIENTS = 256
#: The authoriser's wall-clock budget per request. The library's default (1 ms) is a wall-clock
#: bound that a loaded machine overruns with an ordinary token (measured: every authorisation
#: failed closed at load 3 on 2 cores), which would refuse legitimate requests at random. The
#: deterministic bounds (1000 facts, 100 iterations) stay the library's; only a token signed by
#: a registered key (and rate-limited per key) ever reaches the authoriser.
AUTHORIZER_MAX_TIME = dt.timedelta(milliseconds=100)
#: Longest a binding is valid, in seconds (as a signature: at most 5 minutes).
MAX_BINDING_LIFETIME = 300
BINDING_HEADER = "token-binding"
BINDING_LABEL = "token"
BINDING_TAG = "flightdeck-token"
AUTH_SCHEME = "Biscuit"
_B64 = re.compile(r"[A-Za-z0-9_=-]+")
_KEYID = re.compile(r"SHA256:[A-Za-z0-9+/=]{1,100}")

#: Every `TokenRejected.reason`, and what it means.
REASONS: dict[str, str] = {
    "token-malformed": "the Authorization or Token-Binding header is malformed or over bounds",
    "token-expired-binding": "the binding's window is over, not yet open, or too long",
    "token-digest": "the body does not match its Content-Digest",
    "token-unknown-key": "the token's root key is not registered (or is not Ed25519)",
    "token-invalid": "the token's signatures do not verify against the registered key",
    "token-unbound": "the token's last block is not the binding of this request",
    "token-revoked": "one of the token's blocks was revoked",
    "token-replay": "this binding's nonce was already used",
    "token-denied": "a check of the token fails for this request (operation, host, time...)",
}


class TokenRejected(PermissionDenied):
    """A token request was refused; `reason` is one of `REASONS`, `detail` for the audit log."""

    def __init__(self, reason: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = detail


# Restrictions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restrictions:
    """What a block narrows a token to; None leaves that dimension as it was."""

    ops: tuple[str, ...] | None = None
    hosts: tuple[str, ...] | None = None
    until: dt.datetime | None = None
    clients: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.ops is not None:
            unknown = [o for o in self.ops if o not in OPERATIONS]
            if unknown or not self.ops:
                raise UserError(
                    f"ops={','.join(unknown) or '(empty)'}: give operations among "
                    f"{','.join(OPERATIONS)}"
                )
        if self.hosts is not None and not 1 <= len(self.hosts) <= MAX_HOSTS:
            raise UserError(f"hosts= must name 1 to {MAX_HOSTS} hosts, not {len(self.hosts)}")
        if self.clients is not None and not 1 <= len(self.clients) <= MAX_CLIENTS:
            raise UserError(f"from= must name 1 to {MAX_CLIENTS} addresses")
        if self.until is not None and self.until.tzinfo is None:
            raise UserError("until= must be a time with a time zone")

    @property
    def empty(self) -> bool:
        return self.ops is None and self.hosts is None and self.until is None and not self.clients

    def block(self) -> tuple[str, dict[str, object]]:
        """The Datalog checks of these restrictions, and their parameters (never pasted)."""
        lines: list[str] = []
        params: dict[str, object] = {}
        if self.ops is not None:
            lines.append("check if operation($op), {ops}.contains($op);")
            params["ops"] = sorted(set(self.ops))
        if self.hosts is not None:
            lines.append("check if host($h), {hosts}.contains($h);")
            params["hosts"] = sorted({normal_host(h) for h in self.hosts})
        if self.until is not None:
            lines.append("check if time($t), $t <= {until};")
            params["until"] = self.until.astimezone(dt.UTC)
        if self.clients is not None:
            lines.append("check if client($a), {clients}.contains($a);")
            params["clients"] = sorted(set(self.clients))
        return "\n".join(lines), params


def normal_host(name: str) -> str:
    """A host as the Airboss names it in `host(..)` facts: MACs lower case, names as given."""
    text = name.strip()
    if re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", text):
        return text.lower()
    return text


# Tokens -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """A token as held: its root public key (raw Ed25519, 32 bytes) and the Biscuit's base64.

    The root key travels with the token because Biscuit serialises only a token it has
    verified: `attenuate` and `bind` check the token against it first (so a holder also learns
    whether a token is genuine). The Airboss never trusts it: it verifies against the key
    registered under the same fingerprint.
    """

    root: bytes
    text: str

    @property
    def keyid(self) -> str:
        return fingerprint(ed25519.Ed25519PublicKey.from_public_bytes(self.root))

    def biscuit(self) -> bx.Biscuit:
        try:
            return bx.Biscuit.from_base64(self.text, _public_raw(self.root))
        except Exception:
            raise UserError(
                "the token does not verify against its own root key: it was altered"
            ) from None

    @property
    def id(self) -> str:
        """The revocation id of its last block (revoking it revokes this token and every
        token attenuated from it)."""
        return self.ids[-1]

    @property
    def ids(self) -> list[str]:
        return [str(i) for i in self.biscuit().revocation_ids]

    def dump(self) -> str:
        root = base64.b64encode(self.root).decode("ascii")
        return f"{MAGIC} {VERSION} {root}\n{self.text}\n"

    def sources(self) -> list[str]:
        """Each block's Datalog, as the library prints it (for `pilot` to show)."""
        token = self.biscuit()
        return [str(token.block_source(i)) for i in range(token.block_count())]


def _public_raw(raw: bytes) -> bx.PublicKey:
    return bx.PublicKey.from_bytes(raw, bx.Algorithm.Ed25519)  # type: ignore[call-arg,attr-defined]


_NOT_A_TOKEN = "is not a Flightdeck token file (make one with pilot create token)"


def load(text: str, *, name: str = "the token") -> Token:
    """A token file's content; `UserError` naming `name` if it is not one."""
    lines = text.strip().splitlines()
    if len(lines) != 2:
        raise UserError(f"{name} {_NOT_A_TOKEN}")
    head = lines[0].split()
    body = lines[1].strip()
    if len(head) != 3 or head[0] != MAGIC:
        raise UserError(f"{name} {_NOT_A_TOKEN}")
    if head[1] != VERSION:
        raise UserError(f"{name} is a version {head[1]} token; this pilot reads version 1")
    try:
        root = base64.b64decode(head[2], validate=True)
    except ValueError:
        root = b""
    if len(root) != 32:
        raise UserError(f"{name} {_NOT_A_TOKEN}")
    if len(body) > MAX_TOKEN_CHARS or not _B64.fullmatch(body):
        raise UserError(f"{name} holds no valid token (over {MAX_TOKEN_CHARS} characters?)")
    token = Token(root, body)
    token.biscuit()
    return token


def _root_private(key: PrivateKey) -> bx.PrivateKey:
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UserError(
            f"tokens need an Ed25519 key, and this is {describe_key(key.public_key())}: make "
            "one with pilot create keys and register it with rocks add host key"
        )
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return bx.PrivateKey.from_bytes(raw, bx.Algorithm.Ed25519)  # type: ignore[call-arg,attr-defined]


def root_public(key: PublicKey) -> bx.PublicKey | None:
    """The Biscuit form of a registered key; None for a key that cannot root a token (RSA)."""
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return None
    return _public_raw(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def token_id_for(text: str, key: PublicKey) -> str | None:
    """The id (last block's revocation id) of a token's base64 if it verifies against `key`."""
    root = root_public(key)
    if root is None or len(text) > MAX_TOKEN_CHARS or not _B64.fullmatch(text):
        return None
    try:
        return str(bx.Biscuit.from_base64(text, root).revocation_ids[-1])
    except Exception:
        return None


def mint(key: PrivateKey, restrictions: Restrictions) -> Token:
    """A new token rooted in `key`: the key's rights, narrowed by `restrictions`."""
    source, params = restrictions.block()
    builder = bx.BiscuitBuilder(f'service("{SERVICE}");\n{source}', params or None)
    biscuit = builder.build(_root_private(key))
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Token(pub, str(biscuit.to_base64()))


def attenuate(token: Token, restrictions: Restrictions) -> Token:
    """`token` narrowed by one more block (no key needed; it can only add checks)."""
    if restrictions.empty:
        raise UserError("attenuate with at least one of ops=, hosts=, until=, from=")
    source, params = restrictions.block()
    held = token.biscuit()
    if held.block_count() >= MAX_BLOCKS - 1:
        raise UserError(f"the token has too many blocks already (at most {MAX_BLOCKS})")
    appended = held.append(bx.BlockBuilder(source, params))
    return Token(token.root, str(appended.to_base64()))


# Binding a request (the client) -------------------------------------------------------------


def _binding_hash(components: Sequence[tuple[str, str]], inner: sfv.InnerList) -> str:
    base = signature_base(components, sfv.serialize_inner_list(inner))
    return hashlib.sha256(base).hexdigest()


def _binding_source(digest: str) -> str:
    """The binding block exactly as the library prints it (the verifier compares to it)."""
    return f'check if request("{digest}");\n'


def _components(method: str, path: str, query: str, digest: str) -> list[tuple[str, str]]:
    return [
        ("@method", method),
        ("@path", path or "/"),
        ("@query", "?" + query),
        ("content-digest", digest),
    ]


def bind(
    token: Token,
    method: str,
    path: str,
    query: str,
    body: bytes,
    *,
    created: int | None = None,
    expires_in: int = 60,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers of one request made with `token`: Authorization (the token with its
    binding block), Token-Binding (what the binding hashed) and Content-Digest."""
    if not 1 <= expires_in <= MAX_BINDING_LIFETIME:
        raise UserError(f"expires_in must be 1 to {MAX_BINDING_LIFETIME} seconds")
    created = int(time.time()) if created is None else created
    nonce = secrets.token_urlsafe(16) if nonce is None else nonce
    digest = content_digest(body)
    inner = sfv.InnerList(
        [sfv.Item(c) for c in COVERED],
        {
            "created": created,
            "expires": created + expires_in,
            "nonce": nonce,
            "keyid": token.keyid,
            "tag": BINDING_TAG,
        },
    )
    binding = _binding_hash(_components(method, path, query, digest), inner)
    bound = token.biscuit().append(bx.BlockBuilder("check if request({r});", {"r": binding}))
    return {
        "Authorization": f"{AUTH_SCHEME} {bound.to_base64()}",
        "Token-Binding": sfv.serialize_dictionary({BINDING_LABEL: inner}),
        "Content-Digest": digest,
    }


# Verifying (the Airboss) -------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    keyid: str
    nonce: str
    created: int
    expires: int


@dataclass
class VerifiedToken:
    """A token whose signatures, binding and nonce hold, not yet authorised for a target."""

    keyid: str
    #: The revocation id of the token as its holder keeps it (the block before the binding).
    id: str
    #: Every block's revocation id (what revocation is checked against).
    ids: list[str]
    #: The blocks' Datalog (authority and attenuations), for the audit log.
    restrictions: str
    binding: Binding
    biscuit: bx.Biscuit
    #: The binding's hash: the `request(..)` fact the binding block checks.
    request: str

    def authorize(
        self, operation: str, hosts: Iterable[str], client: str | None, now: float
    ) -> None:
        """`TokenRejected("token-denied")` unless every check of every block holds for this
        operation on these hosts (the target's name and MACs), from `client`, at `now`."""
        builder = bx.AuthorizerBuilder(
            "operation({op}); time({now}); request({r}); allow if service({service});",
            {
                "op": operation,
                "now": dt.datetime.fromtimestamp(int(now), dt.UTC),
                "r": self.request,
                "service": SERVICE,
            },
        )
        # The stubs lag the library: limits() and set_limits() exist at run time.
        limits = builder.limits()  # type: ignore[attr-defined]
        limits.max_time = AUTHORIZER_MAX_TIME
        builder.set_limits(limits)  # type: ignore[attr-defined]
        for host in sorted({normal_host(h) for h in hosts}):
            builder.add_fact(bx.Fact("host({h})", {"h": host}))
        if client:
            builder.add_fact(bx.Fact("client({a})", {"a": client}))
        try:
            builder.build(self.biscuit).authorize()
        except bx.AuthorizationError as exc:
            raise TokenRejected(
                "token-denied",
                "the token does not allow this request",
                detail=_one_line(str(exc)),
            ) from None
        except Exception as exc:  # the library's limits (time, facts): fail closed
            raise TokenRejected(
                "token-denied", "the token does not allow this request", detail=_one_line(str(exc))
            ) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:900]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return header_values(headers, name)[0]


def presented(headers: Mapping[str, str]) -> bool:
    """True when the request carries a token (`Authorization: Biscuit ...`)."""
    auth = _header(headers, "authorization")
    return auth is not None and auth[: len(AUTH_SCHEME) + 1].lower() == "biscuit "


def _malformed(what: str) -> TokenRejected:
    return TokenRejected("token-malformed", f"the token request is malformed: {what}")


def _parse_binding(headers: Mapping[str, str]) -> tuple[Binding, sfv.InnerList]:
    text = _header(headers, BINDING_HEADER)
    if text is None:
        raise _malformed("no Token-Binding header (send it with pilot ... token=)")
    try:
        members = sfv.parse_dictionary(text, max_length=1024, max_members=2)
    except sfv.SFVError as exc:
        raise _malformed(f"Token-Binding: {exc}") from None
    inner = members.get(BINDING_LABEL)
    if len(members) != 1 or not isinstance(inner, sfv.InnerList):
        raise _malformed("Token-Binding must hold exactly token=(...)")
    if [i.value for i in inner.items] != list(COVERED) or any(i.params for i in inner.items):
        raise _malformed(f"Token-Binding must cover exactly {' '.join(COVERED)}")
    p = inner.params
    if set(p) != {"created", "expires", "nonce", "keyid", "tag"} or p["tag"] != BINDING_TAG:
        raise _malformed("Token-Binding needs created, expires, nonce, keyid and its tag")
    created, expires, nonce, keyid = p["created"], p["expires"], p["nonce"], p["keyid"]
    if (
        type(created) is not int
        or type(expires) is not int
        or not isinstance(nonce, str)
        or not isinstance(keyid, str)
        or not MIN_NONCE_LENGTH <= len(nonce) <= MAX_NONCE_LENGTH
        or not _KEYID.fullmatch(keyid)
    ):
        raise _malformed("a Token-Binding parameter has the wrong type or size")
    return Binding(keyid, nonce, created, expires), inner


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: Callable[[str], list[PublicKey]],
    *,
    now: int,
    max_skew: int,
    revoked: Callable[[list[str]], str | None],
    seen_nonce: Callable[[str, str, int], bool],
) -> VerifiedToken:
    """Verify a token request, cheapest and most decisive first; `TokenRejected` if not.

    Bounds and times, then the body digest, then the key lookup (`keys`, the first database
    read), the Biscuit's signatures against each registered key of that id, the binding block,
    revocation (`revoked`: the first revoked id among those given, or None) and last the nonce
    (`seen_nonce(keyid, nonce, keep_until)`: True for a replay), so that nothing unverified is
    stored. Authorising the operation on a target is `VerifiedToken.authorize`, later.
    """
    auth = _header(headers, "authorization") or ""
    text = auth[len(AUTH_SCHEME) + 1 :].strip()
    if not presented(headers) or len(text) > MAX_TOKEN_CHARS or not _B64.fullmatch(text):
        raise _malformed(f"Authorization must be 'Biscuit <base64>' under {MAX_TOKEN_CHARS} chars")
    binding, inner = _parse_binding(headers)
    if not 0 < binding.expires - binding.created <= MAX_BINDING_LIFETIME:
        raise TokenRejected(
            "token-expired-binding",
            f"the token binding must be valid 1 to {MAX_BINDING_LIFETIME} s",
        )
    if binding.created > now + max_skew:
        raise TokenRejected("token-expired-binding", "the token binding is not valid yet")
    if binding.expires < now - max_skew:
        raise TokenRejected("token-expired-binding", "the token binding has expired")
    try:
        verify_content_digest(_header(headers, "content-digest"), body)
    except DigestRejected as exc:
        raise TokenRejected("token-digest", exc.message) from None
    digest = _header(headers, "content-digest") or ""

    roots = [r for r in (root_public(k) for k in keys(binding.keyid)) if r is not None]
    if not roots:
        raise TokenRejected(
            "token-unknown-key", "the token's key is not registered here (or is not Ed25519)"
        )
    biscuit = None
    for root in roots:
        try:
            biscuit = bx.Biscuit.from_base64(text, root)
            break
        except Exception:
            continue
    if biscuit is None:
        raise TokenRejected("token-invalid", "the token does not verify against its key")
    count = biscuit.block_count()
    if not 2 <= count <= MAX_BLOCKS:
        raise TokenRejected("token-unbound", "the token is not bound to this request")

    try:
        components = _components(method, path, query, digest)
        expected = _binding_hash(components, inner)
    except (ValueError, sfv.SFVError):
        raise _malformed("method, path or query cannot be bound") from None
    last = count - 1
    if biscuit.block_external_key(last) is not None or biscuit.block_source(
        last
    ) != _binding_source(expected):
        raise TokenRejected(
            "token-unbound", "the token's last block is not the binding of this request"
        )
    ids = [str(i) for i in biscuit.revocation_ids]
    held = ids[:last]
    restrictions = " | ".join(_one_line(str(biscuit.block_source(i))) for i in range(last))
    hit = revoked(held)
    if hit is not None:
        raise TokenRejected(
            "token-revoked", "this token was revoked", detail=f"revoked id {hit[:16]}..."
        )
    if seen_nonce(binding.keyid, binding.nonce, binding.expires + max_skew):
        raise TokenRejected("token-replay", "this token request was already used (replay)")
    return VerifiedToken(binding.keyid, held[-1], held, restrictions, binding, biscuit, expected)
