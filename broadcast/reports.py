"""What the staff member who sent a broadcast sees: a progress message opened when delivery starts, edited as it
goes on (at most every `progress_every_s`, across all engines: the broadcast row records the last edit), and the
final figures, both as that message edited and as a new message (it notifies).

Reports run as tasks beside delivery, so their pacing and retries never hold up the citizens' sends, and a report
that cannot be sent is logged, never fatal for the broadcast. They share the engine's rate limiter: Telegram counts
every message the bot sends against one budget.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broadcast.ports import MessageEditor
from broadcast.ratelimit import RateLimiter
from core.backoff import backoff_s
from kernel.content import Content
from kernel.outbox import RetryLater, Sender, Throttled
from kernel.types import Reply
from store.db import unit_of_work
from store.models import User
from store.models_news import BLOCKED, FAILED, PENDING, SENDING, SENT, UNKNOWN, Broadcast, Delivery

log = structlog.get_logger(__name__)

STAFF_ATTEMPTS = 4  # tries for one progress edit or report before giving up on it
# Our spacing in a staff member's chat: Telegram allows about one message a second per chat, and the
# conversation (Send now's confirmation, the next command) needs its share of it.
STAFF_INTERVAL_S = 2.0
REPORTS_DRAIN_S = 12.0  # how long stopping waits for the reports still being sent


@dataclass(slots=True)
class Progress:
    """Counts of one broadcast's deliveries by state."""

    total: int = 0
    by_state: dict[str, int] = field(default_factory=dict)

    def get(self, state: str) -> int:
        return self.by_state.get(state, 0)

    @property
    def remaining(self) -> int:
        return self.get(PENDING) + self.get(SENDING)


async def progress_of(session: AsyncSession, broadcast_id: int) -> Progress:
    rows = await session.execute(
        select(Delivery.state, func.count()).where(Delivery.broadcast_id == broadcast_id).group_by(Delivery.state)
    )
    by_state = {state: int(n) for state, n in rows.all()}
    return Progress(sum(by_state.values()), by_state)


def report_text(content: Content, lang: str, b: Broadcast, p: Progress, rate: float, *, final: bool) -> str:
    """The staff member's progress (or final) report for a broadcast."""
    eta_s = int(p.remaining / rate) if rate > 0 else 0
    key = "news.report_final" if final else "news.report_progress"
    return content.text(
        key,
        lang,
        id=b.id,
        total=p.total,
        sent=p.get(SENT),
        failed=p.get(FAILED),
        blocked=p.get(BLOCKED),
        unknown=p.get(UNKNOWN),
        remaining=p.remaining,
        eta=f"{eta_s // 60}:{eta_s % 60:02d}",
    )


async def lang_of(s: AsyncSession, user_id: int) -> str:
    """The language of the staff member who wrote the broadcast (the reports are in it)."""
    lang = (await s.execute(select(User.lang).where(User.id == user_id))).scalar_one_or_none()
    return lang or "vi"


