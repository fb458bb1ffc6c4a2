"""Schemathesis against the Airboss's own OpenAPI document, on a real process: never a 5xx.

Two passes over every operation, bounded (a few dozen examples each, so CI stays fast):

* as an outsider: the generated requests are sent as they are (unsigned, or with generated
  junk in the signature headers): every answer must be a documented refusal in JSON;
* as an owner: each generated request is signed with alice's key just before it leaves (a
  `requests` auth hook signs the final path, query and body), so generated targets, actions,
  images and query strings reach the validation and authorisation code behind the signature.

Checks: no server error, documented status codes, content type, response schema.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402

CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]
EXAMPLES = 30


class Sign(requests.auth.AuthBase):  # type: ignore[misc]
    """Sign the request exactly as it will be sent (path, query, body after encoding)."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner

    def __call__(self, r: Any) -> Any:
        url = urllib.parse.urlsplit(r.url)
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        for name in ("Signature", "Signature-Input", "Content-Digest"):
            r.headers.pop(name, None)
        r.headers.update(self.owner.sign(r.method, url.path or "/", url.query, body))
        return r


def operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in found} == {
        "GET /health", "POST /v1/power", "GET /v1/macs", "GET /v1/isos", "POST /v1/cdrom",
        "GET /v1/console", "POST /v1/console/token", "POST /v1/cluster/power", "GET /v1/jobs",
        "GET /v1/job", "POST /v1/token/revoke", "GET /v1/audit",
        "GET /v1/nodes", "POST /v1/dashboard/link"}
    return found


def fuzz(url: str, session: Any, check: Any) -> int:
    """Every operation, positive and negative examples; how many requests were sent."""
    sent = 0
    for op in operations(url):
        modes = [GenerationMode.POSITIVE]
        if op.label != "GET /health":  # nothing in it can be made invalid
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), derandomize=True)
            def run(case: Any) -> None:
                nonlocal sent
                response = case.call_and_validate(base_url=url, session=session,
                                                  checks=CHECKS)
                sent += 1
                assert response.status_code < 500, (case.method, case.path, response.text)
                assert "Traceback" not in response.text
                check(case, response)

            run()
    return sent


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_outsiders_get_documented_refusals(site: Any) -> None:
    srv = site.server("--rate", "100000", "--burst", "100000", "--set", "client_rate=100000",
                      "--set", "client_burst=100000")

    def refused(case: Any, response: Any) -> None:
        if case.path.startswith("/v1/"):
            assert response.status_code in (400, 401, 404, 405, 413, 431), response.text
            assert response.json()["error"]

    assert fuzz(srv.url, requests.Session(), refused) > 100


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_signed_requests_never_break_the_airboss(site: Any) -> None:
    srv = site.server("--rate", "100000", "--burst", "100000", "--set", "client_rate=100000",
                      "--set", "client_burst=100000")
    session = requests.Session()
    session.auth = Sign(site.owners["alice"])
    statuses: set[int] = set()

    def seen(_case: Any, response: Any) -> None:
        statuses.add(response.status_code)

    assert fuzz(srv.url, session, seen) > 100
    # Behind the signature: validation (400) and authorisation (403) were reached.
    assert {400, 403} <= statuses, statuses
