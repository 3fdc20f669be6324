"""Feedback on answers: [👍] [👎] once per topic per conversation, "what was missing?", the review queue."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import structlog
from sqlalchemy import ColumnElement, exists, select

from actions.base import Capability, Context
from actions.handover import handover_button
from core.pii import redact
from kernel import callbacks
from kernel.types import Button, Incoming, Reply
from store.models import NluReview
from store.models_handover import Feedback

log = structlog.get_logger(__name__)

UP = "fb_up"  # fb_up|<topic>|<answer key>
DOWN = "fb_down"  # fb_down|<topic>|<answer key>
SKIP = "fb_skip"  # fb_skip|<feedback id>: no comment after 👎
CALLBACKS = (UP, DOWN, SKIP)
callbacks.register(*CALLBACKS)

CONVERSATION = dt.timedelta(hours=12)  # a topic is offered 👍/👎 once within this window
COMMENT_WAIT = dt.timedelta(minutes=30)  # how long the next text counts as the answer to "what was missing?"
TOPIC_CHARS = 24
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-:]")


def _arg(value: str, limit: int) -> str:
    return _UNSAFE.sub("_", value)[:limit]


async def should_offer(ctx: Context, topic: str, *, window: dt.timedelta = CONVERSATION) -> bool:
    """True the first time `topic` is answered in a conversation window, and records that it was offered.

    The router calls it after an answer and appends `feedback_buttons` only when it says True.
    """
    key = _arg(topic, TOPIC_CHARS)
    seen = await ctx.session.scalar(
        select(Feedback.id)
        .where(Feedback.user_id == ctx.user.id, Feedback.topic == key, Feedback.offered_at >= ctx.now - window)
        .limit(1)
    )
    if seen is not None:
        return False
    ctx.session.add(Feedback(user_id=ctx.user.id, topic=key, offered_at=ctx.now))
    await ctx.session.flush()
    return True


def feedback_buttons(ctx: Context, topic: str, answer: str = "") -> tuple[Button, ...]:
    """[👍] [👎] for an answer on `topic`; `answer` is the content key shown (kept with a 👎 for maintainers)."""
    key = _arg(topic, TOPIC_CHARS)
    # fb_down|<topic>|<answer> must fit Telegram's 64 bytes of callback data.
    shown = _arg(answer, callbacks.MAX_BYTES - len(DOWN) - len(key) - 2)
    return (
        Button(ctx.t("handover.fb_btn_up"), callbacks.encode(UP, key, shown)),
        Button(ctx.t("handover.fb_btn_down"), callbacks.encode(DOWN, key, shown)),
    )


async def offer_feedback(ctx: Context, topic: str, answer: str, reply: Reply) -> Reply:
    """`reply` with a [👍] [👎] row added the first time `topic` is answered in this conversation.

    Capabilities call it on their answers (a guide finished, a procedure's fee, a dossier's status), not on the
    questions they ask, so citizens are asked once per answer and at most once per topic.
    """
    if not await should_offer(ctx, topic):
        return reply
    return dataclasses.replace(reply, buttons=(*reply.buttons, feedback_buttons(ctx, topic, answer)))


class FeedbackCapability(Capability):
    """Owns the `fb_` buttons; after a 👎 it takes the next text as the comment (for COMMENT_WAIT)."""

    callbacks: tuple[str, ...] = CALLBACKS

    def __init__(self, *, window: dt.timedelta = CONVERSATION, comment_wait: dt.timedelta = COMMENT_WAIT) -> None:
        self.window = window
        self.comment_wait = comment_wait

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if action == SKIP:
            row = await self._pending(ctx, args[0] if args else "")
            if row is not None:
                row.awaiting_comment = False
            return [self._after_down(ctx, row, edit=True)]
        if not args:
            return [Reply(ctx.t("common.stale_button"))]
        topic = _arg(args[0], TOPIC_CHARS)
        answer = _arg(args[1], 48) if len(args) > 1 else ""
        row = await self._row(ctx, topic, answer)
        row.voted_at = ctx.now
        if action == UP:
            row.vote, row.awaiting_comment = 1, False
            log.info("feedback.vote", topic=topic, vote=1)
            return [Reply(ctx.t("handover.fb_thanks_up"))]
        row.vote, row.awaiting_comment = -1, True
        if row.review_id is None and not ctx.user.review_opt_out:  # their no to the review queue (/privacy)
            review = NluReview(
                user_id=ctx.user.id,
                text=f"[{answer or topic}]",
                intent=topic,
                confidence=0.0,
                ranking="[]",
                reason="feedback",
                created_at=ctx.now,
            )
            ctx.session.add(review)
            await ctx.session.flush()
            row.review_id = review.id
        log.info("feedback.vote", topic=topic, vote=-1)
        skip = Button(ctx.t("handover.fb_btn_skip"), callbacks.encode(SKIP, row.id))
        return [Reply(ctx.t("handover.fb_ask_missing"), ((skip,),))]

    def text_wait(self, user_id: ColumnElement[int]) -> ColumnElement[bool]:
        """The router's one-statement probe: a comment is awaited (wants_text then checks how long ago)."""
        return exists().where(Feedback.user_id == user_id, Feedback.awaiting_comment.is_(True))

    async def wants_text(self, ctx: Context) -> bool:
        return await self._pending(ctx) is not None

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        row = await self._pending(ctx)
        if row is None:
            return []
        row.awaiting_comment = False
        review = await ctx.session.get(NluReview, row.review_id) if row.review_id is not None else None
        if review is not None:
            review.text = f"[{row.answer or row.topic}] {redact(inc.text or '')}"[:1000]
        log.info("feedback.comment", topic=row.topic)
        return [self._after_down(ctx, row)]

    # ---------------------------------------------------------------------------------------------------

    async def _row(self, ctx: Context, topic: str, answer: str) -> Feedback:
        """The feedback row of this topic in the current conversation (made now if the offer was not recorded)."""
        row = await ctx.session.scalar(
            select(Feedback)
            .where(
                Feedback.user_id == ctx.user.id, Feedback.topic == topic, Feedback.offered_at >= ctx.now - self.window
            )
            .order_by(Feedback.offered_at.desc(), Feedback.id.desc())
            .limit(1)
        )
        if row is None:
            row = Feedback(user_id=ctx.user.id, topic=topic, offered_at=ctx.now)
            ctx.session.add(row)
        row.answer = answer or row.answer
        await ctx.session.flush()
        return row

    async def _pending(self, ctx: Context, feedback_id: str = "") -> Feedback | None:
        query = select(Feedback).where(
            Feedback.user_id == ctx.user.id,
            Feedback.awaiting_comment.is_(True),
            Feedback.voted_at >= ctx.now - self.comment_wait,
        )
        if feedback_id:
            if not feedback_id.isdigit():
                return None
            query = query.where(Feedback.id == int(feedback_id))
        row: Feedback | None = await ctx.session.scalar(query.order_by(Feedback.voted_at.desc()).limit(1))
        return row

    def _after_down(self, ctx: Context, row: Feedback | None, *, edit: bool = False) -> Reply:
        origin = f"fb:{row.topic}" if row is not None else "menu"
        return Reply(
            ctx.t("handover.fb_thanks_down"),
            (
                (handover_button(ctx, origin=origin, label="handover.btn_still_need"),),
                (Button(ctx.t("common.btn_menu"), callbacks.encode("c_menu")),),
            ),
            edit=edit,
        )
