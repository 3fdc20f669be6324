"""Deadline reminders: what other parts of the assistant call to create them, and the dispatcher that sends them."""

from reminders.dispatcher import TICK_JOB_ID, Dispatcher, schedule
from reminders.store import (
    DEFAULT_CAP,
    SyncResult,
    TooManyReminders,
    create_campaign_reminders,
    create_reminder,
    make_deadlines_hook,
    morning_of,
    sync_dossier_deadlines,
)

__all__ = [
    "DEFAULT_CAP",
    "TICK_JOB_ID",
    "Dispatcher",
    "SyncResult",
    "TooManyReminders",
    "create_campaign_reminders",
    "create_reminder",
    "make_deadlines_hook",
    "morning_of",
    "schedule",
    "sync_dossier_deadlines",
]
