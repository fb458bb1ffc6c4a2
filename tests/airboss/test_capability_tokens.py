"""Capability tokens through the Airboss (issue 18): each attack is refused with its stable
code, audited with the token's id and restrictions, and changes no VM.

The requests go through the application in this process (`site.app()`), with the headers the
client library would send (`crypto.capability.bind`), or altered on purpose.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from typing import Any

import pytest

pytest.importorskip("biscuit_auth")

from flightdeck.crypto import capability as cap


def power_body(target: str, action: str = "on") -> bytes:
    return json.dumps({"target": target, "action": action}).encode()


def states(site: Any) -> dict[str, str]:
    from flightdeck.services.lifecycle import statuses

    return statuses(site.db)


def slurm_token(site: Any, owner: Any, *, until: dt.datetime | None = None, **kw: Any) -> Any:
    """What the owner would hand Slurm: power on/off of cluster A's computes, for 8 hours."""
    computes = tuple(site.mac(n) for n in site.cluster_a[1:])
    root = cap.mint(owner.key, cap.Restrictions())
    return cap.attenuate(
        root,
        cap.Restrictions(
            ops=kw.get("ops", ("power.on", "power.off")),
            hosts=kw.get("hosts", computes),
            until=until or dt.datetime.now(dt.UTC) + dt.timedelta(hours=8),
        ),
    )


def power(app: Any, token: Any, target: str, action: str = "on") -> Any:
    body = power_body(target, action)
    headers = cap.bind(token, "POST", "/v1/power", "", body)
    return app.request("POST", "/v1/power", headers=headers, body=body)


def refused(site: Any, response: Any, status: int, code: str) -> Any:
    assert response.status == status, (response.status, response.body)
    assert response.code == code, response.body
    row = site.last()
    assert row.accepted is False
    assert row.reason.startswith(f"{code}: "), row.reason
    assert response.headers["audit-id"] == str(row.id)
    return row


def test_a_token_powers_what_it_allows_and_is_audited(site: Any, alice: Any) -> None:
    app = site.app()
    token = slurm_token(site, alice)
    vm = site.cluster_a[1]
    r = power(app, token, site.mac(vm))
    assert r.status == 200, r.body
    assert states(site)[vm] == "active"
    row = site.last()
    assert row.accepted and row.keyid == alice.keyid and row.operation == "power on"
    assert row.token_id == token.id
    assert "power.on" in row.restrictions and site.mac(vm) in row.restrictions


def test_widening_a_token_is_refused(site: Any, alice: Any) -> None:
    """Attenuating with every operation and the frontend added grants nothing more."""
    app = site.app()
    wider = cap.attenuate(
        slurm_token(site, alice),
        cap.Restrictions(ops=cap.OPERATIONS, hosts=(*site.cluster_a, site.mac(site.cluster_a[0]))),
    )
    vm = site.cluster_a[1]
    row = refused(site, power(app, wider, site.mac(vm), "install"), 403, "forbidden")
    assert "token-denied" in row.reason and row.token_id == wider.id
    assert "power.on" in row.restrictions
    frontend = site.mac(site.cluster_a[0])
    refused(site, power(app, wider, frontend, "on"), 403, "forbidden")
    assert states(site)[vm] == "nostate" and states(site)[site.cluster_a[0]] == "nostate"


def test_replaying_a_token_request_is_refused_also_after_a_restart(site: Any, alice: Any) -> None:
    vm = site.cluster_a[1]
    body = power_body(site.mac(vm))
    headers = cap.bind(slurm_token(site, alice), "POST", "/v1/power", "", body)
    first = site.app()
    assert first.request("POST", "/v1/power", headers=headers, body=body).status == 200
    site.rocks.ok("stop", "host", "vm", vm)
    refused(site, first.request("POST", "/v1/power", headers=headers, body=body), 401,
            "token-replay")  # fmt: skip
    second = site.app()
    refused(site, second.request("POST", "/v1/power", headers=headers, body=body), 401,
            "token-replay")  # fmt: skip
    assert states(site)[vm] == "nostate"


