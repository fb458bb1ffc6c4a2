"""`pilot` is the `rocks` dispatcher over the owner commands: one grammar, one help."""

from __future__ import annotations

import io

import pytest

from flightdeck.cli.command import Context
from flightdeck.cli.main import run
from flightdeck.cli.program import PILOT, ROCKS
from flightdeck.pilot.main import parse


def pilot(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), Context(out=out, err=err, program=PILOT))
    return code, out.getvalue(), err.getvalue()


def test_pilot_offers_exactly_the_owner_commands() -> None:
    from flightdeck.cli.registry import index, iter_commands

    owner = {words for words, cls in iter_commands() if cls.owner}
    assert set(index(PILOT)) == owner
    assert owner == {"set host power", "set cluster power", "list host macs", "list host isos",
                     "set host cdrom", "open host console", "create keys", "list jobs",
                     "report job",
                     # issue 18: capability tokens, Slurm's power saving, the audit chain
                     "create token", "attenuate", "revoke", "slurm resume", "slurm suspend",
                     "list audit", "verify audit",
                     # issue 19: the web dashboard
                     "open dashboard"}
    assert owner < set(index(ROCKS))
    code, out, _err = pilot("help")
    assert code == 0
    commands, _, params = out.partition("\n\n")
    assert all(line.startswith("  pilot ") for line in commands.splitlines()[1:])
    assert len(commands.splitlines()) == 1 + len(owner)
    # then the parameters every command that asks the Airboss takes (issue 15 part B)
    assert [line.split("=")[0].strip() for line in params.splitlines()[1:]] == \
        ["key", "token", "airboss", "ca"]


def test_rocks_only_commands_are_unknown_to_pilot() -> None:
    code, _out, err = pilot("add", "cluster", "10.0.0.1", "2")
    assert code == 2 and "unknown command 'pilot add cluster" in err
    assert "'pilot set host power'" in err  # the few commands there are, listed


def test_pilot_writes_hosts_as_host_and_rocks_takes_that_form_too() -> None:
    words, parsed = parse(["set", "host", "power", "host=52:54:00:00:00:01", "action=on"])
    assert words == "set host power" and parsed.args == ["52:54:00:00:00:01"]
    words, parsed = parse(["set", "host", "power", "52:54:00:00:00:01", "action=on"])
    assert parsed.args == ["52:54:00:00:00:01"]
    code, _out, err = pilot("set", "host", "power", "action=on")
    assert code == 2 and "'pilot set host power' needs host=<host>" in err


def test_list_host_macs_shows_the_state_by_default_only_under_pilot() -> None:
    assert parse(["list", "host", "macs", "host=x"])[1]["status"] is True
    assert parse(["list", "host", "macs", "host=x", "status=no"])[1]["status"] is False
    from flightdeck.cli.params import parse as parse_tokens
    from flightdeck.cli.registry import resolve

    cls, rest = resolve(["list", "host", "macs", "x"])
    assert parse_tokens(rest, cls.args, cls.params, cls.words)["status"] is False


def test_help_of_one_command_is_pilots() -> None:
    code, out, _err = pilot("set", "host", "power", "help")
    assert code == 0
    assert out.startswith("pilot set host power host=<host> ... action=<string>")
    assert "$ pilot set host power frontend-0-0-0 action=install key=private.key" in out
    assert "rocks: attribute airboss" in out and "client.env" in out


@pytest.mark.parametrize("argv", [["colour=red"], ["set", "host", "power", "host=x",
                                                   "action=on", "colour=red"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    code, out, err = pilot(*argv)
    assert code == 2 and out == "" and err.startswith("error - ")
