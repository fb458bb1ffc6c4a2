"""cli/resident_client.py: when `rocks` runs its command itself rather than in `rocksd`, and what
that costs it. Served commands are tests/cli/test_resident_server.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flightdeck.cli import resident_client
from resident import rocks, rocksd

pytestmark = pytest.mark.slow

PROBE = (
    "import sys; from flightdeck.cli.resident_client import served; "
    "status = served(['list', 'host']); "
    "print(status, '_socket' in sys.modules)"
)


def probe(env: dict[str, str], *flags: str) -> str:
    done = subprocess.run(
        [sys.executable, *flags, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def home_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, FLIGHTDECK_HOME=str(tmp_path / "home"))
    for name in ("FLIGHTDECK_DB", "FLIGHTDECK_DEBUG", "FLIGHTDECK_RESIDENT"):
        env.pop(name, None)
    return env


def test_without_a_socket_nothing_is_asked_and_nothing_imported(
    home_env: dict[str, str], tmp_path: Path
) -> None:
    """A machine without rocksd pays one stat: not even `_socket` is imported."""
    env = dict(home_env, FLIGHTDECK_RESIDENT_SOCKET=str(tmp_path / "none.sock"))
    assert probe(env) == "None False"


def test_a_file_that_is_no_server_is_a_command_run_here(
    home_env: dict[str, str], tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    assert probe(dict(home_env, FLIGHTDECK_RESIDENT_SOCKET=str(plain))) == "None True"


def test_a_server_is_not_asked_when_the_user_or_a_measurement_says_so_or_for_help(
    home_env: dict[str, str],
) -> None:
    """FLIGHTDECK_RESIDENT=no, any -X option (-X importtime measures this process), and help
    (it reads one generated file: ~13 ms here, more through a fork)."""
    with rocksd(home_env) as server:
        env = server.env(home_env)
        asked = probe(env)  # no database: the command fails, but in rocksd's child
        assert asked.split()[0] == "1"
        server.wait_log("running rocks list host as pid")
        assert probe(dict(env, FLIGHTDECK_RESIDENT="no")) == "None False"
        assert probe(env, "-X", "importtime") == "None False"
        done = rocks(("list", "host"), dict(env, FLIGHTDECK_RESIDENT="off"))
        assert done.returncode == 1 and "no Flightdeck database" in done.stderr
        helped = [rocks(argv, env) for argv in (("help",), ("list", "host", "help"), ())]
        log = server.log()
    assert log.count("running rocks") == 1
    assert all(h.returncode == 0 and "rocks" in h.stdout for h in helped)


def test_the_request_carries_what_the_server_must_match() -> None:
    """The interpreter, this package's directory and the Python version, first after the
    protocol's name; then umask, arguments and environment."""
    fields = resident_client.encode_request(["a", "b"], {"K": "v"}, 0o22).split(b"\0")
    exe, pkg, version = resident_client.identity()
    assert fields[:4] == [resident_client.PROTOCOL, exe, pkg, version]
    assert fields[4:] == [b"22", b"2", b"a", b"b", b"K=v"]
    assert Path(os.fsdecode(pkg)) == Path(resident_client.__file__).resolve().parents[1]


STRANGER = """
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
os.setgid(65534)
os.setuid(65534)
s.listen(1)  # the kernel records nobody as the listener
print("listening", flush=True)
conn, _ = s.accept()
conn.settimeout(10)
data = conn.recv(65536)
print("got", len(data), flush=True)
"""


def test_a_server_run_by_someone_else_is_given_nothing(
    home_env: dict[str, str], tmp_path: Path
) -> None:
    """A socket another user listens on (here: nobody's, in a world-writable directory): the
    client sends neither its descriptors nor its environment, says why, and runs the command."""
    path = tmp_path / "s.sock"
    stranger = subprocess.Popen(
        [sys.executable, "-c", STRANGER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert stranger.stdout is not None and stranger.stdout.readline() == "listening\n"
        env = dict(home_env, FLIGHTDECK_RESIDENT_SOCKET=str(path), FLIGHTDECK_SECRET="s3cret")
        done = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
        )
        out, _ = stranger.communicate(timeout=30)
    finally:
        stranger.kill()
    assert done.stdout.strip() == "None True"
    assert "is served by uid 65534, not root or you; running here" in done.stderr
    assert out == "got 0\n"  # the connection closed with nothing sent
