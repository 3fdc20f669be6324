"""The bot's scheduler lets a job run in flight finish on shutdown, where APScheduler 3's own shutdown cancels it."""

from __future__ import annotations

import asyncio

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.scheduler import DrainingScheduler


class Job:
    """A job that writes two halves, as a send and the write that records it, with a pause between them."""

    def __init__(self, pause_s: float) -> None:
        self.pause_s = pause_s
        self.started = asyncio.Event()
        self.halves: list[str] = []
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        self.halves.append("sent")
        self.started.set()
        await asyncio.sleep(self.pause_s)
        self.halves.append("recorded")


async def test_apscheduler_3_cancels_a_run_in_flight_on_shutdown() -> None:
    """Why core/scheduler.py exists: if a release of APScheduler stops doing this, the wrapper can go."""
    job = Job(0.3)
    scheduler = AsyncIOScheduler()
    scheduler.add_job(job.run, "interval", seconds=0.05, max_instances=1)
    scheduler.start()
    await asyncio.wait_for(job.started.wait(), timeout=5)
    scheduler.shutdown(wait=True)
    await asyncio.sleep(0.5)
    assert job.halves == ["sent"]


async def test_a_run_in_flight_finishes_and_no_new_run_starts() -> None:
    job = Job(0.3)
    scheduler = DrainingScheduler()
    scheduler.add_job(job.run, "interval", seconds=0.05, max_instances=1)
    scheduler.start()
    await asyncio.wait_for(job.started.wait(), timeout=5)
    assert scheduler.in_flight == 1
    assert await scheduler.aclose(grace_s=5) == 0
    assert job.halves == ["sent", "recorded"] and job.runs == 1
    assert not scheduler.running and scheduler.in_flight == 0
    await asyncio.sleep(0.2)
    assert job.runs == 1


async def test_a_run_hung_past_the_grace_period_is_cancelled() -> None:
    job = Job(3600)
    scheduler = DrainingScheduler()
    scheduler.add_job(job.run, "interval", seconds=0.05, max_instances=1)
    scheduler.start()
    await asyncio.wait_for(job.started.wait(), timeout=5)
    assert await asyncio.wait_for(scheduler.aclose(grace_s=0.1), timeout=5) == 1
    await asyncio.sleep(0)
    assert job.halves == ["sent"] and not scheduler.running


async def test_closing_a_scheduler_that_never_started_is_a_no_op() -> None:
    scheduler = DrainingScheduler()
    scheduler.stop_starting()
    assert await scheduler.aclose() == 0
