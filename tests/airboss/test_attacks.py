"""Every attack of issue 5 is a test: each is refused, with its stable code, and logged.

The requests go through the Airboss application in this process (`site.app()`), so each test
writes exactly the bytes it means: forged signature parameters, a body changed after signing,
a path or query changed, a nonce used twice. After each refusal the last audit row must say
refused, with the same code, and no VM may have changed state.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from flightdeck.crypto import sfv
from flightdeck.crypto.digest import content_digest
from flightdeck.crypto.httpsig import COVERED, sign_base, signature_base
from flightdeck.services.airboss import access

# Helpers ----------------------------------------------------------------------------------------


def power_body(target: str, action: str = "on") -> bytes:
    return json.dumps({"target": target, "action": action}).encode()


def refused(site: Any, response: Any, status: int, code: str, *, target: str | None = None
            ) -> Any:
    """The response is the refusal expected, and the audit log's last row says so."""
    assert response.status == status, (response.status, response.body)
    assert response.code == code, response.body
    assert set(response.json) == {"error", "message"}
    assert "Traceback" not in response.body.decode()
    row = site.last()
    assert row.accepted is False
    assert row.reason.startswith(f"{code}: "), row.reason
    assert response.headers["audit-id"] == str(row.id)
    if target is not None:
        assert row.target == target
    return row


def forge(
    owner: Any,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    *,
    params: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    covered: tuple[str, ...] = COVERED,
    digest: str | None = None,
) -> dict[str, str]:
    """Sign with hand-chosen RFC 9421 parameters (what a well-behaved signer never sends)."""
    now = int(time.time())
    chosen: dict[str, Any] = {
        "created": now,
        "expires": now + 60,
        "nonce": f"forged-{time.monotonic_ns()}",
        "keyid": owner.keyid,
        "alg": "ed25519",
        "tag": "flightdeck",
    }
    chosen.update(params or {})
    for name in drop:
        chosen.pop(name, None)
    inner = sfv.InnerList([sfv.Item(c) for c in covered], chosen)
    values = {
        "@method": method,
        "@path": path,
        "@query": "?" + query,
        "content-digest": digest or content_digest(body),
    }
    base = signature_base([(c, values[c]) for c in covered], sfv.serialize_inner_list(inner))
    alg = chosen.get("alg", "ed25519")
    signature = sign_base(owner.key, alg if alg == "ed25519" else "ed25519", base)
    return {
        "Content-Digest": values["content-digest"],
        "Signature-Input": sfv.serialize_dictionary({"sig1": inner}),
        "Signature": sfv.serialize_dictionary({"sig1": sfv.Item(signature)}),
    }


def states(site: Any) -> dict[str, str]:
    from flightdeck.services.lifecycle import statuses

    return statuses(site.db)


# Signatures -------------------------------------------------------------------------------------


def test_unsigned_request_is_refused_and_logged(site: Any) -> None:
    app = site.app()
    target = site.mac(site.cluster_a[1])
    r = app.request("POST", "/v1/power", body=power_body(target))
    row = refused(site, r, 401, "missing-signature")
    assert row.keyid is None and row.operation == "POST /v1/power"
    assert states(site)[site.cluster_a[1]] == "nostate"


def test_signature_from_another_key_under_alices_keyid(site: Any, alice: Any, mallory: Any
                                                       ) -> None:
    app = site.app()
    body = power_body(site.mac(site.cluster_a[1]))
    headers = forge(mallory, "POST", "/v1/power", body=body, params={"keyid": alice.keyid})
    row = refused(site, app.request("POST", "/v1/power", headers=headers, body=body), 401,
                  "bad-signature")
    assert row.keyid == alice.keyid  # the key it claimed, for the record
    assert states(site)[site.cluster_a[1]] == "nostate"


def test_signature_bytes_flipped(site: Any, alice: Any) -> None:
    app = site.app()
    body = power_body(site.mac(site.cluster_a[1]))
    headers = alice.sign("POST", "/v1/power", "", body)
    sig = sfv.parse_dictionary(headers["Signature"])["sig1"]
    assert isinstance(sig, sfv.Item) and isinstance(sig.value, bytes)
    flipped = bytes([sig.value[0] ^ 1]) + sig.value[1:]
    headers["Signature"] = sfv.serialize_dictionary({"sig1": sfv.Item(flipped)})
    refused(site, app.request("POST", "/v1/power", headers=headers, body=body), 401,
            "bad-signature")


