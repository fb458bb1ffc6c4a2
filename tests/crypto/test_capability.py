"""Capability tokens (Biscuit rooted in the owner's Ed25519 key): minting, attenuation, the
per-request binding, and the attacks on each (written before `crypto.capability`)."""

from __future__ import annotations

import base64
import datetime as dt
import json

import biscuit_auth as bx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from flightdeck.crypto import capability as cap
from flightdeck.crypto.keys import PublicKey, fingerprint
from flightdeck.errors import UserError

NOW = 1_800_000_000
MAC = "52:54:00:aa:00:01"


def _keys(*keys: ed25519.Ed25519PrivateKey):  # type: ignore[no-untyped-def]
    table = {fingerprint(k.public_key()): [k.public_key()] for k in keys}

    def lookup(keyid: str) -> list[PublicKey]:
        return list(table.get(keyid, []))

    return lookup


class Nonces:
    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, keyid: str, nonce: str, _until: int) -> bool:
        if (keyid, nonce) in self.seen:
            return True
        self.seen.add((keyid, nonce))
        return False


def _verify(  # type: ignore[no-untyped-def]
    headers,
    keys,
    *,
    method="POST",
    path="/v1/power",
    query="",
    body=b'{"target":"52:54:00:aa:00:01","action":"on"}',
    now=NOW,
    revoked=lambda ids: None,
    nonces=None,
) -> cap.VerifiedToken:
    return cap.verify(
        method,
        path,
        query,
        headers,
        body,
        keys,
        now=now,
        max_skew=30,
        revoked=revoked,
        seen_nonce=nonces or Nonces(),
    )


BODY = b'{"target":"52:54:00:aa:00:01","action":"on"}'


def _bind(token: cap.Token, **kw):  # type: ignore[no-untyped-def]
    return cap.bind(token, "POST", "/v1/power", "", BODY, created=NOW, **kw)


