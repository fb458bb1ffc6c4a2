"""Placement: Rocks round robin and the capacity-aware option."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck.errors import PlannerError, UserError
from flightdeck.planner.placement import ContainerCapacity, by_capacity, round_robin


def test_round_robin_as_rocks() -> None:
    containers = ["vm-container-0-0", "vm-container-0-1", "vm-container-0-2"]
    assert round_robin(containers, 5) == [
        "vm-container-0-0",
        "vm-container-0-1",
        "vm-container-0-2",
        "vm-container-0-0",
        "vm-container-0-1",
    ]


def test_round_robin_single_container_and_zero() -> None:
    assert round_robin(["espresso"], 3) == ["espresso"] * 3
    assert round_robin([], 0) == []
    assert round_robin(["a"], 0) == []


def test_round_robin_duplicates_weight_a_container() -> None:
    assert round_robin(["a", "a", "b"], 6) == ["a", "a", "b", "a", "a", "b"]


def test_round_robin_refusals() -> None:
    with pytest.raises(PlannerError) as info:
        round_robin([], 2)
    assert info.value.message == (
        "no VM container to place 2 VM(s) on; add one or name them in container-hosts="
    )
    with pytest.raises(UserError, match="invalid number of VMs -1"):
        round_robin(["a"], -1)


def test_free_memory() -> None:
    assert ContainerCapacity("a", 4096, 1024).free_mb == 3072
    assert ContainerCapacity("a", 4096, 1024, overcommit=1.5).free_mb == 5120
    assert ContainerCapacity("a", None, 0).free_mb is None
    assert ContainerCapacity("a", 1024, 2048).free_mb == -1024


def test_by_capacity_goes_where_most_is_free_and_updates() -> None:
    containers = [
        ContainerCapacity("vm-container-0-0", 8192, 6144),  # 2048 free
        ContainerCapacity("vm-container-0-1", 8192, 2048),  # 6144 free
        ContainerCapacity("vm-container-0-2", 8192, 4096),  # 4096 free
    ]
    assert by_capacity(containers, [2048, 2048, 2048, 1024, 1024]) == [
        "vm-container-0-1",  # 6144 -> 4096
        "vm-container-0-1",  # tie 4096/4096: listed first wins -> 2048
        "vm-container-0-2",  # 4096 -> 2048
        "vm-container-0-0",  # three-way tie at 2048: first listed -> 1024
        "vm-container-0-1",  # tie 2048/2048: first listed -> 1024
    ]


def test_by_capacity_ties_go_to_input_order() -> None:
    containers = [ContainerCapacity("b", 4096, 0), ContainerCapacity("a", 4096, 0)]
    assert by_capacity(containers, [1024, 1024, 1024]) == ["b", "a", "b"]


def test_by_capacity_exact_fit_and_overcommit() -> None:
    assert by_capacity([ContainerCapacity("a", 2048, 1024)], [1024]) == ["a"]
    assert by_capacity([ContainerCapacity("a", 2048, 0, overcommit=2.0)], [2048, 2048]) == [
        "a",
        "a",
    ]


def test_by_capacity_refusal_message() -> None:
    containers = [
        ContainerCapacity("vm-container-0-0", 4096, 0),
        ContainerCapacity("vm-container-0-1", 3584, 0),
    ]
    # Computes 0-6 alternate (0-0, 0-1, 0-0, ...) and leave 0 MB on 0-0 and 512 MB on 0-1.
    assert by_capacity(containers, [1024] * 7) == [
        "vm-container-0-0",
        "vm-container-0-1",
        "vm-container-0-0",
        "vm-container-0-1",
        "vm-container-0-0",
        "vm-container-0-1",
        "vm-container-0-0",
    ]
    with pytest.raises(PlannerError) as info:
        by_capacity(containers, [1024] * 8)
    assert info.value.message == (
        "cluster does not fit: compute 7 needs 1024 MB, the most free on any container is 512 MB "
        "(vm-container-0-1); add containers or lower mem-per-compute"
    )


def test_by_capacity_full_containers_name_the_first() -> None:
    containers = [
        ContainerCapacity("vm-container-0-0", 4096, 0),
        ContainerCapacity("vm-container-0-1", 4096, 0),
    ]
    assert len(by_capacity(containers, [1024] * 8)) == 8
    with pytest.raises(PlannerError) as info:
        by_capacity(containers, [1024] * 9)
    assert info.value.message == (
        "cluster does not fit: compute 8 needs 1024 MB, the most free on any container is 0 MB "
        "(vm-container-0-0); add containers or lower mem-per-compute"
    )


def test_by_capacity_refusal_names_the_best_container() -> None:
    containers = [
        ContainerCapacity("vm-container-0-0", 4096, 3840),  # 256 free
        ContainerCapacity("vm-container-0-1", 4096, 3584),  # 512 free
    ]
    with pytest.raises(PlannerError) as info:
        by_capacity(containers, [1024] * 8)
    assert info.value.message == (
        "cluster does not fit: compute 0 needs 1024 MB, the most free on any container is 512 MB "
        "(vm-container-0-1); add containers or lower mem-per-compute"
    )


def test_by_capacity_refusal_mid_cluster() -> None:
    containers = [ContainerCapacity("vm-container-0-0", 8192, 0)]
    with pytest.raises(PlannerError) as info:
        by_capacity(containers, [1024] * 7 + [1536])
    assert info.value.message == (
        "cluster does not fit: compute 7 needs 1536 MB, the most free on any container is 1024 MB "
        "(vm-container-0-0); add containers or lower mem-per-compute"
    )


def test_unknown_total_never_fits_and_is_named() -> None:
    containers = [
        ContainerCapacity("vm-container-0-0", None, 0),
        ContainerCapacity("vm-container-0-1", 2048, 1536),
    ]
    assert by_capacity(containers, [512]) == ["vm-container-0-1"]
    with pytest.raises(PlannerError) as info:
        by_capacity(containers, [1024])
    assert info.value.message == (
        "cluster does not fit: compute 0 needs 1024 MB, the most free on any container is 512 MB "
        "(vm-container-0-1); memory unknown on vm-container-0-0; add containers or lower "
        "mem-per-compute"
    )


def test_all_unknown() -> None:
    containers = [ContainerCapacity("a", None, 0), ContainerCapacity("b", None, 0)]
    with pytest.raises(PlannerError) as info:
        by_capacity(containers, [1024])
    assert info.value.message == (
        "cluster does not fit: compute 0 needs 1024 MB, no container reports its memory size; "
        "memory unknown on a, b; add containers or lower mem-per-compute"
    )


def test_overcommitted_container_shows_zero_not_negative() -> None:
    with pytest.raises(PlannerError, match="the most free on any container is 0 MB \\(a\\)"):
        by_capacity([ContainerCapacity("a", 1024, 4096)], [1])


def test_by_capacity_empty_inputs_and_refusals() -> None:
    assert by_capacity([], []) == []
    assert by_capacity([ContainerCapacity("a", None, 0)], []) == []
    with pytest.raises(PlannerError, match="no VM container to place 1 VM"):
        by_capacity([], [1024])
    with pytest.raises(UserError, match="container a is listed twice"):
        by_capacity([ContainerCapacity("a", 1, 0), ContainerCapacity("a", 1, 0)], [1])
    with pytest.raises(UserError, match="invalid memory overcommit 0"):
        by_capacity([ContainerCapacity("a", 1024, 0, overcommit=0)], [1])
    with pytest.raises(UserError, match="invalid memory 0 MB for compute 1"):
        by_capacity([ContainerCapacity("a", 4096, 0)], [1024, 0])


@given(
    st.lists(st.tuples(st.integers(0, 16384), st.integers(0, 16384)), min_size=1, max_size=6),
    st.lists(st.integers(1, 4096), max_size=20),
)
def test_property_never_overfills_and_picks_the_max(
    sizes: list[tuple[int, int]], demands: list[int]
) -> None:
    containers = [ContainerCapacity(f"c{i}", t, u) for i, (t, u) in enumerate(sizes)]
    free = {c.name: t - u for c, (t, u) in zip(containers, sizes, strict=True)}
    try:
        placement = by_capacity(containers, demands)
    except PlannerError:
        # Replay greedily: some VM must have found no container with enough room.
        for demand in demands:
            best = max(free, key=lambda n: (free[n], -int(n[1:])))
            if free[best] < demand:
                return
            free[best] -= demand
        raise AssertionError("refused although every VM fits greedily") from None
    assert len(placement) == len(demands)
    for name, demand in zip(placement, demands, strict=True):
        assert free[name] == max(free.values())
        assert free[name] >= demand
        free[name] -= demand
