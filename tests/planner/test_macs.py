"""VM MAC scheme: the guide's examples, getNextMac, and the space boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck.errors import PlannerError, UserError
from flightdeck.planner.macs import (
    DEFAULT_MAC_MASK,
    is_mac,
    mac_base_from_ip,
    next_macs,
    normalize_mac,
)

BASE = "76:77:6e:40:00:00"  # mac_base_from_ip("137.110.119.117")
TOP = "76:77:6e:7f:ff:ff"  # highest MAC under ff:ff:ff:c0:00:00
IB_MAC = "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:0b:0c"


# --- normalize_mac / is_mac ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("52:54:00:12:34:56", "52:54:00:12:34:56"),
        ("52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"),
        ("2:1:1:40:0:0", "02:01:01:40:00:00"),
        ("76-77-6E-40-00-0A", "76:77:6e:40:00:0a"),
        ("  76:77:6e:40:00:01\n", "76:77:6e:40:00:01"),
    ],
)
def test_normalize_mac_accepts_rocks_spellings(text: str, expected: str) -> None:
    assert normalize_mac(text) == expected
    assert is_mac(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "52:54:00:12:34",
        "52:54:00:12:34:56:78",
        "52:54:00:12:34:5g",
        "525400123456",
        "5254.0012.3456",
        "52:54-00:12:34:56",
        "123:54:00:12:34:56",
        "52::00:12:34:56",
        IB_MAC,
        "'; drop table networks; --",
    ],
)
def test_normalize_mac_rejects_garbage(text: str) -> None:
    assert not is_mac(text)
    with pytest.raises(UserError) as info:
        normalize_mac(text)
    assert info.value.message == (
        f"invalid MAC address {text!r}: expected six hex octets like 52:54:00:12:34:56"
    )


@given(st.binary(min_size=6, max_size=6), st.sampled_from([":", "-"]), st.booleans())
def test_normalize_mac_is_canonical_and_idempotent(raw: bytes, sep: str, upper: bool) -> None:
    text = sep.join(f"{b:x}" for b in raw)
    text = text.upper() if upper else text
    canonical = normalize_mac(text)
    assert canonical == ":".join(f"{b:02x}" for b in raw)
    assert normalize_mac(canonical) == canonical


# --- mac_base_from_ip ---------------------------------------------------------------------


def test_base_of_guide_pilot_example() -> None:
    # Seed 001: the pilot example on frontend 137.110.119.117.
    assert mac_base_from_ip("137.110.119.117") == "76:77:6e:40:00:00"


def test_base_of_guide_list_macs_example() -> None:
    # Seeds 001/004: the list-macs example on frontend 137.110.119.55.
    assert mac_base_from_ip("137.110.119.55") == "36:77:6e:c0:00:00"


def test_base_is_zero_padded_unlike_rocks_percent_x() -> None:
    # Rocks wrote 2:1:1:40:00:00 for 10.1.1.1; the value is the same, the spelling canonical.
    assert mac_base_from_ip("10.1.1.1") == "02:01:01:40:00:00"
    assert mac_base_from_ip("10.1.1.1") == normalize_mac("2:1:1:40:00:00")


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("0.0.0.0", "02:00:00:00:00:00"),
        ("255.255.255.255", "fe:ff:ff:c0:00:00"),
        ("192.168.1.3", "02:01:a8:c0:00:00"),
    ],
)
def test_base_edges(ip: str, expected: str) -> None:
    assert mac_base_from_ip(ip) == expected


@given(st.ip_addresses(v=4))
def test_base_is_always_unicast_and_local(ip: object) -> None:
    base = mac_base_from_ip(str(ip))
    first = int(base[:2], 16)
    assert first & 1 == 0  # not multicast
    assert first & 2 == 2  # locally administered
    assert base.endswith(":00:00")


@pytest.mark.parametrize("ip", ["", "137.110.119", "137.110.119.256", "010.1.1.1", "::1", "x"])
def test_base_rejects_bad_ipv4(ip: str) -> None:
    with pytest.raises(UserError, match="invalid IPv4 address"):
        mac_base_from_ip(ip)


# --- next_macs ------------------------------------------------------------------------------


def test_first_mac_is_the_base() -> None:
    assert next_macs([], BASE, DEFAULT_MAC_MASK) == [BASE]


def test_first_mac_is_the_base_even_when_given_unpadded() -> None:
    assert next_macs([], "2:1:1:40:0:0", DEFAULT_MAC_MASK) == ["02:01:01:40:00:00"]


def test_next_is_max_plus_one_and_gaps_are_not_reused() -> None:
    used = ["76:77:6e:40:00:00", "76:77:6e:40:00:07", "76:77:6e:40:00:03"]
    assert next_macs(used, BASE, DEFAULT_MAC_MASK) == ["76:77:6e:40:00:08"]


def test_count_gives_consecutive_macs() -> None:
    used = ["76:77:6e:40:00:fe"]
    assert next_macs(used, BASE, DEFAULT_MAC_MASK, count=3) == [
        "76:77:6e:40:00:ff",
        "76:77:6e:40:01:00",
        "76:77:6e:40:01:01",
    ]


def test_count_zero_gives_nothing() -> None:
    assert next_macs([TOP], BASE, DEFAULT_MAC_MASK, count=0) == []


def test_macs_outside_the_space_are_ignored() -> None:
    used = [
        "52:54:00:12:34:56",  # a libvirt default MAC
        "76:77:6e:80:00:00",  # same first 3 octets, outside the 26-bit prefix
        "36:77:6e:c0:00:09",  # another frontend's space
        "76:77:6e:40:00:02",
    ]
    assert next_macs(used, BASE, DEFAULT_MAC_MASK) == ["76:77:6e:40:00:03"]


def test_used_macs_in_other_spellings_are_normalised() -> None:
    used = ["76:77:6E:40:0:A", "76-77-6e-40-00-0b"]
    assert next_macs(used, BASE, DEFAULT_MAC_MASK) == ["76:77:6e:40:00:0c"]


def test_infiniband_and_garbage_entries_are_ignored() -> None:
    used = [IB_MAC, "not a mac", "", "76:77:6e:40:00:01"]
    assert next_macs(used, BASE, DEFAULT_MAC_MASK) == ["76:77:6e:40:00:02"]


def test_second_guide_space() -> None:
    base = mac_base_from_ip("137.110.119.55")
    used = ["36:77:6e:c0:00:00", "36:77:6e:c0:00:01"]
    assert next_macs(used, base, DEFAULT_MAC_MASK) == ["36:77:6e:c0:00:02"]


def test_last_mac_of_the_space_is_handed_out() -> None:
    assert next_macs(["76:77:6e:7f:ff:fe"], BASE, DEFAULT_MAC_MASK) == [TOP]


def test_exhausted_space_is_refused_naming_base_and_mask() -> None:
    with pytest.raises(PlannerError) as info:
        next_macs([TOP], BASE, DEFAULT_MAC_MASK)
    assert info.value.message == (
        "VM MAC space 76:77:6e:40:00:00 under mask ff:ff:ff:c0:00:00 is exhausted: 1 new MAC(s) "
        "needed, 0 left above the highest used (76:77:6e:7f:ff:ff); set vm_mac_base_addr and "
        "vm_mac_base_addr_mask to a new space"
    )


def test_count_crossing_the_top_is_refused_whole() -> None:
    with pytest.raises(PlannerError, match="3 new MAC\\(s\\) needed, 2 left"):
        next_macs(["76:77:6e:7f:ff:fd"], BASE, DEFAULT_MAC_MASK, count=3)


def test_does_not_wrap_into_the_next_prefix() -> None:
    # The original's max+1 would have produced 76:77:6e:80:00:00 here: outside the space, so
    # the next call would have returned the same MAC again.
    with pytest.raises(PlannerError):
        next_macs(["76:77:6e:7f:ff:ff", "76:77:6e:40:00:00"], BASE, DEFAULT_MAC_MASK)


def test_full_mask_is_a_space_of_one() -> None:
    mask = "ff:ff:ff:ff:ff:ff"
    assert next_macs([], BASE, mask) == [BASE]
    with pytest.raises(PlannerError):
        next_macs([BASE], BASE, mask)


def test_short_mask_keeps_first_octet_unicast_and_local() -> None:
    # With a mask shorter than 8 bits the first octet may change; 03 (multicast) and 04/05
    # (not local) are skipped to 06, as the original's "+1 if odd, then |2".
    mask = "00:00:00:00:00:00"
    assert next_macs(["02:ff:ff:ff:ff:ff"], "02:00:00:00:00:00", mask, count=2) == [
        "06:00:00:00:00:00",
        "06:00:00:00:00:01",
    ]
    with pytest.raises(PlannerError):
        next_macs(["fe:ff:ff:ff:ff:ff"], "02:00:00:00:00:00", mask)


@pytest.mark.parametrize("base", ["77:77:6e:40:00:00", "74:77:6e:40:00:00", "00:16:3e:00:00:00"])
def test_multicast_or_global_base_is_refused(base: str) -> None:
    with pytest.raises(UserError, match="unicast and locally administered"):
        next_macs([], base, DEFAULT_MAC_MASK)


@pytest.mark.parametrize("mask", ["ff:00:ff:00:00:00", "00:00:00:00:00:ff", "ff:ff:ff:c1:00:00"])
def test_non_contiguous_mask_is_refused(mask: str) -> None:
    with pytest.raises(UserError, match="leading one bits then zero bits"):
        next_macs([], BASE, mask)


def test_malformed_base_and_mask_are_refused() -> None:
    with pytest.raises(UserError, match="invalid VM MAC base address 'x'"):
        next_macs([], "x", DEFAULT_MAC_MASK)
    with pytest.raises(UserError, match="invalid VM MAC mask 'ff:ff'"):
        next_macs([], BASE, "ff:ff")


def test_negative_count_is_refused() -> None:
    with pytest.raises(UserError, match="invalid MAC count -1"):
        next_macs([], BASE, DEFAULT_MAC_MASK, count=-1)


def test_many_used_macs() -> None:
    used = [f"76:77:6e:4{i >> 16:x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}" for i in range(70_000)]
    assert next_macs(used, BASE, DEFAULT_MAC_MASK, count=2) == [
        "76:77:6e:41:11:70",
        "76:77:6e:41:11:71",
    ]


@given(
    st.sets(st.integers(min_value=0, max_value=(1 << 22) - 1), max_size=40),
    st.integers(min_value=1, max_value=5),
)
def test_property_results_are_new_in_space_and_above_max(offsets: set[int], count: int) -> None:
    low = int(BASE.replace(":", ""), 16)
    # Stored spellings vary: upper-case some of them.
    used = [_fmt(low + o).upper() if o % 2 else _fmt(low + o) for o in offsets]
    top = (1 << 22) - 1
    start = max(offsets) + 1 if offsets else 0
    if start + count - 1 > top:
        with pytest.raises(PlannerError):
            next_macs(used, BASE, DEFAULT_MAC_MASK, count)
        return
    result = next_macs(used, BASE, DEFAULT_MAC_MASK, count)
    assert result == [_fmt(low + start + k) for k in range(count)]
    assert not set(result) & {normalize_mac(mac) for mac in used}
    assert all(mac.startswith("76:77:6e:") for mac in result)


def _fmt(value: int) -> str:
    text = f"{value:012x}"
    return ":".join(text[i : i + 2] for i in range(0, 12, 2))
