"""Where the VMs of a virtual cluster go (reference §3.6).

Two policies:

* ``round_robin``: what Rocks did, and still the default. Compute *i* goes on container
  ``i % n`` in the order given, with no look at load. Predictable, which is what users of
  ``container-hosts=`` expect.
* ``by_capacity``: the option Rocks lacked. Each VM goes where the most memory is free, and the
  request is refused up front (nothing created) when a VM fits nowhere, instead of failing at
  ``start host vm`` time with half a cluster defined.

Memory is in MB (2^20 bytes, as libvirt's and the ``vm_nodes.Mem`` column's unit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from flightdeck.errors import PlannerError, UserError


@dataclass(frozen=True)
class ContainerCapacity:
    """Memory of one VM container, in MB.

    ``mem_total_mb`` is the physical memory (``None`` when libvirt could not be asked);
    ``mem_used_mb`` is what VMs defined on it already claim; ``overcommit`` scales the total
    (1.0: no overcommit; 1.5: promise 50% more than exists).
    """

    name: str
    mem_total_mb: int | None
    mem_used_mb: int
    overcommit: float = 1.0

    @property
    def free_mb(self) -> float | None:
        """``mem_total_mb * overcommit - mem_used_mb`` (may be negative), or None if unknown."""
        if self.mem_total_mb is None:
            return None
        return self.mem_total_mb * self.overcommit - self.mem_used_mb


def round_robin(containers: Sequence[str], count: int) -> list[str]:
    """Place ``count`` VMs: VM *i* goes on ``containers[i % len(containers)]``.

    A name listed twice gets twice the share, as in Rocks. Raises ``PlannerError`` when there
    are VMs to place but no container.
    """
    if count < 0:
        raise UserError(f"invalid number of VMs {count}: expected 0 or more")
    if count == 0:
        return []
    if not containers:
        raise PlannerError(
            f"no VM container to place {count} VM(s) on; add one or name them in container-hosts="
        )
    return [containers[index % len(containers)] for index in range(count)]


def by_capacity(containers: Sequence[ContainerCapacity], demands_mb: Sequence[int]) -> list[str]:
    """Place VMs in order, each on the container with the most free memory at that moment.

    Ties go to the container listed first. The free memory of the chosen container drops by the
    VM's demand before the next VM is placed, so a cluster spreads out as long as containers are
    alike. A container whose total is unknown is never chosen. Raises ``PlannerError`` naming the
    VM (``compute <i>``, 0-based), its demand and the best free memory when a VM fits nowhere;
    ``UserError`` for a negative demand, a duplicate container name or a non-positive overcommit.
    """
    if not demands_mb:
        return []
    if not containers:
        raise PlannerError(
            f"no VM container to place {len(demands_mb)} VM(s) on; add one or name them in "
            "container-hosts="
        )
    _check_containers(containers)
    free: list[float | None] = [container.free_mb for container in containers]
    unknown = [c.name for c, f in zip(containers, free, strict=True) if f is None]
    placement: list[str] = []
    for index, demand in enumerate(demands_mb):
        if demand <= 0:
            raise UserError(f"invalid memory {demand} MB for compute {index}: expected more than 0")
        best: int | None = None
        best_free: float | None = None
        for position, amount in enumerate(free):
            if amount is not None and (best_free is None or amount > best_free):
                best, best_free = position, amount
        if best is None or best_free is None or best_free < demand:
            raise PlannerError(_refusal(index, demand, containers, best, best_free, unknown))
        free[best] = best_free - demand
        placement.append(containers[best].name)
    return placement


def _check_containers(containers: Sequence[ContainerCapacity]) -> None:
    seen: set[str] = set()
    for container in containers:
        if container.name in seen:
            raise UserError(
                f"container {container.name} is listed twice; list each container once for "
                "capacity placement"
            )
        seen.add(container.name)
        if not container.overcommit > 0:
            raise UserError(
                f"invalid memory overcommit {container.overcommit} on {container.name}: expected "
                "a number greater than 0, e.g. 1.0"
            )


def _refusal(
    index: int,
    demand: int,
    containers: Sequence[ContainerCapacity],
    best: int | None,
    best_free: float | None,
    unknown: list[str],
) -> str:
    message = f"cluster does not fit: compute {index} needs {demand} MB, "
    if best is None or best_free is None:
        message += "no container reports its memory size"
    else:
        shown = max(0, math.floor(best_free))
        message += f"the most free on any container is {shown} MB ({containers[best].name})"
    if unknown:
        message += f"; memory unknown on {', '.join(unknown)}"
    return message + "; add containers or lower mem-per-compute"
