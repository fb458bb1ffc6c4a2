"""The Airboss's JSON answers (`Answer`): orjson's bytes, the standard library's JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from flightdeck.airboss.app import Answer

#: What `wire.encode` makes: objects of text keys over text, integers, booleans and null
#: (text of every code point: names, MACs, messages that quote a client's input).
_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
_WIRE = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(_WIRE)
def test_the_same_bytes_as_starlettes_for_wire_values(value: Any) -> None:
    assert Answer(value).body == JSONResponse(value).body


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_is_the_same_number(number: float) -> None:
    assert json.loads(bytes(Answer({"n": number}).body)) == {"n": number}


def test_beyond_orjsons_range_the_standard_library_writes_it() -> None:
    huge = {"bytes": 2**70, "nodes": [{"host": "compute-0-0"}]}
    assert Answer(huge).body == JSONResponse(huge).body
    assert json.loads(bytes(Answer(huge).body))["bytes"] == 2**70


def test_a_nan_is_null_and_the_headers_are_json() -> None:
    answer = Answer({"load": math.nan}, status_code=409, headers={"Audit-Id": "7"})
    assert answer.body == b'{"load":null}'
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == str(len(answer.body))
    assert answer.headers["audit-id"] == "7"
