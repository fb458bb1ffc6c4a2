"""IPv4 addresses on Rocks subnets (reference §3.4).

The physical side hands out addresses only on its own subnets (``private``, ``public``): a virtual
frontend's eth0 gets the highest free address of ``private``, counting down from the top as the
original did (hence ``10.1.255.254``, ``10.1.255.253``...). Hosted VMs get none; their virtual
frontend numbers them inside the VLAN.

Everything here works on integers and sets, so a /16 with 60,000 used addresses costs one pass
over the used list, not a scan per candidate.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from flightdeck.errors import PlannerError, UserError

_PREFIX_RE = re.compile(r"/?([0-9]{1,2})")
_ALL_ONES = 0xFFFFFFFF


def network_of(ip: str, netmask: str) -> ipaddress.IPv4Network:
    """The network that ``ip`` belongs to under ``netmask`` (host bits cleared).

    ``netmask`` may be dotted (``255.255.0.0``, as in the ``subnets`` table) or a prefix length
    (``16`` or ``/16``). A dotted mask must be leading ones then zeros; the "host mask" form
    ``0.0.255.255`` that ``ipaddress`` would silently accept is refused as the typo it usually is.
    """
    address = _parse_ip(ip)
    prefix = _parse_netmask(netmask)
    return ipaddress.IPv4Network((int(address), prefix), strict=False)


def check_ip_in_network(ip: str, network: ipaddress.IPv4Network, network_name: str) -> str:
    """Return ``ip`` in canonical form if it is a usable host address of ``network``.

    Raises ``UserError`` when the address is malformed, outside the network, or is the network or
    broadcast address (those exist only for networks larger than /31; RFC 3021 lets a /31 use
    both of its addresses). ``network_name`` is the Rocks subnet name used in the message.
    """
    address = _parse_ip(ip)
    where = f"network {network_name} ({network.with_prefixlen})"
    if address not in network:
        raise UserError(f"IP {address} is outside {where}; pick an address inside it")
    if network.prefixlen < 31:
        if address == network.network_address:
            raise UserError(f"IP {address} is the network address of {where}; pick a host address")
        if address == network.broadcast_address:
            raise UserError(
                f"IP {address} is the broadcast address of {where}; pick a host address"
            )
    return str(address)


def next_free_ip(
    network: ipaddress.IPv4Network,
    used: Iterable[str],
    *,
    descending: bool = True,
    exclude: Iterable[str] = (),
) -> str:
    """The highest (``descending``) or lowest free host address of ``network``.

    Free means not in ``used`` and not in ``exclude`` (e.g. the gateway, or addresses reserved by
    the caller for this same transaction). Entries that are not IPv4 addresses, or lie outside the
    network, are ignored: ``used`` is typically every IP in the ``networks`` table. Network and
    broadcast addresses are never returned (except on /31 and /32, which have none).

    Cost: O(len(used)) to build the set, then at most len(used) + 1 probes, since every probe that
    fails hits a distinct used address. Raises ``PlannerError`` when the network is full.
    """
    first = int(network.network_address)
    last = int(network.broadcast_address)
    if network.prefixlen < 31:
        first += 1
        last -= 1
    taken: set[int] = set()
    for text in (*used, *exclude):
        value = _ip_int_or_none(text)
        if value is not None and first <= value <= last:
            taken.add(value)
    if len(taken) < last - first + 1:
        candidates = range(last, first - 1, -1) if descending else range(first, last + 1)
        for value in candidates:
            if value not in taken:
                return str(ipaddress.IPv4Address(value))
    raise PlannerError(
        f"no free IP address left in {network.with_prefixlen}; remove unused hosts or use a "
        "larger subnet"
    )


def lowest_free_run(
    network: ipaddress.IPv4Network, taken: Iterable[str], size: int
) -> tuple[str, str]:
    """The lowest ``size`` consecutive host addresses of ``network`` with none of ``taken``.

    Where dnsmasq lends unknown machines an address (the discovery pool): at the bottom of the
    network, far from the fixed addresses handed out from the top, and clear of every address
    in use when the service starts (the frontend's own first of all). Raises ``PlannerError``
    when no such run exists.
    """
    if size < 1:
        raise UserError(f"invalid pool size {size}: expected 1 or more")
    first = int(network.network_address) + (1 if network.prefixlen < 31 else 0)
    last = int(network.broadcast_address) - (1 if network.prefixlen < 31 else 0)
    blocked = sorted(
        v for v in (_ip_int_or_none(t) for t in taken) if v is not None and first <= v <= last
    )
    start = first
    for value in [*blocked, last + 1]:
        if value - start >= size:
            return str(ipaddress.IPv4Address(start)), str(ipaddress.IPv4Address(start + size - 1))
        start = max(start, value + 1)
    raise PlannerError(
        f"no {size} consecutive free addresses left in {network.with_prefixlen} for the "
        "discovery pool; remove unused hosts or use a larger subnet"
    )


def _parse_ip(text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text.strip())
    except (ipaddress.AddressValueError, ValueError):
        raise UserError(
            f"invalid IP address {text!r}: expected a dotted IPv4 address like 10.1.255.254"
        ) from None


def _ip_int_or_none(text: str) -> int | None:
    try:
        return int(ipaddress.IPv4Address(text.strip()))
    except (ipaddress.AddressValueError, ValueError):
        return None


def _parse_netmask(text: str) -> int:
    """Prefix length (0-32) of a dotted netmask or a ``16`` / ``/16`` prefix."""
    stripped = text.strip()
    match = _PREFIX_RE.fullmatch(stripped)
    if match is not None:
        prefix = int(match.group(1))
        if prefix <= 32:
            return prefix
    else:
        try:
            mask = int(ipaddress.IPv4Address(stripped))
        except (ipaddress.AddressValueError, ValueError):
            mask = -1
        host_bits = _ALL_ONES & ~mask
        if mask >= 0 and host_bits & (host_bits + 1) == 0:
            return 32 - host_bits.bit_length()
    raise UserError(
        f"invalid netmask {text!r}: expected a dotted mask like 255.255.0.0 or a prefix length "
        "like 16"
    )
