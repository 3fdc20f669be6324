"""Feedback on answers: offered once per topic, 👎 reaches the review queue with the comment, then handover."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

import actions.router  # noqa: F401  (registers the c_menu button the replies carry)
from actions.base import Context, Services
from actions.feedback import FeedbackCapability, feedback_buttons, should_offer
from actions.handover import HandoverCapability, OfficeHours
from core.settings import Settings
from kernel import callbacks
from kernel.content import DEFAULT_DIR, Content
from kernel.types import Button, Incoming, Reply
from store.all_models import Base
from store.models import NluReview, User
from store.models_handover import Feedback, Ticket

CITIZEN = 7002
GROUP = -100600
NOW = dt.datetime(2026, 3, 3, 2, 0, tzinfo=dt.UTC)  # Tuesday 09:00 in Vietnam


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Reply]] = []

    async def send(self, chat_id: int, reply: Reply, *, paid: bool = False) -> int:
        self.sent.append((chat_id, reply))
        return len(self.sent)


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> Content:
    directory = tmp_path_factory.mktemp("content")
    for name in ("common.yml", "handover.yml"):
        shutil.copy(DEFAULT_DIR / name, directory / name)
    return Content.load(directory)


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine: AsyncEngine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'fb.db'}")

    @event.listens_for(engine.sync_engine, "connect")
    def _fk(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


class Chat:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], content: Content) -> None:
        self.sessions = sessions
        self.content = content
        self.now = NOW
        self.sender = Sender()
        self.settings = Settings(_env_file=None, staff_chat_id=GROUP)  # type: ignore[call-arg]
        self.fb = FeedbackCapability()
        self.handover = HandoverCapability(
            OfficeHours.parse(timezone="Asia/Ho_Chi_Minh"),
            content=content,
            sessions=sessions,
            services=Services(sender=self.sender),
        )

    async def ctx_run(self, work: Any) -> Any:
        async with self.sessions() as session, session.begin():
            user = await session.get(User, CITIZEN)
            if user is None:
                user = User(id=CITIZEN, chat_id=CITIZEN, lang="vi")
                session.add(user)
                await session.flush()
            ctx = Context(self.content, self.settings, session, user, self.now, Services(sender=self.sender))
            result = await work(ctx)
        for send in ctx.after_commit:  # as the adapter does: ticket posts leave once the update is committed
            await send()
        return result

    async def offer(self, topic: str, answer: str = "") -> tuple[Button, ...] | None:
        async def work(ctx: Context) -> tuple[Button, ...] | None:
            return feedback_buttons(ctx, topic, answer) if await should_offer(ctx, topic) else None

        result: tuple[Button, ...] | None = await self.ctx_run(work)
        return result

    async def press(self, button: Button) -> list[Reply]:
        inc = Incoming(CITIZEN, CITIZEN, "vi", display_name="An", callback=callbacks.decode(button.data))
        cap = self.fb if inc.callback and inc.callback[0].startswith("fb_") else self.handover
        replies: list[Reply] = await self.ctx_run(lambda ctx: cap.on_callback(inc, ctx))
        return replies

    async def say(self, text: str) -> list[Reply] | None:
        inc = Incoming(CITIZEN, CITIZEN, "vi", text=text)

        async def work(ctx: Context) -> list[Reply] | None:
            if not await self.fb.wants_text(ctx):
                return None
            replies: list[Reply] = await self.fb.on_text(inc, ctx)
            return replies

        result: list[Reply] | None = await self.ctx_run(work)
        return result

    async def rows(self, model: Any) -> list[Any]:
        async with self.sessions() as session:
            return list((await session.scalars(select(model))).all())


@pytest.fixture
def chat(sessions: async_sessionmaker[AsyncSession], content: Content) -> Chat:
    return Chat(sessions, content)


def t(content: Content, key: str, **values: object) -> str:
    return content.text(f"handover.{key}", "vi", **values)


async def test_offered_once_per_topic_per_conversation(chat: Chat) -> None:
    first = await chat.offer("eid_otp_problem", "troubleshoot.otp_not_received")
    assert first is not None and [b.label for b in first] == ["👍", "👎"]
    assert await chat.offer("eid_otp_problem") is None
    assert await chat.offer("check_status") is not None
    chat.now = NOW + dt.timedelta(hours=13)  # a new conversation
    assert await chat.offer("eid_otp_problem") is not None


async def test_button_payloads_fit_telegram_and_decode(chat: Chat) -> None:
    buttons = await chat.offer("a" * 60, "guides.level1.step_3_with_a_very_long_key_name_indeed")
    assert buttons is not None
    for b in buttons:
        assert len(b.data.encode()) <= callbacks.MAX_BYTES
        action, args = callbacks.decode(b.data)
        assert action in ("fb_up", "fb_down") and args[0] == "a" * 24


async def test_thumbs_up_is_recorded(chat: Chat, content: Content) -> None:
    buttons = await chat.offer("procedure_info", "procedures.birth")
    assert buttons is not None
    [thanks] = await chat.press(buttons[0])
    assert thanks.text == t(content, "fb_thanks_up")
    [row] = await chat.rows(Feedback)
    assert (row.topic, row.answer, row.vote, row.voted_at) == ("procedure_info", "procedures.birth", 1, NOW)
    assert await chat.rows(NluReview) == []
    assert await chat.say("hello") is None  # nothing is waiting for a comment


async def test_thumbs_down_reaches_the_review_queue_with_the_comment_then_offers_staff(
    chat: Chat, content: Content
) -> None:
    buttons = await chat.offer("eid_otp_problem", "troubleshoot.otp_not_received")
    assert buttons is not None
    [ask] = await chat.press(buttons[1])
    assert ask.text == t(content, "fb_ask_missing")
    assert [b.label for row in ask.buttons for b in row] == [t(content, "fb_btn_skip")]
    [review] = await chat.rows(NluReview)
    assert (review.reason, review.intent, review.user_id) == ("feedback", "eid_otp_problem", CITIZEN)
    assert "troubleshoot.otp_not_received" in review.text

    # A second 👎 on the same answer does not queue it twice.
    await chat.press(buttons[1])
    assert len(await chat.rows(NluReview)) == 1

    [done] = await chat.say("khong nhan duoc OTP ve so 0912345678") or []
    assert done.text == t(content, "fb_thanks_down")
    [review] = await chat.rows(NluReview)
    assert review.text == "[troubleshoot.otp_not_received] khong nhan duoc OTP ve so [phone]"
    assert await chat.say("cam on") is None  # only the next message is the comment

    still, _menu = (row[0] for row in done.buttons)
    assert still.label == t(content, "btn_still_need")
    [opened] = await chat.press(still)
    [ticket] = await chat.rows(Ticket)
    assert opened.text == t(content, "opened_live", id=ticket.id)
    assert ticket.origin == "fb:eid_otp_problem"
    post = chat.sender.sent[0][1]
    assert t(content, "group_origin_feedback", topic="eid_otp_problem") in post.text


async def test_skip_leaves_the_review_without_comment(chat: Chat, content: Content) -> None:
    buttons = await chat.offer("check_status", "dossier.card")
    assert buttons is not None
    [ask] = await chat.press(buttons[1])
    [skipped] = await chat.press(ask.buttons[0][0])
    assert skipped.text == t(content, "fb_thanks_down") and skipped.edit
    assert await chat.say("something else") is None
    [review] = await chat.rows(NluReview)
    assert review.text == "[dossier.card]"


async def test_the_comment_wait_expires(chat: Chat) -> None:
    buttons = await chat.offer("check_status")
    assert buttons is not None
    await chat.press(buttons[1])
    chat.now = NOW + dt.timedelta(minutes=31)
    assert await chat.say("toi muon hoi cai khac") is None
