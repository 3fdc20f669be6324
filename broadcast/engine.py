"""The delivery engine: sends broadcasts at Telegram's limits, exactly once per recipient, across restarts.

How exactly-once holds:
- Every recipient has a Delivery row, written `pending` when the broadcast starts (one INSERT ... SELECT, with a
  unique (broadcast, user) constraint) - before anything is sent.
- An engine claims a small batch by moving rows `pending` -> `sending` in one committed transaction
  (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so two processes never claim the same row; SQLite
  serialises writers). Only then does it send them, and it records each outcome (`sent`, `failed`, `blocked`,
  `unknown` when a request timed out after it left, or back to `pending` with a retry time) in batches.
- An engine that dies leaves its claimed rows in `sending`. Once its heartbeat is stale another engine marks
  them `unknown`: the message may or may not have reached Telegram (the request may have been answered after
  the crash), and Telegram has no idempotency key to ask, so resending could deliver it twice. We prefer a
  counted, reported uncertainty for a handful of rows (the rows claimed but not yet recorded: a batch the claimer
  holds, one queued, one being sent, and the outcomes not yet written, which are flushed every 0.25 s or once a
  batch is done; at most five batches, about a second of sending) over duplicate announcements to citizens.
  Everything still `pending` is sent by whoever runs next.
- An outcome that could not be written (the database failed for good) leaves its row `sending` under a live
  engine; once the claim is `stale_after_s` old and the engine no longer holds the row, it marks it `unknown`
  too. Without that, one lost write kept a broadcast running for ever.

What the staff member sees meanwhile (the progress message and the final report) is `broadcast/reports.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Table, and_, bindparam, delete, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broadcast.audience import Audience
from broadcast.message import citizen_reply
from broadcast.ratelimit import RateLimiter
from broadcast.reports import Progress, StaffReports, lang_of, progress_of, report_text
from core.backoff import backoff_s
from kernel.content import Content
from kernel.outbox import Blocked, MaybeDelivered, Migrated, RetryLater, Sender, SendError, Throttled
from kernel.types import Reply
from store.base import utcnow
from store.db import unit_of_work
from store.models import User
from store.models_news import (
    BLOCKED,
    DONE,
    FAILED,
    PENDING,
    QUEUED,
    RUNNING,
    SCHEDULED,
    SENDING,
    SENT,
    UNKNOWN,
    Broadcast,
    BroadcastWorker,
    Delivery,
)

log = structlog.get_logger(__name__)

_D: Table = Delivery.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    user_id: int
    chat_id: int
    lang: str
    attempts: int


@dataclass(slots=True)
class Outcome:
    id: int
    state: str  # sent | failed | blocked | pending (retry or released)
    chat_id: int
    user_id: int
    message_id: int | None = None
    error: str | None = None
    retry_at: dt.datetime | None = None
    attempt: int = 0  # 1 when this try counts towards max_attempts


@dataclass(slots=True)
class Job:
    id: int
    paid: bool
    replies: dict[str, Reply]


class BroadcastEngine:
    """Runs in the bot process as a background task (`run_forever`), or alone from the CLI (`run_until_idle`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: Sender,
        content: Content,
        *,
        rate: float = 30.0,
        paid_rate: float = 1000.0,
        headroom: float = 0.02,
        batch_size: int | None = None,
        concurrency: int = 64,
        max_attempts: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        progress_every_s: float = 3.0,
        stale_after_s: float = 30.0,
        idle_poll_s: float = 1.0,
        worker_id: str | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.sender = sender
        self.content = content
        self.rate = rate
        self.paid_rate = paid_rate
        self.limiter = RateLimiter(rate, paid_rate, headroom=headroom)
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.progress_every_s = progress_every_s
        self.stale_after_s = stale_after_s
        self.idle_poll_s = idle_poll_s
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:16]}"
        self.clock = clock
        self.stats: dict[str, int] = dict.fromkeys(
            ("sent", "failed", "blocked", "retried", "flood_429", "unknown_marked", "progress_edits"), 0
        )
        self._stopping = False
        self._wake = asyncio.Event()
        self._last_heartbeat = 0.0
        self._last_recovery = -1e9
        self._holding: set[int] = set()  # rows claimed by this engine whose outcome is not written yet
        self.reports = StaffReports(
            sessions,
            sender,
            content,
            self.limiter,
            self.stats,
            rate_of=self._rate,
            progress_every_s=progress_every_s,
            backoff_max_s=backoff_max_s,
            clock=clock,
        )

    # ---- lifecycle -----------------------------------------------------------------------------------

    def wake(self) -> None:
        """Something was queued (Send now): look at once instead of at the next poll."""
        self._wake.set()

    def count_reply(self, chat_id: int) -> None:
        """A conversation reply went out to `chat_id`: it uses Telegram's overall budget this engine paces to
        (Telegram counts every message a bot sends), and that chat's own 1 message/s. Without this, citizens
        chatting during a broadcast pushed the bot over 30 msg/s: 429s, and replies held back by them."""
        self.limiter.normal.debit()
        self.limiter.hold(chat_id, self.limiter.per_chat_interval)

    async def stop(self) -> None:
        """Finish the sends in flight, hand unsent claimed rows back to `pending`, and leave `run_forever`."""
        self._stopping = True
        self._wake.set()

    async def run_forever(self) -> None:
        log.info("broadcast.engine_started", worker=self.worker_id)
        try:
            while not self._stopping:
                try:
                    worked = await self.tick()
                except Exception:
                    log.exception("broadcast.tick_failed")
                    worked = False
                if not worked and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.idle_poll_s):
                            await self._wake.wait()
                    self._wake.clear()
        finally:
            await self.reports.drain()
            await self._retire()
            log.info("broadcast.engine_stopped", worker=self.worker_id)

    async def run_until_idle(self, broadcast_id: int | None = None) -> None:
        """Deliver until nothing is queued or running (or until `broadcast_id` is done); for the CLI and tests."""
        try:
            while not self._stopping:
                worked = await self.tick()
                if not await self._busy(broadcast_id):
                    return
                if not worked:
                    await asyncio.sleep(min(self.idle_poll_s, 0.2))
        finally:
            await self.reports.drain()
            await self._retire()

    async def _busy(self, broadcast_id: int | None) -> bool:
        async with self.sessions() as s:
            stmt = select(func.count()).select_from(Broadcast)
            if broadcast_id is not None:
                stmt = stmt.where(Broadcast.id == broadcast_id, Broadcast.status.in_((QUEUED, RUNNING, SCHEDULED)))
            else:
                now = self.clock()
                stmt = stmt.where(
                    or_(
                        Broadcast.status.in_((QUEUED, RUNNING)),
                        and_(Broadcast.status == SCHEDULED, Broadcast.send_at <= now),
                    )
                )
            return int((await s.execute(stmt)).scalar_one()) > 0

    async def _retire(self) -> None:
        with contextlib.suppress(Exception):
            async with unit_of_work(self.sessions) as s:
                await s.execute(delete(BroadcastWorker).where(BroadcastWorker.id == self.worker_id))

    # ---- one step ----------------------------------------------------------------------------------------

    async def tick(self) -> bool:
        """Housekeeping, start what is due, deliver what can be delivered now. True when something was sent."""
        await self._housekeeping(force=True)
        await self._start_due()
        worked = False
        async with self.sessions() as s:
            running = list(
                (await s.execute(select(Broadcast).where(Broadcast.status == RUNNING).order_by(Broadcast.id))).scalars()
            )
        for b in running:
            if self._stopping:
                break
            if await self._deliver(b):
                worked = True
            await self._finish_if_done(b.id)
        return worked

    async def _housekeeping(self, *, force: bool = False) -> None:
        loop = asyncio.get_running_loop()
        now_m = loop.time()
        if force or now_m - self._last_heartbeat >= 1.0:
            self._last_heartbeat = now_m
            await self._heartbeat()
        if force or now_m - self._last_recovery >= max(1.0, self.stale_after_s / 3):
            self._last_recovery = now_m
            await self._recover_stale()

    async def _heartbeat(self) -> None:
        now = self.clock()
        async with unit_of_work(self.sessions) as s:
            res = await s.execute(
                update(BroadcastWorker).where(BroadcastWorker.id == self.worker_id).values(heartbeat_at=now)
            )
            if res.rowcount == 0:  # type: ignore[attr-defined]
                s.add(BroadcastWorker(id=self.worker_id, heartbeat_at=now))

    async def _recover_stale(self) -> None:
        """Rows left `sending` by an engine whose heartbeat stopped become `unknown` (see the module docstring).

        So do this engine's own rows `sending` for longer than `stale_after_s` that it no longer holds: their
        outcome was lost (a write that failed for good), and without this the engine, alive and beating, would
        keep the broadcast running for ever. A row is held from the moment its claim commits, so a row claimed a
        moment ago is never taken for lost."""
        cutoff = self.clock() - dt.timedelta(seconds=self.stale_after_s)
        alive = select(BroadcastWorker.id).where(BroadcastWorker.heartbeat_at >= cutoff)
        lost = and_(Delivery.claimed_by == self.worker_id, Delivery.claimed_at < cutoff)
        if self._holding:
            lost = and_(lost, Delivery.id.not_in(sorted(self._holding)))
        async with unit_of_work(self.sessions) as s:
            res = await s.execute(
                update(Delivery)
                .where(
                    Delivery.state == SENDING,
                    Delivery.claimed_by != self.worker_id,
                    Delivery.claimed_by.not_in(alive),
                )
                .values(state=UNKNOWN, error="engine stopped mid-send")
                .execution_options(synchronize_session=False)
            )
            n = int(res.rowcount or 0)  # type: ignore[attr-defined]
            res = await s.execute(
                update(Delivery)
                .where(Delivery.state == SENDING, lost)
                .values(state=UNKNOWN, error="outcome lost")
                .execution_options(synchronize_session=False)
            )
            own = int(res.rowcount or 0)  # type: ignore[attr-defined]
            await s.execute(delete(BroadcastWorker).where(BroadcastWorker.heartbeat_at < cutoff))
        if n:
            self.stats["unknown_marked"] += n
            log.warning("broadcast.unknown_marked", count=n)
        if own:
            self.stats["unknown_marked"] += own
            log.error("broadcast.outcome_lost", count=own)

    async def _start_due(self) -> None:
        now = self.clock()
        async with unit_of_work(self.sessions) as s:
            await s.execute(
                update(Broadcast)
                .where(Broadcast.status == SCHEDULED, Broadcast.send_at <= now)
                .values(status=QUEUED)
                .execution_options(synchronize_session=False)
            )
            queued = list((await s.execute(select(Broadcast.id).where(Broadcast.status == QUEUED))).scalars())
        for bid in queued:
            await self._materialise(bid)

    async def _materialise(self, broadcast_id: int) -> None:
        """queued -> running: write one pending Delivery per recipient. Exactly one engine wins the update."""
        now = self.clock()
        async with unit_of_work(self.sessions) as s:
            res = await s.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id, Broadcast.status == QUEUED)
                .values(status=RUNNING, started_at=now)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return
            b = await s.get(Broadcast, broadcast_id)
            assert b is not None
            audience = Audience.of(b.area_list(), b.topic_list())
            recipients = audience.recipients().subquery()
            await s.execute(
                insert(Delivery).from_select(
                    ["broadcast_id", "user_id", "chat_id", "lang", "state", "attempts"],
                    select(
                        literal(broadcast_id),
                        recipients.c.id,
                        recipients.c.chat_id,
                        recipients.c.lang,
                        literal(PENDING),
                        literal(0),
                    ),
                )
            )
            total = int(
                (await s.execute(select(func.count()).where(Delivery.broadcast_id == broadcast_id))).scalar_one()
            )
            b.total = total
            report_chat = b.report_chat_id
            lang = await lang_of(s, b.created_by)
            text = report_text(self.content, lang, b, Progress(total, {PENDING: total}), self._rate(b), final=False)
        log.info("broadcast.started", broadcast=broadcast_id, recipients=total, paid=b.paid)
        if report_chat is not None:
            self.reports.open(broadcast_id, report_chat, text, now)

    # ---- delivering ------------------------------------------------------------------------------------

    def _rate(self, b: Broadcast) -> float:
        return self.paid_rate if b.paid else self.rate

    def _batch(self, b: Broadcast) -> int:
        # A fifth of a second of sending: small enough that a crash leaves few rows `unknown`, large enough
        # that claiming costs little at 1000 msg/s.
        return self.batch_size or max(1, int(self._rate(b) / 5))

    async def _claim(self, broadcast_id: int, limit: int) -> list[Claimed]:
        now = self.clock()
        pick = (
            select(Delivery.id)
            .where(
                Delivery.broadcast_id == broadcast_id,
                Delivery.state == PENDING,
                or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            )
            .order_by(Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with unit_of_work(self.sessions) as s:
            # Two statements, not `UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`: PostgreSQL
            # may rescan such a subquery, and with SKIP LOCKED every rescan picks other rows, so one engine
            # would claim far more than a batch (found when two engines shared a database: one took it all).
            ids = list((await s.execute(pick)).scalars())
            if not ids:
                return []
            rows = await s.execute(
                update(Delivery)
                # the state guard: on SQLite (no row locks) another engine may have claimed some meanwhile
                .where(Delivery.id.in_(ids), Delivery.state == PENDING)
                .values(state=SENDING, claimed_by=self.worker_id, claimed_at=now)
                .returning(Delivery.id, Delivery.user_id, Delivery.chat_id, Delivery.lang, Delivery.attempts)
                .execution_options(synchronize_session=False)
            )
            claimed = [Claimed(*r) for r in rows.all()]
        self._holding.update(c.id for c in claimed)  # right after the commit, before anything else runs
        claimed.sort(key=lambda c: c.id)
        return claimed

    async def _deliver(self, b: Broadcast) -> bool:
        """Claim and send this broadcast's due rows until none is left right now. True if any was handled."""
        job = Job(
            b.id,
            b.paid,
            {lang: citizen_reply(self.content, b.text, b.photo, lang) for lang in ("vi", "en")},
        )
        batch = self._batch(b)
        queue: asyncio.Queue[Claimed | None] = asyncio.Queue(maxsize=batch)
        done: list[Outcome] = []
        handled = 0
        claimed_here: set[int] = set()
        flush_lock = asyncio.Lock()
        workers_n = max(1, min(self.concurrency, batch))

        async def flush() -> None:
            async with flush_lock:
                if done:
                    chunk = done[:]
                    del done[:]
                    try:
                        await self._record(chunk)
                    except BaseException:
                        done[:0] = chunk  # not written: kept for the next flush (the last one is in `finally`)
                        raise

        async def feeder() -> None:
            nonlocal handled
            try:
                while not self._stopping:
                    await self._housekeeping()
                    rows = await self._claim(b.id, batch)
                    if not rows:
                        break
                    handled += len(rows)
                    claimed_here.update(r.id for r in rows)
                    for row in rows:
                        await queue.put(row)
                    await self.reports.maybe_progress(b.id)
            finally:
                for _ in range(workers_n):
                    await queue.put(None)

        async def worker() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if self._stopping:
                    # claimed but not sent: hand it back untouched, it is not in doubt
                    done.append(Outcome(item.id, PENDING, item.chat_id, item.user_id))
                    continue
                done.append(await self._send_one(job, item))
                if len(done) >= batch:
                    await flush_logged()

        async def flush_logged() -> None:
            try:
                await flush()
            except Exception:
                log.exception("broadcast.record_failed")  # the outcomes stay in `done` for the next flush

        sent_all = asyncio.Event()

        async def flusher() -> None:
            # Stopped by `sent_all`, between two flushes: cancelling it could cut a write in half, and the rolled
            # back outcomes would leave their rows `sending` under a live engine, a broadcast never done.
            while not sent_all.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):
                        await sent_all.wait()
                await flush_logged()

        flushing = asyncio.create_task(flusher())
        try:
            await asyncio.gather(feeder(), *(worker() for _ in range(workers_n)))
        finally:
            sent_all.set()
            await flushing
            try:
                await flush()
            finally:
                # Nothing of this delivery is in flight any more: a row still held here has an outcome that
                # could not be written, and `_recover_stale` marks it unknown once it is stale_after_s old.
                self._holding.difference_update(claimed_here)
        return handled > 0

    async def _send_one(self, job: Job, item: Claimed) -> Outcome:
        chat_id = item.chat_id
        reply = job.replies.get(item.lang, job.replies["vi"])
        for _hop in range(3):  # a group may migrate to a supergroup; follow it, but not in circles
            await self.limiter.acquire(chat_id, paid=job.paid)
            try:
                message_id = await self.sender.send(chat_id, reply, paid=job.paid)
            except Migrated as exc:
                chat_id = exc.new_chat_id
                continue
            except Blocked:
                self.stats["blocked"] += 1
                return Outcome(item.id, BLOCKED, chat_id, item.user_id, error="blocked")
            except RetryLater as exc:
                if isinstance(exc, Throttled):
                    self.stats["flood_429"] += 1
                    self.limiter.pause(exc.after_s)
                    log.warning("broadcast.flood_wait", retry_after=exc.after_s)
                    at = self.clock() + dt.timedelta(seconds=exc.after_s)
                    return Outcome(item.id, PENDING, chat_id, item.user_id, retry_at=at)
                if isinstance(exc, MaybeDelivered):
                    return self._in_doubt(item, chat_id, exc)
                return self._transient(item, chat_id, str(exc))
            except SendError as exc:
                self.stats["failed"] += 1
                return Outcome(item.id, FAILED, chat_id, item.user_id, error=str(exc)[:200])
            except Exception as exc:
                # Not one of the port's errors: a bug or an unexpected library error. Whether Telegram got the
                # message cannot be known, so it is counted unknown and never resent (as a crash mid-send).
                log.warning("broadcast.send_error", error=type(exc).__name__, detail=str(exc)[:200])
                return self._in_doubt(item, chat_id, exc)
            self.stats["sent"] += 1
            return Outcome(item.id, SENT, chat_id, item.user_id, message_id=message_id)
        self.stats["failed"] += 1
        return Outcome(item.id, FAILED, chat_id, item.user_id, error="migrated too often")

    def _in_doubt(self, item: Claimed, chat_id: int, exc: BaseException) -> Outcome:
        """The request left but no answer came: like a crash mid-send, counted `unknown`, never resent."""
        self.stats["unknown_marked"] += 1
        log.warning("broadcast.send_in_doubt", error=type(exc).__name__)
        return Outcome(item.id, UNKNOWN, chat_id, item.user_id, error=f"no answer: {type(exc).__name__}"[:200])

    def _transient(self, item: Claimed, chat_id: int, reason: str) -> Outcome:
        if item.attempts + 1 >= self.max_attempts:
            self.stats["failed"] += 1
            return Outcome(item.id, FAILED, chat_id, item.user_id, error=reason[:200], attempt=1)
        self.stats["retried"] += 1
        backoff = backoff_s(item.attempts + 1, base_s=self.backoff_base_s, cap_s=self.backoff_max_s)
        at = self.clock() + dt.timedelta(seconds=backoff)
        return Outcome(item.id, PENDING, chat_id, item.user_id, error=reason[:200], retry_at=at, attempt=1)

    async def _record(self, outcomes: Sequence[Outcome]) -> None:
        """Write outcomes in one statement; only rows this engine still holds are touched."""
        now = self.clock()
        params: list[dict[str, Any]] = [
            {
                "b_id": o.id,
                "b_state": o.state,
                "b_chat": o.chat_id,
                "b_mid": o.message_id,
                "b_err": o.error,
                "b_sent": now if o.state == SENT else None,
                "b_next": o.retry_at,
                "b_inc": o.attempt,
                "b_owner": None if o.state == PENDING else self.worker_id,
            }
            for o in outcomes
        ]
        stmt = (
            update(_D)
            .where(
                _D.c.id == bindparam("b_id"),
                _D.c.claimed_by == self.worker_id,
                or_(_D.c.state == SENDING, _D.c.state == UNKNOWN),  # IN cannot be used with executemany
            )
            .values(
                state=bindparam("b_state"),
                chat_id=bindparam("b_chat"),
                message_id=bindparam("b_mid"),
                error=bindparam("b_err"),
                sent_at=bindparam("b_sent"),
                next_attempt_at=bindparam("b_next"),
                attempts=_D.c.attempts + bindparam("b_inc"),
                claimed_by=bindparam("b_owner"),
            )
        )
        blocked = [o.user_id for o in outcomes if o.state == BLOCKED]
        async with unit_of_work(self.sessions) as s:
            conn = await s.connection()
            await conn.execute(stmt, params)
            if blocked:
                # later broadcasts skip them; they become active again when they write to the bot
                await s.execute(update(User).where(User.id.in_(blocked)).values(active=False))
        self._holding.difference_update(o.id for o in outcomes)

    # ---- finishing -----------------------------------------------------------------------------------

    async def _finish_if_done(self, broadcast_id: int) -> None:
        """running -> done once no row is pending or in flight; exactly one engine then sends the report."""
        open_rows = (
            select(Delivery.id)
            .where(Delivery.broadcast_id == broadcast_id, Delivery.state.in_((PENDING, SENDING)))
            .limit(1)
        )
        async with unit_of_work(self.sessions) as s:
            if (await s.execute(open_rows)).first() is not None:
                return
            res = await s.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id, Broadcast.status == RUNNING)
                .values(status=DONE, finished_at=self.clock())
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return
            b = await s.get(Broadcast, broadcast_id)
            assert b is not None
            p = await progress_of(s, broadcast_id)
            lang = await lang_of(s, b.created_by)
            text = report_text(self.content, lang, b, p, self._rate(b), final=True)
            chat_id = b.report_chat_id
        log.info(
            "broadcast.done",
            broadcast=broadcast_id,
            sent=p.get(SENT),
            failed=p.get(FAILED),
            blocked=p.get(BLOCKED),
            unknown=p.get(UNKNOWN),
        )
        if chat_id is not None:
            self.reports.final(broadcast_id, chat_id, text)
