"""/stats: the figures shown to staff match the rows in the database, over 7 and 30 days; staff only. And the
anonymous daily counters behind them and the console: messages by intent and style, conversations begun."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from actions.base import Context
from actions.lang import detect
from actions.router import Assistant, NluDown
from actions.stats import StatsCapability, begins_conversation, count_message, writing_style
from core.settings import Settings
from kernel.content import DEFAULT_DIR, Content
from kernel.types import Incoming, Reply, Understanding
from sandbox.telegram.client import SandboxClient, SimUser
from store.all_models import Base
from store.db import unit_of_work
from store.models import User
from store.models_handover import (
    CLOSED,
    TAKEN,
    ConversationCount,
    Feedback,
    MessageCount,
    PortalErrorCount,
    StyleCount,
    Ticket,
)
from store.models_staff import StaffMember
from tests.support.bots import BotRunner

ADMIN = 9999
NOW = dt.datetime(2026, 3, 20, 3, 0, tzinfo=dt.UTC)  # Friday 10:00 in Vietnam
TODAY = dt.date(2026, 3, 20)
VN = ZoneInfo("Asia/Ho_Chi_Minh")
STAFF_GROUP = -100123


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
    assert writing_style(text, detect(text)) == style


def _vn(day: int, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, second, tzinfo=VN).astimezone(dt.UTC)


@pytest.mark.parametrize(
    ("last_seen", "now", "new", "begins"),
    [
        (None, _vn(20, 10, 0), False, True),  # a row never seen
        (_vn(20, 10, 0), _vn(20, 10, 0), True, True),  # the citizen's first update ever
        (_vn(20, 10, 0), _vn(20, 10, 10), False, False),
        (_vn(20, 10, 0), _vn(20, 10, 29, 59), False, False),  # 29:59 of silence: the same conversation
        (_vn(20, 10, 0), _vn(20, 10, 30), False, True),  # 30 minutes: a new one
        (_vn(20, 9, 0), _vn(20, 14, 0), False, True),  # back after lunch
        (_vn(19, 23, 59, 30), _vn(20, 0, 0, 10), False, True),  # the first update of the local day
        (_vn(20, 0, 0, 10), _vn(20, 0, 0, 20), False, False),
        (_vn(20, 6, 50), _vn(20, 7, 10), False, False),  # 23:50 to 00:10 in UTC is no new day in Vietnam
        (_vn(20, 10, 5), _vn(20, 10, 0), False, False),  # a clock behind the row: nothing begins
    ],
)
def test_what_begins_a_conversation(last_seen: dt.datetime | None, now: dt.datetime, new: bool, begins: bool) -> None:
    assert begins_conversation(last_seen, now, VN, new=new) is begins


class _Nlu:
    """Reads every message as `intent`, or is down when there is none."""

    def __init__(self, intent: str | None = None) -> None:
        self.intent = intent

    async def parse(self, text: str) -> Understanding:
        if self.intent is None:
            raise NluDown()
        return Understanding(self.intent, 0.95)


async def _update(
    factory: async_sessionmaker[AsyncSession],
    content: Content,
    assistant: Assistant,
    user_id: int,
    now: dt.datetime,
    *,
    text: str = "/menu",
    chat_id: int | None = None,
) -> None:
    """One update through the router in its own transaction, as the adapter runs it (without its bookkeeping)."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, timezone="Asia/Ho_Chi_Minh", staff_chat_id=STAFF_GROUP, admin_ids=[ADMIN]
    )
    async with factory() as session, session.begin():
        user = await session.get(User, user_id)
        assert user is not None
        ctx = Context(content, settings, session, user, now)
        inc = Incoming(user_id, chat_id or user_id, "vi", text=text, kind="command" if text[0] == "/" else "text")
        if text.startswith("/"):
            await assistant.on_command(text[1:], "", inc, ctx)
        else:
            await assistant.on_text(inc, ctx)


