"""A lab for the container network end to end: namespaces, a private libvirtd, a dnsmasq.

The Rocks scheme renames the container's NIC and builds a bridge called `eth0`; on this
machine `eth0` is the real uplink, so the scheme can only be built inside a network namespace,
and the libvirtd that attaches VMs to it must run in that namespace too (libvirt makes taps
and macvtaps in its own namespace). The suite's libvirtd (qemu:///system) is running, others
use it, and only one daemon can own /run/libvirt: so the lab starts a SECOND libvirtd that
shares nothing with it:

- in the lab's network namespace (`ip netns exec <lab>`),
- in a private mount namespace (`unshare --mount --propagation private`) in which fresh
  directories under a temporary root are bind-mounted over everything the system libvirtd
  and its QEMU driver write or lock: /run/libvirt (sockets, pid and status files of running
  domains), /var/lib/libvirt (per-domain monitor sockets, save images), /var/cache/libvirt
  (QEMU capabilities), /etc/libvirt (configuration, persistent domains and storage pools)
  and /var/log/libvirt (QEMU logs). Its own pid file is under the root as well (the default,
  /run/libvirtd.pid, is the system daemon's lock);
- with a copy of the system daemon's QEMU capabilities cache (a stale one is probed again),
- with a copy of this machine's qemu.conf (user/group root, no security driver: what
  scripts/lib/common.sh writes) plus `stdio_handler = "file"`, so no virtlogd is needed.

Clients outside reach it through the bind SOURCE of its socket:
`qemu+unix:///system?socket=<root>/run/libvirt-sock` (libvirt 9.0's form; no host part, so
Flightdeck treats the container as this machine, in the namespace of its `kvm_netns`).

The bind mounts exist only in that mount namespace: they go away with its last process (the
daemon and its QEMUs), so stopping the processes is the unmount. Everything has a random
token in its name, and the teardown removes exactly what was made, failed test or not.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

from flightdeck.virt import hypervisor as hv

#: What the system libvirtd and its QEMU driver write or lock: each gets a fresh directory.
PRIVATE_DIRS = {
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "etc": "/etc/libvirt",
    "log": "/var/log/libvirt",
}
#: Used when this machine has no /etc/libvirt/qemu.conf (scripts/lib/common.sh writes these).
QEMU_CONF = 'user = "root"\ngroup = "root"\nsecurity_driver = "none"\n'
#: The first start of a daemon with an empty cache probes QEMU (~8 s on the CI machines).
START_TIMEOUT = 90.0

#: Runs as `sh -c SCRIPT sh <root>` inside the new mount namespace; exec keeps the pid.
_START = """\
set -e
root=$1
shift
for pair in run:/run/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt \\
            etc:/etc/libvirt log:/var/log/libvirt; do
    mkdir -p "${pair#*:}"
    mount --bind "$root/${pair%%:*}" "${pair#*:}"
done
export LIBVIRT_LOG_OUTPUTS="3:file:$root/libvirtd.log"
exec libvirtd --pid-file "$root/libvirtd.pid" "$@"
"""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def _stop(proc: subprocess.Popen[bytes], what: str, grace: float = 30.0) -> str | None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; a problem or None."""
    if proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return f"{what} (pid {proc.pid}) survived SIGKILL"
        return f"{what} (pid {proc.pid}) ignored SIGTERM for {grace:g} s; killed"
    return None


def conf_text(system_conf: Path) -> str:
    """This machine's qemu.conf, or what scripts/lib/common.sh writes when it has none."""
    return system_conf.read_text() if system_conf.exists() else QEMU_CONF


