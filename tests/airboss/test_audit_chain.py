"""The audit log as per-cluster hash chains with a signed head (issue 18): the owner lists and
verifies their cluster's chain; a row changed, removed or reordered directly in the database
is named by the verifier."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ed25519

from flightdeck.api import operations as ops
from flightdeck.api import wire
from flightdeck.crypto import auditchain
from flightdeck.crypto.keys import parse_public_key
from flightdeck.db.tables import audit_log


@pytest.fixture(autouse=True)
def audit_key(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    path = tmp_path / "airboss-audit.key"
    monkeypatch.setenv("FLIGHTDECK_AUDIT_KEY", str(path))
    return path


def chain(app: Any, owner: Any, target: str, since: int = 1) -> ops.AuditChain:
    query = f"target={target}&since={since}"
    r = app.request("GET", "/v1/audit", query=query, headers=owner.sign("GET", "/v1/audit", query))
    assert r.status == 200, r.body
    return wire.decode(ops.AuditChain, r.json)


def published(app: Any) -> ed25519.Ed25519PublicKey:
    r = app.request("GET", auditchain.HEAD_KEY_PATH)
    assert r.status == 200
    key = parse_public_key(r.json["key"])
    assert isinstance(key, ed25519.Ed25519PublicKey)
    return key


def check(found: ops.AuditChain, key: Any) -> auditchain.Problem | None:
    entries = [dataclasses.asdict(e) for e in found.entries]
    return auditchain.verify(entries, dataclasses.asdict(found.head), key)


def activity(site: Any, app: Any, owner: Any) -> None:
    for node in site.cluster_a:
        query = f"target={site.mac(node)}"
        headers = owner.sign("GET", "/v1/macs", query)
        assert app.request("GET", "/v1/macs", query=query, headers=headers).status == 200
    body = json.dumps({"target": site.mac(site.cluster_a[1]), "action": "install"}).encode()
    bad = owner.sign("POST", "/v1/power", "", b"{}")  # digest of another body: refused
    app.request("POST", "/v1/power", headers=bad, body=body)


def test_the_owner_verifies_the_chain(site: Any, alice: Any, bob: Any) -> None:
    app = site.app()
    activity(site, app, alice)
    frontend = site.mac(site.cluster_a[0])
    found = chain(app, alice, frontend)
    assert [e.seq for e in found.entries] == list(range(1, len(found.entries) + 1))
    assert len(found.entries) == len(site.cluster_a)  # the refused one never reached a target
    assert found.head.chain.startswith("cluster:") and found.head.seq == len(found.entries)
    key = published(app)
    assert check(found, key) is None
    # The audit request itself is the next entry; the chain grows, still verifiable.
    again = chain(app, alice, frontend)
    assert again.head.seq == found.head.seq + 1 and check(again, key) is None
    # From a later entry, trusting the stored link of the first one listed.
    assert check(chain(app, alice, frontend, since=3), key) is None
    # Another key's signature on the head: refused.
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    problem = check(again, other)
    assert problem is not None and "signature" in problem.what
    # Bob may not read Alice's chain; his own is separate.
    r = app.request("GET", "/v1/audit", query=f"target={frontend}",
                    headers=bob.sign("GET", "/v1/audit", f"target={frontend}"))  # fmt: skip
    assert r.status == 403
    bobs = chain(app, bob, site.mac(site.cluster_b[0]))
    assert bobs.head.chain != found.head.chain


def _rows(site: Any, chain_name: str) -> list[Any]:
    with site.db.engine.connect() as conn:
        return list(conn.execute(
            sa.select(audit_log).where(audit_log.c.chain == chain_name)
            .order_by(audit_log.c.seq)))  # fmt: skip


@pytest.mark.parametrize("tamper", ["change", "delete", "reorder"])
def test_tampering_in_the_database_is_named(site: Any, alice: Any, tamper: str) -> None:
    app = site.app()
    activity(site, app, alice)
    frontend = site.mac(site.cluster_a[0])
    name = chain(app, alice, frontend).head.chain
    rows = _rows(site, name)
    victim = rows[1]
    with site.db.engine.begin() as conn:
        if tamper == "change":
            conn.execute(sa.update(audit_log).where(audit_log.c.id == victim.id)
                         .values(accepted=False, reason="forbidden: nothing to see"))  # fmt: skip
        elif tamper == "delete":
            conn.execute(sa.delete(audit_log).where(audit_log.c.id == victim.id))
        else:
            nxt = rows[2]
            for row_id, seq in ((victim.id, -1), (nxt.id, victim.seq), (victim.id, nxt.seq)):
                conn.execute(sa.update(audit_log).where(audit_log.c.id == row_id)
                             .values(seq=seq))  # fmt: skip
    problem = check(chain(app, alice, frontend), published(app))
    assert problem is not None
    assert problem.seq == victim.seq, problem
    expected = {"change": "altered", "delete": "missing", "reorder": "removed or reordered"}
    assert expected[tamper] in str(problem)


def test_concurrent_appends_never_fork_a_chain(site: Any, alice: Any) -> None:
    import concurrent.futures

    from flightdeck.services.airboss.audit import AuditRecord, audit

    record = AuditRecord("127.0.0.1", alice.keyid, "macs", "x", True, "ok", chain="cluster:999")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _i: audit(site.db, record), range(80)))
    rows = _rows(site, "cluster:999")
    assert [r.seq for r in rows] == list(range(1, 81))
    prev = auditchain.GENESIS
    for r in rows:
        entry = {f: getattr(r, f) for f in auditchain.FIELDS}
        entry["at"] = auditchain.moment(r.at)
        assert r.prev == prev and auditchain.entry_hash(prev, entry) == r.hash
        prev = r.hash


def _full_check(found: ops.AuditChain, key: Any) -> auditchain.Problem | None:
    """What `pilot verify audit` checks: the whole chain, from entry 1 or its checkpoint."""
    entries = [dataclasses.asdict(e) for e in found.entries]
    cut = dataclasses.asdict(found.checkpoint) if found.checkpoint else None
    return auditchain.verify(entries, dataclasses.asdict(found.head), key, checkpoint=cut,
                             complete=True)  # fmt: skip


def _age(site: Any, chain_name: str, upto_seq: int) -> None:
    """Date a chain's first entries 100 days back (their hashes are left alone: pruning reads
    only the time, verification never sees these rows again)."""
    import datetime as dt

    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=100)
    with site.db.engine.begin() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.chain == chain_name,
                                                audit_log.c.seq <= upto_seq).values(at=old))


def test_a_pruned_chain_verifies_from_its_signed_checkpoint(site: Any, alice: Any) -> None:
    from flightdeck.services.airboss import retention

    app = site.app()
    activity(site, app, alice)
    activity(site, app, alice)
    frontend = site.mac(site.cluster_a[0])
    name = chain(app, alice, frontend).head.chain
    _age(site, name, 4)
    assert retention.prune_by_setting(site.db)[1] >= 4
    found = chain(app, alice, frontend)
    key = published(app)
    assert found.checkpoint is not None and found.checkpoint.seq == 4
    assert found.entries[0].seq == 5
    assert _full_check(found, key) is None
    # Deleting more than the retention did is not hidden by the checkpoint.
    rows = _rows(site, name)
    with site.db.engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.id == rows[0].id))
    problem = _full_check(chain(app, alice, frontend), key)
    assert problem is not None and problem.seq == 5 and "checkpoint" in problem.what
    # A checkpoint moved forward by hand no longer carries the Airboss's signature.
    from flightdeck.db.tables import audit_checkpoints

    with site.db.engine.begin() as conn:
        conn.execute(sa.update(audit_checkpoints).values(seq=5, hash=rows[0].hash))
    problem = _full_check(chain(app, alice, frontend), key)
    assert problem is not None and "checkpoint's signature" in problem.what


def test_first_entries_deleted_without_a_checkpoint_are_named(site: Any, alice: Any) -> None:
    app = site.app()
    activity(site, app, alice)
    frontend = site.mac(site.cluster_a[0])
    name = chain(app, alice, frontend).head.chain
    with site.db.engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.chain == name,
                                                audit_log.c.seq <= 2))
    problem = _full_check(chain(app, alice, frontend), published(app))
    assert problem is not None and problem.seq == 1 and "no signed checkpoint" in problem.what