def test_unregistered_key(site: Any, mallory: Any) -> None:
    app = site.app()
    body = power_body(site.mac(site.cluster_a[1]))
    r = app.request("POST", "/v1/power", headers=mallory.sign("POST", "/v1/power", "", body),
                    body=body)
    refused(site, r, 401, "unknown-key")


def test_key_of_another_cluster_on_this_clusters_vm(site: Any, bob: Any) -> None:
    app = site.app()
    vm = site.cluster_a[1]
    body = power_body(site.mac(vm))
    r = app.request("POST", "/v1/power", headers=bob.sign("POST", "/v1/power", "", body),
                    body=body)
    row = refused(site, r, 403, "forbidden", target=site.mac(vm))
    assert row.keyid == bob.keyid and row.operation == "power on"
    assert f"out-of-scope ({vm})" in row.reason
    # The owner is told no more than "not yours": the same words as for a VM that does not exist.
    ghost_body = power_body("02:00:00:00:00:99")
    ghost = app.request("POST", "/v1/power", headers=bob.sign("POST", "/v1/power", "", ghost_body),
                        body=ghost_body)
    assert ghost.json["message"].split(" is not")[1] == r.json["message"].split(" is not")[1]
    assert "unknown-target" in site.last().reason
    assert states(site)[vm] == "nostate"


def test_body_changed_after_signing(site: Any, alice: Any) -> None:
    app = site.app()
    signed = power_body(site.mac(site.cluster_a[1]), "on")
    sent = power_body(site.mac(site.cluster_a[1]), "off")
    headers = alice.sign("POST", "/v1/power", "", signed)
    refused(site, app.request("POST", "/v1/power", headers=headers, body=sent), 401,
            "digest-mismatch")
    # Changing the digest to fit the new body breaks the signature instead.
    headers = alice.sign("POST", "/v1/power", "", signed)
    headers["Content-Digest"] = content_digest(sent)
    refused(site, app.request("POST", "/v1/power", headers=headers, body=sent), 401,
            "bad-signature")


def test_path_changed_after_signing(site: Any, alice: Any) -> None:
    app = site.app()
    body = json.dumps({"target": site.mac(site.cluster_a[1]), "cdrom": "none"}).encode()
    headers = alice.sign("POST", "/v1/cdrom", "", body)
    refused(site, app.request("POST", "/v1/power", headers=headers, body=body), 401,
            "bad-signature")
    # Another spelling of the same path is another path.
    headers = alice.sign("POST", "/v1/cdrom", "", body)
    refused(site, app.request("POST", "/v1/%63drom", headers=headers, body=body), 401,
            "bad-signature")


def test_query_changed_after_signing(site: Any, alice: Any) -> None:
    app = site.app()
    mine = f"target={site.mac(site.cluster_a[0])}"
    theirs = f"target={site.mac(site.cluster_b[0])}"
    headers = alice.sign("GET", "/v1/macs", mine)
    r = app.request("GET", "/v1/macs", query=theirs, headers=headers)
    refused(site, r, 401, "bad-signature")
    headers = alice.sign("GET", "/v1/macs", mine)
    r = app.request("GET", "/v1/macs", query=mine + "&status=yes", headers=headers)
    refused(site, r, 401, "bad-signature")


def test_method_changed_after_signing(site: Any, alice: Any) -> None:
    app = site.app()
    query = f"target={site.mac(site.cluster_a[0])}"
    headers = alice.sign("GET", "/v1/macs", query)
    refused(site, app.request("POST", "/v1/macs", query=query, headers=headers), 401,
            "bad-signature")


def test_replay_is_refused(site: Any, alice: Any) -> None:
    app = site.app()
    query = f"target={site.mac(site.cluster_a[0])}"
    headers = alice.sign("GET", "/v1/macs", query)
    assert app.request("GET", "/v1/macs", query=query, headers=headers).status == 200
    refused(site, app.request("GET", "/v1/macs", query=query, headers=headers), 401, "replay")


