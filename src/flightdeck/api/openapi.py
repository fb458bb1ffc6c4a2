"""The Airboss's OpenAPI document, generated from the operation declarations.

`document()` is what `/openapi.json` serves and `airboss openapi` prints; the committed copy,
`docs/openapi.json`, is rewritten on purpose (`airboss openapi --write`, or the test suite's
`--regenerate-golden`) and a test fails when it no longer matches the declarations.

Generated from declarations rather than from handler signatures, because the Airboss's
handlers take the raw request on purpose: the body is read and its signature verified before
anything parses it, so no framework may validate (and answer) first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flightdeck.api import wire
from flightdeck.api.operations import (
    HEALTH_PATH,
    OPERATIONS,
    Health,
    Operation,
    Stream,
    keys_only,
)

VERSION = "1"
#: The committed document (in a source tree).
COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {
            "type": "string",
            "description": "a stable code: the signature checks' reasons (missing-signature, "
            "bad-signature, expired, replay...), forbidden, invalid-target, invalid-request, "
            "unknown-operation, method-not-allowed, body-too-large, headers-too-large, "
            "rate-limited, action-failed, conflict, not-found, driver, timeout, internal; for "
            "consoles also too-many-sessions, token-unknown, token-expired, token-mismatch",
        },
        "message": {"type": "string", "description": "one line for a person"},
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_SIGNED_ERRORS = {
    "400": _error("the request (target, parameters, body) is not valid"),
    "401": _error("the signature is missing or does not verify (error: the reason)"),
    "403": _error("the key may not act on this target"),
    "404": _error("unknown operation"),
    "405": _error("the operation does not take this method"),
    "409": _error("the operation was allowed but failed (e.g. the VM is already running)"),
    "413": _error("the body is too large"),
    "429": _error("too many requests with this key: wait Retry-After seconds"),
    "431": _error("the request headers are too large"),
    "502": _error("the VM's container does not answer"),
    "504": _error("the VM's container did not finish in time"),
}

_SIGNATURE_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": text,
    }
    for name, text in (
        ("Signature-Input", "RFC 9421: covered components and parameters (see docs/airboss.md)"),
        ("Signature", "RFC 9421: the signature"),
        ("Content-Digest", "RFC 9530: sha-256 of the body (of an empty body for GET)"),
    )
]


_TOKEN_BINDING = {
    "name": "Token-Binding",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "with a capability token instead of a signature: token=(\"@method\" "
    '\"@path\" \"@query\" \"content-digest\");created=..;expires=..;nonce=\"..\";'
    'keyid=\"..\";tag=\"flightdeck-token\" (see docs/tokens.md)',
}


def _operation(op: Operation[Any, Any]) -> dict[str, Any]:
    query = wire.query_parameters(op.request) if op.method == "GET" else []
    # An operation a capability token may make (`right`) takes a signature OR a token.
    tokens = op.right is not keys_only
    signature = [
        {**h, "required": False} if tokens and h["name"] != "Content-Digest" else h
        for h in _SIGNATURE_HEADERS
    ]
    out: dict[str, Any] = {
        "summary": op.summary,
        "parameters": [*query, *signature, *([_TOKEN_BINDING] if tokens else [])],
        "security": [{"httpSignature": []}, *([{"capabilityToken": []}] if tokens else [])],
        "responses": {
            "200": {
                "description": "done",
                "content": {"application/json": {"schema": wire.answer_schema(op.answer)}},
            },
            **_SIGNED_ERRORS,
        },
    }
    if op.method != "GET":
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": wire.body_schema(op.request)}},
        }
    return out


def _stream(op: Stream[Any]) -> dict[str, Any]:
    """A WebSocket upgrade: signed, or with a token instead (the signature headers optional)."""
    return {
        "summary": op.summary,
        "description": op.description,
        "parameters": [
            *wire.query_parameters(op.request),
            *[{**h, "required": False} for h in _SIGNATURE_HEADERS],
        ],
        "security": [{"httpSignature": []}, {}],
        "responses": {
            "101": {"description": "switching to the WebSocket: the console session"},
            **_SIGNED_ERRORS,
            "401": _error("no valid signature or token (error: the reason, e.g. token-expired)"),
            "409": _error("the VM is not running"),
            "429": _error(
                "too many requests (rate-limited) or console sessions (too-many-sessions) "
                "with this key"
            ),
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the declared operations."""
    paths: dict[str, Any] = {
        HEALTH_PATH: {
            "get": {
                "summary": "Is the Airboss up (unauthenticated, not logged)",
                "responses": {
                    "200": {
                        "description": "up",
                        "content": {"application/json": {"schema": wire.answer_schema(Health)}},
                    }
                },
            }
        }
    }
    for op in OPERATIONS:
        entry = _stream(op) if isinstance(op, Stream) else _operation(op)
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Flightdeck Airboss",
            "version": VERSION,
            "description": "Owners of virtual clusters power, install and list their VMs. Every "
            "/v1 request is signed per RFC 9421 (Ed25519 or RSA >= 2048, created/expires <= "
            '300 s, a nonce used once, tag "flightdeck") over @method, @path, @query and '
            "Content-Digest; see docs/airboss.md. Refusals are JSON {error, message}.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "httpSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Signature",
                    "description": "RFC 9421 HTTP Message Signatures (with Signature-Input and "
                    "Content-Digest); keyid is the key's OpenSSH SHA-256 fingerprint",
                },
                "capabilityToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "Biscuit <base64>: a capability token rooted in the "
                    "owner's Ed25519 key, its last block binding it to this request (with "
                    "Token-Binding and Content-Digest); see docs/tokens.md",
                },
            },
        },
    }


def render() -> str:
    """The document as committed: JSON, one-space indents, a final newline."""
    return json.dumps(document(), indent=1) + "\n"
