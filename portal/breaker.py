"""A circuit breaker, so that a dead portal costs the citizen one quick answer instead of a long wait."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class State(enum.Enum):
    CLOSED = "closed"  # calls go through; consecutive failures are counted
    OPEN = "open"  # calls fail at once until the cool-down has passed
    HALF_OPEN = "half_open"  # one probe call is let through; its outcome closes or re-opens the breaker


class CircuitBreaker:
    """Closed → open after `failure_threshold` consecutive failures → half-open after `reset_timeout_s`.

    The state is per process on purpose: it describes what this process sees of the portal right now.
    Callers ask `allow()` before each attempt and report `success()`, `failure()` or `abandon()` after it.
    """

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout_s: float = 30.0,
        *,
        name: str = "portal",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout_s > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.name = name
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
            return State.HALF_OPEN
        return self._state

    def retry_in(self) -> float:
        """Seconds until a probe will be let through (0 when calls may go now)."""
        if self._state is not State.OPEN:
            return 0.0
        return max(0.0, self.reset_timeout_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May one attempt go to the remote service now? In half-open, only one probe at a time."""
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.OPEN:
            return False
        if self._probe_in_flight:
            return False
        self._state = State.HALF_OPEN
        self._probe_in_flight = True
        log.info("breaker_half_open", breaker=self.name)
        return True

    def success(self) -> None:
        if self._state is not State.CLOSED:
            log.info("breaker_closed", breaker=self.name)
        self._state = State.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    def failure(self) -> None:
        self._failures += 1
        if self._state is State.HALF_OPEN or self._failures >= self.failure_threshold:
            if self._state is not State.OPEN:
                log.warning("breaker_opened", breaker=self.name, failures=self._failures)
            self._state = State.OPEN
            self._opened_at = self._clock()
        self._probe_in_flight = False

    def abandon(self) -> None:
        """The attempt ended without telling us anything (e.g. cancelled): free the probe slot."""
        self._probe_in_flight = False
