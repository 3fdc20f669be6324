"""Retention by age: what the hourly purge deletes (or anonymises) once its purpose is served (Law 91/2025/QH15,
Art. 14: personal data is deleted when its purpose is fulfilled or its retention period ends). README lists every
table with its period."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings
from store.models_dossier import DossierLookup
from store.models_handover import CLOSED, Feedback, Ticket
from store.models_news import FINAL_STATES, Broadcast, Delivery
from store.models_reminders import CANCELLED, DROPPED, FAILED, SENT, STOPPED, UNKNOWN, Reminder

REMINDER_DONE = (SENT, FAILED, DROPPED, CANCELLED, STOPPED, UNKNOWN)  # never sent again: history only
# = actions.dossier._LOOKUP_MEMORY: a code looked up longer ago counts as new again, so its hash serves no purpose.
LOOKUP_KEEP = dt.timedelta(days=1)


async def purge_by_retention(session: AsyncSession, settings: Settings, now: dt.datetime) -> dict[str, int]:
    """Apply TICKET_RETENTION_DAYS, FEEDBACK_RETENTION_DAYS, REMINDER_HISTORY_DAYS and DELIVERY_RETENTION_DAYS,
    and forget looked-up dossier codes a day after their last lookup; returns how many rows each touched."""

    def days(n: int) -> dt.datetime:
        return now - dt.timedelta(days=n)

    done: dict[str, int] = {}
    # A closed ticket goes with its relayed-message ids (ON DELETE CASCADE); an open one is never purged.
    result = await session.execute(
        delete(Ticket)
        .where(Ticket.status == CLOSED, Ticket.closed_at < days(settings.ticket_retention_days))
        .execution_options(synchronize_session=False)
    )
    done["handover_tickets"] = _count(result)
    result = await session.execute(
        delete(Feedback)
        .where(Feedback.offered_at < days(settings.feedback_retention_days))
        .execution_options(synchronize_session=False)
    )
    done["answer_feedback"] = _count(result)
    result = await session.execute(
        delete(Reminder)
        .where(Reminder.state.in_(REMINDER_DONE), Reminder.updated_at < days(settings.reminder_history_days))
        .execution_options(synchronize_session=False)
    )
    done["reminders"] = _count(result)
    result = await session.execute(
        delete(DossierLookup)
        .where(DossierLookup.last_at < now - LOOKUP_KEEP)
        .execution_options(synchronize_session=False)
    )
    done["dossier_lookups"] = _count(result)
    # A delivery row of a finished broadcast keeps its state for the staff report but no longer says who got it.
    finished = select(Broadcast.id).where(Broadcast.finished_at < days(settings.delivery_retention_days))
    result = await session.execute(
        update(Delivery)
        .where(Delivery.broadcast_id.in_(finished), Delivery.state.in_(FINAL_STATES), Delivery.user_id.is_not(None))
        .values(user_id=None, chat_id=0, message_id=None, error=None)
        .execution_options(synchronize_session=False)
    )
    done["broadcast_deliveries"] = _count(result)
    return done


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
