"""Staff figures (/stats): activity, conversations, understanding, top intents, handovers, ratings, 👍/👎 and portal
errors over 7 and 30 days; and the anonymous daily counters the router keeps for them and the console: messages by
intent and by style of writing, and conversations begun."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import bindparam, case, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from actions.base import Capability, Context
from actions.staff import is_staff, refused
from core.text import has_diacritics
from kernel.types import Incoming, Reply
from store.models import User
from store.models_handover import (
    CLOSED,
    ConversationCount,
    Feedback,
    MessageCount,
    PortalErrorCount,
    StyleCount,
    Ticket,
)

log = structlog.get_logger(__name__)

WINDOWS = (7, 30)
TOP_INTENTS = 5
TOP_TOPICS = 8


# The upsert as one text statement, the same SQL on SQLite and PostgreSQL: SQLAlchemy's dialect-specific
# on_conflict_do_update() construct has no cache key, so it was compiled anew on every typed message.
_COUNT_UPSERT = text(
    "INSERT INTO message_counts (day, intent, handled, fallbacks) VALUES (:day, :intent, 1, :fallbacks) "
    "ON CONFLICT (day, intent) DO UPDATE SET handled = message_counts.handled + 1, "
    "fallbacks = message_counts.fallbacks + excluded.fallbacks"
).bindparams(bindparam("day", type_=MessageCount.__table__.c.day.type))


_STYLE_UPSERT = text(
    "INSERT INTO message_style_counts (day, style, handled, fallbacks) VALUES (:day, :style, 1, :fallbacks) "
    "ON CONFLICT (day, style) DO UPDATE SET handled = message_style_counts.handled + 1, "
    "fallbacks = message_style_counts.fallbacks + excluded.fallbacks"
).bindparams(bindparam("day", type_=StyleCount.__table__.c.day.type))
STYLES = ("vi_accented", "vi_plain", "en")  # the field set's three styles (docs/nlu.md)

_CONVERSATION_UPSERT = text(
    "INSERT INTO conversation_counts (day, conversations) VALUES (:day, 1) "
    "ON CONFLICT (day) DO UPDATE SET conversations = conversation_counts.conversations + 1"
).bindparams(bindparam("day", type_=ConversationCount.__table__.c.day.type))
CONVERSATION_GAP = dt.timedelta(minutes=30)


def writing_style(text: str, spoken: str | None) -> str:
    """How a message is written: Vietnamese with diacritics, English, or Vietnamese without them (teencode too).
    `spoken` is the language the router detected in it (actions/lang.py `detect`), not detected again here."""
    if has_diacritics(text):
        return "vi_accented"
    return "en" if spoken == "en" else "vi_plain"


def begins_conversation(last_seen: dt.datetime | None, now: dt.datetime, tz: ZoneInfo, *, new: bool = False) -> bool:
    """Does a citizen's update at `now` begin a conversation? A conversation is what a staff member would call one
    sitting: it begins with the citizen's first update (a message, a command or a button press) ever (`new`), of the
    local day, or after 30 minutes or more without one (CONVERSATION_GAP), and goes on while they keep writing.

    A day's figure then counts every citizen seen that day at least once (one who writes at 23:50 and again at
    00:10 begins one on each day), and a citizen who comes back after lunch is a second conversation, not the
    same one. `last_seen` is the citizen's row's `last_seen_at` (bot/adapter.py keeps it to the minute), so a
    silence is measured from their last update to within a minute."""
    if new or last_seen is None:
        return True
    if last_seen.tzinfo is None:
        last_seen = last_seen.replace(tzinfo=dt.UTC)
    if now - last_seen >= CONVERSATION_GAP:
        return True
    return last_seen < now and last_seen.astimezone(tz).date() < now.astimezone(tz).date()


async def count_conversation(session: AsyncSession, day: dt.date) -> None:
    """Count one conversation begun on `day` (the local date): one atomic upsert, the same SQL on both databases."""
    await session.execute(_CONVERSATION_UPSERT, {"day": day})


async def count_message(
    session: AsyncSession, day: dt.date, understood: bool, intent: str | None, style: str | None = None
) -> None:
    """Count one handled message for `day` (the local date), and for its style of writing when given. The router
    calls it once per text message.

    Not-understood messages are counted under intent "" whatever the NLU guessed, so the top intents only
    show what the assistant acted on. Atomic upserts, so concurrent updates and replicas never lose a count.
    """
    key = (intent or "")[:64] if understood else ""
    fallback = 0 if understood else 1
    await session.execute(_COUNT_UPSERT, {"day": day, "intent": key, "fallbacks": fallback})
    if style is not None:
        await session.execute(_STYLE_UPSERT, {"day": day, "style": style, "fallbacks": fallback})


@dataclass
class Figures:
    """One window's numbers, computed from the database."""

    days: int
    users: int = 0
    conversations: int = 0
    messages: int = 0
    fallbacks: int = 0
    top_intents: list[tuple[str, int]] = field(default_factory=list)
    handovers: int = 0
    open_now: int = 0
    median_take_s: float | None = None
    median_close_s: float | None = None
    ratings: list[int] = field(default_factory=list)
    feedback: list[tuple[str, int, int]] = field(default_factory=list)  # topic, 👍, 👎
    portal_errors: list[tuple[str, int]] = field(default_factory=list)  # kind (portal/errors.py), count; most first


