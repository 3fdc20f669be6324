"""The dashboard's figures, each from the database, per local day over a period: SQL aggregates grouped by day
(on indexed columns), days without rows filled with zeros here."""

from __future__ import annotations

import datetime as dt
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Date, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.errors import KINDS as PORTAL_ERROR_KINDS
from portal.errors import OTHER as OTHER_PORTAL_ERROR
from store.models import NluReview
from store.models_dossier import DossierFollow
from store.models_handover import (
    CLOSED,
    ConversationCount,
    Feedback,
    MessageCount,
    PortalErrorCount,
    StyleCount,
    Ticket,
    TicketMessage,
)
from store.models_news import DRAFT, Broadcast, Delivery
from store.models_reminders import CANCELLED, STOPPED, Reminder
from store.models_staff import AuditEntry

HANDOVER_INTENT = "human_handover"  # domain.yml: asking for a person is counted apart from "understood"
TOP_INTENTS = 10
RECENT_BROADCASTS = 20
TOP_FEEDBACK = 15
FEEDBACK_COMMENTS = 3  # latest comments shown per answer
APPROVED = "broadcast.approve"  # the audit action of the second staff member (actions/broadcast_ui.py)
_AUDITED_BROADCAST = re.compile(r"#(\d+) ")  # Broadcast.audit_detail() starts with "#<id> "


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date
    since: dt.datetime  # UTC start of `first` in local time
    until: dt.datetime  # UTC end of `last`
    tz: ZoneInfo

    @classmethod
    def ending(cls, now: dt.datetime, tz: ZoneInfo, days: int) -> Period:
        last = now.astimezone(tz).date()
        first = last - dt.timedelta(days=days - 1)
        since = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
        until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
        return cls(first, last, since, until, tz)

    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def local_day(column: Any, dialect: str, period: Period) -> ColumnElement[Any]:
    """The local calendar day of a UTC timestamp column, computed by the database so it can GROUP BY it.

    SQLite has no time zones: the zone's offset at the period's end is added (exact for Asia/Ho_Chi_Minh, which
    has no daylight saving time)."""
    if dialect == "postgresql":
        return cast(func.timezone(period.tz.key, column), Date)
    offset = period.tz.utcoffset(dt.datetime.combine(period.last, dt.time()))
    minutes = int(offset.total_seconds() // 60) if offset else 0
    return func.date(column, f"{minutes:+d} minutes")


def _as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: a value that actually occurred (p90 of 10 waits is the 9th shortest)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Day:
    day: dt.date
    messages: int = 0
    fallbacks: int = 0
    handovers_asked: int = 0  # messages read as human_handover
    tickets: int = 0
    reminders: int = 0
    feedback_up: int = 0
    feedback_down: int = 0
    reminders_snoozed: int = 0  # repeats asked for from a sent reminder (snooze or "tomorrow")
    reminders_stopped: int = 0
    reminders_cancelled: int = 0
    conversations: int = 0  # begun that day (actions/stats.py begins_conversation)
    # portal error kind (portal/errors.py KINDS) -> lookups that got no usable answer that day
    portal_errors: dict[str, int] = field(default_factory=dict)

    @property
    def portal_errors_total(self) -> int:
        return sum(self.portal_errors.values())

    @property
    def understood(self) -> int:
        return self.messages - self.fallbacks - self.handovers_asked

    @property
    def understood_share(self) -> float | None:
        return self.understood / self.messages if self.messages else None


@dataclass
class Waits:
    """Waits to the first staff answer of the tickets opened in the period (all, or in / outside office hours)."""

    waits_s: list[float] = field(default_factory=list)
    unanswered: int = 0

    @property
    def opened(self) -> int:
        return len(self.waits_s) + self.unanswered

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.waits_s) if self.waits_s else None

    @property
    def p90_s(self) -> float | None:
        return percentile(self.waits_s, 90)


@dataclass
class FeedbackRow:
    topic: str
    answer: str  # the content key shown; "" when the vote came without one
    up: int
    down: int
    comments: list[str] = field(default_factory=list)  # latest first, already redacted when stored

    @property
    def key(self) -> str:
        return self.answer or self.topic


@dataclass
class BroadcastRow:
    id: int
    status: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    audience: str
    total: int
    states: dict[str, int]
    created_by: int = 0
    approved_by: int | None = None  # the second staff member, when the audience needed one
    ended_at: dt.datetime | None = None  # finished, or (still running) the last delivery so far

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, (_aware(self.ended_at) - _aware(self.started_at)).total_seconds())


