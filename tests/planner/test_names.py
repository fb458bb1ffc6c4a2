"""VM names, slices, cluster-naming, and host-name validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck.errors import PlannerError, UserError
from flightdeck.planner.names import (
    cluster_compute_name,
    next_vm_name,
    validate_host_name,
    vm_name,
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("frontend", 0, 0, 0), "frontend-0-0-0"),
        (("hosted-vm", 0, 1, 0), "hosted-vm-0-1-0"),
        (("compute", 0, 0, 0), "compute-0-0-0"),
        (("compute", 2, 13, 11), "compute-2-13-11"),
    ],
)
def test_vm_name(args: tuple[str, int, int, int], expected: str) -> None:
    assert vm_name(*args) == expected


def test_next_vm_name_free_start() -> None:
    assert next_vm_name("hosted-vm", 0, 1, 0, set()) == ("hosted-vm-0-1-0", 0)


def test_next_vm_name_increments_while_taken() -> None:
    taken = {"hosted-vm-0-1-0", "hosted-vm-0-1-1", "hosted-vm-0-1-3"}
    assert next_vm_name("hosted-vm", 0, 1, 0, taken) == ("hosted-vm-0-1-2", 2)


def test_next_vm_name_starts_at_the_max_slice_not_max_plus_one() -> None:
    # 6.2 rule: start from the current max slice; it is reused when that name is free.
    # Here slice 4 on the container belongs to a frontend, so compute-0-0-4 is free.
    taken = {"frontend-0-0-4"}
    assert next_vm_name("compute", 0, 0, 4, taken) == ("compute-0-0-4", 4)
    assert next_vm_name("frontend", 0, 0, 4, taken) == ("frontend-0-0-5", 5)


def test_next_vm_name_with_a_list_container() -> None:
    assert next_vm_name("compute", 0, 0, 0, ["compute-0-0-0"]) == ("compute-0-0-1", 1)


def test_next_vm_name_rejects_negative_start() -> None:
    with pytest.raises(UserError, match="invalid slice -1"):
        next_vm_name("compute", 0, 0, -1, set())


class _Everything:
    def __contains__(self, item: object) -> bool:
        return True


def test_next_vm_name_gives_up_on_a_container_that_holds_everything() -> None:
    with pytest.raises(PlannerError, match="no free VM name for appliance compute"):
        next_vm_name("compute", 0, 0, 0, _Everything())


@given(st.sets(st.integers(min_value=0, max_value=60), max_size=40), st.integers(0, 30))
def test_property_next_vm_name_is_first_free_at_or_after_start(
    taken_slices: set[int], start: int
) -> None:
    taken = {vm_name("compute", 0, 1, s) for s in taken_slices}
    name, slice_ = next_vm_name("compute", 0, 1, start, taken)
    assert name == f"compute-0-1-{slice_}"
    assert name not in taken
    assert slice_ >= start
    assert all(s in taken_slices for s in range(start, slice_))


def test_cluster_compute_name() -> None:
    assert cluster_compute_name("espresso", 0) == "vm-espresso-0"
    assert cluster_compute_name("espresso.rocksclusters.org", 12) == "vm-espresso-12"


@pytest.mark.parametrize(
    ("fe", "index"), [(".example.org", 0), ("", 0), ("espresso", -1), ("my_fe.org", 0)]
)
def test_cluster_compute_name_rejects(fe: str, index: int) -> None:
    with pytest.raises(UserError):
        cluster_compute_name(fe, index)


@pytest.mark.parametrize(
    "name",
    [
        "vm-container-0-0",
        "espresso.rocksclusters.org",
        "frontend-0-0-0",
        "Compute-0-0",
        "a",
        "3com",
        "host.123abc",
        "a" * 63,
        ".".join(["a" * 63] * 3) + "." + "b" * 61,  # exactly 253 characters
    ],
)
def test_valid_host_names_are_returned_unchanged(name: str) -> None:
    assert validate_host_name(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("select * from hosts", "label 'select * from hosts' has a character other than"),
        ("../x", "it has an empty label"),
        ("", "it is empty"),
        ("a" * 300, "it has 300 characters, the limit is 253"),
        ("a" * 64, "is longer than 63 characters"),
        ("-oProxyCommand=x", "label '-oProxyCommand=x' has a character"),
        ("compute-", "label 'compute-' has a character"),
        ("compute_0", "label 'compute_0' has a character"),
        ("espresso.", "it has an empty label"),
        ("a..b", "it has an empty label"),
        ("10.1.1.1", "it is all numeric"),
        ("123", "it is all numeric"),
        ("0x7f.1", "it is all numeric"),
        ("caf\u00e9", "has a character other than"),
        ("a\nb", "has a character other than"),
    ],
)
def test_invalid_host_names(name: str, problem: str) -> None:
    with pytest.raises(UserError) as info:
        validate_host_name(name)
    message = info.value.message
    assert message.startswith("invalid host name ")
    assert problem in message
    assert message.endswith(
        "; use letters, digits and hyphens in dot-separated labels, e.g. compute-0-0 or "
        "espresso.rocksclusters.org"
    )
    assert "\n" not in message
    assert len(message) < 300


def test_invalid_host_name_exact_message() -> None:
    with pytest.raises(UserError) as info:
        validate_host_name("")
    assert info.value.message == (
        "invalid host name '': it is empty; use letters, digits and hyphens in dot-separated "
        "labels, e.g. compute-0-0 or espresso.rocksclusters.org"
    )


@given(
    st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True), min_size=1, max_size=4)
)
def test_property_generated_names_are_valid(labels: list[str]) -> None:
    name = ".".join(labels)
    assert validate_host_name(name) == name
