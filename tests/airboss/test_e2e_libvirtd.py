"""End to end on the real libvirtd: a Unix user with nothing but a private key runs their cluster.

An owner who is not root (uid 65534, `nobody`, through `setpriv`) and holds only a private key
that they made themselves with `pilot create keys`:

1. powers on a compute VM of their cluster through a real Airboss daemon (`rocks start service
   airboss`) and sees it running, in libvirt and in their own `pilot list host macs`;
2. is refused on another cluster's VM (and the refusal is in the audit log);
3. starts their 4-node cluster with `rocks set cluster power` in parallel.

QEMU under TCG (domain type qemu), 256 MB per VM; the computes boot network-first and sit in
iPXE, which is enough for "running". Their NICs attach to an address-less bridge `vlan<N>` this
test makes (container attribute `kvm_vlan_mode bridge`), so no traffic leaves it. Everything this
test creates carries a random token (domains, bridge) or lives under its own directories, and is
removed at the end even when the test failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libvirt_purge import purge

LIBVIRT_ENV = "FLIGHTDECK_TEST_LIBVIRT"
NOBODY = 65534
BIN = Path(sys.executable).parent
#: VLAN ids (and bridges vlan<N>) tried, away from the other end-to-end tests' range.
VLANS = range(3899, 3799, -1)

pytestmark = [
    pytest.mark.libvirtd,
    pytest.mark.slow,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def libvirt_uri() -> str:
    uri = os.environ.get(LIBVIRT_ENV)
    if not uri:
        pytest.skip(f"{LIBVIRT_ENV} is not set (scripts/test.sh starts libvirtd and sets it)")
    if os.geteuid() != 0:
        pytest.fail(f"{LIBVIRT_ENV} is set but this test needs root (bridges, setpriv)")
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to act as another user")
    return uri


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def owner_home() -> Iterator[Path]:
    """A directory only the owner (uid 65534) can use: where their key lives."""
    home = Path(tempfile.mkdtemp(prefix="fd-owner-", dir="/tmp"))
    os.chown(home, NOBODY, NOBODY)
    home.chmod(0o700)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def as_owner(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a program as uid/gid 65534 with no supplementary groups and a bare environment."""
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
        capture_output=True, text=True, timeout=300, check=False, cwd=home,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
             # What the owner's shell might have: the site database is not theirs to read.
             "FLIGHTDECK_DB": os.environ.get("FLIGHTDECK_DB", "")},
    )


