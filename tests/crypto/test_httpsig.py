"""RFC 9421 request signatures: published vectors, round trips, and one test per attack.

Attacks are written as what the attacker does (tamper, replay, forge parameters with a real
key...), then the defence is asserted as the exact `reason` code. All crypto is real: the
`forge` helper signs arbitrary parameters with a real private key, so every refusal below is
caused by the check under test, not by a signature that was broken anyway.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flightdeck.crypto import httpsig, sfv
from flightdeck.crypto.digest import content_digest
from flightdeck.crypto.httpsig import (
    COVERED,
    DEFAULT_TAG,
    REASONS,
    InMemoryNonceCache,
    SignatureRejected,
    VerifiedRequest,
    sign_base,
    sign_request,
    signature_base,
    verify_base,
    verify_request,
)
from flightdeck.crypto.keys import (
    PrivateKey,
    PublicKey,
    fingerprint,
    key_algorithm,
    load_private_key,
    parse_public_key,
)
from flightdeck.errors import PermissionDenied, UserError

NOW = 1_700_000_000
METHOD = "POST"
PATH = "/v1/hosts/52:54:00:12:34:56/power"
QUERY = ""
BODY = b'{"action": "on"}'
NONCE = "AAAAAAAAAAAAAAAAAAAAAA"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def registry(*pubs: PublicKey) -> Callable[[str], Sequence[PublicKey]]:
    """A correct key lookup: the registered keys whose fingerprint is the keyid."""
    return lambda keyid: [pub for pub in pubs if fingerprint(pub) == keyid]


def never_seen(keyid: str, nonce: str, keep_until: int) -> bool:
    return False


def verify(
    headers: Mapping[str, str],
    *pubs: PublicKey,
    method: str = METHOD,
    path: str = PATH,
    query: str = QUERY,
    body: bytes = BODY,
    now: int = NOW,
    seen: Callable[[str, str, int], bool] = never_seen,
    lookup: Callable[[str], Sequence[PublicKey]] | None = None,
    **kwargs: Any,
) -> VerifiedRequest:
    return verify_request(
        method,
        path,
        query,
        headers,
        body,
        lookup or registry(*pubs),
        now=now,
        seen_nonce=seen,
        **kwargs,
    )


def rejected(headers: Mapping[str, str], *pubs: PublicKey, **kwargs: Any) -> str:
    """Verify, expect a refusal, check it is well-formed, return its reason."""
    with pytest.raises(SignatureRejected) as info:
        verify(headers, *pubs, **kwargs)
    error = info.value
    assert isinstance(error, PermissionDenied)
    assert error.reason in REASONS
    assert str(error) and "\n" not in str(error)
    return error.reason


def signed(key: PrivateKey, **kwargs: Any) -> dict[str, str]:
    """A genuine request signed by our own signer, at NOW."""
    kwargs.setdefault("created", NOW)
    return sign_request(METHOD, PATH, QUERY, BODY, key, **kwargs)


def forge(
    key: PrivateKey,
    *,
    params: dict[str, Any] | None = None,
    drop: Sequence[str] = (),
    components: Sequence[sfv.Item] | None = None,
    sign_alg: str | None = None,
    label: str = "sig1",
) -> dict[str, str]:
    """What an attacker holding `key` (or a buggy client) can send: any parameters, any
    covered components, validly signed by `key` over the base a verifier would rebuild."""
    pub = key.public_key()
    full: dict[str, Any] = {
        "created": NOW,
        "expires": NOW + 60,
        "nonce": NONCE,
        "keyid": fingerprint(pub),
        "alg": key_algorithm(pub),
        "tag": DEFAULT_TAG,
    }
    full.update(params or {})
    for name in drop:
        del full[name]
    items = list(components) if components is not None else [sfv.Item(c) for c in COVERED]
    inner = sfv.InnerList(items, full)
    digest = content_digest(BODY)
    values = {
        "@method": METHOD,
        "@path": PATH,
        "@query": "?" + QUERY,
        "content-digest": digest,
        "@authority": "localhost:8677",
    }
    base = signature_base(
        [(str(item.value), values.get(str(item.value), "x")) for item in items],
        sfv.serialize_inner_list(inner),
    )
    signature = sign_base(key, sign_alg or key_algorithm(pub), base)
    return {
        "Content-Digest": digest,
        "Signature-Input": sfv.serialize_dictionary({label: inner}),
        "Signature": sfv.serialize_dictionary({label: sfv.Item(signature)}),
    }


class MultiHeaders(Mapping[str, str]):
    """Header lines as a list of pairs, repeated names allowed: like Starlette's `Headers`."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: str) -> str:
        for name, value in self._pairs:
            if name.lower() == key.lower():
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self._pairs)


# --------------------------------------------------------------------------------------------
# RFC 9421 Appendix B test vectors
# --------------------------------------------------------------------------------------------

