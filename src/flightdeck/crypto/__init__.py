"""Signed requests between pilot and the Airboss: keys, RFC 9421 signatures, RFC 9530 digests.

This package is the client side's only security dependency, so it imports nothing but the
standard library, `cryptography` and `flightdeck.errors`: no database, no HTTP framework, no
libvirt. `pilot` on a laptop needs `pip install flightdeck` and nothing else.

* `keys`    - make, load, parse and fingerprint Ed25519 / RSA (>= 2048) keys.
* `digest`  - `Content-Digest` (sha-256, sha-512) of a request body.
* `sfv`     - the strict, bounded Structured Field parser the signature headers need.
* `httpsig` - `sign_request` / `verify_request` and the in-memory nonce store.
"""
