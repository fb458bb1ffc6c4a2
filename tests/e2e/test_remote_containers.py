"""VM containers reached the ways a site reaches them: qemu+tls:// and qemu+ssh://.

One real libvirtd (the lab's second daemon, tests/e2e/lab.py, in its own network and mount
namespaces) plays two containers: vm-container-0-0 is reached over TLS (libvirtd --listen,
certificates from `rocks report host libvirt-tls` run as the site would run them, the site CA
made by it), vm-container-0-1 over ssh (a real sshd in the daemon's namespaces, root by key
only, its host key in the client's known hosts: the client runs in a mount namespace of its own
where /etc/ssh is the test's, so this machine's files are never touched). `rocks` runs as a
separate process inside the lab's network namespace, as the frontend would.

Then the failures a site meets: a client certificate missing, an ssh key the container does
not know; each a `nostate-error` for that container's VMs, at once (ssh in batch mode: never a
password prompt), never a hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import libvirt
import pytest

from e2e.e2e_common import lab, on_libvirtd

netns_lab = lab.netns_lab

SSHD = "/usr/sbin/sshd"
TLS_BOX, SSH_BOX = "vm-container-0-0", "vm-container-0-1"
BOUND = 40.0
#: A domain the daemon holds for each VM (defined, never started): what the listing reads.
DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64'>hvm</type></os></domain>"""




def _run(*argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60, **kw)


def _rows(out: str) -> list[dict[str, Any]]:
    return list(json.loads(out)) if out.strip() else []


def _sshd_config(home: Path, ip: str) -> str:
    return f"""\
ListenAddress {ip}
Port 22
HostKey {home}/host_ed25519
PidFile {home}/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers root
AuthorizedKeysFile {home}/authorized_keys
StrictModes no
"""


