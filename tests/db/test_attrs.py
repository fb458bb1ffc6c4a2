"""Attributes resolve host > appliance > global; values are stored and listed exactly."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from flightdeck.db import attrs
from flightdeck.db.engine import Database, open_database
from flightdeck.db.models import Appliance, Host
from flightdeck.errors import UserError
from flightdeck.services import attributes, inventory
from flightdeck.services.frontend import FrontendSpec, init_frontend

XML = "<cpu mode='x'/>"
TRICKY = [
    XML,
    "<cpu mode='host-passthrough'><feature policy='require' name='vmx'/></cpu>",
    'a "quoted" value; with & and <angles> and \\backslash',
    "line one\nline two",
    "'; drop table hosts; --",
    "ünïcødé ☃",
    "   leading and trailing spaces   ",
    "",
]


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    init_frontend(
        FrontendSpec(
            name="espresso.rocksclusters.org",
            public_ip="137.110.119.117",
            public_netmask="255.255.255.0",
            private_ip="10.1.1.1",
            private_netmask="255.255.0.0",
        ),
        db_url,
    )
    database = open_database(db_url)
    for name, membership in (("vm-container-0-0", "VM Container"), ("compute-0-0", "Compute"),
                             ("compute-0-1", "Compute")):  # fmt: skip
        inventory.add_host(database, name, membership)
    yield database
    database.dispose()


def host(s: Any, name: str) -> Host:
    h = s.scalar(select(Host).where(Host.name == name))
    assert h is not None
    return h


def value(db: Database, name: str, attr: str) -> str | None:
    with db.transaction() as s:
        return attrs.resolve(s, host(s, name), attr)


def app_id(db: Database, name: str) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(Appliance.id).where(Appliance.name == name)))


# Resolution -----------------------------------------------------------------------------------


def test_host_over_appliance_over_global(db: Database) -> None:
    # Any name: stored as given (a name Flightdeck understands is checked: test_validation).
    assert value(db, "compute-0-0", "cpu_note") is None
    attributes.set_global(db, "cpu_note", "global")
    assert value(db, "compute-0-0", "cpu_note") == "global"
    attributes.set_appliance(db, ["compute"], "cpu_note", "appliance")
    assert value(db, "compute-0-0", "cpu_note") == "appliance"
    assert value(db, "vm-container-0-0", "cpu_note") == "global"
    attributes.set_host(db, ["compute-0-0"], "cpu_note", "host")
    assert value(db, "compute-0-0", "cpu_note") == "host"
    assert value(db, "compute-0-1", "cpu_note") == "appliance"
    # Removing a level uncovers the next one.
    attributes.remove_host(db, ["compute-0-0"], "cpu_note")
    assert value(db, "compute-0-0", "cpu_note") == "appliance"
    attributes.remove_appliance(db, ["compute"], "cpu_note")
    assert value(db, "compute-0-0", "cpu_note") == "global"
    attributes.remove_global(db, "cpu_note")
    assert value(db, "compute-0-0", "cpu_note") is None


def test_an_empty_host_value_still_wins(db: Database) -> None:
    attributes.set_global(db, "kvm_device_0", "<disk/>")
    attributes.set_host(db, ["compute-0-1"], "kvm_device_0", "")
    assert value(db, "compute-0-1", "kvm_device_0") == ""


def test_resolve_many_answers_for_every_host_at_once(db: Database) -> None:
    attributes.set_global(db, "kvm", "false")
    attributes.set_host(db, ["compute-0-1"], "kvm", "yes")
    with db.transaction() as s:
        hosts = list(s.scalars(select(Host).order_by(Host.name)))
        got = {next(h.name for h in hosts if h.id == k): v
               for k, v in attrs.resolve_many(s, hosts, "kvm").items()}  # fmt: skip
        assert attrs.resolve_many(s, [], "kvm") == {}
        assert attrs.resolve_many(s, hosts, "never_set") == {}
    assert got == {
        "compute-0-0": "false",
        "compute-0-1": "yes",
        "frontend-0-0": "true",  # set on the frontend host by init
        "vm-container-0-0": "true",  # the VM Container appliance's
    }


def test_resolve_all_lists_sources(db: Database) -> None:
    attributes.set_appliance(db, ["compute"], "managed", "false")
    attributes.set_host(db, ["compute-0-0"], "Kickstart_PublicHostname", "mine")
    with db.transaction() as s:
        rows = {r.name: (r.value, r.source) for r in attrs.resolve_all(s, host(s, "compute-0-0"))}
    assert rows["managed"] == ("false", "A")
    assert rows["Kickstart_PublicHostname"] == ("mine", "H")
    assert rows["airboss"] == ("localhost", "G")
    assert "kvm" not in rows


def test_a_cached_block_answers_as_the_database_does_and_reads_each_level_once(
    db: Database,
) -> None:
    """`attrs.cached`: every answer equals the uncached one, for every host and name (own,
    appliance's, global, empty, unset), with three reads for all the hosts together."""
    from sqlalchemy import event

    attributes.set_global(db, "cpu_note", "global")
    attributes.set_global(db, "kvm_device_0", "<disk/>")
    attributes.set_appliance(db, ["compute"], "cpu_note", "appliance")
    attributes.set_host(db, ["compute-0-0"], "cpu_note", "host")
    attributes.set_host(db, ["compute-0-1"], "kvm_device_0", "")
    names = ["cpu_note", "kvm_device_0", "kvm", "managed", "never_set", "airboss"]
    with db.transaction() as s:
        hosts = list(s.scalars(select(Host).order_by(Host.name)))
        plain = (
            {n: attrs.resolve_many(s, hosts, n) for n in names},
            {h.id: attrs.resolve_all(s, h) for h in hosts},
            {n: attrs.global_value(s, n) for n in names},
        )
    statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    with db.transaction() as s, attrs.cached(s):
        hosts = list(s.scalars(select(Host).order_by(Host.name)))
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            with attrs.cached(s):  # nested: the same cache
                cached = (
                    {n: attrs.resolve_many(s, hosts, n) for n in names},
                    {h.id: attrs.resolve_all(s, h) for h in hosts},
                    {n: attrs.global_value(s, n) for n in names},
                )
            one = {n: attrs.resolve(s, hosts[0], n) for n in names}
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert len(statements) == 3, statements  # global, appliance and host rows, once
    assert cached == plain
    assert one == {n: plain[0][n].get(hosts[0].id) for n in names}
    assert plain[0]["kvm_device_0"][hosts[1].id] == ""  # compute-0-1's empty value wins
    with db.transaction() as s:  # the block is over: reads go to the database again
        assert "flightdeck.attrs" not in s.info


def test_preload_reads_every_host_at_once_and_only_in_a_cached_block(db: Database) -> None:
    """`attrs.preload`: three statements for all the hosts, none for the answers after it;
    outside a cached block it reads nothing (and the answers go to the database as before)."""
    from sqlalchemy import event

    attributes.set_host(db, ["compute-0-1"], "cpu_note", "mine")
    statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    with db.transaction() as s:
        hosts = list(s.scalars(select(Host).order_by(Host.name)))
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            attrs.preload(s, hosts)
            assert statements == []  # not cached: nothing to fill
            with attrs.cached(s):
                attrs.preload(s, hosts)
                assert len(statements) == 3, statements
                values = {h.name: attrs.resolve(s, h, "cpu_note") for h in hosts}
                assert len(statements) == 3, statements  # answered from memory
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    assert values["compute-0-1"] == "mine" and values["compute-0-0"] is None


def test_is_true() -> None:
    for word in ("true", "TRUE", "yes", "y", "on", "1", " true "):
        assert attrs.is_true(word)
    for word in (None, "", "false", "no", "0", "truthy", "2"):
        assert not attrs.is_true(word)


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a=b", "x" * 129, "a;b", "<x>", "é"])
def test_invalid_attribute_names(db: Database, name: str) -> None:
    before = attributes.list_global(db)
    with pytest.raises(UserError, match="invalid attribute name"):
        attributes.set_global(db, name, "v")
    with pytest.raises(UserError, match="invalid attribute name"):
        attributes.set_host(db, ["compute-0-0"], name, "v")
    with pytest.raises(UserError, match="invalid attribute name"):
        attributes.set_appliance(db, ["compute"], name, "v")
    assert attributes.list_global(db) == before
    assert [r[1:] for r in attributes.list_host(db, ["compute-0-0"])] == [
        r[1:] for r in attributes.list_host(db, ["compute-0-1"])
    ]
    assert attributes.list_appliance(db, ["compute"]) == []


@pytest.mark.parametrize("name", ["a", "_x", "Kickstart_PublicHostname", "kvm.device-0", "x" * 128])
def test_valid_attribute_names(db: Database, name: str) -> None:
    attributes.set_global(db, name, "v")
    assert attributes.list_global(db, name) == [(name, "v")]


# Values are stored exactly --------------------------------------------------------------------


@pytest.mark.parametrize("text", TRICKY)
def test_values_round_trip_exactly_at_every_level(db: Database, text: str) -> None:
    attributes.set_global(db, "g", text)
    attributes.set_appliance(db, ["compute"], "a", text)
    attributes.set_host(db, ["compute-0-0"], "h", text)
    assert attributes.list_global(db, "g") == [("g", text)]
    assert ("compute", "a", text) in attributes.list_appliance(db, ["compute"])
    assert ("compute-0-0", "h", text, "H") in attributes.list_host(db, ["compute-0-0"], "h")
    assert value(db, "compute-0-0", "a") == text


def test_setting_again_replaces_the_value(db: Database) -> None:
    attributes.set_host(db, ["compute-0-0", "compute-0-1"], "x", "1")
    attributes.set_host(db, ["compute"], "x", "2")
    assert attributes.list_host(db, ["compute"], "x") == [
        ("compute-0-0", "x", "2", "H"),
        ("compute-0-1", "x", "2", "H"),
    ]


# Through the commands -------------------------------------------------------------------------


def test_list_host_attr_shows_the_source_letter(espresso: Any) -> None:
    espresso.ok("set", "attr", "cpu_note", "host-model")
    espresso.ok("set", "appliance", "attr", "vm-container", "cpu_note", "host-passthrough")
    espresso.ok("set", "host", "attr", "vm-container-0-1", "cpu_note", XML)
    out = espresso.ok("list", "host", "attr", "vm-container-0-%", "attr=cpu_note")
    assert out == (
        "HOST              ATTR     VALUE            SOURCE\n"
        "vm-container-0-0: cpu_note host-passthrough A\n"
        f"vm-container-0-1: cpu_note {XML}  H\n"
    )
    out = espresso.ok("list", "host", "attr", "frontend-0-0", "attr=cpu_note")
    assert out == "HOST          ATTR     VALUE      SOURCE\nfrontend-0-0: cpu_note host-model G\n"


def test_list_host_attr_of_every_attribute_is_sorted_and_complete(espresso: Any) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-0", "zeta", "1")
    rows = json.loads(espresso.ok("list", "host", "attr", "vm-container-0-0", "output-format=json"))
    names = [r["attr"] for r in rows]
    assert names == sorted(names, key=str.lower)
    by_name = {r["attr"]: (r["value"], r["source"]) for r in rows}
    assert by_name["zeta"] == ("1", "H")
    assert by_name["kvm"] == ("true", "A")
    assert by_name["vm_mac_base_addr"] == ("76:77:6e:40:00:00", "G")


@pytest.mark.parametrize("text", TRICKY[:-1])
def test_xml_and_other_values_are_stored_and_listed_exactly(espresso: Any, text: str) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-0", "site_device0", text)
    espresso.ok("set", "host", "attr", "vm-container-0-1", "site_device0", f"value={text}")
    rows = json.loads(
        espresso.ok("list", "host", "attr", "vm-container-%", "attr=site_device0",
                    "output-format=json")
    )  # fmt: skip
    assert [(r["host"], r["value"], r["source"]) for r in rows] == [
        ("vm-container-0-0", text, "H"),
        ("vm-container-0-1", text, "H"),
    ]
    espresso.ok("set", "attr", "g_value", text)
    rows = json.loads(espresso.ok("list", "attr", "g_value", "output-format=json"))
    assert rows == [{"attr": "g_value", "value": text}]
    got = list(csv.reader(io.StringIO(espresso.ok("list", "attr", "output-format=csv"))))
    assert got[0] == ["attr", "value"]
    assert ["g_value", text] in got


def test_xml_value_is_what_the_table_prints(espresso: Any) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-0", "cpu_note", XML)
    out = espresso.ok("list", "host", "attr", "vm-container-0-0", "attr=cpu_note",
                      "output-header=no")  # fmt: skip
    assert out == f"vm-container-0-0: cpu_note {XML} H\n"


def test_remove_host_attr_of_an_unset_attribute_is_refused(espresso: Any) -> None:
    before = espresso.dump()
    r = espresso("remove", "host", "attr", "vm-container-0-0", "nosuch")
    assert r.code == 1
    assert r.err == "error - no host attribute 'nosuch' is set on vm-container-0-0\n"
    assert espresso.dump() == before
