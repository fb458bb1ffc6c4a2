"""A site with virtual clusters whose frontends are real, for the §3.3.5 end-to-end tests
(tests/e2e/test_virtual_cluster.py) and the demo-like checks.

Everything through the real executables, as an admin and an owner type them: `rocks` on the
physical frontend (its database in a directory of the test), `rocks`, `insert-ethers` and `ssh`
*inside* the virtual frontends (over ssh from the owner's namespace).

The network, all of it made here and removed after:

- bridges: public, private, and one per cluster VLAN (`kvm_vlan_mode=bridge`: this kernel has no
  802.1Q, so a cluster's VLAN is a bridge of its own, as the demo does);
- namespace `fe`: the physical frontend, with 10.1.1.1/16 on the private bridge and 192.0.2.10
  on the public one; dnsmasq and the boot server (public listener), the Airboss on its loopback,
  and sshd on its public address with the tunnel-only account of docs/airboss.md (`nobody`
  plays `airboss`);
- namespace `owner`: the owner's laptop on the public bridge (192.0.2.50), from where they ssh
  to their virtual frontend.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flightdeck.pxe.guest import READY
from flightdeck.virt import hypervisor as hv
from flightdeck.virt.console import read_serial
from libvirt_purge import purge

VENV_BIN = Path(sys.executable).parent
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PHYSICAL = "fdc-lab.example.org"
PHYSICAL_IP = "192.0.2.10"
OWNER_IP = "192.0.2.50"
READY_TIMEOUT = float(os.environ.get("FD_VF_TIMEOUT", "900"))


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, explain: Callable[[], str]
) -> Any:
    """Poll `check` once a second until it returns something true; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s\n{explain()}")
        time.sleep(1.0)


@dataclass
class Cluster:
    """One virtual cluster: its frontend (a real one, once ready) and its computes."""

    frontend: str
    fqdn: str
    public_ip: str
    vlan: int
    computes: list[str]
    key: Path
    #: The computes' MACs on the cluster VLAN, by physical-side name.
    macs: dict[str, str] = field(default_factory=dict)
    console: str = ""


