"""IPv4 on Rocks subnets: network_of, range checks, next free address."""

from __future__ import annotations

import ipaddress
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck.errors import PlannerError, UserError
from flightdeck.planner.addresses import (
    check_ip_in_network,
    lowest_free_run,
    network_of,
    next_free_ip,
)

PRIVATE = ipaddress.IPv4Network("10.1.0.0/16")


@pytest.mark.parametrize("mask", ["255.255.0.0", "16", "/16", " 255.255.0.0 "])
def test_network_of_accepts_dotted_and_prefix(mask: str) -> None:
    assert network_of("10.1.255.254", mask) == PRIVATE


@pytest.mark.parametrize(
    ("ip", "mask", "expected"),
    [
        ("137.110.119.117", "255.255.255.0", "137.110.119.0/24"),
        ("10.1.2.3", "0", "0.0.0.0/0"),
        ("10.1.2.3", "32", "10.1.2.3/32"),
        ("10.1.2.3", "255.255.255.255", "10.1.2.3/32"),
        ("192.168.5.130", "255.255.255.128", "192.168.5.128/25"),
    ],
)
def test_network_of_values(ip: str, mask: str, expected: str) -> None:
    assert network_of(ip, mask) == ipaddress.IPv4Network(expected)


@pytest.mark.parametrize(
    "mask", ["33", "/33", "0.0.255.255", "255.0.255.0", "255.255.0", "sixteen", "", "-1", "/"]
)
def test_network_of_rejects_bad_masks(mask: str) -> None:
    with pytest.raises(UserError) as info:
        network_of("10.1.0.1", mask)
    assert info.value.message == (
        f"invalid netmask {mask!r}: expected a dotted mask like 255.255.0.0 or a prefix length "
        "like 16"
    )


@pytest.mark.parametrize("ip", ["10.1.0", "10.1.0.256", "010.1.0.1", "fe80::1", "", "host"])
def test_network_of_rejects_bad_ips(ip: str) -> None:
    with pytest.raises(UserError) as info:
        network_of(ip, "16")
    assert info.value.message == (
        f"invalid IP address {ip!r}: expected a dotted IPv4 address like 10.1.255.254"
    )


def test_check_ip_in_network_accepts_hosts() -> None:
    assert check_ip_in_network("10.1.255.254", PRIVATE, "private") == "10.1.255.254"
    assert check_ip_in_network(" 10.1.0.1 ", PRIVATE, "private") == "10.1.0.1"


def test_check_ip_outside() -> None:
    with pytest.raises(UserError) as info:
        check_ip_in_network("10.2.0.5", PRIVATE, "private")
    assert info.value.message == (
        "IP 10.2.0.5 is outside network private (10.1.0.0/16); pick an address inside it"
    )


def test_check_ip_network_and_broadcast() -> None:
    with pytest.raises(UserError) as info:
        check_ip_in_network("10.1.0.0", PRIVATE, "private")
    assert info.value.message == (
        "IP 10.1.0.0 is the network address of network private (10.1.0.0/16); pick a host address"
    )
    with pytest.raises(UserError) as info:
        check_ip_in_network("10.1.255.255", PRIVATE, "private")
    assert info.value.message == (
        "IP 10.1.255.255 is the broadcast address of network private (10.1.0.0/16); pick a host "
        "address"
    )


def test_check_ip_point_to_point_networks_use_every_address() -> None:
    p2p = ipaddress.IPv4Network("192.0.2.0/31")
    assert check_ip_in_network("192.0.2.0", p2p, "link") == "192.0.2.0"
    assert check_ip_in_network("192.0.2.1", p2p, "link") == "192.0.2.1"


def test_check_ip_malformed() -> None:
    with pytest.raises(UserError, match="invalid IP address 'x'"):
        check_ip_in_network("x", PRIVATE, "private")


def test_next_free_counts_down_from_the_top() -> None:
    assert next_free_ip(PRIVATE, []) == "10.1.255.254"
    assert next_free_ip(PRIVATE, ["10.1.255.254"]) == "10.1.255.253"
    # The 6.1 seed docs show 10.1.255.251 for the fourth VM.
    used = ["10.1.255.254", "10.1.255.253", "10.1.255.252"]
    assert next_free_ip(PRIVATE, used) == "10.1.255.251"


def test_next_free_fills_gaps_from_the_top() -> None:
    used = ["10.1.255.254", "10.1.255.252", "10.1.1.1"]
    assert next_free_ip(PRIVATE, used) == "10.1.255.253"


def test_next_free_counting_up() -> None:
    assert next_free_ip(PRIVATE, [], descending=False) == "10.1.0.1"
    assert next_free_ip(PRIVATE, ["10.1.0.1", "10.1.0.2"], descending=False) == "10.1.0.3"


