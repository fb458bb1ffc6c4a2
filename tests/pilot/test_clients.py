"""The owner-side commands against a real Airboss process: `rocks ... key=` and `pilot ...`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from flightdeck.pilot import keyfile

PILOT = str(Path(sys.executable).parent / "pilot")


def key_file(owner: Any, path: Path) -> Path:
    path.write_bytes(owner.key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def state(site: Any, vm: str) -> str:
    """The VM's state as the Airboss process sees it (its test driver is its own)."""
    from flightdeck.pilot.client import AirbossClient

    srv = site.servers[-1]
    for owner in ("alice", "bob", "carol"):
        c = AirbossClient(site.owners[owner].key, srv.address)
        for node in c.macs(vm, status=True) if _covers(site, owner, vm) else []:
            if node.host == vm:
                return str(node.status)
    raise AssertionError(f"no owner covers {vm}")


def _covers(site: Any, owner: str, vm: str) -> bool:
    return vm in {"alice": site.cluster_a, "bob": site.cluster_b, "carol": [site.plain]}[owner]


@pytest.fixture
def airboss(site: Any) -> Any:
    return site.server()


@pytest.fixture
def alice_key(site: Any, alice: Any) -> Path:
    return key_file(alice, site.tmp / "alice.key")


# rocks ... key= ---------------------------------------------------------------------------------


def test_rocks_set_host_power_by_name_sends_the_first_mac(site: Any, airboss: Any,
                                                           alice_key: Path) -> None:
    vm = site.cluster_a[1]
    out = site.rocks.ok("set", "host", "power", vm, "action=on", f"key={alice_key}",
                        f"airboss={airboss.address}")
    assert out == f"{vm} ({site.mac(vm)}): started {vm} on vm-container-0-0\n"
    assert site.last().target == site.mac(vm)  # the name became its MAC
    assert state(site, vm) == "active"
    out = site.rocks.ok("set", "host", "power", site.mac(vm), "action=off", f"key={alice_key}",
                        f"airboss={airboss.address}")
    assert out == f"{vm} ({site.mac(vm)}): stopped {vm}\n"


def test_rocks_set_host_power_several_and_failures(site: Any, airboss: Any,
                                                   alice_key: Path) -> None:
    a1, a2, b1 = site.cluster_a[1], site.cluster_a[2], site.cluster_b[1]
    r = site.rocks("set", "host", "power", a1, a2, b1, "nowhere-0-0", "action=on",
                   f"key={alice_key}", f"airboss={airboss.address}")
    assert r.code == 1
    assert f"{a1} ({site.mac(a1)}): started" in r.out
    assert f"{a2} ({site.mac(a2)}): started" in r.out
    assert f"error - {b1} ({site.mac(b1)}): {site.mac(b1)} is not a VM your key may" in r.err
    assert "error - nowhere-0-0: nowhere-0-0 is not a VM your key may control" in r.err
    assert r.err.strip().splitlines()[-1] == (
        f"error - 2 of 4 request(s) failed: {b1}, nowhere-0-0")
    assert state(site, b1) == "nostate"


def _boot(rocks: Any, host: str) -> str:
    return rocks.ok("list", "host", "boot", host, "output-header=no").split()[-1]


