"""Reminders created by other parts of the assistant: dossier deadlines (idempotent sync), ID-card renewal
(`create_reminder`) and staff campaigns."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

import store.models_reminders  # noqa: F401  (registers the tables on Base.metadata)
from reminders import (
    TooManyReminders,
    create_campaign_reminders,
    create_reminder,
    make_deadlines_hook,
    sync_dossier_deadlines,
)
from reminders.store import cancel_all
from reminders.when import VN_TZ
from store.all_models import Base
from store.models import User
from store.models_reminders import PENDING, STOPPED, Reminder

NOW = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)  # Monday 09:00 in Hà Nội
USER = 777
CODE = "38.98.H29-261120-0013"


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=VN_TZ)


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    async with factory() as session, session.begin():
        session.add_all([User(id=USER, chat_id=USER), User(id=USER + 1, chat_id=USER + 1, active=False)])
    yield factory
    await engine.dispose()


async def rows(sessions: async_sessionmaker[AsyncSession], user_id: int = USER) -> list[Reminder]:
    async with sessions() as session:
        stmt = select(Reminder).where(Reminder.user_id == user_id).order_by(Reminder.remind_at, Reminder.id)
        return list((await session.execute(stmt)).scalars())


async def sync(
    sessions: async_sessionmaker[AsyncSession], deadlines: list[tuple[str, dt.datetime]], now: dt.datetime = NOW
) -> tuple[int, int]:
    async with sessions() as session, session.begin():
        return tuple(await sync_dossier_deadlines(session, USER, CODE, deadlines, now=now))  # type: ignore[return-value]


def pending(items: list[Reminder]) -> list[tuple[dt.datetime, str | None]]:
    return [(r.remind_at, r.text_key) for r in items if r.state == PENDING]


async def test_dossier_deadline_gets_three_morning_reminders_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    deadline = local(2026, 12, 10, 17, 0)
    assert await sync(sessions, [("supplement", deadline)]) == (3, 0)
    assert pending(await rows(sessions)) == [
        (local(2026, 12, 7, 7, 30), "reminders.dossier_due_3d"),
        (local(2026, 12, 9, 7, 30), "reminders.dossier_due_1d"),
        (local(2026, 12, 10, 7, 30), "reminders.dossier_due_0d"),
    ]
    assert await sync(sessions, [("supplement", deadline)]) == (0, 0)  # the poller calls again: nothing new
    assert len(await rows(sessions)) == 3


async def test_changed_or_vanished_deadline_cancels_what_was_waiting(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sync(sessions, [("supplement", local(2026, 12, 10, 17, 0)), ("fee", local(2026, 12, 4, 17, 0))])
    assert await sync(sessions, [("supplement", local(2026, 12, 12, 17, 0)), ("fee", local(2026, 12, 4, 17, 0))]) == (
        3,
        3,
    )
    assert [at for at, _ in pending(await rows(sessions))] == [
        local(2026, 12, 1, 7, 30),
        local(2026, 12, 3, 7, 30),
        local(2026, 12, 4, 7, 30),
        local(2026, 12, 9, 7, 30),
        local(2026, 12, 11, 7, 30),
        local(2026, 12, 12, 7, 30),
    ]
    assert await sync(sessions, []) == (0, 6)  # the dossier has no deadline any more
    assert pending(await rows(sessions)) == []


async def test_a_deadline_on_a_date_counts_the_whole_day(sessions: async_sessionmaker[AsyncSession]) -> None:
    await sync(sessions, [("appointment", local(2026, 12, 10, 0, 0))])
    assert [at for at, _ in pending(await rows(sessions))] == [
        local(2026, 12, 7, 7, 30),
        local(2026, 12, 9, 7, 30),
        local(2026, 12, 10, 7, 30),
    ]


async def test_times_already_gone_are_skipped_and_a_close_deadline_still_gets_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert await sync(sessions, [("fee", local(2026, 11, 30, 17, 0))]) == (1, 0)  # due today at 17:00, now 09:00
    [row] = await rows(sessions)
    assert (row.remind_at, row.text_key) == (NOW, "reminders.dossier_due_soon")
    later = NOW + dt.timedelta(hours=1)
    assert await sync(sessions, [("fee", local(2026, 11, 30, 17, 0))], now=later) == (0, 0)


async def test_a_sync_at_night_waits_for_the_morning(sessions: async_sessionmaker[AsyncSession]) -> None:
    night = local(2026, 11, 30, 22, 0)
    await sync(sessions, [("supplement", local(2026, 12, 1, 17, 0))], now=night)
    assert pending(await rows(sessions)) == [(local(2026, 12, 1, 7, 30), "reminders.dossier_due_0d")]
    await sync(sessions, [("fee", local(2026, 12, 1, 7, 0))], now=night)  # before 07:30: nothing fits in time
    assert [r.text_key for r in await rows(sessions) if r.kind == "fee"] == []


async def test_stop_these_is_remembered_by_later_syncs(sessions: async_sessionmaker[AsyncSession]) -> None:
    await sync(sessions, [("supplement", local(2026, 12, 10, 17, 0))])
    async with sessions() as session, session.begin():
        assert await cancel_all(session, USER, NOW, group_key=f"dossier:{CODE}") == 3
    assert await sync(sessions, [("supplement", local(2026, 12, 12, 17, 0))]) == (0, 0)
    assert {r.state for r in await rows(sessions)} == {STOPPED}


async def test_poller_hook_is_one_unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> None:
    hook = make_deadlines_hook(sessions)
    # 17:00 local, 20 days ahead: all three reminder mornings (3 days, 1 day before, the day) fall before it,
    # whatever time of day the suite runs.
    day = (dt.datetime.now(VN_TZ) + dt.timedelta(days=20)).date()
    far = dt.datetime.combine(day, dt.time(17, 0), VN_TZ)
    await hook(USER, CODE, [("supplement", far)])
    await hook(USER, CODE, [("supplement", far)])
    assert len(await rows(sessions)) == 3


async def test_create_reminder_dedupes_caps_and_redacts(sessions: async_sessionmaker[AsyncSession]) -> None:
    due = local(2027, 2, 8, 7, 30)
    async with sessions() as session, session.begin():
        a = await create_reminder(
            session, USER, due, "renewal", "reminders.renewal_due", {}, dedupe_key="renewal:20270310", cap=2
        )
        b = await create_reminder(
            session, USER, due, "renewal", "reminders.renewal_due", {}, dedupe_key="renewal:20270310", cap=2
        )
        assert a.id == b.id
        note = await create_reminder(session, USER, due, "citizen", None, task="gọi 0912 345 678 về CCCD 001099012345")
        assert note.task == "gọi [phone] về CCCD [id]"  # no phone or ID number is stored
        with pytest.raises(TooManyReminders) as exc:
            await create_reminder(session, USER, due, "citizen", None, task="ba", cap=2)
        assert (exc.value.count, exc.value.cap) == (2, 2)
    assert len(await rows(sessions)) == 2


async def test_campaign_reaches_known_active_citizens_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    due = local(2026, 12, 5, 8, 0)
    text = "Ngày 05/12 có điểm làm căn cước lưu động tại nhà văn hoá."
    async with sessions() as session, session.begin():
        # USER+1 blocked the bot; 999 never talked to it
        assert await create_campaign_reminders(session, [USER, USER + 1, 999], due, text) == 1
        assert await create_campaign_reminders(session, [USER, USER + 1, 999], due, text) == 0
    [row] = await rows(sessions)
    assert (row.source, row.task, row.remind_at, row.state) == ("campaign", text, due, PENDING)
    assert await rows(sessions, USER + 1) == []
