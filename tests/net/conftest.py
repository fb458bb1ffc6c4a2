"""Fixtures of the network tests: golden files, and labs made of network namespaces.

A lab is two namespaces this test creates, named with a random token: `container` plays the VM
container, `wire` the switch on the other end of each veth pair that stands in for a physical
NIC. Nothing is ever done in the machine's own namespace (its eth0 is the real uplink), no
traffic leaves the lab, and both namespaces are deleted after the test, failed or not (deleting
a namespace deletes every device in it).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flightdeck.planner.network import (
    GuestNic,
    HostInterface,
    HostNetworkInput,
    NetworkDef,
    RouteDef,
)

GOLDEN = Path(__file__).parent / "golden"

NETWORKS = (
    NetworkDef("private", "10.1.0.0", "255.255.0.0", 1500),
    NetworkDef("public", "137.110.119.0", "255.255.255.0", 1500),
    NetworkDef("lab", "10.50.0.0", "255.255.255.0", 9000),
)


@pytest.fixture
def container() -> HostNetworkInput:
    """vm-container-0-0 of the guide, carrying a bridged physical-cluster VM and two clusters'
    VMs, plus an IP-less NIC with a bridged VM, an unused NIC, a vlan row and an ipmi row."""
    return HostNetworkInput(
        host="vm-container-0-0",
        interfaces=(
            HostInterface("eth0", "52:54:00:fd:00:01", "10.1.255.254", "private"),
            HostInterface(
                "eth1", "52:54:00:fd:01:01", None, "lab", module="e1000e", options="debug=2"
            ),
            HostInterface("eth2", "52:54:00:fd:02:01"),
            HostInterface("vlan2", None, None, "private", vlan=2),
            HostInterface("ipmi", "52:54:00:fd:03:01", "10.1.254.254", "private"),
        ),
        networks=NETWORKS,
        guests=(
            GuestNic(
                "hosted-vm-0-0-1", "eth0", "76:77:6e:40:00:05", "private", 3, "frontend-0-0-1"
            ),
            GuestNic("compute-0-0-0", "eth0", "76:77:6e:40:00:04", "private", None),
            GuestNic(
                "hosted-vm-0-0-0", "eth0", "76:77:6e:40:00:02", "private", 2, "frontend-0-0-0"
            ),
            GuestNic("lab-vm-0-0-0", "eth0", "76:77:6e:40:00:06", "lab", 0),
            GuestNic("frontend-0-0-0", "eth0", "76:77:6e:40:00:00", "private", 2, "frontend-0-0-0"),
        ),
        routes=(RouteDef("0.0.0.0", "0.0.0.0", "10.1.1.1"),),
        fqdn="vm-container-0-0.local",
    )


GoldenCheck = Callable[[str, str], None]


@pytest.fixture
def golden(regenerate_golden: bool) -> GoldenCheck:
    """`golden(name, text)` compares `text` with `golden/<name>` (`--regenerate-golden`)."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if regenerate_golden or not path.exists():
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if not regenerate_golden:
                pytest.fail(f"golden file {path} was missing and has been written; review it")
            return
        assert text == path.read_text(encoding="utf-8"), (
            f"output differs from {path}; if intended, rerun with --regenerate-golden"
        )

    return check


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ip netns does not work here: {exc}"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "pyroute2 is not installed (pip install -e '.[server]')"
    return None


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


@dataclass
class NetLab:
    container: str
    wire: str
    nics: int = 0
    created: list[str] = field(default_factory=list)

    def add_nic(
        self, name: str, mac: str, cidr: str | None = None, gateway: str | None = None
    ) -> None:
        """A veth `name` in the container (peer in the wire namespace), up, with an address."""
        self.nics += 1
        peer = f"wire{self.nics}"
        ip("-n", self.container, "link", "add", name, "type", "veth", "peer", "name", peer,
           "netns", self.wire)  # fmt: skip
        ip("-n", self.container, "link", "set", name, "address", mac)
        ip("-n", self.wire, "link", "set", peer, "up")
        if cidr:
            ip("-n", self.container, "addr", "add", cidr, "dev", name)
        ip("-n", self.container, "link", "set", name, "up")
        if gateway:
            ip("-n", self.container, "route", "add", "default", "via", gateway, "dev", name)

    def links(self) -> dict[str, dict[str, Any]]:
        out = json.loads(ip("-n", self.container, "-j", "-d", "link", "show").stdout)
        return {ln["ifname"]: ln for ln in out}

    def addresses(self) -> dict[str, list[str]]:
        out = json.loads(ip("-n", self.container, "-j", "-4", "addr", "show").stdout)
        return {
            a["ifname"]: [f"{i['local']}/{i['prefixlen']}" for i in a.get("addr_info", [])]
            for a in out
        }

    def routes(self) -> list[tuple[str, str | None, str]]:
        out = json.loads(ip("-n", self.container, "-j", "-4", "route", "show").stdout)
        return sorted((r["dst"], r.get("gateway"), r["dev"]) for r in out)

    def snapshot(self) -> Any:
        """Everything a test compares before and after: names, kinds, masters, flags, MTUs,
        MACs, addresses and routes (not the interface indexes, which change)."""
        links = {
            name: (
                (ln.get("linkinfo") or {}).get("info_kind"),
                ln.get("master"),
                sorted(f for f in ln["flags"] if f in ("UP", "PROMISC", "NOARP")),
                ln["mtu"],
                ln.get("address"),
            )
            for name, ln in self.links().items()
        }
        return links, self.addresses(), self.routes()


@pytest.fixture
def netlab() -> Iterator[NetLab]:
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    token = secrets.token_hex(3)
    lab = NetLab(container=f"fdnet-{token}-c", wire=f"fdnet-{token}-w")
    try:
        for ns in (lab.container, lab.wire):
            ip("netns", "add", ns)
            lab.created.append(ns)
        ip("-n", lab.container, "link", "set", "lo", "up")
        yield lab
    finally:
        problems = []
        for ns in reversed(lab.created):
            done = ip("netns", "del", ns, check=False)
            if done.returncode != 0:
                problems.append(f"{ns}: {done.stderr.strip()}")
        if problems:
            pytest.fail("clean-up left namespaces behind: " + "; ".join(problems))
