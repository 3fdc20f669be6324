"""Replies Telegram did not take within the reply's retries are kept in the database and sent again: in order per
chat, backing off while Telegram fails, forgotten when the citizen blocked the bot or the answer is an hour old,
and never sent twice by two passes at once. End to end: a sendMessage outage longer than the reply's retries, and
the citizen still gets the answer, once, with no apology."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import spool as spool_module
from bot.spool import ReplySpool, decode, encode
from kernel.outbox import Blocked, Refused, RetryLater, Throttled
from kernel.types import Button, Reply
from sandbox.telegram.client import SandboxClient
from store.db import make_engine, make_sessionmaker, migrate, unit_of_work
from store.models import PendingReply, User
from tests.e2e.test_faults import ERROR, reply, rest
from tests.support.bots import BotRunner
from tests.support.logscan import LogBuffer
from tests.support.senders import FakeSender

AN, BINH = 5101, 5102
T0 = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await migrate(db_url)
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def pending(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[int, str, int]]:
    async with unit_of_work(sessions) as s:
        rows = await s.execute(select(PendingReply).order_by(PendingReply.id))
        return [(r.chat_id, decode(r.body).text, r.attempts) for r in rows.scalars()]


def test_a_reply_survives_the_round_trip_as_a_new_message() -> None:
    original = Reply(
        "<b>Bước 2</b>: mở VNeID",
        ((Button("Tiếp", "g:n:1"), Button("Xem", url="https://dichvucong.gov.vn")),),
        edit=True,
        reply_to=7,
    )
    back = decode(encode(original))
    assert back.text == original.text and back.buttons == original.buttons and back.reply_to == 7
    assert back.edit is False  # the message it was to replace may be gone: it is sent anew
    assert decode(encode(Reply("ảnh", photo="AgAC-file"))).photo == "AgAC-file"


async def test_kept_replies_are_sent_in_order_once_due(sessions: async_sessionmaker[AsyncSession]) -> None:
    sender = FakeSender()
    spool = ReplySpool(sessions, sender)
    await spool.keep(AN, [Reply("một"), Reply("hai")], now=T0)
    await spool.keep(BINH, [Reply("one")], now=T0)
    assert await spool.send_due(T0) == 0  # not due before FIRST_RETRY
    assert await spool.send_due(T0 + spool_module.FIRST_RETRY) == 3
    assert sender.texts(AN) == ["một", "hai"] and sender.texts(BINH) == ["one"]
    assert await pending(sessions) == []
    assert await spool.send_due(T0 + dt.timedelta(minutes=1)) == 0  # nothing is sent twice


async def test_a_failing_chat_backs_off_and_keeps_its_order(sessions: async_sessionmaker[AsyncSession]) -> None:
    sender = FakeSender()
    sender.script[AN] = [RetryLater(1.0, "telegram 502")]
    spool = ReplySpool(sessions, sender)
    await spool.keep(AN, [Reply("một"), Reply("hai")], now=T0)
    await spool.keep(BINH, [Reply("one")], now=T0)
    due = T0 + spool_module.FIRST_RETRY
    assert await spool.send_due(due) == 1  # Binh's went; An's first failed and holds the second behind it
    assert sender.texts(AN) == [] and sender.texts(BINH) == ["one"]
    assert await pending(sessions) == [(AN, "một", 1), (AN, "hai", 0)]
    assert await spool.send_due(due + dt.timedelta(seconds=1)) == 0  # backing off (EVERY_S · 2⁰ = 5 s)
    assert await spool.send_due(due + dt.timedelta(seconds=spool_module.EVERY_S)) == 2
    assert sender.texts(AN) == ["một", "hai"] and await pending(sessions) == []


async def test_a_later_reply_never_overtakes_one_backing_off(sessions: async_sessionmaker[AsyncSession]) -> None:
    sender = FakeSender()
    sender.script[AN] = [Throttled(60.0, "telegram 429")]
    spool = ReplySpool(sessions, sender)
    await spool.keep(AN, [Reply("một")], now=T0)
    due = T0 + spool_module.FIRST_RETRY
    await spool.send_due(due)
    await spool.keep(AN, [Reply("hai")], now=due)  # the next update's answer failed too
    assert await spool.send_due(due + spool_module.FIRST_RETRY) == 0  # "hai" is due, "một" waits out its 429
    assert await spool.send_due(due + dt.timedelta(seconds=60)) == 2
    assert sender.texts(AN) == ["một", "hai"]


async def test_blocked_forgets_the_chat_and_a_refused_reply_is_dropped_alone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    sender = FakeSender()
    sender.script[AN] = [Blocked("Forbidden: bot was blocked by the user")]
    sender.script[BINH] = [Refused("Bad Request: can't parse entities")]
    blocked: list[int] = []

    async def on_blocked(chat_id: int) -> None:
        blocked.append(chat_id)

    spool = ReplySpool(sessions, sender, on_blocked=on_blocked)
    await spool.keep(AN, [Reply("một"), Reply("hai")], now=T0)
    await spool.keep(BINH, [Reply("<b>broken"), Reply("two")], now=T0)
    assert await spool.send_due(T0 + spool_module.FIRST_RETRY) == 1
    assert blocked == [AN] and sender.texts(AN) == []
    assert sender.texts(BINH) == ["two"]
    assert await pending(sessions) == []


async def test_an_hour_old_reply_is_dropped_not_sent(sessions: async_sessionmaker[AsyncSession]) -> None:
    sender = FakeSender()
    spool = ReplySpool(sessions, sender)
    await spool.keep(AN, [Reply("quá muộn")], now=T0)
    await spool.keep(BINH, [Reply("in time")], now=T0 + dt.timedelta(minutes=30))
    assert await spool.send_due(T0 + spool_module.KEEP + dt.timedelta(seconds=1)) == 1
    assert sender.texts(AN) == [] and sender.texts(BINH) == ["in time"]
    assert await pending(sessions) == []


async def test_two_passes_at_once_send_each_reply_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    sender = FakeSender()

    async def slow(chat_id: int, reply: Reply) -> None:
        await asyncio.sleep(0.05)  # both passes are between their claim and their sends together

    sender.before_send = slow
    spool, other = ReplySpool(sessions, sender), ReplySpool(sessions, sender)
    chats = [AN + i for i in range(6)]
    for chat in chats:
        await spool.keep(chat, [Reply(f"{chat}-1"), Reply(f"{chat}-2")], now=T0)
    due = T0 + spool_module.FIRST_RETRY
    counts = await asyncio.gather(spool.send_due(due), other.send_due(due))
    assert sum(counts) == 12
    for chat in chats:
        assert sender.texts(chat) == [f"{chat}-1", f"{chat}-2"]
    assert await pending(sessions) == []


async def test_an_outage_longer_than_the_retries_delays_the_answer_but_does_not_lose_it(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, log_scan: LogBuffer
) -> None:
    runtime = await bots.start(db_url)
    user = await sandbox.user(8151, first_name="An", language_code="vi")
    await user.command("menu")
    assert (await reply(user)).buttons
    # Five failures in a row: the reply's four tries (≈ 4 s of backoff) all meet one, so the adapter keeps it.
    await sandbox.faults("sendMessage", status=502, count=5)
    await user.command("help")
    got = [await reply(user, wait_s=40), *await rest(user)]
    bodies = [m.body for m in got]
    print(f"after the outage the citizen got {[b[:50] for b in bodies]}")
    assert len(got) == 1 and got[0].buttons and not bodies[0].startswith(ERROR)  # the answer, once, no apology
    lines = log_scan.since_mark()
    assert any('"reply.kept"' in line for line in lines) and any('"reply.resent"' in line for line in lines)
    async with unit_of_work(runtime.sessions) as s:
        assert await s.scalar(select(func.count()).select_from(PendingReply)) == 0
        assert (await s.get(User, user.id)) is not None
