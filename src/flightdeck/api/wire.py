"""The owner API's contract: field kinds, the target rule, and typed JSON both ways.

A request or an answer is a frozen dataclass. Each request field carries its `Kind` (how its
wire text is checked and converted, and its JSON schema) as dataclass field metadata; a field
without a default is required. A GET request's fields travel in the query string, a POST's in
a JSON object body whose values are all strings. Answers are JSON objects built from their
dataclass (nested dataclasses, lists, `None`), and decoded back into it by the client.

The checks and their messages are the Airboss's first 400s (`invalid-request`), in a fixed
order: the body's or query's shape (unknown, repeated, missing names; non-string values), then
each field's own check in declared order. The target is checked apart (`check_target`, 400
`invalid-target`) only when it is about to be looked up, so that the audit row names it.

Standard library only: `pilot` on a laptop uses this module as the Airboss does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import keyword
import re
import types
import typing
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flightdeck.errors import FlightdeckError, UserError

T = TypeVar("T")

#: Metadata key of a request field's `Kind`, and of any field's description.
KIND = "flightdeck.kind"
DESCRIPTION = "flightdeck.description"
#: Largest number of query parameters read (more is refused as malformed).
MAX_QUERY_FIELDS = 16
#: Longest target accepted (a host name's limit); anything longer never reaches the database.
MAX_TARGET = 253
#: What a target may look like: a MAC or a host name.
TARGET_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_TARGET_RE = re.compile(TARGET_PATTERN.strip("^$"))
TRUE_WORDS = frozenset({"yes", "y", "true", "on", "1"})
FALSE_WORDS = frozenset({"no", "n", "false", "off", "0"})


class BadRequest(UserError):
    """The request's parameters are not what the operation takes (400 `invalid-request`)."""

    code = "invalid-request"


class InvalidTarget(UserError):
    """The target string is not a MAC or a host name (checked before any lookup)."""

    code = "invalid-target"


class AirbossError(FlightdeckError):
    """The Airboss refused or failed a request, as the client sees it: `code` is its stable
    error code (`bad-response` when the answer is not what the operation declares)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def error_of(status: int, data: Any) -> AirbossError:
    """The `AirbossError` of a refusal's JSON (`{"error": code, "message": text}`)."""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return AirbossError(data["error"], str(data.get("message", "")), status)
    return AirbossError("bad-response", f"the Airboss answered HTTP {status} without JSON", status)


def check_target(text: object) -> str:
    """`text` if it can be a MAC or a host name; `InvalidTarget` otherwise (no lookup done)."""
    if not isinstance(text, str) or not text:
        raise InvalidTarget("target must be a MAC address or a host name")
    if len(text) > MAX_TARGET:
        raise InvalidTarget(f"target is {len(text)} characters long: at most {MAX_TARGET}")
    if not _TARGET_RE.fullmatch(text):
        raise InvalidTarget(
            "target must be a MAC address or a host name (letters, digits, '.', '-', '_', ':')"
        )
    return text


# Field kinds ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """How one request field travels: its JSON schema, its check, its text in a query."""

    schema: Mapping[str, Any]
    #: (wire text, field name) -> value; raises BadRequest. None: the text is the value.
    parse: Callable[[str, str], Any] | None = None
    #: value -> the text sent in a query, or None to leave the parameter out.
    show: Callable[[Any], str | None] = str


def _parsed(kind: Kind, text: str, name: str) -> Any:
    return kind.parse(text, name) if kind.parse is not None else text


TARGET_SCHEMA: Mapping[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TARGET,
    "pattern": TARGET_PATTERN,
    "description": "the VM: one of its MACs (as the virtual frontend knows it) or its "
    "physical-side name (e.g. hosted-vm-0-0-0)",
    "example": "76:77:6e:40:00:00",
}


def target(*, description: str | None = None, optional: bool = False) -> Any:
    """The VM a request is about (checked by `check_target` when it is looked up)."""
    meta: dict[str, Any] = {KIND: Kind(TARGET_SCHEMA)}
    if description:
        meta[DESCRIPTION] = description
    if optional:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(metadata=meta)


def choice(values: Sequence[str], *, description: str | None = None) -> Any:
    """One word of `values` (the first refusal names them all)."""
    allowed = tuple(values)

    def parse(text: str, name: str) -> str:
        if text not in allowed:
            raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
        return text

    meta: dict[str, Any] = {KIND: Kind({"type": "string", "enum": list(allowed)}, parse)}
    if description:
        meta[DESCRIPTION] = description
    return dataclasses.field(metadata=meta)


