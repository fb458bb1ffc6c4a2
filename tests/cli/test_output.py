"""Tables in the Rocks format (reference §2.1 `endOutput`), plus JSON and CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest

from flightdeck.cli.output import Field, Table, render
from flightdeck.errors import UsageError


def hosts_table(**kw: Any) -> Table:
    t = Table(["host", "subnet", "iface", "mac"], **kw)
    t.add("compute-0-0", "private", "eth0", "52:54:00:00:00:01")
    t.add("compute-0-0", "public", "eth1", None)
    return t


# The Rocks table ------------------------------------------------------------------------------


def test_owner_column_is_dropped_when_every_row_has_the_same_owner() -> None:
    assert render(hosts_table()) == (
        "SUBNET  IFACE MAC\nprivate eth0  52:54:00:00:00:01\npublic  eth1  -----------------\n"
    )


def test_owner_column_is_kept_when_asked() -> None:
    assert render(hosts_table(keep_owner=True)) == (
        "HOST         SUBNET  IFACE MAC\n"
        "compute-0-0: private eth0  52:54:00:00:00:01\n"
        "compute-0-0: public  eth1  -----------------\n"
    )


def test_owner_column_is_kept_when_owners_differ() -> None:
    t = Table(["host", "cpus"])
    t.add("a", 1)
    t.add("compute-0-10", 16)
    assert render(t) == "HOST          CPUS\na:            1\ncompute-0-10: 16\n"


def test_table_without_owner_prints_every_column_plainly() -> None:
    t = Table(["attr", "value"], owner=False)
    t.add("kvm", "true")
    t.add("kvm", "false")
    assert render(t) == "ATTR VALUE\nkvm  true\nkvm  false\n"


def test_headers_upper_case_cells_left_justified_single_space() -> None:
    t = Table(["Name", "a-b"], owner=False)
    t.add("x", "longer value")
    t.add("much longer", "y")
    lines = render(t).splitlines()
    assert lines == ["NAME        A-B", "x           longer value", "much longer y"]


def test_empty_cells_are_dashes_to_the_column_width_and_lines_have_no_trailing_space() -> None:
    t = Table(["host", "comment", "rack"], keep_owner=True)
    t.add("a", "", 0)
    t.add("b", None, None)
    t.add("c", "something", 10)
    assert render(t) == (
        "HOST COMMENT   RACK\na:   --------- 0\nb:   --------- ----\nc:   something 10\n"
    )
    assert all(line == line.rstrip() for line in render(t).splitlines())


def test_a_dash_is_printed_even_where_the_column_would_be_narrower() -> None:
    t = Table(["x"], owner=False)
    t.add(None)
    assert render(t, header=False) == "-\n"


def test_blank_fill_when_the_command_asks_for_it() -> None:
    t = Table(["frontend", "client nodes", "type"], keep_owner=True, dash_empty=False)
    t.add("espresso", None, "physical")
    lines = render(t).splitlines()
    assert lines[1] == "espresso:              physical"
    assert "-" not in lines[1]


def test_cell_types_are_printed_as_rocks_does() -> None:
    t = Table(["k", "v"], owner=False)
    t.add("bool", True)
    t.add("no", False)
    t.add("int", 0)
    t.add("float", 1.5)
    assert render(t, header=False).split() == [
        "bool",
        "yes",
        "no",
        "no",
        "int",
        "0",
        "float",
        "1.5",
    ]


def test_output_header_no_drops_the_header_line_and_its_width() -> None:
    assert render(hosts_table(), header=False) == (
        "private eth0 52:54:00:00:00:01\npublic  eth1 -----------------\n"
    )


def test_output_col_selects_and_orders_columns() -> None:
    assert render(hosts_table(), columns="mac,iface") == (
        "MAC               IFACE\n52:54:00:00:00:01 eth0\n----------------- eth1\n"
    )


def test_output_col_is_case_insensitive_and_ignores_blanks() -> None:
    assert render(hosts_table(), columns=" IFACE , ") == "IFACE\neth0\neth1\n"


def test_output_col_may_keep_the_owner_column() -> None:
    out = render(hosts_table(keep_owner=True), columns="host,iface")
    assert out == "HOST         IFACE\ncompute-0-0: eth0\ncompute-0-0: eth1\n"


def test_output_col_names_the_owner_column_even_when_every_row_shares_it() -> None:
    """`output-col=host,mac` works on a frontend with one host (the shared owner is trimmed
    from the default table, not from the columns a script asks for)."""
    out = render(hosts_table(), columns="host,mac", header=False)
    assert out == "compute-0-0: 52:54:00:00:00:01\ncompute-0-0: -----------------\n"


def test_output_col_unknown_column_is_a_usage_error_naming_the_columns() -> None:
    with pytest.raises(UsageError, match=r"unknown column nope.*subnet, iface, mac"):
        render(hosts_table(), columns="iface,nope")


def test_empty_table_prints_only_the_header() -> None:
    assert render(Table(["host", "cpus"])) == "HOST CPUS\n"


# JSON and CSV ---------------------------------------------------------------------------------


def test_json_is_one_typed_record_per_row_with_the_owner_on_each() -> None:
    rows = json.loads(render(hosts_table(), fmt="json"))
    assert rows == [
        {"host": "compute-0-0", "subnet": "private", "iface": "eth0", "mac": "52:54:00:00:00:01"},
        {"host": "compute-0-0", "subnet": "public", "iface": "eth1", "mac": None},
    ], "the table drops a single owner; the records never do, and empty is null"


def test_json_honours_output_col_and_is_an_empty_list_for_no_rows() -> None:
    assert json.loads(render(hosts_table(), fmt="json", columns="iface")) == [
        {"iface": "eth0"},
        {"iface": "eth1"},
    ]
    assert json.loads(render(Table(["host"]), fmt="JSON")) == []


def test_headers_with_spaces_and_dashes_become_snake_case_keys() -> None:
    t = Table(["vm-host", "client nodes"], owner=False)
    t.add("a", "b")
    assert json.loads(render(t, fmt="json")) == [{"vm_host": "a", "client_nodes": "b"}]
    assert render(t, fmt="json", columns="client nodes") == render(
        t, fmt="json", columns="client_nodes"
    )


def _vms() -> Table:
    t = Table(
        [
            Field("vm_host", "", column="vm-host"),
            Field("cpus", "", "integer"),
            Field("macs", "", "list of strings", column="mac", continued=True),
            Field("up", "", "boolean"),
            Field("note", "", nullable=True, hide_empty=True),
        ],
        keep_owner=True,
    )
    t.add("vm-a", 2, ["52:54:00:00:00:01", "52:54:00:00:00:02"], True, None)
    t.add(vm_host="vm-b", cpus=1, macs=[], up=False, note=None)
    return t


def test_a_continued_list_is_one_record_and_several_table_rows() -> None:
    assert render(_vms()) == (
        "VM-HOST CPUS MAC               UP\n"
        "vm-a:   2    52:54:00:00:00:01 yes\n"
        ":       ---- 52:54:00:00:00:02 ---\n"
        "vm-b:   1    ----------------- no\n"
    )
    assert json.loads(render(_vms(), fmt="json")) == [
        {"vm_host": "vm-a", "cpus": 2, "macs": ["52:54:00:00:00:01", "52:54:00:00:00:02"],
         "up": True, "note": None},
        {"vm_host": "vm-b", "cpus": 1, "macs": [], "up": False, "note": None},
    ]  # fmt: skip
    rows = list(csv.reader(io.StringIO(render(_vms(), fmt="csv"))))
    assert rows == [
        ["vm_host", "cpus", "macs", "up", "note"],
        ["vm-a", "2", "52:54:00:00:00:01 52:54:00:00:00:02", "true", ""],
        ["vm-b", "1", "", "false", ""],
    ]


def test_a_hidden_empty_column_comes_back_when_named_or_filled() -> None:
    assert "NOTE" not in render(_vms())
    assert render(_vms(), columns="vm-host,note").splitlines()[0] == "VM-HOST NOTE"
    t = _vms()
    t.records[1]["note"] = "spare"
    assert render(t).splitlines()[0].endswith(" NOTE")


def test_a_multi_line_string_is_one_value_and_one_table_row_per_line() -> None:
    t = Table(
        [Field("host", ""), Field("key", "", column="public key", continued=True)],
        keep_owner=True,
        dash_empty=False,
    )
    t.add("fe", "-----BEGIN-----\nAAAA\n-----END-----\n")
    assert render(t) == (
        "HOST PUBLIC KEY\nfe:  -----BEGIN-----\n:    AAAA\n:    -----END-----\n"
    )
    assert json.loads(render(t, fmt="json")) == [
        {"host": "fe", "key": "-----BEGIN-----\nAAAA\n-----END-----\n"}
    ]


def test_grouped_records_print_their_owner_once() -> None:
    t = Table(["frontend", "node"], keep_owner=True, group=True)
    t.add("fe-a", None)
    t.add("fe-a", "n1")
    t.add("fe-b", None)
    assert render(t, header=False) == "fe-a: --\n:     n1\nfe-b: --\n"
    assert [r["frontend"] for r in json.loads(render(t, fmt="json"))] == ["fe-a", "fe-a", "fe-b"]


def test_times_are_utc_in_the_table_and_iso_8601_in_json_and_csv() -> None:
    t = Table([Field("time", "", "time")], owner=False)
    t.add(dt.datetime(2024, 5, 1, 12, 0, 3))  # naive, as SQLite gives it back: UTC
    t.add(dt.datetime(2024, 5, 1, 14, 0, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert render(t, header=False) == "2024-05-01 12:00:03\n2024-05-01 12:00:03\n"
    assert json.loads(render(t, fmt="json")) == [{"time": "2024-05-01T12:00:03Z"}] * 2
    assert render(t, fmt="csv", header=False) == "2024-05-01T12:00:03Z\n" * 2


def test_fields_must_be_snake_case_and_of_a_known_type() -> None:
    with pytest.raises(ValueError, match="snake_case"):
        Field("vm-host", "")
    with pytest.raises(ValueError, match="type"):
        Field("x", "", "float")


def test_a_record_must_give_every_field() -> None:
    t = Table(["a", "b"])
    with pytest.raises(TypeError):
        t.add("only one")
    with pytest.raises(TypeError):
        t.add(a="x")


def test_csv_parses_back_with_header_and_quotes_what_needs_it() -> None:
    t = Table(["attr", "value"], owner=False)
    t.add("cpu_mode", "<cpu mode='x'/>")
    t.add("list", 'a,b "c"')
    t.add("empty", None)
    out = render(t, fmt="csv")
    assert list(csv.reader(io.StringIO(out))) == [
        ["attr", "value"],
        ["cpu_mode", "<cpu mode='x'/>"],
        ["list", 'a,b "c"'],
        ["empty", ""],
    ]


def test_csv_without_header() -> None:
    out = render(hosts_table(), fmt="csv", header=False, columns="iface,subnet")
    assert list(csv.reader(io.StringIO(out))) == [["eth0", "private"], ["eth1", "public"]]


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="table, json or csv"):
        render(hosts_table(), fmt="yaml")


# Through real commands ------------------------------------------------------------------------


def test_list_host_keeps_its_owner_column(espresso: Any) -> None:
    out = espresso.ok("list", "host", "vm-container-0-0")
    assert out == (
        "HOST              MEMBERSHIP   CPUS RACK RANK RUNACTION INSTALLACTION COMMENT\n"
        "vm-container-0-0: VM Container 1    0    0    os        install       -------\n"
    )


def test_list_host_interface_drops_the_single_owner(espresso: Any) -> None:
    lines = espresso.ok("list", "host", "interface", "vm-container-0-1").splitlines()
    assert lines[0].split() == [
        "SUBNET", "IFACE", "MAC", "IP", "NETMASK", "MODULE", "NAME", "VLAN", "OPTIONS", "CHANNEL"
    ]  # fmt: skip
    assert lines[1].split() == [
        "private",
        "eth0",
        "52:54:00:fd:00:02",
        "10.1.255.253",
        "255.255.0.0",
        "------",
        "vm-container-0-1",
        "----",
        "-------",
        "-------",
    ]
    # Two hosts: the owner column comes back.
    both = espresso.ok("list", "host", "interface", "vm-container-0-%").splitlines()
    assert both[0].startswith("HOST ")
    assert both[1].startswith("vm-container-0-0: ")


def test_output_parameters_on_a_real_command(espresso: Any) -> None:
    out = espresso.ok("list", "host", "output-header=no", "output-col=host,rack,rank")
    assert out.splitlines() == [
        "frontend-0-0:     0 0",
        "vm-container-0-0: 0 0",
        "vm-container-0-1: 0 1",
    ]


def test_json_and_csv_of_a_real_command_parse_back(espresso: Any) -> None:
    rows = json.loads(espresso.ok("list", "host", "output-format=json"))
    assert [r["host"] for r in rows] == ["frontend-0-0", "vm-container-0-0", "vm-container-0-1"]
    assert rows[1]["membership"] == "VM Container"
    assert rows[1]["comment"] is None
    assert (rows[1]["cpus"], rows[1]["rack"], rows[1]["rank"]) == (1, 0, 0)
    parsed = list(csv.DictReader(io.StringIO(espresso.ok("list", "network", "output-format=csv"))))
    assert [(r["network"], r["subnet"], r["netmask"]) for r in parsed] == [
        ("private", "10.1.0.0", "255.255.0.0"),
        ("public", "137.110.119.0", "255.255.255.0"),
    ]


def test_bad_output_parameters_on_a_real_command_are_one_line_errors(espresso: Any) -> None:
    r = espresso("list", "host", "output-col=nope")
    assert (r.code, r.out) == (2, "")
    assert r.err.startswith("error - output-col: unknown column nope")
    assert r.err.count("\n") == 1
    r = espresso("list", "host", "output-format=xml")
    assert r.code == 2
    assert r.err.startswith("error - output-format='xml'")


def test_empty_table_without_header_prints_nothing() -> None:
    assert render(Table(["host", "membership"]), header=False) == ""
