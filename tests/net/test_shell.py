"""The iproute2 side: parsing `ip -j`, the step script with its undo, file writing, runners."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from flightdeck.errors import DriverError
from flightdeck.net import diff as d
from flightdeck.net.files import restore, write_local
from flightdeck.net.live import LiveLink, LiveRoute
from flightdeck.net.render import RenderedFile, Rendering
from flightdeck.net.shell import (
    SEPARATOR,
    LocalRunner,
    ShellHost,
    SshRunner,
    apply_script,
    parse_observed,
)

GoldenCheck = Callable[[str, str], None]

LINKS = [
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "mtu": 65536,
     "address": "00:00:00:00:00:00"},
    {"ifindex": 2, "ifname": "peth0", "flags": ["BROADCAST", "UP", "PROMISC"], "mtu": 1500,
     "master": "eth0", "address": "52:54:00:fd:00:01", "link_netnsid": 0,
     "linkinfo": {"info_kind": "veth", "info_slave_kind": "bridge"}},
    {"ifindex": 3, "ifname": "eth0", "flags": ["BROADCAST", "UP"], "mtu": 1500,
     "address": "52:54:00:fd:00:01",
     "linkinfo": {"info_kind": "bridge",
                  "info_data": {"forward_delay": 100, "hello_time": 200, "stp_state": 0}}},
    {"ifindex": 4, "link": "peth0", "ifname": "peth0.2", "flags": ["BROADCAST", "NOARP"],
     "mtu": 1500, "address": "52:54:00:fd:00:01",
     "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 2}}},
    {"ifindex": 5, "link": "peth0.2", "ifname": "macvtap0", "flags": ["UP"], "mtu": 1500,
     "address": "76:77:6e:40:00:02", "linkinfo": {"info_kind": "macvtap"}},
]  # fmt: skip
ADDRS = [
    {"ifindex": 3, "ifname": "eth0", "addr_info": [
        {"family": "inet", "local": "10.1.255.254", "prefixlen": 16}]},
]  # fmt: skip
ROUTES = [
    {"dst": "default", "gateway": "10.1.1.1", "dev": "eth0"},
    {"dst": "10.1.0.0/16", "dev": "eth0", "protocol": "kernel", "scope": "link"},
    {"dst": "192.168.7.0/24", "gateway": "10.1.1.2", "dev": "eth0"},
    {"type": "blackhole", "dst": "10.9.0.0/16", "gateway": "10.1.1.3", "dev": "eth0"},
]


def test_parse_ip_json() -> None:
    text = "\n".join(
        [json.dumps(LINKS), SEPARATOR, json.dumps(ADDRS), SEPARATOR, json.dumps(ROUTES), SEPARATOR,
         "eth0 off", "peth0 ", ""]
    )  # fmt: skip
    state = parse_observed(text)
    assert state.link("peth0") == LiveLink(
        "peth0", 2, kind="veth", mac="52:54:00:fd:00:01", master="eth0", up=True,
        promiscuous=True,
    )  # fmt: skip
    eth0 = state.link("eth0")
    assert eth0 is not None and eth0.kind == "bridge" and eth0.tx_offload is False
    assert (eth0.forward_delay_cs, eth0.hello_time_cs) == (100, 200)
    assert eth0.addresses == ("10.1.255.254/16",)
    vlan = state.link("peth0.2")
    assert vlan is not None and (vlan.parent, vlan.vlan_id, vlan.arp, vlan.up) == (
        "peth0", 2, False, False,
    )  # fmt: skip
    assert state.uppers("peth0.2") == ["macvtap0"] and state.ports("eth0") == ["peth0"]
    assert state.by_mac("52:54:00:FD:00:01") == state.link("peth0")  # never the bridge
    assert state.routes == (
        LiveRoute("0.0.0.0/0", "10.1.1.1", "eth0"),
        LiveRoute("192.168.7.0/24", "10.1.1.2", "eth0"),
    )
    with pytest.raises(DriverError, match="unexpected output from ip -j"):
        parse_observed("[]")


STEPS = [
    d.Step(
        d.SetUp("eth0", False),
        (d.SetUp("eth0", True), d.AddRoute("eth0", "0.0.0.0/0", "10.1.1.1")),
    ),
    d.Step(d.Rename("eth0", "peth0"), (d.Rename("peth0", "eth0"),)),
    d.Step(d.CreateBridge("eth0"), (d.DeleteLink("eth0"),)),
]  # fmt: skip


def test_the_step_script(golden: GoldenCheck) -> None:
    golden("apply-script.sh", apply_script(STEPS))


class Recorder:
    """A runner that runs the script in a sandbox where `ip` only logs (and fails on cue)."""

    def __init__(self, tmp: Path, fail_on: str | None = None) -> None:
        self.where = "the sandbox"
        self.log = tmp / "ip.log"
        fake = tmp / "bin" / "ip"
        fake.parent.mkdir(parents=True, exist_ok=True)
        fail = (
            f'case "$*" in *"{fail_on}"*) echo "RTNETLINK answers: File exists" >&2; exit 2;; esac'
        )
        fake.write_text(f'#!/bin/sh\necho "$*" >> {self.log}\n{fail if fail_on else ""}\n')
        fake.chmod(0o755)
        self.bin = fake.parent

    def run(self, script: str) -> str:
        import subprocess

        env = dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}")
        done = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, env=env)
        assert done.returncode in (0, 3), done.stderr
        return done.stdout

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def test_the_script_runs_the_steps_and_undoes_them_on_failure(tmp_path: Path) -> None:
    ok = Recorder(tmp_path / "ok")
    host = ShellHost("c", ok)
    assert host.apply(STEPS) == [s.op.describe() for s in STEPS]
    assert ok.calls() == ["link set dev eth0 down", "link set dev eth0 name peth0",
                          "link add name eth0 type bridge"]  # fmt: skip
    bad = Recorder(tmp_path / "bad", fail_on="type bridge")
    with pytest.raises(DriverError) as err:
        ShellHost("c", bad).apply(STEPS)
    assert err.value.message == (
        "could not create bridge eth0 on the sandbox: RTNETLINK answers: File exists; the 2 "
        "change(s) made before it were undone"
    )
    assert bad.calls()[3:] == [
        "link set dev peth0 name eth0",
        "link set dev eth0 up",
        "route replace 0.0.0.0/0 via 10.1.1.1 dev eth0",
    ]


RENDERING = Rendering(
    files=(
        RenderedFile("/etc/systemd/network/10-flightdeck-eth0.netdev", "[NetDev]\nName=eth0\n"),
        RenderedFile("/etc/libvirt/networking/vlan.conf", "# vlans\n", 0o755),
        RenderedFile("/etc/sysconfig/network-scripts/ifcfg-eth2", None),
    ),
    owned=(("/etc/systemd/network", "10-flightdeck-*"),),
)


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (p.read_text(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _seed(root: Path) -> None:
    (root / "etc/systemd/network").mkdir(parents=True)
    (root / "etc/sysconfig/network-scripts").mkdir(parents=True)
    (root / "etc/systemd/network/10-flightdeck-old.network").write_text("stale\n")
    (root / "etc/systemd/network/50-site.network").write_text("theirs\n")
    (root / "etc/sysconfig/network-scripts/ifcfg-eth2").write_text("DEVICE=eth2\n")


@pytest.mark.parametrize("how", ["python", "script"])
def test_writing_files_changes_only_what_differs(tmp_path: Path, how: str) -> None:
    root = tmp_path / "root"
    _seed(root)

    def write() -> list[str]:
        if how == "python":
            return write_local(RENDERING, str(root))
        return ShellHost("c", LocalRunner()).write(RENDERING, str(root))

    first = write()
    assert sorted(first) == sorted(
        [
            f"write {root}/etc/systemd/network/10-flightdeck-eth0.netdev",
            f"write {root}/etc/libvirt/networking/vlan.conf",
            f"remove {root}/etc/sysconfig/network-scripts/ifcfg-eth2",
            f"remove {root}/etc/systemd/network/10-flightdeck-old.network",
        ]
    )
    assert _tree(root) == {
        "etc/libvirt/networking/vlan.conf": ("# vlans\n", 0o755),
        "etc/systemd/network/10-flightdeck-eth0.netdev": ("[NetDev]\nName=eth0\n", 0o644),
        "etc/systemd/network/50-site.network": ("theirs\n", 0o644),
    }
    assert write() == []


def test_a_backup_restores_the_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _seed(root)
    before = _tree(root)
    backup: dict[str, tuple[bytes, int] | None] = {}
    assert write_local(RENDERING, str(root), backup)
    assert restore(backup) == []
    assert _tree(root) == before


def test_runners_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTDECK_SSH", str(tmp_path / "no-ssh-here"))
    with pytest.raises(DriverError, match=r"cannot reach c: .*no-ssh-here is not installed"):
        SshRunner("c", "root@c").run("true\n")
    with pytest.raises(DriverError, match="the script failed on this machine: boom"):
        LocalRunner().run("echo boom >&2; exit 1\n")
