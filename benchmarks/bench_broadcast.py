"""Broadcasts through `python -m bot` and the emulator: rate against the limit, 429s, replies meanwhile, paid mode."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import insert

from benchmarks.common import (
    BotProcess,
    RssSampler,
    database,
    note,
    percentile,
    print_profile,
    quiet,
    scale,
    start_emulator,
)
from sandbox.telegram.server import TelegramEmulator
from sandbox.telegram.world import BotState
from store.db import make_engine, make_sessionmaker, migrate
from store.models import User
from store.models_news import QUEUED, Broadcast, NewsSubscription

NAME = "broadcast"
STAFF = 42
CHATTERS = 5
CHATTER_FIRST_UID = 800_000_000
GAP_S = 3.5
TEXT = "<b>Thông báo</b>: làm căn cước lưu động tại UBND phường, 8:00 thứ Bảy."


async def _subscribers(db_url: str, state: BotState, count: int) -> list[int]:
    uids = list(range(1, count + 1))
    for uid in uids:
        state.create_user(uid, first_name="Dân", language_code="vi")
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            for lo in range(0, count, 5000):
                part = uids[lo : lo + 5000]
                await conn.execute(insert(User), [{"id": u, "chat_id": u, "lang": "vi"} for u in part])
                await conn.execute(insert(NewsSubscription), [{"user_id": u} for u in part])
    finally:
        await engine.dispose()
    return uids


async def _queue(db_url: str, paid: bool) -> int:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            b = Broadcast(created_by=STAFF, status=QUEUED, step="done", text=TEXT, paid=paid)
            s.add(b)
            await s.flush()
            return b.id
    finally:
        await engine.dispose()


def _arrivals(state: BotState, uids: list[int], *, every: bool = False) -> list[float]:
    """When the emulator received the bot's message in each subscriber's chat (those that got one); with `every`,
    all the bot's messages in those chats."""
    out: list[float] = []
    for uid in uids:
        got = [m.received_at for m in state.chats[uid].messages.values() if m.sender_id == state.info.id]
        if every:
            out += got
        elif got:
            out.append(min(got))
    return sorted(out)


async def _wait_delivered(state: BotState, uids: list[int], limit_s: float) -> list[float]:
    """Wait until every subscriber has a message from the bot; their arrival times. Progress is read from the
    emulator's message counter (scanning 100,000 chats twice a second would cost the emulator, in this process,
    a good share of the CPU it needs to keep up with the bot), the chats once at the end."""
    start = state.counters["messages_sent"]
    deadline = time.monotonic() + limit_s
    last_note = time.monotonic()
    while time.monotonic() < deadline:
        if state.counters["messages_sent"] - start >= len(uids) and len(_arrivals(state, uids)) >= len(uids):
            break
        if time.monotonic() - last_note > 10:
            last_note = time.monotonic()
            note(NAME, f"{state.counters['messages_sent'] - start}/{len(uids)} sent")
        await asyncio.sleep(0.2)
    got = _arrivals(state, uids)
    if len(got) < len(uids):
        note(NAME, f"only {len(got)} of {len(uids)} delivered within {limit_s:.0f} s")
    return got


def _rate(arrivals: list[float]) -> float:
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0


async def _chat(state: BotState, uid: int, stop: asyncio.Event, latencies: list[float]) -> None:
    """A citizen using the menu while the broadcast runs: a command, or a button of the last answer."""
    chat = state.chats[uid]
    n = 0
    while not stop.is_set():
        cursor = chat.cursor
        rec, _c, _u = state.user_message(uid, None, text="/menu" if n % 2 == 0 else "/help")
        n += 1
        await state.wait_chat(chat, cursor + 1, 10.0)
        if chat.cursor > cursor:
            events, _ = state.events_after(chat, cursor)
            latencies.append(float(events[0]["received_at"]) - rec.received_at)
        else:
            latencies.append(10.0)
        await asyncio.sleep(GAP_S)


async def _standard(emulator: TelegramEmulator) -> dict[str, float]:
    recipients = int(scale(3_000, 600))
    state = emulator.bot()
    chatters = list(range(CHATTER_FIRST_UID, CHATTER_FIRST_UID + CHATTERS))
    for uid in chatters:
        state.create_user(uid, first_name="Hỏi", language_code="vi")
    async with database(f"{NAME}-standard") as url:
        await migrate(url)
        uids = await _subscribers(url, state, recipients)
        bot = BotProcess(emulator, url, f"{NAME}-standard")
        await bot.start()
        try:
            latencies: list[float] = []
            stop = asyncio.Event()
            talk = [asyncio.create_task(_chat(state, uid, stop, latencies)) for uid in chatters]
            before_429 = state.statuses.get(429, 0)
            note(NAME, f"broadcast to {recipients} at the standard limit of 30 msg/s, {CHATTERS} citizens chatting")
            await _queue(url, paid=False)
            t0 = time.monotonic()
            got = await _wait_delivered(state, uids, recipients / 30 * 2 + 60)
            stop.set()
            await asyncio.gather(*talk)
            count_429 = state.statuses.get(429, 0) - before_429
        finally:
            await bot.astop()
    rate = _rate(got)
    # Telegram's 30 msg/s is for everything the bot sends, so the replies to the citizens chatting meanwhile share
    # it with the broadcast (the engine counts them): the ratio is the bot's whole send rate over the broadcast.
    replies = _arrivals(state, chatters, every=True)
    during = [t for t in replies if got and got[0] <= t <= got[-1]]
    total = (len(got) + len(during) - 1) / (got[-1] - got[0]) if len(got) > 1 else 0.0
    note(
        NAME,
        f"{len(got)} delivered in {time.monotonic() - t0:.0f} s, broadcast {rate:.2f} msg/s + replies "
        f"{len(during)} = {total:.2f} msg/s, {count_429} × 429, "
        f"reply p99 {percentile(latencies, 99):.3f} s over {len(latencies)} replies",
    )
    return {
        "broadcast_rate_ratio": round(total / 30.0, 3),
        "broadcast_only_rate_ratio": round(rate / 30.0, 3),
        "broadcast_429_count": float(count_429),
        "reply_during_broadcast_p99_s": round(percentile(latencies, 99), 3),
        "broadcast_delivered_ratio": round(len(got) / recipients, 4),
    }


async def _paid(emulator: TelegramEmulator) -> dict[str, float]:
    recipients = int(scale(100_000, 10_000))
    state = emulator.bot()
    async with database(f"{NAME}-paid") as url:
        await migrate(url)
        t0 = time.monotonic()
        uids = await _subscribers(url, state, recipients)
        note(NAME, f"{recipients} subscribers created in {time.monotonic() - t0:.0f} s")
        bot = BotProcess(emulator, url, f"{NAME}-paid")
        await bot.start()
        try:
            with RssSampler(bot.pid) as rss:
                note(NAME, f"paid broadcast to {recipients} (limit 1000 msg/s)")
                await _queue(url, paid=True)
                got = await _wait_delivered(state, uids, recipients / 200 + 60)
        finally:
            await bot.astop()
        print_profile(NAME, bot.profile)
    rate = _rate(got)
    note(NAME, f"paid: {len(got)} delivered, {rate:.0f} msg/s, peak RSS {rss.peak:.0f} MB")
    return {
        "broadcast_paid_msgs_per_s": round(rate, 1),
        "broadcast_rss_mb": round(rss.peak, 1),
    }


async def run() -> dict[str, float]:
    quiet()
    emulator = await start_emulator()
    try:
        figures = await _standard(emulator)
        await emulator.reset()
        figures.update(await _paid(emulator))
    finally:
        await emulator.stop()
    return figures