def _flag(text: str, name: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BadRequest(f"{name}={text!r}: use yes or no")


def flag(*, description: str | None = None, default: bool = False) -> Any:
    """A yes/no parameter, `default` when absent; sent only when it is not the default."""

    def show(v: bool) -> str | None:
        return None if v == default else ("yes" if v else "no")

    kind = Kind({"type": "string", "enum": ["yes", "no"]}, _flag, show)
    meta: dict[str, Any] = {KIND: kind}
    if description:
        meta[DESCRIPTION] = description
    return dataclasses.field(default=default, metadata=meta)


def integer(
    minimum: int, maximum: int, *, description: str | None = None, optional: bool = False
) -> Any:
    """A whole number in `minimum..maximum`, written in decimal digits."""
    digits = len(str(maximum))

    def parse(text: str, name: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= digits):
            raise BadRequest(f"{name} must be a whole number from {minimum} to {maximum}")
        value = int(text)
        if not minimum <= value <= maximum:
            raise BadRequest(f"{name} must be a whole number from {minimum} to {maximum}")
        return value

    schema = {"type": "string", "pattern": f"^[0-9]{{1,{digits}}}$"}
    meta: dict[str, Any] = {KIND: Kind(schema, parse)}
    if description:
        meta[DESCRIPTION] = description
    if optional:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(metadata=meta)


def text(
    *,
    min_length: int | None = None,
    max_length: int | None = None,
    description: str | None = None,
    optional: bool = False,
) -> Any:
    """Free text, bounded (what it means is the service's business)."""
    schema: dict[str, Any] = {"type": "string"}
    if min_length is not None:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    meta: dict[str, Any] = {KIND: Kind(schema)}
    if description:
        meta[DESCRIPTION] = description
    if optional:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(metadata=meta)


def described(description: str) -> Any:
    """An answer field with a description in the schema."""
    return dataclasses.field(metadata={DESCRIPTION: description})


def kind_of(field: dataclasses.Field[Any]) -> Kind:
    kind = field.metadata.get(KIND)
    if not isinstance(kind, Kind):
        raise TypeError(f"request field {field.name} declares no wire kind")
    return kind


def required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


# Requests: the Airboss's side -----------------------------------------------------------------


def parse_query(raw: str, allowed: Sequence[str], needed: Sequence[str]) -> dict[str, str]:
    """The query's parameters: only `allowed` names, each once, `needed` ones present."""
    try:
        pairs = urllib.parse.parse_qsl(
            raw, keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=MAX_QUERY_FIELDS
        )
    except ValueError:
        raise BadRequest("the query string is malformed") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise BadRequest(f"unknown query parameter {name[:40]!r}")
        if name in out:
            raise BadRequest(f"query parameter {name!r} is given twice")
        out[name] = value
    missing = sorted(set(needed) - set(out))
    if missing:
        raise BadRequest(f"the query needs {missing[0]}=")
    return out


def parse_body(raw: bytes, allowed: Sequence[str], needed: Sequence[str]) -> dict[str, str]:
    """A JSON object of strings: only `allowed` fields, `needed` ones present."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(str(k) for k in set(data) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0][:40]!r}")
    missing = sorted(set(needed) - set(data))
    if missing:
        raise BadRequest(f"the body needs the field {missing[0]!r}")
    for name, value in data.items():
        if not isinstance(value, str):
            raise BadRequest(f"field {name!r} must be a string")
    return data


def decode_request(cls: type[T], method: str, query: str, body: bytes) -> T:
    """The request `cls` from a GET's query or a POST's body; BadRequest when it is not one."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields]
    needed = [f.name for f in fields if required(f)]
    if method == "GET":
        if body:
            raise BadRequest("this operation takes no body")
        raw = parse_query(query, names, needed)
    else:
        raw = parse_body(body, names, needed)
    values = {f.name: _parsed(kind_of(f), raw[f.name], f.name) for f in fields if f.name in raw}
    return cls(**values)


# Requests: the client's side ------------------------------------------------------------------


def request_query(request: object) -> dict[str, str]:
    """A GET request's query parameters, in declared order (unset ones left out)."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(request):  # type: ignore[arg-type]
        value = getattr(request, f.name)
        if value is None:
            continue
        shown = kind_of(f).show(value)
        if shown is not None:
            out[f.name] = shown
    return out


def request_body(request: object) -> bytes:
    """A POST request's JSON body, compact, fields in declared order, every value as its
    wire text (unset ones, and flags at their default, left out)."""
    return json.dumps(request_query(request), separators=(",", ":")).encode()


# Answers --------------------------------------------------------------------------------------


#: Types sent as they are (the leaves of an answer: most of what `_plain` sees).
_LEAVES = frozenset({str, int, float, bool, type(None)})


@functools.cache
def _field_names(cls: Any) -> tuple[str, ...] | None:
    """The field names of a dataclass type, in order; None for any other type."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(f.name for f in dataclasses.fields(cls))


def _plain(value: Any) -> Any:
    """`value` as JSON types: dataclasses as objects, lists as arrays, the rest as is. By exact
    type first (a 64-node answer has ~300 values; asking `is_dataclass` of each cost ~0.5 ms)."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    names = _field_names(kind)  # type: ignore[arg-type]
    if names is None:
        return value
    return {name: _plain(getattr(value, name)) for name in names}


def _is_leaf(tp: Any) -> bool:
    """Whether the declared type `tp` admits leaves only (one of `_LEAVES`, or a union of them)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return all(_is_leaf(t) for t in typing.get_args(tp))
    return isinstance(tp, type) and tp in _LEAVES


def _converted(tp: Any, var: str, env: dict[str, Any], outer: tuple[type, ...], depth: int) -> str:
    """A Python expression of what `_plain` makes of the local `var`, a value declared `tp`.

    The declaration only picks a shortcut: each is taken when the value's exact type is the one
    it was written for, and the value goes to `p` (`_plain`) otherwise. So a value that does not
    match its declaration (None where a dataclass is declared, a bool for an int, an enum, a list
    subclass) comes out exactly as `_plain` makes it. Objects the code needs are put in `env`."""
    plain = f"p({var})"
    if _is_leaf(tp):
        return f"{var} if type({var}) in L else {plain}"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        # `X | None`: the shortcut for X; None, rarer, goes to `_plain` (which keeps it).
        others = [t for t in args if t is not type(None)]
        return _converted(others[0], var, env, outer, depth) if len(others) == 1 else plain
    if origin is list and len(args) == 1:
        item = f"x{depth}"
        each = _converted(args[0], item, env, outer, depth + 1)
        if each == f"p({item})":
            return plain
        return f"[{each} for {item} in {var}] if type({var}) is list else {plain}"
    if isinstance(tp, type) and _field_names(tp) is not None and tp not in outer:
        n = len(env)
        env[f"t{n}"], env[f"e{n}"] = tp, _compiled(tp, outer)
        return f"e{n}({var}) if type({var}) is t{n} else {plain}"
    return plain  # Any, dicts, enums, a type that refers to itself, ...


def _compiled(cls: type, outer: tuple[type, ...] = ()) -> Callable[[Any], Any]:
    """A function that does what `_plain` does to an instance of exactly `cls`, written out from
    its declared field types (as `dataclasses` writes `__init__`): no call or lookup per leaf, so
    a 51-node answer takes a fraction of `_plain`'s ~300 calls. `outer`: the types being written
    (one that contains itself is left to `_plain` inside). `_plain` itself where the hints do not
    resolve."""
    names = _field_names(cls)
    if names is None or not all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
        return _plain
    try:
        hints = typing.get_type_hints(cls)  # the defining module's names (string annotations)
    except Exception:  # e.g. a name imported for type checking only: `_plain` is exact anyway
        return _plain
    env: dict[str, Any] = {"L": _LEAVES, "p": _plain, "type": type}
    inner = (*outer, cls)
    lines = ["    def encode(o):"]
    lines += [f"        v{i} = o.{name}" for i, name in enumerate(names)]
    lines.append("        return {")
    for i, name in enumerate(names):
        value = _converted(hints.get(name, Any), f"v{i}", env, inner, 1)
        lines.append(f"            {name!r}: {value},")
    lines += ["        }", "    return encode"]
    source = "\n".join([f"def make({', '.join(env)}):", *lines])
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<wire encoder of {cls.__qualname__}>", "exec"), namespace)
    encoder = namespace["make"](**env)
    encoder.__qualname__ = encoder.__name__ = f"encode_{cls.__name__}"
    return cast(Callable[[Any], Any], encoder)


@functools.cache
def _encoder(kind: Any) -> Callable[[Any], Any]:
    """What encodes a value of exactly the type `kind` (`_plain` for anything not a dataclass)."""
    return _compiled(kind)


def encode(answer: object) -> dict[str, Any]:
    """An answer as the JSON object sent (field order kept): what `_plain` makes of it, by the
    encoder written for its type (the Airboss encodes every answer; `_plain` was a top cost)."""
    out = _encoder(type(answer))(answer)  # type: ignore[arg-type]
    assert isinstance(out, dict), "an answer is a dataclass"
    return out


def _bad(what: str) -> AirbossError:
    return AirbossError("bad-response", f"the Airboss's answer has {what}")


Decoder = Callable[[Any, str], Any]


@functools.cache
def _decoder(tp: Any) -> Decoder:
    """How to check and convert a JSON value into `tp` (worked out once per type: the hints
    of a class cost more to evaluate than a whole answer to convert)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [o for o in typing.get_args(tp) if o is not type(None)]
        some = _decoder(inner)
        return lambda v, where: None if v is None else some(v, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        each = _decoder(item)

        def listed(v: Any, where: str) -> Any:
            if not isinstance(v, list):
                raise _bad(f"no list at {where}")
            return [each(x, f"{where}[]") for x in v]

        return listed
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = typing.get_type_hints(tp)
        parts = [(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(tp)]
        cls = tp

        def obj(v: Any, where: str) -> Any:
            if not isinstance(v, dict):
                raise _bad(f"no object at {where}")
            values = {}
            for name, part in parts:
                if name not in v:
                    raise _bad(f"no {where}.{name}")
                values[name] = part(v[name], f"{where}.{name}")
            return cls(**values)

        return obj
    if tp in (bool, int, str):

        def simple(v: Any, where: str) -> Any:
            # bool is an int in Python, not in JSON: neither stands for the other.
            if type(v) is not tp:
                raise _bad(f"a bad value at {where}")
            return v

        return simple
    raise TypeError(f"no JSON decoder for {tp!r}")


def decode(cls: type[T], data: Any, where: str = "answer") -> T:
    """The answer `cls` from decoded JSON (names it does not declare are ignored)."""
    out: T = _decoder(cast(Any, cls))(data, where)
    return out


# Schemas --------------------------------------------------------------------------------------


def _schema_of(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [o for o in typing.get_args(tp) if o is not type(None)]
        return {**_schema_of(inner), "nullable": True}
    if origin is list:
        (item,) = typing.get_args(tp)
        return {"type": "array", "items": _schema_of(item)}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return answer_schema(tp)
    simple = {str: "string", int: "integer", bool: "boolean"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"no JSON schema for {tp!r}")


def answer_schema(cls: type[Any]) -> dict[str, Any]:
    """The JSON schema of an answer dataclass: every field required, nothing else allowed."""
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        schema = _schema_of(hints[f.name])
        if DESCRIPTION in f.metadata:
            schema["description"] = f.metadata[DESCRIPTION]
        props[f.name] = schema
    return {
        "type": "object",
        "required": list(props),
        "properties": props,
        "additionalProperties": False,
    }


def _property(field: dataclasses.Field[Any]) -> dict[str, Any]:
    schema = dict(kind_of(field).schema)
    if DESCRIPTION in field.metadata:
        schema["description"] = field.metadata[DESCRIPTION]
    return schema


def body_schema(cls: type[Any]) -> dict[str, Any]:
    """The JSON schema of a POST request's body."""
    fields = dataclasses.fields(cls)
    return {
        "type": "object",
        "required": [f.name for f in fields if required(f)],
        "properties": {f.name: _property(f) for f in fields},
        "additionalProperties": False,
    }


def query_parameters(cls: type[Any]) -> list[dict[str, Any]]:
    """The OpenAPI query parameters of a GET request (descriptions on the parameter)."""
    out = []
    for f in dataclasses.fields(cls):
        param: dict[str, Any] = {"name": f.name, "in": "query", "required": required(f)}
        param["schema"] = dict(kind_of(f).schema)
        if DESCRIPTION in f.metadata:
            param["description"] = f.metadata[DESCRIPTION]
        out.append(param)
    return out