@dataclass
class PrivateLibvirtd:
    """A libvirtd of our own in `netns`, with its state under `root` (see the module doc)."""

    netns: str
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    #: The daemon's mount namespace (`mnt:[...]`), to recognise its QEMUs.
    mount_ns: str = ""

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.root}/run/libvirt-sock"

    def log_tail(self, lines: int = 15) -> str:
        path = self.root / "libvirtd.log"
        if not path.exists():
            return "(no libvirtd.log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def start(
        self, timeout: float = START_TIMEOUT, conf: str = "", args: tuple[str, ...] = ()
    ) -> float:
        """Start the daemon and wait until it answers; the seconds it took. `conf` is its
        libvirtd.conf (default: none, libvirt's defaults), `args` more daemon arguments
        (`--listen` for TLS)."""
        for sub in PRIVATE_DIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        system_conf = Path("/etc/libvirt/qemu.conf")
        (self.root / "etc" / "qemu.conf").write_text(
            conf_text(system_conf) + '\n# the lab: no virtlogd\nstdio_handler = "file"\n'
        )
        if conf:
            (self.root / "etc" / "libvirtd.conf").write_text(conf)
        # A copy of the system daemon's QEMU capabilities (read, never shared): libvirtd checks
        # it against the QEMU binary and itself and probes again (~8 s) if it is stale.
        caps = Path("/var/cache/libvirt/qemu/capabilities")
        if caps.is_dir():
            shutil.copytree(caps, self.root / "cache" / "qemu" / "capabilities")
        t0 = time.monotonic()
        argv = ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation",
                "private", "sh", "-c", _START, "sh", str(self.root), *args]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=(self.root / "libvirtd.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        last = ""
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                out = (self.root / "libvirtd.out").read_text(errors="replace").strip()
                raise AssertionError(
                    f"the lab's libvirtd exited with {self.proc.returncode}: {out}\n"
                    + self.log_tail()
                )
            if (self.root / "run" / "libvirt-sock").exists():
                try:
                    conn = libvirt.open(self.uri)
                    try:
                        conn.getVersion()
                        self.mount_ns = os.readlink(f"/proc/{self.proc.pid}/ns/mnt")
                        return time.monotonic() - t0
                    finally:
                        conn.close()
                except libvirt.libvirtError as exc:
                    last = str(exc)
            time.sleep(0.1)
        raise AssertionError(
            f"the lab's libvirtd did not answer within {timeout:g} s: {last}\n" + self.log_tail()
        )

    def stop(self) -> list[str]:
        """Destroy and undefine every domain (all are the lab's), stop the daemon, then kill
        any QEMU it left (by the pid files in OUR /run/libvirt/qemu); the problems."""
        problems: list[str] = []
        hv.forget(self.uri)
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                problems.append(f"no connection to the lab's libvirtd for the clean-up: {exc}")
            else:
                try:
                    for dom in conn.listAllDomains(0):
                        try:
                            if dom.isActive():
                                dom.destroy()
                            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
                        except libvirt.libvirtError as exc:
                            problems.append(f"domain {dom.name()}: {exc}")
                finally:
                    conn.close()
        problem = _stop(self.proc, "the lab's libvirtd")
        if problem:
            problems.append(problem)
        for pidfile in (self.root / "run" / "qemu").glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pidfile.read_text().strip())
                # Only a process of OUR mount namespace: a reused pid is someone else's.
                if self.mount_ns and os.readlink(f"/proc/{pid}/ns/mnt") == self.mount_ns:
                    os.kill(pid, signal.SIGKILL)
                    problems.append(f"QEMU pid {pid} ({pidfile.stem}) outlived the daemon")
        return problems