def test_replay_after_an_airboss_restart_is_refused(site: Any, alice: Any) -> None:
    vm = site.cluster_a[1]
    body = power_body(site.mac(vm), "on")
    headers = alice.sign("POST", "/v1/power", "", body)
    first = site.app()
    assert first.request("POST", "/v1/power", headers=headers, body=body).status == 200
    site.rocks.ok("stop", "host", "vm", vm)
    # A new Airboss (new process state, same database) has not forgotten the nonce.
    second = site.app()
    refused(site, second.request("POST", "/v1/power", headers=headers, body=body), 401, "replay")
    assert states(site)[vm] == "nostate"


def test_concurrent_copies_of_one_request_only_one_wins(site: Any, alice: Any) -> None:
    """Two Airboss instances on one database, 20 copies at once: the primary key decides."""
    one, two = site.app(), site.app()
    query = f"target={site.mac(site.cluster_a[0])}"
    headers = alice.sign("GET", "/v1/macs", query)

    async def both() -> list[Any]:
        calls = [
            (one if i % 2 else two).arequest("GET", "/v1/macs", query=query, headers=headers)
            for i in range(20)
        ]
        return list(await asyncio.gather(*calls))

    results = one.loop.run_until_complete(both())
    assert sorted(r.status for r in results) == [200] + [401] * 19
    assert {r.code for r in results if r.status == 401} == {"replay"}


def test_expired_signature(site: Any, alice: Any) -> None:
    app = site.app()
    query = f"target={site.mac(site.cluster_a[0])}"
    headers = alice.sign("GET", "/v1/macs", query, created=int(time.time()) - 400, expires_in=60)
    refused(site, app.request("GET", "/v1/macs", query=query, headers=headers), 401, "expired")


def test_created_in_the_future_beyond_the_skew(site: Any, alice: Any) -> None:
    app = site.app(max_skew=30)
    query = f"target={site.mac(site.cluster_a[0])}"
    late = alice.sign("GET", "/v1/macs", query, created=int(time.time()) + 120)
    refused(site, app.request("GET", "/v1/macs", query=query, headers=late), 401,
            "not-yet-valid")
    # Within the skew a slightly fast clock is fine.
    close = alice.sign("GET", "/v1/macs", query, created=int(time.time()) + 10)
    assert app.request("GET", "/v1/macs", query=query, headers=close).status == 200


def test_lifetime_over_five_minutes(site: Any, alice: Any) -> None:
    app = site.app()
    query = f"target={site.mac(site.cluster_a[0])}"
    now = int(time.time())
    headers = forge(alice, "GET", "/v1/macs", query, params={"expires": now + 3600})
    refused(site, app.request("GET", "/v1/macs", query=query, headers=headers), 401,
            "lifetime-too-long")


@pytest.mark.parametrize("missing", ["nonce", "created", "expires", "keyid", "alg"])
def test_missing_parameter(site: Any, alice: Any, missing: str) -> None:
    app = site.app()
    query = f"target={site.mac(site.cluster_a[0])}"
    headers = forge(alice, "GET", "/v1/macs", query, drop=(missing,))
    refused(site, app.request("GET", "/v1/macs", query=query, headers=headers), 401,
            "missing-parameter")


def test_reused_nonce_on_another_request(site: Any, alice: Any) -> None:
    app = site.app()
    nonce = "reused-nonce-0123456789"
    q1 = f"target={site.mac(site.cluster_a[0])}"
    q2 = f"target={site.mac(site.cluster_a[1])}"
    assert app.request("GET", "/v1/macs", query=q1,
                       headers=alice.sign("GET", "/v1/macs", q1, nonce=nonce)).status == 200
    refused(site, app.request("GET", "/v1/macs", query=q2,
                              headers=alice.sign("GET", "/v1/macs", q2, nonce=nonce)),
            401, "replay")


