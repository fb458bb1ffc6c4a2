"""RFC 9530 `Content-Digest`: binds a request body to the request signature.

The signature (RFC 9421) covers the `Content-Digest` header, not the body itself, so the body is
only as protected as this check: the verifier recomputes the digest of the bytes it actually
received and compares. Only SHA-256 and SHA-512 are accepted. RFC 9530 lists `md5`, `sha`
(SHA-1), `unixsum` and `unixcksum` as insecure; they are ignored, never trusted, so a header that
carries nothing else is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from flightdeck.crypto import sfv
from flightdeck.errors import PermissionDenied

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "DigestRejected",
    "content_digest",
    "verify_content_digest",
]

#: RFC 9530 algorithm keys we compute and trust, best first.
SUPPORTED_ALGORITHMS: dict[str, Callable[[bytes], bytes]] = {
    "sha-512": lambda data: hashlib.sha512(data).digest(),
    "sha-256": lambda data: hashlib.sha256(data).digest(),
}


class DigestRejected(PermissionDenied):
    """The body does not match its `Content-Digest` (or the header is unusable).

    `reason` is a stable code: `missing-digest`, `malformed-digest`, `unsupported-digest` or
    `digest-mismatch`.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """Return the `Content-Digest` field value for `body`, e.g. `sha-256=:<base64>:`."""
    try:
        digest = SUPPORTED_ALGORITHMS[algorithm](body)
    except KeyError:
        supported = ", ".join(sorted(SUPPORTED_ALGORITHMS))
        raise ValueError(
            f"digest algorithm {algorithm!r} is not supported: use one of {supported}"
        ) from None
    return sfv.serialize_dictionary({algorithm: sfv.Item(digest)})


def verify_content_digest(header: str | None, body: bytes) -> str:
    """Check `body` against a `Content-Digest` field value; return the algorithm that matched.

    Every supported algorithm present must match (a header with a right sha-256 and a wrong
    sha-512 is refused: one of them is lying). Unsupported or insecure algorithms are ignored;
    if no supported one is left the header is refused. Raises `DigestRejected`.
    """
    if header is None or not header.strip():
        raise DigestRejected(
            "missing-digest", "the request has no Content-Digest header: sign it with pilot"
        )
    try:
        members = sfv.parse_dictionary(header)
    except sfv.SFVError as exc:
        raise DigestRejected(
            "malformed-digest", f"the Content-Digest header is malformed: {exc}"
        ) from None
    matched: list[str] = []
    for algorithm, compute in SUPPORTED_ALGORITHMS.items():
        member = members.get(algorithm)
        if member is None:
            continue
        if not isinstance(member, sfv.Item) or not isinstance(member.value, bytes):
            raise DigestRejected(
                "malformed-digest",
                f"the Content-Digest {algorithm} value is not a byte sequence",
            )
        if not hmac.compare_digest(member.value, compute(body)):
            raise DigestRejected(
                "digest-mismatch",
                f"the request body does not match its Content-Digest ({algorithm}): "
                "it was changed after signing",
            )
        matched.append(algorithm)
    if not matched:
        supported = " or ".join(SUPPORTED_ALGORITHMS)
        raise DigestRejected(
            "unsupported-digest",
            f"the Content-Digest header has no {supported} digest: send one",
        )
    return matched[0]
