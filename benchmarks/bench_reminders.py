"""Reminders at scale: hand-off delay of a due reminder, RSS and start-up of the bot with 100,000 pending ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from sqlalchemy import insert

from benchmarks.common import BotProcess, RssSampler, database, note, percentile, quiet, scale, start_emulator
from reminders import create_reminder
from reminders.store import _row_values
from sandbox.telegram.server import TelegramEmulator
from store.base import utcnow
from store.db import make_engine, make_sessionmaker, migrate
from store.models import User
from store.models_reminders import SOURCE_CITIZEN, Reminder

NAME = "reminders"
BACKLOG_USERS = 20_000  # 5 pending reminders each (the per-citizen cap is 20)
HANDOFF_FIRST_UID = 900_000_000
SETTLE_S = 3.0


async def _bulk_backlog(db_url: str, rows: int) -> None:
    """`rows` pending reminders due in 30–60 days, inserted in chunks (what a year of use leaves behind)."""
    engine = make_engine(db_url)
    now = utcnow()
    users = min(BACKLOG_USERS, rows)
    try:
        async with engine.begin() as conn:
            for lo in range(0, users, 5000):
                await conn.execute(
                    insert(User),
                    [{"id": u, "chat_id": u, "lang": "vi"} for u in range(1 + lo, 1 + min(users, lo + 5000))],
                )
            for lo in range(0, rows, 5000):
                chunk = [
                    _row_values(
                        1 + i % users,
                        now + dt.timedelta(days=30, seconds=i * 26),
                        "citizen",
                        None,
                        None,
                        now=now,
                        task="nộp hồ sơ gia hạn tạm trú",
                        source=SOURCE_CITIZEN,
                    )
                    for i in range(lo, min(rows, lo + 5000))
                ]
                await conn.execute(insert(Reminder), chunk)
    finally:
        await engine.dispose()


async def _handoff(emulator: TelegramEmulator, db_url: str, count: int, spread_s: float, first_uid: int) -> list[float]:
    """Schedule `count` reminders (one per citizen) due over the next `spread_s` s; return each one's delay
    from due time to the emulator receiving the bot's sendMessage, in seconds."""
    state = emulator.bot()
    uids = list(range(first_uid, first_uid + count))
    for uid in uids:
        state.create_user(uid, first_name="Dân", language_code="vi")
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    start = utcnow() + dt.timedelta(seconds=2)
    due: dict[int, float] = {}
    try:
        async with sessions() as session, session.begin():
            for i, uid in enumerate(uids):
                session.add(User(id=uid, chat_id=uid, lang="vi"))
                at = start + dt.timedelta(seconds=spread_s * i / count)
                due[uid] = at.timestamp()
            await session.flush()
            for uid in uids:
                at = dt.datetime.fromtimestamp(due[uid], dt.UTC)
                await create_reminder(session, uid, at, "citizen", None, task="nộp lệ phí", cap=None)
    finally:
        await engine.dispose()
    deadline = time.monotonic() + spread_s + 30
    delays: dict[int, float] = {}
    while len(delays) < count and time.monotonic() < deadline:
        for uid in uids:
            if uid in delays:
                continue
            chat = state.chats[uid]
            got = [m.received_at for m in chat.messages.values() if m.sender_id == state.info.id]
            if got:
                delays[uid] = min(got) - due[uid]
        await asyncio.sleep(0.05)
    if len(delays) < count:
        note(NAME, f"only {len(delays)} of {count} reminders arrived within {spread_s + 30:.0f} s")
    return list(delays.values())


async def _phase(
    label: str, emulator: TelegramEmulator, db_url: str, count: int, spread_s: float, uid: int
) -> tuple[float, float, list[float]]:
    bot = BotProcess(emulator, db_url, f"{NAME}-{label}", REMINDER_TICK_S="1.0")
    startup = await bot.start()
    note(NAME, f"{label}: bot started in {startup:.2f} s")
    try:
        with RssSampler(bot.pid) as rss:
            await asyncio.sleep(SETTLE_S)
            delays = await _handoff(emulator, db_url, count, spread_s, uid)
            await asyncio.sleep(1)
        note(NAME, f"{label}: peak RSS {rss.peak:.1f} MB, hand-off p99 {percentile(delays, 99):.3f} s")
        return startup, rss.peak, delays
    finally:
        await bot.astop()


async def run() -> dict[str, float]:
    quiet()
    backlog = int(scale(100_000, 100_000))
    count = int(scale(300, 60))
    spread_s = scale(30.0, 10.0)
    emulator = await start_emulator()
    try:
        async with database("reminders-empty") as empty_url:
            await migrate(empty_url)
            startup_empty, rss_empty, _ = await _phase("empty", emulator, empty_url, count, spread_s, HANDOFF_FIRST_UID)
        async with database("reminders-full") as url:
            await migrate(url)
            t0 = time.monotonic()
            await _bulk_backlog(url, backlog)
            note(NAME, f"{backlog} pending reminders inserted in {time.monotonic() - t0:.1f} s")
            startup, rss_full, delays = await _phase(
                "backlog", emulator, url, count, spread_s, HANDOFF_FIRST_UID + count
            )
    finally:
        await emulator.stop()
    return {
        "reminder_handoff_p50_s": round(percentile(delays, 50), 3),
        "reminder_handoff_p99_s": round(percentile(delays, 99), 3),
        "reminder_rss_growth_mb": round(rss_full - rss_empty, 1),
        "reminder_rss_mb": round(rss_full, 1),
        "bot_startup_s": round(startup, 2),
        "bot_startup_empty_s": round(startup_empty, 2),
    }
