"""The Airboss's OpenAPI document (served at `/openapi.json`), written out by hand.

By hand rather than generated from handler signatures, because the handlers take the raw
request on purpose: the body is read and its signature verified before anything parses it, so
no framework may validate (and answer) first.
"""

from __future__ import annotations

from typing import Any

from flightdeck.services.airboss import CONSOLE_KINDS, MAX_TARGET, POWER_ACTIONS

VERSION = "1"

_TARGET = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TARGET,
    "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]*$",
    "description": "the VM: one of its MACs (as the virtual frontend knows it) or its "
    "physical-side name (e.g. hosted-vm-0-0-0)",
    "example": "76:77:6e:40:00:00",
}

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


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    query: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [*(query or []), *_SIGNATURE_HEADERS],
        "security": [{"httpSignature": []}],
        "responses": {
            "200": {"description": "done", "content": {"application/json": {"schema": ok}}},
            **_SIGNED_ERRORS,
        },
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return op


def _obj(required: list[str], props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": False,
    }


_TARGET_QUERY = {"name": "target", "in": "query", "required": True, "schema": _TARGET}
_KIND = {"type": "string", "enum": list(CONSOLE_KINDS)}

_CONSOLE = {
    "summary": "A console of the VM as a WebSocket (RFC 6455): its VNC (RFB) byte stream or its "
    "serial console, binary frames both ways",
    "description": "Send this GET with Upgrade: websocket. Authenticated EITHER by the RFC 9421 "
    "signature of the upgrade request (as every operation; target and kind in the signed "
    "query) OR by token= (a web console token from POST /v1/console/token; target= then "
    "optional, and must match). Refusals are the JSON errors below, as the answer to the "
    "upgrade request. A session ends with a close frame: 1000 when the VM's console closed "
    "(it stopped), 4408 after the idle timeout, 1001 when the Airboss shuts down. A plain "
    "GET without Upgrade is refused with invalid-request.",
    "parameters": [
        {**_TARGET_QUERY, "required": False,
         "description": "the VM (required with a signature; optional with a token)"},
        {"name": "kind", "in": "query", "required": True, "schema": _KIND},
        {"name": "token", "in": "query", "required": False,
         "schema": {"type": "string", "minLength": 43, "maxLength": 43},
         "description": "a web console token instead of a signature"},
        *[{**h, "required": False} for h in _SIGNATURE_HEADERS],
    ],
    "security": [{"httpSignature": []}, {}],
    "responses": {
        "101": {"description": "switching to the WebSocket: the console session"},
        **_SIGNED_ERRORS,
        "401": _error("no valid signature or token (error: the reason, e.g. token-expired)"),
        "409": _error("the VM is not running"),
        "429": _error("too many requests (rate-limited) or console sessions "
                      "(too-many-sessions) with this key"),
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Flightdeck Airboss",
        "version": VERSION,
        "description": "Owners of virtual clusters power, install and list their VMs. Every "
        "/v1 request is signed per RFC 9421 (Ed25519 or RSA >= 2048, created/expires <= 300 s, "
        'a nonce used once, tag "flightdeck") over @method, @path, @query and '
        "Content-Digest; see docs/airboss.md. Refusals are JSON {error, message}.",
    },
    "paths": {
        "/health": {
            "get": {
                "summary": "Is the Airboss up (unauthenticated, not logged)",
                "responses": {
                    "200": {
                        "description": "up",
                        "content": {
                            "application/json": {
                                "schema": _obj(["status"], {"status": {"type": "string"}})
                            }
                        },
                    }
                },
            }
        },
        "/v1/power": {
            "post": _op(
                "Power a VM on, off (hard), install (boot action install, then on), reset or "
                "shutdown (ACPI)",
                _obj(
                    ["target", "host", "action", "result"],
                    {
                        "target": {"type": "string"},
                        "host": {"type": "string"},
                        "action": {"type": "string"},
                        "result": {"type": "string"},
                    },
                ),
                body=_obj(
                    ["target", "action"],
                    {"target": _TARGET, "action": {"type": "string", "enum": list(POWER_ACTIONS)}},
                ),
            )
        },
        "/v1/macs": {
            "get": _op(
                "The MACs and names of the nodes of the target's cluster (and their state)",
                _obj(
                    ["nodes"],
                    {
                        "nodes": {
                            "type": "array",
                            "items": _obj(
                                ["host", "macs", "frontend", "status"],
                                {
                                    "host": {"type": "string"},
                                    "macs": {"type": "array", "items": {"type": "string"}},
                                    "frontend": {"type": "boolean"},
                                    "status": {"type": "string", "nullable": True},
                                },
                            ),
                        }
                    },
                ),
                query=[
                    _TARGET_QUERY,
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["yes", "no"]},
                    },
                ],
            )
        },
        "/v1/isos": {
            "get": _op(
                "The CD-ROM images the target VM may use (its container's ISO directory)",
                _obj(["images"], {"images": {"type": "array", "items": {"type": "string"}}}),
                query=[_TARGET_QUERY],
            )
        },
        "/v1/cdrom": {
            "post": _op(
                "Put an image of the ISO directory in the VM's CD-ROM drive, or none, for its "
                "next start",
                _obj(
                    ["target", "host", "cdrom"],
                    {
                        "target": {"type": "string"},
                        "host": {"type": "string"},
                        "cdrom": {"type": "string", "nullable": True},
                    },
                ),
                body=_obj(
                    ["target", "cdrom"],
                    {
                        "target": _TARGET,
                        "cdrom": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 1024,
                            "description": "an image name from /v1/isos, or none",
                        },
                    },
                ),
            )
        },
        "/v1/console": {"get": _CONSOLE},
        "/v1/console/token": {
            "post": _op(
                "A web console token: single-use, valid 60 s, bound to this key, the target "
                "and the kind; kept in the Airboss's memory only",
                _obj(
                    ["token", "expires", "path"],
                    {
                        "token": {"type": "string"},
                        "expires": {"type": "integer", "description": "Unix time, seconds"},
                        "path": {"type": "string", "description": "the browser console page"},
                    },
                ),
                body=_obj(["target", "kind"], {"target": _TARGET, "kind": _KIND}),
            )
        },
    },
    "components": {
        "schemas": {"Error": _ERROR},
        "securitySchemes": {
            "httpSignature": {
                "type": "apiKey",
                "in": "header",
                "name": "Signature",
                "description": "RFC 9421 HTTP Message Signatures (with Signature-Input and "
                "Content-Digest); keyid is the key's OpenSSH SHA-256 fingerprint",
            }
        },
    },
}
