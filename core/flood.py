"""Per-user flood control: a sliding one-minute window of message times."""

from __future__ import annotations

import time
from collections import deque


class FloodGuard:
    """More than `per_minute` messages from one user in a minute are refused (not sent to NLU or the portal).

    Kept in process memory on purpose: it protects this process's NLU and portal budget, and a second replica
    guarding its own share is the right behaviour, not a loss.
    """

    def __init__(self, per_minute: int = 20, window_s: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window_s = window_s
        self._seen: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}

    def check(self, user_id: int, now: float | None = None) -> str:
        """'ok', 'warn' (first refusal in this window: tell the user) or 'drop' (refuse silently)."""
        now = time.monotonic() if now is None else now
        q = self._seen.setdefault(user_id, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        if len(q) >= self.per_minute:
            if now - self._warned.get(user_id, -1e9) > self.window_s:
                self._warned[user_id] = now
                return "warn"
            return "drop"
        q.append(now)
        if len(self._seen) > 10_000:
            self._forget_idle(now)
        return "ok"

    def _forget_idle(self, now: float) -> None:
        for uid in [u for u, q in self._seen.items() if not q or now - q[-1] > self.window_s]:
            del self._seen[uid]
            self._warned.pop(uid, None)