@pytest.mark.parametrize(
    ("params", "covered", "code"),
    [
        ({"alg": "hmac-sha256"}, COVERED, "weak-algorithm"),
        ({"alg": "rsa-v1_5-sha1"}, COVERED, "weak-algorithm"),
        ({}, ("@method", "@path", "content-digest"), "components"),
        ({"tag": "another-service"}, COVERED, "missing-signature"),
        ({"nonce": "short"}, COVERED, "bad-parameter"),
        ({"created": "yesterday"}, COVERED, "bad-parameter"),
    ],
)
def test_weak_or_incomplete_signatures(
    site: Any, alice: Any, params: dict[str, Any], covered: tuple[str, ...], code: str
) -> None:
    app = site.app()
    query = f"target={site.mac(site.cluster_a[0])}"
    headers = forge(alice, "GET", "/v1/macs", query, params=params, covered=covered)
    refused(site, app.request("GET", "/v1/macs", query=query, headers=headers), 401, code)


@pytest.mark.parametrize(
    ("signature_input", "signature", "code"),
    [
        ("garbage", "sig1=:AAAA:", "missing-signature"),
        ('sig1=("@method" "@path"', "sig1=:AAAA:", "malformed-signature"),
        ('sig1=("@method");keyid="x";tag="flightdeck"', "sig1=not-bytes", "malformed-signature"),
        ('sig1=("@method");tag="flightdeck"', "sig2=:AAAA:", "missing-signature"),
        ("sig1=" + "(" + " ".join('"@path"' for _ in range(5000)) + ")", "sig1=:AAAA:",
         "malformed-signature"),
        ('sig1=("@method");tag="flightdeck", sig2=("@path");tag="flightdeck"', "sig1=:AAAA:",
         "malformed-signature"),
        ("\x00\x01\x02", "sig1=:AAAA:", "malformed-signature"),
    ],
)
def test_malformed_signature_headers(site: Any, signature_input: str, signature: str,
                                     code: str) -> None:
    app = site.app()
    query = f"target={site.mac(site.cluster_a[0])}"
    headers = {"Signature-Input": signature_input, "Signature": signature,
               "Content-Digest": content_digest(b"")}
    r = app.request("GET", "/v1/macs", query=query, headers=headers)
    if code == "malformed-signature" and r.status == 431:
        code = "headers-too-large"  # the 5,000-item list is over the header size limit first
        refused(site, r, 431, code)
        return
    refused(site, r, 401, code)


def test_oversized_body(site: Any, alice: Any) -> None:
    app = site.app(max_body=1024)
    body = json.dumps({"target": site.mac(site.cluster_a[1]), "action": "on",
                       "pad": "x" * 4096}).encode()
    headers = alice.sign("POST", "/v1/power", "", body)
    refused(site, app.request("POST", "/v1/power", headers=headers, body=body), 413,
            "body-too-large")
    # Without a Content-Length (chunked), the reading stops at the limit all the same.
    r = app.request("POST", "/v1/power", headers=headers, chunks=[b"x" * 600] * 10)
    refused(site, r, 413, "body-too-large")
    assert states(site)[site.cluster_a[1]] == "nostate"


def test_oversized_headers(site: Any, alice: Any) -> None:
    app = site.app(max_header_bytes=4096, max_headers=32)
    query = f"target={site.mac(site.cluster_a[0])}"
    big = {**alice.sign("GET", "/v1/macs", query), "X-Padding": "p" * 8000}
    refused(site, app.request("GET", "/v1/macs", query=query, headers=big), 431,
            "headers-too-large")
    many = [*alice.sign("GET", "/v1/macs", query).items(),
            *((f"X-Many-{i}", "1") for i in range(40))]
    refused(site, app.request("GET", "/v1/macs", query=query, headers=many), 431,
            "headers-too-large")
    # /health is no way around it: the full pipeline refuses (and logs) it too.
    refused(site, app.request("GET", "/health", headers={"X-Padding": "p" * 8000}), 431,
            "headers-too-large")


