"""Setting reminders by sentence (confirm, change, ask again, choose, past, cap), listing, cancelling, and the
buttons on a delivered reminder — each message its own unit of work, as in the bot."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

import store.models_reminders  # noqa: F401  (registers the tables on Base.metadata)
from actions.base import Context
from actions.reminders import ReminderCapability
from core.settings import Settings
from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Incoming, Reply, Understanding
from reminders.messages import Formatter
from reminders.store import create_reminder, sync_dossier_deadlines
from reminders.when import VN_TZ
from store.all_models import Base
from store.models import User
from store.models_reminders import CANCELLED, PENDING, STOPPED, Reminder, ReminderDraft

# Monday 30/11/2026, 09:00 in Hà Nội.
NOW = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)
USER = 5151
OTHER = 6262


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=VN_TZ)


class Harness:
    """One citizen talking to the reminders capability through the router's entry points."""

    def __init__(self, engine: AsyncEngine, content: Content, lang: str = "vi", cap: int = 20) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.content = content
        self.lang = lang
        self.now = NOW
        self.settings = Settings(_env_file=None)  # type: ignore[call-arg]
        self.cap = ReminderCapability(content, cap=cap)

    async def _run(self, fn: Any, inc: Incoming, user_id: int = USER) -> list[Reply]:
        async with self.sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                user = User(id=user_id, chat_id=user_id, lang=self.lang)
                session.add(user)
                await session.flush()
            ctx = Context(self.content, self.settings, session, user, self.now)
            replies: list[Reply] = await fn(inc, ctx)
            await session.commit()
            return replies

    async def say(self, text: str, intent: str = "set_reminder") -> Reply:
        """A message the NLU understood as `intent` (unless an open question takes it first, as the router does)."""
        inc = Incoming(USER, USER, self.lang, text=text, nlu=Understanding(intent, 0.9))
        if await self.wants_text():
            replies = await self._run(self.cap.on_text, inc)
            if replies:
                [reply] = replies
                return reply
        [reply] = await self._run(self.cap.on_intent, inc)
        return reply

    async def type(self, text: str) -> list[Reply]:
        """A typed message while a question is open: what `on_text` answers ([] = not for this capability)."""
        assert await self.wants_text()
        return await self._run(self.cap.on_text, Incoming(USER, USER, self.lang, text=text))

    async def press(self, button: Button | str, user_id: int = USER) -> Reply:
        data = button if isinstance(button, str) else button.data
        action, args = callbacks.decode(data)  # exactly what the router does with untrusted payloads
        [reply] = await self._run(
            self.cap.on_callback, Incoming(user_id, user_id, self.lang, callback=(action, args)), user_id
        )
        return reply

    async def wants_text(self) -> bool:
        async with self.sessions() as session:
            user = await session.get(User, USER)
            if user is None:
                return False
            return await self.cap.wants_text(Context(self.content, self.settings, session, user, self.now))

    async def reminders(self, user_id: int = USER) -> list[Reminder]:
        async with self.sessions() as session:
            stmt = select(Reminder).where(Reminder.user_id == user_id).order_by(Reminder.id)
            return list((await session.execute(stmt)).scalars())

    async def draft(self) -> ReminderDraft | None:
        async with self.sessions() as session:
            return await session.get(ReminderDraft, USER)

    async def add(self, at: dt.datetime, task: str, user_id: int = USER, **kw: Any) -> Reminder:
        async with self.sessions() as session, session.begin():
            if await session.get(User, user_id) is None:
                session.add(User(id=user_id, chat_id=user_id, lang=self.lang))
                await session.flush()
            return await create_reminder(session, user_id, at, "citizen", None, task=task, cap=None, **kw)

    async def delivered(self, row: Reminder) -> Reply:
        """The reminder message as the dispatcher renders it for the citizen."""
        return Formatter(self.content, VN_TZ).message(row, self.lang, self.now)


def labels(reply: Reply) -> list[str]:
    return [b.label for row in reply.buttons for b in row]


def button(reply: Reply, label: str) -> Button:
    for row in reply.buttons:
        for b in row:
            if b.label == label:
                return b
    raise AssertionError(f"no button {label!r} in {labels(reply)}")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def bot(db: AsyncEngine, content: Content) -> Harness:
    return Harness(db, content)


# ---- setting a reminder ---------------------------------------------------------------------------------