async def compute(session: AsyncSession, now: dt.datetime, tz: ZoneInfo, days: int) -> Figures:
    """The figures for the last `days` local days, today included."""
    today = now.astimezone(tz).date()
    first_day = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first_day, dt.time(), tz).astimezone(dt.UTC)
    fig = Figures(days)
    fig.users = int(await session.scalar(select(func.count(User.id)).where(User.last_seen_at >= since)) or 0)
    totals = (
        await session.execute(
            select(func.coalesce(func.sum(MessageCount.handled), 0), func.coalesce(func.sum(MessageCount.fallbacks), 0))
            .where(MessageCount.day >= first_day, MessageCount.day <= today)
        )
    ).one()  # fmt: skip
    fig.messages, fig.fallbacks = int(totals[0]), int(totals[1])
    in_window = (ConversationCount.day >= first_day, ConversationCount.day <= today)
    fig.conversations = int(
        await session.scalar(select(func.coalesce(func.sum(ConversationCount.conversations), 0)).where(*in_window)) or 0
    )
    errors = func.sum(PortalErrorCount.errors)
    by_kind = await session.execute(
        select(PortalErrorCount.kind, errors)
        .where(PortalErrorCount.day >= first_day, PortalErrorCount.day <= today)
        .group_by(PortalErrorCount.kind)
        .order_by(errors.desc(), PortalErrorCount.kind)
    )
    fig.portal_errors = [(str(k), int(n)) for k, n in by_kind.all() if n]
    handled = func.sum(MessageCount.handled)
    top = await session.execute(
        select(MessageCount.intent, handled)
        .where(MessageCount.day >= first_day, MessageCount.day <= today, MessageCount.intent != "")
        .group_by(MessageCount.intent)
        .order_by(handled.desc(), MessageCount.intent)
        .limit(TOP_INTENTS)
    )
    fig.top_intents = [(str(i), int(n)) for i, n in top.all()]
    tickets = (await session.scalars(select(Ticket).where(Ticket.created_at >= since))).all()
    fig.handovers = len(tickets)
    fig.open_now = int(await session.scalar(select(func.count(Ticket.id)).where(Ticket.status != CLOSED)) or 0)
    takes = [(t.taken_at - t.created_at).total_seconds() for t in tickets if t.taken_at is not None]
    closes = [
        (t.closed_at - t.created_at).total_seconds()
        for t in tickets
        if t.closed_at is not None and t.taken_at is not None  # a cancelled request never reached a person
    ]
    fig.median_take_s = statistics.median(takes) if takes else None
    fig.median_close_s = statistics.median(closes) if closes else None
    rated = await session.scalars(select(Ticket.rating).where(Ticket.rated_at >= since, Ticket.rating.is_not(None)))
    fig.ratings = [int(r) for r in rated.all() if r is not None]
    up = func.sum(case((Feedback.vote == 1, 1), else_=0))
    down = func.sum(case((Feedback.vote == -1, 1), else_=0))
    votes = await session.execute(
        select(Feedback.topic, up, down)
        .where(Feedback.voted_at >= since, Feedback.vote.is_not(None))
        .group_by(Feedback.topic)
        .order_by((up + down).desc(), Feedback.topic)
        .limit(TOP_TOPICS)
    )
    fig.feedback = [(str(t), int(u or 0), int(d or 0)) for t, u, d in votes.all()]
    return fig


