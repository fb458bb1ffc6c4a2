"""Airboss replicas: several `airboss serve` processes on one PostgreSQL (issue 20).

What is shared is what the database holds: the keys, the nonces of accepted signatures (so a
request replayed to another replica is refused), revocations, jobs and the audit chain. What
is not: each replica's rate limits, console session counts, web console tokens and dashboard
sessions live in its own memory (docs/airboss.md, "Replicas", says so and how to pin). Each
test here sends to the replicas in turn, as a TCP load balancer would.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import signal
import threading
from typing import Any

import pytest

from flightdeck.pilot.client import AirbossClient

pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


def send(address: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
         ) -> tuple[int, dict[str, str], bytes]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def test_requests_alternate_and_a_replay_to_the_other_replica_is_refused(
    site: Any, alice: Any
) -> None:
    a, b = site.server(), site.server()
    fe = site.mac(site.cluster_a[0])
    for i in range(6):  # a load balancer's round robin
        nodes = AirbossClient(alice.key, (a, b)[i % 2].address).macs(fe)
        assert [n.host for n in nodes] == site.cluster_a
    body = json.dumps({"target": site.cluster_a[1], "action": "on"}).encode()
    headers = alice.sign("POST", "/v1/power", body=body)
    status, _h, raw = send(a.address, "POST", "/v1/power", headers, body)
    assert status == 200, raw
    for replica in (b, a):  # the same bytes again, to either replica
        status, _h, raw = send(replica.address, "POST", "/v1/power", headers, body)
        assert (status, json.loads(raw)["error"]) == (401, "replay"), raw
    refused = [r for r in site.audit(3) if not r.accepted]
    assert len(refused) == 2 and all(r.reason.startswith("replay") for r in refused)


def test_rate_limits_and_web_tokens_are_per_replica_as_documented(site: Any, alice: Any) -> None:
    a = site.server("--rate", "0.1", "--burst", "2")
    b = site.server("--rate", "0.1", "--burst", "2")
    fe = site.mac(site.cluster_a[0])
    for replica in (a, b):  # each replica counts its own: 2 + 2 pass
        client = AirbossClient(alice.key, replica.address)
        client.macs(fe)
        client.macs(fe)
    with pytest.raises(Exception, match="too many requests"):
        AirbossClient(alice.key, a.address).macs(fe)
    # A web console token (or a dashboard link) works on the replica that issued it only.
    token = AirbossClient(alice.key, site.server().address).console_token(fe, "serial")
    status, _h, raw = send(b.address, "GET", f"/v1/console?token={token.token}&kind=serial",
                           {"Connection": "Upgrade", "Upgrade": "websocket",
                            "Sec-WebSocket-Version": "13",
                            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert status == 401 and json.loads(raw)["error"] == "token-unknown", raw


@pytest.mark.slow
def test_a_replica_killed_with_sigkill_loses_no_accepted_requests_audit_row(
    site: Any, alice: Any
) -> None:
    """Each answer leaves after its audit row is committed: whatever a client was answered
    (with its Audit-Id) is in the database, however the replica dies."""
    victim, survivor = site.server("--rate", "100000", "--burst", "100000"), site.server()
    fe = site.mac(site.cluster_a[0])
    answered: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load() -> None:
        host, port = victim.address.rsplit(":", 1)
        while not stop.is_set():
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                conn.request("GET", f"/v1/macs?target={fe}",
                             headers=alice.sign("GET", "/v1/macs", f"target={fe}"))
            except OSError:
                return
            try:
                answer = conn.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException):
                return  # the replica died under this request: no answer, no promise
            finally:
                conn.close()
            if answer.status == 200:
                with lock:
                    answered.append(int(answer.getheader("Audit-Id") or 0))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(load) for _ in range(8)]
        while True:
            with lock:
                if len(answered) >= 200:
                    break
            if all(f.done() for f in futures):
                break
            threading.Event().wait(0.01)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(30)
        stop.set()
        for f in futures:
            f.result()
    assert len(answered) >= 200 and 0 not in answered
    ids = {row.id for row in site.audit(len(answered) + 100)}
    assert set(answered) <= ids, sorted(set(answered) - ids)[:5]
    # The other replica goes on; the dead one's nonces still refuse its replays there.
    assert [n.host for n in AirbossClient(alice.key, survivor.address).macs(fe)] == site.cluster_a