class StaffReports:
    """The progress message and final report of each broadcast an engine runs (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: Sender,
        content: Content,
        limiter: RateLimiter,
        stats: dict[str, int],
        *,
        rate_of: Callable[[Broadcast], float],
        progress_every_s: float,
        backoff_max_s: float,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.sessions = sessions
        self.sender = sender
        self.content = content
        self.limiter = limiter
        self.stats = stats  # the engine's counters: flood_429 and progress_edits are counted here
        self.rate_of = rate_of
        self.progress_every_s = progress_every_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._opening: dict[int, asyncio.Task[None]] = {}  # broadcast id -> sending its progress message
        self._editing: set[int] = set()  # broadcasts whose progress edit is in flight

    # ---- what the engine calls -------------------------------------------------------------------------

    def open(self, broadcast_id: int, chat_id: int, text: str, now: dt.datetime) -> None:
        """Delivery started: send the progress message (later edited) to the staff member's chat."""
        # Send now's confirmation is going to that chat right now: leave it its turn
        self.limiter.hold(chat_id, STAFF_INTERVAL_S)
        self._opening[broadcast_id] = self._spawn(
            self._open(broadcast_id, chat_id, text, now), f"broadcast-{broadcast_id}-progress"
        )

    async def maybe_progress(self, broadcast_id: int) -> None:
        """Edit the staff member's progress message, at most every `progress_every_s` across all engines."""
        if not isinstance(self.sender, MessageEditor) or broadcast_id in self._editing:
            return
        now = self.clock()
        due = now - dt.timedelta(seconds=self.progress_every_s)
        async with unit_of_work(self.sessions) as s:
            res = await s.execute(
                update(Broadcast)
                .where(
                    Broadcast.id == broadcast_id,
                    Broadcast.progress_message_id.is_not(None),
                    or_(Broadcast.progress_at.is_(None), Broadcast.progress_at <= due),
                )
                .values(progress_at=now)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return
            b = await s.get(Broadcast, broadcast_id)
            assert b is not None and b.report_chat_id is not None and b.progress_message_id is not None
            p = await progress_of(s, broadcast_id)
            lang = await lang_of(s, b.created_by)
            reply = Reply(report_text(self.content, lang, b, p, self.rate_of(b), final=False))
            chat_id, message_id = b.report_chat_id, b.progress_message_id
        self._editing.add(broadcast_id)

        async def edit() -> None:
            try:
                await self._edit(chat_id, message_id, reply)
            finally:
                self._editing.discard(broadcast_id)

        self._spawn(edit(), f"broadcast-{broadcast_id}-edit")

    def final(self, broadcast_id: int, chat_id: int, text: str) -> None:
        """The broadcast is done: the progress message edited into the final figures, then the report itself."""
        self._spawn(self._final(broadcast_id, chat_id, Reply(text)), f"broadcast-{broadcast_id}-report")

    async def drain(self) -> None:
        """Wait (a bounded time) for the reports still being sent; cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=REPORTS_DRAIN_S)
        for task in pending:
            task.cancel()

    # ---- sending ---------------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("broadcast.report_task_failed", task=name)

        task = asyncio.create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _open(self, broadcast_id: int, chat_id: int, text: str, now: dt.datetime) -> None:
        message_id = await self._notify(chat_id, Reply(text))
        if message_id is not None:
            async with unit_of_work(self.sessions) as s:
                await s.execute(
                    update(Broadcast)
                    .where(Broadcast.id == broadcast_id)
                    .values(progress_message_id=message_id, progress_at=now)
                )

    async def _final(self, broadcast_id: int, chat_id: int, reply: Reply) -> None:
        opening = self._opening.pop(broadcast_id, None)
        if opening is not None:
            await asyncio.wait({opening})
        async with self.sessions() as s:
            message_id = (
                await s.execute(select(Broadcast.progress_message_id).where(Broadcast.id == broadcast_id))
            ).scalar_one_or_none()
        if message_id is not None:
            await self._edit(chat_id, message_id, reply)
        await self._notify(chat_id, reply)

    async def _to_staff(self, chat_id: int, call: Callable[[], Awaitable[int | None]]) -> int | None:
        """One report send or edit, on the normal budget. The staff chat has just had the conversation's own
        answers (Send now's confirmation), so a per-chat 429 there is expected: wait it out a few times.
        Never fatal for the broadcast."""
        for attempt in range(1, STAFF_ATTEMPTS + 1):
            try:
                await self.limiter.acquire(chat_id, interval=STAFF_INTERVAL_S)
                return await call()
            except RetryLater as exc:
                if isinstance(exc, Throttled):
                    self.stats["flood_429"] += 1
                    self.limiter.pause(exc.after_s)  # the flood limit is the whole bot's
                if attempt == STAFF_ATTEMPTS:
                    log.warning("broadcast.report_failed", error="RetryLater", attempts=attempt)
                    return None
                # Telegram's own wait, but no longer than the engine's longest backoff.
                wait = backoff_s(
                    attempt, base_s=0.0, cap_s=self.backoff_max_s, retry_after_s=exc.after_s, cap_retry_after=True
                )
                await asyncio.sleep(wait)
            except Exception as exc:
                log.warning("broadcast.report_failed", error=type(exc).__name__)
                return None
        return None

    async def _notify(self, chat_id: int, reply: Reply) -> int | None:
        """A message to the staff member."""

        async def send() -> int | None:
            return await self.sender.send(chat_id, reply)

        return await self._to_staff(chat_id, send)

    async def _edit(self, chat_id: int, message_id: int, reply: Reply) -> None:
        sender = self.sender
        if not isinstance(sender, MessageEditor):
            return

        async def edit() -> int | None:
            await sender.edit(chat_id, message_id, reply)
            self.stats["progress_edits"] += 1
            return message_id

        await self._to_staff(chat_id, edit)