@pytest.fixture
def lab(rocks: Any, libvirt_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[dict[str, Any]]:
    from flightdeck.virt import hypervisor as hv

    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    token = secrets.token_hex(3)
    vlan = next((v for v in VLANS if not Path(f"/sys/class/net/vlan{v}").exists()), None)
    if vlan is None:
        pytest.fail("bridges vlan3899..vlan3800 all exist")
    bridge = f"vlan{vlan}"
    mine = f"fdab-{token}"
    theirs = f"fdac-{token}"
    domains = [f"vm-{mine}-{i}" for i in range(4)] + [f"vm-{theirs}-0", mine, theirs]
    _ip("link", "add", "name", bridge, "type", "bridge")
    with contextlib.suppress(OSError):
        Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6").write_text("1\n")
    _ip("link", "set", bridge, "up")
    try:
        rocks.ok("init", "frontend", f"name={mine}.example.org", "public-ip=192.0.2.10",
                 "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
                 "private-netmask=255.255.0.0")
        rocks.ok("set", "attr", "kvm_domain_type", "qemu")
        rocks.ok("set", "attr", "kvm_disk_dir", str(tmp_path / "disks"))
        rocks.ok("set", "host", "attr", "frontend-0-0", "libvirt_uri", libvirt_uri)
        rocks.ok("set", "host", "attr", "frontend-0-0", "kvm_vlan_mode", "bridge")
        small = ("mem-per-frontend=256", "mem-per-compute=256", "disk-per-frontend=1",
                 "disk-per-compute=1", "cluster-naming=yes")
        rocks.ok("add", "cluster", "192.0.2.20", "4", f"vlan={vlan}", f"fe-name={mine}", *small)
        rocks.ok("add", "cluster", "192.0.2.21", "1", f"vlan={vlan - 100}",
                 f"fe-name={theirs}", *small)
        yield {"token": token, "mine": mine, "theirs": theirs, "vlan": vlan, "uri": libvirt_uri}
    finally:
        with contextlib.suppress(Exception):
            rocks("stop", "service", "airboss")
        purge(hv.connect("e2e", libvirt_uri, timeout=15).conn, domains, tmp_path)
        _ip("link", "del", bridge)


def _state(uri: str, vm: str) -> str:
    from flightdeck.virt import hypervisor as hv

    return hv.connect("e2e", uri, timeout=15).state(vm)


def _wait_active(uri: str, vms: list[str], timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {vm: _state(uri, vm) for vm in vms}
        if all(s == "active" for s in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def test_an_owner_with_only_a_key_runs_their_cluster(
    rocks: Any, lab: dict[str, Any], owner_home: Path
) -> None:
    from flightdeck.db.engine import open_database
    from flightdeck.services.clusters import cluster_macs

    mine, theirs, uri = lab["mine"], lab["theirs"], lab["uri"]
    db = open_database(rocks.url)
    try:
        nodes = {name: macs[0] for macs, name in cluster_macs(db, mine)}
        other = {name: macs[0] for macs, name in cluster_macs(db, theirs)}
    finally:
        db.dispose()
    computes = [f"vm-{mine}-{i}" for i in range(4)]

    # The owner makes their key; the administrator registers its public half.
    made = as_owner(owner_home, str(BIN / "pilot"), "create", "keys", "key=owner.key",
                    "passphrase=no")
    assert made.returncode == 0, made.stderr
    key = owner_home / "owner.key"
    assert key.stat().st_uid == NOBODY and key.stat().st_mode & 0o777 == 0o600
    public = owner_home.parent / f"{owner_home.name}.pub"
    public.write_text(made.stdout)
    try:
        rocks.ok("add", "host", "key", mine, f"key={public}", "description=nobody")
    finally:
        public.unlink()

    started = rocks.ok("start", "service", "airboss", "listen=127.0.0.1:0")
    url = started.split(" on ", 1)[1].split(";", 1)[0]
    address = url.split("://", 1)[1]
    common = ("key=owner.key", f"airboss={address}")
    pilot = str(BIN / "pilot")

    # 1. Power on one compute, by MAC, and see it running.
    vm = computes[0]
    done = as_owner(owner_home, pilot, "set", "host", "power", f"host={nodes[vm]}",
                    "action=on", *common)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{vm} ({nodes[vm]}): started {vm}")
    assert _wait_active(uri, [vm]) == {vm: "active"}
    listed = as_owner(owner_home, pilot, "list", "host", "macs", f"host={nodes[mine]}", *common)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[-1]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows[vm] == [nodes[vm], "active", vm]
    assert rows[mine][1] == "nostate"

    # 2. Another cluster's VM: refused, nothing started, and on record.
    victim = f"vm-{theirs}-0"
    done = as_owner(owner_home, pilot, "set", "host", "power", f"host={other[victim]}",
                    "action=on", *common)
    assert done.returncode == 1
    assert "is not a VM your key may control" in done.stderr
    assert _state(uri, victim) == "nostate"
    log = json.loads(rocks.ok("list", "airboss", "log", "limit=1", "output-format=json"))[0]
    assert log["accepted"] is False and log["target"] == other[victim]
    assert log["result"].startswith(f"forbidden: out-of-scope ({victim})")

    done = as_owner(owner_home, pilot, "set", "host", "power", f"host={nodes[vm]}",
                    "action=off", *common)
    assert done.returncode == 0, done.stderr
    assert _state(uri, vm) == "nostate"

    # 3. The whole cluster at once, with rocks (run by the owner: no database of theirs here).
    t0 = time.monotonic()
    # frontend=no: this frontend has no installed disk; its computes only (as on the VF itself).
    done = as_owner(owner_home, str(BIN / "rocks"), "set", "cluster", "power", nodes[mine],
                    "action=on", "frontend=no", *common)
    elapsed = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    per_node = [line for line in done.stdout.splitlines() if ": started vm-" in line]
    assert sorted(line.split(":", 1)[0] for line in per_node) == computes, done.stdout
    assert _wait_active(uri, computes) == dict.fromkeys(computes, "active")
    assert _state(uri, mine) == "nostate"  # the frontend is left alone
    print(f"\nset cluster power: 4 computes started in {elapsed:.1f} s")
    done = as_owner(owner_home, str(BIN / "rocks"), "set", "cluster", "power", nodes[mine],
                    "action=off", "frontend=no", *common)
    assert done.returncode == 0, done.stderr
    assert all(_state(uri, c) == "nostate" for c in computes)