def test_next_free_honours_exclude() -> None:
    assert next_free_ip(PRIVATE, ["10.1.255.254"], exclude=["10.1.255.253"]) == "10.1.255.252"
    assert next_free_ip(PRIVATE, [], descending=False, exclude=("10.1.0.1",)) == "10.1.0.2"


def test_next_free_ignores_garbage_and_foreign_addresses() -> None:
    used = ["", "None", "fe80::1", "10.2.255.254", "10.1.255.254"]
    assert next_free_ip(PRIVATE, used) == "10.1.255.253"


def test_next_free_full_network() -> None:
    small = ipaddress.IPv4Network("192.168.10.0/29")  # hosts .1 to .6
    used = [f"192.168.10.{i}" for i in range(1, 6)]
    assert next_free_ip(small, used) == "192.168.10.6"
    assert next_free_ip(small, [*used[1:], "192.168.10.6"]) == "192.168.10.1"
    with pytest.raises(PlannerError) as info:
        next_free_ip(small, [*used, "192.168.10.6"])
    assert info.value.message == (
        "no free IP address left in 192.168.10.0/29; remove unused hosts or use a larger subnet"
    )


def test_next_free_slash_32_and_31() -> None:
    assert next_free_ip(ipaddress.IPv4Network("10.9.9.9/32"), []) == "10.9.9.9"
    with pytest.raises(PlannerError):
        next_free_ip(ipaddress.IPv4Network("10.9.9.9/32"), ["10.9.9.9"])
    assert next_free_ip(ipaddress.IPv4Network("10.9.9.8/31"), ["10.9.9.9"]) == "10.9.9.8"


def test_next_free_on_a_crowded_slash_16_is_fast() -> None:
    # 60,000 used addresses from the top down: the answer is just below them.
    top = int(ipaddress.IPv4Address("10.1.255.254"))
    used = [str(ipaddress.IPv4Address(top - i)) for i in range(60_000)]
    started = time.perf_counter()
    assert next_free_ip(PRIVATE, used) == str(ipaddress.IPv4Address(top - 60_000))
    assert next_free_ip(PRIVATE, used, descending=False) == "10.1.0.1"
    elapsed = time.perf_counter() - started
    # A list scan per candidate would take minutes; sets take well under a second.
    assert elapsed < 5.0


def test_next_free_on_a_full_slash_16() -> None:
    hosts = [str(ip) for ip in PRIVATE.hosts()]
    with pytest.raises(PlannerError):
        next_free_ip(PRIVATE, hosts)
    assert next_free_ip(PRIVATE, hosts[:1000] + hosts[1001:]) == hosts[1000]


@given(
    st.integers(min_value=24, max_value=32),
    st.sets(st.integers(min_value=0, max_value=255), max_size=300),
    st.booleans(),
)
def test_property_matches_brute_force(prefix: int, offsets: set[int], descending: bool) -> None:
    network = ipaddress.IPv4Network(f"10.1.7.0/{prefix}", strict=False)
    used = [str(network.network_address + o) for o in offsets if o < network.num_addresses]
    hosts = list(network.hosts())
    free = [ip for ip in hosts if str(ip) not in used]
    if not free:
        with pytest.raises(PlannerError):
            next_free_ip(network, used, descending=descending)
        return
    expected = free[-1] if descending else free[0]
    assert next_free_ip(network, used, descending=descending) == str(expected)


def test_lowest_free_run_is_the_discovery_pool() -> None:
    net = ipaddress.IPv4Network("10.1.0.0/16")
    assert lowest_free_run(net, [], 16) == ("10.1.0.1", "10.1.0.16")
    # Clear of every address in use: the frontend's, a host's, addresses outside the network.
    taken = ["10.1.0.5", "10.1.0.30", "192.168.1.1", "garbage"]
    assert lowest_free_run(net, taken, 16) == ("10.1.0.6", "10.1.0.21")
    assert lowest_free_run(net, ["10.1.0.1", "10.1.0.2"], 1) == ("10.1.0.3", "10.1.0.3")
    small = ipaddress.IPv4Network("10.9.0.0/29")  # hosts .1 to .6
    assert lowest_free_run(small, ["10.9.0.3"], 3) == ("10.9.0.4", "10.9.0.6")
    with pytest.raises(PlannerError, match=r"no 4 consecutive free addresses left in 10\.9\."):
        lowest_free_run(small, ["10.9.0.3"], 4)
    with pytest.raises(UserError, match="invalid pool size 0"):
        lowest_free_run(small, [], 0)
