"""Commands that change the database refuse non-root users; reading commands do not ask for root.

The real `rocks` executable is run as uid/gid 65534 (nobody). Where the interpreter lives in a
directory that user cannot enter (a pyenv under /root, as on our CI machines), the process gets
CAP_DAC_READ_SEARCH as an ambient capability from `setpriv`: it can then read files, but it is
still uid 65534 and still not root, which is what the check is about.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flightdeck.cli.registry import iter_commands, resolve

NOBODY = 65534
VENV_BIN = Path(sys.executable).parent
ROCKS = str(VENV_BIN / "rocks")
WRITE_COMMANDS = [(w, c) for w, c in iter_commands() if c.writes]
READ_COMMANDS = [(w, c) for w, c in iter_commands() if not c.writes]
#: The owners' commands: they change nothing here (the Airboss checks their key), so they are
#: for anyone, though their verbs are not list/report/dump.
OWNER_COMMANDS = {
    "create keys",
    "set host power",
    "set host cdrom",
    "set cluster power",
    "open host console",
    "open dashboard",  # issue 19
    # issue 18: tokens (made and narrowed offline), Slurm's programs, the audit chain
    "create token",
    "attenuate",
    "revoke",
    "slurm resume",
    "slurm suspend",
    "verify audit",
}


def _drop_to_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def as_nobody(
    argv: list[str], db_url: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run argv as uid/gid 65534 against db_url."""
    env = dict(os.environ, FLIGHTDECK_DB=db_url, HOME="/")
    env.pop("FLIGHTDECK_DEBUG", None)
    kw: dict[str, Any] = {"env": env, "capture_output": True, "text": True, "cwd": "/",
                          "input": stdin, "timeout": 300, "check": False}  # fmt: skip
    if os.geteuid() != 0:
        return subprocess.run(argv, **kw)  # already not root
    try:
        return subprocess.run(argv, preexec_fn=_drop_to_nobody, **kw)
    except PermissionError:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("uid 65534 cannot reach the interpreter and setpriv is not installed")
        caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
        ids = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        return subprocess.run([setpriv, *ids, *caps, *argv], **kw)


def test_the_helper_really_is_not_root(rocks: Any) -> None:
    p = as_nobody([sys.executable, "-c", "import os; print(os.getuid(), os.geteuid())"], rocks.url)
    assert p.returncode == 0, p.stderr
    uid, euid = (int(x) for x in p.stdout.split())
    assert euid != 0 and uid != 0
    if os.geteuid() == 0:
        assert (uid, euid) == (NOBODY, NOBODY)


def test_add_host_as_nobody_is_refused_and_changes_nothing(espresso: Any) -> None:
    before = espresso.dump()
    p = as_nobody([ROCKS, "add", "host", "compute-0-0", "membership=Compute"], espresso.url)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == (
        "error - 'rocks add host' changes the cluster database and must be run as root (use sudo)\n"
    )
    assert espresso.dump() == before


def test_help_of_a_write_command_needs_no_root(espresso: Any) -> None:
    p = as_nobody([ROCKS, "add", "host", "help"], espresso.url)
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout.startswith("rocks add host")
    p = as_nobody([ROCKS, "help"], espresso.url)
    assert (p.returncode, p.stderr) == (0, "")


def test_a_read_command_as_nobody_is_not_refused_for_root(espresso: Any) -> None:
    p = as_nobody([ROCKS, "list", "host", "output-format=json"], espresso.url)
    assert "must be run as root" not in p.stderr
    assert "Traceback" not in p.stderr
    if espresso.url.startswith("postgresql"):
        # A server database: a non-root user reads it like anyone else.
        assert p.returncode == 0, p.stderr
        hosts = [h["host"] for h in json.loads(p.stdout)]
        assert hosts == ["frontend-0-0", "vm-container-0-0", "vm-container-0-1"]
    elif p.returncode != 0:
        # SQLite in WAL mode needs write access to the -shm file next to a root-owned
        # database; the refusal must say it cannot open the database, in one line.
        assert p.stderr.startswith("error - cannot open the database "), p.stderr
        assert p.stderr.count("\n") == 1


@pytest.mark.slow
def test_every_write_command_refuses_nobody_and_no_read_command_asks_for_root(
    espresso: Any,
) -> None:
    """Each command's own first example, run by uid 65534 through main.run in one process."""
    cases = []
    for words, cls in iter_commands():
        # The example's arguments under this command's own words (an alias shares its
        # examples with the command it stands for).
        _found, rest = resolve(shlex.split(cls.examples[0].command)[1:])
        cases.append((words, [*words.split(), *rest], cls.writes))
    script = (
        "import io, json, sys\n"
        "from flightdeck.cli.command import Context\n"
        "from flightdeck.cli.main import run\n"
        "out = []\n"
        "for words, argv, writes in json.load(sys.stdin):\n"
        "    ctx = Context(out=io.StringIO(), err=io.StringIO())\n"
        "    code = run(argv, ctx)\n"
        "    out.append((words, code, ctx.err.getvalue()))\n"
        "print(json.dumps(out))\n"
    )
    before = espresso.dump()
    p = as_nobody([sys.executable, "-c", script], espresso.url, stdin=json.dumps(cases))
    assert p.returncode == 0, p.stderr
    results = {words: (code, err) for words, code, err in json.loads(p.stdout)}
    assert len(results) == len(cases)
    for words, _argv, writes in cases:
        code, err = results[words]
        if writes:
            assert code == 1, f"rocks {words}: {code} {err}"
            assert err == (
                f"error - 'rocks {words}' changes the cluster database and must be run as "
                "root (use sudo)\n"
            )
        else:
            assert "must be run as root" not in err, f"rocks {words}: {err}"
    assert espresso.dump() == before


def test_write_and_read_commands_are_declared_as_such() -> None:
    assert WRITE_COMMANDS and READ_COMMANDS
    for words, _cls in READ_COMMANDS:
        assert words.split()[0] in ("list", "report", "dump") or words in OWNER_COMMANDS, (
            f"rocks {words} is read-only?"
        )
    for words, _cls in WRITE_COMMANDS:
        assert words.split()[0] not in ("list", "dump"), f"rocks {words} needs root?"