# B.1.4 test-key-ed25519 (also published as a JWK: x=JrQLj5P_..., d=n4Ni-HpI...).
RFC_ED25519_PRIVATE = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
    b"-----END PRIVATE KEY-----\n"
)
RFC_ED25519_PUBLIC = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
    "-----END PUBLIC KEY-----\n"
)
# B.2.6, RFC 8792 line wrapping undone.
B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPp"
    "BKRCw==:"
)
B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)
B26_VALUES = {
    "date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "@method": "POST",
    "@path": "/foo",
    "@authority": "example.com",
    "content-type": "application/json",
    "content-length": "18",
}
# B.1.2 test-key-rsa-pss (2048 bits) and B.2.1, the minimal rsa-pss-sha512 signature.
RFC_RSA_PSS_PUBLIC_DER = base64.b64decode(
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2+QEtvpuRaV8Yq40gjUR8y2Rjx"
    "a6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFP"
    "NU8PPMO7OyrFAHqgDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUAAN5WUtzdpiy6"
    "LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xd"
    "DOp9LCNCN48V2pnDOkFV6+U9nV5oyc6XI2wIDAQAB"
)
B21_INPUT = 'sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"'
B21_SIGNATURE = (
    "sig-b21=:d2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopemLJcWDy/lkbbHAve4cRAtx31Iq786U7it++"
    "wgGxbtRxf8Udx7zFZsckzXaJMkA7ChG52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR72r"
    "gFWhzx2VjBqJzsPLMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6UnCh8jYzuVG5WSb/QEV"
    "PnP5TmcAnLH1g+s++v6d4s8m0gCw1fV5/SITLq9mhho8K3+7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q==:"
)


def _b26() -> tuple[sfv.InnerList, bytes]:
    inner = sfv.parse_dictionary(B26_INPUT)["sig-b26"]
    assert isinstance(inner, sfv.InnerList)
    signature = sfv.parse_dictionary(B26_SIGNATURE)["sig-b26"]
    assert isinstance(signature, sfv.Item) and isinstance(signature.value, bytes)
    return inner, signature.value


def test_rfc9421_b26_ed25519_vector_is_reproduced_exactly() -> None:
    inner, expected_signature = _b26()
    names = [str(item.value) for item in inner.items]
    base = signature_base([(n, B26_VALUES[n]) for n in names], sfv.serialize_inner_list(inner))
    assert base == B26_BASE.encode()
    key = load_private_key(RFC_ED25519_PRIVATE)
    # Ed25519 is deterministic: our signature must be the RFC's, byte for byte.
    assert sign_base(key, "ed25519", base) == expected_signature
    pub = parse_public_key(RFC_ED25519_PUBLIC)
    assert verify_base(pub, "ed25519", expected_signature, base)
    assert not verify_base(pub, "ed25519", expected_signature, base + b" ")


def test_rfc9421_b26_headers_fail_our_stricter_profile() -> None:
    """The RFC example is a valid RFC 9421 signature but not a valid Airboss request: it has
    no tag, no expires, no nonce, no alg and does not cover our components."""
    pub = parse_public_key(RFC_ED25519_PUBLIC)
    headers = {"Signature-Input": B26_INPUT, "Signature": B26_SIGNATURE}
    assert rejected(headers, lookup=lambda _: [pub]) == "missing-signature"
    assert rejected(headers, lookup=lambda _: [pub], tag=None) == "missing-parameter"


def test_rfc9421_b21_rsa_pss_vector_verifies() -> None:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    pub = load_der_public_key(RFC_RSA_PSS_PUBLIC_DER)
    assert isinstance(pub, rsa.RSAPublicKey)
    inner = sfv.parse_dictionary(B21_INPUT)["sig-b21"]
    signature = sfv.parse_dictionary(B21_SIGNATURE)["sig-b21"]
    assert isinstance(inner, sfv.InnerList) and isinstance(signature, sfv.Item)
    assert isinstance(signature.value, bytes)
    base = signature_base([], sfv.serialize_inner_list(inner))
    assert base == (
        b'"@signature-params": ();created=1618884473;keyid="test-key-rsa-pss"'
        b';nonce="b3k2pp5k7z-50gnwp.yemd"'
    )
    assert verify_base(pub, "rsa-pss-sha512", signature.value, base)
    # The same bytes are not a valid PKCS#1 v1.5 signature: no algorithm confusion.
    assert not verify_base(pub, "rsa-v1_5-sha256", signature.value, base)


# --------------------------------------------------------------------------------------------
# Round trips and the exact base
# --------------------------------------------------------------------------------------------


