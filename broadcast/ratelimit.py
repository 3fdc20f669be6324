"""Pacing for bulk sends: an overall rate (normal or paid), one message per second per chat, 20/min per group.

Telegram's limits are enforced by token buckets on its side that we cannot see, so we never burst up to them:
sends are spaced evenly at slightly less than the limit (the `headroom` is left for citizens' conversations,
which are answered directly, never queued behind a broadcast). A 429 pauses every sender until its
`retry_after` has passed, because the flood limit applies to the whole bot, not to one chat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

PER_CHAT_INTERVAL_S = 1.0  # ~1 message per second to one chat
GROUP_INTERVAL_S = 3.0  # 20 messages per minute to one group


class Pacer:
    """Evenly spaced send slots at `rate` per second; a late caller may catch up by at most `catch_up_s`."""

    def __init__(self, rate: float, *, catch_up_s: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.catch_up_s = catch_up_s
        self._clock = clock
        self._next = 0.0
        self.paused_until = 0.0

    def reserve(self) -> float:
        """Take the next slot; returns how long to wait for it."""
        now = self._clock()
        slot = max(self._next, now - self.catch_up_s, self.paused_until)
        self._next = slot + self.interval
        return max(0.0, slot - now)

    def debit(self, count: int = 1) -> None:
        """Count sends made elsewhere (e.g. conversation replies) against this budget, without waiting."""
        self._next = max(self._next, self._clock() - self.catch_up_s) + count * self.interval

    def pause(self, seconds: float) -> None:
        until = self._clock() + seconds
        self.paused_until = max(self.paused_until, until)
        self._next = max(self._next, self.paused_until)


class RateLimiter:
    """The engine's whole budget: normal and paid pacers sharing one pause, plus per-chat spacing."""

    def __init__(
        self,
        rate: float = 30.0,
        paid_rate: float = 1000.0,
        *,
        headroom: float = 0.02,
        per_chat_interval: float = PER_CHAT_INTERVAL_S,
        group_interval: float = GROUP_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= headroom < 1:
            raise ValueError("headroom is a fraction in [0, 1)")
        self.normal = Pacer(rate * (1 - headroom), clock=clock)
        self.paid = Pacer(paid_rate * (1 - headroom), clock=clock)
        self.per_chat_interval = per_chat_interval
        self.group_interval = group_interval
        self._clock = clock
        self._chat_next: dict[int, float] = {}
        self.pauses = 0

    def _chat_delay(self, chat_id: int, interval: float | None = None) -> float:
        now = self._clock()
        if len(self._chat_next) > 50_000:  # forget chats whose spacing has long passed (bounded memory)
            self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        if interval is None:
            # negative chat ids are groups and channels
            interval = self.group_interval if chat_id < 0 else self.per_chat_interval
        slot = max(self._chat_next.get(chat_id, 0.0), now)
        self._chat_next[chat_id] = slot + interval
        return slot - now

    def hold(self, chat_id: int, seconds: float) -> None:
        """Someone else writes to `chat_id` now (a conversation's answer): our next send there waits `seconds`."""
        self._chat_next[chat_id] = max(self._chat_next.get(chat_id, 0.0), self._clock() + seconds)

    async def acquire(self, chat_id: int, *, paid: bool = False, interval: float | None = None) -> None:
        """Wait until one more message to `chat_id` fits every limit (`interval`: this chat's own spacing)."""
        delay = self._chat_delay(chat_id, interval)
        if delay > 0:
            await asyncio.sleep(delay)
        pacer = self.paid if paid else self.normal
        while True:
            wait = pacer.reserve()
            if wait > 0:
                await asyncio.sleep(wait)
            # a 429 seen by another send while we slept: wait for the pause and take a fresh slot
            if pacer.paused_until <= self._clock():
                return

    def pause(self, seconds: float) -> None:
        """Telegram said 429 retry_after: nobody sends until it has passed."""
        self.pauses += 1
        self.normal.pause(seconds)
        self.paid.pause(seconds)
