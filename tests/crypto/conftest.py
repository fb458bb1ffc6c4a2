"""Shared keys for the crypto tests: made once per session (RSA-3072 generation is slow)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from flightdeck.crypto import keys


@pytest.fixture(scope="session")
def ed_key() -> ed25519.Ed25519PrivateKey:
    key = keys.generate_private_key("ed25519")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


@pytest.fixture(scope="session")
def ed_key_b() -> ed25519.Ed25519PrivateKey:
    key = keys.generate_private_key("ed25519")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    key = keys.generate_private_key("rsa", 3072)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="session")
def rsa1024_key() -> rsa.RSAPrivateKey:
    # Made with cryptography directly: our own generator refuses it (that is tested).
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)