@dataclass
class NetnsLab:
    """The namespaces of one test (`lab` plays the VM container, `switch` the frontend on the
    other end of its NICs), its private libvirtd and the dnsmasq it runs."""

    token: str
    tmp: Path
    lab: str
    switch: str
    libvirtd: PrivateLibvirtd
    namespaces: list[str] = field(default_factory=list)
    dnsmasq: subprocess.Popen[bytes] | None = None

    @property
    def leases(self) -> Path:
        return self.libvirtd.root / "dnsmasq.leases"

    @property
    def dnsmasq_log(self) -> Path:
        return self.libvirtd.root / "dnsmasq.log"

    def add_namespaces(self) -> None:
        for ns in (self.lab, self.switch):
            ip("netns", "add", ns)
            self.namespaces.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")

    def wire(self, nic: str, port: str, mac: str | None = None) -> None:
        """A veth: `nic` in the lab (with `mac`), `port` in the switch, both up."""
        ip("-n", self.lab, "link", "add", nic, "type", "veth", "peer", "name", port,
           "netns", self.switch)  # fmt: skip
        if mac:
            ip("-n", self.lab, "link", "set", nic, "address", mac)
        ip("-n", self.switch, "link", "set", port, "up")
        ip("-n", self.lab, "link", "set", nic, "up")

    def start_dnsmasq(self, interfaces: list[str], ranges: list[str]) -> None:
        """DHCP only (no DNS, no TFTP) in the switch namespace, leases and log under the root."""
        argv = [
            "ip", "netns", "exec", self.switch, "dnsmasq", "--keep-in-foreground",
            "--conf-file=/dev/null", "--port=0", "--bind-interfaces", "--log-dhcp",
            f"--dhcp-leasefile={self.leases}", f"--log-facility={self.dnsmasq_log}",
            f"--pid-file={self.libvirtd.root / 'dnsmasq.pid'}",
        ]  # fmt: skip
        argv += [f"--interface={i}" for i in interfaces]
        argv += [f"--dhcp-range={r}" for r in ranges]
        self.dnsmasq = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.dnsmasq.poll() is not None:
                err = self.dnsmasq.stderr.read().decode() if self.dnsmasq.stderr else ""
                raise AssertionError(f"dnsmasq exited with {self.dnsmasq.returncode}: {err}")
            if self.dnsmasq_log.exists() and "started" in self.dnsmasq_log.read_text():
                return
            time.sleep(0.05)
        raise AssertionError("dnsmasq did not start within 10 s")

    def cleanup(self) -> list[str]:
        """dnsmasq, then the domains and the daemon, then the namespaces (with every device in
        them: veths, bridges, taps, macvtaps), then the root; the problems."""
        problems: list[str] = []
        if self.dnsmasq is not None:
            problem = _stop(self.dnsmasq, "dnsmasq", grace=10)
            if problem:
                problems.append(problem)
            if self.dnsmasq.stderr:
                self.dnsmasq.stderr.close()
        problems += self.libvirtd.stop()
        for ns in reversed(self.namespaces):
            done = ip("netns", "del", ns, check=False)
            if done.returncode != 0:
                problems.append(f"netns {ns}: {done.stderr.strip()}")
        shutil.rmtree(self.libvirtd.root, ignore_errors=True)
        return problems


@pytest.fixture
def netns_lab(libvirt_uri: str, tmp_path: Path) -> Iterator[NetnsLab]:
    """Two namespaces and a private libvirtd in the first; removed after the test.

    Depends on `libvirt_uri` (tests/e2e/conftest.py) for its rule: skipped without
    FLIGHTDECK_TEST_LIBVIRT, a failure when that daemon does not answer. The daemon's root is
    a short directory in /tmp: a unix socket path must stay under 108 bytes.
    """
    del libvirt_uri  # only its skip/fail rule is wanted: the lab has its own daemon
    token = secrets.token_hex(3)
    root = Path(tempfile.mkdtemp(prefix=f"fdlab-{token}-"))
    lab = NetnsLab(
        token=token,
        tmp=tmp_path,
        lab=f"fdlab-{token}-c",
        switch=f"fdlab-{token}-s",
        libvirtd=PrivateLibvirtd(f"fdlab-{token}-c", root),
    )
    try:
        lab.add_namespaces()
        yield lab
    finally:
        problems = lab.cleanup()
        if problems:
            pytest.fail("clean-up of the lab: " + "; ".join(problems))


# Live 802.1Q inside TCG guests ----------------------------------------------------------------
#
# This machine's kernel has no 802.1Q, the Debian cloud kernel of the installer image has it as
# a module. A guest image of our own (NOT flightdeck.pxe.image's installer, which another
# piece of work owns): the same kernel and busybox debs from the same cache, the virtio
# modules plus 8021q, and an /init that makes VLAN interfaces and pings its peer over them.

