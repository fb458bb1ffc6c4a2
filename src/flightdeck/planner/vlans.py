"""VLAN ids for virtual clusters (reference §3.2).

A virtual cluster *is* its VLAN: membership is defined by the VLAN id of its NICs, so two clusters
on one id would see each other's DHCP and PXE traffic. Hence the allocated id is the lowest free
one, and, unlike the original, an explicit id is checked to be free as well.

VLAN 1 is never used (it is the default/native VLAN on most switches); 0 is not a VLAN but means
"untagged, on the physical network" in a per-NIC ``vlan=`` list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from flightdeck.errors import Conflict, PlannerError, UserError

VLAN_MIN = 2
VLAN_MAX = 4094

#: In a ``vlan=`` list, 0 means the NIC is on the physical network, untagged.
UNTAGGED = 0

_INTEGER_RE = re.compile(r"[0-9]+")


def next_free_vlan(used: Iterable[int]) -> int:
    """Return the lowest VLAN id in ``VLAN_MIN..VLAN_MAX`` that is not in ``used``.

    ``used`` should hold every non-NULL, non-zero VLAN id in the database (physical, virtual and
    ``vlanN`` rows alike), as the original scanned them all. Raises ``PlannerError`` when all
    4094 ids are taken.
    """
    taken = set(used)
    for vlan in range(VLAN_MIN, VLAN_MAX + 1):
        if vlan not in taken:
            return vlan
    raise PlannerError(
        f"no free VLAN id: all of {VLAN_MIN}-{VLAN_MAX} are in use; remove a cluster first"
    )


def check_vlan(vlan: int, used: Iterable[int]) -> int:
    """Check an explicit VLAN id: in range (``UserError``) and free (``Conflict``); return it.

    ``used`` may be a mapping from id to a description of its user (e.g. ``{2: "cluster
    frontend-0-0-0"}``); the conflict message then names that user.
    """
    if isinstance(vlan, bool) or not VLAN_MIN <= vlan <= VLAN_MAX:
        raise UserError(
            f"invalid VLAN id {vlan}: expected an integer from {VLAN_MIN} to {VLAN_MAX}"
        )
    if isinstance(used, Mapping):
        if vlan in used:
            raise Conflict(
                f"VLAN {vlan} is already used by {used[vlan]}; pick another or omit vlan= to get "
                "the next free one"
            )
    elif vlan in set(used):
        raise Conflict(
            f"VLAN {vlan} is already in use; pick another or omit vlan= to get the next free one"
        )
    return vlan


def parse_vlan_list(text: str) -> list[int | None]:
    """Parse the ``vlan=`` parameter of ``add host vm``: one entry per NIC, in NIC order.

    ``"3,none,5"`` -> ``[3, None, 5]``; ``"2,0"`` -> ``[2, 0]`` (0: physical network, untagged);
    ``none`` is case-insensitive. Blank text gives ``[]`` (no VLAN on any NIC). Entries may be
    surrounded by spaces; anything else (empty entries, signs, 1, ids above ``VLAN_MAX``) raises
    ``UserError``. Whether the ids are free is the caller's business (``check_vlan``): a virtual
    frontend's NIC deliberately joins its cluster's existing VLAN.
    """
    if not text.strip():
        return []
    result: list[int | None] = []
    for index, raw in enumerate(text.split(",")):
        item = raw.strip()
        if item.lower() == "none":
            result.append(None)
            continue
        if _INTEGER_RE.fullmatch(item) is not None:
            value = int(item)
            if value == UNTAGGED or VLAN_MIN <= value <= VLAN_MAX:
                result.append(value)
                continue
        raise UserError(
            f"invalid vlan list {text!r}: entry {index} ({item!r}) must be a VLAN id from "
            f"{VLAN_MIN} to {VLAN_MAX}, 0 (untagged) or none, e.g. vlan=3,none,5"
        )
    return result
