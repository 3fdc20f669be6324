"""The dispatcher: due reminders go out once, late ones are marked, expired ones dropped with a note; blocked
citizens, throttling, restarts and crashes are handled without a duplicate."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from telegram.ext import ExtBot

import store.models_reminders  # noqa: F401  (registers the tables on Base.metadata)
from bot.aiohttp_request import AiohttpRequest
from bot.sender import TelegramSender
from kernel.content import Content
from kernel.outbox import Blocked, Migrated, Refused, RetryLater, Throttled
from kernel.types import Reply
from reminders import Dispatcher, create_reminder, sync_dossier_deadlines
from reminders.store import cancel
from reminders.when import VN_TZ
from sandbox.telegram.client import SandboxClient, SandboxTimeout
from sandbox.telegram.server import TelegramEmulator
from store.all_models import Base
from store.models import User
from store.models_reminders import CANCELLED, CLAIMED, DROPPED, FAILED, PENDING, SENDING, SENT, UNKNOWN, Reminder
from tests.support.base import BOT_TOKEN
from tests.support.senders import FakeSender

NOW = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)  # Monday 09:00 in Hà Nội
AN, BINH, CHI = 101, 102, 103


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=VN_TZ)


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    async with factory() as session, session.begin():
        session.add_all([User(id=AN, chat_id=AN), User(id=BINH, chat_id=BINH, lang="en"), User(id=CHI, chat_id=CHI)])
    yield factory
    await engine.dispose()


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()


@pytest.fixture
def make(sessions: async_sessionmaker[AsyncSession], sender: FakeSender, content: Content) -> Callable[..., Dispatcher]:
    def build(**kw: Any) -> Dispatcher:
        return Dispatcher(sessions, sender, content, VN_TZ, **kw)

    return build


async def add(
    sessions: async_sessionmaker[AsyncSession], user: int, at: dt.datetime, task: str = "đi công an phường", **kw: Any
) -> int:
    async with sessions() as session, session.begin():
        row = await create_reminder(session, user, at, "citizen", None, task=task, cap=None, **kw)
        return row.id


async def states(sessions: async_sessionmaker[AsyncSession]) -> dict[int, str]:
    async with sessions() as session:
        return dict((await session.execute(select(Reminder.id, Reminder.state))).tuples().all())


async def row(sessions: async_sessionmaker[AsyncSession], rid: int) -> Reminder:
    async with sessions() as session:
        found = await session.get(Reminder, rid)
        assert found is not None
        return found


async def test_a_due_reminder_goes_out_once_with_its_buttons(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    rid = await add(sessions, AN, local(2026, 11, 30, 9, 0))
    await add(sessions, AN, local(2026, 11, 30, 9, 1))  # not due yet
    d = make()
    assert await d.tick(NOW) == 1
    [(chat, reply)] = sender.sent
    assert chat == AN
    assert reply.text == "⏰ <b>Lời nhắc</b> (09:00 thứ Hai 30/11)\nđi công an phường"
    assert [b.label for r in reply.buttons for b in r] == [
        "Xong",
        "Nhắc lại sau 1 giờ",
        "Ngày mai",
        "Dừng các nhắc này",
    ]
    assert await d.tick(NOW) == 0
    assert await d.tick(NOW + dt.timedelta(seconds=30)) == 0
    sent = await row(sessions, rid)
    assert (sent.state, sent.message_id, sent.late, sent.attempts) == (SENT, 1, False, 1)
    assert await d.tick(NOW + dt.timedelta(minutes=1)) == 1
    assert len(sender.sent) == 2


async def test_english_citizen_gets_english(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    await add(sessions, BINH, local(2026, 12, 4, 8, 0), "bring my documents")
    await make().tick(local(2026, 12, 4, 8, 0))
    assert sender.texts(BINH) == ["⏰ <b>Reminder</b> (08:00 Fri 04/12)\nbring my documents"]


async def test_more_than_an_hour_late_is_marked_late(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    on_time = await add(sessions, AN, local(2026, 11, 30, 8, 10))
    late = await add(sessions, CHI, local(2026, 11, 30, 7, 30))
    d = make()
    assert await d.tick(NOW) == 2  # e.g. the bot was down from 07:00 to 09:00
    assert sender.texts(AN) == ["⏰ <b>Lời nhắc</b> (08:10 thứ Hai 30/11)\nđi công an phường"]
    assert sender.texts(CHI) == ["⏰ <b>Lời nhắc</b> (07:30 thứ Hai 30/11, trễ)\nđi công an phường"]
    assert (await row(sessions, on_time)).late is False
    assert (await row(sessions, late)).late is True
    assert d.stats["late"] == 1 and d.stats["sent"] == 2


async def test_expired_deadline_is_dropped_with_one_note(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    code = "38.98.H29-261120-0013"
    async with sessions() as session, session.begin():
        await sync_dossier_deadlines(
            session, AN, code, [("fee", local(2026, 12, 4, 17, 0))], now=local(2026, 11, 28, 9, 0)
        )
    # The bot was down from before the first reminder (01/12) until after the deadline (04/12 17:00).
    d = make()
    assert await d.tick(local(2026, 12, 5, 9, 0)) == 1
    [note] = sender.texts(AN)
    assert note.startswith(
        "⚠️ Xin lỗi bạn, mình đã không gửi kịp lời nhắc lúc 07:30 thứ Ba 01/12, và hạn 17:00 thứ Sáu 04/12 đã qua."
    )
    assert f"Hồ sơ <b>{code}</b>: còn 3 ngày nữa là đến hạn nộp phí, lệ phí" in note
    assert set((await states(sessions)).values()) == {DROPPED}
    assert d.stats["dropped"] == 1


async def test_blocked_citizen_is_deactivated_and_their_reminders_cancelled(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    first = await add(sessions, AN, local(2026, 11, 30, 9, 0))
    later = await add(sessions, AN, local(2026, 12, 2, 9, 0))
    other = await add(sessions, CHI, local(2026, 11, 30, 9, 0))
    sender.script[AN] = [Blocked("Forbidden: bot was blocked by the user")]
    d = make()
    assert await d.tick(NOW) == 2
    async with sessions() as session:
        an = await session.get(User, AN)
        assert an is not None and an.active is False
    st = await states(sessions)
    assert (st[first], st[later], st[other]) == (FAILED, CANCELLED, SENT)
    # A reminder created for them later is not sent either.
    await add(sessions, AN, local(2026, 11, 30, 9, 5))
    assert await d.tick(NOW + dt.timedelta(minutes=10)) == 0
    assert sender.texts(AN) == []


async def test_throttling_is_retried_after_the_wait_then_given_up(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    rid = await add(sessions, AN, local(2026, 11, 30, 9, 0))
    sender.script[AN] = [Throttled(30, "telegram 429")]  # what bot/sender.py raises for a 429
    d = make(backoff_s=5)
    assert await d.tick(NOW) == 1
    waiting = await row(sessions, rid)
    assert (waiting.state, waiting.attempts, waiting.due_at) == (PENDING, 1, NOW + dt.timedelta(seconds=30))
    assert await d.tick(NOW + dt.timedelta(seconds=29)) == 0  # Telegram's retry_after is honoured
    assert await d.tick(NOW + dt.timedelta(seconds=30)) == 1
    assert len(sender.texts(AN)) == 1
    assert (await row(sessions, rid)).state == SENT

    stubborn = await add(sessions, CHI, local(2026, 11, 30, 9, 0))
    sender.script[CHI] = [RetryLater(1) for _ in range(3)]
    d = make(max_attempts=3, backoff_s=10)
    t = NOW
    for expected_wait in (10, 20):  # backoff doubles when it is longer than Telegram's wait
        assert await d.tick(t) == 1
        r = await row(sessions, stubborn)
        assert r.due_at == t + dt.timedelta(seconds=expected_wait)
        t = r.due_at
    assert await d.tick(t) == 1
    r = await row(sessions, stubborn)
    assert (r.state, r.attempts, r.last_error) == (FAILED, 3, "retries_exhausted")
    assert sender.texts(CHI) == []


async def test_a_send_whose_answer_was_lost_is_never_sent_twice(
    sessions: async_sessionmaker[AsyncSession],
    make: Callable[..., Dispatcher],
    tg: tuple[TelegramEmulator, str],
    sandbox: SandboxClient,
) -> None:
    """The real sender over real HTTP: Telegram takes the message but answers after the read timeout. In doubt, the
    reminder is not sent again (at most once), and the citizen has exactly one copy."""
    an = await sandbox.user(AN, first_name="An", language_code="vi")
    bot: ExtBot[Any] = ExtBot(
        BOT_TOKEN, base_url=f"{tg[1]}/bot", request=AiohttpRequest(2, connect_timeout=5, read_timeout=0.5)
    )
    await bot.initialize()
    try:
        rid = await add(sessions, AN, local(2026, 11, 30, 9, 0))
        await sandbox.faults("sendMessage", delay=1.5)  # delivered, but the answer comes after the timeout
        d = Dispatcher(sessions, TelegramSender(bot), Content.load(), VN_TZ, backoff_s=1)
        assert await d.tick(NOW) == 1
        lost = await row(sessions, rid)
        assert (lost.state, lost.last_error) == (UNKNOWN, "timeout")
        for later in (5, 60, 3600):
            await d.tick(NOW + dt.timedelta(seconds=later))
        assert len(await an.wait_for(count=1, timeout=10)) == 1
        with pytest.raises(SandboxTimeout):
            await an.wait_for(count=1, timeout=2)  # no second copy
    finally:
        await bot.shutdown()


async def test_migrated_chat_is_followed(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    await add(sessions, CHI, local(2026, 11, 30, 9, 0))
    sender.script[CHI] = [Migrated(-100999)]
    d = make()
    await d.tick(NOW)
    await d.tick(NOW)
    assert [c for c, _ in sender.sent] == [-100999]


async def test_refused_message_fails_without_retry(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    rid = await add(sessions, AN, local(2026, 11, 30, 9, 0))
    sender.script[AN] = [Refused("Bad Request: can't parse entities")]
    d = make()
    await d.tick(NOW)
    await d.tick(NOW + dt.timedelta(hours=1))
    assert (await row(sessions, rid)).state == FAILED and sender.sent == []


async def test_unexpected_sender_error_is_never_resent(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    rid = await add(sessions, AN, local(2026, 11, 30, 9, 0))
    sender.script[AN] = [RuntimeError("connection dropped after the request was written")]
    d = make()
    assert await d.tick(NOW) == 1
    assert await d.tick(NOW + dt.timedelta(hours=1)) == 0
    assert (await row(sessions, rid)).state == UNKNOWN and d.stats["unknown"] == 1


async def test_cancelled_after_the_claim_is_not_sent(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    await add(sessions, AN, local(2026, 11, 30, 8, 0), "một")
    second = await add(sessions, AN, local(2026, 11, 30, 8, 30), "hai")

    async def cancel_second(chat_id: int, reply: Reply) -> None:
        # The citizen presses [Cancel] while the first of their two claimed reminders is being sent.
        async with sessions() as session, session.begin():
            target = await session.get(Reminder, second)
            assert target is not None and target.state == CLAIMED
            assert await cancel(session, target, NOW)

    sender.before_send = cancel_second
    d = make()
    assert await d.tick(NOW) == 1
    assert [t.split("\n")[1] for t in sender.texts(AN)] == ["một"]
    assert (await states(sessions))[second] == CANCELLED


async def test_restart_after_a_crash_delivers_the_rest_and_never_resends(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    claimed = await add(sessions, AN, local(2026, 11, 30, 8, 0), "đã nhận nhưng chưa gửi")
    in_flight = await add(sessions, CHI, local(2026, 11, 30, 8, 0), "đang gửi")
    waiting = await add(sessions, BINH, local(2026, 11, 30, 8, 5), "chưa đến lượt")
    # What a process killed with -9 at 08:59 leaves behind.
    crash = NOW - dt.timedelta(minutes=1)
    async with sessions() as session, session.begin():
        await session.execute(
            update(Reminder).where(Reminder.id == claimed).values(state=CLAIMED, claimed_by="dead", claimed_at=crash)
        )
        await session.execute(
            update(Reminder).where(Reminder.id == in_flight).values(state=SENDING, claimed_by="dead", claimed_at=crash)
        )
    d = make(lease_s=120)
    assert await d.tick(NOW) == 1  # within the lease the dead process's rows are left alone
    assert sender.texts(BINH) != [] and sender.texts(AN) == []
    assert await d.tick(NOW + dt.timedelta(minutes=2)) == 1
    assert sender.texts(AN) == ["⏰ <b>Lời nhắc</b> (08:00 thứ Hai 30/11, trễ)\nđã nhận nhưng chưa gửi"]
    assert sender.texts(CHI) == []  # maybe delivered before the crash: at most once wins
    st = await states(sessions)
    assert (st[claimed], st[in_flight], st[waiting]) == (SENT, UNKNOWN, SENT)
    assert d.stats["unknown"] == 1 and d.stats["reclaimed"] == 1


async def test_two_dispatchers_share_the_work_without_duplicates(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    async with sessions() as session, session.begin():
        session.add_all(User(id=1000 + i, chat_id=1000 + i) for i in range(60))
    for i in range(60):
        await add(sessions, 1000 + i, local(2026, 11, 30, 8, 59), f"việc {i}")
    a, b = make(batch=7), make(batch=7)
    total = 0
    for _ in range(20):
        total += sum(await asyncio.gather(a.tick(NOW), b.tick(NOW)))
    assert total == 60
    assert sorted(c for c, _ in sender.sent) == [1000 + i for i in range(60)]
    assert a.stats["sent"] > 0 and b.stats["sent"] > 0


async def test_between_ticks_a_timer_sends_at_the_due_time(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    due = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=400)
    await add(sessions, AN, due)
    d = make(interval_s=1.0)
    try:
        assert await d.tick() == 0  # not due yet: the tick arms a timer instead of waiting for the next tick
        await asyncio.wait_for(sender.arrived.wait(), timeout=0.9)
        lag = dt.datetime.now(dt.UTC) - due
        assert dt.timedelta(0) <= lag < dt.timedelta(milliseconds=300)
    finally:
        await d.aclose()
    assert len(sender.sent) == 1


async def test_shutdown_lets_a_send_in_flight_finish_and_hands_back_the_rest(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    due = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=200)
    first = await add(sessions, AN, due, "đang gửi lúc tắt")
    rest = [await add(sessions, BINH, due, "chờ"), await add(sessions, CHI, due, "chờ")]
    sending, release = asyncio.Event(), asyncio.Event()

    async def slow(chat_id: int, reply: Reply) -> None:
        sending.set()
        await release.wait()

    sender.before_send = slow
    d = make(interval_s=5.0, concurrency=1)
    assert await d.tick() == 0  # arms the timer; the timer's tick claims all three and starts on the first
    await asyncio.wait_for(sending.wait(), timeout=2)
    closing = asyncio.create_task(d.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done()  # it waits for the send rather than cancelling it
    release.set()
    await asyncio.wait_for(closing, timeout=2)
    st = await states(sessions)
    assert st[first] == SENT and len(sender.sent) == 1
    assert [st[r] for r in rest] == [PENDING, PENDING]  # not left `claimed` for the lease
    assert d.stats["released"] == 2
    assert await make().tick(dt.datetime.now(dt.UTC)) == 2  # another process sends them at once


async def test_shutdown_gives_up_on_a_hung_send_after_the_grace_period(
    sessions: async_sessionmaker[AsyncSession], sender: FakeSender, make: Callable[..., Dispatcher]
) -> None:
    due = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=100)
    rid = await add(sessions, AN, due)
    sending = asyncio.Event()

    async def hang(chat_id: int, reply: Reply) -> None:
        sending.set()
        await asyncio.Event().wait()

    sender.before_send = hang
    d = make(interval_s=5.0)
    await d.tick()
    await asyncio.wait_for(sending.wait(), timeout=2)
    await asyncio.wait_for(d.aclose(grace_s=0.2), timeout=2)
    assert (await states(sessions))[rid] == SENDING  # outcome unknown: the lease turns it `unknown`, never resent
    assert sender.sent == []
