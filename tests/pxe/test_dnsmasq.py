"""dnsmasq's files (golden), its log lines, and the process on a real dnsmasq in a netns."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flightdeck.errors import DriverError
from flightdeck.pxe import dnsmasq as dm
from flightdeck.pxe.discovery import Pool

PATHS = dm.Paths(Path("/var/lib/flightdeck/dhcp"))
HOSTS = [
    dm.DhcpHost("52:54:00:00:00:01", "10.1.1.1", "frontend-0-0"),
    dm.DhcpHost("02:fd:00:00:00:01", "10.1.255.254", "vm-container-0-0"),
    dm.DhcpHost("0a:02:00:80:00:00", "10.1.255.253", "compute-0-0-0.local"),
]


def settings(**kw: Any) -> dm.Settings:
    base: dict[str, Any] = {
        "interface": "eth0",
        "server_ip": "10.1.1.1",
        "subnet": "10.1.0.0",
        "netmask": "255.255.0.0",
        "paths": PATHS,
    }
    return dm.Settings(**(base | kw))


def test_conf_serves_only_known_macs_and_chains_ipxe(golden: Any) -> None:
    text = dm.render_conf(settings())
    golden("dnsmasq.conf", text)
    assert "dhcp-range=set:private,10.1.0.0,static,255.255.0.0,infinite" in text
    assert "log-dhcp" in text and "port=0" in text
    assert "dhcp-boot=tag:ipxe,boot.ipxe,,10.1.1.1" in text


def test_conf_variants(golden: Any) -> None:
    golden("dnsmasq-no-ra-undionly.conf", dm.render_conf(settings(router_advert=False,
                                                                  undionly=True)))  # fmt: skip
    assert "enable-ra" not in dm.render_conf(settings(router_advert=False))
    with pytest.raises(DriverError, match="invalid interface name"):
        dm.render_conf(settings(interface="eth0\nuser=nobody"))


def test_conf_with_the_discovery_pool(golden: Any) -> None:
    found = dm.Discovery(Pool("10.1.0.1", "10.1.0.16"), PATHS.root / "discover-hook")
    text = dm.render_conf(settings(discovery=found))
    golden("dnsmasq-discovery.conf", text)
    assert "dhcp-range=tag:!known,set:discover,10.1.0.1,10.1.0.16,255.255.0.0,120" in text
    assert "dhcp-script=/var/lib/flightdeck/dhcp/discover-hook\nscript-on-renewal\n" in text
    assert "dhcp-boot=tag:ipxe,tag:!discover,boot.ipxe,,10.1.1.1" in text
    assert "dhcp-boot=tag:ipxe,tag:discover,discover.ipxe,,10.1.1.1" in text


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"server_ip": "10.1.1.1\ndhcp-script=/tmp/x"}, "not an IPv4 address"),
        ({"subnet": "10.1.0.0,foo"}, "not an IPv4 address"),
        ({"netmask": "255.255.0.0\nuser=nobody"}, "not an IPv4 address"),
        ({"lease": "infinite\nx"}, "not a dnsmasq lease time"),
        ({"paths": dm.Paths(Path("/srv/fd\ndhcp-script=/tmp/x"))}, "cannot go into dnsmasq"),
        ({"paths": dm.Paths(Path("/srv/fd,x"))}, "cannot go into dnsmasq"),
        ({"extra": ("log-queries\ndhcp-script=/tmp/x",)}, "holds a line break"),
    ],
)
def test_every_rendered_value_is_checked(change: dict[str, Any], says: str) -> None:
    with pytest.raises(DriverError, match=says):
        dm.render_conf(settings(**change))


def test_hosts_and_opts(golden: Any) -> None:
    golden("hosts", dm.render_hosts(HOSTS))
    golden("opts", dm.render_opts("10.1.1.1", "10.1.1.1", "local"))
    assert dm.render_opts(None, None, None) == "# Flightdeck: DHCP options of the private network\n"
    with pytest.raises(DriverError, match="not a valid DHCP host name"):
        dm.render_hosts([dm.DhcpHost("52:54:00:00:00:09", "10.1.0.9", "bad,name")])
    with pytest.raises(DriverError, match="not a 6-octet Ethernet MAC"):
        dm.render_hosts([dm.DhcpHost("52:54:00:00:00:09:07", "10.1.0.9", "c")])
    with pytest.raises(DriverError, match="not an IPv4 address"):
        dm.render_hosts([dm.DhcpHost("52:54:00:00:00:09", "10.1.0.9\nx", "c")])
    # Weak (issue 14): a DNS zone with a newline would be another dnsmasq option line.
    with pytest.raises(DriverError, match=r"DNS zone 'local\\ndhcp-script=/tmp/x' is not a"):
        dm.render_opts("10.1.1.1", "10.1.1.1", "local\ndhcp-script=/tmp/x")
    with pytest.raises(DriverError, match="not an IPv4 address"):
        dm.render_opts("10.1.1.1,8.8.8.8", None, None)


def test_write_if_changed(tmp_path: Path) -> None:
    f = tmp_path / "d" / "hosts"
    assert dm.write_if_changed(f, "a\n") is True
    assert dm.write_if_changed(f, "a\n") is False
    assert dm.write_if_changed(f, "b\n") is True
    assert f.read_text() == "b\n" and oct(f.stat().st_mode & 0o777) == "0o644"


def test_ack_lines_are_parsed_for_display() -> None:
    ack = "dnsmasq-dhcp[29363]: 3018901851 DHCPACK(srv0) 10.1.255.253 0a:02:00:80:00:00 c-0-0-0"
    assert dm.parse_ack(ack) == ("0a:02:00:80:00:00", "10.1.255.253")
    bare = "dnsmasq-dhcp[1]: 5 DHCPACK(srv0) 10.1.0.2 0a:02:00:80:00:01"
    assert dm.parse_ack(bare) == ("0a:02:00:80:00:01", "10.1.0.2")
    seven = "dnsmasq-dhcp[1]: 5 DHCPACK(srv0) 10.1.0.2 0a:02:00:80:00:01:07"
    assert dm.parse_ack(seven) is None
    assert dm.parse_ack("dnsmasq-dhcp[1]: 7 DHCPOFFER(srv0) 10.1.0.1 0a:02:00:80:00:00") is None


def test_stop_and_reload_leave_strangers_alone(tmp_path: Path) -> None:
    """A pid file naming a process that is not our dnsmasq is stale: nothing is signalled."""
    p = dm.Paths(tmp_path)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        p.pid.write_text(f"{sleeper.pid}\n")
        assert dm.running(p) is None
        assert dm.reload(p) is None
        assert dm.stop(p) is None
        assert sleeper.poll() is None  # still alive
        assert not p.pid.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_missing_netns_is_a_clear_error() -> None:
    with pytest.raises(DriverError, match="network namespace 'fd-no-such-ns' does not exist"):
        dm.netns_prefix("fd-no-such-ns")


@pytest.fixture
def netns() -> Any:
    name = f"fdd-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "10.77.0.1/24", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_real_dnsmasq_starts_reloads_on_sighup_and_stops(tmp_path: Path, netns: str) -> None:
    p = dm.Paths(tmp_path)
    p.tftp.mkdir()
    conf = dm.render_conf(
        dm.Settings("lo", "10.77.0.1", "10.77.0.0", "255.255.255.0", p, router_advert=False)
    )
    dm.write_if_changed(p.conf, conf)
    dm.write_if_changed(p.hosts, dm.render_hosts(HOSTS[:1]))
    dm.write_if_changed(p.opts, dm.render_opts(None, None, None))
    pid = dm.start(p, netns)
    try:
        assert dm.running(p) == pid
        with pytest.raises(DriverError, match="already runs"):
            dm.start(p, netns)
        reads = p.log.read_text().count(f"read {p.hosts}")
        dm.write_if_changed(p.hosts, dm.render_hosts(HOSTS))
        assert dm.reload(p) == pid
        # dnsmasq logs each file it (re-)reads: one more read of the hosts file after SIGHUP.
        for _ in range(200):
            if p.log.read_text().count(f"read {p.hosts}") > reads:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert p.log.read_text().count(f"read {p.hosts}") == reads + 1
        assert dm.running(p) == pid  # the same process: reloaded, not restarted
    finally:
        assert dm.stop(p) == pid
    assert dm.running(p) is None and not p.pid.exists()