async def _conversations(factory: async_sessionmaker[AsyncSession]) -> dict[dt.date, int]:
    async with factory() as session:
        rows = (await session.execute(select(ConversationCount.day, ConversationCount.conversations))).all()
    return {day: n for day, n in rows}


async def test_a_conversation_across_midnight_begins_once_on_the_new_day(db_url: str, content: Content) -> None:
    """The adapter moves last_seen_at only once a minute: the router moves it when a conversation begins, so the
    next update seconds later, still within that minute, does not begin another one. Staff in their group are not
    counted."""
    engine = await _engine(db_url)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with factory() as session, session.begin():
            seen = _vn(19, 23, 59, 30)
            session.add(User(id=7, chat_id=7, lang="vi", created_at=seen - dt.timedelta(days=3), last_seen_at=seen))
        assistant = Assistant(_Nlu(), [])
        await _update(factory, content, assistant, 7, _vn(20, 0, 0, 10))
        await _update(factory, content, assistant, 7, _vn(20, 0, 0, 20))
        await _update(factory, content, assistant, 7, _vn(20, 0, 0, 40), text="/help")
        assert await _conversations(factory) == {dt.date(2026, 3, 20): 1}
        # an hour later, in the staff group: work, not a conversation with the assistant
        await _update(factory, content, assistant, 7, _vn(20, 1, 30), text="/stats", chat_id=STAFF_GROUP)
        assert await _conversations(factory) == {dt.date(2026, 3, 20): 1}
    finally:
        await engine.dispose()


async def test_staff_and_admins_begin_no_conversation_in_a_private_chat(db_url: str, content: Content) -> None:
    """An admin asking /stats, or a staff member trying the bot, is at work: only citizens' conversations count."""
    engine = await _engine(db_url)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with factory() as session, session.begin():
            for uid in (ADMIN, 31, 32):
                day_before = NOW - dt.timedelta(days=1)
                session.add(User(id=uid, chat_id=uid, lang="vi", created_at=day_before, last_seen_at=day_before))
            session.add(StaffMember(user_id=31, role="staff", added_by=ADMIN))
        assistant = Assistant(_Nlu(), [StatsCapability()])
        await _update(factory, content, assistant, ADMIN, NOW, text="/stats")
        await _update(factory, content, assistant, 31, NOW, text="/menu")
        assert await _conversations(factory) == {}
        await _update(factory, content, assistant, 32, NOW, text="/menu")  # a citizen
        assert await _conversations(factory) == {dt.date(2026, 3, 20): 1}
    finally:
        await engine.dispose()


async def test_the_router_counts_the_writing_style_it_detected(db_url: str, content: Content) -> None:
    engine = await _engine(db_url)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with factory() as session, session.begin():
            session.add(User(id=8, chat_id=8, lang="vi", created_at=NOW, last_seen_at=NOW))
        assistant = Assistant(_Nlu("procedure_info"), [StatsCapability()])
        for text in ("how do I renew my ID card", "lam lai can cuoc o dau", "làm lại căn cước"):
            await _update(factory, content, assistant, 8, NOW, text=text)
        async with factory() as session:
            rows = {(r.style, r.handled) for r in (await session.scalars(select(StyleCount))).all()}
        assert rows == {("en", 1), ("vi_plain", 1), ("vi_accented", 1)}
    finally:
        await engine.dispose()


