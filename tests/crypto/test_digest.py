"""RFC 9530 Content-Digest: known values, and every way a body can fail to match."""

from __future__ import annotations

import pytest

from flightdeck.crypto.digest import DigestRejected, content_digest, verify_content_digest
from flightdeck.errors import PermissionDenied

# The body used throughout RFC 9530 and RFC 9421 Appendix B, with its published digests.
BODY = b'{"hello": "world"}'
SHA256 = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
SHA512 = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWX"
    "vJwew==:"
)


def test_matches_the_rfc_examples() -> None:
    assert content_digest(BODY) == SHA256
    assert content_digest(BODY, "sha-512") == SHA512


def test_empty_body_has_a_digest_too() -> None:
    assert content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    assert verify_content_digest(content_digest(b""), b"") == "sha-256"


def test_unknown_algorithm_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not supported"):
        content_digest(BODY, "md5")


def test_verifies_a_matching_body() -> None:
    assert verify_content_digest(SHA256, BODY) == "sha-256"
    assert verify_content_digest(f"{SHA256}, {SHA512}", BODY) == "sha-512"


def _reason(header: str | None, body: bytes) -> str:
    with pytest.raises(DigestRejected) as info:
        verify_content_digest(header, body)
    assert isinstance(info.value, PermissionDenied)
    assert "\n" not in str(info.value)
    return info.value.reason


def test_changed_body_is_refused() -> None:
    assert _reason(SHA256, BODY + b" ") == "digest-mismatch"


def test_one_lying_member_is_enough_to_refuse() -> None:
    wrong512 = content_digest(b"other", "sha-512")
    assert _reason(f"{SHA256}, {wrong512}", BODY) == "digest-mismatch"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_is_refused(header: str | None) -> None:
    assert _reason(header, BODY) == "missing-digest"


@pytest.mark.parametrize(
    "header",
    [
        # RFC 9530 marks these insecure: ignored, so nothing is left to check.
        "md5=:+tGYqzKp/jr4qwgnlZOOng==:",
        "sha=:5mLq6AMUkxVsmZ7xcn7ll2fsJhE=:",
        "unixsum=1234",
        "sha-384=:AAAA:",
    ],
)
def test_only_unsupported_algorithms_are_refused(header: str) -> None:
    assert _reason(header, BODY) == "unsupported-digest"


def test_insecure_members_beside_a_good_one_are_ignored() -> None:
    assert verify_content_digest(f"md5=:AAAA:, {SHA256}", BODY) == "sha-256"


@pytest.mark.parametrize(
    "header", ["sha-256=X48E9qOokq", 'sha-256="X48E9qOokq"', "sha-256=:%%%:", "sha-256=(1)"]
)
def test_malformed_header_is_refused(header: str) -> None:
    assert _reason(header, BODY) == "malformed-digest"
