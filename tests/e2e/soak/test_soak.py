"""Soak: 200 simulated citizens chatting with the real bot, Rasa and the emulators for SOAK_MINUTES (default 30),
with a broadcast, reminders firing and a portal fault window; memory (RSS) and open file descriptors are sampled
and must stay flat. `SOAK_MINUTES=2 make test-long` is the smoke run."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from nlu.server import RasaServer, free_port
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient, SandboxTimeout
from store.db import unit_of_work
from store.models import User
from store.models_news import QUEUED, SENT, Broadcast, Delivery, NewsSubscription
from store.models_reminders import PENDING, SOURCE_CITIZEN, Reminder
from tests.support.base import BOT_TOKEN
from tests.support.bots import BotRunner, portal_settings
from tests.support.logscan import LogBuffer

CITIZENS = 200
FIRST_ID = 20_000
CONCURRENCY = 16
PHRASES = [
    "lệ phí làm hộ chiếu",
    "kich hoat vneid",
    "không nhận được mã OTP",
    "đăng ký thường trú cần giấy tờ gì",
    "tra cứu hồ sơ 000.00.12.H22-240101-0003",
    "xin chào",
    "cảm ơn",
    "qwzx plorf",
    "/menu",
    "/help",
]


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def remote_tg() -> AsyncIterator[str]:
    """The Telegram emulator in its own process: its message history grows with the soak, and must not be
    counted as the bot's memory."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.telegram",
        "--port",
        str(port),
        "--token",
        BOT_TOKEN,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with SandboxClient(url) as probe:
            for _ in range(100):
                try:
                    await probe.health()
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)


SOAK_MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))


@pytest.mark.slow
@pytest.mark.timeout(int(SOAK_MINUTES * 60) + 600)  # the suite's 300 s per test would cut the soak short
async def test_soak(remote_tg: str, rasa: RasaServer, portal: PortalEmulator, db_url: str, log_scan: LogBuffer) -> None:
    duration = SOAK_MINUTES * 60
    sandbox = SandboxClient(remote_tg)
    bots = BotRunner(remote_tg)
    try:
        await _soak(sandbox, bots, rasa, portal, db_url, duration, log_scan)
    finally:
        await bots.stop_all()
        await sandbox.aclose()


