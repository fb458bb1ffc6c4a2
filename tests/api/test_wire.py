"""api/wire.py: requests parsed and refused as the Airboss always did, answers typed both ways."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from flightdeck.api import operations as ops
from flightdeck.api import wire


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_a_post_body_becomes_its_request() -> None:
    req = wire.decode_request(ops.PowerRequest, "POST", "", body(target="m", action="on"))
    assert req == ops.PowerRequest("m", "on")
    cd = wire.decode_request(ops.CdromRequest, "POST", "ignored=1", body(target="m", cdrom="none"))
    assert cd.clears and cd.cdrom == "none"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "the body must be a JSON object"),
        (b"[1]", "the body must be a JSON object"),
        (b"[" * 100_000, "the body must be a JSON object"),
        (body(target="m", action="on", colour="red"), "unknown field 'colour'"),
        (body(target="m"), "the body needs the field 'action'"),
        (body(action="on"), "the body needs the field 'target'"),
        (body(target=7, action="on"), "field 'target' must be a string"),
        (body(target="m", action="explode"), "action must be one of on, off, install, reset, "
         "shutdown"),
    ],
)
def test_bad_bodies_are_refused_with_the_first_problem(raw: bytes, message: str) -> None:
    with pytest.raises(wire.BadRequest) as caught:
        wire.decode_request(ops.PowerRequest, "POST", "", raw)
    assert caught.value.message == message and caught.value.code == "invalid-request"


def test_a_get_query_becomes_its_request() -> None:
    assert wire.decode_request(ops.MacsRequest, "GET", "target=a%3Ab", b"") == ops.MacsRequest(
        "a:b", False
    )
    for word, value in (("yes", True), ("ON", True), ("no", False), ("0", False)):
        req = wire.decode_request(ops.MacsRequest, "GET", f"target=x&status={word}", b"")
        assert req.status is value


@pytest.mark.parametrize(
    ("query", "raw", "message"),
    [
        ("target=x", b"{}", "this operation takes no body"),
        ("target=x&&", b"", "the query string is malformed"),
        ("&".join(f"p{i}=1" for i in range(17)), b"", "the query string is malformed"),
        ("target=x&colour=red", b"", "unknown query parameter 'colour'"),
        ("target=x&target=y", b"", "query parameter 'target' is given twice"),
        ("status=yes", b"", "the query needs target="),
        ("target=x&status=perhaps", b"", "status='perhaps': use yes or no"),
    ],
)
def test_bad_queries_are_refused(query: str, raw: bytes, message: str) -> None:
    with pytest.raises(wire.BadRequest, match=message):
        wire.decode_request(ops.MacsRequest, "GET", query, raw)


@pytest.mark.parametrize(
    "request_",
    [
        ops.PowerRequest("76:77:6e:40:00:02", "install"),
        ops.MacsRequest("frontend-0-0-0", True),
        ops.MacsRequest("frontend-0-0-0", False),
        ops.IsosRequest("hosted-vm-0-0-0"),
        ops.CdromRequest("hosted-vm-0-0-0", "debian 12.iso"),
        ops.TokenRequest("hosted-vm-0-0-0", "serial"),
        ops.ConsoleRequest(target="hosted-vm-0-0-0", kind="vnc"),
    ],
)
def test_what_the_client_sends_the_airboss_reads_back(request_: Any) -> None:
    """One declaration, both ends: the client's encoding parses to the same request."""
    op = next(o for o in ops.OPERATIONS if o.request is type(request_))
    if op.method == "GET":
        import urllib.parse

        query = urllib.parse.urlencode(wire.request_query(request_), quote_via=urllib.parse.quote)
        assert wire.decode_request(op.request, "GET", query, b"") == request_
    else:
        sent = wire.request_body(request_)
        assert wire.decode_request(op.request, "POST", "", sent) == request_


def test_the_power_body_is_the_documented_one() -> None:
    """docs/airboss.md's example body, byte for byte (the signature covers its digest)."""
    sent = wire.request_body(ops.PowerRequest("76:77:6e:40:00:02", "on"))
    assert sent == b'{"target":"76:77:6e:40:00:02","action":"on"}'
    assert wire.request_query(ops.MacsRequest("x", False)) == {"target": "x"}
    assert wire.request_query(ops.MacsRequest("x", True)) == {"target": "x", "status": "yes"}


def test_answers_decode_to_their_types_and_refuse_anything_else() -> None:
    data = {"nodes": [{"host": "fe", "macs": ["a"], "frontend": True, "status": None,
                       "extra": "ignored"}]}
    got = wire.decode(ops.MacsResult, data)
    assert got == ops.MacsResult([ops.NodeInfo("fe", ["a"], True, None)])
    assert wire.encode(got) == {"nodes": [{"host": "fe", "macs": ["a"], "frontend": True,
                                           "status": None}]}
    for bad in ({}, {"nodes": "x"}, {"nodes": [{"host": 1, "macs": [], "frontend": True,
                                                "status": None}]},
                {"nodes": [{"host": "h", "macs": [], "frontend": 1, "status": None}]}, []):
        with pytest.raises(wire.AirbossError) as caught:
            wire.decode(ops.MacsResult, bad)
        assert caught.value.code == "bad-response"
    with pytest.raises(wire.AirbossError):
        wire.decode(ops.ConsoleToken, {"token": "t", "expires": True, "path": "/"})


def test_refusals_become_airboss_errors() -> None:
    err = wire.error_of(403, {"error": "forbidden", "message": "not yours"})
    assert (err.code, err.message, err.status) == ("forbidden", "not yours", 403)
    assert wire.error_of(502, None).code == "bad-response"


@pytest.mark.parametrize(
    "target", ["76:77:6e:40:00:02", "hosted-vm-0-0-0", "vm-fe.example.org", "a_b", "rack0"]
)
def test_targets_accepted(target: str) -> None:
    assert wire.check_target(target) == target


@pytest.mark.parametrize("target", ["", " x", "x y", "a/b", "a'b", "a;b", "%", "é", "a" * 254, 7])
def test_targets_refused(target: object) -> None:
    with pytest.raises(wire.InvalidTarget):
        wire.check_target(target)


def test_every_request_field_declares_its_wire_kind() -> None:
    for op in ops.OPERATIONS:
        for field in dataclasses.fields(op.request):
            assert isinstance(wire.kind_of(field), wire.Kind), (op.path, field.name)
