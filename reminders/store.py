"""Creating, listing and cancelling reminders: the entry points other capabilities and the portal poller call.

Every function takes the caller's AsyncSession and does not commit: the caller's unit of work decides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.pii import redact
from reminders.when import DEFAULT_TIME, VN_TZ, is_quiet
from store.base import utcnow
from store.models import User
from store.models_reminders import (
    CANCELLED,
    OPEN_STATES,
    PENDING,
    SOURCE_APP,
    SOURCE_CAMPAIGN,
    SOURCE_DOSSIER,
    STOPPED,
    Reminder,
    ReminderDraft,
)

log = structlog.get_logger(__name__)

DEFAULT_CAP = 20  # upcoming reminders a citizen may have at once
TASK_MAX = 500
# Dossier deadlines: reminders this many days before, each at 07:30 local.
DOSSIER_OFFSETS: tuple[tuple[str, int], ...] = (("3d", 3), ("1d", 1), ("0d", 0))


class TooManyReminders(Exception):
    """The citizen already has `cap` upcoming reminders."""

    def __init__(self, count: int, cap: int) -> None:
        super().__init__(f"{count} upcoming reminders (cap {cap})")
        self.count = count
        self.cap = cap


class SyncResult(NamedTuple):
    created: int
    cancelled: int


def morning_of(day: dt.date, tz: ZoneInfo = VN_TZ) -> dt.datetime:
    """07:30 local on `day`, in UTC: when reminders without an explicit time go out (outside quiet hours)."""
    return dt.datetime.combine(day, DEFAULT_TIME, tzinfo=tz).astimezone(dt.UTC)


def deadline_end(deadline: dt.datetime, tz: ZoneInfo = VN_TZ) -> dt.datetime:
    """When a deadline is over. One at local midnight names a whole day ("by 05/12"), so it ends a day later."""
    local = deadline.astimezone(tz)
    if local.time() == dt.time(0, 0):
        return (local + dt.timedelta(days=1)).astimezone(dt.UTC)
    return deadline.astimezone(dt.UTC)


async def count_open(session: AsyncSession, user_id: int) -> int:
    stmt = (
        select(func.count()).select_from(Reminder).where(Reminder.user_id == user_id, Reminder.state.in_(OPEN_STATES))
    )
    return int((await session.execute(stmt)).scalar_one())


async def _by_dedupe(session: AsyncSession, user_id: int, dedupe_key: str) -> Reminder | None:
    stmt = select(Reminder).where(Reminder.user_id == user_id, Reminder.dedupe_key == dedupe_key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def create_reminder(
    session: AsyncSession,
    user_id: int,
    due_at: dt.datetime,
    kind: str,
    text_key: str | None,
    params: Mapping[str, Any] | None = None,
    *,
    task: str | None = None,
    deadline_at: dt.datetime | None = None,
    group_key: str | None = None,
    dedupe_key: str | None = None,
    source: str = SOURCE_APP,
    parent_id: int | None = None,
    cap: int | None = DEFAULT_CAP,
) -> Reminder:
    """Schedule one reminder at `due_at` (aware). Text: `text_key` (a data/content key, e.g.
    "reminders.renewal_due") filled with `params` plus {when} and {deadline}, or else the citizen's `task`.

    With a `dedupe_key`, asking twice returns the first reminder instead of a second one. `cap` (None: no cap)
    raises TooManyReminders when the citizen already has that many upcoming reminders. `deadline_at`: once it
    has passed, the reminder is dropped with a note instead of sent late.
    """
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    if dedupe_key is not None and (existing := await _by_dedupe(session, user_id, dedupe_key)) is not None:
        return existing
    if cap is not None:
        count = await count_open(session, user_id)
        if count >= cap:
            raise TooManyReminders(count, cap)
    row = Reminder(
        **_row_values(
            user_id,
            due_at,
            kind,
            text_key,
            params,
            now=utcnow(),
            task=task,
            deadline_at=deadline_at,
            group_key=group_key,
            dedupe_key=dedupe_key,
            source=source,
            parent_id=parent_id,
        )
    )
    session.add(row)
    await session.flush()
    log.info("reminder_created", reminder_id=row.id, source=source, kind=row.kind)
    return row


def _row_values(
    user_id: int,
    due_at: dt.datetime,
    kind: str,
    text_key: str | None,
    params: Mapping[str, Any] | None,
    *,
    now: dt.datetime,
    task: str | None = None,
    deadline_at: dt.datetime | None = None,
    group_key: str | None = None,
    dedupe_key: str | None = None,
    source: str = SOURCE_APP,
    parent_id: int | None = None,
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "source": source,
        "kind": kind[:32],
        "text_key": text_key,
        "params": json.dumps(dict(params or {}), ensure_ascii=False, default=str),
        "task": redact(task)[:TASK_MAX] if task else None,  # the citizen's words: no ID or phone number is kept
        "remind_at": due_at,
        "due_at": due_at,
        "deadline_at": deadline_at,
        "group_key": group_key or f"{source}:{uuid.uuid4().hex[:16]}",
        "dedupe_key": dedupe_key,
        "parent_id": parent_id,
        "state": PENDING,
        "attempts": 0,
        "late": False,
        "created_at": now,
        "updated_at": now,
    }


async def _insert_ignoring_duplicates(session: AsyncSession, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT (user_id, dedupe_key) DO NOTHING; True when a row was inserted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Reminder).values(**values).on_conflict_do_nothing(index_elements=["user_id", "dedupe_key"])
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


def _dossier_points(deadline: dt.datetime, tz: ZoneInfo) -> list[tuple[str, dt.datetime]]:
    """(offset label, when) of the reminders for one deadline: 3 days, 1 day before and the day, at 07:30."""
    end = deadline_end(deadline, tz)
    day = (end - dt.timedelta(microseconds=1)).astimezone(tz).date()
    points = [(label, morning_of(day - dt.timedelta(days=days), tz)) for label, days in DOSSIER_OFFSETS]
    return [(label, at) for label, at in points if at < end]


def _dossier_key(code: str, kind: str, deadline: dt.datetime, label: str) -> str:
    return f"dl:{code}:{kind}:{deadline.astimezone(dt.UTC):%Y%m%d%H%M}:{label}"


async def sync_dossier_deadlines(
    session: AsyncSession,
    user_id: int,
    code: str,
    deadlines: list[tuple[str, dt.datetime]],
    *,
    tz: ZoneInfo = VN_TZ,
    now: dt.datetime | None = None,
) -> SyncResult:
    """Make the dossier's reminders match its current deadlines: 3 days before, 1 day before and on the day at
    07:30 local for each (kind, deadline). Idempotent: a second call with the same deadlines creates nothing.
    Upcoming reminders for a deadline that disappeared or moved are cancelled. A reminder time already gone is
    skipped; if every one is gone but the deadline is not, one reminder goes out now ("due soon"), unless it is
    night, when it waits for 07:30 if that is still before the deadline. After the citizen pressed "Stop these"
    for this dossier, nothing is created any more.
    """
    now = now or utcnow()
    group = f"dossier:{code}"
    current: set[str] = set()  # every reminder the current deadlines call for, past or future
    to_create: list[tuple[dt.datetime, str, str, dt.datetime, str]] = []  # (at, key, kind, deadline, label)
    for kind, deadline in deadlines:
        if deadline.tzinfo is None:
            raise ValueError("deadlines must be timezone-aware")
        end = deadline_end(deadline, tz)
        points = _dossier_points(deadline, tz)
        for label, at in points:
            key = _dossier_key(code, kind, deadline, label)
            current.add(key)
            if at > now:
                to_create.append((at, key, kind, deadline, label))
        soon_key = _dossier_key(code, kind, deadline, "soon")
        current.add(soon_key)
        if now < end and not any(at > now for _, at in points):
            at = now
            local = now.astimezone(tz)
            if is_quiet(local):
                day = local.date() if local.time() < DEFAULT_TIME else local.date() + dt.timedelta(days=1)
                at = morning_of(day, tz)
            if at < end:
                to_create.append((at, soon_key, kind, deadline, "soon"))

    rows = (
        (
            await session.execute(
                select(Reminder.id, Reminder.dedupe_key, Reminder.state).where(
                    Reminder.user_id == user_id, Reminder.group_key == group, Reminder.source == SOURCE_DOSSIER
                )
            )
        )
        .tuples()
        .all()
    )
    stale = [rid for rid, key, state in rows if state in OPEN_STATES and key not in current]
    cancelled = 0
    if stale:
        result = await session.execute(
            update(Reminder)
            .where(Reminder.id.in_(stale), Reminder.state.in_(OPEN_STATES))
            .values(state=CANCELLED, last_error="deadline_changed", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        cancelled = int(getattr(result, "rowcount", 0) or 0)
    known = {key for _, key, _ in rows}
    created = 0
    if not any(state == STOPPED for _, _, state in rows):
        for at, key, kind, deadline, label in sorted(to_create):
            if key in known:
                continue
            values = _row_values(
                user_id,
                at,
                kind,
                f"reminders.dossier_due_{label}",
                {"code": code, "kind": kind},
                deadline_at=deadline,
                group_key=group,
                dedupe_key=key,
                source=SOURCE_DOSSIER,
                now=now,
            )
            # ON CONFLICT DO NOTHING: another replica may be syncing the same dossier at the same moment.
            if await _insert_ignoring_duplicates(session, values):
                created += 1
    if created or cancelled:
        log.info("dossier_reminders_synced", created=created, cancelled=cancelled, deadlines=len(deadlines))
    return SyncResult(created, cancelled)


DeadlinesHook = Callable[[int, str, list[tuple[str, dt.datetime]]], Awaitable[None]]


def make_deadlines_hook(sessions: async_sessionmaker[AsyncSession], tz: ZoneInfo = VN_TZ) -> DeadlinesHook:
    """The portal poller's `on_deadlines` hook: one unit of work per call."""

    async def hook(user_id: int, code: str, deadlines: list[tuple[str, dt.datetime]]) -> None:
        async with sessions() as session, session.begin():
            await sync_dossier_deadlines(session, user_id, code, deadlines, tz=tz)

    return hook