async def test_conversations_are_counted_by_the_running_bot(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    """Through Telegram (the emulator) and the real adapter: one chat's updates within 30 minutes are one
    conversation, the same chat after a longer silence a second, another chat a third. The silence is made by
    moving the citizen's last_seen_at back, as the clock would have moved on."""
    runtime = await bots.start(db_url)
    tz = ZoneInfo(runtime.settings.timezone)
    started = dt.datetime.now(dt.UTC).astimezone(tz).date()
    an, binh = await sandbox.user(7901, first_name="An"), await sandbox.user(7902, first_name="Bình")

    async def command(user: SimUser, name: str) -> None:
        await user.command(name)
        await user.wait_for(count=1, timeout=15)

    async def silence(user: SimUser, minutes: int) -> None:
        async with unit_of_work(runtime.sessions) as s:
            row = await s.get(User, user.id)
            assert row is not None
            row.last_seen_at -= dt.timedelta(minutes=minutes)

    async def counted() -> int:
        async with unit_of_work(runtime.sessions) as s:
            return int(await s.scalar(select(func.coalesce(func.sum(ConversationCount.conversations), 0))) or 0)

    seen = []
    await command(an, "menu")  # the first message ever
    seen.append(await counted())
    await command(an, "help")
    await silence(an, 29)
    await command(an, "menu")
    seen.append(await counted())  # the same chat, never 30 minutes apart: one conversation
    await silence(an, 31)
    menu = an.last
    assert menu is not None and menu.labels
    await an.press(menu, menu.labels[-1])  # back after the gap with a button press on the old menu
    await an.wait_for(count=1, timeout=15)
    seen.append(await counted())
    await command(binh, "menu")  # a second chat
    seen.append(await counted())
    if dt.datetime.now(dt.UTC).astimezone(tz).date() != started:
        pytest.skip("the test ran across midnight in Vietnam, where a new day begins a conversation too")
    assert seen == [1, 1, 2, 3]
    async with unit_of_work(runtime.sessions) as s:
        rows = (await s.execute(select(ConversationCount.day, ConversationCount.conversations))).all()
    assert [(day, n) for day, n in rows] == [(started, 3)]


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
    for days_ago, conversations in [(0, 4), (6, 2), (20, 5), (40, 9)]:
        session.add(ConversationCount(day=TODAY - dt.timedelta(days=days_ago), conversations=conversations))
    for days_ago, kind, errors in [(0, "timeout", 2), (3, "server_error", 3), (3, "timeout", 1), (15, "auth", 1),
                                   (45, "timeout", 7)]:  # fmt: skip
        session.add(PortalErrorCount(day=TODAY - dt.timedelta(days=days_ago), kind=kind, errors=errors))


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
        t("stats_conversations", count=6),
        t("stats_messages", total=5, share=80),
        t("stats_intents", items="eid_activate 3, check_status 1"),
        t("stats_handover", opened=3, open_now=1, take=t("stats_minutes", m=15), close=t("stats_minutes", m=40)),
        t("stats_ratings", count=1, avg="4.0"),
        t("stats_feedback", items="eid_otp 1👍/1👎"),
        t("stats_portal_errors", total=6, items="server_error 3, timeout 3"),
    ]
    assert month.splitlines() == [
        t("stats_window", days=30),
        t("stats_users", count=3),
        t("stats_conversations", count=11),
        t("stats_messages", total=9, share=67),
        t("stats_intents", items="eid_activate 3, procedure_info 2, check_status 1"),
        t("stats_handover", opened=4, open_now=1, take=t("stats_minutes", m=20), close=t("stats_hours", h=1, m=5)),
        t("stats_ratings", count=2, avg="3.0"),
        t("stats_feedback", items="eid_otp 1👍/1👎, check_status 0👍/1👎"),
        t("stats_portal_errors", total=7, items="server_error 3, timeout 3, auth 1"),
    ]


async def test_stats_on_an_empty_database(sessions: async_sessionmaker[AsyncSession], content: Content) -> None:
    [reply] = await _stats(sessions, content, ADMIN)
    assert content.text("handover.stats_messages_none", "vi") in reply.text
    assert content.text("handover.stats_ratings_none", "vi") in reply.text
    assert content.text("handover.stats_conversations", "vi", count=0) in reply.text
    assert content.text("handover.stats_portal_errors_none", "vi") in reply.text


async def test_stats_are_for_staff_only(sessions: async_sessionmaker[AsyncSession], content: Content) -> None:
    [reply] = await _stats(sessions, content, 12345)
    assert reply.text == content.text("common.unknown_command", "vi")
