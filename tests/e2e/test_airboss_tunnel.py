"""The guide's tunnel to the Airboss, through a real sshd with the settings docs/airboss.md gives.

A network namespace of the test is the physical frontend: sshd on its public address with the
tunnel account's Match block, and a stand-in for the Airboss on its loopback (an HTTP server on
127.0.0.1:8677 that answers one line). A second namespace is the owner's side. The account's
authorized_keys is exactly what `rocks report airboss tunnel` prints. What must hold:

- `ssh -N -L 8677:localhost:8677 <frontend>` with an owner key forwards to the Airboss;
- the same key gets no shell or command, and no forward to any other port;
- a key that is not registered gets nothing.

The account is `nobody` (it exists everywhere, shell nologin), the role the documented
`airboss` account plays on a real frontend.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FRONTEND = "192.0.2.10"
OWNER = "192.0.2.50"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
ANSWER = "airboss-stand-in-ok"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, sshd)"),
    pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server is not installed"),
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def sshd_config(home: Path, keys: Path, user: str) -> str:
    """The test's sshd: the documented Match block for the tunnel account, nothing else open."""
    return f"""\
ListenAddress {FRONTEND}
Port 22
HostKey {home}/host_ed25519
PidFile {home}/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {user}
AuthorizedKeysFile {keys}
StrictModes no
LogLevel VERBOSE

# docs/airboss.md: the tunnel-only account
Match User {user}
    AllowTcpForwarding local
    PermitOpen localhost:8677 127.0.0.1:8677
    PermitTTY no
    X11Forwarding no
    AllowAgentForwarding no
    ForceCommand /usr/sbin/nologin
"""


