"""Web console tokens: single use, 60 s, bound to (key, target, kind); and their operation."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from flightdeck.airboss.tokens import TOKEN_LENGTH, TokenRejected, TokenStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _code(store: TokenStore, token: str, target: str | None, kind: str) -> str:
    with pytest.raises(TokenRejected) as refused:
        store.redeem(token, target, kind)
    return refused.value.code


def test_a_token_is_used_once_for_its_target_and_kind() -> None:
    clock = Clock()
    store = TokenStore(clock=clock)
    token, grant = store.issue("SHA256:k", "52:54:00:00:00:01", "vnc")
    assert len(token) == TOKEN_LENGTH and grant.expires == clock.now + 60
    assert store.redeem(token, None, "vnc").keyid == "SHA256:k"
    assert _code(store, token, None, "vnc") == "token-unknown"  # used
    assert len(store) == 0


def test_expired_wrong_target_or_kind_are_refused_and_burnt() -> None:
    clock = Clock()
    store = TokenStore(clock=clock)
    token, _ = store.issue("SHA256:k", "vm-1", "serial")
    clock.now += 60.5
    with pytest.raises(TokenRejected) as refused:
        store.redeem(token, "vm-1", "serial")
    assert refused.value.code == "token-expired" and refused.value.keyid == "SHA256:k"
    token, _ = store.issue("SHA256:k", "vm-1", "serial")
    assert _code(store, token, "vm-2", "serial") == "token-mismatch"
    assert _code(store, token, "vm-1", "serial") == "token-unknown"  # tried once: gone
    token, _ = store.issue("SHA256:k", "vm-1", "serial")
    assert _code(store, token, "vm-1", "vnc") == "token-mismatch"
    assert _code(store, "x" * TOKEN_LENGTH, None, "vnc") == "token-unknown"
    assert _code(store, "short", None, "vnc") == "token-unknown"


def test_of_concurrent_redemptions_exactly_one_wins() -> None:
    store = TokenStore()
    token, _ = store.issue("SHA256:k", "vm-1", "vnc")
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        try:
            store.redeem(token, "vm-1", "vnc")
            wins.append(1)
        except TokenRejected:
            pass

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins == [1]


def test_the_table_is_bounded_and_forgets_expired_tokens() -> None:
    clock = Clock()
    store = TokenStore(clock=clock, max_tokens=3)
    tokens = [store.issue("k", f"vm-{i}", "vnc")[0] for i in range(4)]
    assert len(store) == 3
    assert _code(store, tokens[0], None, "vnc") == "token-unknown"  # the oldest made room
    clock.now += 61
    store.issue("k", "vm-9", "vnc")
    assert len(store) == 1


def test_the_token_operation_is_signed_authorised_and_audited(
    site: Any, alice: Any, bob: Any
) -> None:
    app = site.app()
    vm = site.mac(site.cluster_a[1])
    body = json.dumps({"target": vm, "kind": "serial"}).encode()
    ok = app.request("POST", "/v1/console/token", body=body,
                     headers=alice.sign("POST", "/v1/console/token", body=body))
    assert ok.status == 200, ok.body
    answer = ok.json
    assert answer["path"] == f"/console/?token={answer['token']}&kind=serial"
    row = site.last()
    assert row.accepted and row.operation == "console token serial" and row.target == vm
    assert answer["token"] not in (row.reason or "")  # the token itself is never logged
    grant = app.app.state.airboss.tokens.redeem(answer["token"], vm, "serial")
    assert grant.keyid == alice.keyid

    refused = app.request("POST", "/v1/console/token", body=body,
                          headers=bob.sign("POST", "/v1/console/token", body=body))
    assert (refused.status, refused.code) == (403, "forbidden")
    assert site.last().reason.startswith("forbidden: out-of-scope")
    bad = json.dumps({"target": vm, "kind": "spice"}).encode()
    refused = app.request("POST", "/v1/console/token", body=bad,
                          headers=alice.sign("POST", "/v1/console/token", body=bad))
    assert (refused.status, refused.code) == (400, "invalid-request")
    unsigned = app.request("POST", "/v1/console/token", body=body)
    assert (unsigned.status, unsigned.code) == (401, "missing-signature")


def test_a_plain_get_of_the_console_is_told_to_upgrade(site: Any, alice: Any) -> None:
    app = site.app()
    query = f"target={site.mac(site.cluster_a[1])}&kind=vnc"
    answer = app.request("GET", "/v1/console", query=query,
                         headers=alice.sign("GET", "/v1/console", query))
    assert (answer.status, answer.code) == (400, "invalid-request")
    assert "WebSocket" in answer.json["message"]