def test_on_a_virtual_frontend_power_install_marks_its_own_node_and_undoes_a_refusal(
    site: Any, airboss: Any, alice_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root on a virtual frontend (its own database): `power install compute-0-0` must mark
    compute-0-0 for install *here*, where it PXE-boots from; the physical side cannot. A
    target the Airboss refuses (bob's VM, named compute-0-1 here) gets its boot action back."""
    from conftest import RocksRunner

    a1, b1 = site.cluster_a[1], site.cluster_b[1]
    url = f"sqlite:///{tmp_path / 'vi-1.db'}"
    monkeypatch.setenv("FLIGHTDECK_DB", url)
    vf = RocksRunner(url)
    vf.ok("init", "frontend", "name=vi-1.example.org", "public-ip=192.0.2.11",
          "public-netmask=255.255.255.0", "private-ip=10.1.1.1", "private-netmask=255.255.0.0")
    for name, vm, ip in (("compute-0-0", a1, "10.1.255.254"), ("compute-0-1", b1, "10.1.255.253")):
        vf.ok("add", "host", name, "membership=Compute", "rack=0", "rank=" + name[-1])
        vf.ok("add", "host", "interface", name, "eth0", f"mac={site.mac(vm)}", f"ip={ip}",
              "subnet=private")
    vf.ok("set", "host", "boot", "compute-0-0", "compute-0-1", "action=os")
    r = vf("set", "host", "power", "compute-0-0", "compute-0-1", "action=install",
           f"key={alice_key}", f"airboss={airboss.address}")
    assert r.code == 1 and f"({site.mac(a1)}): started" in r.out, r.err
    assert _boot(vf, "compute-0-0") == "install"
    assert _boot(vf, "compute-0-1") == "os"
    assert state(site, b1) == "nostate"


def test_rocks_set_host_power_action_checked_first(site: Any, alice_key: Path) -> None:
    r = site.rocks("set", "host", "power", site.cluster_a[1], "action=explode",
                   f"key={alice_key}")
    assert r.code == 1 and 'invalid action. action must be "on", "off", "install"' in r.err


def test_rocks_client_defaults_key_and_airboss_attribute(
    site: Any, airboss: Any, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(site.tmp))
    (site.tmp / ".ssh").mkdir()
    key_file(alice, site.tmp / ".ssh" / "id_ed25519")
    site.rocks.ok("set", "attr", "airboss", airboss.address)
    out = site.rocks.ok("list", "host", "macs", site.cluster_a[0])  # ~/.ssh/id_ed25519
    assert out.splitlines()[0].split() == ["MACS", "IN", "CLUSTER"]
    vm = site.cluster_a[2]
    site.rocks.ok("set", "host", "power", vm, "action=on")  # ~/.ssh/id_ed25519, attribute
    assert state(site, vm) == "active"


def test_rocks_without_any_key(site: Any, airboss: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(site.tmp / "nobody"))
    r = site.rocks("set", "host", "power", site.cluster_a[1], "action=on",
                   f"airboss={airboss.address}")
    assert r.code == 1 and "you need to provide a valid private key" in r.err


def test_rocks_with_an_encrypted_key_asks_its_passphrase(
    site: Any, airboss: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyfile, "_terminal", lambda: True)
    answers = ["pass phrase", "pass phrase"]
    monkeypatch.setattr(keyfile.getpass, "getpass", lambda _p="": answers.pop(0))
    path = site.tmp / "enc.key"
    pem = keyfile.create_key_file(str(path), passphrase=True)
    (site.tmp / "enc.pub").write_text(pem)
    site.rocks.ok("add", "host", "key", site.cluster_a[0], f"key={site.tmp / 'enc.pub'}")
    answers.append("pass phrase")
    out = site.rocks.ok("list", "host", "macs", site.cluster_a[0], f"key={path}",
                        f"airboss={airboss.address}")
    assert len(out.splitlines()) == 4 and answers == []


def test_rocks_list_host_macs_through_the_airboss(site: Any, airboss: Any, alice_key: Path
                                                  ) -> None:
    fe = site.cluster_a[0]
    out = site.rocks.ok("list", "host", "macs", fe, f"key={alice_key}",
                        f"airboss={airboss.address}")
    assert out.split() == ["MACS", "IN", "CLUSTER", *(site.mac(h) for h in site.cluster_a)]
    out = site.rocks.ok("list", "host", "macs", fe, f"key={alice_key}", "names=yes",
                        f"airboss={airboss.address}")
    lines = out.splitlines()
    assert lines[0].split() == ["MACS", "IN", "CLUSTER", "HOST", "NAMES"]
    assert [line.split() for line in lines[1:]] == [[site.mac(h), h] for h in site.cluster_a]
    site.rocks.ok("set", "host", "power", site.cluster_a[1], "action=on", f"key={alice_key}",
                  f"airboss={airboss.address}")
    out = site.rocks.ok("list", "host", "macs", fe, "status=yes", "names=yes",
                        f"key={alice_key}", f"airboss={airboss.address}")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["MACS", "IN", "CLUSTER", "STATE", "HOST", "NAMES"]
    assert rows[1:] == [[site.mac(site.cluster_a[0]), "nostate", site.cluster_a[0]],
                        [site.mac(site.cluster_a[1]), "active", site.cluster_a[1]],
                        [site.mac(site.cluster_a[2]), "nostate", site.cluster_a[2]]]


def test_rocks_list_host_macs_from_the_database(site: Any) -> None:
    """The administrator's form (no key) reads the database, and libvirt for the states."""
    fe, c1, c2 = site.cluster_a
    site.rocks.ok("start", "host", "vm", c2)
    rows = [line.split() for line in
            site.rocks.ok("list", "host", "macs", fe, "status=yes", "names=y").splitlines()]
    assert rows == [["MACS", "IN", "CLUSTER", "STATE", "HOST", "NAMES"],
                    [site.mac(fe), "nostate", fe], [site.mac(c1), "nostate", c1],
                    [site.mac(c2), "active", c2]]


def test_rocks_set_cluster_power_in_order(site: Any, airboss: Any, alice_key: Path) -> None:
    """Issue 17: the owner's cluster power is a job of the Airboss, in order: on starts the
    frontend, then the computes (wait=no: the test driver has no guest agent to say ready);
    off stops the computes, then the frontend. (Before issue 17 it powered the computes only,
    through one power request each; run on the virtual frontend itself it still does, below.)"""
    fe, c1, c2 = site.cluster_a
    common = (f"key={alice_key}", f"airboss={airboss.address}")
    out = site.rocks.ok("set", "cluster", "power", fe, "action=on", "wait=no", *common)
    lines = out.splitlines()
    assert re.fullmatch(rf"job \d+: power on of {fe} \(the Airboss runs it\)", lines[0]), lines
    assert re.fullmatch(rf"{fe}: installing {fe} on [a-z0-9-]+", lines[1]), lines
    assert sorted(lines[2:4]) == sorted([
        f"{c1}: started {c1} on vm-container-0-0", f"{c2}: started {c2} on vm-container-0-1",
    ])  # fmt: skip
    assert lines[4:] == [f"{fe} on: 3 started"]
    assert state(site, c1) == state(site, c2) == state(site, fe) == "active"
    # Again: every node already running succeeds and says so (issue 15).
    out = site.rocks.ok("set", "cluster", "power", fe, "action=on", "wait=no", *common)
    assert out.splitlines()[-1] == f"{fe} on: 0 started, 3 already running ({fe}, {c1}, {c2})"
    out = site.rocks.ok("set", "cluster", "power", fe, "action=off", *common)
    lines = out.splitlines()
    assert lines[-2].startswith(f"{fe}: ") and lines[-1] == f"{fe} off: 3 stopped"
    assert state(site, c1) == state(site, fe) == "nostate"
    r = site.rocks("set", "cluster", "power", site.cluster_b[0], "action=on", *common)
    assert r.code == 1 and "is not a VM your key may control" in r.err
    # reset and shutdown are not sequences: the computes at once, as before.
    r = site.rocks("set", "cluster", "power", fe, "action=shutdown", *common)
    assert r.code == 1 and r.err.count("error - ") == 3, r.err  # none runs: each one refused


def test_on_the_virtual_frontend_itself_cluster_power_leaves_it_alone(
    site: Any, airboss: Any, alice_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root on the virtual frontend (its own database knows itself by the MAC the Airboss
    knows it by): `rocks set cluster power <itself>` powers its computes only, never the
    machine it runs on; an install marks them for install here, where they PXE-boot."""
    from conftest import RocksRunner

    fe, c1, c2 = site.cluster_a
    url = f"sqlite:///{tmp_path / 'vi-1.db'}"
    monkeypatch.setenv("FLIGHTDECK_DB", url)
    vf = RocksRunner(url)
    vf.ok("init", "frontend", "name=vi-1.example.org", "public-ip=192.0.2.11",
          "public-netmask=255.255.255.0", "private-ip=10.1.1.1", "private-netmask=255.255.0.0")
    # Its private NIC (on the cluster VLAN) has the MAC the physical side gave it.
    vf.ok("set", "host", "interface", "frontend-0-0", "eth0", f"mac={site.mac(fe)}")
    for rank, vm in enumerate((c1, c2)):
        name = f"compute-0-{rank}"
        vf.ok("add", "host", name, "membership=Compute", "rack=0", f"rank={rank}")
        vf.ok("add", "host", "interface", name, "eth0", f"mac={site.mac(vm)}",
              f"ip=10.1.255.{254 - rank}", "subnet=private")  # fmt: skip
    vf.ok("set", "host", "boot", "compute-0-0", "compute-0-1", "action=os")
    # Named by its own name here (frontend-0-0 on its private network): sent as that MAC.
    out = vf.ok("set", "cluster", "power", "frontend-0-0", "action=install",
                f"key={alice_key}", f"airboss={airboss.address}")  # fmt: skip
    assert "frontend-0-0 is this machine: left as it is, its computes only" in out
    assert out.splitlines()[-1] == f"{fe} install: 2 installing; the frontend left as it is"
    assert site.last().target == site.mac(fe)  # sent as the MAC both sides share
    assert state(site, fe) == "nostate" and state(site, c1) == state(site, c2) == "active"
    assert _boot(vf, "compute-0-0") == _boot(vf, "compute-0-1") == "install"


def test_rocks_set_host_cdrom(site: Any, airboss: Any, alice_key: Path) -> None:
    (site.iso_dir / "debian-12.iso").write_bytes(b"iso")
    vm = site.cluster_a[1]
    common = (f"key={alice_key}", f"airboss={airboss.address}")
    assert site.rocks.ok("set", "host", "cdrom", vm, "list=yes", *common) == "debian-12.iso\n"
    out = site.rocks.ok("set", "host", "cdrom", vm, "cdrom=debian-12.iso", *common)
    assert out == f"{vm}: cdrom {site.iso_dir / 'debian-12.iso'} (from its next start)\n"
    r = site.rocks("set", "host", "cdrom", vm, "cdrom=/etc/shadow", *common)
    assert r.code == 1 and "not in the ISO directory" in r.err
    out = site.rocks.ok("set", "host", "cdrom", vm, "cdrom=none", *common)
    assert out == f"{vm}: cdrom none (from its next start)\n"
    r = site.rocks("set", "host", "cdrom", vm, *common)
    assert r.code == 2 and "cdrom=<name> or cdrom=none" in r.err


def test_unreachable_airboss_is_explained(site: Any, alice_key: Path) -> None:
    r = site.rocks("set", "host", "power", site.cluster_a[1], "action=on", f"key={alice_key}",
                   "airboss=127.0.0.1:1")
    assert r.code == 1 and "cannot reach the Airboss at http://127.0.0.1:1" in r.err


# pilot ------------------------------------------------------------------------------------------


def pilot(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PILOT, *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=cwd)


def test_pilot_as_in_the_guide(site: Any, airboss: Any, alice_key: Path) -> None:
    fe_mac, vm = site.mac(site.cluster_a[0]), site.cluster_a[1]
    common = (f"key={alice_key}", f"airboss={airboss.address}")
    done = pilot("set", "host", "power", f"host={site.mac(vm)}", "action=on", *common)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{vm} ({site.mac(vm)}): started {vm} on vm-container-0-0\n"
    done = pilot("list", "host", "macs", f"host={fe_mac}", *common)
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0] == ["MACS", "IN", "CLUSTER", "STATE", "HOST", "NAMES"]  # status by default
    assert rows[2] == [site.mac(vm), "active", vm]
    done = pilot("list", "host", "macs", f"host={fe_mac}", "status=no", "output-header=no",
                 *common)
    assert [line.split() for line in done.stdout.splitlines()] == [
        [site.mac(h), h] for h in site.cluster_a]
    # Issue 17: a job of the Airboss, the computes first, the frontend last.
    done = pilot("set", "cluster", "power", f"host={fe_mac}", "action=off", *common)
    fe, c2 = site.cluster_a[0], site.cluster_a[2]
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"job 1: power off of {fe} (the Airboss runs it)"
    assert lines[-2:] == [f"{fe}: already stopped",
                          f"{fe} off: 1 stopped, 2 already stopped ({c2}, {fe})"]
    assert state(site, vm) == "nostate"
    done = pilot("report", "job", f"host={fe_mac}", "job=1", *common)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == (
        f"job 1 done: {fe} off: 1 stopped, 2 already stopped ({c2}, {fe})")
    (site.iso_dir / "tools.iso").write_bytes(b"iso")
    done = pilot("list", "host", "isos", f"host={site.mac(vm)}", *common)
    assert done.stdout == "tools.iso\n"
    done = pilot("set", "host", "cdrom", f"host={site.mac(vm)}", "cdrom=tools.iso", *common)
    assert done.returncode == 0 and "tools.iso" in done.stdout


def test_pilot_refusals_and_usage(site: Any, airboss: Any, bob: Any) -> None:
    bob_key = key_file(bob, site.tmp / "bob.key")
    done = pilot("set", "host", "power", f"host={site.mac(site.cluster_a[1])}", "action=on",
                 f"key={bob_key}", f"airboss={airboss.address}")
    assert done.returncode == 1
    assert "is not a VM your key may control" in done.stderr
    assert "Traceback" not in done.stderr
    done = pilot("launch", "rockets")
    assert done.returncode == 2 and "pilot set host power" in done.stderr
    done = pilot("set", "host", "power", "action=on")
    assert done.returncode == 2 and "needs host=" in done.stderr
    done = pilot("set", "host", "power", "host=x", "action=on", "colour=red")
    assert done.returncode == 2 and "unknown parameter 'colour'" in done.stderr
    done = pilot("help")
    assert done.returncode == 0 and "pilot create keys" in done.stdout


def test_pilot_create_keys_then_use(site: Any, airboss: Any, tmp_path: Path) -> None:
    done = pilot("create", "keys", "key=mine.key", "passphrase=no", cwd=tmp_path)
    assert done.returncode == 0
    (tmp_path / "mine.pub").write_text(done.stdout)
    site.rocks.ok("add", "host", "key", site.plain, f"key={tmp_path / 'mine.pub'}")
    done = pilot("set", "host", "power", f"host={site.plain}", "action=on", "key=mine.key",
                 f"airboss={airboss.address}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(site.rocks.ok("list", "airboss", "log", "limit=1", "output-format=json"))
    assert rows[0]["operation"] == "power on" and rows[0]["accepted"] is True
    assert state(site, site.plain) == "active"


def test_open_host_console_is_refused_before_a_port_opens(site: Any, airboss: Any, bob: Any,
                                                          alice_key: Path) -> None:
    """Issue 15: a wrong target or key fails at once with the Airboss's reason (it printed a
    port and waited for a viewer); a stopped VM says so. Under rocks and pilot, VNC and serial."""
    bob_key = key_file(bob, site.tmp / "bob.key")
    theirs = site.mac(site.cluster_a[1])
    for kind in ("vnc", "serial"):
        done = pilot("open", "host", "console", f"host={theirs}", f"console={kind}",
                     "viewer=none", f"key={bob_key}", f"airboss={airboss.address}")
        assert done.returncode == 1, (kind, done.stdout, done.stderr)
        assert "is not a VM your key may control" in done.stderr
        assert "127.0.0.1:" not in done.stdout  # no port was offered
    r = site.rocks("open", "host", "console", site.cluster_a[1], "viewer=none",
                   f"key={bob_key}", f"airboss={airboss.address}")
    assert r.code == 1 and "is not a VM your key may control" in r.err and not r.out
    # The guide's rocks-console <vm> (§3.4.1) is the same command.
    done = subprocess.run(
        [str(Path(sys.executable).parent / "rocks-console"), site.cluster_a[1], "viewer=none",
         f"key={bob_key}", f"airboss={airboss.address}"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "FLIGHTDECK_DB": site.rocks.url},
    )  # fmt: skip
    assert done.returncode == 1 and "is not a VM your key may control" in done.stderr
    # Alice's own VM, stopped: the Airboss's reason, at once.
    done = pilot("open", "host", "console", f"host={theirs}", "viewer=none",
                 f"key={alice_key}", f"airboss={airboss.address}")
    assert done.returncode == 1 and "not running" in done.stderr, done.stderr
    assert "127.0.0.1:" not in done.stdout


def test_pilot_help_shows_defaults_and_old_parameters_are_answered() -> None:
    done = pilot("--help")
    assert done.returncode == 0
    assert re.search(r"^  airboss= .*else localhost:8677\)$", done.stdout, re.M), done.stdout
    assert re.search(r"^  key= .*default ~/.ssh/id_ed25519", done.stdout, re.M)
    done = pilot("set", "host", "power", "help")
    assert "else localhost:8677" in done.stdout
    for old, new in (("vm-controller=vm-container-0-0", "give airboss="),
                     ("vncviewer=xvnc4viewer", "give viewer="),
                     ("vncflags=-fullscreen", "viewer=none")):
        done = pilot("open", "host", "console", "host=x", old)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"error - {old.split('=')[0]}= was the original pilot.py's")
        assert new in done.stderr
