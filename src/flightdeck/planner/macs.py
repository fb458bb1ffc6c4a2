"""VM MAC addresses: the Rocks scheme (reference §3.3), made safe.

Every VM NIC gets a MAC from one space per physical frontend: a *base* derived once from the
frontend's public IPv4 and a *mask* (attributes ``vm_mac_base_addr`` / ``vm_mac_base_addr_mask``).
The next MAC is the highest MAC already used inside that space, plus one. We keep that rule because
sites rely on it: MACs are the one identifier the physical and the virtual frontend share, and they
must stay stable and predictable across both.

What this module adds to the original ``getNextMac``: it hands out several MACs in one call, it
refuses to walk out of the space (the original silently produced MACs outside it, which the next
call then ignored, so it could hand out the same MAC twice), and it refuses bases that would give
multicast or globally administered MACs, which libvirt rejects or which could collide with real
hardware.

All MACs are returned in the canonical form: six lower-case, zero-padded hex octets joined by ``:``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from flightdeck.errors import PlannerError, UserError

#: The Rocks default mask: the first 26 bits are fixed, the VM space is the low 22 bits (4,194,304
#: MACs per physical frontend).
DEFAULT_MAC_MASK = "ff:ff:ff:c0:00:00"

_MAC_RE = re.compile(r"[0-9A-Fa-f]{1,2}([:-])[0-9A-Fa-f]{1,2}(?:\1[0-9A-Fa-f]{1,2}){4}")
_BITS = 48
_ALL_ONES = (1 << _BITS) - 1
#: Shift that brings the first (most significant) octet down to the low 8 bits.
_FIRST_OCTET_SHIFT = _BITS - 8
#: Text longer than this is not an Ethernet MAC (InfiniBand GUID-style addresses are 20 octets);
#: the original skipped them for the same reason.
_MAX_ETHERNET_MAC_CHARS = 17
_EXAMPLE_MAC = "52:54:00:12:34:56"


def normalize_mac(text: str) -> str:
    """Return ``text`` as a canonical MAC (``aa:bb:cc:dd:ee:ff``), or raise ``UserError``.

    Accepted: upper or lower case, ``:`` or ``-`` separators (one kind per address), octets with
    one or two hex digits (Rocks wrote bases with ``%x``, e.g. ``2:1:1:40:0:0``), and surrounding
    white space. Anything else (Cisco dotted form, bare 12 hex digits, 8-octet EUI-64) is refused,
    because accepting it here would let two spellings of one MAC coexist in the database.
    """
    octets = _parse_octets(text)
    if octets is None:
        raise UserError(
            f"invalid MAC address {text!r}: expected six hex octets like {_EXAMPLE_MAC}"
        )
    return _format(_octets_to_int(octets))


def is_mac(text: str) -> bool:
    """True when ``normalize_mac(text)`` would succeed."""
    return _parse_octets(text) is not None


def mac_base_from_ip(public_ip: str) -> str:
    """Derive the VM MAC base from the physical frontend's public IPv4 ``a.b.c.d``.

    This is the Rocks derivation, kept bit for bit so that an existing site gets the same MACs:
    octet 1 = ``(d & ~3) | 0x02`` (unicast, locally administered), octet 2 = ``c``, octet 3 = ``b``,
    octet 4 = ``(d & 3) << 6``, octets 5 and 6 = 0; ``a`` is dropped. Unlike the original (which
    used ``%x``) the result is zero-padded. Examples: 137.110.119.117 -> ``76:77:6e:40:00:00``,
    137.110.119.55 -> ``36:77:6e:c0:00:00``.
    """
    try:
        address = ipaddress.IPv4Address(public_ip.strip())
    except (ipaddress.AddressValueError, ValueError):
        raise UserError(
            f"invalid IPv4 address {public_ip!r} for the VM MAC base: expected the physical "
            "frontend's public address like 137.110.119.117"
        ) from None
    _a, b, c, d = address.packed
    octets = [(d & ~3 & 0xFF) | 0x02, c, b, (d & 3) << 6, 0, 0]
    return _format(_octets_to_int(octets))


def next_macs(used: Iterable[str], base: str, mask: str, count: int = 1) -> list[str]:
    """Return ``count`` new MACs from the space ``base``/``mask``, in increasing order.

    The first is the highest MAC of ``used`` inside the space plus one, or ``base`` itself when no
    used MAC is inside the space (the original ``getNextMac``); the others follow consecutively.
    Freed MACs below the maximum are not reused, as in the original: a recycled MAC could still sit
    in a DHCP lease or an ARP cache.

    ``used`` may hold MACs in any form ``normalize_mac`` accepts; entries longer than 17 characters
    (InfiniBand) and entries that are not MACs at all are ignored, since neither can collide with
    a MAC of the space. The first octet of every result is unicast and locally administered; when
    the mask leaves those bits free, candidates skip forward to the next such octet.

    Raises ``UserError`` for a malformed base or mask, a mask that is not contiguous leading ones,
    a base whose first octet is multicast or not locally administered, or a negative count; and
    ``PlannerError`` when fewer than ``count`` MACs are left at the top of the space.
    """
    if count < 0:
        raise UserError(f"invalid MAC count {count}: expected 0 or more")
    base_int = _parse_setting(base, "VM MAC base address", "vm_mac_base_addr", "76:77:6e:40:00:00")
    mask_int = _parse_setting(mask, "VM MAC mask", "vm_mac_base_addr_mask", DEFAULT_MAC_MASK)
    host_bits = _ALL_ONES & ~mask_int
    if host_bits & (host_bits + 1):
        raise UserError(
            f"invalid VM MAC mask {mask!r}: expected leading one bits then zero bits like "
            f"{DEFAULT_MAC_MASK} (attribute vm_mac_base_addr_mask)"
        )
    if not _first_octet_ok(base_int >> _FIRST_OCTET_SHIFT):
        raise UserError(
            f"invalid VM MAC base address {base!r}: its first octet must be unicast and locally "
            "administered (low two bits 10, e.g. 76:77:6e:40:00:00); fix attribute "
            "vm_mac_base_addr"
        )
    low = base_int & mask_int
    high = low | host_bits

    used_ints: set[int] = set()
    for text in used:
        if len(text.strip()) > _MAX_ETHERNET_MAC_CHARS:
            continue
        octets = _parse_octets(text)
        if octets is not None:
            used_ints.add(_octets_to_int(octets))
    in_space = [value for value in used_ints if value & mask_int == low]

    chosen: list[int] = []
    candidate: int | None = max(in_space) + 1 if in_space else base_int
    while len(chosen) < count:
        candidate = _first_valid_at_or_after(candidate, high)
        if candidate is None:
            highest = _format(max(in_space)) if in_space else "none"
            raise PlannerError(
                f"VM MAC space {_format(base_int)} under mask {_format(mask_int)} is exhausted: "
                f"{count} new MAC(s) needed, {len(chosen)} left above the highest used "
                f"({highest}); set vm_mac_base_addr and vm_mac_base_addr_mask to a new space"
            )
        if candidate not in used_ints:
            chosen.append(candidate)
        candidate += 1
    return [_format(value) for value in chosen]


def _first_valid_at_or_after(candidate: int | None, high: int) -> int | None:
    """Smallest value >= ``candidate`` and <= ``high`` whose first octet is acceptable, or None.

    Within a prefix space whose mask covers the first octet, the first octet never changes, so this
    only moves anything when the mask is shorter than 8 bits.
    """
    if candidate is None or candidate > high:
        return None
    first = candidate >> _FIRST_OCTET_SHIFT
    if not _first_octet_ok(first):
        # The next octet with bit 0 clear and bit 1 set, as the original's "+1 if odd, then |2";
        # unlike the original we restart the lower 40 bits at 0 so no value is skipped.
        first += (2 - first) % 4
        candidate = first << _FIRST_OCTET_SHIFT
        if first > 0xFF or candidate > high:
            return None
    return candidate


def _first_octet_ok(octet: int) -> bool:
    """Unicast (bit 0 clear) and locally administered (bit 1 set)."""
    return octet & 0x03 == 0x02


def _parse_setting(text: str, what: str, attribute: str, example: str) -> int:
    octets = _parse_octets(text)
    if octets is None:
        raise UserError(
            f"invalid {what} {text!r}: expected six hex octets like {example} "
            f"(attribute {attribute})"
        )
    return _octets_to_int(octets)


def _parse_octets(text: str) -> list[int] | None:
    stripped = text.strip()
    if _MAC_RE.fullmatch(stripped) is None:
        return None
    return [int(part, 16) for part in re.split(r"[:-]", stripped)]


def _octets_to_int(octets: list[int]) -> int:
    value = 0
    for octet in octets:
        value = (value << 8) | octet
    return value


def _format(value: int) -> str:
    return ":".join(f"{(value >> shift) & 0xFF:02x}" for shift in range(40, -1, -8))