@dataclass
class Dashboard:
    period: Period
    days: list[Day]
    top_intents: list[tuple[str, int]] = field(default_factory=list)
    waits_s: list[float] = field(default_factory=list)  # per ticket opened in the period and answered
    unanswered: int = 0  # tickets opened in the period with no staff answer yet
    open_now: int = 0
    broadcasts: list[BroadcastRow] = field(default_factory=list)
    # True: opened in office hours (Ticket.opened_in_hours), False: outside them
    by_hours: dict[bool, Waits] = field(default_factory=lambda: {True: Waits(), False: Waits()})
    feedback: list[FeedbackRow] = field(default_factory=list)
    dossiers_followed: int = 0  # now, not over the period
    # style of writing (actions/stats.py STYLES) -> (messages, not understood) over the period
    styles: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return sum(d.messages for d in self.days)

    @property
    def understood_share(self) -> float | None:
        total = self.messages
        return sum(d.understood for d in self.days) / total if total else None

    @property
    def wait_median_s(self) -> float | None:
        return statistics.median(self.waits_s) if self.waits_s else None

    @property
    def wait_p90_s(self) -> float | None:
        return percentile(self.waits_s, 90)

    def total(self, name: str) -> int:
        return sum(int(getattr(d, name)) for d in self.days)

    def portal_error_total(self, kind: str) -> int:
        return sum(d.portal_errors.get(kind, 0) for d in self.days)

    @property
    def portal_error_days(self) -> list[Day]:
        """The days of the period with a portal error, latest first (the table shows only these)."""
        return [d for d in reversed(self.days) if d.portal_errors_total]