async def test_sentence_is_confirmed_with_buttons_before_anything_is_saved(bot: Harness) -> None:
    reply = await bot.say("nhắc tôi 8h sáng mai đi công an phường")
    assert reply.text == "Nhắc bạn lúc <b>08:00 thứ Ba 01/12</b>: đi công an phường?"
    assert labels(reply) == ["Đúng", "Sửa"]
    assert await bot.reminders() == []
    assert (await bot.draft()) is not None  # the unconfirmed reminder is in the database, not in memory

    saved = await bot.press(button(reply, "Đúng"))
    assert saved.edit and saved.text == "Đã đặt lời nhắc lúc <b>08:00 thứ Ba 01/12</b>: đi công an phường"
    [row] = await bot.reminders()
    assert (row.state, row.task, row.source) == (PENDING, "đi công an phường", "citizen")
    assert row.remind_at == row.due_at == local(2026, 12, 1, 8, 0)
    assert row.remind_at.tzinfo == dt.UTC
    assert await bot.draft() is None

    again = await bot.press(button(reply, "Đúng"))  # a double tap does not make a second reminder
    assert "đã cũ" in again.text
    assert len(await bot.reminders()) == 1


async def test_without_a_time_it_goes_out_at_0730_and_diacritics_are_optional(bot: Harness) -> None:
    reply = await bot.say("nhac toi thu 6 nop bo sung")
    assert reply.text == "Nhắc bạn lúc <b>07:30 thứ Sáu 04/12</b>: nop bo sung?"


async def test_english_reminder(db: AsyncEngine, content: Content) -> None:
    bot = Harness(db, content, lang="en")
    reply = await bot.say("remind me to bring my documents on Monday")
    assert reply.text == "Remind you at <b>07:30 Mon 07/12</b>: bring my documents?"
    assert labels(reply) == ["Yes", "Change"]
    saved = await bot.press(button(reply, "Yes"))
    assert saved.text == "Reminder set for <b>07:30 Mon 07/12</b>: bring my documents"


async def test_change_asks_again_and_a_night_time_is_flagged(bot: Harness) -> None:
    reply = await bot.say("nhắc tôi 8h sáng mai đi công an phường")
    ask = await bot.press(button(reply, "Sửa"))
    assert ask.edit and ask.text.startswith("Mình sẽ nhắc bạn: đi công an phường. Bạn muốn mình nhắc lúc nào?")
    [confirm] = await bot.type("9h tối thứ 5")
    assert confirm.text.startswith("Nhắc bạn lúc <b>21:00 thứ Năm 03/12</b>: đi công an phường?")
    assert "ban đêm" in confirm.text  # an explicit time in quiet hours is kept, but said out loud
    [saved] = await bot.type("ok")  # typing yes works like the button
    assert "21:00 thứ Năm 03/12" in saved.text
    [row] = await bot.reminders()
    assert row.remind_at == local(2026, 12, 3, 21, 0)


async def test_missing_time_is_asked_and_the_question_survives_a_restart(db: AsyncEngine, content: Content) -> None:
    bot = Harness(db, content)
    reply = await bot.say("nhắc tôi đi nhận kết quả")
    assert reply.text.startswith("Mình sẽ nhắc bạn: đi nhận kết quả. Bạn muốn mình nhắc lúc nào?")
    assert await bot.reminders() == []

    restarted = Harness(db, content)  # a new process: nothing but the database carries the question
    [confirm] = await restarted.type("15/12")
    assert confirm.text == "Nhắc bạn lúc <b>07:30 thứ Ba 15/12</b>: đi nhận kết quả?"


async def test_what_and_when_are_asked_one_after_the_other(bot: Harness) -> None:
    reply = await bot.say("nhắc tôi")
    assert reply.text.startswith("Bạn muốn mình nhắc việc gì, vào lúc nào?")
    [ask] = await bot.type("đi công an phường")
    assert ask.text.startswith("Mình sẽ nhắc bạn: đi công an phường. Bạn muốn mình nhắc lúc nào?")
    [confirm] = await bot.type("mai")
    assert confirm.text == "Nhắc bạn lúc <b>07:30 thứ Ba 01/12</b>: đi công an phường?"


async def test_unrelated_text_is_left_to_the_router(bot: Harness) -> None:
    await bot.say("nhắc tôi đi nhận kết quả")
    assert await bot.type("tra cứu hồ sơ của tôi") == []


@pytest.mark.parametrize(
    ("text", "lead"),
    [
        ("nhắc tôi 8h sáng nay nộp phí", "Thời điểm 08:00 thứ Hai 30/11 đã qua rồi."),
        ("nhắc tôi hôm qua nộp phí", "Thời điểm 00:00 Chủ nhật 29/11 đã qua rồi."),
        ("nhắc tôi 30/2 nộp phí", "Mình chưa hiểu ngày giờ này"),
    ],
)
async def test_past_or_impossible_times_are_asked_again(bot: Harness, text: str, lead: str) -> None:
    reply = await bot.say(text)
    assert reply.text.startswith(lead)
    assert "Mình sẽ nhắc bạn: nộp phí. Bạn muốn mình nhắc lúc nào?" in reply.text
    assert reply.buttons == ()
    assert await bot.wants_text()
    [confirm] = await bot.type("thứ 3 tuần sau")
    assert confirm.text == "Nhắc bạn lúc <b>07:30 thứ Ba 08/12</b>: nộp phí?"


