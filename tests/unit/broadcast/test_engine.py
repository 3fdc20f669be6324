"""The delivery engine against the Telegram emulator: targeting, blocked users, 429 storms, reports, recovery."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.sender import TelegramSender
from broadcast.engine import BroadcastEngine, Outcome
from broadcast.ratelimit import RateLimiter
from kernel.content import Content
from sandbox.telegram import BotInfo, SandboxClient, TelegramEmulator
from store.models import User
from store.models_news import (
    BLOCKED,
    DONE,
    PENDING,
    QUEUED,
    SENDING,
    SENT,
    UNKNOWN,
    Broadcast,
    Delivery,
)
from tests.support.broadcast import TOKEN, add_subscribers, make_bot, make_db

STAFF = 900001


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator({TOKEN: BotInfo(first_name="Trợ lý 06", username="tro_ly_06_bot")})
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def sc(emu: TelegramEmulator) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(emu.base_url) as client:
        yield client


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine, factory = await make_db(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    yield factory
    await engine.dispose()


@pytest.fixture
async def sender(emu: TelegramEmulator) -> AsyncIterator[TelegramSender]:
    bot = make_bot(emu.api_url)
    async with bot:
        yield TelegramSender(bot)


async def queue_broadcast(
    sessions: async_sessionmaker[AsyncSession],
    text: str = "<b>Thông báo</b>: làm căn cước lưu động tại UBND phường, 8:00 thứ Bảy.",
    areas: str = "",
    topics: str = "",
    report_chat: int | None = None,
) -> int:
    async with sessions() as s, s.begin():
        b = Broadcast(
            created_by=STAFF,
            status=QUEUED,
            step="done",
            text=text,
            areas=areas,
            topics=topics,
            report_chat_id=report_chat,
        )
        s.add(b)
        await s.flush()
        return b.id


async def states(sessions: async_sessionmaker[AsyncSession], bid: int) -> dict[int, str]:
    async with sessions() as s:
        rows = await s.execute(select(Delivery.user_id, Delivery.state).where(Delivery.broadcast_id == bid))
        return {uid: state for uid, state in rows.all()}


async def received(sc: SandboxClient, uid: int) -> list[dict[str, object]]:
    """What the emulator recorded in a citizen's chat (bot messages only)."""
    record = await sc.chat_record(uid)
    return [m for m in record["messages"] if m["from_bot"]]


async def test_sends_to_the_area_once_with_unsubscribe_button(
    sc: SandboxClient,
    sessions: async_sessionmaker[AsyncSession],
    sender: TelegramSender,
    content: Content,
) -> None:
    inside = list(range(1000, 1010))
    province = [1100, 1101]
    other_ward = [1200, 1201]
    elsewhere = list(range(1300, 1305))
    await sc.users_bulk(1000, 400)
    await add_subscribers(sessions, inside[:5], ("dong_nguyen",))
    await add_subscribers(sessions, inside[5:], ("tu_son", "dong_nguyen"))  # several units, one of them targeted
    await add_subscribers(sessions, province, ())
    await add_subscribers(sessions, other_ward, ("tu_son",))
    await add_subscribers(sessions, elsewhere, ("kinh_bac", "tam_son"))
    bid = await queue_broadcast(sessions, areas="dong_nguyen,phu_khe")

    engine = BroadcastEngine(sessions, sender, content)
    await engine.run_until_idle(bid)

    for uid in inside + province:
        msgs = await received(sc, uid)
        assert len(msgs) == 1, uid
        assert msgs[0]["text"] == "Thông báo: làm căn cước lưu động tại UBND phường, 8:00 thứ Bảy."
        buttons = msgs[0]["reply_markup"]["inline_keyboard"]  # type: ignore[index]
        assert buttons[0][0]["text"] == "🔕 Hủy nhận tin"
        assert buttons[0][0]["callback_data"] == "n_unsub"
    for uid in other_ward + elsewhere:
        assert await received(sc, uid) == []
    assert await states(sessions, bid) == dict.fromkeys(inside + province, SENT)
    async with sessions() as s:
        b = await s.get(Broadcast, bid)
        assert b is not None and b.status == DONE and b.total == 12


