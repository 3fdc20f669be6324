"""Delivers due reminders at most once, across restarts, crashes and several bot processes on one database.

The scheduler only calls `Dispatcher.tick()` (every second); the database decides who sends what:

1. Recover. A row `claimed` longer than the lease was never handed to the sender (its process died between
   claiming and sending): it goes back to `pending`. A row `sending` longer than the lease has an unknown
   outcome — the process died while Telegram may or may not have delivered it. It becomes `unknown` and is not
   resent: a reminder shown twice is worse than one shown late, and Telegram offers no idempotency key to make
   a resend safe. These are counted (`stats["unknown"]`) and logged.
2. Claim. One statement moves up to `batch` due `pending` rows to `claimed` under this dispatcher's id:
   `UPDATE … WHERE id IN (SELECT … ORDER BY due_at LIMIT n FOR UPDATE SKIP LOCKED)`, committed at once, so
   two processes on PostgreSQL never claim the same row (SQLite serialises writers, which gives the same).
3. Send. Per row: a conditional `claimed → sending` commit (it fails if the citizen cancelled meanwhile or the
   claim was recovered by another process), the send, then `sent` (or the failure's state). At most
   `concurrency` sends run at once, one citizen's reminders one after another.

Between ticks the dispatcher arms one timer for the nearest due row that falls before the next tick, so a
reminder goes out at its time, not up to a tick later; a full batch re-ticks at once to drain a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import uuid
from collections import Counter, defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.backoff import backoff_s
from kernel.content import Content
from kernel.outbox import Blocked, MaybeDelivered, Migrated, RetryLater, Sender, SendError
from reminders.messages import LATE_AFTER, Formatter
from reminders.store import deadline_end
from store.base import utcnow
from store.models import User
from store.models_reminders import (
    CANCELLED,
    CLAIMED,
    DROPPED,
    FAILED,
    OPEN_STATES,
    PENDING,
    SENDING,
    SENT,
    UNKNOWN,
    Reminder,
)

log = structlog.get_logger(__name__)

TICK_JOB_ID = "reminders.tick"


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class Dispatcher:
    """Claims due reminders from the database and hands them to a `Sender`. Safe to run in several processes."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: Sender,
        content: Content,
        tz: ZoneInfo,
        batch: int = 100,
        *,
        concurrency: int = 4,
        lease_s: float = 120.0,
        max_attempts: int = 5,
        backoff_s: float = 5.0,
        backoff_max_s: float = 900.0,
        interval_s: float = 1.0,
        worker_id: str | None = None,
    ) -> None:
        if batch < 1 or concurrency < 1:
            raise ValueError("batch and concurrency must be >= 1")
        self.sessions = sessions
        self.sender = sender
        self.format = Formatter(content, tz)
        self.tz = tz
        self.batch = batch
        self.concurrency = concurrency
        self.lease = dt.timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.interval_s = interval_s
        self.worker_id = (worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")[:64]
        self.stats: Counter[str] = Counter()
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[int]] = set()
        self._closed = False

    # ---- the scheduler's entry point ----------------------------------------------------------------

    async def tick(self, now: dt.datetime | None = None) -> int:
        """Deliver what is due at `now` (default: the clock). Returns how many were handed to the sender.

        With an explicit `now` (tests) no wake-up timer is armed. A tick that finds another still running
        returns 0 at once: the running one will see the same rows.
        """
        if self._lock.locked() or self._closed:
            return 0
        async with self._lock:
            handed, full, next_due = await self._tick(now or utcnow())
        if now is None and not self._closed:
            self._arm(0.0 if full else None, next_due)
        return handed

    async def aclose(self, grace_s: float = 10.0) -> None:
        """Stop the wake-up timer and let a tick in flight finish (call on shutdown, before the sender closes).

        A tick is not cancelled: a cancel landing after Telegram accepted a reminder, before `sent` is written,
        would leave the row `sending` and make a delivered reminder `unknown`. Once closed, a tick sends nothing
        new (its remaining claims go back to `pending` at once), so the wait is one send per citizen at most.
        Only a tick still running after `grace_s` (a hung connection) is cancelled; the lease recovers its rows.
        """
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout=grace_s)
        except TimeoutError:
            log.warning("reminders_close_timeout", grace_s=grace_s)
            for task in list(self._tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        else:
            self._lock.release()

    # ---- internals ------------------------------------------------------------------------------------

    def _arm(self, delay: float | None, next_due: dt.datetime | None) -> None:
        if delay is None:
            if next_due is None:
                return
            delay = max(0.005, (next_due - utcnow()).total_seconds())
            if delay >= self.interval_s:
                return  # the scheduler's next tick comes first
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.tick())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tick(self, now: dt.datetime) -> tuple[int, bool, dt.datetime | None]:
        await self._recover(now)
        ids = await self._claim(now)
        handed = 0
        if ids:
            async with self.sessions() as session:
                pairs = (
                    await session.execute(
                        select(Reminder, User).join(User, User.id == Reminder.user_id).where(Reminder.id.in_(ids))
                    )
                ).all()
            by_user: dict[int, list[tuple[Reminder, User]]] = defaultdict(list)
            for row, user in sorted(pairs, key=lambda p: (p[0].due_at, p[0].id)):
                by_user[user.id].append((row, user))
            gate = asyncio.Semaphore(self.concurrency)

            async def one_citizen(items: list[tuple[Reminder, User]]) -> int:
                n = 0
                async with gate:
                    for row, user in items:  # one chat at a time: Telegram allows ~1 message/s per chat
                        n += await self._deliver(row, user, now)
                return n

            handed = sum(await asyncio.gather(*(one_citizen(items) for items in by_user.values())))
            log.info("reminders_tick", claimed=len(ids), handed=handed)
        next_due = None
        if len(ids) < self.batch:
            async with self.sessions() as session:
                next_due = (
                    await session.execute(
                        select(Reminder.due_at).where(Reminder.state == PENDING).order_by(Reminder.due_at).limit(1)
                    )
                ).scalar_one_or_none()
        return handed, len(ids) >= self.batch, next_due

    async def _recover(self, now: dt.datetime) -> None:
        cutoff = now - self.lease
        async with self.sessions() as session, session.begin():
            back = await session.execute(
                update(Reminder)
                .where(Reminder.state == CLAIMED, Reminder.claimed_at < cutoff)
                .values(state=PENDING, claimed_by=None, claimed_at=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            lost = (
                await session.execute(
                    update(Reminder)
                    .where(Reminder.state == SENDING, Reminder.claimed_at < cutoff)
                    .values(state=UNKNOWN, last_error="crashed_while_sending", updated_at=now)
                    .returning(Reminder.id)
                    .execution_options(synchronize_session=False)
                )
            ).scalars()
            unknown = list(lost)
        if _rowcount(back):
            self.stats["reclaimed"] += _rowcount(back)
            log.info("reminders_reclaimed", count=_rowcount(back))
        if unknown:
            self.stats["unknown"] += len(unknown)
            log.warning("reminders_outcome_unknown", count=len(unknown), reminder_ids=unknown[:20])

    async def _claim(self, now: dt.datetime) -> list[int]:
        due = (
            select(Reminder.id)
            .where(Reminder.state == PENDING, Reminder.due_at <= now)
            .order_by(Reminder.due_at)
            .limit(self.batch)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer at a time anyway
        )
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(Reminder)
                .where(Reminder.id.in_(due.scalar_subquery()), Reminder.state == PENDING)
                .values(state=CLAIMED, claimed_by=self.worker_id, claimed_at=now, updated_at=now)
                .returning(Reminder.id)
                .execution_options(synchronize_session=False)
            )
            return list(result.scalars())

    async def _transition(self, rid: int, from_states: tuple[str, ...], **values: Any) -> bool:
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(Reminder)
                .where(Reminder.id == rid, Reminder.state.in_(from_states), Reminder.claimed_by == self.worker_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return _rowcount(result) == 1

    async def _deliver(self, row: Reminder, user: User, now: dt.datetime) -> int:
        """Send one claimed reminder (or the note that replaces it); returns 1 if handed to the sender."""
        if self._closed:
            # Shutting down: hand the claim back now rather than after the lease, so another process sends it.
            if await self._transition(row.id, (CLAIMED,), state=PENDING, claimed_by=None, claimed_at=None):
                self.stats["released"] += 1
            return 0
        if not user.active:
            await self._transition(row.id, (CLAIMED,), state=CANCELLED, last_error="inactive", updated_at=now)
            self.stats["cancelled"] += 1
            return 0
        lang = user.lang
        end = deadline_end(row.deadline_at, self.tz) if row.deadline_at is not None else None
        expired = end is not None and now >= end
        if expired:
            # One note per missed deadline, however many of its reminders were waiting.
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(Reminder)
                    .where(
                        Reminder.user_id == row.user_id,
                        Reminder.group_key == row.group_key,
                        Reminder.deadline_at == row.deadline_at,
                        or_(
                            Reminder.state == PENDING,
                            and_(Reminder.state == CLAIMED, Reminder.claimed_by == self.worker_id),
                        ),
                        Reminder.id != row.id,
                    )
                    .values(state=DROPPED, last_error="deadline_passed", updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            reply = self.format.dropped(row, lang, now)
        else:
            reply = self.format.message(row, lang, now)
        late = now - row.remind_at > LATE_AFTER
        if not await self._transition(row.id, (CLAIMED,), state=SENDING, claimed_at=now, updated_at=now):
            self.stats["skipped"] += 1  # cancelled by the citizen, or recovered by another process
            return 0
        attempts = row.attempts + 1
        try:
            message_id = await self.sender.send(user.chat_id, reply)
        except Blocked:
            await self._blocked(row, now)
        except RetryLater as exc:
            await self._retry(row, now, attempts, exc)
        except Migrated as exc:
            # Not a delivery: move the chat and try again at once.
            async with self.sessions() as session, session.begin():
                await session.execute(update(User).where(User.id == row.user_id).values(chat_id=exc.new_chat_id))
            await self._transition(
                row.id, (SENDING,), state=PENDING, due_at=now, attempts=attempts, claimed_by=None, updated_at=now
            )
        except SendError as exc:
            log.warning("reminder_failed", reminder_id=row.id, error=type(exc).__name__)
            self.stats["failed"] += 1
            await self._transition(
                row.id, (SENDING, UNKNOWN), state=FAILED, attempts=attempts, last_error="send_error", updated_at=now
            )
        except Exception:
            # A bug or an unexpected library error: we cannot know whether Telegram got it. Do not resend.
            log.exception("reminder_send_crashed", reminder_id=row.id)
            self.stats["unknown"] += 1
            await self._transition(
                row.id, (SENDING,), state=UNKNOWN, attempts=attempts, last_error="sender_crashed", updated_at=now
            )
        else:
            final = DROPPED if expired else SENT
            await self._transition(
                row.id,
                (SENDING, UNKNOWN),  # UNKNOWN: the send outlived the lease and another process gave up on it
                state=final,
                sent_at=utcnow(),
                message_id=message_id,
                late=late and not expired,
                attempts=attempts,
                last_error="deadline_passed" if expired else None,
                updated_at=now,
            )
            self.stats["dropped" if expired else "sent"] += 1
            if late and not expired:
                self.stats["late"] += 1
            log.debug("reminder_sent", reminder_id=row.id, late=late, dropped=expired)
        return 1

    async def _blocked(self, row: Reminder, now: dt.datetime) -> None:
        """The citizen blocked the bot: stop writing to them, and cancel what was waiting for them."""
        async with self.sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == row.user_id).values(active=False))
            await session.execute(
                update(Reminder)
                .where(Reminder.id == row.id, Reminder.state.in_((SENDING, UNKNOWN)))
                .values(state=FAILED, last_error="blocked", updated_at=now)
                .execution_options(synchronize_session=False)
            )
            result = await session.execute(
                update(Reminder)
                .where(Reminder.user_id == row.user_id, Reminder.state.in_(OPEN_STATES))
                .values(state=CANCELLED, last_error="blocked", updated_at=now)
                .execution_options(synchronize_session=False)
            )
        self.stats["blocked"] += 1
        log.info("reminder_user_blocked", reminder_id=row.id, cancelled=_rowcount(result))

    async def _retry(self, row: Reminder, now: dt.datetime, attempts: int, exc: RetryLater) -> None:
        if isinstance(exc, MaybeDelivered):
            # A timeout after the request left: Telegram may have shown it. At most once: do not resend.
            self.stats["unknown"] += 1
            await self._transition(
                row.id, (SENDING,), state=UNKNOWN, attempts=attempts, last_error="timeout", updated_at=now
            )
            return
        if attempts >= self.max_attempts:
            log.warning("reminder_gave_up", reminder_id=row.id, attempts=attempts)
            self.stats["failed"] += 1
            await self._transition(
                row.id, (SENDING,), state=FAILED, attempts=attempts, last_error="retries_exhausted", updated_at=now
            )
            return
        wait = backoff_s(attempts, base_s=self.backoff_s, cap_s=self.backoff_max_s, retry_after_s=exc.after_s)
        self.stats["retried"] += 1
        await self._transition(
            row.id,
            (SENDING,),
            state=PENDING,
            due_at=now + dt.timedelta(seconds=wait),
            attempts=attempts,
            claimed_by=None,
            claimed_at=None,
            last_error="retry_later",
            updated_at=now,
        )


def schedule(scheduler: Any, dispatcher: Dispatcher, interval_s: float = 1.0) -> None:
    """Add the tick to an APScheduler 3 AsyncIOScheduler: one job with a fixed id, never two at once.

    The job holds no reminder: the database does (APScheduler's job stores must not be shared by replicas). On
    shutdown, use core/scheduler.py's DrainingScheduler and close the dispatcher before it: a plain
    AsyncIOScheduler's shutdown cancels a tick in flight, whatever `aclose` then waits for.
    """
    scheduler.add_job(
        dispatcher.tick,
        "interval",
        seconds=interval_s,
        id=TICK_JOB_ID,
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