def test_signature_base_is_exactly_rfc9421_section_2_5(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = sign_request("GET", "/v1/macs", "", b"", ed_key, created=NOW, nonce=NONCE)
    keyid = fingerprint(ed_key.public_key())
    params = (
        '("@method" "@path" "@query" "content-digest")'
        f';created={NOW};expires={NOW + 60};nonce="{NONCE}";keyid="{keyid}"'
        ';alg="ed25519";tag="flightdeck"'
    )
    assert headers["Signature-Input"] == f"sig1={params}"
    assert headers["Content-Digest"] == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    expected_base = (
        '"@method": GET\n'
        '"@path": /v1/macs\n'
        '"@query": ?\n'
        '"content-digest": sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:\n'
        f'"@signature-params": {params}'
    )
    signature = sfv.parse_dictionary(headers["Signature"])["sig1"]
    assert isinstance(signature, sfv.Item) and isinstance(signature.value, bytes)
    ed_key.public_key().verify(signature.value, expected_base.encode())  # raises if not


def test_round_trip_ed25519(ed_key: ed25519.Ed25519PrivateKey) -> None:
    result = verify(signed(ed_key, nonce=NONCE), ed_key.public_key())
    assert result == VerifiedRequest(
        keyid=fingerprint(ed_key.public_key()),
        created=NOW,
        expires=NOW + 60,
        nonce=NONCE,
        alg="ed25519",
        label="sig1",
    )


def test_round_trip_rsa_3072_pss(rsa_key: rsa.RSAPrivateKey) -> None:
    result = verify(signed(rsa_key), rsa_key.public_key())
    assert result.alg == "rsa-pss-sha512"


def test_rsa_pkcs1_v15_sha256_is_verified(rsa_key: rsa.RSAPrivateKey) -> None:
    result = verify(signed(rsa_key, alg="rsa-v1_5-sha256"), rsa_key.public_key())
    assert result.alg == "rsa-v1_5-sha256"


def test_query_and_body_are_covered(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = sign_request("GET", "/v1/macs", "status=yes&x=%20", b"", ed_key, created=NOW)
    verify(
        headers,
        ed_key.public_key(),
        method="GET",
        path="/v1/macs",
        query="status=yes&x=%20",
        body=b"",
    )


def test_header_names_are_case_insensitive(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = signed(ed_key)
    verify({k.lower(): v for k, v in headers.items()}, ed_key.public_key())
    verify({k.upper(): v for k, v in headers.items()}, ed_key.public_key())


def test_default_nonces_are_random_and_long(ed_key: ed25519.Ed25519PrivateKey) -> None:
    nonces = {verify(signed(ed_key), ed_key.public_key()).nonce for _ in range(20)}
    assert len(nonces) == 20
    assert all(len(n) >= 22 for n in nonces)


def test_created_defaults_to_now(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = sign_request(METHOD, PATH, QUERY, BODY, ed_key)
    result = verify_request(
        METHOD, PATH, QUERY, headers, BODY, registry(ed_key.public_key()), seen_nonce=never_seen
    )
    assert result.expires - result.created == 60


# --------------------------------------------------------------------------------------------
# Tampering
# --------------------------------------------------------------------------------------------


def test_attack_change_method(ed_key: ed25519.Ed25519PrivateKey) -> None:
    assert rejected(signed(ed_key), ed_key.public_key(), method="DELETE") == "bad-signature"


def test_attack_change_path(ed_key: ed25519.Ed25519PrivateKey) -> None:
    other = "/v1/hosts/52:54:00:12:34:57/power"
    assert rejected(signed(ed_key), ed_key.public_key(), path=other) == "bad-signature"


def test_attack_add_query(ed_key: ed25519.Ed25519PrivateKey) -> None:
    assert rejected(signed(ed_key), ed_key.public_key(), query="force=1") == "bad-signature"


def test_attack_change_body(ed_key: ed25519.Ed25519PrivateKey) -> None:
    body = b'{"action": "off"}'
    assert rejected(signed(ed_key), ed_key.public_key(), body=body) == "digest-mismatch"


def test_attack_change_body_and_its_digest(ed_key: ed25519.Ed25519PrivateKey) -> None:
    body = b'{"action": "off"}'
    headers = signed(ed_key) | {"Content-Digest": content_digest(body)}
    assert rejected(headers, ed_key.public_key(), body=body) == "bad-signature"


def test_attack_drop_the_digest(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = signed(ed_key)
    del headers["Content-Digest"]
    assert rejected(headers, ed_key.public_key()) == "missing-digest"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (f"created={NOW}", f"created={NOW - 1}"),
        (f"expires={NOW + 60}", f"expires={NOW + 61}"),
        (f'nonce="{NONCE}"', 'nonce="BBBBBBBBBBBBBBBBBBBBBB"'),
        ('alg="rsa-pss-sha512"', 'alg="rsa-v1_5-sha256"'),
    ],
)
def test_attack_change_a_signature_parameter(
    rsa_key: rsa.RSAPrivateKey, old: str, new: str
) -> None:
    headers = signed(rsa_key, nonce=NONCE)
    assert old in headers["Signature-Input"]
    headers["Signature-Input"] = headers["Signature-Input"].replace(old, new)
    assert rejected(headers, rsa_key.public_key()) == "bad-signature"


def test_attack_reorder_covered_components(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = signed(ed_key)
    headers["Signature-Input"] = headers["Signature-Input"].replace(
        '"@method" "@path"', '"@path" "@method"'
    )
    assert rejected(headers, ed_key.public_key()) == "bad-signature"


def test_attack_flip_a_signature_bit(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = signed(ed_key)
    member = sfv.parse_dictionary(headers["Signature"])["sig1"]
    assert isinstance(member, sfv.Item) and isinstance(member.value, bytes)
    flipped = bytes([member.value[0] ^ 1]) + member.value[1:]
    headers["Signature"] = sfv.serialize_dictionary({"sig1": sfv.Item(flipped)})
    assert rejected(headers, ed_key.public_key()) == "bad-signature"
    headers["Signature"] = sfv.serialize_dictionary({"sig1": sfv.Item(member.value[:-1])})
    assert rejected(headers, ed_key.public_key()) == "bad-signature"
    headers["Signature"] = "sig1=::"
    assert rejected(headers, ed_key.public_key()) == "bad-signature"


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def test_attack_replay_after_expiry(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = signed(ed_key)  # expires NOW + 60
    assert verify(headers, ed_key.public_key(), now=NOW + 60 + 30)  # within the 30 s skew
    assert rejected(headers, ed_key.public_key(), now=NOW + 60 + 31) == "expired"


def test_attack_sign_in_the_future(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = forge(ed_key, params={"created": NOW + 31, "expires": NOW + 91})
    assert rejected(headers, ed_key.public_key()) == "not-yet-valid"
    headers = forge(ed_key, params={"created": NOW + 30, "expires": NOW + 90})
    assert verify(headers, ed_key.public_key())


def test_attack_long_lived_signature(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = forge(ed_key, params={"expires": NOW + 301})
    assert rejected(headers, ed_key.public_key()) == "lifetime-too-long"
    headers = forge(ed_key, params={"expires": NOW + 300})
    assert verify(headers, ed_key.public_key())
    assert rejected(headers, ed_key.public_key(), max_lifetime=60) == "lifetime-too-long"


def test_attack_expires_before_created(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = forge(ed_key, params={"expires": NOW - 1})
    assert rejected(headers, ed_key.public_key()) == "bad-parameter"


def test_signer_refuses_long_lifetimes(ed_key: ed25519.Ed25519PrivateKey) -> None:
    with pytest.raises(UserError, match="1 to 300 seconds"):
        signed(ed_key, expires_in=301)
    with pytest.raises(UserError, match="1 to 300 seconds"):
        signed(ed_key, expires_in=0)


# --------------------------------------------------------------------------------------------
# Parameters and components
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["created", "expires", "nonce", "keyid", "alg"])
def test_attack_omit_a_required_parameter(ed_key: ed25519.Ed25519PrivateKey, missing: str) -> None:
    headers = forge(ed_key, drop=[missing])
    assert rejected(headers, ed_key.public_key()) == "missing-parameter"


@pytest.mark.parametrize(
    "params",
    [
        {"created": str(NOW)},
        {"created": True},  # a Structured Field boolean is a Python int: must not pass
        {"expires": 1.5},
        {"nonce": "short"},
        {"nonce": sfv.Token("AAAAAAAAAAAAAAAAAAAAAA")},
        {"nonce": "x" * 129},
        {"keyid": b"bytes"},
        {"alg": sfv.Token("ed25519")},
    ],
)
def test_attack_mistyped_parameters(
    ed_key: ed25519.Ed25519PrivateKey, params: dict[str, Any]
) -> None:
    headers = forge(ed_key, params=params)
    assert rejected(headers, ed_key.public_key()) == "bad-parameter"


def test_attack_unknown_parameter(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = forge(ed_key, params={"extra": 1})
    assert rejected(headers, ed_key.public_key()) == "malformed-signature"


def test_attack_untagged_or_wrongly_tagged(ed_key: ed25519.Ed25519PrivateKey) -> None:
    assert rejected(forge(ed_key, drop=["tag"]), ed_key.public_key()) == "missing-signature"
    other = forge(ed_key, params={"tag": "another-service"})
    assert rejected(other, ed_key.public_key()) == "missing-signature"
    # Selected by label instead of tag, the wrong tag is still refused.
    assert rejected(other, ed_key.public_key(), label="sig1") == "bad-parameter"
    assert rejected(forge(ed_key, drop=["tag"]), ed_key.public_key(), label="sig1") == (
        "missing-parameter"
    )
    # A verifier that does not ask for a tag accepts the untagged signature.
    assert verify(forge(ed_key, drop=["tag"]), ed_key.public_key(), tag=None)


@pytest.mark.parametrize(
    "components",
    [
        [sfv.Item(c) for c in ("@method", "@path", "@query")],  # body not covered
        [sfv.Item(c) for c in ("@method", "@path", "content-digest")],  # query not covered
        [],  # nothing covered (RFC 9421 B.2.1 style)
        [sfv.Item(c) for c in (*COVERED, "@authority")],
        [sfv.Item(c) for c in (*COVERED, "@method")],
        [sfv.Item(c) for c in COVERED[:-1]] + [sfv.Item("content-digest", {"sf": True})],
        [sfv.Item(c) for c in COVERED[:-1]] + [sfv.Item(sfv.Token("content-digest"))],
    ],
)
def test_attack_cover_other_components(
    ed_key: ed25519.Ed25519PrivateKey, components: list[sfv.Item]
) -> None:
    headers = forge(ed_key, components=components)
    assert rejected(headers, ed_key.public_key()) == "components"


def test_any_order_of_the_covered_components_is_accepted(
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    headers = forge(ed_key, components=[sfv.Item(c) for c in reversed(COVERED)])
    assert verify(headers, ed_key.public_key())


# --------------------------------------------------------------------------------------------
# Algorithms and keys
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alg", ["rsa-v1_5-sha1", "hmac-sha256", "ecdsa-p256-sha256", "rsa-sha1", "none", ""]
)
def test_attack_weak_or_foreign_algorithm(rsa_key: rsa.RSAPrivateKey, alg: str) -> None:
    headers = forge(rsa_key, params={"alg": alg}, sign_alg="rsa-v1_5-sha256")
    assert rejected(headers, rsa_key.public_key()) == "weak-algorithm"


def test_attack_algorithm_confusion(
    ed_key: ed25519.Ed25519PrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    headers = forge(ed_key, params={"alg": "rsa-pss-sha512"}, sign_alg="ed25519")
    assert rejected(headers, ed_key.public_key()) == "alg-mismatch"
    headers = forge(rsa_key, params={"alg": "ed25519"}, sign_alg="rsa-pss-sha512")
    assert rejected(headers, rsa_key.public_key()) == "alg-mismatch"


def test_attack_pss_signature_claimed_as_v15(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = forge(rsa_key, params={"alg": "rsa-v1_5-sha256"}, sign_alg="rsa-pss-sha512")
    assert rejected(headers, rsa_key.public_key()) == "bad-signature"


def test_attack_unknown_key(ed_key: ed25519.Ed25519PrivateKey) -> None:
    assert rejected(signed(ed_key)) == "unknown-key"


def test_attack_sign_with_key_b_under_the_keyid_of_key_a(
    ed_key: ed25519.Ed25519PrivateKey, ed_key_b: ed25519.Ed25519PrivateKey
) -> None:
    key_a = ed_key.public_key()
    headers = signed(ed_key_b, keyid=fingerprint(key_a))
    assert rejected(headers, key_a, ed_key_b.public_key()) == "bad-signature"


def test_a_buggy_lookup_cannot_widen_who_is_accepted(
    ed_key: ed25519.Ed25519PrivateKey, ed_key_b: ed25519.Ed25519PrivateKey
) -> None:
    """Key B signs under A's keyid and the lookup wrongly returns B: refused all the same."""
    headers = signed(ed_key_b, keyid=fingerprint(ed_key.public_key()))
    lookup = lambda keyid: [ed_key_b.public_key()]  # noqa: E731
    assert rejected(headers, lookup=lookup) == "unknown-key"


def test_one_of_several_registered_copies_verifies(
    ed_key: ed25519.Ed25519PrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    pub = ed_key.public_key()

    def lookup(keyid: str) -> list[PublicKey]:
        return [rsa_key.public_key(), pub, pub]

    assert verify(signed(ed_key), lookup=lookup).alg == "ed25519"


def test_weak_registered_key_is_refused(rsa1024_key: rsa.RSAPrivateKey) -> None:
    """A 1024-bit key that reached the registry some other way still cannot sign."""
    # (PSS with SHA-512 and a 64-byte salt does not even fit in a 1024-bit modulus.)
    headers = forge(rsa1024_key, params={"alg": "rsa-v1_5-sha256"}, sign_alg="rsa-v1_5-sha256")
    assert rejected(headers, rsa1024_key.public_key()) == "weak-key"


# --------------------------------------------------------------------------------------------
# Replay and the order of checks
# --------------------------------------------------------------------------------------------


def test_attack_replay(ed_key: ed25519.Ed25519PrivateKey) -> None:
    cache = InMemoryNonceCache(clock=lambda: NOW)
    headers = signed(ed_key)
    verify(headers, ed_key.public_key(), seen=cache)
    assert rejected(headers, ed_key.public_key(), seen=cache) == "replay"
    # A fresh signature of the very same request is fine.
    verify(signed(ed_key), ed_key.public_key(), seen=cache)


def test_replay_is_refused_until_the_last_second_it_could_be_accepted(
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    clock = [NOW]
    cache = InMemoryNonceCache(clock=lambda: clock[0])
    headers = signed(ed_key)  # expires NOW + 60, skew 30
    verify(headers, ed_key.public_key(), seen=cache)
    for t in (NOW + 1, NOW + 60, NOW + 90):
        clock[0] = t
        assert rejected(headers, ed_key.public_key(), seen=cache, now=t) == "replay"
    clock[0] = NOW + 91
    assert rejected(headers, ed_key.public_key(), seen=cache, now=NOW + 91) == "expired"
    assert len(cache) == 0


class Recorder:
    """Counts calls to the key lookup and the nonce store."""

    def __init__(self, *pubs: PublicKey) -> None:
        self.pubs = pubs
        self.lookups = 0
        self.nonces: list[str] = []

    def lookup(self, keyid: str) -> list[PublicKey]:
        self.lookups += 1
        return [p for p in self.pubs if fingerprint(p) == keyid]

    def seen(self, keyid: str, nonce: str, keep_until: int) -> bool:
        self.nonces.append(nonce)
        return False


def test_no_lookup_and_no_nonce_for_expired_or_malformed_requests(
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    rec = Recorder(ed_key.public_key())
    kw = {"lookup": rec.lookup, "seen": rec.seen}
    assert rejected(signed(ed_key), now=NOW + 1000, **kw) == "expired"
    assert rejected(forge(ed_key, drop=["nonce"]), **kw) == "missing-parameter"
    assert rejected({"Signature-Input": "(", "Signature": "x"}, **kw) == "malformed-signature"
    assert rejected(forge(ed_key, params={"alg": "rsa-v1_5-sha1"}), **kw) == "weak-algorithm"
    assert rec.lookups == 0 and rec.nonces == []


def test_nonce_is_not_consumed_by_a_failed_attempt(ed_key: ed25519.Ed25519PrivateKey) -> None:
    """An attacker who races a tampered copy of a request cannot burn its nonce."""
    cache = InMemoryNonceCache(clock=lambda: NOW)
    rec = Recorder(ed_key.public_key())
    genuine = signed(ed_key)
    assert rejected(genuine, ed_key.public_key(), seen=cache, method="DELETE") == "bad-signature"
    assert rejected(genuine, ed_key.public_key(), seen=cache, body=b"{}") == "digest-mismatch"
    assert rejected(genuine, lookup=rec.lookup, seen=rec.seen, body=b"{}") == "digest-mismatch"
    assert rec.nonces == []
    assert verify(genuine, ed_key.public_key(), seen=cache)


def test_nonce_is_kept_until_expires_plus_skew(ed_key: ed25519.Ed25519PrivateKey) -> None:
    calls: list[tuple[str, str, int]] = []

    def seen(keyid: str, nonce: str, keep_until: int) -> bool:
        calls.append((keyid, nonce, keep_until))
        return False

    verify(signed(ed_key, nonce=NONCE), ed_key.public_key(), seen=seen, max_skew=10)
    assert calls == [(fingerprint(ed_key.public_key()), NONCE, NOW + 60 + 10)]


# --------------------------------------------------------------------------------------------
# Header handling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("drop", ["Signature-Input", "Signature"])
def test_unsigned_request_is_refused(ed_key: ed25519.Ed25519PrivateKey, drop: str) -> None:
    headers = signed(ed_key)
    del headers[drop]
    assert rejected(headers, ed_key.public_key()) == "missing-signature"
    assert rejected({}, ed_key.public_key()) == "missing-signature"


def test_signature_for_another_label_is_missing(ed_key: ed25519.Ed25519PrivateKey) -> None:
    headers = signed(ed_key)
    headers["Signature"] = headers["Signature"].replace("sig1=", "sig2=")
    assert rejected(headers, ed_key.public_key()) == "missing-signature"
    assert rejected(signed(ed_key), ed_key.public_key(), label="nope") == "missing-signature"


def test_a_second_signature_on_another_header_line_is_tolerated(
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    ours = signed(ed_key)
    headers = MultiHeaders(
        [
            ("content-digest", ours["Content-Digest"]),
            ("signature-input", ours["Signature-Input"]),
            ("Signature-Input", 'proxy=("@method");created=1;keyid="p";tag="proxy"'),
            ("signature", "proxy=:AAAA:"),
            ("Signature", ours["Signature"]),
        ]
    )
    assert verify(headers, ed_key.public_key()).label == "sig1"
    assert verify(headers, ed_key.public_key(), label="sig1").label == "sig1"
    assert rejected(headers, ed_key.public_key(), tag=None) == "malformed-signature"


def test_two_signatures_with_our_tag_are_refused(ed_key: ed25519.Ed25519PrivateKey) -> None:
    a, b = signed(ed_key, label="a"), signed(ed_key, label="b")
    headers = {
        "Content-Digest": a["Content-Digest"],
        "Signature-Input": f"{a['Signature-Input']}, {b['Signature-Input']}",
        "Signature": f"{a['Signature']}, {b['Signature']}",
    }
    assert rejected(headers, ed_key.public_key()) == "malformed-signature"
    assert verify(headers, ed_key.public_key(), label="b").label == "b"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Signature-Input", "sig1=" + '"x"'),  # not an inner list
        ("Signature", 'sig1="not bytes"'),
        ("Signature", "sig1=(:AAAA:)"),
        ("Signature", "sig1=:AAAA:;p=1"),
        ("Signature-Input", "sig1=(" + '"@method" ' * 40 + ")"),
        ("Signature-Input", ", ".join(f"s{i}=()" for i in range(9))),
        ("Signature", "sig1=:" + "A" * 9000 + ":"),
        ("Signature-Input", "Sig1=()"),
        ("Signature-Input", 'sig1=("@method"\n)'),
        ("Signature", "sig1=:AAAA:,"),
    ],
)
def test_attack_malformed_or_oversized_headers(
    ed_key: ed25519.Ed25519PrivateKey, header: str, value: str
) -> None:
    headers = signed(ed_key) | {header: value}
    kwargs: dict[str, Any] = {"tag": None} if header == "Signature-Input" else {}
    assert rejected(headers, ed_key.public_key(), **kwargs) == "malformed-signature"


@pytest.mark.parametrize(
    ("path", "query"),
    [('/v1/x\n"@method": GET', ""), ("/v1/é", ""), ("/v1/x", "a=1\r\n"), ("relative", "")],
)
def test_unsignable_request_lines_are_refused(
    ed_key: ed25519.Ed25519PrivateKey, path: str, query: str
) -> None:
    assert rejected(signed(ed_key), ed_key.public_key(), path=path, query=query) == (
        "malformed-request"
    )
    with pytest.raises(UserError):
        sign_request(METHOD, path, query, BODY, ed_key)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nonce": "short"}, "nonce"),
        ({"nonce": "x" * 20 + "\n"}, "nonce"),
        ({"alg": "rsa-pss-sha512"}, "does not fit"),
        ({"alg": "rsa-v1_5-sha1"}, "is refused"),
        ({"keyid": "bad\x00keyid"}, "cannot sign"),
        ({"label": "Bad Label"}, "cannot sign"),
        ({"created": -5}, "Unix time"),
    ],
)
def test_signer_refuses_bad_arguments(
    ed_key: ed25519.Ed25519PrivateKey, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserError, match=message):
        sign_request(METHOD, PATH, QUERY, BODY, ed_key, **kwargs)


def test_signer_refuses_a_bad_method(ed_key: ed25519.Ed25519PrivateKey) -> None:
    with pytest.raises(UserError, match="not a token"):
        sign_request("PO ST", PATH, QUERY, BODY, ed_key)


def test_verifier_refuses_absurd_settings(ed_key: ed25519.Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError):
        verify(signed(ed_key), ed_key.public_key(), max_lifetime=3600)
    with pytest.raises(ValueError):
        verify(signed(ed_key), ed_key.public_key(), max_skew=-1)


# --------------------------------------------------------------------------------------------
# Fuzzing: the verifier only ever raises SignatureRejected
# --------------------------------------------------------------------------------------------

_header_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(list('sig1=("@method" );:AZaz09+/=,?*-"\\\t ')), max_size=120).map(
        "".join
    ),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(signature_input=_header_text, signature=_header_text, digest=_header_text)
def test_fuzz_arbitrary_headers_only_raise_signature_rejected(
    ed_key: ed25519.Ed25519PrivateKey, signature_input: str, signature: str, digest: str
) -> None:
    headers = {"Signature-Input": signature_input, "Signature": signature, "Content-Digest": digest}
    with pytest.raises(SignatureRejected):
        verify(headers, ed_key.public_key(), tag=None)


# Module-level, not a fixture: hypothesis runs the test body many times per fixture instance.
_FUZZ_KEY = ed25519.Ed25519PrivateKey.generate()


@settings(max_examples=600, deadline=None)
@given(
    name=st.sampled_from(["Signature-Input", "Signature", "Content-Digest"]),
    position=st.integers(min_value=0, max_value=400),
    char=st.characters(max_codepoint=0x17F),
)
def test_fuzz_single_character_mutations_are_refused(name: str, position: int, char: str) -> None:
    key = _FUZZ_KEY
    headers = signed(key, nonce=NONCE)
    value = headers[name]
    position %= len(value)
    mutated = value[:position] + char + value[position + 1 :]
    assume(mutated != value)
    headers[name] = mutated
    try:
        result = verify(headers, key.public_key())
    except SignatureRejected:
        return
    # Only a non-canonical base64 spelling of the very same signature bytes may pass.
    assert name == "Signature"
    assert result.nonce == NONCE


# --------------------------------------------------------------------------------------------
# Fast paths agree with the exact rules
# --------------------------------------------------------------------------------------------

_ascii_and_more = st.text(max_size=40) | st.text(st.characters(codec="ascii"), max_size=40)


@settings(max_examples=1000)
@given(_ascii_and_more)
def test_printable_agrees_with_the_per_character_check(text: str) -> None:
    assert httpsig._printable(text) == all(" " <= c <= "~" for c in text)


_method_like = st.text(
    st.sampled_from(
        [*"GETPOSTgetpost09!#$%&'*+-.^_`|~ \t\n\x00\x7f\"(),/:;<=>?@[]{}", "é", "Ǆ", "٣"]
    ),
    max_size=8,
)


@settings(max_examples=1500)
@given(_method_like | _ascii_and_more)
def test_method_fast_check_accepts_only_what_the_exact_rule_accepts(method: str) -> None:
    fast = method.isascii() and httpsig._METHOD.fullmatch(method) is not None
    exact = httpsig._method_error(method)
    # The regex may only accept early, never widen, and every RFC 9110 token must take it.
    assert fast == (exact is None)
    try:
        httpsig._derived_components(method, "/", "")
    except ValueError as exc:
        assert str(exc) == exact
    else:
        assert exact is None


def test_fingerprint_cache_returns_each_keys_own_fingerprint_and_stays_bounded(
    ed_key: ed25519.Ed25519PrivateKey,
    ed_key_b: ed25519.Ed25519PrivateKey,
    rsa_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    computed: list[PublicKey] = []

    def counting_fingerprint(pub: PublicKey) -> str:
        computed.append(pub)
        return fingerprint(pub)

    monkeypatch.setattr(httpsig, "fingerprint", counting_fingerprint)
    cache = httpsig._FingerprintCache(max_entries=2)
    pubs = [key.public_key() for key in (ed_key, ed_key_b, rsa_key)]
    for _ in range(3):
        for pub in pubs:
            assert cache(pub) == fingerprint(pub)
            assert len(cache._entries) <= 2
    assert len({cache(pub) for pub in pubs}) == 3
    # Within the bound, a key is computed once; a key parsed again (another object with the
    # same fingerprint) is a hit all the same.
    computed.clear()
    line = pubs[0].public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    for pub in (pubs[0], pubs[0], parse_public_key(line), pubs[0]):
        assert cache(pub) == fingerprint(pub)
    assert len(computed) <= 1


def test_a_buggy_lookup_is_still_caught_with_every_fingerprint_cached(
    ed_key: ed25519.Ed25519PrivateKey, ed_key_b: ed25519.Ed25519PrivateKey
) -> None:
    for key in (ed_key, ed_key_b):
        httpsig._fingerprint(key.public_key())
    headers = signed(ed_key_b, keyid=fingerprint(ed_key.public_key()))
    assert rejected(headers, lookup=lambda keyid: [ed_key_b.public_key()]) == "unknown-key"
    assert verify(signed(ed_key), lookup=lambda keyid: [ed_key_b.public_key(), ed_key.public_key()])


def test_fingerprint_cache_stays_right_under_concurrent_eviction(
    ed_key: ed25519.Ed25519PrivateKey, ed_key_b: ed25519.Ed25519PrivateKey
) -> None:
    cache = httpsig._FingerprintCache(max_entries=1)  # every other call evicts
    pubs = [ed_key.public_key(), ed_key_b.public_key()]
    expected = [fingerprint(pub) for pub in pubs]
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        try:
            for i in range(300):
                assert cache(pubs[i % 2]) == expected[i % 2]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache._entries) <= 1


# --------------------------------------------------------------------------------------------
# InMemoryNonceCache
# --------------------------------------------------------------------------------------------


def test_cache_is_namespaced_by_key() -> None:
    cache = InMemoryNonceCache(clock=lambda: 0)
    assert cache("key-a", NONCE, 10) is False
    assert cache("key-a", NONCE, 10) is True
    assert cache("key-b", NONCE, 10) is False


def test_cache_forgets_after_keep_until() -> None:
    clock = [0.0]
    cache = InMemoryNonceCache(clock=lambda: clock[0])
    cache("k", "n1", 10)
    cache("k", "n2", 20)
    clock[0] = 10
    assert len(cache) == 2
    clock[0] = 10.5
    assert len(cache) == 1
    assert cache("k", "n1", 30) is False  # forgotten, recorded again
    assert cache("k", "n2", 30) is True


def test_cache_is_bounded_and_fails_closed() -> None:
    clock = [0.0]
    cache = InMemoryNonceCache(max_entries=2, clock=lambda: clock[0])
    cache("k", "n1", 10)
    cache("k", "n2", 20)
    with pytest.raises(SignatureRejected) as info:
        cache("k", "n3", 30)
    assert info.value.reason == "busy"
    assert cache("k", "n1", 10) is True  # the live nonces were not evicted
    clock[0] = 11
    assert cache("k", "n3", 30) is False
    with pytest.raises(ValueError):
        InMemoryNonceCache(max_entries=0)


def test_cache_is_thread_safe() -> None:
    cache = InMemoryNonceCache(clock=lambda: 0)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(cache("k", "same", 10))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] + [True] * 7
