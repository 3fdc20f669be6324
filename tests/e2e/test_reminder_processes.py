"""Real OS processes against one database and the Telegram emulator: two bot processes deliver every reminder
exactly once; a process killed with -9 mid-way and a fresh one started after it deliver the rest without a
duplicate. The emulator's record of what each citizen received is the judge. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import store.models_reminders  # noqa: F401  (registers the tables on Base.metadata)
from reminders import create_reminder
from sandbox.telegram import DEFAULT_TOKEN, SandboxClient, TelegramEmulator
from store.base import Base, utcnow
from store.db import make_engine, make_sessionmaker
from store.models import User
from store.models_reminders import CLAIMED, PENDING, SENDING, SENT, UNKNOWN, Reminder

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "support" / "reminders_worker.py"
FIRST_USER = 70_000


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator() as emulator:
        yield emulator


@pytest.fixture
async def sc(emu: TelegramEmulator) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(emu.base_url) as client:
        yield client


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    async with eng.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield eng
    await eng.dispose()


async def seed(
    sessions: async_sessionmaker[AsyncSession], sc: SandboxClient, users: int, per_user: int, spread_s: float
) -> dict[str, int]:
    """`users` citizens with `per_user` reminders each, due over the next `spread_s` seconds; task -> id."""
    await sc.users_bulk(FIRST_USER, users)
    start = utcnow() + dt.timedelta(seconds=1)
    tasks: dict[str, int] = {}
    async with sessions() as session, session.begin():
        session.add_all(User(id=FIRST_USER + u, chat_id=FIRST_USER + u) for u in range(users))
        await session.flush()
        n = users * per_user
        for i in range(n):
            uid = FIRST_USER + i % users
            due = start + dt.timedelta(seconds=spread_s * i / n)
            task = f"việc số {i}"
            row = await create_reminder(session, uid, due, "citizen", None, task=task, cap=None)
            tasks[task] = row.id
    return tasks


async def received(sc: SandboxClient, users: int) -> Counter[str]:
    """How many times each task reached its citizen, from the emulator's records."""
    seen: Counter[str] = Counter()
    for u in range(users):
        record = await sc.chat_record(FIRST_USER + u)
        for message in record["messages"]:
            seen[message["text"].split("\n", 1)[1]] += 1
    return seen


async def spawn(db_url: str, emu: TelegramEmulator, *extra: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "--database-url",
        db_url,
        "--api-url",
        emu.api_url,
        "--token",
        DEFAULT_TOKEN,
        *extra,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    assert line.startswith(b"ready"), f"worker did not start: {line!r}"
    return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.2)


async def count_states(sessions: async_sessionmaker[AsyncSession]) -> Counter[str]:
    async with sessions() as session:
        rows = (await session.execute(select(Reminder.state, func.count()).group_by(Reminder.state))).tuples()
        return Counter(dict(rows.all()))


async def test_two_processes_deliver_every_reminder_exactly_once(
    db_url: str, engine: AsyncEngine, emu: TelegramEmulator, sc: SandboxClient
) -> None:
    sessions = make_sessionmaker(engine)
    users, per_user = 30, 4
    # Both processes tick before the first reminder falls due (on a loaded machine starting one takes seconds),
    # so they race for the same rows from the first one on.
    workers = [
        await spawn(db_url, emu, "--batch", "5", "--concurrency", "3", "--backoff", "1"),
        await spawn(db_url, emu, "--batch", "5", "--concurrency", "3", "--backoff", "1"),
    ]
    tasks = await seed(sessions, sc, users, per_user, spread_s=3.0)
    # Telegram's flood limits stay on (429s are retried), and each send takes a little while, so both
    # processes are busy at the same moments.
    await sc.faults("sendMessage", count=len(tasks), delay=0.02)
    try:

        async def all_sent() -> bool:
            return (await count_states(sessions))[SENT] == len(tasks)

        await wait_until(all_sent, timeout=90)
    finally:
        for w in workers:
            await stop(w)
    seen = await received(sc, users)
    assert seen == Counter(dict.fromkeys(tasks, 1))
    async with sessions() as session:
        by = (await session.execute(select(Reminder.claimed_by).distinct())).scalars().all()
    assert len(set(by)) == 2, "both processes should have delivered some reminders"


