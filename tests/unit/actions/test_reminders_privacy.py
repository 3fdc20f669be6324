"""A reminder keeps no phone or ID number: what the citizen typed is redacted before the draft is written (on
SQLite and PostgreSQL), the citizen is told why the number was hidden, and a draft never confirmed expires."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import String, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from actions.reminders import ReminderCapability
from core.pii import contains_pii
from kernel.content import Content
from store.all_models import Base
from store.models_reminders import Reminder, ReminderDraft
from tests.unit.actions.test_reminders import Harness, button

CITIZEN = "nhac toi mai 8h goi so 0911222333 hoi ve cccd 038099001122"
RAW = ("0911222333", "038099001122")
HIDDEN_VI = (
    "Mình đã ẩn số điện thoại / số CCCD trong lời nhắc vì mình không lưu các số này. "
    "Bạn ghi số đó ở chỗ khác (danh bạ, sổ tay) nhé."
)
HIDDEN_EN = "I hid the phone / ID number in your reminder because I don't keep such numbers."


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """The schema on a fresh SQLite file, and on PostgreSQL when TEST_DATABASE_URL is set."""
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


async def stored_texts(engine: AsyncEngine) -> list[str]:
    """Every text value in the reminder tables, read back from the database."""
    found: list[str] = []
    async with engine.connect() as conn:
        for table in (ReminderDraft.__table__, Reminder.__table__):
            columns = [c for c in table.columns if isinstance(c.type, (String, Text))]
            for row in await conn.execute(select(*columns)):
                found += [v for v in row if isinstance(v, str)]
    return found


async def test_the_draft_holds_placeholders_and_the_citizen_is_told_why(engine: AsyncEngine, content: Content) -> None:
    bot = Harness(engine, content)
    confirm = await bot.say(CITIZEN)
    assert confirm.text == (
        f"Nhắc bạn lúc <b>08:00 thứ Ba 01/12</b>: goi so [phone] hoi ve cccd [id]?\n<i>{HIDDEN_VI}</i>"
    )
    draft = await bot.draft()
    assert draft is not None and draft.task == "goi so [phone] hoi ve cccd [id]"
    texts = await stored_texts(engine)
    assert texts and not any(raw in t for t in texts for raw in RAW)
    assert not any(contains_pii(t) for t in texts)

    saved = await bot.press(button(confirm, "Đúng"))
    assert saved.text == "Đã đặt lời nhắc lúc <b>08:00 thứ Ba 01/12</b>: goi so [phone] hoi ve cccd [id]"
    [row] = await bot.reminders()
    assert row.task == "goi so [phone] hoi ve cccd [id]"
    assert not any(raw in t for t in await stored_texts(engine) for raw in RAW)
    bot.now = row.remind_at
    delivered = await bot.delivered(row)
    assert "goi so [phone] hoi ve cccd [id]" in delivered.text and "0911" not in delivered.text


async def test_a_number_typed_in_answer_to_the_question_is_hidden_too(engine: AsyncEngine, content: Content) -> None:
    bot = Harness(engine, content)
    ask = await bot.say("nhắc tôi gọi 0912-345-678")  # no time: the task is kept while the time is asked
    assert ask.text.startswith("Mình sẽ nhắc bạn: gọi [phone]. Bạn muốn mình nhắc lúc nào?")
    assert ask.text.endswith(f"<i>{HIDDEN_VI}</i>")

    what = await bot.say("nhắc tôi")  # a new request: what and when are asked one after the other
    assert what.text.startswith("Bạn muốn mình nhắc việc gì")
    [when] = await bot.type("gọi (+84) 987 654 321 về CCCD.001099012345")
    assert when.text.startswith("Mình sẽ nhắc bạn: gọi [phone] về CCCD.[id]. Bạn muốn mình nhắc lúc nào?")
    [confirm] = await bot.type("9h mai")
    assert confirm.text == f"Nhắc bạn lúc <b>09:00 thứ Ba 01/12</b>: gọi [phone] về CCCD.[id]?\n<i>{HIDDEN_VI}</i>"
    texts = await stored_texts(engine)
    assert not any(raw in t for t in texts for raw in ("0912", "987 654", "001099012345"))
    assert not any(contains_pii(t) for t in texts)


async def test_nothing_hidden_no_note(engine: AsyncEngine, content: Content) -> None:
    bot = Harness(engine, content)
    confirm = await bot.say("nhắc tôi 8h sáng mai nộp phí 1.200.000 đồng hồ sơ 000.00.12.H22-240101-0003")
    assert confirm.text == (
        "Nhắc bạn lúc <b>08:00 thứ Ba 01/12</b>: nộp phí 1.200.000 đồng hồ sơ 000.00.12.H22-240101-0003?"
    )


async def test_the_note_in_english(engine: AsyncEngine, content: Content) -> None:
    bot = Harness(engine, content, lang="en")
    confirm = await bot.say("remind me to call +84 912 345 678 tomorrow at 9")
    assert confirm.text.startswith("Remind you at <b>")
    assert ": call [phone]?" in confirm.text and HIDDEN_EN in confirm.text


async def test_an_unconfirmed_draft_expires_after_its_ttl(engine: AsyncEngine, content: Content) -> None:
    bot = Harness(engine, content)
    bot.cap = ReminderCapability(content, draft_ttl=dt.timedelta(hours=3))
    confirm = await bot.say("nhắc tôi 8h sáng mai đi công an phường")
    bot.now += dt.timedelta(hours=2, minutes=59)
    assert await bot.wants_text()
    bot.now += dt.timedelta(minutes=2)
    assert not await bot.wants_text()
    stale = await bot.press(button(confirm, "Đúng"))
    assert "đã cũ" in stale.text
    assert await bot.reminders() == []