async def test_blocked_citizens_are_marked_and_skipped_next_time(
    sc: SandboxClient,
    sessions: async_sessionmaker[AsyncSession],
    sender: TelegramSender,
    content: Content,
) -> None:
    ids = list(range(2000, 2006))
    users = [await sc.user(uid, f"Dân {uid}") for uid in ids]
    await users[1].block()
    await users[4].block()
    await add_subscribers(sessions, ids)
    engine = BroadcastEngine(sessions, sender, content)

    first = await queue_broadcast(sessions)
    await engine.run_until_idle(first)
    assert await states(sessions, first) == {
        2000: SENT,
        2001: BLOCKED,
        2002: SENT,
        2003: SENT,
        2004: BLOCKED,
        2005: SENT,
    }
    async with sessions() as s:
        inactive = set((await s.execute(select(User.id).where(User.active.is_(False)))).scalars())
    assert inactive == {2001, 2004}
    forbidden_before = (await sc.stats())["counters"]["forbidden"]

    second = await queue_broadcast(sessions, text="Tin thứ hai")
    await engine.run_until_idle(second)
    assert await states(sessions, second) == dict.fromkeys([2000, 2002, 2003, 2005], SENT)
    assert (await sc.stats())["counters"]["forbidden"] == forbidden_before  # nobody blocked was tried again
    for uid in (2000, 2002, 2003, 2005):
        assert len(await received(sc, uid)) == 2


async def test_a_429_storm_is_absorbed_without_loss_or_duplicate(
    sc: SandboxClient,
    sessions: async_sessionmaker[AsyncSession],
    sender: TelegramSender,
    content: Content,
) -> None:
    ids = list(range(3000, 3060))
    await sc.users_bulk(3000, 60)
    await add_subscribers(sessions, ids)
    bid = await queue_broadcast(sessions)
    # injected 429s and 502s, and an engine configured at twice the emulator's real limit (so its buckets
    # answer 429 as well)
    await sc.rates(global_rate=15)
    await sc.faults("sendMessage", retry_after=1, count=2)
    await sc.faults("sendMessage", status=502, count=3)
    engine = BroadcastEngine(sessions, sender, content, rate=30.0, backoff_base_s=0.2)
    await engine.run_until_idle(bid)

    assert (await sc.stats())["counters"]["rate_limited"] >= 1  # the emulator's own buckets said 429 too
    assert engine.stats["flood_429"] >= 3
    assert engine.stats["retried"] >= 3
    assert await states(sessions, bid) == dict.fromkeys(ids, SENT)
    for uid in ids:
        assert len(await received(sc, uid)) == 1, uid


async def test_staff_sees_progress_edits_and_a_final_report(
    sc: SandboxClient,
    sessions: async_sessionmaker[AsyncSession],
    sender: TelegramSender,
    content: Content,
) -> None:
    staff = await sc.user(STAFF, "Cán bộ")
    ids = list(range(4000, 4075))
    await sc.users_bulk(4000, 75)
    await add_subscribers(sessions, [STAFF])  # the staff member's own users row (and a subscription)
    await add_subscribers(sessions, ids)
    bid = await queue_broadcast(sessions, report_chat=STAFF)
    # 15/s: about five seconds of sending, long enough for a progress edit between the staff chat's own
    # spacing (STAFF_INTERVAL_S) and the final one
    engine = BroadcastEngine(sessions, sender, content, rate=15.0, progress_every_s=0.5)
    await engine.run_until_idle(bid)

    msgs = await received(sc, staff.id)
    texts = [m["text"] for m in msgs]
    progress = [m for m in msgs if str(m["text"]).startswith(f"✅ Tin #{bid}") and m["edited"]]
    assert progress, texts  # the progress message, edited into the final report
    record = await sc.chat_record(staff.id)
    edits = [h["text"] for m in record["messages"] for h in m["history"]]
    assert any("đang gửi" in str(t) for t in edits)  # it showed progress before the end
    final = [t for t in texts if str(t).startswith(f"✅ Tin #{bid}")]
    assert len(final) == 2  # the edited progress message and the final report
    assert "Đã gửi: 76" in str(final[-1])  # 75 citizens + the staff member's own subscription
    assert engine.stats["progress_edits"] >= 2


async def test_rows_left_sending_by_a_dead_engine_become_unknown_and_are_not_resent(
    sc: SandboxClient,
    sessions: async_sessionmaker[AsyncSession],
    sender: TelegramSender,
    content: Content,
) -> None:
    ids = list(range(5000, 5010))
    await sc.users_bulk(5000, 10)
    await add_subscribers(sessions, ids)
    bid = await queue_broadcast(sessions)
    async with sessions() as s, s.begin():
        b = await s.get(Broadcast, bid)
        assert b is not None
        b.status, b.total = "running", 10
        for uid in ids:
            in_doubt = uid < 5003
            s.add(
                Delivery(
                    broadcast_id=bid,
                    user_id=uid,
                    chat_id=uid,
                    state=SENDING if in_doubt else PENDING,
                    claimed_by="w-dead" if in_doubt else None,
                    claimed_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5) if in_doubt else None,
                )
            )
    engine = BroadcastEngine(sessions, sender, content, stale_after_s=1.0)
    await engine.run_until_idle(bid)

    assert await states(sessions, bid) == {uid: UNKNOWN if uid < 5003 else SENT for uid in ids}
    for uid in ids:
        assert len(await received(sc, uid)) == (0 if uid < 5003 else 1)
    assert engine.stats["unknown_marked"] == 3


