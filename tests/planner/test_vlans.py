"""VLAN ids: lowest free, explicit ones checked, the per-NIC vlan= list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck.errors import Conflict, PlannerError, UserError
from flightdeck.planner.vlans import (
    VLAN_MAX,
    VLAN_MIN,
    check_vlan,
    next_free_vlan,
    parse_vlan_list,
)


def test_range_constants() -> None:
    assert (VLAN_MIN, VLAN_MAX) == (2, 4094)  # 4095 is reserved by 802.1Q


def test_first_vlan_is_2_never_1() -> None:
    assert next_free_vlan([]) == 2
    assert next_free_vlan([1]) == 2


def test_lowest_gap_is_reused() -> None:
    assert next_free_vlan([2, 3, 5, 6]) == 4
    assert next_free_vlan([3, 4]) == 2


def test_zero_and_duplicates_in_used_do_not_matter() -> None:
    assert next_free_vlan([0, 2, 2, 3, 0]) == 4


def test_accepts_any_iterable() -> None:
    assert next_free_vlan(v for v in range(2, 10)) == 10


def test_4094_is_the_last_id() -> None:
    assert next_free_vlan(range(2, 4094)) == 4094


def test_all_ids_used_is_refused() -> None:
    with pytest.raises(PlannerError) as info:
        next_free_vlan(range(1, 4096))
    assert info.value.message == (
        "no free VLAN id: all of 2-4094 are in use; remove a cluster first"
    )


@given(st.sets(st.integers(min_value=0, max_value=4200), max_size=200))
def test_property_result_is_the_smallest_free(used: set[int]) -> None:
    vlan = next_free_vlan(used)
    assert VLAN_MIN <= vlan <= VLAN_MAX
    assert vlan not in used
    assert all(v in used for v in range(VLAN_MIN, vlan))


def test_check_vlan_accepts_a_free_id() -> None:
    assert check_vlan(7, [2, 3]) == 7
    assert check_vlan(2, []) == 2
    assert check_vlan(4094, [4093]) == 4094


@pytest.mark.parametrize("vlan", [-1, 0, 1, 4095, 4096, 100_000])
def test_check_vlan_range(vlan: int) -> None:
    with pytest.raises(UserError) as info:
        check_vlan(vlan, [])
    assert not isinstance(info.value, Conflict)
    assert info.value.message == f"invalid VLAN id {vlan}: expected an integer from 2 to 4094"


def test_check_vlan_refuses_a_used_id() -> None:
    with pytest.raises(Conflict) as info:
        check_vlan(2, [2, 3])
    assert info.value.message == (
        "VLAN 2 is already in use; pick another or omit vlan= to get the next free one"
    )


def test_check_vlan_names_the_user_when_given_a_mapping() -> None:
    used = {2: "cluster frontend-0-0-0", 3: "host vm-container-0-1 (vlan3)"}
    with pytest.raises(Conflict) as info:
        check_vlan(3, used)
    assert info.value.message == (
        "VLAN 3 is already used by host vm-container-0-1 (vlan3); pick another or omit vlan= to "
        "get the next free one"
    )
    assert check_vlan(4, used) == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", [3]),
        ("3,none,5", [3, None, 5]),
        ("2,0", [2, 0]),
        ("NONE,None, 7 ", [None, None, 7]),
        ("4094", [4094]),
        ("", []),
        ("   ", []),
    ],
)
def test_parse_vlan_list(text: str, expected: list[int | None]) -> None:
    assert parse_vlan_list(text) == expected


@pytest.mark.parametrize(
    ("text", "bad_index", "bad_item"),
    [
        ("3,,5", 1, ""),
        ("x", 0, "x"),
        ("3,-4", 1, "-4"),
        ("+3", 0, "+3"),
        ("1", 0, "1"),
        ("4095", 0, "4095"),
        ("4096", 0, "4096"),
        ("3;4", 0, "3;4"),
        ("3.0", 0, "3.0"),
        ("٣", 0, "٣"),  # a non-ASCII digit that int() would accept
    ],
)
def test_parse_vlan_list_rejects_garbage(text: str, bad_index: int, bad_item: str) -> None:
    with pytest.raises(UserError) as info:
        parse_vlan_list(text)
    assert info.value.message == (
        f"invalid vlan list {text!r}: entry {bad_index} ({bad_item!r}) must be a VLAN id from 2 "
        "to 4094, 0 (untagged) or none, e.g. vlan=3,none,5"
    )
