"""api/wire.py: requests parsed and refused as the Airboss always did, answers typed both ways."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightdeck.api import operations as ops
from flightdeck.api import wire

if TYPE_CHECKING:
    from decimal import Decimal  # a name `get_type_hints` cannot resolve at run time


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


# Answers: `encode` writes one encoder per type, and it must make exactly what `_plain` makes -----


def _dataclasses_in(tp: Any, found: dict[type, None]) -> None:
    """Every dataclass type `tp` mentions, itself included, in the order met."""
    for arg in typing.get_args(tp):
        _dataclasses_in(arg, found)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp not in found:
        found[tp] = None
        for hint in typing.get_type_hints(tp).values():
            _dataclasses_in(hint, found)


def _answer_types() -> list[type]:
    """The answer of every operation (and the health check's), and the dataclasses in them."""
    found: dict[type, None] = {}
    for op in (*ops.OPERATIONS, *ops.SESSION_OPERATIONS):
        if isinstance(op, ops.Operation):
            _dataclasses_in(op.answer, found)
    _dataclasses_in(ops.Health, found)
    return list(found)


ANSWER_TYPES = _answer_types()


class Colour(enum.Enum):
    RED = "red"


class Word(enum.StrEnum):
    """A str subclass: not a leaf by its exact type, though it is a str."""

    YES = "yes"


class Items(list[Any]):
    """A list subclass: `_plain` makes a plain list of it."""


@functools.cache
def plus(cls: type) -> type:
    """A subclass of the dataclass `cls` with one field more (`_plain` sends that field too)."""
    extra = ("extra", str, dataclasses.field(default="more"))
    frozen = cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    return dataclasses.make_dataclass(f"{cls.__name__}Plus", [extra], bases=(cls,), frozen=frozen)


@dataclass(frozen=True)
class Tree:
    """A type that contains itself (written as a string annotation)."""

    label: str
    children: list[Tree]


@dataclass(frozen=True)
class Loose:
    """Declarations without a shortcut: `_plain` for each."""

    colour: Colour
    counts: dict[str, int]
    anything: Any
    pair: tuple[int, str]
    either: ops.NodeInfo | int
    nested: list[list[str]]
    maybe: list[ops.JobLine] | None


@dataclass(frozen=True)
class Unresolved:
    """Hints that do not resolve at run time: the whole type goes to `_plain`."""

    amount: Decimal
    node: ops.NodeInfo


#: Any value whatever, whatever the declaration: leaves of every kind, values that are not
#: JSON, lists and list subclasses, declared dataclasses and a subclass of one.
ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4)
    | st.sampled_from([Colour.RED, Word.YES, (1, "a"), {"k": [1]}, b"x", 2j]),
    lambda inner: st.lists(inner, max_size=3)
    | st.lists(inner, max_size=3).map(Items)
    | st.builds(ops.NodeInfo, inner, inner, inner, inner)
    | st.builds(plus(ops.NodeInfo), inner, inner, inner, inner, inner)
    | st.builds(ops.JobLine, inner, inner, inner, inner, inner),
    max_leaves=8,
)  # fmt: skip


def values(tp: Any, odd: bool) -> st.SearchStrategy[Any]:
    """Values of the declared type `tp`, every field of a dataclass given (defaults too); with
    `odd`, anything at all in any field or item, at every depth, as often as a declared value,
    and near misses: a tuple or a list subclass for a list, a subclass for a dataclass."""

    def inside(tp: Any) -> st.SearchStrategy[Any]:
        declared = values(tp, odd)
        return declared | ANYTHING if odd else declared

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([values(t, odd) for t in typing.get_args(tp)])
    if origin is list:
        items = st.lists(inside(typing.get_args(tp)[0]), max_size=4)
        return items | items.map(tuple) | items.map(Items) if odd else items
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = {f.name: inside(hints[f.name]) for f in dataclasses.fields(tp)}
        built = st.builds(tp, **fields)
        return built | st.builds(plus(tp), **fields) if odd else built
    return ANYTHING if tp is Any else st.from_type(tp)


def same(got: Any, want: Any) -> bool:
    """Alike in every type, key order and leaf object (`==` alone takes True for 1, 1.0)."""
    if type(got) is not type(want):
        return False
    if type(want) is dict:
        return list(got) == list(want) and all(same(got[k], want[k]) for k in want)
    if type(want) is list:
        return len(got) == len(want) and all(map(same, got, want))
    return got is want


