"""What `pilot create token`, `pilot attenuate` and `pilot revoke` do with their parameters.

The parameters narrow a token (`crypto.capability.Restrictions`):

* `ops=power.on,power.off` (operations, see `capability.OPERATIONS`; `power` is all five);
* `hosts=compute-0-[0-3],52:54:00:aa:00:01` (a Slurm hostlist of physical-side names or MACs:
  what the Airboss knows the VMs by);
* `until=+8h` (also `+30m`, `+2d`, `+90s`, or an ISO 8601 time; without a zone it is UTC);
* `from=10.1.1.1,10.1.1.2` (the client addresses the Airboss sees).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from flightdeck.errors import UserError
from flightdeck.pilot.hostlist import expand

if TYPE_CHECKING:
    from flightdeck.crypto.capability import Restrictions

_RELATIVE = re.compile(r"\+(\d{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_until(text: str, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
                ) -> dt.datetime:  # fmt: skip
    """`+8h` from now, or an ISO 8601 time (UTC unless it says otherwise)."""
    word = text.strip()
    m = _RELATIVE.fullmatch(word)
    if m:
        return now() + dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = dt.datetime.fromisoformat(word)
    except ValueError:
        raise UserError(
            f"until={text}: give +8h (s, m, h, d) or a time such as 2026-12-31T18:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _list(text: str) -> tuple[str, ...]:
    items = tuple(i.strip() for i in text.split(",") if i.strip())
    if not items:
        raise UserError("an empty list: give at least one value")
    return items


def restrictions(
    ops: str | None, hosts: str | None, until: str | None, clients: str | None
) -> Restrictions:
    from flightdeck.crypto.capability import Restrictions

    operations = None
    if ops is not None:
        words: list[str] = []
        for op in _list(ops):
            if op == "power":
                words += ["power.on", "power.off", "power.install", "power.reset", "power.shutdown"]
            else:
                words.append(op)
        operations = tuple(words)
    return Restrictions(
        ops=operations,
        hosts=tuple(expand(hosts)) if hosts is not None else None,
        until=parse_until(until) if until is not None else None,
        clients=_list(clients) if clients is not None else None,
    )


def describe(token_id: str, sources: list[str]) -> str:
    """What `pilot` prints on standard error about a token it wrote: its id and its blocks."""
    lines = [f"token id {token_id}"]
    for i, source in enumerate(sources):
        body = " ".join(source.split())
        lines.append(f"  block {i}: {body}")
    return "\n".join(lines) + "\n"
