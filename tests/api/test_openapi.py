"""The OpenAPI document is generated from the declarations; the committed copy matches it."""

from __future__ import annotations

import json

import pytest

from flightdeck.api import openapi
from flightdeck.api.operations import OPERATIONS, POWER_ACTIONS


def test_the_committed_document_is_the_generated_one(regenerate_golden: bool) -> None:
    """Regenerate on purpose with `pytest --regenerate-golden` or `airboss openapi --write`."""
    fresh = openapi.render()
    if regenerate_golden:
        openapi.COMMITTED.write_text(fresh, encoding="utf-8")
    if openapi.COMMITTED.read_text(encoding="utf-8") != fresh:
        pytest.fail("docs/openapi.json is stale: run 'airboss openapi --write' and commit it")


def test_every_declared_operation_is_in_the_document() -> None:
    doc = openapi.document()
    for op in OPERATIONS:
        assert op.method.lower() in doc["paths"][op.path], op.path
    power = doc["paths"]["/v1/power"]["post"]
    body = power["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["target", "action"]
    assert body["properties"]["action"]["enum"] == list(POWER_ACTIONS)
    assert body["additionalProperties"] is False
    answer = power["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["required"] == ["target", "host", "action", "result"]
    json.dumps(doc)  # plain JSON
