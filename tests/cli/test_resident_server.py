"""cli/resident_server.py: `rocksd` runs `rocks` commands exactly as the client would, for the
client's user only, on the client's code only, within its bounds; every case on real processes.

The client's side of the same wire (when it runs a command itself) is
tests/cli/test_resident_client.py.
"""

from __future__ import annotations

import os
import re
import resource
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck.cli import resident_client as wire
from flightdeck.cli.resident_server import MAX_REQUEST, Refused, decode, stamp
from resident import VENV_BIN, rocks, rocksd

pytestmark = pytest.mark.slow

INIT = (
    "init",
    "frontend",
    "name=fe.example.org",
    "public-ip=192.0.2.10",
    "public-netmask=255.255.255.0",
    "private-ip=10.1.1.1",
    "private-netmask=255.255.0.0",
)


def base_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, FLIGHTDECK_HOME=str(home), FLIGHTDECK_RESIDENT="no")
    for name in ("FLIGHTDECK_DB", "FLIGHTDECK_DEBUG"):
        env.pop(name, None)
    return env


def reading_stdin(env: dict[str, str], **kw: Any) -> subprocess.Popen[Any]:
    """`rocks apply cluster file=-`: a command that waits for its stdin until given it."""
    return subprocess.Popen(
        [str(VENV_BIN / "rocks"), "apply", "cluster", "file=-"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


@pytest.fixture
def site(tmp_path: Path) -> dict[str, str]:
    """A state directory with a frontend, made without any rocksd."""
    env = base_env(tmp_path / "home")
    done = rocks(INIT, env)
    assert done.returncode == 0, done.stderr
    return env


def test_a_served_command_is_the_same_command(site: dict[str, str]) -> None:
    """Output, errors and exit status, served or not; the log names each command it ran."""
    cases = [("list", "host"), ("list", "host", "nosuch"), ("list", "network"), ("frobnicate",)]
    alone = [rocks(argv, site) for argv in cases]
    with rocksd(site) as server:
        served = [rocks(argv, server.env(site)) for argv in cases]
        log = server.wait_log("running rocks frobnicate")
    for argv, a, b in zip(cases, alone, served, strict=True):
        assert (b.returncode, b.stdout, b.stderr) == (a.returncode, a.stdout, a.stderr), argv
        assert f"running rocks {' '.join(argv)} as pid" in log
    assert alone[1].returncode != 0 and alone[1].stderr.startswith("error - ")


def test_the_clients_directory_and_environment_are_the_commands(tmp_path: Path) -> None:
    """A relative FLIGHTDECK_HOME is found from the client's directory, not the server's."""
    env = base_env(tmp_path / "unused")
    env["FLIGHTDECK_HOME"] = "relative-home"
    work = tmp_path / "work"
    work.mkdir()
    with rocksd(env) as server:
        done = rocks(INIT, server.env(env), cwd=work)
        server.wait_log("running rocks init frontend")
        listed = rocks(("list", "host"), server.env(env), cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "relative-home" / "flightdeck.db").exists()
    assert not (tmp_path / "unused").exists()
    assert "frontend-0-0" in listed.stdout and listed.returncode == 0


def test_stdin_umask_streams_and_the_users_signal_reach_the_command(
    site: dict[str, str], tmp_path: Path
) -> None:
    """`rocks apply cluster file=-` reads the client's stdin. While it waits there, its process
    (the kernel's view, /proc) has the client's umask, directory and very pipes; Ctrl-C on the
    client interrupts it (status 130, its one-line error on the client's stderr)."""
    with rocksd(site) as server:
        fed = rocks(("apply", "cluster", "file=-"), server.env(site), input="not: [a spec\n")
        assert fed.returncode != 0 and "error - " in fed.stderr

        def limited() -> None:  # in the client, before exec: `nice -n 7`, `ulimit -n 123`
            os.nice(7)
            resource.setrlimit(resource.RLIMIT_NOFILE, (123, 456))

        client = reading_stdin(
            server.env(site), text=True, cwd=tmp_path, umask=0o027, preexec_fn=limited
        )
        log = server.wait_log("running rocks apply cluster file=- as pid", timeout=30, count=2)
        child = int(log.rsplit("running rocks apply cluster file=- as pid ", 1)[1].split()[0])
        # The server logs the fork; the child then takes on the client's surroundings and
        # blocks reading stdin (state S): the kernel's view is compared once it is there.
        deadline = time.monotonic() + 30
        while "State:\tS" not in (status := Path(f"/proc/{child}/status").read_text()):
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert "Umask:\t0027" in status
        assert _stat_fields(child)[16] == "7"  # nice
        limits = Path(f"/proc/{child}/limits").read_text()
        assert re.search(r"^Max open files +123 +456 ", limits, re.M), limits
        assert os.readlink(f"/proc/{child}/cwd") == str(tmp_path)
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{child}/fd/{fd}") == os.readlink(
                f"/proc/{client.pid}/fd/{fd}"
            )
        time.sleep(0.3)  # the child is blocked reading stdin by now
        client.send_signal(signal.SIGINT)
        _out, err = client.communicate(timeout=30)
    assert client.returncode == 130, err
    assert err.strip().splitlines() == ["error - interrupted"]


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name: [0] state, [16] nice (proc(5))."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _state(pid: int) -> str:
    return _stat_fields(pid)[0]


def _until(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_ctrl_z_stops_the_command_with_the_client_and_fg_continues_both(
    site: dict[str, str],
) -> None:
    """SIGTSTP on the client (the terminal's Ctrl-Z) stops the served process too, the client
    last; SIGCONT (the shell's fg) continues both; the command then ends as it would."""
    with rocksd(site) as server:
        client = reading_stdin(server.env(site))
        log = server.wait_log("running rocks apply cluster file=- as pid")
        child = int(log.rsplit("as pid ", 1)[1].split()[0])
        _until("the child waits on stdin", lambda: _state(child) == "S")
        client.send_signal(signal.SIGTSTP)
        _until("both stopped", lambda: _state(client.pid) == _state(child) == "T")
        client.send_signal(signal.SIGCONT)
        _until("both going again", lambda: "T" not in (_state(client.pid), _state(child)))
        _out, err = client.communicate(b"{}\n", timeout=60)
    assert client.returncode not in (0, wire.EXIT_LOST) and err.startswith(b"error - ")


def test_a_command_outlives_a_killed_server(site: dict[str, str]) -> None:
    """The child owns the connection: SIGKILL to rocksd mid-command loses nothing."""
    with rocksd(site) as server:
        client = reading_stdin(server.env(site))
        server.wait_log("running rocks apply cluster file=- as pid")
        server.proc.kill()
        server.proc.wait()
        _out, err = client.communicate(b"{}\n", timeout=60)
    # The spec is empty, so the command refuses it: its own error and status, not a lost one.
    assert client.returncode not in (0, wire.EXIT_LOST), err
    assert err.startswith(b"error - ") and b"rocksd" not in err


def test_another_user_is_refused_even_through_an_open_socket(site: dict[str, str]) -> None:
    """SO_PEERCRED, not only the socket's mode: with the directory and socket opened to all,
    nobody's request is refused and logged, and nobody's client runs the command itself."""
    with rocksd(site) as server:
        run_dir = os.path.dirname(server.socket)
        assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(server.socket).st_mode) == 0o600
        os.chmod(os.path.dirname(run_dir), 0o755)
        os.chmod(run_dir, 0o755)
        os.chmod(server.socket, 0o666)
        # The interpreter lives under /root: the child drops to nobody after its imports.
        code = (
            "import os, _signal, _socket, array\n"
            "from flightdeck.cli.resident_client import served\n"
            "os.setgid(65534); os.setuid(65534); print(served(['list', 'host']))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=server.env(site),
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
        )
        log = server.wait_log("refused pid")
    assert done.stdout.strip() == "None", done.stderr
    assert "uid 65534: not this server's user" in log
    assert "running rocks list host" not in log


def test_a_client_in_other_namespaces_or_with_fewer_privileges_runs_its_command_itself(
    site: dict[str, str],
) -> None:
    """`ip netns exec <ns> rocks ...` must run in <ns>, not in rocksd's network; root with a
    capability dropped must not get it back through rocksd. Both are refused (from /proc of
    the peer the kernel names), logged, and run by the client, where they belong."""
    ns = f"fdrd{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with rocksd(site) as server:
            env = server.env(site)
            rocks_bin = str(VENV_BIN / "rocks")
            in_ns = subprocess.run(
                ["ip", "netns", "exec", ns, rocks_bin, "list", "host"],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            log = server.wait_log("refused pid")
            assert "the client's net, mnt differ from rocksd's" in log
            fewer = subprocess.run(
                ["setpriv", "--bounding-set=-net_raw", rocks_bin, "list", "host"],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            log = server.wait_log("refused pid", count=2)
            assert re.search(r"the client's .*CapBnd.* differ from rocksd's", log), log
            other_group = subprocess.run(
                ["setpriv", "--regid=5", "--clear-groups", rocks_bin, "list", "host"],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            log = server.wait_log("refused pid", count=3)
            assert re.search(r"the client's Gid differ from rocksd's", log), log
            same = rocks(("list", "host"), env)
            log = server.wait_log("running rocks list host as pid")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert log.count("running rocks") == 1
    for done in (in_ns, fewer, other_group, same):
        assert done.returncode == 0 and "frontend-0-0" in done.stdout, done.stderr


def test_code_changed_on_disk_is_refused_and_the_server_leaves(
    site: dict[str, str], tmp_path: Path
) -> None:
    """A server and client on a copy of the package: once a file of it changes, the request
    is refused (the client runs it, on the new code), and rocksd removes its socket and exits.
    A client of other code (this checkout's) is refused from the start."""
    copy = tmp_path / "copy"
    src = Path(wire.__file__).parents[2]
    shutil.copytree(
        src / "flightdeck", copy / "flightdeck", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = dict(site, PYTHONPATH=str(copy))
    script = Path(wire.__file__).parents[3] / "bin" / "rocks"
    serve = [sys.executable, str(script.parent / "rocksd")]

    def copy_rocks(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *argv],
            env=server.env(env),
            capture_output=True,
            text=True,
            timeout=120,
        )

    with rocksd(env, command=serve) as server:
        assert "code " + str(copy / "flightdeck") in server.log()
        first = copy_rocks("list", "host")
        server.wait_log("running rocks list host as pid")
        other = rocks(("list", "network"), server.env(site))
        assert other.returncode == 0 and "private" in other.stdout
        server.wait_log("another interpreter or Flightdeck than rocksd's")
        os.utime(copy / "flightdeck" / "config.py", ns=(0, time.time_ns()))
        second = copy_rocks("list", "host")
        server.proc.wait(timeout=30)
        log = server.log()
        assert not os.path.exists(server.socket)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout and "frontend-0-0" in first.stdout
    assert "code changed since rocksd started" in log and log.count("running rocks") == 1


def test_requests_are_bounded_and_malformed_ones_refused(site: dict[str, str]) -> None:
    with rocksd(site, "--request-timeout", "0.5") as server:

        def ask(data: bytes, fds: list[int] | None = None) -> bytes:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(server.socket)
                if fds is None:
                    s.sendall(data)
                else:
                    socket.send_fds(s, [data[:4]], fds)
                    s.sendall(data[4:])
                return s.recv(1024)

        null = os.open(os.devnull, os.O_RDWR)
        try:
            fds = [null, null, null, os.open("/", os.O_RDONLY)]
            big = (MAX_REQUEST + 1).to_bytes(4, "big")
            assert ask(big, fds) == b"refused request larger than 1048576 bytes\n"
            good = wire.encode_request(["list", "host"], {}, 0o22)
            assert ask(len(good).to_bytes(4, "big") + good, None) == b"refused malformed request\n"
            bad = b"other-protocol\0" + good
            assert ask(len(bad).to_bytes(4, "big") + bad, fds).startswith(b"refused not a request")
            started = time.monotonic()
            assert ask(len(good).to_bytes(4, "big") + good[:10], fds) == b""  # then silence
            assert time.monotonic() - started < 8
        finally:
            os.close(null)
            os.close(fds[3])
        log = server.wait_log("dropped pid")
        assert "TimeoutError" in log
        assert "running rocks" not in log
        served = rocks(("list", "host"), server.env(site))  # and it still serves
        assert served.returncode == 0
        server.wait_log("running rocks list host as pid")


def test_a_full_server_hands_commands_back(site: dict[str, str]) -> None:
    with rocksd(site, "--max-children", "1") as server:
        busy = reading_stdin(server.env(site))
        server.wait_log("running rocks apply cluster file=-")
        second = rocks(("list", "host"), server.env(site))
        log = server.wait_log("1 commands already running")
        busy.communicate(b"{}\n", timeout=60)
    assert second.returncode == 0 and "frontend-0-0" in second.stdout
    assert "running rocks list host" not in log


def test_one_server_per_socket_and_a_dead_ones_socket_is_reused(site: dict[str, str]) -> None:
    with rocksd(site) as server:
        again = subprocess.run(
            [str(VENV_BIN / "rocksd"), "--socket", server.socket],
            env=site,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode != 0 and "already listens" in again.stderr
        server.proc.kill()  # leaves its socket behind
        server.proc.wait()
        assert os.path.exists(server.socket)
        alone = rocks(("list", "host"), server.env(site))  # a dead socket: run here
        assert alone.returncode == 0 and "frontend-0-0" in alone.stdout
        with rocksd(site, sock=server.socket) as second:
            served = rocks(("list", "host"), second.env(site))
            second.wait_log("running rocks list host as pid")
        assert served.stdout == alone.stdout


@given(st.binary(max_size=200))
def test_decode_refuses_anything_it_cannot_read(data: bytes) -> None:
    try:
        request = decode(data)
    except Refused:
        return
    assert data.startswith(wire.PROTOCOL + b"\0")
    assert all(name for name in request.environ)


def test_decode_reads_what_the_client_encodes() -> None:
    argv = ["list", "host", "a=b c", "", "\udcff"]
    env = {"A": "1", "B": "x=y", "EMPTY": ""}
    request = decode(wire.encode_request(argv, env, 0o27))
    assert (request.argv, request.environ, request.umask) == (argv, env, 0o27)
    assert request.identity == wire.identity()


def test_stamp_sees_an_edit_an_addition_and_a_removal(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    before = stamp(str(tmp_path))
    (tmp_path / "a.py").write_text("x = 22\n")
    edited = stamp(str(tmp_path))
    (tmp_path / "b.py").write_text("")
    added = stamp(str(tmp_path))
    (tmp_path / "a.py").unlink()
    assert len({before, edited, added, stamp(str(tmp_path))}) == 4
