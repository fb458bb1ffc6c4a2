"""RFC 9421 HTTP Message Signatures for Airboss requests: the signer (pilot) and the verifier.

The original Airboss signed only `op\\ndst\\n` with RSA-1024/SHA-1: no time, no nonce, no key id,
so any captured command stayed valid forever (reference §4.3, §4.7). Here every request signs

* what it does: `@method`, `@path`, `@query`, and the body through `content-digest` (RFC 9530);
* when: `created` and `expires`, at most `MAX_LIFETIME` (5 minutes) apart;
* once: a random `nonce` that the verifier remembers until the signature has expired;
* who: `keyid`, the OpenSSH SHA-256 fingerprint of the key (see `keys.fingerprint`);
* how: `alg`, one of `ALGORITHMS`, and it must fit the key (no algorithm confusion);
* for whom: `tag` (`DEFAULT_TAG`), so a signature made with the same key for another RFC 9421
  service is not an Airboss command (domain separation).

`@authority` is deliberately *not* covered: users reach the Airboss through
`ssh -L 8677:localhost:8677`, so the authority the client sees (`localhost:8677`) is not the one
the server is configured with, and covering it would make every tunnelled request fail. What it
would protect against — a signature for one Airboss replayed to another that trusts the same key
— is bounded by the 5-minute lifetime, by the per-server nonce store, and by the authorisation
scope of the key (a key registered on one frontend acts on that cluster only).

The verifier is written as an ordered list of checks, cheapest and most decisive first, and only
calls the key lookup (a database query) after the header has been parsed within fixed bounds and
the times checked, and only records the nonce after the signature and body digest have verified,
so unauthenticated requests cannot fill the nonce store. Every refusal is a `SignatureRejected`
with a stable `reason` code (see `REASONS`) and a one-line message.
"""

from __future__ import annotations

import heapq
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from flightdeck.crypto import sfv
from flightdeck.crypto.digest import DigestRejected, content_digest, verify_content_digest
from flightdeck.crypto.keys import (
    MIN_RSA_BITS,
    PrivateKey,
    PublicKey,
    describe_key,
    fingerprint,
    key_algorithm,
)
from flightdeck.errors import PermissionDenied, UserError

__all__ = [
    "ALGORITHMS",
    "COVERED",
    "DEFAULT_TAG",
    "MAX_LIFETIME",
    "MAX_NONCE_LENGTH",
    "MIN_NONCE_LENGTH",
    "REASONS",
    "InMemoryNonceCache",
    "SignatureRejected",
    "VerifiedRequest",
    "sign_base",
    "sign_request",
    "signature_base",
    "verify_base",
    "verify_request",
]

#: The components every request signs, in this order. Exactly these are accepted.
COVERED: tuple[str, ...] = ("@method", "@path", "@query", "content-digest")
#: RFC 9421 algorithms the verifier accepts. No SHA-1, no HMAC (shared secrets), no ECDSA.
ALGORITHMS: frozenset[str] = frozenset({"ed25519", "rsa-pss-sha512", "rsa-v1_5-sha256"})
#: The RFC 9421 `tag` our signatures carry (application / domain separation).
DEFAULT_TAG = "flightdeck"
#: Longest accepted signature validity, in seconds (DESIGN: at most 5 minutes).
MAX_LIFETIME = 300
#: Nonce length bounds, in characters: >= 96 bits of randomness, and small enough to store.
MIN_NONCE_LENGTH = 16
MAX_NONCE_LENGTH = 128
#: Longest accepted keyid (a fingerprint is 50 characters).
MAX_KEYID_LENGTH = 256

_PARAMETERS = ("created", "expires", "nonce", "keyid", "alg", "tag")
_PARAMETER_NAMES = frozenset(_PARAMETERS)
_REQUIRED = ("created", "expires", "nonce", "keyid", "alg")
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)  # RFC 9421 §3.3.1
# An RFC 9110 token of ASCII letters, digits and tchar symbols.
_METHOD = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")

