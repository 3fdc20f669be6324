"""A token bucket for citizens' dossier lookups, so a burst of them cannot open the portal's breaker for everyone."""

from __future__ import annotations

import time
from collections.abc import Callable


class LookupBudget:
    """At most `burst` lookups at once, refilled at `rate_per_s`; a lookup without a token is not sent.

    Per process, like the breaker it protects (portal/breaker.py): with N bot replicas the portal sees at most N
    times the budget, so give each replica its share (DOSSIER_LOOKUP_RPS). The poller has its own pacer.
    """

    def __init__(self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        """Spend one token if there is one; False means: answer "busy" without calling the portal."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
