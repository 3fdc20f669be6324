"""The bot's scheduler: APScheduler 3's AsyncIOScheduler, with a shutdown that lets the runs in flight finish.

APScheduler 3's AsyncIOExecutor cancels every running coroutine job on shutdown, whatever `wait` says (its
source: "There is no way to honor wait=True without converting this method into a coroutine method"). A job
cancelled mid-way can be cut between a send and the write that records it: a reminder delivered but left
`sending` (later `unknown`), a dossier change announced but not recorded (announced again), a reply from the
outage spool sent twice. `aclose()` stops new runs, waits up to a grace period for the runs in flight, and only
then shuts the scheduler down; a run still going after that (a hung connection) is cancelled, and each job's
lease recovers its rows.

Written here rather than taken from a library: APScheduler 4 has an async `stop()`, but it is a different API
still in pre-release, and the other schedulers for asyncio do not keep APScheduler 3's interval jobs with
`max_instances` and `coalesce`, which the jobs rely on.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.util import iscoroutinefunction_partial

log = structlog.get_logger(__name__)


class DrainingScheduler(AsyncIOScheduler):
    """An AsyncIOScheduler whose coroutine jobs are tracked while they run, so `aclose()` can wait for them."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._in_flight: set[asyncio.Task[Any]] = set()

    def add_job(self, func: Any, *args: Any, **kwargs: Any) -> Job:
        if callable(func) and iscoroutinefunction_partial(func):
            func = self._tracked(func)
        return super().add_job(func, *args, **kwargs)

    def _tracked(self, func: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
        @functools.wraps(func)
        async def run(*args: Any, **kwargs: Any) -> Any:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            try:
                return await func(*args, **kwargs)
            finally:
                if task is not None:
                    self._in_flight.discard(task)

        return run

    @property
    def in_flight(self) -> int:
        """How many job runs are going now."""
        return len(self._in_flight)

    def stop_starting(self) -> None:
        """No new runs from now on; the runs in flight go on (the first step of a shutdown)."""
        if self.running:
            self.pause()

    async def aclose(self, grace_s: float = 10.0) -> int:
        """Stop new runs, wait up to `grace_s` for the runs in flight, then shut down. Returns how many runs were
        still going at the deadline (they are cancelled)."""
        if not self.running:
            return 0
        self.stop_starting()
        pending: set[asyncio.Task[Any]] = set(self._in_flight)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        if pending:
            names = sorted(t.get_name() for t in pending)
            log.warning("scheduler_close_timeout", grace_s=grace_s, cancelled=len(pending), tasks=names[:10])
        self.shutdown(wait=False)  # AsyncIOScheduler runs it at the loop's next turn; it cancels what still runs
        await asyncio.sleep(0)
        if pending:
            await asyncio.wait(pending, timeout=1.0)  # let the cancelled runs unwind (their `finally` blocks)
        return len(pending)


__all__ = ["DrainingScheduler"]
