"""cli/main.py: dispatch, help, and bad input refused in one line with the database unchanged."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest

from flightdeck.cli.command import Command
from flightdeck.cli.params import parse
from flightdeck.cli.registry import iter_commands, resolve

COMMANDS = list(iter_commands())
SQL_TEXTS = ["select * from hosts", "'; drop table hosts; --", "%' OR 1=1 --"]


def refused(rocks: Any, *argv: str, code: int | None = None, says: str = "") -> str:
    """Run a command that must fail cleanly; returns the error message."""
    before = rocks.dump()
    r = rocks(*argv)
    after = rocks.dump()
    assert r.code != 0, f"rocks {' '.join(argv)} succeeded: {r.out}"
    if code is not None:
        assert r.code == code, r.err
    assert r.out == ""
    assert r.err.startswith("error - "), r.err
    assert r.err.endswith("\n") and r.err.count("\n") == 1, f"not one line: {r.err!r}"
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    assert says in r.err, r.err
    assert before == after, "a refused command changed the database"
    return r.err


# Commands and help ----------------------------------------------------------------------------


def test_the_command_tree_is_not_empty_and_words_match_modules() -> None:
    words = [w for w, _ in COMMANDS]
    assert len(words) >= 30
    assert words == sorted(words)
    for w, cls in COMMANDS:
        expected = "flightdeck.commands." + w.replace(" ", ".").replace("-", "_")
        assert cls.__module__ in (expected, expected + ".__init__")


@pytest.mark.parametrize(("words", "cls"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_command_has_a_summary_an_example_and_help(words: str, cls: type[Command]) -> None:
    from flightdeck.cli.main import run

    assert cls.summary.strip(), f"rocks {words} has no summary"
    assert cls.examples, f"rocks {words} has no example"
    for ex in cls.examples:
        assert ex.command.startswith("rocks "), ex.command
        assert ex.explanation.strip()

    import io

    from flightdeck.cli.command import Context

    for form in (f"{words} help", f"{words} --help"):
        out, err = io.StringIO(), io.StringIO()
        assert run(form.split(), Context(out=out, err=err)) == 0, err.getvalue()
        text = out.getvalue()
        assert text.startswith(f"rocks {words}"), text  # the usage line
        assert cls.summary in text
        for p in cls.params:
            assert f"{p.name}=" in text or f"{{{p.name}}}" in text or f"[{p.name}]" in text
            assert p.help in text
        for ex in cls.examples:
            assert ex.command in text
        assert err.getvalue() == ""


@pytest.mark.parametrize(("words", "cls"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_example_resolves_to_its_command_and_parses(words: str, cls: type[Command]) -> None:
    for ex in cls.examples:
        argv = shlex.split(ex.command)[1:]
        found, rest = resolve(argv)
        # An alias (create host vm) may show the examples of the command it stands for.
        assert found is cls or issubclass(cls, found), f"{ex.command} is not rocks {words}"
        parse(rest, cls.args, cls.params, cls.words)


def test_rocks_help_lists_every_command_with_its_summary(rocks: Any) -> None:
    out = rocks.ok("help")
    assert rocks.ok() == out
    for words, cls in COMMANDS:
        assert re.search(rf"^  rocks {re.escape(words)}\s+{re.escape(cls.summary)}$", out, re.M), (
            words
        )
    assert len(out.splitlines()) == len(COMMANDS) + 1


def test_rocks_help_with_words_lists_only_those_commands(rocks: Any) -> None:
    out = rocks.ok("help", "list", "host")
    listed = re.findall(r"^  rocks (.+?)  ", out, re.M)
    assert listed
    assert all(w.startswith("list host") for w in listed)
    assert {w.strip() for w in listed} == {w for w, _ in COMMANDS if w.startswith("list host")}


def test_help_needs_no_database(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from flightdeck.cli.command import Context
    from flightdeck.cli.main import run

    monkeypatch.setenv("FLIGHTDECK_DB", f"sqlite:///{tmp_path / 'absent.db'}")
    out = io.StringIO()
    assert run(["add", "host", "help"], Context(out=out, err=io.StringIO())) == 0
    assert out.getvalue().startswith("rocks add host {name}")
    assert not (tmp_path / "absent.db").exists()


def test_a_command_without_a_database_says_how_to_make_one(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from flightdeck.cli.command import Context
    from flightdeck.cli.main import run

    monkeypatch.setenv("FLIGHTDECK_DB", f"sqlite:///{tmp_path / 'absent.db'}")
    monkeypatch.delenv("FLIGHTDECK_DEBUG", raising=False)
    err = io.StringIO()
    assert run(["list", "host"], Context(out=io.StringIO(), err=err)) == 1
    assert err.getvalue().startswith("error - no Flightdeck database at ")
    assert "rocks init frontend" in err.getvalue()
    assert not (tmp_path / "absent.db").exists()


# Bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["lst", "host"], "'rocks list host'"),
        (["list", "hots"], "'rocks list host'"),
        (["add", "hots", "interface"], "'rocks add host interface'"),
        (["lsit", "network"], "'rocks list network'"),
    ],
)
def test_unknown_command_exits_2_with_did_you_mean(
    espresso: Any, argv: list[str], hint: str
) -> None:
    err = refused(espresso, *argv, code=2, says="unknown command")
    assert "did you mean" in err
    assert hint in err


def test_unknown_command_with_nothing_close_still_points_to_help(espresso: Any) -> None:
    err = refused(espresso, "frobnicate", "everything", code=2, says="unknown command")
    assert "rocks help" in err


def test_unknown_host(espresso: Any) -> None:
    refused(espresso, "list", "host", "nosuch", says="unknown host 'nosuch'")
    refused(espresso, "list", "host", "interface", "vm-container-9-9", says="unknown host")
    refused(espresso, "remove", "host", "vm-container-0-0", "nosuch", says="unknown host 'nosuch'")
    refused(espresso, "set", "host", "attr", "nosuch", "kvm", "true", says="unknown host")
    refused(espresso, "add", "host", "interface", "nosuch", "eth0", says="unknown host")


@pytest.mark.parametrize(
    ("argv", "says", "code"),
    [
        (
            ["add", "host", "x", "membership=Compute", "cpus=abc"],
            "cpus='abc' must be an integer",
            1,
        ),
        (["add", "host", "x", "membership=Compute", "cpus=0"], "positive integer", 1),
        (["add", "host", "x", "membership=Compute", "rack=-1"], "rack=-1 must be zero", 1),
        (["add", "host", "x", "membership=Compute", "rank=one"], "must be an integer", 1),
        (["add", "host", "x", "membership=Compute", "bogus=1"], "unknown parameter 'bogus'", 2),
        (["add", "host", "x", "membership=Compute", "rack=1", "rack=2"], "given twice", 2),
        (["add", "host", "x"], "needs membership=", 2),
        (["add", "host", "x", "membership=Nope"], "membership 'Nope' is not valid", 1),
        (["add", "host", "bad_name", "membership=Compute"], "invalid host name", 1),
        (["add", "host", "10.1.1.9", "membership=Compute"], "invalid host name", 1),
        (["add", "host", "vm-container-0-0", "membership=Compute"], "already in the database", 1),
        (["list", "cluster", "status=maybe"], "status='maybe' is not a boolean", 1),
        (["list", "host", "output-header=nah"], "is not a boolean", 1),
        (
            ["set", "host", "interface", "vm-container-0-0", "eth0", "disable-kvm=perhaps"],
            "is not a boolean",
            1,
        ),
        (["add", "host", "interface", "vm-container-0-0", "eth1", "vlan=abc"], "integer", 1),
        (["add", "host", "interface", "vm-container-0-0", "eth1", "vlan=5000"], "VLAN", 1),
        (["add", "host", "interface", "vm-container-0-0", "eth1", "mac=zz"], "invalid MAC", 1),
        (["add", "host", "interface", "vm-container-0-0", "eth0"], "already has an interface", 1),
        (["add", "host", "interface", "vm-container-0-0", "eth 1"], "invalid interface name", 1),
        (["add", "host", "interface", "vm-container-0-0", "eth1", "ip=10.1.2"], "invalid IP", 1),
        (["set", "host", "boot", "vm-container-0-0", "action=reboot"], "invalid boot action", 1),
        (["set", "host", "vm-container-0-0"], "nothing to change", 2),
        (["set", "attr", "bad name", "x"], "invalid attribute name", 1),
        (["remove", "attr", "never_set"], "no global attribute", 1),
        (["add", "network", "opt", "192.168.1.1", "255.255.255.0"], "host bits set", 1),
        (["add", "network", "private", "192.168.1.0", "255.255.255.0"], "already exists", 1),
        (["list", "network", "stray"], "takes no arguments", 2),
    ],
)
def test_malformed_input_is_refused(espresso: Any, argv: list[str], says: str, code: int) -> None:
    refused(espresso, *argv, says=says, code=code)


def test_duplicate_mac_in_any_case_or_spelling(espresso: Any) -> None:
    for mac in ("52:54:00:fd:00:01", "52:54:00:FD:00:01", "52-54-00-fd-00-01", "52:54:0:fd:0:1"):
        refused(
            espresso,
            "add", "host", "interface", "vm-container-0-1", "eth1", f"mac={mac}",
            says="MAC 52:54:00:fd:00:01 is already used by vm-container-0-0 eth0",
        )  # fmt: skip
    refused(
        espresso,
        "set", "host", "interface", "vm-container-0-1", "eth0", "mac=52:54:00:FD:00:01",
        says="already used",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("ip", "says"),
    [
        ("10.2.0.1", "IP 10.2.0.1 is outside network private (10.1.0.0/16)"),
        ("10.1.0.0", "network address"),
        ("10.1.255.255", "broadcast address"),
        ("10.1.1.1", "already used by frontend-0-0 eth0"),
    ],
)
def test_ip_outside_its_network_or_taken(espresso: Any, ip: str, says: str) -> None:
    refused(
        espresso,
        "add", "host", "interface", "vm-container-0-0", "eth1", f"ip={ip}", "subnet=private",
        says=says,
    )  # fmt: skip


def test_ip_in_no_known_network(espresso: Any) -> None:
    refused(
        espresso,
        "add", "host", "interface", "vm-container-0-0", "eth1", "ip=192.168.7.7",
        says="in none of the known networks",
    )  # fmt: skip
    refused(
        espresso,
        "set", "host", "interface", "vm-container-0-0", "eth0", "ip=137.110.120.1",
        "subnet=public",
        says="outside network public",
    )  # fmt: skip


@pytest.mark.parametrize("sql", SQL_TEXTS)
def test_sql_text_is_just_an_unknown_host(espresso: Any, sql: str) -> None:
    says = "unknown host"
    refused(espresso, "list", "host", sql, says=says)
    refused(espresso, "list", "host", "interface", sql, says=says)
    refused(espresso, "list", "host", "attr", sql, says=says)
    refused(espresso, "remove", "host", sql, says=says)
    refused(espresso, "set", "host", "attr", sql, "kvm", "false", says=says)
    refused(espresso, "set", "host", sql, "cpus=4", says=says)
    refused(espresso, "set", "host", "boot", sql, "install", says=says)
    refused(espresso, "add", "host", "interface", sql, "eth5", says=says)
    # And as a value: a name that is refused, a membership that does not exist.
    refused(espresso, "add", "host", sql, "membership=Compute", says="invalid host name")
    refused(espresso, "add", "host", "y", f"membership={sql}", says="is not valid")


def test_sql_text_mixed_with_real_hosts_still_refuses_everything(espresso: Any) -> None:
    refused(espresso, "remove", "host", "vm-container-0-0", "'; drop table hosts; --")
    assert "vm-container-0-0" in espresso.ok("list", "host")


def test_very_long_argument_is_an_unknown_host_with_a_short_message(espresso: Any) -> None:
    err = refused(espresso, "list", "host", "x" * 5000, says="unknown host")
    assert len(err) < 200


def test_errors_from_the_real_executable_are_one_line(espresso: Any) -> None:
    before = espresso.dump()
    for argv in (
        ["lst", "host"],
        ["list", "host", "'; drop table hosts; --"],
        ["add", "host", "x", "membership=Compute", "cpus=abc"],
        ["add", "host", "interface", "vm-container-0-1", "eth1", "mac=52:54:00:FD:00:01"],
    ):
        p = espresso.process(argv)
        assert p.returncode != 0
        assert p.stdout == ""
        assert p.stderr.startswith("error - ") and p.stderr.count("\n") == 1, p.stderr
    assert espresso.dump() == before


@pytest.mark.parametrize(
    "argv",
    [
        ["add", "roll", "kvm-6.2-0.x86_64.disk1.iso"],
        ["enable", "roll", "kvm"],
        ["create", "distro"],
        ["run", "roll", "kvm"],
        ["list", "roll"],
        ["list", "host", "profile", "compute-0-0"],
        ["sync", "config"],
    ],
)
def test_the_guides_rocks_only_commands_say_how_flightdeck_is_installed(
    espresso: Any, argv: list[str]
) -> None:
    """Seed 001 §2: the roll is added with add/enable roll, create distro, run roll. Flightdeck
    has none of that: one line on what it does instead, not "did you mean"."""
    err = refused(espresso, *argv, code=2, says="is a Rocks command")
    assert "did you mean" not in err
    assert err.count("\n") == 1


def test_rocks_only_commands_name_no_real_command() -> None:
    from flightdeck.cli.registry import NOT_IN_FLIGHTDECK, index

    assert not set(NOT_IN_FLIGHTDECK) & set(index())
    assert "pip install 'flightdeck[server]'" in NOT_IN_FLIGHTDECK["add roll"]