#: Every `SignatureRejected.reason`, and what it means.
REASONS: dict[str, str] = {
    "missing-signature": "no Signature-Input / Signature for us in the request",
    "malformed-signature": "Signature-Input or Signature is not valid, or over the size bounds",
    "missing-parameter": "a required signature parameter (created, expires, nonce, keyid, alg)",
    "bad-parameter": "a signature parameter has the wrong type or an out-of-range value",
    "components": "the signature does not cover exactly COVERED",
    "lifetime-too-long": "expires - created is over the allowed lifetime",
    "not-yet-valid": "created is in the future (beyond the allowed clock skew)",
    "expired": "expires is in the past (beyond the allowed clock skew)",
    "weak-algorithm": "alg is not one of ALGORITHMS",
    "unknown-key": "no registered key has this keyid",
    "alg-mismatch": "alg does not fit the type of the registered key",
    "weak-key": "the registered key is RSA under 2048 bits",
    "malformed-request": "method, path or query cannot be put in a signature base",
    "missing-digest": "the request has no Content-Digest header",
    "malformed-digest": "the Content-Digest header is not valid",
    "unsupported-digest": "Content-Digest has no sha-256 or sha-512 member",
    "bad-signature": "the signature does not verify over the request",
    "digest-mismatch": "the body does not match its Content-Digest",
    "replay": "this keyid and nonce were already used",
    "busy": "the in-memory nonce cache is full (fails closed)",
}


class SignatureRejected(PermissionDenied):
    """A signed request was refused. `reason` is one of `REASONS` (stable, for the audit log)."""

    code = "forbidden"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """What a verified signature proves: who (keyid) signed this request, when, and once."""

    keyid: str
    created: int
    expires: int
    nonce: str
    alg: str
    label: str


# --------------------------------------------------------------------------------------------
# Signature base and raw signatures
# --------------------------------------------------------------------------------------------


def signature_base(components: Sequence[tuple[str, str]], signature_params: str) -> bytes:
    """Build the RFC 9421 §2.5 signature base.

    `components` are (identifier, value) pairs in signing order, e.g. `("@method", "POST")`;
    `signature_params` is the serialised inner list that is also the `Signature-Input` value.
    Values holding anything but printable ASCII would make the base ambiguous (a newline could
    forge a line), so they raise `ValueError`.
    """
    lines = []
    for name, value in components:
        if not _printable(value):
            raise ValueError(f"component {name} holds characters that cannot be signed")
        lines.append(f"{sfv.serialize_bare_item(name)}: {value}")
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("ascii")


def sign_base(key: PrivateKey, alg: str, base: bytes) -> bytes:
    """Sign a signature base with `alg` (which must fit the key)."""
    if alg == "ed25519" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(base)
    if isinstance(key, rsa.RSAPrivateKey):
        if alg == "rsa-pss-sha512":
            return key.sign(base, _PSS, hashes.SHA512())
        if alg == "rsa-v1_5-sha256":
            return key.sign(base, padding.PKCS1v15(), hashes.SHA256())
    raise UserError(
        f"signature algorithm {alg!r} does not fit a {describe_key(key.public_key())} key: "
        f"use {key_algorithm(key.public_key())}"
    )


def verify_base(pub: PublicKey, alg: str, signature: bytes, base: bytes) -> bool:
    """True when `signature` is a valid `alg` signature of `base` by `pub`; never raises."""
    try:
        if alg == "ed25519" and isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(signature, base)
            return True
        if isinstance(pub, rsa.RSAPublicKey):
            if alg == "rsa-pss-sha512":
                pub.verify(signature, base, _PSS, hashes.SHA512())
                return True
            if alg == "rsa-v1_5-sha256":
                pub.verify(signature, base, padding.PKCS1v15(), hashes.SHA256())
                return True
    except (InvalidSignature, ValueError):
        return False
    return False