@dataclass
class Site:
    tok: str
    home: Path
    env: dict[str, str]
    fe_ns: str
    owner_ns: str
    bridges: list[str]
    clusters: list[Cluster] = field(default_factory=list)
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    # The physical frontend ---------------------------------------------------------------------

    def rocks(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(VENV_BIN / "rocks"), *args], env=self.env, capture_output=True, text=True
        )
        if ok and done.returncode != 0:
            pytest.fail(f"rocks {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def out(self, *args: str) -> str:
        return self.rocks(*args).stdout

    def boot_log(self) -> str:
        return (self.home / "dhcp" / "bootserver.log").read_text(errors="replace")

    def hv(self) -> hv.Hypervisor:
        return hv.connect("frontend-0-0", "qemu:///system", 15)

    # The owner, on a virtual frontend ----------------------------------------------------------

    def ssh(
        self, c: Cluster, command: str, *, stdin: str | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """`ssh root@<c's frontend> <command>` from the owner's namespace, with c's key."""
        return subprocess.run(
            [
                "ip", "netns", "exec", self.owner_ns, "ssh", "-i", str(c.key),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                "-o", f"UserKnownHostsFile={self.home / 'known_hosts'}",
                "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=15",
                f"root@{c.public_ip}", command,
            ],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def on(self, c: Cluster, command: str, timeout: float = 600) -> str:
        """Run `command` on c's frontend; its output (fails the test on a non-zero exit)."""
        got = self.ssh(c, command, timeout=timeout)
        if got.returncode != 0:
            pytest.fail(f"on {c.fqdn}: {command!r} exited {got.returncode}:\n{got.stderr}")
        return got.stdout


def _veth(ns: str, outside: str, inside: str, bridge: str, address: str) -> None:
    _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)
    Path(f"/proc/sys/net/ipv6/conf/{outside}/disable_ipv6").write_text("1\n")
    _ip("link", "set", outside, "master", bridge)
    _ip("link", "set", outside, "up")
    _ip("-n", ns, "addr", "add", address, "dev", inside)
    _ip("-n", ns, "link", "set", inside, "up")


def _free_vlans(n: int) -> list[int]:
    found = [v for v in range(3899, 3700, -1) if not Path(f"/sys/class/net/vlan{v}").exists()]
    if len(found) < n:
        pytest.fail("no free vlan<N> bridge names")
    return found[:n]


def _sshd_config(home: Path, keys: Path) -> str:
    """docs/airboss.md's tunnel account (played by `nobody`), on the public address only."""
    return f"""\
ListenAddress {PHYSICAL_IP}
HostKey {home}/ssh_host_ed25519_key
PidFile {home}/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers nobody
AuthorizedKeysFile {keys}
StrictModes no
Match User nobody
    AllowTcpForwarding local
    PermitOpen localhost:8677 127.0.0.1:8677
    PermitTTY no
    X11Forwarding no
    AllowAgentForwarding no
    ForceCommand /usr/sbin/nologin
"""


@contextlib.contextmanager
def site(
    image_dir: Path, cache: Path, shapes: list[tuple[str, int]], tls: frozenset[int] = frozenset()
) -> Iterator[Site]:
    """The site, with one virtual cluster per (fqdn, computes) of `shapes`, frontends ready.

    Clusters whose index is in `tls` reach the Airboss over TLS on the physical frontend's
    public address (`rocks create airboss certificate`, the CA in their identity); the others
    through the guide's ssh tunnel to its loopback.
    """
    tok = secrets.token_hex(3)
    home = Path(tempfile.mkdtemp(prefix="fd-vc-"))
    env = dict(os.environ, FLIGHTDECK_HOME=str(home))
    env.pop("FLIGHTDECK_DB", None)
    vlans = _free_vlans(len(shapes))
    s = Site(tok, home, env, f"fdc-{tok}", f"fdo-{tok}",
             [f"fdc{tok}u", f"fdc{tok}p", *(f"vlan{v}" for v in vlans)])  # fmt: skip
    keydir = Path(tempfile.mkdtemp(prefix="fd-vc-keys-"))
    domains: set[str] = set()
    try:
        for br in s.bridges:
            _ip("link", "add", br, "type", "bridge")
            Path(f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6").write_text("1\n")
            _ip("link", "set", br, "up")
        for ns in (s.fe_ns, s.owner_ns):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _veth(s.fe_ns, f"fdc{tok}a", "prv0", s.bridges[1], "10.1.1.1/16")
        _veth(s.fe_ns, f"fdc{tok}b", "pub0", s.bridges[0], f"{PHYSICAL_IP}/24")
        _veth(s.owner_ns, f"fdc{tok}c", "pub0", s.bridges[0], f"{OWNER_IP}/24")

        s.out("init", "frontend", f"name={PHYSICAL}", f"public-ip={PHYSICAL_IP}",
              "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
              "private-netmask=255.255.0.0", f"public-iface={s.bridges[0]}",
              f"private-iface={s.bridges[1]}", "gateway=192.0.2.1")  # fmt: skip
        s.out("set", "attr", "kvm_domain_type", "qemu")
        s.out("set", "attr", "kvm_disk_dir", str(home / "disks"))
        s.out("set", "host", "attr", "frontend-0-0", "libvirt_uri", "qemu:///system")
        s.out("set", "host", "attr", "frontend-0-0", "kvm_vlan_mode", "bridge")
        s.out("create", "frontend", "image", f"dir={image_dir}", f"cache={cache}")
        # The tunnel account and the physical frontend's ssh host key, as the VFs learn them.
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(home / "ssh_host_ed25519_key")], check=True)  # fmt: skip
        s.out("set", "attr", "airboss_tunnel_user", "nobody")
        s.out("set", "attr", "airboss_tunnel_host_keys", str(home / "ssh_host_ed25519_key.pub"))
        if tls:
            s.out("create", "airboss", "certificate", f"dir={home / 'pki'}", "frontends=no")

        for i, (fqdn, n) in enumerate(shapes):
            fe = f"fdc{chr(97 + i)}-{tok}"
            key = home / f"owner-{i}.key"
            pub = s.out("create", "keys", f"key={key}", "passphrase=no")
            (home / f"owner-{i}.pub").write_text(pub)
            c = Cluster(fe, fqdn, f"192.0.2.{20 + i}", vlans[i],
                        [f"vm-{fe}-{j}" for j in range(n)], key)  # fmt: skip
            domains |= {fe, *c.computes}
            s.out("add", "cluster", c.public_ip, str(n), f"vlan={c.vlan}", f"fe-name={fe}",
                  f"fe-fqdn={fqdn}", "cluster-naming=yes", "mem-per-frontend=1024",
                  "disk-per-frontend=4", "mem-per-compute=256", "disk-per-compute=1")  # fmt: skip
            s.out("add", "host", "key", fe, f"key={home / f'owner-{i}.pub'}")
            if i in tls:
                s.out("set", "host", "attr", fe, "airboss_url", f"https://{PHYSICAL_IP}:8677")
                s.out("set", "host", "attr", fe, "airboss_ca", str(home / "pki" / "ca.crt"))
            for vm in c.computes:
                c.macs[vm] = s.out("list", "host", "interface", vm, "output-header=no",
                                   "output-col=mac").split()[0].rstrip(":")  # fmt: skip
            s.clusters.append(c)

        keys = keydir / "authorized_keys"
        keys.write_text(s.out("report", "airboss", "tunnel"))
        keydir.chmod(0o755)
        keys.chmod(0o644)
        (home / "sshd_config").write_text(_sshd_config(home, keys))
        Path("/run/sshd").mkdir(exist_ok=True)
        log = open(home / "sshd.log", "w")  # noqa: SIM115 (kept open for the process)
        s.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", s.fe_ns, SSHD, "-D", "-e", "-f", str(home / "sshd_config")],
            stderr=log,
        ))  # fmt: skip
        alog = open(home / "airboss-test.log", "w")  # noqa: SIM115
        s.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", s.fe_ns, str(VENV_BIN / "airboss"), "serve",
             "--listen", "127.0.0.1:8677"], env=env, stdout=alog, stderr=alog,
        ))  # fmt: skip
        if tls:
            tlog = open(home / "airboss-tls.log", "w")  # noqa: SIM115
            s.procs.append(subprocess.Popen(
                ["ip", "netns", "exec", s.fe_ns, str(VENV_BIN / "airboss"), "serve",
                 "--listen", f"{PHYSICAL_IP}:8677", "--tls-cert", str(home / "pki/airboss.crt"),
                 "--tls-key", str(home / "pki/airboss.key")], env=env, stdout=tlog, stderr=tlog,
            ))  # fmt: skip
        s.out("start", "service", "dhcp", f"netns={s.fe_ns}", "interface=prv0")

        # Both frontends install at once and boot their own disks.
        t0 = time.monotonic()
        for c in s.clusters:
            s.out("start", "host", "vm", c.frontend)
        conn = s.hv()

        def ready(c: Cluster) -> None:
            wait_for(f"{c.frontend} installed",
                     lambda: "os" in s.out("list", "host", "boot", c.frontend,
                                           "output-header=no").split(),
                     READY_TIMEOUT, s.boot_log)  # fmt: skip
            wait_for(f"{c.frontend} started from its disk",
                     lambda: (d := conn.domain(c.frontend)) is not None and d.isActive()
                     and "<kernel>" not in d.XMLDesc(0), 300, s.boot_log)  # fmt: skip
            c.console = read_serial(
                conn, c.frontend, f"{READY} {c.fqdn}".encode(), READY_TIMEOUT
            ).decode(errors="replace")

        failures: list[BaseException] = []

        def ready_or_say(c: Cluster) -> None:
            try:
                ready(c)
            except BaseException as exc:  # the thread's error is the test's error
                failures.append(exc)

        threads = [threading.Thread(target=ready_or_say, args=(c,)) for c in s.clusters]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if failures:
            raise failures[0]
        for c in s.clusters:
            assert f"{READY} {c.fqdn}" in c.console, c.console[-4000:]
        s.timings[f"{len(shapes)} virtual frontends at once: start -> ready"] = (
            time.monotonic() - t0
        )
        yield s
    finally:
        for p in s.procs:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        subprocess.run([str(VENV_BIN / "rocks"), "stop", "service", "dhcp"], env=env,
                       capture_output=True, check=False)  # fmt: skip
        with contextlib.suppress(Exception):
            purge(hv.connect("frontend-0-0", "qemu:///system", 15).conn, domains, home)
        for ns in (s.fe_ns, s.owner_ns):
            # Whatever still runs there (an sshd child of a tunnel that never closed kept the
            # namespace, and so its veths, alive after the test), then the namespace.
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                  check=False).stdout.split()  # fmt: skip
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        for br in s.bridges:
            subprocess.run(["ip", "link", "del", br], capture_output=True, check=False)
        shutil.rmtree(keydir, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