def test_unknown_operation(site: Any, alice: Any) -> None:
    app = site.app()
    body = b"{}"
    r = app.request("POST", "/v1/destroy", headers=alice.sign("POST", "/v1/destroy", "", body),
                    body=body)
    row = refused(site, r, 404, "unknown-operation")
    assert row.keyid == alice.keyid and row.operation == "POST /v1/destroy"
    r = app.request("GET", "/v1/power", headers=alice.sign("GET", "/v1/power", ""))
    refused(site, r, 405, "method-not-allowed")
    body = power_body(site.mac(site.cluster_a[1]), "format-disk")
    r = app.request("POST", "/v1/power", headers=alice.sign("POST", "/v1/power", "", body),
                    body=body)
    refused(site, r, 400, "invalid-request")
    # Unsigned, an unknown path is first of all an unsigned request.
    refused(site, app.request("DELETE", "/etc/passwd"), 401, "missing-signature")


@pytest.mark.parametrize(
    "target",
    [
        "' OR 1=1 --",
        "x'; DROP TABLE hosts; --",
        "select * from hosts",
        "../../etc/passwd",
        "/etc/shadow",
        "frontend-0-0-0/../frontend-0-0-1",
        "%",
        "hosted-vm-%",
        "a" * 10_000,
        "",
        "frontend-0-0-0\n",
        "fé",
    ],
)
def test_hostile_targets_are_refused_before_any_lookup(
    site: Any, alice: Any, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    before = site.rocks.dump()

    def no_lookup(*_a: Any) -> Any:
        raise AssertionError("the target reached the database")

    monkeypatch.setattr(access, "_lookup", no_lookup)
    app = site.app()
    body = power_body(target)
    r = app.request("POST", "/v1/power", headers=alice.sign("POST", "/v1/power", "", body),
                    body=body)
    row = refused(site, r, 400, "invalid-target")
    assert len(row.target or "") <= 255
    if len(target) > 255:
        assert row.target.endswith(f"... ({len(target)} characters)")
    after = site.rocks.dump()
    after.pop("audit_log"), before.pop("audit_log")
    after.pop("audit_heads"), before.pop("audit_heads")  # the audit chains (issue 18)
    after.pop("nonces"), before.pop("nonces")
    assert after == before


def test_signature_is_verified_before_the_target_is_looked_up(
    site: Any, mallory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lookup(*_a: Any) -> Any:
        raise AssertionError("the target was looked up before the signature verified")

    monkeypatch.setattr(access, "_lookup", no_lookup)
    monkeypatch.setattr(access, "authorise", no_lookup)
    app = site.app()
    body = power_body(site.mac(site.cluster_a[1]))
    refused(site, app.request("POST", "/v1/power", body=body), 401, "missing-signature")
    refused(site, app.request("POST", "/v1/power",
                              headers=mallory.sign("POST", "/v1/power", "", body), body=body),
            401, "unknown-key")


def test_names_that_look_like_sql_match_nothing(site: Any, alice: Any) -> None:
    app = site.app()
    for target in ("select", "1-OR-1", "hosts"):
        body = power_body(target)
        r = app.request("POST", "/v1/power", headers=alice.sign("POST", "/v1/power", "", body),
                        body=body)
        row = refused(site, r, 403, "forbidden")
        assert "unknown-target" in row.reason


def test_a_host_expression_is_not_a_target(site: Any, alice: Any) -> None:
    """The CLI's host expressions (appliance, rackN, IP, patterns) are not targets.

    A frontend's public-side name and FQDN are (the guide's `list host macs vi-1...`).
    """
    app = site.app()
    for target in ("hosted-vm", "rack0", "10.1.255.254", "hosted-vm-0-0-*", "hosted-vm-0-0-[0-1]"):
        body = power_body(target)
        r = app.request("POST", "/v1/power", headers=alice.sign("POST", "/v1/power", "", body),
                        body=body)
        assert r.status in (400, 403), (target, r.body)
    assert all(s == "nostate" for s in states(site).values())


@pytest.mark.parametrize("which", ["physical frontend", "container"])
def test_mac_of_the_physical_frontend_or_a_container_is_not_a_vm(
    site: Any, alice: Any, which: str
) -> None:
    mac = site.physical_mac if which == "physical frontend" else site.container_mac
    app = site.app()
    for action in ("off", "on"):
        body = power_body(mac, action)
        r = app.request("POST", "/v1/power", headers=alice.sign("POST", "/v1/power", "", body),
                        body=body)
        row = refused(site, r, 403, "forbidden", target=mac)
        assert "not-a-vm" in row.reason
    query = f"target={mac}"
    r = app.request("GET", "/v1/macs", query=query, headers=alice.sign("GET", "/v1/macs", query))
    assert "not-a-vm" in refused(site, r, 403, "forbidden").reason


def test_a_key_removed_while_its_holder_still_uses_it(site: Any, alice: Any) -> None:
    app = site.app()
    query = f"target={site.mac(site.cluster_a[0])}"
    assert app.request("GET", "/v1/macs", query=query,
                       headers=alice.sign("GET", "/v1/macs", query)).status == 200
    listed = json.loads(site.rocks.ok("list", "host", "key", "frontend-0-0-0",
                                      "output-format=json"))
    key_id = listed[0]["id"]
    site.rocks.ok("remove", "host", "key", "frontend-0-0-0", f"id={key_id}")
    # The very next request, same client, same Airboss (no cache to expire).
    r = app.request("GET", "/v1/macs", query=query, headers=alice.sign("GET", "/v1/macs", query))
    refused(site, r, 401, "unknown-key")


def test_a_key_goes_with_its_cluster(site: Any, bob: Any) -> None:
    app = site.app()
    site.rocks.ok("remove", "cluster", site.cluster_b[0])
    query = f"target={site.mac(site.cluster_b[0])}"
    r = app.request("GET", "/v1/macs", query=query, headers=bob.sign("GET", "/v1/macs", query))
    refused(site, r, 401, "unknown-key")  # the key went with its frontend


def boot_actions(site: Any) -> dict[str, str]:
    rows = json.loads(site.rocks.ok("list", "host", "boot", "output-format=json"))
    return {r["host"]: r["action"] for r in rows}


@pytest.mark.parametrize("by", ["name", "mac"])
def test_a_vm_named_like_a_host_expression_is_only_itself(site: Any, by: str) -> None:
    """Issue 14, item 2: an owner's VM called `rack0` (a valid host name, and the host
    expression for every host of rack 0). The target is resolved once, to that VM's id: its
    power install sets the boot action of that VM alone, and starts that VM alone."""
    from flightdeck.crypto import keys as ck

    owner = type(site.owners["carol"])("dave", ck.generate_private_key())
    site.rocks.ok("add", "host", "vm", "vm-container-0-1", "membership=Compute", "name=rack0x",
                  "mem=256", "disksize=1")
    from sqlalchemy import select, update

    from flightdeck.db.models import Host, Interface

    # `add host vm` refuses such names now (the other half of the defence); a database from
    # before, or one changed by hand, may still hold one: rename it underneath.
    with site.db.engine.begin() as conn:
        conn.execute(update(Host).where(Host.name == "rack0x").values(name="rack0"))

    with site.db.engine.connect() as conn:
        mac = conn.execute(select(Interface.mac).join(Host, Host.id == Interface.host_id)
                           .where(Host.name == "rack0")).scalar_one()
    # The administrator names it by its MAC: to `rocks`, rack0 is every host of rack 0.
    pub = site.tmp / "dave.pub"
    pub.write_text(owner.public_pem)
    site.rocks.ok("add", "host", "key", mac, f"key={pub}", "description=dave")
    site.rocks.ok("set", "host", "boot", "%", "action=os")
    before = boot_actions(site)
    assert len(before) > 5 and set(before.values()) == {"os"}
    target = "rack0" if by == "name" else mac
    app = site.app()
    body = power_body(target, "install")
    r = app.request("POST", "/v1/power", headers=owner.sign("POST", "/v1/power", "", body),
                    body=body)
    after = boot_actions(site)
    assert {h for h in after if after[h] != before[h]} <= {"rack0"}  # no other host touched
    assert r.status == 200, r.body
    assert r.json["host"] == "rack0" and after["rack0"] == "install"
    running = {name for name, state in states(site).items() if state == "active"}
    assert running == {"rack0"}