@dataclass
class Tunnel:
    home: Path
    fe_ns: str
    owner_ns: str
    key: Path
    stranger: Path

    def ssh(self, key: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.owner_ns, "ssh", "-i", str(key), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={self.home}/kh",
             "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def forward_answers(self, key: Path, target: str) -> tuple[str, str]:
        """Open `ssh -N -L 18677:<target>`, read what comes back through it ("" if nothing);
        also what the ssh client said."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.owner_ns, "ssh", "-i", str(key), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={self.home}/kh",
             "-o", "IdentitiesOnly=yes", "-o", "ExitOnForwardFailure=yes", "-N",
             "-L", f"18677:{target}", f"nobody@{FRONTEND}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            code = (
                "import socket,sys,time\n"
                "for _ in range(100):\n"
                "    try:\n"
                "        s=socket.create_connection(('127.0.0.1',18677),timeout=5); break\n"
                "    except OSError: time.sleep(0.1)\n"
                "else: sys.exit(0)\n"
                "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
                "data=b''\n"
                "try:\n"
                "    while chunk:=s.recv(4096): data+=chunk\n"
                "except OSError: pass\n"
                "print(data.decode(errors='replace'))\n"
            )
            out = subprocess.run(
                ["ip", "netns", "exec", self.owner_ns, sys.executable, "-c", code],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
        finally:
            proc.terminate()
            try:
                _out, said = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                _out, said = proc.communicate()
        return out.stdout, said


def _stand_in(fe_ns: str) -> subprocess.Popen[str]:
    """An HTTP answer on the frontend's loopback port 8677 (the Airboss's place)."""
    code = (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        f"        b=b'{ANSWER}\\n'\n"
        "        self.send_response(200); self.send_header('Content-Length',str(len(b)))\n"
        "        self.end_headers(); self.wfile.write(b)\n"
        "    def log_message(self,*a): pass\n"
        "http.server.HTTPServer(('127.0.0.1',8677),H).serve_forever()\n"
    )
    return subprocess.Popen(["ip", "netns", "exec", fe_ns, sys.executable, "-c", code])


@pytest.fixture
def tunnel(espresso: Any, tmp_path: Path) -> Iterator[Tunnel]:
    token = secrets.token_hex(3)
    fe_ns, owner_ns, br = f"fdt-{token}", f"fdo-{token}", f"fdt{token}br"
    home = tmp_path
    os.chmod(home, 0o755)  # sshd (as nobody) reads nothing here, but the path must be sane
    key, stranger = home / "private.key", home / "stranger.key"
    pub = espresso.ok("create", "keys", f"key={key}", "passphrase=no")
    espresso.ok("create", "keys", f"key={stranger}", "passphrase=no")
    espresso.ok("add", "cluster", "137.110.119.118", "0")
    (home / "public.key").write_text(pub)
    espresso.ok("add", "host", "key", "frontend-0-0-0", f"key={home / 'public.key'}")
    lines = espresso.ok("report", "airboss", "tunnel")
    # sshd reads the account's authorized_keys as that account (nobody): a readable place.
    keydir = Path(tempfile.mkdtemp(prefix="fd-tunnel-"))
    keydir.chmod(0o755)
    keys = keydir / "authorized_keys"
    keys.write_text(lines)
    keys.chmod(0o644)
    host_key = str(home / "host_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key], check=True)
    (home / "sshd_config").write_text(sshd_config(home, keys, "nobody"))
    procs: list[subprocess.Popen[Any]] = []
    _ip("link", "add", br, "type", "bridge")
    try:
        _ip("link", "set", br, "up")
        for ns, addr, n in ((fe_ns, FRONTEND, "f"), (owner_ns, OWNER, "o")):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            outside = f"fdt{token}{n}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", outside, "master", br, "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
        procs.append(
            subprocess.Popen(["ip", "netns", "exec", fe_ns, SSHD, "-D", "-e", "-f",
                              str(home / "sshd_config")], stderr=open(home / "sshd.log", "w"))  # noqa: SIM115
        )  # fmt: skip
        procs.append(_stand_in(fe_ns))
        for _ in range(100):
            probe = subprocess.run(
                ["ip", "netns", "exec", owner_ns, sys.executable, "-c",
                 f"import socket; socket.create_connection(('{FRONTEND}', 22), timeout=1)"],
                capture_output=True, check=False,
            )  # fmt: skip
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        yield Tunnel(home, fe_ns, owner_ns, key, stranger)
    finally:
        for p in procs:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        for ns in (fe_ns, owner_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", br], capture_output=True, check=False)
        shutil.rmtree(keydir, ignore_errors=True)


def test_the_report_restricts_every_key_to_the_tunnel(espresso: Any, tmp_path: Path) -> None:
    pub = espresso.ok("create", "keys", f"key={tmp_path / 'k'}", "passphrase=no")
    (tmp_path / "k.pub").write_text(pub)
    espresso.ok("add", "cluster", "137.110.119.118", "0")
    espresso.ok("add", "host", "key", "frontend-0-0-0", f"key={tmp_path / 'k.pub'}")
    lines = espresso.ok("report", "airboss", "tunnel", "port=8678").splitlines()
    assert lines[0].startswith("#")
    (line,) = lines[1:]
    options, kind, _blob, comment, host = line.split(" ")
    assert options == (
        'restrict,port-forwarding,permitopen="localhost:8678",permitopen="127.0.0.1:8678"'
    )
    assert (kind, comment, host) == ("ssh-ed25519", "flightdeck-key-1", "frontend-0-0-0")
    espresso.refused("report", "airboss", "tunnel", "port=0", says="is not a TCP port")


@pytest.mark.slow
def test_owner_key_opens_the_tunnel_and_nothing_else(tunnel: Tunnel) -> None:
    t = tunnel
    # The guide's tunnel: the Airboss (here its stand-in) answers through it.
    got, said = t.forward_answers(t.key, "localhost:8677")
    assert ANSWER in got, f"{said}\n{(t.home / 'sshd.log').read_text()}"
    # No shell, no command: ForceCommand nologin and `restrict` (no PTY).
    got = t.ssh(t.key, f"nobody@{FRONTEND}", "id")
    assert "uid=" not in got.stdout
    # No other target: sshd refuses the forward (permitopen / PermitOpen).
    got, said = t.forward_answers(t.key, "localhost:22")
    assert ANSWER not in got and "SSH-2.0" not in got
    assert "administratively prohibited" in said, said
    # A key nobody registered: not even authenticated.
    denied = t.ssh(t.stranger, f"nobody@{FRONTEND}", "true")
    assert denied.returncode == 255 and "Permission denied" in denied.stderr, denied.stderr
    got, said = t.forward_answers(t.stranger, "localhost:8677")
    assert ANSWER not in got and "Permission denied" in said, said
