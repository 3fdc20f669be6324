"""Replies kept through a Telegram outage and sent again, so an answer committed to the database is not lost.

A reply is tried REPLY_ATTEMPTS times within REPLY_MAX_WAIT_S (bot/adapter.py); when Telegram still does not take
it (5xx, timeouts, refused connections, a long 429), the adapter hands it and the replies after it to `keep`, and
the scheduler's `tick` (a `send_due` pass) sends them through the outbound port, oldest first and in order per
chat, backing off while Telegram fails, until they are delivered or KEEP old (an answer an hour late is dropped:
the citizen has asked again or gone). A chat's rows are claimed by moving their `next_at` forward in a committed
conditional UPDATE before anything is sent, so two bot processes never send the same reply.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.backoff import backoff_s
from kernel.outbox import Blocked, RetryLater, Sender, SendError, decode, encode
from kernel.types import Reply
from store.db import unit_of_work
from store.models import PendingReply

log = structlog.get_logger(__name__)

KEEP = dt.timedelta(hours=1)  # older replies are dropped, not sent
FIRST_RETRY = dt.timedelta(seconds=5)  # after the adapter's own ≈ 4 s of retries
LEASE = dt.timedelta(seconds=60)  # how long a claimed chat's replies are hidden from other passes
MAX_BACKOFF_S = 300.0
EVERY_S = 5.0  # the scheduler's tick
CHATS_PER_PASS = 200


class ReplySpool:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: Sender,
        on_blocked: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.sender = sender
        self.on_blocked = on_blocked

    async def keep(
        self, chat_id: int, replies: Sequence[Reply], now: dt.datetime | None = None, reason: str = ""
    ) -> None:
        """Keep `replies` for `chat_id`, in order, to be sent again from FIRST_RETRY on."""
        now = now or dt.datetime.now(dt.UTC)
        async with unit_of_work(self.sessions) as session:
            session.add_all(
                PendingReply(
                    chat_id=chat_id,
                    body=encode(dataclasses.replace(r, edit=False)),
                    created_at=now,
                    next_at=now + FIRST_RETRY,
                    attempts=0,
                )
                for r in replies
            )
        log.warning("reply.kept", chat=chat_id, count=len(replies), error=reason)

    async def tick(self) -> None:
        """The scheduler's job: a pass, its failure logged (the database may be away; the next tick tries again)."""
        try:
            await self.send_due()
        except Exception as exc:
            log.warning("reply.resend_pass_failed", error=type(exc).__name__)

    async def send_due(self, now: dt.datetime | None = None) -> int:
        """One pass over up to CHATS_PER_PASS chats with due replies: drop what is KEEP old, send the rest;
        returns how many were delivered."""
        now = now or dt.datetime.now(dt.UTC)
        cutoff = now - KEEP
        async with unit_of_work(self.sessions) as session:
            # One read when nothing is waiting (every tick, mostly): no write transaction unless there is work.
            due = (
                await session.execute(
                    select(PendingReply.chat_id, func.min(PendingReply.created_at))
                    .where(PendingReply.next_at <= now)
                    .group_by(PendingReply.chat_id)
                    .order_by(PendingReply.chat_id)
                    .limit(CHATS_PER_PASS)
                )
            ).all()
            if any(oldest < cutoff for _chat, oldest in due):
                expired = await session.execute(delete(PendingReply).where(PendingReply.created_at < cutoff))
                log.warning("reply.expired", count=int(getattr(expired, "rowcount", 0) or 0))
        chats = [chat for chat, _oldest in due]
        sent = 0
        for chat_id in chats:
            sent += await self._send_chat(chat_id, now)
        if sent:
            log.info("reply.resent", count=sent)
        return sent

    async def _send_chat(self, chat_id: int, now: dt.datetime) -> int:
        async with unit_of_work(self.sessions) as session:
            rows = (
                await session.execute(
                    select(PendingReply.id, PendingReply.body, PendingReply.attempts, PendingReply.next_at)
                    .where(PendingReply.chat_id == chat_id)
                    .order_by(PendingReply.id)
                )
            ).all()
            # A chat is sent only when all of it is due: a newer reply never overtakes a leased or backed-off one.
            if not rows or any(r.next_at > now for r in rows):
                return 0
            claimed = await session.execute(
                update(PendingReply)
                .where(PendingReply.chat_id == chat_id, PendingReply.next_at <= now)
                .values(next_at=now + LEASE)
            )
            if int(getattr(claimed, "rowcount", 0) or 0) != len(rows):
                await session.rollback()  # another process claimed some of them meanwhile
                return 0
        sent = 0
        for i, row in enumerate(rows):
            try:
                await self.sender.send(chat_id, decode(row.body))
            except RetryLater as exc:
                wait = backoff_s(row.attempts + 1, base_s=EVERY_S, cap_s=MAX_BACKOFF_S, retry_after_s=exc.after_s)
                await self._release([r.id for r in rows[i:]], row.id, now + dt.timedelta(seconds=wait))
                log.warning("reply.resend_failed", chat=chat_id, attempts=row.attempts + 1, wait_s=round(wait, 1))
                return sent
            except Blocked:
                await self._forget([r.id for r in rows[i:]])
                log.info("send.blocked", chat=chat_id)
                if self.on_blocked is not None:
                    await self.on_blocked(chat_id)
                return sent
            except SendError as exc:  # Telegram refuses this one for good (a bad request): the others still go
                log.warning("reply.dropped", chat=chat_id, error=str(exc)[:200])
            else:
                sent += 1
            await self._forget([row.id])
        return sent

    async def _release(self, ids: list[int], failed: int, at: dt.datetime) -> None:
        async with unit_of_work(self.sessions) as session:
            await session.execute(update(PendingReply).where(PendingReply.id.in_(ids)).values(next_at=at))
            await session.execute(
                update(PendingReply).where(PendingReply.id == failed).values(attempts=PendingReply.attempts + 1)
            )

    async def _forget(self, ids: list[int]) -> None:
        async with unit_of_work(self.sessions) as session:
            await session.execute(delete(PendingReply).where(PendingReply.id.in_(ids)))