def _until(hours: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(NOW, dt.UTC) + dt.timedelta(hours=hours)


@pytest.fixture()
def slurm_token(ed_key: ed25519.Ed25519PrivateKey) -> cap.Token:
    root = cap.mint(ed_key, cap.Restrictions())
    return cap.attenuate(
        root,
        cap.Restrictions(
            ops=("power.on", "power.off"), hosts=("compute-0-0-0", MAC), until=_until(8)
        ),
    )


def test_mint_and_use(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    verified = _verify(_bind(slurm_token), _keys(ed_key))
    assert verified.keyid == fingerprint(ed_key.public_key())
    assert verified.id == slurm_token.id
    assert "power.on" in verified.restrictions and "compute-0-0-0" in verified.restrictions
    verified.authorize("power.on", ["compute-0-0-0", MAC], "127.0.0.1", NOW)
    verified.authorize("power.off", ["other", MAC.upper()], None, NOW)


def test_file_round_trip(slurm_token) -> None:  # type: ignore[no-untyped-def]
    again = cap.load(slurm_token.dump())
    assert again == slurm_token
    assert again.keyid == slurm_token.keyid
    with pytest.raises(UserError, match="not a Flightdeck token file"):
        cap.load("hello\nworld\n")


# Attacks ------------------------------------------------------------------------------------------


def test_widening_is_impossible(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    """A holder appends a block that 'allows' more: facts and checks of an appended block
    never widen what earlier blocks check."""
    wider = cap.attenuate(
        slurm_token, cap.Restrictions(ops=cap.OPERATIONS, hosts=("frontend-0-0-0",))
    )
    forged = cap.Token(
        wider.root,
        str(
            wider.biscuit()
            .append(bx.BlockBuilder('service("flightdeck-airboss"); operation("power.install");'))
            .to_base64()
        ),
    )
    for token in (wider, forged):
        verified = _verify(_bind(token), _keys(ed_key))
        with pytest.raises(cap.TokenRejected) as exc:
            verified.authorize("power.install", ["compute-0-0-0", MAC], None, NOW)
        assert exc.value.reason == "token-denied"
        with pytest.raises(cap.TokenRejected):
            verified.authorize("power.on", ["frontend-0-0-0"], None, NOW)


def test_operation_host_and_client_restrictions(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    verified = _verify(_bind(slurm_token), _keys(ed_key))
    for op, hosts in (("power.install", [MAC]), ("console", [MAC]), ("power.on", ["compute-0-1"])):
        with pytest.raises(cap.TokenRejected, match="does not allow"):
            verified.authorize(op, hosts, None, NOW)
    pinned = cap.attenuate(slurm_token, cap.Restrictions(clients=("10.1.1.1",)))
    v2 = _verify(_bind(pinned), _keys(ed_key))
    v2.authorize("power.on", [MAC], "10.1.1.1", NOW)
    with pytest.raises(cap.TokenRejected):
        v2.authorize("power.on", [MAC], "10.9.9.9", NOW)
    with pytest.raises(cap.TokenRejected):
        v2.authorize("power.on", [MAC], None, NOW)


def test_used_after_its_window(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    later = NOW + 9 * 3600
    headers = cap.bind(slurm_token, "POST", "/v1/power", "", BODY, created=later)
    verified = _verify(headers, _keys(ed_key), now=later)
    with pytest.raises(cap.TokenRejected) as exc:
        verified.authorize("power.on", [MAC], None, later)
    assert exc.value.reason == "token-denied" and "time" in (exc.value.detail or "")


def test_replaying_a_token_request(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    nonces = Nonces()
    headers = _bind(slurm_token)
    _verify(headers, _keys(ed_key), nonces=nonces)
    with pytest.raises(cap.TokenRejected) as exc:
        _verify(headers, _keys(ed_key), nonces=nonces)
    assert exc.value.reason == "token-replay"


def test_binding_expires(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(cap.TokenRejected) as exc:
        _verify(_bind(slurm_token), _keys(ed_key), now=NOW + 60 + 31)
    assert exc.value.reason == "token-expired-binding"


def test_bound_token_reused_for_another_request(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    """A captured request token (binding block included) for another body, path or query,
    or with a fresh Token-Binding: refused. Appending a new binding to it does not help."""
    headers = _bind(slurm_token)
    other = b'{"target":"52:54:00:aa:00:01","action":"install"}'
    for kw in ({"body": other}, {"path": "/v1/cdrom"}, {"method": "GET", "query": "x=1"}):
        moved = dict(headers)
        if "body" in kw:
            moved["Content-Digest"] = cap.content_digest(other)
        with pytest.raises(cap.TokenRejected) as exc:
            _verify(moved, _keys(ed_key), **kw)
        assert exc.value.reason == "token-unbound"
    # the captured token re-bound to a new request: its old binding block still checks the
    # old request's hash, so the authorisation fails
    captured = cap.Token(slurm_token.root, headers["Authorization"].split(" ", 1)[1])
    rebound = cap.bind(captured, "POST", "/v1/power", "", other, created=NOW)
    verified = _verify(rebound, _keys(ed_key), body=other)
    with pytest.raises(cap.TokenRejected) as exc:
        verified.authorize("power.on", [MAC], None, NOW)
    assert exc.value.reason == "token-denied"


def test_unbound_token_is_refused(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    """The token as kept (no binding block), sent as a bearer token: refused."""
    headers = _bind(slurm_token)
    headers["Authorization"] = f"Biscuit {slurm_token.text}"
    with pytest.raises(cap.TokenRejected) as exc:
        _verify(headers, _keys(ed_key))
    assert exc.value.reason == "token-unbound"


def test_token_of_another_key(ed_key, ed_key_b, slurm_token) -> None:  # type: ignore[no-untyped-def]
    """A token for another cluster: its key is not the one it claims, or not registered."""
    headers = _bind(slurm_token)
    with pytest.raises(cap.TokenRejected) as exc:
        _verify(headers, _keys(ed_key_b))
    assert exc.value.reason == "token-unknown-key"
    # claims key B (registered) but is signed by key A
    b_token = cap.Token(
        ed_key_b.public_key().public_bytes_raw(), slurm_token.text
    )
    with pytest.raises(UserError, match="altered"):
        cap.bind(b_token, "POST", "/v1/power", "", BODY)
    binding = headers["Token-Binding"].replace(slurm_token.keyid, b_token.keyid)
    with pytest.raises(cap.TokenRejected) as exc:
        _verify({**headers, "Token-Binding": binding}, _keys(ed_key, ed_key_b))
    assert exc.value.reason in ("token-invalid", "token-unbound")


def test_forged_attenuation_block(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    """Flip bytes of the attenuation block (to drop its host check): the chain breaks."""
    raw = bytearray(base64.urlsafe_b64decode(slurm_token.text + "=="))
    needle = b"compute-0-0-0"
    at = bytes(raw).find(needle)
    assert at > 0
    raw[at : at + len(needle)] = b"compute-0-0-9"
    forged = cap.Token(slurm_token.root, base64.urlsafe_b64encode(bytes(raw)).decode())
    with pytest.raises(UserError, match="altered"):
        forged.biscuit()
    headers = _bind(slurm_token)
    bound = bytearray(base64.urlsafe_b64decode(headers["Authorization"].split()[1] + "=="))
    at = bytes(bound).find(needle)
    bound[at : at + len(needle)] = b"compute-0-0-9"
    headers["Authorization"] = "Biscuit " + base64.urlsafe_b64encode(bytes(bound)).decode()
    with pytest.raises(cap.TokenRejected) as exc:
        _verify(headers, _keys(ed_key))
    assert exc.value.reason == "token-invalid"


def test_revoked(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    root_id = slurm_token.ids[0]
    child = cap.attenuate(slurm_token, cap.Restrictions(ops=("power.on",)))
    for revoked_id, token in ((slurm_token.id, child), (root_id, slurm_token)):
        with pytest.raises(cap.TokenRejected) as exc:
            _verify(
                _bind(token),
                _keys(ed_key),
                revoked=lambda ids, r=revoked_id: r if r in ids else None,
            )
        assert exc.value.reason == "token-revoked"
    # revoking the child leaves its parent alone
    _verify(
        _bind(slurm_token), _keys(ed_key), revoked=lambda ids: child.id if child.id in ids else None
    )


def test_biscuit_of_another_service(ed_key) -> None:  # type: ignore[no-untyped-def]
    """A Biscuit the same key signed for another service is no Airboss token."""
    from cryptography.hazmat.primitives import serialization

    raw = ed_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    other = bx.BiscuitBuilder('right("anything");').build(
        bx.PrivateKey.from_bytes(raw, bx.Algorithm.Ed25519)  # type: ignore[call-arg,attr-defined]
    )
    token = cap.Token(ed_key.public_key().public_bytes_raw(), str(other.to_base64()))
    verified = _verify(_bind(token), _keys(ed_key))
    with pytest.raises(cap.TokenRejected, match="does not allow"):
        verified.authorize("power.on", [MAC], None, NOW)


def test_rsa_keys_cannot_mint(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UserError, match="Ed25519"):
        cap.mint(rsa_key, cap.Restrictions())


@pytest.mark.parametrize(
    "header",
    [
        "Biscuit !!!",
        "Biscuit " + "A" * (cap.MAX_TOKEN_CHARS + 1),
        "Bearer abc",
    ],
)
def test_malformed_authorization(ed_key, slurm_token, header) -> None:  # type: ignore[no-untyped-def]
    headers = {**_bind(slurm_token), "Authorization": header}
    with pytest.raises(cap.TokenRejected) as exc:
        _verify(headers, _keys(ed_key))
    assert exc.value.reason == "token-malformed"


def test_binding_lifetime_bounded(ed_key, slurm_token) -> None:  # type: ignore[no-untyped-def]
    headers = _bind(slurm_token)
    headers["Token-Binding"] = headers["Token-Binding"].replace(
        f"expires={NOW + 60}", f"expires={NOW + 3600}"
    )
    with pytest.raises(cap.TokenRejected) as exc:
        _verify(headers, _keys(ed_key))
    assert exc.value.reason == "token-expired-binding"


def test_restrictions_checked() -> None:
    with pytest.raises(UserError, match="ops="):
        cap.Restrictions(ops=("power.everything",))
    with pytest.raises(UserError, match="hosts="):
        cap.Restrictions(hosts=tuple(f"n{i}" for i in range(cap.MAX_HOSTS + 1)))
    assert json.dumps(cap.REASONS)