async def test_killed_process_then_restart_delivers_the_rest_without_duplicates(
    db_url: str, engine: AsyncEngine, emu: TelegramEmulator, sc: SandboxClient
) -> None:
    sessions = make_sessionmaker(engine)
    users, per_user = 40, 3
    tasks = await seed(sessions, sc, users, per_user, spread_s=0.5)
    await sc.rates(enabled=False)
    await sc.faults("sendMessage", count=len(tasks), delay=0.05)  # slow sends: the kill lands mid-way
    concurrency = 4
    first = await spawn(db_url, emu, "--batch", "50", "--concurrency", str(concurrency), "--lease", "2")
    await sc.wait_counter("messages_sent", 30, timeout=60)
    first.kill()  # SIGKILL: no cleanup, rows stay claimed or sending
    await first.wait()
    after_kill = await count_states(sessions)
    assert after_kill[SENT] < len(tasks)
    assert after_kill[PENDING] + after_kill[CLAIMED] + after_kill[SENDING] > 0, after_kill

    second = await spawn(db_url, emu, "--lease", "2")
    try:

        async def settled() -> bool:
            st = await count_states(sessions)
            return st[PENDING] + st[CLAIMED] + st[SENDING] == 0

        await wait_until(settled, timeout=60)
    finally:
        await stop(second)
    final = await count_states(sessions)
    seen = await received(sc, users)
    assert set(final) <= {SENT, UNKNOWN}, final
    assert final[UNKNOWN] <= concurrency  # only what was in flight at the kill has an unknown outcome
    assert max(seen.values()) == 1  # nothing delivered twice
    async with sessions() as session:
        states = dict((await session.execute(select(Reminder.id, Reminder.state))).tuples().all())
    for task, rid in tasks.items():
        if states[rid] == SENT:
            assert seen[task] == 1, task  # every reminder marked sent reached its citizen exactly once
    assert sum(seen.values()) >= len(tasks) - concurrency  # nothing lost but the in-flight ones


async def test_stopped_process_finishes_its_sends_and_hands_back_the_rest(
    db_url: str, engine: AsyncEngine, emu: TelegramEmulator, sc: SandboxClient
) -> None:
    """SIGTERM mid-way (a deploy, a restart): the sends in flight finish and are recorded, nothing is left
    `claimed` or `sending` for the lease, and the next process sends the rest at once, each exactly once."""
    sessions = make_sessionmaker(engine)
    users, per_user = 20, 3
    tasks = await seed(sessions, sc, users, per_user, spread_s=0.5)
    await sc.rates(enabled=False)
    await sc.faults("sendMessage", count=len(tasks), delay=0.3)  # slow sends: the stop lands during some
    first = await spawn(db_url, emu, "--batch", "50", "--concurrency", "4")
    await sc.wait_counter("messages_sent", 8, timeout=60)
    await stop(first)
    assert first.returncode == 0
    after_stop = await count_states(sessions)
    assert after_stop[CLAIMED] + after_stop[SENDING] + after_stop[UNKNOWN] == 0, after_stop
    assert after_stop[SENT] + after_stop[PENDING] == len(tasks) and after_stop[PENDING] > 0, after_stop
    seen = await received(sc, users)
    assert sum(seen.values()) == after_stop[SENT] and max(seen.values()) == 1  # what is `sent` was received once

    # The lease is 120 s: finishing well within it shows the rows were handed back, not recovered.
    second = await spawn(db_url, emu)
    try:

        async def all_sent() -> bool:
            return (await count_states(sessions))[SENT] == len(tasks)

        await wait_until(all_sent, timeout=45)
    finally:
        await stop(second)
    assert await received(sc, users) == Counter(dict.fromkeys(tasks, 1))
