"""Work waiting now, by queue: what the health server's /metrics exports and the staff console shows."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import NluReview, PendingReply
from store.models_handover import CLOSED, Ticket
from store.models_news import DONE as BROADCAST_DONE
from store.models_news import PENDING as DELIVERY_PENDING
from store.models_news import Broadcast, Delivery
from store.models_reminders import PENDING as REMINDER_PENDING
from store.models_reminders import Reminder


async def queue_depths(s: AsyncSession) -> dict[str, int]:
    """Work waiting now, by queue: what /metrics exports and the staff console shows."""
    depths = {
        "reminders_pending": select(func.count()).select_from(Reminder).where(Reminder.state == REMINDER_PENDING),
        # A done broadcast has no pending row (BroadcastEngine._finish_if_done), so only the other broadcasts'
        # rows are counted: a range of the claim index instead of a scan of every delivery ever made.
        "deliveries_pending": select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.broadcast_id.in_(select(Broadcast.id).where(Broadcast.status != BROADCAST_DONE)),
            Delivery.state == DELIVERY_PENDING,
        ),
        "tickets_open": select(func.count()).select_from(Ticket).where(Ticket.status != CLOSED),
        "review_queue": select(func.count()).select_from(NluReview).where(NluReview.status == "open"),
        "replies_pending": select(func.count()).select_from(PendingReply),
    }
    return {name: int(await s.scalar(query) or 0) for name, query in depths.items()}