def _chunks(items: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def create_campaign_reminders(
    session: AsyncSession, user_ids: Iterable[int], due_at: dt.datetime, text: str
) -> int:
    """A staff message delivered as a reminder at `due_at` to each known, active citizen in `user_ids`.

    `text` is plain text written by staff (shown escaped). Calling again with the same text and time creates
    nothing new. Returns how many reminders were created.
    """
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    digest = hashlib.sha256(f"{due_at.astimezone(dt.UTC).isoformat()}|{text}".encode()).hexdigest()[:16]
    group = f"campaign:{digest}"
    ids = sorted(set(user_ids))
    now = utcnow()
    created = 0
    for chunk in _chunks(ids):
        active = set(
            (await session.execute(select(User.id).where(User.id.in_(chunk), User.active.is_(True)))).scalars()
        )
        have = set(
            (
                await session.execute(
                    select(Reminder.user_id).where(Reminder.user_id.in_(chunk), Reminder.dedupe_key == group)
                )
            ).scalars()
        )
        todo = sorted(active - have)
        if not todo:
            continue
        session.add_all(
            Reminder(
                user_id=uid,
                source=SOURCE_CAMPAIGN,
                kind="campaign",
                text_key=None,
                params="{}",
                task=text[:TASK_MAX],
                remind_at=due_at,
                due_at=due_at,
                group_key=group,
                dedupe_key=group,
                state=PENDING,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            for uid in todo
        )
        await session.flush()
        created += len(todo)
    log.info("campaign_reminders_created", created=created, campaign=digest)
    return created


# ---- what the citizen does with their reminders ------------------------------------------------------


async def upcoming(session: AsyncSession, user_id: int, limit: int = DEFAULT_CAP) -> tuple[list[Reminder], int]:
    """The citizen's next `limit` reminders (soonest first) and how many there are in all."""
    where = (Reminder.user_id == user_id, Reminder.state.in_(OPEN_STATES))
    rows = list(
        (await session.execute(select(Reminder).where(*where).order_by(Reminder.remind_at).limit(limit))).scalars()
    )
    total = len(rows) if len(rows) < limit else await count_open(session, user_id)
    return rows, total


async def owned(session: AsyncSession, user_id: int, reminder_id: str | int) -> Reminder | None:
    """The reminder with this id if it belongs to this citizen (ids in callback data are untrusted)."""
    try:
        rid = int(reminder_id)
    except ValueError:
        return None
    row = await session.get(Reminder, rid)
    return row if row is not None and row.user_id == user_id else None


async def cancel(session: AsyncSession, row: Reminder, now: dt.datetime, state: str = CANCELLED) -> bool:
    """Cancel one reminder if it has not been handed to the sender yet. True when it was."""
    result = await session.execute(
        update(Reminder)
        .where(Reminder.id == row.id, Reminder.state.in_(OPEN_STATES))
        .values(state=state, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    done = bool(getattr(result, "rowcount", 0))
    if done:
        row.state = state
    return done


async def cancel_all(session: AsyncSession, user_id: int, now: dt.datetime, group_key: str | None = None) -> int:
    """Cancel the citizen's upcoming reminders (of one group, for "Stop these", then marked `stopped`)."""
    stmt = update(Reminder).where(Reminder.user_id == user_id, Reminder.state.in_(OPEN_STATES))
    state = CANCELLED
    if group_key is not None:
        stmt = stmt.where(Reminder.group_key == group_key)
        state = STOPPED
    result = await session.execute(
        stmt.values(state=state, updated_at=now).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def mark_done(session: AsyncSession, row: Reminder, now: dt.datetime) -> int:
    """The citizen did it: remember when, and cancel any snoozed repeat of it. Returns repeats cancelled."""
    row.done_at = now
    result = await session.execute(
        update(Reminder)
        .where(Reminder.parent_id == row.id, Reminder.state.in_(OPEN_STATES))
        .values(state=CANCELLED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def follow_up(session: AsyncSession, row: Reminder, at: dt.datetime, now: dt.datetime) -> Reminder:
    """Repeat a delivered reminder at `at` (snooze, tomorrow) as a new row, so a sent row is never reopened.

    One repeat per message: pressing again moves the repeat if it is still waiting.
    """
    key = f"next:{row.id}"
    existing = await _by_dedupe(session, row.user_id, key)
    if existing is not None:
        if existing.state == PENDING:
            await session.execute(
                update(Reminder)
                .where(Reminder.id == existing.id, Reminder.state == PENDING)
                .values(remind_at=at, due_at=at, attempts=0, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            existing.remind_at = existing.due_at = at
        return existing
    return await create_reminder(
        session,
        row.user_id,
        at,
        row.kind,
        row.text_key,
        json.loads(row.params or "{}"),
        task=row.task,
        deadline_at=row.deadline_at,
        group_key=row.group_key,
        dedupe_key=key,
        source=row.source,
        parent_id=row.id,
        cap=None,
    )


async def purge_drafts(session: AsyncSession, before: dt.datetime) -> int:
    """Delete reminder drafts started before `before` (left unconfirmed; their buttons no longer work), with the
    words they hold. Returns how many went. The scheduled purge (bot.app.Runtime.purge) runs it every hour."""
    result = await session.execute(delete(ReminderDraft).where(ReminderDraft.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