async def compute(session: AsyncSession, period: Period, *, feedback_limit: int | None = TOP_FEEDBACK) -> Dashboard:
    """Every figure of the period; `feedback_limit` None lists every answer voted on (the CSV)."""
    dialect = session.get_bind().dialect.name
    days = {d: Day(d) for d in period.days()}

    in_days = (MessageCount.day >= period.first, MessageCount.day <= period.last)
    asked = func.sum(case((MessageCount.intent == HANDOVER_INTENT, MessageCount.handled), else_=0))
    rows = await session.execute(
        select(MessageCount.day, func.sum(MessageCount.handled), func.sum(MessageCount.fallbacks), asked)
        .where(*in_days)
        .group_by(MessageCount.day)
    )
    for day, handled, fallbacks, handovers in rows.all():
        d = days[_as_date(day)]
        d.messages, d.fallbacks, d.handovers_asked = int(handled or 0), int(fallbacks or 0), int(handovers or 0)

    handled = func.sum(MessageCount.handled)
    top = await session.execute(
        select(MessageCount.intent, handled)
        .where(*in_days, MessageCount.intent != "")
        .group_by(MessageCount.intent)
        .order_by(handled.desc(), MessageCount.intent)
        .limit(TOP_INTENTS)
    )
    top_intents = [(str(i), int(n)) for i, n in top.all()]

    by_style = await session.execute(
        select(StyleCount.style, func.sum(StyleCount.handled), func.sum(StyleCount.fallbacks))
        .where(StyleCount.day >= period.first, StyleCount.day <= period.last)
        .group_by(StyleCount.style)
    )
    styles = {str(st): (int(n or 0), int(f or 0)) for st, n, f in by_style.all()}

    # The anonymous daily counters: a row per day (and kind), keyed by the local day already.
    for day, n in (
        await session.execute(
            select(ConversationCount.day, ConversationCount.conversations).where(
                ConversationCount.day >= period.first, ConversationCount.day <= period.last
            )
        )
    ).all():
        days[_as_date(day)].conversations = int(n or 0)
    for day, kind, n in (
        await session.execute(
            select(PortalErrorCount.day, PortalErrorCount.kind, PortalErrorCount.errors).where(
                PortalErrorCount.day >= period.first, PortalErrorCount.day <= period.last
            )
        )
    ).all():
        errors = days[_as_date(day)].portal_errors
        shown = str(kind) if kind in PORTAL_ERROR_KINDS else OTHER_PORTAL_ERROR  # a kind this console predates
        errors[shown] = errors.get(shown, 0) + int(n or 0)

    opened_day = local_day(Ticket.created_at, dialect, period)
    in_period = (Ticket.created_at >= period.since, Ticket.created_at < period.until)
    for day, n in (
        await session.execute(select(opened_day, func.count()).where(*in_period).group_by(opened_day))
    ).all():
        if _as_date(day) in days:
            days[_as_date(day)].tickets = int(n)

    # Waiting time to the first staff answer relayed to the citizen (handover_messages, direction "staff"): a
    # correlated MIN per ticket of the period, found through the ticket_id index, not a scan of every message.
    first_answer = (
        select(func.min(TicketMessage.at))
        .where(TicketMessage.ticket_id == Ticket.id, TicketMessage.direction == "staff")
        .correlate(Ticket)
        .scalar_subquery()
    )
    waits = await session.execute(select(Ticket.created_at, Ticket.opened_in_hours, first_answer).where(*in_period))
    dash = Dashboard(period, list(days.values()), top_intents, styles=styles)
    for created, in_hours, first in waits.all():
        part = dash.by_hours[bool(in_hours)]
        if first is None:
            dash.unanswered += 1
            part.unanswered += 1
        else:
            first_at = _aware(first if isinstance(first, dt.datetime) else dt.datetime.fromisoformat(str(first)))
            wait = max(0.0, (first_at - _aware(created)).total_seconds())
            dash.waits_s.append(wait)
            part.waits_s.append(wait)
    dash.open_now = int(await session.scalar(select(func.count(Ticket.id)).where(Ticket.status != CLOSED)) or 0)

    sent_day = local_day(Reminder.sent_at, dialect, period)
    for day, n in (
        await session.execute(
            select(sent_day, func.count())
            .where(Reminder.sent_at >= period.since, Reminder.sent_at < period.until)
            .group_by(sent_day)
        )
    ).all():
        if _as_date(day) in days:
            days[_as_date(day)].reminders = int(n)

    # A snooze or "tomorrow" is a new row pointing at the sent one (parent_id), created when the citizen asked:
    # the (parent_id, created_at) index finds the period's repeats among a year of reminders.
    asked_day = local_day(Reminder.created_at, dialect, period)
    for day, n in (
        await session.execute(
            select(asked_day, func.count())
            .where(
                Reminder.parent_id.is_not(None),
                Reminder.created_at >= period.since,
                Reminder.created_at < period.until,
            )
            .group_by(asked_day)
        )
    ).all():
        if _as_date(day) in days:
            days[_as_date(day)].reminders_snoozed = int(n)
    # Stopped and cancelled are final states: updated_at is when the reminder got there; the (state, updated_at)
    # index reads only the period's rows in those states.
    ended_day = local_day(Reminder.updated_at, dialect, period)
    for day, state, n in (
        await session.execute(
            select(ended_day, Reminder.state, func.count())
            .where(
                Reminder.state.in_((STOPPED, CANCELLED)),
                Reminder.updated_at >= period.since,
                Reminder.updated_at < period.until,
            )
            .group_by(ended_day, Reminder.state)
        )
    ).all():
        if _as_date(day) in days:
            d = days[_as_date(day)]
            if state == STOPPED:
                d.reminders_stopped = int(n)
            else:
                d.reminders_cancelled = int(n)
    dash.dossiers_followed = int(await session.scalar(select(func.count(DossierFollow.id))) or 0)

    await _feedback(session, dash, dialect, feedback_limit)

    casts = (
        await session.scalars(
            select(Broadcast)
            .where(Broadcast.status != DRAFT, Broadcast.created_at >= period.since, Broadcast.created_at < period.until)
            .order_by(Broadcast.created_at.desc())
            .limit(RECENT_BROADCASTS)
        )
    ).all()
    states: dict[int, dict[str, int]] = {b.id: {} for b in casts}
    if casts:
        for bid, state, n in (
            await session.execute(
                select(Delivery.broadcast_id, Delivery.state, func.count())
                .where(Delivery.broadcast_id.in_(list(states)))
                .group_by(Delivery.broadcast_id, Delivery.state)
            )
        ).all():
            states[int(bid)][str(state)] = int(n)
    approvers: dict[int, int] = {}
    last_delivery: dict[int, dt.datetime] = {}
    if casts:
        # An approval comes after its broadcast was composed, so the at index bounds the audit rows read.
        for actor, detail in (
            await session.execute(
                select(AuditEntry.actor_id, AuditEntry.detail)
                .where(AuditEntry.at >= min(b.created_at for b in casts), AuditEntry.action == APPROVED)
                .order_by(AuditEntry.at)
            )
        ).all():
            found = _AUDITED_BROADCAST.match(str(detail))
            if found and int(found.group(1)) in states:
                approvers[int(found.group(1))] = int(actor)
        running = [b.id for b in casts if b.started_at is not None and b.finished_at is None]
        if running:
            for bid, at in (
                await session.execute(
                    select(Delivery.broadcast_id, func.max(Delivery.sent_at))
                    .where(Delivery.broadcast_id.in_(running))
                    .group_by(Delivery.broadcast_id)
                )
            ).all():
                if at is not None:
                    last_delivery[int(bid)] = _aware(
                        at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(str(at))
                    )
    for b in casts:
        audience = _audience(b)
        dash.broadcasts.append(
            BroadcastRow(
                b.id,
                b.status,
                b.created_at,
                b.started_at,
                audience,
                b.total,
                states[b.id],
                created_by=b.created_by,
                approved_by=approvers.get(b.id),
                ended_at=b.finished_at or last_delivery.get(b.id),
            )
        )
    return dash