def render(ctx: Context, fig: Figures) -> str:
    def t(key: str, **values: object) -> str:
        return ctx.t(f"handover.{key}", **values)

    def duration(seconds: float | None) -> str:
        if seconds is None:
            return t("stats_none")
        minutes = round(seconds / 60)
        if minutes < 60:
            return t("stats_minutes", m=minutes)
        return t("stats_hours", h=minutes // 60, m=minutes % 60)

    lines = [
        t("stats_window", days=fig.days),
        t("stats_users", count=fig.users),
        t("stats_conversations", count=fig.conversations),
    ]
    if fig.messages:
        share = round(100 * (fig.messages - fig.fallbacks) / fig.messages)
        lines.append(t("stats_messages", total=fig.messages, share=share))
    else:
        lines.append(t("stats_messages_none"))
    if fig.top_intents:
        lines.append(t("stats_intents", items=", ".join(f"{i} {n}" for i, n in fig.top_intents)))
    lines.append(
        t(
            "stats_handover",
            opened=fig.handovers,
            open_now=fig.open_now,
            take=duration(fig.median_take_s),
            close=duration(fig.median_close_s),
        )
    )
    if fig.ratings:
        lines.append(t("stats_ratings", count=len(fig.ratings), avg=f"{statistics.fmean(fig.ratings):.1f}"))
    else:
        lines.append(t("stats_ratings_none"))
    if fig.feedback:
        lines.append(t("stats_feedback", items=", ".join(f"{topic} {u}👍/{d}👎" for topic, u, d in fig.feedback)))
    else:
        lines.append(t("stats_feedback_none"))
    if fig.portal_errors:
        total = sum(n for _, n in fig.portal_errors)
        lines.append(t("stats_portal_errors", total=total, items=", ".join(f"{k} {n}" for k, n in fig.portal_errors)))
    else:
        lines.append(t("stats_portal_errors_none"))
    return "\n".join(lines)


class StatsCapability(Capability):
    """`/stats` for staff; refuses everyone else with the unknown-command answer."""

    commands: tuple[str, ...] = ("stats",)

    async def observe(self, inc: Incoming, ctx: Context, intent: str | None) -> None:
        """The router's report on each typed message: counted by local day, understood or not."""
        day = ctx.now.astimezone(ZoneInfo(ctx.settings.timezone)).date()
        style = writing_style(inc.text, inc.spoken) if inc.text else None
        await count_message(ctx.session, day, intent is not None, intent, style)

    async def on_command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        if not await is_staff(ctx):
            refused(ctx, name)
            return [Reply(ctx.t("common.unknown_command"))]
        tz = ZoneInfo(ctx.settings.timezone)
        parts = [ctx.t("handover.stats_title", now=ctx.now.astimezone(tz).strftime("%H:%M %d/%m/%Y"))]
        for days in WINDOWS:
            parts.append(render(ctx, await compute(ctx.session, ctx.now, tz, days)))
        log.info("stats.shown", staff=ctx.user.id)
        return [Reply("\n\n".join(parts))]
