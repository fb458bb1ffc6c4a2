"""VM names and host-name validation (reference §3.4).

Names follow Rocks because users, scripts and the Airboss keys of existing clusters rely on them:
``<appliance>-<container rack>-<container rank>-<slice>`` (``frontend-0-0-0``, ``hosted-vm-0-1-0``),
or ``vm-<frontend>-<i>`` for computes with ``cluster-naming=y``.

Every name that reaches DNS, dnsmasq, libvirt or a shell-free command line is validated here first,
so a name can never carry SQL, a path or an option (``-o...``) into a lower layer.
"""

from __future__ import annotations

import re
from collections.abc import Container

from flightdeck.errors import PlannerError, UserError

#: How many slices past ``start_slice`` ``next_vm_name`` tries before giving up. A container holds
#: at most a few hundred VMs; hitting this means ``taken`` is not a real set of names.
_MAX_SLICE_PROBES = 1_000_000

_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
#: Labels that the C resolver (``inet_aton``) reads as numbers: decimal, octal or ``0x`` hex.
_NUMERIC_LABEL_RE = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")
_MAX_NAME_CHARS = 253


def vm_name(appliance: str, rack: int, rank: int, slice_: int) -> str:
    """The Rocks VM name: the appliance name, then the *container's* rack and rank, then the slice.

    E.g. ``vm_name("hosted-vm", 0, 1, 0) == "hosted-vm-0-1-0"`` for the first hosted VM on
    ``vm-container-0-1``.
    """
    return f"{appliance}-{rack}-{rank}-{slice_}"


def next_vm_name(
    appliance: str, rack: int, rank: int, start_slice: int, taken: Container[str]
) -> tuple[str, int]:
    """Return the first free ``(name, slice)`` at or after ``start_slice``.

    The 6.2 rule: the caller passes the highest slice already used on that container (or 0), and
    the slice is incremented while the name is taken. The slice is therefore not unique per
    container (a second appliance type may reuse a number); the *name* is. ``taken`` is compared
    exactly, so pass names as stored.
    """
    if start_slice < 0:
        raise UserError(f"invalid slice {start_slice}: expected 0 or more")
    for slice_ in range(start_slice, start_slice + _MAX_SLICE_PROBES):
        name = vm_name(appliance, rack, rank, slice_)
        if name not in taken:
            return name, slice_
    raise PlannerError(
        f"no free VM name for appliance {appliance} on rack {rack} rank {rank}: slices "
        f"{start_slice} to {start_slice + _MAX_SLICE_PROBES - 1} are all taken; "
        "give name= explicitly"
    )


def cluster_compute_name(fe_name: str, index: int) -> str:
    """The ``cluster-naming=y`` name of compute ``index`` (0-based): ``vm-<fe short name>-<index>``.

    The short name is the part of ``fe_name`` before the first dot, so ``espresso.example.org``
    gives ``vm-espresso-0``.
    """
    if index < 0:
        raise UserError(f"invalid compute index {index}: expected 0 or more")
    short = fe_name.split(".", 1)[0]
    if not short:
        raise UserError(
            f"invalid frontend name {fe_name!r} for cluster-naming: expected a host name like "
            "espresso"
        )
    return validate_host_name(f"vm-{short}-{index}")


def validate_host_name(name: str) -> str:
    """Return ``name`` unchanged if it is a valid RFC 1123 host name; raise ``UserError`` if not.

    Rules: dot-separated labels of 1-63 letters, digits and hyphens, not starting or ending with a
    hyphen; at most 253 characters; and not made only of numeric labels (``10.1.1.1``, ``123`` or
    ``0x7f.1``), which resolvers would read as an address. Case is kept: DNS compares names
    case-insensitively, but the database stores what the user typed, as Rocks did.
    """
    problem = _host_name_problem(name)
    if problem is not None:
        raise UserError(
            f"invalid host name {_shorten(name)!r}: {problem}; use letters, digits and hyphens in "
            "dot-separated labels, e.g. compute-0-0 or espresso.rocksclusters.org"
        )
    return name


def validate_dns_zone(zone: str) -> str:
    """Return ``zone`` if it is a DNS domain (the host-name rules); raise ``UserError`` if not.

    A network's zone goes into DHCP options and network files (``HOSTNAME=<host>.<zone>``):
    anything but letters, digits, hyphens and dots could end a line there and start another.
    """
    problem = _host_name_problem(zone)
    if problem is not None:
        raise UserError(
            f"invalid DNS zone {_shorten(zone)!r}: {problem}; use letters, digits and hyphens in "
            "dot-separated labels, e.g. local or rocksclusters.org"
        )
    return zone


def host_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid host name (``validate_host_name``'s reason), or None."""
    return _host_name_problem(name)


def _shorten(text: str, limit: int = 64) -> str:
    """Keep error messages short: a 300-character name is shown as its first ``limit``."""
    return text if len(text) <= limit else text[:limit] + "..."


def _host_name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if len(name) > _MAX_NAME_CHARS:
        return f"it has {len(name)} characters, the limit is {_MAX_NAME_CHARS}"
    labels = name.split(".")
    for label in labels:
        if not label:
            return "it has an empty label (leading, trailing or double dot)"
        if len(label) > 63:
            return f"label {_shorten(label, 20)!r} is longer than 63 characters"
        if _LABEL_RE.fullmatch(label) is None:
            return (
                f"label {_shorten(label)!r} has a character other than a letter, digit "
                "or inner hyphen"
            )
    if all(_NUMERIC_LABEL_RE.fullmatch(label) for label in labels):
        return "it is all numeric and would be read as an address"
    return None


def check_fqdn(value: str, what: str = "fe-fqdn") -> str:
    """A fully-qualified name as RFC 1123 allows, lower case, without a final dot."""
    name = value.strip().rstrip(".").lower()
    if _host_name_problem(name) is not None:
        raise UserError(
            f"{what}={value!r} is not a host name: labels of letters, digits and '-' separated by "
            "dots, e.g. vi-1.rocksclusters.org"
        )
    return name