async def _soak(
    sandbox: SandboxClient,
    bots: BotRunner,
    rasa: RasaServer,
    portal: PortalEmulator,
    db_url: str,
    duration: float,
    log_scan: LogBuffer,
) -> None:
    runtime = await bots.start(
        db_url, rasa_url=rasa.url, portal_poll_interval_s=30.0, portal_poll_run_s=1.0, **portal_settings(portal)
    )
    await sandbox.users_bulk(FIRST_ID, CITIZENS, first_name="Dân")
    citizens = [sandbox.sim_user(FIRST_ID + i, "Dân") for i in range(CITIZENS)]
    rng = random.Random(6)
    start = time.monotonic()
    samples: list[tuple[float, int, int]] = []
    stats = {"sent": 0, "answered": 0, "unanswered": 0}
    stop = asyncio.Event()
    troubles: list[str] = []  # error lines logged during the soak, printed at the end

    async def chat(worker: int) -> None:
        while not stop.is_set():
            user = citizens[rng.randrange(CITIZENS)]
            phrase = rng.choice(PHRASES)
            if phrase.startswith("/"):
                await user.command(phrase[1:])
            else:
                await user.send(phrase)
            stats["sent"] += 1
            try:
                await user.wait_for(count=1, timeout=30)
                stats["answered"] += 1
                user._inbox.clear()  # the simulated citizen's history is the test's memory, not the bot's
            except SandboxTimeout:
                stats["unanswered"] += 1
            await asyncio.sleep(rng.uniform(0.5, 2.0))  # a person reads the answer before writing again

    async def sample() -> None:
        while not stop.is_set():
            portal.reset_stats()  # the portal emulator runs in this process: keep its request log short
            log_scan.check()  # no PII, secret or failed update so far; then forget the lines
            troubles.extend(line for line in log_scan.since_mark() if '"level": "error"' in line)
            log_scan.truncate()
            samples.append((time.monotonic() - start, rss_kib(), open_fds()))
            print(
                f"[soak] t={samples[-1][0]:6.0f}s rss={samples[-1][1] / 1024:7.1f} MiB fds={samples[-1][2]}", flush=True
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(5.0, duration / 30))

    async def events() -> None:
        # a third of the way: a broadcast to every citizen, and reminders due over the next minute
        await asyncio.sleep(duration / 3)
        now = dt.datetime.now(dt.UTC)
        async with unit_of_work(runtime.sessions) as s:
            s.add(Broadcast(created_by=1, status=QUEUED, step="done", text="<b>Thông báo</b>: soak"))
            for i in range(50):
                at = now + dt.timedelta(seconds=rng.uniform(1, 60))
                s.add(
                    Reminder(
                        user_id=FIRST_ID + i,
                        source=SOURCE_CITIZEN,
                        kind="citizen",
                        task="đi nộp hồ sơ",
                        remind_at=at,
                        due_at=at,
                        group_key=f"soak:{i}",
                        state=PENDING,
                    )
                )
        # half way: the portal fails for a while
        await asyncio.sleep(duration / 6)
        portal.fail(503, count=None)
        await asyncio.sleep(min(60.0, duration / 10))
        portal.clear_faults()

    # Every citizen has subscribed to announcements (made here, before anyone chats, so the bot and the test never
    # insert the same user row at once).
    async with unit_of_work(runtime.sessions) as s:
        for uid in range(FIRST_ID, FIRST_ID + CITIZENS):
            s.add(User(id=uid, chat_id=uid, lang="vi"))
        await s.flush()
        for uid in range(FIRST_ID, FIRST_ID + CITIZENS):
            s.add(NewsSubscription(user_id=uid))
    workers = [asyncio.create_task(chat(i)) for i in range(CONCURRENCY)]
    background = [asyncio.create_task(sample()), asyncio.create_task(events())]
    await asyncio.sleep(duration)
    stop.set()
    await asyncio.gather(*workers, *background)
    elapsed = time.monotonic() - start

    async with unit_of_work(runtime.sessions) as s:
        rows = (await s.execute(select(Delivery.state, func.count()).group_by(Delivery.state))).all()
        by_state: dict[str, int] = {state: count for state, count in rows}
        errors = (await s.scalars(select(Delivery.error).where(Delivery.state != SENT))).all()
        delivered = by_state.get(SENT, 0)
        reminders_left = await s.scalar(
            select(func.count())
            .select_from(Reminder)
            .where(Reminder.state == PENDING, Reminder.source == SOURCE_CITIZEN)
        )
    print(
        f"[soak] {elapsed / 60:.1f} min, {stats['sent']} messages, {stats['answered']} answered, "
        f"{stats['unanswered']} unanswered, {delivered} broadcast deliveries, {reminders_left} reminders pending"
    )
    for line in troubles[:10]:
        print(f"[soak] error logged: {line[:300]}")
    assert stats["unanswered"] <= stats["sent"] * 0.01
    assert delivered == CITIZENS, (by_state, errors[:5])
    assert reminders_left == 0
    # Flat: after the first quarter (imports, caches, pools warming up) memory and descriptors stop growing.
    steady = [s for s in samples if s[0] >= duration / 4]
    assert len(steady) >= 4, samples
    half = len(steady) // 2
    rss_early = statistics.mean(s[1] for s in steady[:half])
    rss_late = statistics.mean(s[1] for s in steady[half:])
    fds_early = max(s[2] for s in steady[:half])
    fds_late = max(s[2] for s in steady[half:])
    print(f"[soak] rss {rss_early / 1024:.1f} → {rss_late / 1024:.1f} MiB, fds {fds_early} → {fds_late}")
    assert rss_late <= rss_early * 1.10 + 20 * 1024, "memory keeps growing"
    assert fds_late <= fds_early + 20, "file descriptors leak"