async def test_ambiguous_time_offers_the_readings_as_buttons(bot: Harness) -> None:
    reply = await bot.say("nhắc tôi 3h mai gọi điện")
    assert reply.text == "Bạn muốn mình nhắc vào lúc nào?"
    assert labels(reply) == ["03:00 thứ Ba 01/12", "15:00 thứ Ba 01/12", "Giờ khác"]
    confirm = await bot.press(button(reply, "15:00 thứ Ba 01/12"))
    assert confirm.edit and confirm.text == "Nhắc bạn lúc <b>15:00 thứ Ba 01/12</b>: gọi điện?"
    await bot.press(button(confirm, "Đúng"))
    [row] = await bot.reminders()
    assert row.remind_at == local(2026, 12, 1, 15, 0)


async def test_a_button_of_an_older_request_cannot_confirm_a_newer_one(bot: Harness) -> None:
    first = await bot.say("nhắc tôi 8h sáng mai đi công an phường")
    await bot.say("nhắc tôi thứ 6 nộp phí")
    stale = await bot.press(button(first, "Đúng"))
    assert "đã cũ" in stale.text
    assert await bot.reminders() == []


async def test_a_forged_or_foreign_reminder_id_changes_nothing(bot: Harness) -> None:
    row = await bot.add(local(2026, 12, 2, 8, 0), "việc của người khác", user_id=OTHER)
    reply = await bot.press(callbacks.encode("rm_cx", row.id))
    assert reply.text == "Lời nhắc này đã được gửi hoặc đã hủy rồi."
    reply = await bot.press(callbacks.encode("rm_stop", "not-a-number"))
    assert reply.text == "Lời nhắc này đã được gửi hoặc đã hủy rồi."
    [kept] = await bot.reminders(OTHER)
    assert kept.state == PENDING


async def test_cap_on_upcoming_reminders(db: AsyncEngine, content: Content) -> None:
    bot = Harness(db, content, cap=2)
    confirm = await bot.say("nhắc tôi thứ 6 nộp phí")  # asked while under the cap ...
    await bot.add(local(2026, 12, 2, 8, 0), "một")
    await bot.add(local(2026, 12, 3, 8, 0), "hai")
    late = await bot.press(button(confirm, "Đúng"))  # ... but confirmed after reaching it
    assert late.text.startswith("Bạn đang có 2 lời nhắc chưa đến hạn, đã đủ mức tối đa 2.")
    reply = await bot.say("nhắc tôi mai đi công an")
    assert reply.text.startswith("Bạn đang có 2 lời nhắc chưa đến hạn")
    assert labels(reply) == ["Xem lời nhắc"]
    assert len(await bot.reminders()) == 2


# ---- listing and cancelling -----------------------------------------------------------------------------


async def test_list_shows_upcoming_soonest_first_with_a_cancel_button_each(bot: Harness) -> None:
    later = await bot.add(local(2026, 12, 9, 8, 0), "nộp <b>phí</b>")
    soon = await bot.add(local(2026, 12, 2, 14, 0), "đi công an phường")
    gone = await bot.add(local(2026, 12, 3, 8, 0), "đã hủy")
    async with bot.sessions() as session, session.begin():
        (await session.get(Reminder, gone.id)).state = CANCELLED  # type: ignore[union-attr]
    reply = await bot.say("xem lời nhắc", intent="list_reminders")
    assert reply.text == (
        "Các lời nhắc sắp tới của bạn:\n"
        "1. <b>14:00 thứ Tư 02/12</b>: đi công an phường\n"
        "2. <b>08:00 thứ Tư 09/12</b>: nộp &lt;b&gt;phí&lt;/b&gt;"  # the citizen's words are escaped
    )
    assert labels(reply) == ["❌ Hủy 1", "❌ Hủy 2"]

    after = await bot.press(button(reply, "❌ Hủy 1"))
    assert after.edit and after.text.startswith("Đã hủy lời nhắc lúc 14:00 thứ Tư 02/12.")
    assert "đi công an phường" not in after.text and labels(after) == ["❌ Hủy 1"]
    states = {r.id: r.state for r in await bot.reminders()}
    assert states[soon.id] == CANCELLED and states[later.id] == PENDING

    twice = await bot.press(button(reply, "❌ Hủy 1"))
    assert twice.text.startswith("Lời nhắc này đã được gửi hoặc đã hủy rồi.")