def test_every_answer_type_is_tested() -> None:
    names = {t.__name__ for t in ANSWER_TYPES}
    assert {"MacsResult", "NodeInfo", "AuditChain", "ChainEntry", "ChainHead", "JobReport",
            "JobLine", "JobInfo", "JobsResult", "Health"} <= names  # fmt: skip


@pytest.mark.parametrize("cls", ANSWER_TYPES, ids=lambda t: t.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_answers_encode_as_plain_does(cls: type, data: st.DataObject) -> None:
    answer = data.draw(values(cls, odd=False))
    got, want = wire.encode(answer), wire._plain(answer)
    assert same(got, want), (got, want)
    assert json.dumps(got) == json.dumps(want)


@pytest.mark.parametrize("cls", [*ANSWER_TYPES, Loose], ids=lambda t: t.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_values_not_as_declared_encode_as_plain_does(cls: type, data: st.DataObject) -> None:
    """A value whose type is not its declaration's (None, a bool for an int, an enum, a list
    subclass, a subclass of the declared dataclass, ...) comes out as `_plain` makes it."""
    answer = data.draw(values(cls, odd=True))
    got, want = wire.encode(answer), wire._plain(answer)
    assert same(got, want), (got, want)


def test_representative_answers_encode_as_plain_does() -> None:
    """Hand-built: empty lists, None, nested lists of dataclasses, and values not declared."""
    head = ops.ChainHead("c", 3, "h", 10, "sig")
    job = ops.JobInfo(1, "on", "done", "fe", 5, None, None)
    answers: list[Any] = [
        ops.MacsResult([]),
        ops.MacsResult([ops.NodeInfo("fe", [], True, None), ops.NodeInfo("c", ["a", "b"], False,
                                                                         "running")]),
        ops.AuditChain([], head),
        ops.AuditChain([ops.ChainEntry("c", 1, "t"), ops.ChainEntry("c", 2, "t", accepted=True)],
                       head, head),
        ops.JobReport(job, [ops.JobLine(1, "fe", True, "ok", 0)], False),
        ops.JobsResult([job, job]),
        ops.MacsResult([plus(ops.NodeInfo)("fe", ["a"], True, None)]),  # a subclass of NodeInfo
        ops.MacsResult(Items([ops.NodeInfo("fe", Items(["a"]), 1, Word.YES)])),  # type: ignore
        ops.MacsResult([ops.NodeInfo(Colour.RED, [[ops.NodeInfo("x", [], False, None)]], True,
                                     head)]),  # type: ignore[arg-type]
        ops.AuditChain(None, None, [head]),  # type: ignore[arg-type]
        ops.JobInfo(True, "on", "done", "fe", 1.5, False, None),  # type: ignore[arg-type]
        ops.IsosResult(("a", "b")),  # type: ignore[arg-type]
        Tree("root", [Tree("a", []), Tree("b", [Tree("c", [])])]),
        Loose(Colour.RED, {"a": 1}, [head], (1, "x"), ops.NodeInfo("n", ["m"], False, None),
              [["a"], []], [ops.JobLine(1, "n", True, "m", 2)]),
        Loose(Colour.RED, {}, None, (2, "y"), 7, [], None),
        Unresolved(1, ops.NodeInfo("n", ["m"], False, None)),  # type: ignore[arg-type]
    ]  # fmt: skip
    for answer in answers:
        got, want = wire.encode(answer), wire._plain(answer)
        assert same(got, want), (answer, got, want)
    assert wire.encode(ops.MacsResult([ops.NodeInfo("fe", ["a"], True, None)])) == {
        "nodes": [{"host": "fe", "macs": ["a"], "frontend": True, "status": None}]
    }


def test_the_encoding_shares_no_list_with_the_answer() -> None:
    """As `_plain`: the JSON is new lists (the dashboard keeps the last one to compare)."""
    macs = ["a"]
    answer = ops.MacsResult([ops.NodeInfo("fe", macs, True, None)])
    got = wire.encode(answer)
    assert got["nodes"] is not answer.nodes and got["nodes"][0]["macs"] is not macs
