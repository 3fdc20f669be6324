"""What /forget leaves in Telegram: the staff group's copies of a citizen's ticket, deleted after the erasure.

/forget erases the database rows in the update's transaction (actions/privacy.py). The ticket's messages in the
staff group (the post with the citizen's name and recent messages, re-posts, relayed messages and notices) live in
Telegram, not in the database: their ids are queued in `staff_copy_deletions` in the same transaction and
deleted from Telegram after the commit, by the scheduler's tick. Telegram lets a bot delete a group message only
within 48 hours of sending it (and someone else's only as an admin with the right to delete): older copies stay,
which the privacy notice says, and each is logged (`forget.staff_copy_kept`) so the group's admins can remove
them by hand. Deleting a message twice is harmless (Telegram answers "not found"), so two replicas need no claim.
"""

from __future__ import annotations

from typing import Protocol

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.outbox import Blocked, Refused, RetryLater
from store.models_handover import StaffCopyDeletion, Ticket, TicketMessage

log = structlog.get_logger(__name__)

BATCH = 50


class Deleter(Protocol):
    async def delete(self, chat_id: int, message_id: int) -> None:
        """Delete one message; raises Refused when Telegram will not (too old, no right), RetryLater, Blocked."""
        ...


async def queue_staff_copies(session: AsyncSession, user_id: int, staff_chat_id: int | None) -> int:
    """In /forget's transaction, before the user row goes: the group messages of the citizen's tickets."""
    if staff_chat_id is None:
        return 0
    rows = (
        await session.execute(
            select(TicketMessage.chat_id, TicketMessage.message_id)
            .join(Ticket, Ticket.id == TicketMessage.ticket_id)
            .where(Ticket.user_id == user_id, TicketMessage.chat_id == staff_chat_id)
        )
    ).all()
    session.add_all(StaffCopyDeletion(group_id=chat, message_id=mid) for chat, mid in rows)
    return len(rows)


async def delete_staff_copies(sessions: async_sessionmaker[AsyncSession], deleter: Deleter) -> int:
    """One tick: delete up to BATCH queued messages from Telegram; returns how many rows were settled."""
    async with sessions() as session:
        queued = (await session.scalars(select(StaffCopyDeletion).order_by(StaffCopyDeletion.id).limit(BATCH))).all()
    settled: list[int] = []
    kept = 0
    for row in queued:
        try:
            await deleter.delete(row.group_id, row.message_id)
        except (Refused, Blocked):
            kept += 1  # too old, not an admin, or the group is gone: nothing more the bot can do
        except RetryLater:
            break  # Telegram is busy or down: the rest wait for the next tick
        settled.append(row.id)
    if kept:
        log.warning("forget.staff_copy_kept", messages=kept, reason="Telegram refused to delete them")
    if settled:
        async with sessions() as session, session.begin():
            await session.execute(delete(StaffCopyDeletion).where(StaffCopyDeletion.id.in_(settled)))
        log.info("forget.staff_copies_deleted", messages=len(settled) - kept)
    return len(settled)
