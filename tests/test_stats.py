"""/stats: the figures shown to staff match the rows in the database, over 7 and 30 days; staff only."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from actions.base import Context
from actions.stats import StatsCapability, count_message, writing_style
from core.settings import Settings
from kernel.content import DEFAULT_DIR, Content
from kernel.types import Incoming, Reply
from store.all_models import Base
from store.models import User
from store.models_handover import CLOSED, TAKEN, Feedback, MessageCount, StyleCount, Ticket

ADMIN = 9999
NOW = dt.datetime(2026, 3, 20, 3, 0, tzinfo=dt.UTC)  # Friday 10:00 in Vietnam
TODAY = dt.date(2026, 3, 20)


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> Content:
    directory = tmp_path_factory.mktemp("content")
    for name in ("common.yml", "handover.yml"):
        shutil.copy(DEFAULT_DIR / name, directory / name)
    return Content.load(directory)


async def _engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _fk(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return engine


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = await _engine(f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}")
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.mark.parametrize(
    ("text", "style"),
    [
        ("quên mật khẩu vneid", "vi_accented"),
        ("Đăng ký", "vi_accented"),
        ("quen mk vneid roi ad oi", "vi_plain"),
        ("ho so 000.00.12.H22-240101-0003", "vi_plain"),
        ("I forgot my VNeID password", "en"),
        ("how do I renew my ID card", "en"),
    ],
)
def test_writing_style(text: str, style: str) -> None:
    assert writing_style(text) == style


async def test_messages_are_counted_by_style_of_writing(db_url: str) -> None:
    engine = await _engine(db_url)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    try:
        for understood, style in [(True, "vi_plain"), (False, "vi_plain"), (False, "en"), (True, "vi_accented")]:
            async with factory() as session, session.begin():
                await count_message(session, TODAY, understood, "eid_info" if understood else None, style)
        async with factory() as session:
            rows = {(r.style, r.handled, r.fallbacks) for r in (await session.scalars(select(StyleCount))).all()}
        assert rows == {("vi_plain", 2, 1), ("en", 1, 1), ("vi_accented", 1, 0)}
    finally:
        await engine.dispose()


async def test_count_message_upserts_on_every_backend(db_url: str) -> None:
    engine = await _engine(db_url)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    try:
        for understood, intent in [
            (True, "eid_activate"),
            (True, "eid_activate"),
            (False, "eid_activate"),
            (False, None),
        ]:
            async with factory() as session, session.begin():
                await count_message(session, TODAY, understood, intent)
        async with factory() as session:
            rows = {(r.intent, r.handled, r.fallbacks) for r in (await session.scalars(select(MessageCount))).all()}
        assert rows == {("eid_activate", 2, 0), ("", 2, 2)}
    finally:
        await engine.dispose()


async def _seed(session: AsyncSession) -> None:
    def user(uid: int, seen: dt.timedelta) -> User:
        return User(id=uid, chat_id=uid, lang="vi", created_at=NOW - seen, last_seen_at=NOW - seen)

    session.add_all(
        [
            user(1, dt.timedelta(days=1)),
            user(2, dt.timedelta(days=10)),
            user(3, dt.timedelta(days=40)),
            user(ADMIN, dt.timedelta()),
        ]
    )
    await session.flush()
    for day, understood, intent, times in [
        (TODAY, True, "eid_activate", 3),
        (TODAY, True, "check_status", 1),
        (TODAY, False, None, 1),
        (TODAY - dt.timedelta(days=10), True, "procedure_info", 2),
        (TODAY - dt.timedelta(days=10), False, "nlu_fallback", 2),
        (TODAY - dt.timedelta(days=40), True, "eid_activate", 5),
    ]:
        for _ in range(times):
            await count_message(session, day, understood, intent)

    def ticket(uid: int, created: dt.timedelta, take: int | None, close: int | None, rating: int | None) -> Ticket:
        opened = NOW - created
        closed_at = opened + dt.timedelta(minutes=close) if close is not None else None
        return Ticket(
            user_id=uid,
            open_user_id=None if close is not None else uid,
            status=CLOSED if close is not None else TAKEN,
            created_at=opened,
            posted_at=opened,
            taken_at=opened + dt.timedelta(minutes=take) if take is not None else None,
            closed_at=closed_at,
            rating=rating,
            rated_at=closed_at if rating is not None else None,
        )

    session.add_all(
        [
            ticket(1, dt.timedelta(hours=2), 10, 40, 4),
            ticket(2, dt.timedelta(hours=1), 20, None, None),
            ticket(3, dt.timedelta(days=12), 30, 90, 2),
            ticket(1, dt.timedelta(hours=3), None, 5, None),  # cancelled before anyone took it
        ]
    )
    for uid, topic, vote, ago in [
        (1, "eid_otp", 1, dt.timedelta(days=1)),
        (2, "eid_otp", -1, dt.timedelta(days=2)),
        (2, "check_status", -1, dt.timedelta(days=20)),
        (1, "check_status", None, dt.timedelta(days=1)),  # offered, never pressed
    ]:
        session.add(
            Feedback(user_id=uid, topic=topic, offered_at=NOW - ago, vote=vote, voted_at=NOW - ago if vote else None)
        )


async def _stats(sessions: async_sessionmaker[AsyncSession], content: Content, user_id: int) -> list[Reply]:
    async with sessions() as session, session.begin():
        user = await session.get(User, user_id)
        if user is None:
            user = User(id=user_id, chat_id=user_id, lang="vi", last_seen_at=NOW)
            session.add(user)
            await session.flush()
        settings = Settings(_env_file=None, admin_ids=[ADMIN], timezone="Asia/Ho_Chi_Minh")  # type: ignore[call-arg]
        ctx = Context(content, settings, session, user, NOW)
        inc = Incoming(user_id, user_id, "vi", text="/stats", kind="command")
        return await StatsCapability().on_command("stats", "", inc, ctx)


async def test_stats_match_the_rows(sessions: async_sessionmaker[AsyncSession], content: Content) -> None:
    async with sessions() as session, session.begin():
        await _seed(session)
    [reply] = await _stats(sessions, content, ADMIN)

    def t(key: str, **values: object) -> str:
        return content.text(f"handover.{key}", "vi", **values)

    week, month = reply.text.split("\n\n")[1:]
    assert week.splitlines() == [
        t("stats_window", days=7),
        t("stats_users", count=2),
        t("stats_messages", total=5, share=80),
        t("stats_intents", items="eid_activate 3, check_status 1"),
        t("stats_handover", opened=3, open_now=1, take=t("stats_minutes", m=15), close=t("stats_minutes", m=40)),
        t("stats_ratings", count=1, avg="4.0"),
        t("stats_feedback", items="eid_otp 1👍/1👎"),
    ]
    assert month.splitlines() == [
        t("stats_window", days=30),
        t("stats_users", count=3),
        t("stats_messages", total=9, share=67),
        t("stats_intents", items="eid_activate 3, procedure_info 2, check_status 1"),
        t("stats_handover", opened=4, open_now=1, take=t("stats_minutes", m=20), close=t("stats_hours", h=1, m=5)),
        t("stats_ratings", count=2, avg="3.0"),
        t("stats_feedback", items="eid_otp 1👍/1👎, check_status 0👍/1👎"),
    ]


async def test_stats_on_an_empty_database(sessions: async_sessionmaker[AsyncSession], content: Content) -> None:
    [reply] = await _stats(sessions, content, ADMIN)
    assert content.text("handover.stats_messages_none", "vi") in reply.text
    assert content.text("handover.stats_ratings_none", "vi") in reply.text


async def test_stats_are_for_staff_only(sessions: async_sessionmaker[AsyncSession], content: Content) -> None:
    [reply] = await _stats(sessions, content, 12345)
    assert reply.text == content.text("common.unknown_command", "vi")
