"""The gate reads a key's public keys and what the key covers in one statement, and uses that
scope only in the transaction it was read in: a key removed between two transactions of one
request is refused by the second, as when each step read the key on its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from flightdeck.airboss.config import Settings
from flightdeck.airboss.gate import Exchange, Gate, Refusal
from flightdeck.api.operations import Scope

MACS = "/v1/macs"


def _exchange() -> Exchange:
    return Exchange(client="127.0.0.1", method="GET", path=MACS)


def test_a_signed_request_reads_its_key_once_in_one_transaction(site: Any, alice: Any) -> None:
    app = site.app()
    target = site.mac(site.cluster_a[0])
    query = f"target={target}"
    assert app.request("GET", MACS, query=query, headers=alice.sign("GET", MACS, query)).status \
        == 200  # fmt: skip
    statements: list[str] = []
    begins: list[object] = []

    def note(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(" ".join(statement.split()))

    def began(conn: Any) -> None:
        begins.append(conn)

    event.listen(site.db.engine, "before_cursor_execute", note)
    event.listen(site.db.engine, "begin", began)
    try:
        r = app.request("GET", MACS, query=query, headers=alice.sign("GET", MACS, query))
    finally:
        event.remove(site.db.engine, "before_cursor_execute", note)
        event.remove(site.db.engine, "begin", began)
    assert r.status == 200 and len(r.json["nodes"]) == 3
    assert len([s for s in statements if "FROM public_keys" in s]) == 1, statements
    assert len(begins) == 1  # the nonce, the answer's reads and the audit row together
    assert len(statements) <= 6, statements


def test_the_scope_read_with_the_key_serves_only_its_own_transaction(
    site: Any, alice: Any
) -> None:
    gate = Gate(site.db, Settings(rate=1000.0, burst=1000))
    target = site.mac(site.cluster_a[0])
    query = f"target={target}"
    # Verified in one transaction of a connection, authorised in a later one on the same
    # connection, the key removed in between: the later one reads the key again.
    ex = _exchange()
    with site.db.engine.connect() as conn:
        with conn.begin():
            gate.admit(ex, alice.sign("GET", MACS, query), b"", query, conn)
            assert ex.scope is not None  # read with the key
            assert gate.authorise(ex, target, Scope.VM, conn=conn).name == site.cluster_a[0]
        site.remove_key(alice, "frontend-0-0-0")
        with conn.begin():
            try:
                gate.authorise(ex, target, Scope.VM, conn=conn)
            except Refusal as exc:
                assert exc.code == "forbidden" and exc.detail == "key-covers-nothing"
            else:
                raise AssertionError("a removed key's scope was used in a later transaction")


def test_a_step_on_its_own_transaction_reads_the_scope_itself(site: Any, alice: Any) -> None:
    gate = Gate(site.db, Settings(rate=1000.0, burst=1000))
    target = site.mac(site.cluster_a[0])
    query = f"target={target}"
    ex = _exchange()
    gate.admit(ex, alice.sign("GET", MACS, query), b"", query)  # its own transaction
    assert ex.scope is None
    site.remove_key(alice, "frontend-0-0-0")
    try:
        gate.authorise(ex, target, Scope.VM)
    except Refusal as exc:
        assert exc.detail == "key-covers-nothing"
    else:
        raise AssertionError("a removed key was authorised")


def test_every_reads_only_operation_reads_in_the_requests_transaction(
    site: Any, alice: Any
) -> None:
    """`audit`, `jobs` (and `macs`, above) answer on the gate's connection: one BEGIN for the
    nonce, the key, the answer's reads and the audit row."""
    app = site.app()
    target = site.cluster_a[0]
    for path, query in (("/v1/audit", f"target={target}"), ("/v1/jobs", f"target={target}")):
        assert app.request("GET", path, query=query,
                           headers=alice.sign("GET", path, query)).status == 200  # fmt: skip
        begins: list[object] = []

        def began(conn: Any, begins: list[object] = begins) -> None:
            begins.append(conn)

        event.listen(site.db.engine, "begin", began)
        try:
            r = app.request("GET", path, query=query, headers=alice.sign("GET", path, query))
        finally:
            event.remove(site.db.engine, "begin", began)
        assert r.status == 200, (path, r.json)
        assert len(begins) == 1, path