def test_a_captured_request_token_does_not_serve_another_request(site: Any, alice: Any) -> None:
    app = site.app()
    vm = site.cluster_a[1]
    body = power_body(site.mac(vm), "off")
    headers = cap.bind(slurm_token(site, alice), "POST", "/v1/power", "", body)
    other = power_body(site.mac(vm), "on")
    moved = {**headers, "Content-Digest": cap.content_digest(other)}
    refused(site, app.request("POST", "/v1/power", headers=moved, body=other), 401,
            "token-unbound")  # fmt: skip
    bare = {**headers, "Authorization": "Biscuit " + slurm_token(site, alice).text}
    refused(site, app.request("POST", "/v1/power", headers=bare, body=body), 401, "token-unbound")
    assert states(site)[vm] == "nostate"


def test_a_token_for_another_cluster(site: Any, alice: Any, bob: Any, mallory: Any) -> None:
    app = site.app()
    b_node = site.cluster_b[1]
    # Alice's token naming bob's node: her key's scope refuses it before any token check.
    mine = cap.attenuate(
        cap.mint(alice.key, cap.Restrictions()), cap.Restrictions(hosts=(site.mac(b_node),))
    )
    row = refused(site, power(app, mine, site.mac(b_node)), 403, "forbidden")
    assert "out-of-scope" in row.reason
    # A token rooted in a key registered nowhere.
    refused(site, power(app, slurm_token(site, mallory), site.mac(b_node)), 401,
            "token-unknown-key")  # fmt: skip
    # Bob's token presented as alice's (its binding names her key).
    body = power_body(site.mac(site.cluster_a[1]))
    headers = cap.bind(slurm_token(site, bob), "POST", "/v1/power", "", body)
    headers["Token-Binding"] = headers["Token-Binding"].replace(bob.keyid, alice.keyid)
    refused(site, app.request("POST", "/v1/power", headers=headers, body=body), 401,
            "token-invalid")  # fmt: skip
    assert states(site)[b_node] == "nostate"


def test_a_token_used_after_its_window(site: Any, alice: Any) -> None:
    app = site.app()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    row = refused(site, power(app, slurm_token(site, alice, until=past),
                              site.mac(site.cluster_a[1])), 403, "forbidden")  # fmt: skip
    assert "time" in row.reason


def test_a_forged_attenuation_block(site: Any, alice: Any) -> None:
    """The holder edits the host list inside the attenuation block: the signatures break."""
    app = site.app()
    token = slurm_token(site, alice, hosts=(site.mac(site.cluster_a[1]),))
    body = power_body(site.mac(site.cluster_a[2]))
    headers = cap.bind(token, "POST", "/v1/power", "", body)
    raw = bytearray(base64.urlsafe_b64decode(headers["Authorization"].split()[1] + "=="))
    needle, swap = site.mac(site.cluster_a[1]).encode(), site.mac(site.cluster_a[2]).encode()
    at = bytes(raw).find(needle)
    assert at > 0
    raw[at : at + len(needle)] = swap
    headers["Authorization"] = "Biscuit " + base64.urlsafe_b64encode(bytes(raw)).decode()
    refused(site, app.request("POST", "/v1/power", headers=headers, body=body), 401,
            "token-invalid")  # fmt: skip
    assert states(site)[site.cluster_a[2]] == "nostate"


def revoke(app: Any, owner: Any, token: Any) -> Any:
    body = json.dumps({"token": token.text}).encode()
    return app.request(
        "POST", "/v1/token/revoke", headers=owner.sign("POST", "/v1/token/revoke", "", body),
        body=body,
    )  # fmt: skip