@on_libvirtd
def test_containers_over_tls_and_ssh_and_their_failures(
    rocks: Any, netns_lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    fe_node = tmp_path / "fe.xml"
    fe_node.write_text("<node/>\n")
    rocks.ok("init", "frontend", "name=remote.example.org", "public-ip=192.0.2.10",
             "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
             "private-netmask=255.255.0.0")  # fmt: skip
    rocks.ok("set", "attr", "kvm_connect_timeout", "5")
    rocks.ok("set", "host", "attr", "frontend-0-0", "libvirt_uri", f"test://{fe_node}")
    for rank, name in enumerate((TLS_BOX, SSH_BOX)):
        rocks.ok("add", "host", name, "membership=VM Container", "rack=0", f"rank={rank}")
        rocks.ok("add", "host", "interface", name, "eth0", f"mac=52:54:00:fd:0b:0{rank}",
                 "ip=auto", "subnet=private")  # fmt: skip
        rocks.ok("add", "host", "vm", name, "membership=Compute")
    ips = {r["host"]: r["ip"] for r in _rows(rocks.ok("list", "host", "interface",
                                                      "output-format=json"))}  # fmt: skip
    vms = {r["host"]: r["vm_host"] for r in _rows(rocks.ok("list", "host", "vm",
                                                           "output-format=json"))}  # fmt: skip
    lab, daemon = netns_lab.lab, netns_lab.libvirtd
    for box in (TLS_BOX, SSH_BOX):
        _run("ip", "-n", lab, "addr", "add", f"{ips[box]}/32", "dev", "lo")

    # TLS: the container's and the frontend's files, written by the reports' scripts --------
    ca_dir, server_pki, client_pki = tmp_path / "ca", tmp_path / "srv", tmp_path / "cli"
    for host, role, pki in ((TLS_BOX, "server", server_pki),
                            ("frontend-0-0", "client", client_pki)):  # fmt: skip
        script = rocks.ok("report", "host", "libvirt-tls", host, f"role={role}",
                          f"pkipath={pki}", f"ca-dir={ca_dir}")  # fmt: skip
        _run("sh", input=script)
    assert (server_pki / "serverkey.pem").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in client_pki.iterdir()) == [
        "cacert.pem", "clientcert.pem", "clientkey.pem"]  # fmt: skip
    daemon.start(
        conf=(
            f'listen_tls = 1\nlisten_tcp = 0\nlisten_addr = "{ips[TLS_BOX]}"\n'
            f'ca_file = "{server_pki}/cacert.pem"\ncert_file = "{server_pki}/servercert.pem"\n'
            f'key_file = "{server_pki}/serverkey.pem"\n'
        ),
        args=("--listen",),
    )
    local = libvirt.open(daemon.uri)
    try:
        for vm in vms.values():
            local.defineXML(DOMAIN.format(name=vm))
    finally:
        local.close()

    # ssh: an sshd in the daemon's namespaces (virt-ssh-helper there finds its socket) --------
    ssh = tmp_path / "ssh"
    ssh.mkdir()
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "host_ed25519"))
    for key in ("root_key", "stranger_key"):
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / key))
    (ssh / "authorized_keys").write_text((ssh / "root_key.pub").read_text())
    (ssh / "sshd_config").write_text(_sshd_config(ssh, ips[SSH_BOX]))
    assert daemon.proc is not None
    sshd = subprocess.Popen(
        ["nsenter", f"--target={daemon.proc.pid}", "--mount", "--net", SSHD, "-D", "-e",
         "-f", str(ssh / "sshd_config")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(ssh / "sshd.log").open("wb"),
    )  # fmt: skip
    etc_ssh = tmp_path / "etc-ssh"
    etc_ssh.mkdir()
    host_key = (ssh / "host_ed25519.pub").read_text().split()
    (etc_ssh / "ssh_known_hosts").write_text(f"{ips[SSH_BOX]} {host_key[0]} {host_key[1]}\n")
    (etc_ssh / "ssh_config").write_text(
        "Host *\n    StrictHostKeyChecking yes\n    UserKnownHostsFile /dev/null\n"
        "    GlobalKnownHostsFile /etc/ssh/ssh_known_hosts\n"
    )
    rocks_bin = str(Path(sys.executable).with_name("rocks"))
    env = dict(os.environ, FLIGHTDECK_DB=rocks.url, FLIGHTDECK_HOME=str(tmp_path))

    def listing() -> tuple[dict[str, str], float]:
        """`rocks list host vm status=y` as the frontend runs it: in the lab's network
        namespace, with the test's /etc/ssh in its own mount namespace."""
        t0 = time.monotonic()
        done = subprocess.run(
            ["ip", "netns", "exec", lab, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", 'mount --bind "$0" /etc/ssh && exec "$@"', str(etc_ssh),
             rocks_bin, "list", "host", "vm", "status=y", "output-format=json"],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=BOUND * 3, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return {r["host"]: r["status"] for r in _rows(done.stdout)}, (
            time.monotonic() - t0
        )

    try:
        deadline = time.monotonic() + 20
        while not (ssh / "sshd.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        tls_uri = f"qemu+tls://{ips[TLS_BOX]}/system?pkipath={client_pki}"
        ssh_uri = f"qemu+ssh://root@{ips[SSH_BOX]}/system?keyfile={ssh / 'root_key'}"
        rocks.ok("set", "host", "attr", TLS_BOX, "libvirt_uri", tls_uri)
        rocks.ok("set", "host", "attr", SSH_BOX, "libvirt_uri", ssh_uri)
        states, good = listing()
        assert states == {TLS_BOX: "shutoff", SSH_BOX: "shutoff"}, (
            states, (ssh / "sshd.log").read_text()[-2000:], daemon.log_tail())  # fmt: skip

        # Failures: no client certificate, a key the container does not know -------------
        empty = tmp_path / "no-client-cert"
        empty.mkdir()
        (empty / "cacert.pem").write_text((client_pki / "cacert.pem").read_text())
        rocks.ok("set", "host", "attr", TLS_BOX, "libvirt_uri",
                 f"qemu+tls://{ips[TLS_BOX]}/system?pkipath={empty}")  # fmt: skip
        stranger = ssh / "stranger_key"
        rocks.ok("set", "host", "attr", SSH_BOX, "libvirt_uri",
                 f"qemu+ssh://root@{ips[SSH_BOX]}/system?keyfile={stranger}")  # fmt: skip
        states, took = listing()
        assert states == {TLS_BOX: "nostate-error", SSH_BOX: "nostate-error"}, states
        assert took < BOUND, f"the listing took {took:.1f} s"
        print(f"\nlisting over TLS and ssh: {good:.2f} s; with both refused: {took:.2f} s")
    finally:
        sshd.terminate()
        sshd.wait(timeout=30)
