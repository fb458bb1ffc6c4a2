"""The signed request shown in docs/airboss.md is exactly what the client library signs."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from flightdeck.crypto import keys as ck
from flightdeck.crypto.httpsig import InMemoryNonceCache, sign_request, verify_request

DOC = Path(__file__).resolve().parents[2] / "docs" / "airboss.md"


def test_documented_request_is_what_we_sign() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    body = json.dumps({"target": "76:77:6e:40:00:02", "action": "on"},
                      separators=(",", ":")).encode()
    headers = sign_request("POST", "/v1/power", "", body, key, created=1795300000,
                           nonce="kF8mQ2x7Vb3nRt9sLp0aZw")
    text = DOC.read_text(encoding="utf-8")
    assert ck.public_key_to_openssh(key.public_key()) in text
    for name, value in headers.items():
        assert f"{name}: {value}\n" in text, name
    assert f"Content-Length: {len(body)}\n" in text
    assert f"\n\n{body.decode()}\n```" in text
    verified = verify_request("POST", "/v1/power", "", headers, body,
                              lambda _k: [key.public_key()], now=1795300010,
                              seen_nonce=InMemoryNonceCache())
    assert verified.keyid == ck.fingerprint(key.public_key())
    assert f'keyid="{verified.keyid}"' in text