def test_a_revoked_token_is_refused_from_then_on(site: Any, alice: Any, bob: Any) -> None:
    app = site.app()
    token = slurm_token(site, alice)
    child = cap.attenuate(token, cap.Restrictions(ops=("power.off",)))
    vm = site.mac(site.cluster_a[1])
    assert power(app, token, vm, "off").status == 200
    # Bob cannot revoke Alice's token; a token cannot revoke (keys only).
    assert revoke(app, bob, token).code == "invalid"
    body = json.dumps({"token": token.text}).encode()
    headers = cap.bind(token, "POST", "/v1/token/revoke", "", body)
    refused(site, app.request("POST", "/v1/token/revoke", headers=headers, body=body), 403,
            "forbidden")  # fmt: skip
    r = revoke(app, alice, token)
    assert r.status == 200, r.body
    assert r.json == {"token_id": token.id, "host": site.cluster_a[0], "revoked": True}
    assert revoke(app, alice, token).json["revoked"] is False
    for t in (token, child):
        row = refused(site, power(app, t, vm, "off"), 401, "token-revoked")
        assert row.token_id is None or row.token_id == t.id
    # A new Airboss (a restart) reads the same table.
    refused(site, power(site.app(), child, vm, "off"), 401, "token-revoked")
    listed = site.rocks.ok("list", "host", "token", "output-format=json")
    records = json.loads(listed)
    assert [r["token_id"] for r in records] == [token.id]
    assert records[0]["host"] == site.cluster_a[0]
    assert records[0]["revoked_by"] == f"owner {alice.keyid}"


def test_the_administrator_revokes_a_token(site: Any, alice: Any) -> None:
    app = site.app()
    token = slurm_token(site, alice)
    vm = site.mac(site.cluster_a[1])
    site.rocks.ok("remove", "host", "token", site.cluster_a[0], f"id={token.id}")
    refused(site, power(app, token, vm), 401, "token-revoked")
    out = site.rocks.ok("list", "host", "token", site.cluster_a[0])
    assert token.id[:16] in out
    site.rocks.refused("remove", "host", "token", site.cluster_a[0], "id=abc",
                       says="128 hex digits")  # fmt: skip
    site.rocks.refused("remove", "host", "token", site.cluster_a[0], f"id={token.id}",
                       says="revoked already")  # fmt: skip


def test_a_client_address_restriction(site: Any, alice: Any) -> None:
    app = site.app()
    token = cap.attenuate(slurm_token(site, alice), cap.Restrictions(clients=("10.1.1.1",)))
    refused(site, power(app, token, site.mac(site.cluster_a[1])), 403, "forbidden")
    body = power_body(site.mac(site.cluster_a[1]))
    headers = cap.bind(token, "POST", "/v1/power", "", body)
    r = app.request("POST", "/v1/power", headers=headers, body=body, client=("10.1.1.1", 4000))
    assert r.status == 200, r.body


def test_macs_and_isos_with_a_token(site: Any, alice: Any) -> None:
    app = site.app()
    frontend = site.mac(site.cluster_a[0])
    token = cap.attenuate(
        cap.mint(alice.key, cap.Restrictions()), cap.Restrictions(ops=("macs",))
    )
    query = f"target={frontend}"
    r = app.request("GET", "/v1/macs", query=query, headers=cap.bind(token, "GET", "/v1/macs",
                                                                      query, b""))  # fmt: skip
    assert r.status == 200, r.body
    assert len(r.json["nodes"]) == len(site.cluster_a)
    r = app.request("GET", "/v1/isos", query=query, headers=cap.bind(token, "GET", "/v1/isos",
                                                                      query, b""))  # fmt: skip
    assert r.status == 403 and "token-denied" in site.last().reason


def test_a_binding_older_than_the_skew(site: Any, alice: Any) -> None:
    app = site.app()
    body = power_body(site.mac(site.cluster_a[1]))
    old = int(time.time()) - 600
    headers = cap.bind(slurm_token(site, alice), "POST", "/v1/power", "", body, created=old)
    refused(site, app.request("POST", "/v1/power", headers=headers, body=body), 401,
            "token-expired-binding")  # fmt: skip
