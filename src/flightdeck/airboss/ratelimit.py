"""Per-key rate limit: a token bucket for each key that has signed a valid request.

Only verified keys are counted (an attacker cannot use up an owner's allowance by sending
junk under the owner's key id). Thread-safe: the Airboss checks it in its worker threads. The table
is bounded: past `max_keys` keys the ones idle longest are forgotten (a forgotten key starts
again with a full bucket, which is the state an idle key would have reached anyway).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> float:
        """0.0 when `key` may go ahead now (a token is taken), else the seconds to wait."""
        with self._lock:
            return self._allow(key)

    def _allow(self, key: str) -> float:
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait
