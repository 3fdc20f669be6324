"""Handover to staff: tickets posted to the staff group, messages relayed both ways, office hours, ratings.

When the bot relays (and so stays silent itself) — the rule:
- A ticket opened inside office hours relays at once: the citizen's messages go to the staff group until the
  ticket closes or the citizen presses [Back to the assistant]. If office hours end before anyone took it, the
  bot answers again (the ticket stays queued) until a staff member takes it.
- A ticket opened outside office hours is queued: the citizen is told when staff will answer (the next opening
  time, skipping weekends and data/holidays.yml) and the bot keeps helping; relaying starts when a staff member
  takes the ticket, and the citizen is told so.
- A taken ticket relays whatever the hour: a person is answering.
ID and phone numbers are masked (core.pii.redact) in everything sent to the group, the relayed messages included.
"""

from actions.handover.capability import CALLBACKS, INTENT, OUTBOX_LEASE, HandoverCapability, handover_button
from actions.handover.office_hours import (
    DEFAULT_OFFICE_HOURS,
    DEFAULT_TIMEZONE,
    HOLIDAYS_FILE,
    Holiday,
    HolidayFile,
    OfficeHours,
    load_holidays,
)
from actions.handover.recent import RING_KEEP, RING_SIZE, AreaLookup, area_from_subscriptions, purge, remember

__all__ = [
    "CALLBACKS",
    "DEFAULT_OFFICE_HOURS",
    "DEFAULT_TIMEZONE",
    "HOLIDAYS_FILE",
    "INTENT",
    "OUTBOX_LEASE",
    "RING_KEEP",
    "RING_SIZE",
    "AreaLookup",
    "HandoverCapability",
    "Holiday",
    "HolidayFile",
    "OfficeHours",
    "area_from_subscriptions",
    "handover_button",
    "load_holidays",
    "purge",
    "remember",
]