class _FingerprintCache:
    """`fingerprint(pub)`, remembered by the key's DER SubjectPublicKeyInfo. Bounded, thread-safe.

    Every request computes the fingerprint of each key the lookup returns, and `fingerprint`
    (the OpenSSH encoding, base64 and SHA-256) costs more than reading the DER. The DER holds
    the whole key, algorithm included, and `fingerprint` is a function of the key alone, so a
    hit is exactly what `fingerprint` would return: never a stale or another key's value.
    Keyed by content, not by `id()`, so a lookup that parses new key objects every time still
    hits, and no object is kept alive. When full, the oldest entry is dropped.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._entries: dict[bytes, str] = {}
        self._lock = threading.Lock()

    def __call__(self, pub: PublicKey) -> str:
        der = pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with self._lock:
            known = self._entries.get(der)
        if known is not None:
            return known
        computed = fingerprint(pub)
        with self._lock:
            if len(self._entries) >= self._max:
                del self._entries[next(iter(self._entries))]
            self._entries[der] = computed
        return computed


_fingerprint = _FingerprintCache()


def _fits(pub: PublicKey, alg: str) -> bool:
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return alg == "ed25519"
    return alg in ("rsa-pss-sha512", "rsa-v1_5-sha256")


def _printable(value: str) -> bool:
    """Only printable ASCII, SP to '~': one regex match, not a Python loop per character."""
    return sfv.PRINTABLE.fullmatch(value) is not None


def _method_error(method: str) -> str | None:
    """Why `method` cannot be signed, by the exact per-character rule, or None if it can.

    The reference for `_METHOD`, and the wording of each refusal: a non-ASCII letter such as
    'é' is alphanumeric for Python, so it is refused as not ASCII rather than as not a token.
    """
    if not method or not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in method):
        return f"HTTP method {method!r} is not a token"
    if not method.isascii():
        return f"HTTP method {method!r} is not ASCII"
    return None


def _derived_components(method: str, path: str, query: str) -> dict[str, str]:
    """Values of `@method`, `@path`, `@query` (RFC 9421 §2.2); `ValueError` if unusable.

    `path` and `query` are exactly as sent on the wire (percent-encoded, query without its
    `?`): on the server, ASGI's `raw_path` and `query_string`, not the decoded path.
    """
    # The regex only ever accepts early; anything it does not match, the exact rule decides.
    if not (method.isascii() and _METHOD.fullmatch(method)):
        error = _method_error(method)
        if error is not None:
            raise ValueError(error)
    path = path or "/"
    if not path.startswith("/"):
        raise ValueError(f"request path {path!r} must start with '/'")
    if not _printable(path) or " " in path:
        raise ValueError("request path must be percent-encoded ASCII")
    if not _printable(query) or " " in query:
        raise ValueError("request query must be percent-encoded ASCII")
    return {"@method": method, "@path": path, "@query": "?" + query}


# --------------------------------------------------------------------------------------------
# Signing (pilot side)
# --------------------------------------------------------------------------------------------


def sign_request(
    method: str,
    path: str,
    query: str,
    body: bytes,
    key: PrivateKey,
    *,
    keyid: str | None = None,
    created: int | None = None,
    expires_in: int = 60,
    nonce: str | None = None,
    label: str = "sig1",
    alg: str | None = None,
    tag: str | None = DEFAULT_TAG,
) -> dict[str, str]:
    """Sign one request; return the headers to add: Content-Digest, Signature-Input, Signature.

    `path` and `query` must be exactly what will be sent (percent-encoded; `query` without the
    leading `?`, empty for none). `keyid` defaults to the key's fingerprint, `created` to now,
    `nonce` to 128 random bits, `alg` to `key_algorithm(key)`. The signature is valid for
    `expires_in` seconds (1 to `MAX_LIFETIME`): short, because it can be replayed to another
    server trusting the same key until then.
    """
    if not 1 <= expires_in <= MAX_LIFETIME:
        raise UserError(f"expires_in must be 1 to {MAX_LIFETIME} seconds, not {expires_in}")
    pub = key.public_key()
    keyid = fingerprint(pub) if keyid is None else keyid
    created = int(time.time()) if created is None else created
    nonce = secrets.token_urlsafe(16) if nonce is None else nonce
    alg = key_algorithm(pub) if alg is None else alg
    if alg not in ALGORITHMS:
        raise UserError(f"signature algorithm {alg!r} is refused: use {key_algorithm(pub)}")
    if not MIN_NONCE_LENGTH <= len(nonce) <= MAX_NONCE_LENGTH or not _printable(nonce):
        raise UserError(
            f"a nonce must be {MIN_NONCE_LENGTH} to {MAX_NONCE_LENGTH} printable ASCII characters"
        )
    if created < 0:
        raise UserError("created must be a Unix time in seconds")
    try:
        values = _derived_components(method, path, query)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    values["content-digest"] = content_digest(body)

    params: sfv.Parameters = {
        "created": created,
        "expires": created + expires_in,
        "nonce": nonce,
        "keyid": keyid,
        "alg": alg,
    }
    if tag is not None:
        params["tag"] = tag
    inner = sfv.InnerList([sfv.Item(name) for name in COVERED], params)
    try:
        signature_params = sfv.serialize_inner_list(inner)
        signature_input = sfv.serialize_dictionary({label: inner})
    except sfv.SFVError as exc:
        raise UserError(f"cannot sign the request: {exc}") from None
    base = signature_base([(name, values[name]) for name in COVERED], signature_params)
    signature = sign_base(key, alg, base)
    return {
        "Content-Digest": values["content-digest"],
        "Signature-Input": signature_input,
        "Signature": sfv.serialize_dictionary({label: sfv.Item(signature)}),
    }


# --------------------------------------------------------------------------------------------
# Verifying (Airboss side)
# --------------------------------------------------------------------------------------------


def header_values(headers: Mapping[str, str], *names: str) -> list[str | None]:
    """Each named header's value, names compared case-insensitively, repeated lines joined
    with ", ", or None when absent; `names` are lowercase.

    Joining is the RFC 9110 §5.3 rule, and how RFC 8941 says structured fields split over
    several lines are parsed; with a multi-dict whose `items()` yields duplicates (Starlette's
    `Headers`) every line is seen. One pass for all names: Starlette's `items()` decodes every
    header line each time it is called. Capability tokens read their headers the same way.
    """
    lines: dict[str, list[str]] = {name: [] for name in names}
    for key, value in headers.items():
        found = lines.get(key.lower())
        if found is not None:
            found.append(value.strip())
    return [", ".join(found) if found else None for found in lines.values()]


def _choose_label(inputs: dict[str, sfv.Member], label: str | None, tag: str | None) -> str:
    if label is not None:
        if label not in inputs:
            raise SignatureRejected(
                "missing-signature", f"the request has no signature labelled {label!r}"
            )
        return label
    if tag is None:
        if len(inputs) != 1:
            raise SignatureRejected(
                "malformed-signature",
                f"the request carries {len(inputs)} signatures: send exactly one",
            )
        return next(iter(inputs))
    tagged = [
        name
        for name, member in inputs.items()
        if isinstance(member, sfv.InnerList) and member.params.get("tag") == tag
    ]
    if not tagged:
        raise SignatureRejected(
            "missing-signature",
            f"the request has no signature tagged {tag!r}: sign it with pilot",
        )
    if len(tagged) > 1:
        raise SignatureRejected(
            "malformed-signature", f"the request carries several signatures tagged {tag!r}"
        )
    return tagged[0]


def _check_parameters(params: sfv.Parameters) -> tuple[int, int, str, str, str]:
    unknown = params.keys() - _PARAMETER_NAMES
    if unknown:
        raise SignatureRejected(
            "malformed-signature", f"unknown signature parameter {min(unknown)!r}"
        )
    for name in _REQUIRED:
        if name not in params:
            raise SignatureRejected(
                "missing-parameter", f"the signature has no {name!r} parameter: sign with pilot"
            )
    created, expires = params["created"], params["expires"]
    nonce, keyid, alg = params["nonce"], params["keyid"], params["alg"]
    # `type(...) is int`, not isinstance: a Structured Field boolean is a Python bool.
    if type(created) is not int or type(expires) is not int or created < 0 or expires < 0:
        raise SignatureRejected(
            "bad-parameter", "signature parameters created and expires must be integers"
        )
    if type(nonce) is not str or not MIN_NONCE_LENGTH <= len(nonce) <= MAX_NONCE_LENGTH:
        raise SignatureRejected(
            "bad-parameter",
            f"the signature nonce must be a string of {MIN_NONCE_LENGTH} to "
            f"{MAX_NONCE_LENGTH} characters",
        )
    if type(keyid) is not str or not 0 < len(keyid) <= MAX_KEYID_LENGTH:
        raise SignatureRejected("bad-parameter", "the signature keyid must be a short string")
    if type(alg) is not str:
        raise SignatureRejected("bad-parameter", "the signature alg must be a string")
    if "tag" in params and type(params["tag"]) is not str:
        raise SignatureRejected("bad-parameter", "the signature tag must be a string")
    return created, expires, nonce, keyid, alg


def _check_components(inner: sfv.InnerList) -> list[str]:
    names: list[str] = []
    for item in inner.items:
        if type(item.value) is not str or item.params:
            raise SignatureRejected("components", "covered components must be plain quoted names")
        names.append(item.value)
    if len(names) != len(set(names)) or set(names) != set(COVERED):
        expected = ", ".join(COVERED)
        raise SignatureRejected(
            "components",
            f"the signature covers ({' '.join(names)}); it must cover exactly {expected}",
        )
    return names


def verify_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup_key: Callable[[str], Sequence[PublicKey]],
    *,
    now: int | None = None,
    max_skew: int = 30,
    max_lifetime: int = MAX_LIFETIME,
    seen_nonce: Callable[[str, str, int], bool],
    label: str | None = None,
    tag: str | None = DEFAULT_TAG,
) -> VerifiedRequest:
    """Verify a signed request, or raise `SignatureRejected` saying why not.

    `method`, `path` and `query` are as received on the wire (path percent-encoded, query
    without `?`). `lookup_key(keyid)` returns the registered public keys with that fingerprint;
    keys whose fingerprint is not `keyid` are ignored, so a lookup bug cannot widen who is
    accepted. `seen_nonce(keyid, nonce, keep_until)` records the nonce and returns True if it
    was already recorded; it must remember it until `keep_until` (= expires + max_skew, the last
    second at which this signature could still be accepted). It is called last, only for an
    otherwise valid request. The signature to check is the one tagged `tag` (or the one named
    `label`, or, with `tag=None`, the only one).
    """
    if not 0 <= max_skew <= MAX_LIFETIME or not 0 < max_lifetime <= MAX_LIFETIME:
        raise ValueError(f"max_skew and max_lifetime must be within 0..{MAX_LIFETIME} seconds")
    now = int(time.time()) if now is None else now

    # 1. Parse both headers, within fixed bounds.
    input_text, signature_text, digest_header = header_values(
        headers, "signature-input", "signature", "content-digest"
    )
    if input_text is None or signature_text is None:
        raise SignatureRejected(
            "missing-signature", "the request is not signed: sign it with pilot"
        )
    try:
        inputs = sfv.parse_dictionary(input_text)
        signatures = sfv.parse_dictionary(signature_text)
    except sfv.SFVError as exc:
        raise SignatureRejected(
            "malformed-signature", f"the signature headers are malformed: {exc}"
        ) from None
    chosen = _choose_label(inputs, label, tag)
    inner = inputs[chosen]
    if not isinstance(inner, sfv.InnerList):
        raise SignatureRejected(
            "malformed-signature", f"Signature-Input {chosen!r} is not an inner list"
        )
    sig_member = signatures.get(chosen)
    if sig_member is None:
        raise SignatureRejected("missing-signature", f"Signature has no value for label {chosen!r}")
    if not isinstance(sig_member, sfv.Item) or type(sig_member.value) is not bytes:
        raise SignatureRejected(
            "malformed-signature", f"Signature {chosen!r} is not a byte sequence"
        )
    if sig_member.params:
        raise SignatureRejected(
            "malformed-signature", f"Signature {chosen!r} carries unexpected parameters"
        )
    signature = sig_member.value

    # 2. Parameters and covered components.
    created, expires, nonce, keyid, alg = _check_parameters(inner.params)
    if tag is not None and inner.params.get("tag") != tag:
        raise SignatureRejected(
            "missing-parameter" if "tag" not in inner.params else "bad-parameter",
            f"the signature is not tagged {tag!r}: sign it with pilot",
        )
    names = _check_components(inner)

    # 3. Time, before any expensive work.
    if expires <= created:
        raise SignatureRejected("bad-parameter", "the signature expires before it is created")
    if expires - created > max_lifetime:
        raise SignatureRejected(
            "lifetime-too-long",
            f"the signature is valid for {expires - created} s, more than {max_lifetime} s: "
            "sign with a shorter lifetime",
        )
    if created > now + max_skew:
        raise SignatureRejected(
            "not-yet-valid",
            f"the signature was created {created - now} s in the future: check the clock",
        )
    if expires < now - max_skew:
        raise SignatureRejected(
            "expired", f"the signature expired {now - expires} s ago: sign the request again"
        )

    # 4. Algorithm, then the key(s).
    if alg not in ALGORITHMS:
        raise SignatureRejected(
            "weak-algorithm",
            f"signature algorithm {alg!r} is refused: use ed25519 or rsa-pss-sha512",
        )
    candidates = [pub for pub in lookup_key(keyid) if _fingerprint(pub) == keyid]
    if not candidates:
        raise SignatureRejected(
            "unknown-key",
            f"key {keyid} is not registered: register it with `rocks add host key`",
        )
    fitting = [pub for pub in candidates if _fits(pub, alg)]
    if not fitting:
        raise SignatureRejected(
            "alg-mismatch",
            f"signature algorithm {alg!r} does not fit key {keyid} ({describe_key(candidates[0])})",
        )
    strong = [
        pub
        for pub in fitting
        if not (isinstance(pub, rsa.RSAPublicKey) and pub.key_size < MIN_RSA_BITS)
    ]
    if not strong:
        raise SignatureRejected(
            "weak-key",
            f"key {keyid} is {describe_key(fitting[0])}: RSA keys under 2048 bits are refused; "
            "register an Ed25519 key",
        )

    # 5. The signature over the rebuilt base.
    if digest_header is None:
        raise SignatureRejected(
            "missing-digest", "the request has no Content-Digest header: sign it with pilot"
        )
    try:
        values = _derived_components(method, path, query)
        values["content-digest"] = digest_header
        base = signature_base(
            [(name, values[name]) for name in names], sfv.serialize_inner_list(inner)
        )
    except (ValueError, sfv.SFVError) as exc:
        raise SignatureRejected(
            "malformed-request", f"the request cannot be verified: {exc}"
        ) from None
    if not any(verify_base(pub, alg, signature, base) for pub in strong):
        raise SignatureRejected(
            "bad-signature",
            f"the request signature does not verify with key {keyid}: "
            "the request was altered or signed with another key",
        )

    # 6. The body against its (now authenticated) digest.
    try:
        verify_content_digest(digest_header, body)
    except DigestRejected as exc:
        raise SignatureRejected(exc.reason, exc.message) from None

    # 7. Only now, record the nonce: a replay is refused.
    if seen_nonce(keyid, nonce, expires + max_skew):
        raise SignatureRejected(
            "replay", f"this request (nonce {nonce}) was already used: sign a new one"
        )
    return VerifiedRequest(
        keyid=keyid, created=created, expires=expires, nonce=nonce, alg=alg, label=chosen
    )


# --------------------------------------------------------------------------------------------
# Nonce store
# --------------------------------------------------------------------------------------------


class InMemoryNonceCache:
    """A bounded, expiring, thread-safe `seen_nonce` for tests and single-process servers.

    Entries are kept until their `keep_until` time (inclusive), then dropped. When full of live
    entries it fails closed (refuses the request with reason `busy`) rather than evicting a live
    nonce, because evicting one would let that request be replayed. Not for the Airboss: its
    nonces must survive a restart, so it keeps them in the database.
    """

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._clock = clock
        self._entries: dict[tuple[str, str], int] = {}
        self._expiry: list[tuple[int, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __call__(self, keyid: str, nonce: str, keep_until: int) -> bool:
        """Record (keyid, nonce) until `keep_until`; True if it was already recorded."""
        entry = (keyid, nonce)
        with self._lock:
            self._purge(self._clock())
            if entry in self._entries:
                return True
            if len(self._entries) >= self._max:
                raise SignatureRejected(
                    "busy", "too many signed requests in the last minutes: try again shortly"
                )
            self._entries[entry] = keep_until
            heapq.heappush(self._expiry, (keep_until, entry))
            return False

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._entries)

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] < now:
            _, entry = heapq.heappop(self._expiry)
            self._entries.pop(entry, None)
