"""Reminders and the unconfirmed reminder a citizen is still setting up; the database is their source of truth.

A reminder row moves only forward through its states, and a row is handed to Telegram at most once:

    pending ──claim──▶ claimed ──▶ sending ──▶ sent | failed | dropped
       │                  │           └──(crash)──▶ unknown   (never resent: at most once wins)
       │                  └──(lease expired: never handed to the sender)──▶ pending
       └──▶ cancelled | stopped   (citizen, blocked bot, deadline gone)

A retry after Telegram throttling goes back from `sending` to `pending` only because Telegram said it did not
deliver (429). Snooze and "tomorrow" create a new row (`parent_id`) instead of reopening a sent one.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, utcnow

# States (plain strings, so a migration never has to alter an enum type).
PENDING = "pending"
CLAIMED = "claimed"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
DROPPED = "dropped"
CANCELLED = "cancelled"
STOPPED = "stopped"  # the citizen pressed "Stop these": a later dossier sync must not bring them back
UNKNOWN = "unknown"
OPEN_STATES = (PENDING, CLAIMED)  # not yet handed to the sender: may still be cancelled or rescheduled

# Where a reminder came from.
SOURCE_CITIZEN = "citizen"
SOURCE_DOSSIER = "dossier"
SOURCE_APP = "app"  # another capability on the citizen's request (e.g. ID-card renewal)
SOURCE_CAMPAIGN = "campaign"


class Reminder(Base):
    """One message to send a citizen at a given time.

    `remind_at` is the time the citizen was promised (shown, and used to tell a late delivery); `due_at` is when
    the dispatcher may next try (moves on retries). `deadline_at` is the deadline the reminder is about: once it
    has passed the reminder is dropped with a note instead of sent. The text is either `text_key` + `params`
    (JSON) from data/content, or the citizen's own words in `task` (PII-redacted before it is stored).
    """

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("user_id", "dedupe_key", name="uq_reminders_user_id_dedupe_key"),
        # The claim query: WHERE state = 'pending' AND due_at <= now ORDER BY due_at.
        Index("ix_reminders_state_due_at", "state", "due_at"),
        Index("ix_reminders_user_id_state", "user_id", "state"),
        # The console's dashboard: reminders that ended (stopped, cancelled) by when, repeats by when asked for.
        Index("ix_reminders_state_updated_at", "state", "updated_at"),
        Index("ix_reminders_parent_id_created_at", "parent_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    text_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    params: Mapped[str] = mapped_column(Text, default="{}")
    task: Mapped[str | None] = mapped_column(String(500), nullable=True)
    remind_at: Mapped[dt.datetime] = mapped_column()
    due_at: Mapped[dt.datetime] = mapped_column()
    deadline_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    group_key: Mapped[str] = mapped_column(String(120))  # what "Stop these" stops
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("reminders.id", ondelete="SET NULL"), nullable=True, index=True
    )
    state: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(nullable=True, index=True)  # the console's per-day counts
    message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReminderDraft(Base):
    """A reminder the citizen asked for but has not confirmed yet (one per citizen), kept across restarts.

    `stage`: "confirm" (waiting for [Yes]/[Change]), "ask" (waiting for a typed time), "choose" (several
    readings of the time offered as buttons, in `alternatives`: JSON list of ISO datetimes). `token` ties the
    buttons to this draft, so a button from an older draft cannot confirm a newer one.
    """

    __tablename__ = "reminder_drafts"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    token: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(8))
    task: Mapped[str] = mapped_column(String(500), default="")
    remind_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    alternatives: Mapped[str] = mapped_column(Text, default="[]")
    night: Mapped[bool] = mapped_column(Boolean, default=False)  # an explicit time inside quiet hours
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