VLAN_MARKER = "FDLAB-VLAN"
#: 8021q's own dependencies (llc, stp, garp, mrp) come from its modinfo.
VLAN_MODULE_ROOTS = ("virtio_pci", "virtio_net", "8021q")

_VLAN_INIT = """#!/bin/sh
# /init of the lab's VLAN guest (tests/e2e/lab.py); runs as PID 1.
# fd.me=<n> fd.peer=<n> fd.vlans=<id>:<subnet>,... : for each, make eth0.<id> with
# <subnet>.<me>/24 and ping <subnet>.<peer>; say what answered, give the peer time, power off.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in __MODULES__; do
    insmod "/lib/modules/$m.ko" || echo "__MARKER__-WARNING insmod $m failed"
done
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        fd.me=*) me="${arg#fd.me=}" ;;
        fd.peer=*) peer="${arg#fd.peer=}" ;;
        fd.vlans=*) vlans="${arg#fd.vlans=}" ;;
    esac
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ "$i" -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
ip link set eth0 up
for v in $(echo "$vlans" | tr , ' '); do
    id="${v%%:*}"
    ip link add link eth0 name "eth0.$id" type vlan id "$id" || echo "__MARKER__-NOVLAN $id"
    ip addr add "${v#*:}.$me/24" dev "eth0.$id"
    ip link set "eth0.$id" up
done
echo "__MARKER__-UP me=$me links=$(ls /sys/class/net | tr '\\n' ' ')"
# The first VLAN waits up to 40 s for the peer to boot; once it answered, the peer has made
# all its VLAN interfaces (before its own pings), so 3 s tell about the others.
tries=40
for v in $(echo "$vlans" | tr , ' '); do
    id="${v%%:*}"
    ok=no
    i=0
    while [ "$i" -lt "$tries" ]; do
        if ping -c 1 -W 1 "${v#*:}.$peer" >/dev/null 2>&1; then ok=yes; break; fi
        i=$((i + 1))
    done
    echo "__MARKER__-PING me=$me vlan=$id peer=${v#*:}.$peer answered=$ok"
    tries=3
done
echo "__MARKER__-DONE me=$me"
sleep 15
poweroff -f
"""


def vlan_guest_image(debs: Path, dest: Path) -> tuple[Path, Path]:
    """(kernel, initrd) of the VLAN guest in `dest`, from the installer's cached debs."""
    from flightdeck.pxe.image import Cpio, _busybox_applets, _Modules

    kernel_debs = sorted(debs.glob("linux-image-*.deb"))
    busybox_debs = sorted(debs.glob("busybox-static_*.deb"))
    assert kernel_debs and busybox_debs, f"no kernel/busybox debs in {debs}: build the image"
    unpack = dest / "unpack"
    for deb in (kernel_debs[-1], busybox_debs[-1]):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpack)], check=True, timeout=120)
    moddir = next(p for p in (unpack / "lib/modules").iterdir() if p.is_dir())
    modules = _Modules.scan(moddir).resolve(VLAN_MODULE_ROOTS)
    busybox = unpack / "bin/busybox"
    a = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        a.directory(d)
    a.char_device("dev/console", 5, 1)
    a.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in _busybox_applets(busybox):
        if applet != "busybox" and "/" not in applet:
            a.symlink(f"bin/{applet}", "busybox")
    for name, data in modules:
        a.file(f"lib/modules/{name}.ko", data)
    init = _VLAN_INIT.replace("__MODULES__", " ".join(n for n, _ in modules))
    a.file("init", init.replace("__MARKER__", VLAN_MARKER).encode(), 0o755)
    kernel, initrd = dest / "vmlinuz", dest / "initrd.gz"
    shutil.copyfile(next((unpack / "boot").glob("vmlinuz-*")), kernel)
    initrd.write_bytes(gzip.compress(a.bytes(), compresslevel=1, mtime=0))
    shutil.rmtree(unpack)
    return kernel, initrd
