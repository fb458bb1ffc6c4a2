"""Refused floods, summed up: one audit row per client address and minute, not per request.

A request refused before its signature holds (none, a bad one, a replay, a client over its
address's rate, oversized headers or body) comes from someone the Airboss cannot name. Writing
one audit row for each let 2,000 junk requests cost 2,000 rows (~30 GiB a day, sustained). So,
per client address and clock minute: the first `per_minute` such refusals get their own row as
before (an attack's first requests are always on record, with their reasons); the rest are
counted by reason and written as ONE row when the minute is over (`flush`, from the Airboss's
purge loop and at its stop):

    operation "refusals", accepted false, client <address>,
    reason "flood: 1980 more refusals before verification in 12:04 UTC (missing-signature: 1500,
            invalid-signature: 480)"

Verified requests (an owner's, accepted or refused) are never folded. Memory is bounded: at most
`max_addresses` addresses are tracked per minute; beyond, the rest share one "(other addresses)"
entry. Thread-safe: the Airboss audits from its worker threads.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from flightdeck.services.airboss.audit import AuditRecord

#: The operation name of a summary row.
OPERATION = "refusals"
OTHERS = "(other addresses)"


@dataclass
class _Window:
    minute: int
    rows: int = 0
    folded: Counter[str] = field(default_factory=Counter)


class FloodAudit:
    def __init__(
        self,
        per_minute: int,
        *,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._ended: list[tuple[str, _Window]] = []
        self._lock = threading.Lock()

    def own_row(self, client: str | None, code: str) -> bool:
        """True if this unverified refusal gets its own audit row; else it is counted."""
        address = client or "-"
        minute = int(self.clock() // 60)
        with self._lock:
            window = self._windows.get(address)
            if window is not None and window.minute != minute:
                if window.folded:
                    self._ended.append((address, window))
                window = None
                del self._windows[address]
            if window is None:
                if len(self._windows) >= self.max_addresses:
                    address = OTHERS
                    window = self._windows.get(OTHERS)
                if window is None:
                    window = self._windows[address] = _Window(minute)
            if window.rows < self.per_minute:
                window.rows += 1
                return True
            window.folded[code] += 1
            return False

    def flush(self, *, everything: bool = False) -> list[AuditRecord]:
        """The summary rows of the minutes that are over (`everything`: all, at the stop)."""
        minute = int(self.clock() // 60)
        with self._lock:
            ended, self._ended = self._ended, []
            for address, window in list(self._windows.items()):
                if everything or window.minute != minute:
                    del self._windows[address]
                    if window.folded:
                        ended.append((address, window))
        return [_summary(address, window) for address, window in ended]


def _summary(address: str, window: _Window) -> AuditRecord:
    total = sum(window.folded.values())
    start = dt.datetime.fromtimestamp(window.minute * 60, dt.UTC)
    reasons = ", ".join(f"{code}: {n}" for code, n in window.folded.most_common())
    return AuditRecord(
        client=address,
        keyid=None,
        operation=OPERATION,
        target=None,
        accepted=False,
        reason=f"flood: {total} more refusals before verification in the minute from "
        f"{start:%Y-%m-%d %H:%M} UTC ({reasons})",
    )