async def _feedback(session: AsyncSession, dash: Dashboard, dialect: str, limit: int | None) -> None:
    """👍/👎 per answer shown, by the day of the vote (voted_at is indexed), most 👎 first, with the latest
    comments. A comment is kept only in the review queue's row of the 👎 (actions/feedback.py), as
    "[<answer>] <redacted text>"; without one the row holds "[<answer>]" alone."""
    period = dash.period
    voted = (Feedback.voted_at >= period.since, Feedback.voted_at < period.until, Feedback.vote.is_not(None))
    vote_day = local_day(Feedback.voted_at, dialect, period)
    days = {d.day: d for d in dash.days}
    for day, vote, n in (
        await session.execute(
            select(vote_day, Feedback.vote, func.count()).where(*voted).group_by(vote_day, Feedback.vote)
        )
    ).all():
        d = days.get(_as_date(day))
        if d is not None and vote == 1:
            d.feedback_up = int(n)
        elif d is not None and vote == -1:
            d.feedback_down = int(n)

    up = func.sum(case((Feedback.vote == 1, 1), else_=0))
    down = func.sum(case((Feedback.vote == -1, 1), else_=0))
    query = (
        select(Feedback.topic, Feedback.answer, up, down)
        .where(*voted)
        .group_by(Feedback.topic, Feedback.answer)
        .order_by(down.desc(), up, Feedback.topic, Feedback.answer)
    )
    rows = {
        (str(t), str(a or "")): FeedbackRow(str(t), str(a or ""), int(u or 0), int(n or 0))
        for t, a, u, n in (await session.execute(query if limit is None else query.limit(limit))).all()
    }
    dash.feedback = list(rows.values())
    if not any(r.down for r in dash.feedback):
        return
    rank = (
        func.row_number()
        .over(
            partition_by=(Feedback.topic, Feedback.answer),
            order_by=(Feedback.voted_at.desc(), Feedback.id.desc()),
        )
        .label("rank")
    )
    comments = (
        select(Feedback.topic, Feedback.answer, NluReview.text, rank)
        .join(NluReview, NluReview.id == Feedback.review_id)
        .where(*voted, Feedback.vote == -1, NluReview.reason == "feedback", NluReview.text.like("[%] %"))
    )
    if limit is not None:
        comments = comments.where(Feedback.topic.in_(sorted({r.topic for r in dash.feedback})))
    latest = comments.subquery()
    for topic, answer, text in (
        await session.execute(
            select(latest.c.topic, latest.c.answer, latest.c.text)
            .where(latest.c.rank <= FEEDBACK_COMMENTS)
            .order_by(latest.c.topic, latest.c.answer, latest.c.rank)
        )
    ).all():
        row = rows.get((str(topic), str(answer or "")))
        comment = str(text).split("] ", 1)[1].strip()
        if row is not None and comment:
            row.comments.append(comment)


def _aware(at: dt.datetime) -> dt.datetime:
    # SQLite hands aggregates (MIN, MAX) back as naive text, without the column type that marks them UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _audience(b: Broadcast) -> str:
    """Where a broadcast went, as stored: its area ids (older rows: district / ward) and topics."""
    where = [str(v) for v in (getattr(b, "areas", ""), getattr(b, "district", None), getattr(b, "ward", None)) if v]
    text = " / ".join(where).replace(",", ", ") or "toàn tỉnh"
    return f"{text} · {b.topics.replace(',', ', ')}" if b.topics else text
