"""db/hostexpr.py: every way a command line may name hosts, as typed queries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from flightdeck.db import tables
from flightdeck.db.engine import Database, open_database
from flightdeck.db.hostexpr import grammar_clash, resolve_host, resolve_host_ids, resolve_hosts
from flightdeck.errors import FlightdeckError, NotFound, UserError
from flightdeck.services import inventory
from flightdeck.services.frontend import FrontendSpec, init_frontend

ALL = ["frontend-0-0", "vm-container-0-0", "vm-container-0-1", "compute-1-0", "compute-1-1"]


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """espresso, two VM containers in rack 0, two computes in rack 1, with interfaces."""
    init_frontend(
        FrontendSpec(
            name="espresso.rocksclusters.org",
            public_ip="137.110.119.117",
            public_netmask="255.255.255.0",
            private_ip="10.1.1.1",
            private_netmask="255.255.0.0",
            public_mac="00:16:3E:00:00:AA",
        ),
        db_url,
    )
    database = open_database(db_url)
    for rank in (0, 1):
        inventory.add_host(database, f"vm-container-0-{rank}", "VM Container", rack=0)
        inventory.add_interface(
            database,
            f"vm-container-0-{rank}",
            "eth0",
            mac=f"52:54:00:FD:00:0{rank + 1}",
            ip=f"10.1.255.{254 - rank}",
            subnet="private",
        )
        inventory.add_host(database, f"compute-1-{rank}", "compute", rack=1, cpus=4)
    inventory.add_interface(
        database, "compute-1-0", "eth1", ip="137.110.119.200", name="c10-public.example.org"
    )
    yield database
    database.dispose()


def _core_names(db: Database, exprs: list[str]) -> list[str]:
    h = tables.hosts.c
    with db.reading_core() as conn:
        ids = resolve_host_ids(conn, exprs)
        by_id = dict(conn.execute(sa.select(h.id, h.name).where(h.id.in_(ids))).tuples().all())
    return [by_id[i] for i in ids]


def names(db: Database, *exprs: str) -> list[str]:
    """What the ORM resolver (writers) names; the Core one (read-only listings, no ORM import)
    must name exactly the same hosts in the same order, or fail with the same error."""
    orm: list[str] | FlightdeckError
    core: list[str] | FlightdeckError
    try:
        with db.transaction() as s:
            orm = [h.name for h in resolve_hosts(s, list(exprs))]
    except FlightdeckError as exc:
        orm = exc
    try:
        core = _core_names(db, list(exprs))
    except FlightdeckError as exc:
        core = exc
    if isinstance(orm, FlightdeckError):
        assert isinstance(core, FlightdeckError), f"Core found {core} where the ORM failed: {orm}"
        assert (type(core), core.message) == (type(orm), orm.message)
        raise orm
    assert core == orm
    return orm


def test_no_expression_is_every_host_by_rack_rank_name(db: Database) -> None:
    assert names(db) == ALL


def test_no_expression_when_one_is_needed(db: Database) -> None:
    with db.transaction() as s, pytest.raises(UserError, match="at least one host"):
        resolve_hosts(s, [], default_all=False)
    with db.reading_core() as c, pytest.raises(UserError, match="at least one host"):
        resolve_host_ids(c, [], default_all=False)


def test_a_name(db: Database) -> None:
    assert names(db, "vm-container-0-1") == ["vm-container-0-1"]


def test_an_interface_name_alias(db: Database) -> None:
    # The public interface of the frontend carries its FQDN; compute-1-0's eth1 its own alias.
    assert names(db, "espresso.rocksclusters.org") == ["frontend-0-0"]
    assert names(db, "c10-public.example.org") == ["compute-1-0"]


def test_the_fqdn_of_a_host(db: Database) -> None:
    assert names(db, "vm-container-0-0.local") == ["vm-container-0-0"]
    assert names(db, "compute-1-1.rocksclusters.org") == ["compute-1-1"]


@pytest.mark.parametrize(
    "mac", ["52:54:00:fd:00:02", "52:54:00:FD:00:02", "52-54-00-fd-00-02", "52:54:0:fd:0:2"]
)
def test_a_mac_in_any_case_or_spelling(db: Database, mac: str) -> None:
    assert names(db, mac) == ["vm-container-0-1"]


def test_a_mac_given_in_upper_case_at_init_is_found(db: Database) -> None:
    assert names(db, "00:16:3e:00:00:aa") == ["frontend-0-0"]


def test_an_ip(db: Database) -> None:
    assert names(db, "10.1.255.254") == ["vm-container-0-0"]
    assert names(db, "10.1.1.1") == ["frontend-0-0"]
    assert names(db, "137.110.119.117") == ["frontend-0-0"]
    assert names(db, "137.110.119.200") == ["compute-1-0"]


def test_an_unused_ip_or_mac_is_not_found(db: Database) -> None:
    for expr in ("10.1.255.1", "52:54:00:fd:00:09"):
        with pytest.raises(NotFound, match="unknown host"):
            names(db, expr)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("compute", ["compute-1-0", "compute-1-1"]),
        ("Compute", ["compute-1-0", "compute-1-1"]),
        ("vm-container", ["vm-container-0-0", "vm-container-0-1"]),
        ("VM Container", ["vm-container-0-0", "vm-container-0-1"]),
        ("frontend", ["frontend-0-0"]),
    ],
)
def test_an_appliance_or_membership(db: Database, expr: str, expected: list[str]) -> None:
    assert names(db, expr) == expected


def test_an_appliance_without_hosts_names_nothing(db: Database) -> None:
    with pytest.raises(NotFound, match="unknown host 'hosted-vm'"):
        names(db, "hosted-vm")


def test_a_rack(db: Database) -> None:
    assert names(db, "rack0") == ["frontend-0-0", "vm-container-0-0", "vm-container-0-1"]
    assert names(db, "rack1") == ["compute-1-0", "compute-1-1"]
    assert names(db, "RACK1") == ["compute-1-0", "compute-1-1"]
    with pytest.raises(NotFound):
        names(db, "rack7")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("vm-container-%", ["vm-container-0-0", "vm-container-0-1"]),
        ("vm-container-*", ["vm-container-0-0", "vm-container-0-1"]),
        ("%-1", ["vm-container-0-1", "compute-1-1"]),
        ("*-1-*", ["compute-1-0", "compute-1-1"]),
        ("%", ALL),
        ("*", ALL),
        ("compute-1-%0", ["compute-1-0"]),
    ],
)
def test_patterns(db: Database, pattern: str, expected: list[str]) -> None:
    assert names(db, pattern) == expected


def test_patterns_are_case_insensitive_on_every_database(db: Database) -> None:
    assert names(db, "VM-Container-%") == ["vm-container-0-0", "vm-container-0-1"]


@pytest.mark.parametrize("pattern", ["vm-container-0-_", "vm_container-%", "%_%", "compute-1-_*"])
def test_underscore_is_literal_not_a_wildcard(db: Database, pattern: str) -> None:
    with pytest.raises(NotFound, match="unknown host"):
        names(db, pattern)


def test_backslash_in_a_pattern_is_literal(db: Database) -> None:
    with pytest.raises(NotFound):
        names(db, "vm\\-container-%")


def test_expressions_combine_without_duplicates_in_the_order_given(db: Database) -> None:
    assert names(db, "compute-1-1", "rack1", "10.1.255.253", "vm-container-0-1") == [
        "compute-1-1",
        "compute-1-0",
        "vm-container-0-1",
    ]


@pytest.mark.parametrize(
    "expr",
    [
        "nosuch",
        "select * from hosts",
        "'; drop table hosts; --",
        "%' OR 1=1 --",
        "' OR '1'='1",
        "compute-1-0; DELETE FROM hosts",
        "",
        "   ",
        "x" * 300,
    ],
)
def test_unknown_and_sql_text_are_not_found_and_change_nothing(db: Database, expr: str) -> None:
    with pytest.raises(NotFound, match="unknown host"):
        names(db, expr)
    assert names(db) == ALL


def test_one_unknown_among_known_is_not_found_naming_it(db: Database) -> None:
    with pytest.raises(NotFound, match="'nosuch'"):
        names(db, "compute-1-0", "nosuch")


def test_resolve_host_needs_exactly_one(db: Database) -> None:
    with db.transaction() as s:
        assert resolve_host(s, "52:54:00:fd:00:01").name == "vm-container-0-0"
        with pytest.raises(UserError, match="names 2 hosts"):
            resolve_host(s, "compute")
        with pytest.raises(NotFound):
            resolve_host(s, "nosuch")


def test_a_host_named_like_an_appliance_wins_over_the_appliance(db: Database) -> None:
    # `rocks add host compute` is refused now (check_plain_name); a database from before may
    # still hold such a host, and the resolver must keep naming just it.
    inventory.add_host(db, "compute-5-0", "Compute", rack=5)
    with db.transaction(write=True) as s:
        s.execute(sa.update(tables.hosts).where(tables.hosts.c.name == "compute-5-0")
                  .values(name="compute"))  # fmt: skip
    assert names(db, "compute") == ["compute"]
    with pytest.raises(UserError, match="'compute' is read by host expressions as appliance"):
        inventory.add_host(db, "compute", "Compute", rack=5)


def test_grammar_clash_names_what_a_host_name_would_also_mean() -> None:
    words = ["compute", "Compute", "vm-container", "VM Container"]
    assert grammar_clash("compute-0-0", words) is None
    assert grammar_clash("rack0-node", words) is None
    assert grammar_clash("espresso.rocksclusters.org", words) is None
    assert grammar_clash("rack07", words) == "rack 7 (every host in it)"
    assert grammar_clash("COMPUTE", words) == "appliance 'compute' (every host of it)"
    assert grammar_clash("52-54-00-12-34-56", words) == "MAC address 52:54:00:12:34:56"
    assert grammar_clash("10.1.1.1", words) == "IP address 10.1.1.1"
    assert grammar_clash("c%", words) == "a pattern (% and * match other hosts)"
    assert grammar_clash("c*", words) == "a pattern (% and * match other hosts)"
