"""The dashboard's figures, each from the database, per local day over a period: SQL aggregates grouped by day
(on indexed columns), days without rows filled with zeros here."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Date, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models_handover import CLOSED, MessageCount, Ticket, TicketMessage
from store.models_news import DRAFT, Broadcast, Delivery
from store.models_reminders import Reminder

HANDOVER_INTENT = "human_handover"  # domain.yml: asking for a person is counted apart from "understood"
TOP_INTENTS = 10
RECENT_BROADCASTS = 20


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

    @property
    def understood(self) -> int:
        return self.messages - self.fallbacks - self.handovers_asked

    @property
    def understood_share(self) -> float | None:
        return self.understood / self.messages if self.messages else None


@dataclass
class BroadcastRow:
    id: int
    status: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    audience: str
    total: int
    states: dict[str, int]


@dataclass
class Dashboard:
    period: Period
    days: list[Day]
    top_intents: list[tuple[str, int]] = field(default_factory=list)
    waits_s: list[float] = field(default_factory=list)  # per ticket opened in the period and answered
    unanswered: int = 0  # tickets opened in the period with no staff answer yet
    open_now: int = 0
    broadcasts: list[BroadcastRow] = field(default_factory=list)

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


async def compute(session: AsyncSession, period: Period) -> Dashboard:
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
    waits = await session.execute(select(Ticket.created_at, first_answer).where(*in_period))
    dash = Dashboard(period, list(days.values()), top_intents)
    for created, first in waits.all():
        if first is None:
            dash.unanswered += 1
        else:
            first_at = first if isinstance(first, dt.datetime) else dt.datetime.fromisoformat(str(first))
            if first_at.tzinfo is None:
                first_at = first_at.replace(tzinfo=dt.UTC)
            dash.waits_s.append(max(0.0, (first_at - created).total_seconds()))
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
    for b in casts:
        audience = _audience(b)
        dash.broadcasts.append(
            BroadcastRow(b.id, b.status, b.created_at, b.started_at, audience, b.total, states[b.id])
        )
    return dash


def _audience(b: Broadcast) -> str:
    """Where a broadcast went, as stored: its area ids (older rows: district / ward) and topics."""
    where = [str(v) for v in (getattr(b, "areas", ""), getattr(b, "district", None), getattr(b, "ward", None)) if v]
    text = " / ".join(where).replace(",", ", ") or "toàn tỉnh"
    return f"{text} · {b.topics.replace(',', ', ')}" if b.topics else text