async def test_empty_list(bot: Harness) -> None:
    reply = await bot.say("xem lời nhắc", intent="list_reminders")
    assert reply.text.startswith("Bạn chưa có lời nhắc nào sắp tới.")


async def test_cancel_by_sentence_asks_which_one_and_can_cancel_all(bot: Harness) -> None:
    await bot.add(local(2026, 12, 2, 8, 0), "một")
    await bot.add(local(2026, 12, 3, 8, 0), "hai")
    reply = await bot.say("hủy lời nhắc", intent="cancel_reminder")
    assert reply.text.startswith("Bạn muốn hủy lời nhắc nào?\n1. <b>08:00 thứ Tư 02/12</b>: một")
    assert labels(reply) == ["❌ Hủy 1", "❌ Hủy 2", "Hủy tất cả (2)"]
    done = await bot.press(button(reply, "Hủy tất cả (2)"))
    assert done.text == "Đã hủy 2 lời nhắc."
    assert {r.state for r in await bot.reminders()} == {CANCELLED}


# ---- the buttons on a delivered reminder ----------------------------------------------------------------


async def test_delivered_reminder_has_done_snooze_tomorrow_stop(bot: Harness) -> None:
    row = await bot.add(local(2026, 11, 30, 8, 30), "đi công an phường")
    msg = await bot.delivered(row)
    assert msg.text == "⏰ <b>Lời nhắc</b> (08:30 thứ Hai 30/11)\nđi công an phường"
    assert labels(msg) == ["Xong", "Nhắc lại sau 1 giờ", "Ngày mai", "Dừng các nhắc này"]

    snoozed = await bot.press(button(msg, "Nhắc lại sau 1 giờ"))
    assert snoozed.edit and snoozed.text == "đi công an phường\n\n🔁 Mình sẽ nhắc lại lúc <b>10:00 thứ Hai 30/11</b>."
    tomorrow = await bot.press(button(msg, "Ngày mai"))  # one repeat per message: this moves it
    assert "08:30 thứ Ba 01/12" in tomorrow.text
    rows = await bot.reminders()
    assert len(rows) == 2
    repeat = rows[1]
    assert (repeat.parent_id, repeat.state, repeat.task) == (row.id, PENDING, "đi công an phường")
    assert repeat.remind_at == local(2026, 12, 1, 8, 30)

    done = await bot.press(button(msg, "Xong"))
    assert done.text == "đi công an phường\n\n✅ Đã xong."
    rows = await bot.reminders()
    assert rows[0].done_at == NOW and rows[1].state == CANCELLED  # done: the repeat is not needed any more


async def test_tomorrow_never_lands_in_quiet_hours(bot: Harness) -> None:
    row = await bot.add(local(2026, 11, 29, 22, 0), "uống thuốc")
    msg = await bot.delivered(row)
    reply = await bot.press(button(msg, "Ngày mai"))
    assert "07:30 thứ Ba 01/12" in reply.text


async def test_stop_these_stops_the_whole_series(bot: Harness) -> None:
    async with bot.sessions() as session, session.begin():
        session.add(User(id=USER, chat_id=USER, lang="vi"))
        await session.flush()
        await sync_dossier_deadlines(
            session, USER, "38.98.H29-261120-0013", [("supplement", local(2026, 12, 10, 17, 0))], now=NOW
        )
    other = await bot.add(local(2026, 12, 5, 9, 0), "việc khác")
    first = (await bot.reminders())[0]
    msg = await bot.delivered(first)
    assert "Hồ sơ <b>38.98.H29-261120-0013</b>: còn 3 ngày nữa là đến hạn nộp bổ sung giấy tờ" in msg.text
    reply = await bot.press(button(msg, "Dừng các nhắc này"))
    assert reply.text.endswith("🔕 Đã dừng 3 lời nhắc loại này.")
    states = {r.id: r.state for r in await bot.reminders()}
    assert states.pop(other.id) == PENDING
    assert set(states.values()) == {STOPPED}


async def test_renewal_hook_reminds_30_days_before_once(bot: Harness) -> None:
    inc = Incoming(USER, USER, "vi", callback=("r_remind", ("20270310",)))

    async def hook(inc: Incoming, ctx: Context) -> list[Reply]:
        return await bot.cap.remind_renewal(inc, ctx, dt.date(2027, 3, 10))

    [reply] = await bot._run(hook, inc)
    assert (
        reply.text
        == "Đã đặt: mình sẽ nhắc bạn lúc <b>07:30 thứ Hai 08/02/2027</b>, trước hạn đổi thẻ (thứ Tư 10/03/2027)."
    )
    await bot._run(hook, inc)
    [row] = await bot.reminders()
    assert row.remind_at == local(2027, 2, 8, 7, 30)
    async with bot.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(Reminder))).scalar_one()
    assert count == 1