class SlowRecords(BroadcastEngine):
    """Outcomes written slowly, as by a PostgreSQL whose commits wait on a busy disk."""

    async def _record(self, outcomes: Sequence[Outcome]) -> None:
        await asyncio.sleep(1.0)
        await super()._record(outcomes)


async def test_outcomes_being_written_when_the_last_send_ends_are_kept(
    sc: SandboxClient,
    sessions: async_sessionmaker[AsyncSession],
    sender: TelegramSender,
    content: Content,
) -> None:
    """The last send ends while the periodic write of outcomes is under way. That write used to be cancelled
    and rolled back: its rows stayed `sending` under a live engine and the broadcast never ended."""
    ids = list(range(5100, 5110))
    await sc.users_bulk(5100, 10)
    await add_subscribers(sessions, ids)
    bid = await queue_broadcast(sessions)
    # 20/s: the ten sends take half a second, so they end inside the write the flusher starts at 0.25 s; the
    # batch is larger than the broadcast, so only the flusher and the final flush write outcomes
    engine = SlowRecords(sessions, sender, content, rate=20.0, batch_size=50)
    async with asyncio.timeout(30):
        await engine.run_until_idle(bid)

    assert await states(sessions, bid) == dict.fromkeys(ids, SENT)
    for uid in ids:
        assert len(await received(sc, uid)) == 1
    async with sessions() as s:
        assert (await s.get(Broadcast, bid)).status == DONE  # type: ignore[union-attr]


async def test_an_own_row_whose_outcome_was_lost_becomes_unknown_and_a_held_one_does_not(
    sc: SandboxClient,
    sessions: async_sessionmaker[AsyncSession],
    sender: TelegramSender,
    content: Content,
) -> None:
    """A row this engine claimed long ago and no longer holds lost its outcome (a write that failed for good):
    it becomes `unknown`, never resent. A row it still holds is in flight, however old its claim."""
    ids = [5200, 5201, 5202]
    await sc.users_bulk(5200, 3)
    await add_subscribers(sessions, ids)
    bid = await queue_broadcast(sessions)
    engine = BroadcastEngine(sessions, sender, content, stale_after_s=1.0, worker_id="w-me")
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    async with sessions() as s, s.begin():
        b = await s.get(Broadcast, bid)
        assert b is not None
        b.status, b.total = "running", 3
        for uid in ids:
            s.add(Delivery(broadcast_id=bid, user_id=uid, chat_id=uid, state=SENDING, claimed_by="w-me",
                           claimed_at=long_ago))  # fmt: skip
        await s.flush()
        held = (await s.execute(select(Delivery.id).where(Delivery.user_id == 5202))).scalar_one()
    engine._holding.add(held)

    await engine._recover_stale()

    assert await states(sessions, bid) == {5200: UNKNOWN, 5201: UNKNOWN, 5202: SENDING}
    assert engine.stats["unknown_marked"] == 2
    for uid in ids:
        assert await received(sc, uid) == []


def test_conversation_replies_use_the_broadcast_budget() -> None:
    """Every reply the bot sends counts against the 30 msg/s the engine paces to, and against that chat's 1/s."""
    now = [100.0]
    limiter = RateLimiter(30.0, headroom=0.0, clock=lambda: now[0])
    for _ in range(31):  # a second of broadcast slots taken, and the next one
        last = limiter.normal.reserve()
    for _ in range(3):
        limiter.normal.debit()  # three replies to citizens went out meanwhile
    assert limiter.normal.reserve() - last == pytest.approx(4 / 30)  # the broadcast's next slot moved by three

    engine = BroadcastEngine(None, None, None)  # type: ignore[arg-type]  # count_reply touches only the limiter
    slot = engine.limiter.normal._next
    engine.count_reply(7)
    assert engine.limiter.normal._next > slot
    assert engine.limiter._chat_delay(7) > 0.9  # the broadcast's message to that chat waits about a second
