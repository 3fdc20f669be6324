"""News subscriptions, staff broadcasts and their per-recipient delivery records."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, utcnow

# Delivery states. A row is written `pending` BEFORE anything is sent and moves to `sending` in the same
# transaction that claims it, so a crash can never make a recipient lose their place or get a second copy.
PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
BLOCKED = "blocked"
UNKNOWN = "unknown"  # was `sending` when its engine died: maybe delivered, never resent
DELIVERY_STATES = (PENDING, SENDING, SENT, FAILED, BLOCKED, UNKNOWN)
FINAL_STATES = (SENT, FAILED, BLOCKED, UNKNOWN)

# Broadcast lifecycle: draft -> (scheduled ->) queued -> running -> done; cancelled from draft/scheduled.
DRAFT = "draft"
SCHEDULED = "scheduled"
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
CANCELLED = "cancelled"
APPROVAL = "approval"  # composed, audience above BROADCAST_APPROVAL_AUDIENCE: waits for a second staff member


class NewsSubscription(Base):
    """A citizen who asked for announcements: their units (none = the whole province) and topics (none = all)."""

    __tablename__ = "news_subscriptions"

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class NewsArea(Base):
    """One commune-level unit (an id of the areas file) a subscriber follows; none means the whole province.

    Several rows when a subscription of an old district was carried over to the units formed from it."""

    __tablename__ = "news_subscription_areas"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("news_subscriptions.user_id", ondelete="CASCADE"), primary_key=True
    )
    area: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class NewsAreaSearch(Base):
    """A citizen was asked to type part of their commune's name: their next typed message is that search."""

    __tablename__ = "news_area_searches"

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    asked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class NewsTopic(Base):
    """One topic a subscriber chose; a subscriber with no rows here receives every topic."""

    __tablename__ = "news_topics"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("news_subscriptions.user_id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class Broadcast(Base):
    """One announcement: its message, audience, schedule, and (while composed) the staff member's draft step."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[int] = mapped_column(BigInteger, index=True)  # staff user id (kept after they leave)
    status: Mapped[str] = mapped_column(String(16), default=DRAFT, index=True)
    step: Mapped[str] = mapped_column(String(16), default="text")  # draft: text|photo|audience|area|preview|at
    text: Mapped[str] = mapped_column(Text, default="")  # validated Telegram HTML
    photo: Mapped[str | None] = mapped_column(String(256), nullable=True)  # Telegram file_id
    # comma-separated unit ids; empty: the whole province
    areas: Mapped[str] = mapped_column(Text, default="", server_default="")
    topics: Mapped[str] = mapped_column(String(256), default="")  # comma-separated; empty: every subscriber
    paid: Mapped[bool] = mapped_column(Boolean, default=False)  # allow_paid_broadcast (up to 1000 msg/s)
    send_at: Mapped[dt.datetime | None] = mapped_column(nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)  # recipients materialised at start
    report_chat_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # where progress goes
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    progress_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    def topic_list(self) -> list[str]:
        return [t for t in self.topics.split(",") if t]

    def area_list(self) -> list[str]:
        return [a for a in self.areas.split(",") if a]

    def audit_detail(self) -> str:
        """The audit log's description of this broadcast: the same from the bot and the command line."""
        return f"#{self.id} area={self.areas or 'province'} topics={self.topics or '*'} paid={self.paid}"


class Delivery(Base):
    """One recipient of one broadcast. Written before sending; its state says what happened."""

    __tablename__ = "broadcast_deliveries"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "user_id"),  # one row per recipient: the first guard against duplicates
        Index("ix_broadcast_deliveries_claim", "broadcast_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(Integer, ForeignKey("broadcasts.id", ondelete="CASCADE"))
    # NULL (and chat_id 0) once the citizen asked to be forgotten: the report keeps an anonymous count.
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), index=True, nullable=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    lang: Mapped[str] = mapped_column(String(2), default="vi")
    state: Mapped[str] = mapped_column(String(8), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class BroadcastWorker(Base):
    """A running delivery engine's heartbeat: rows it left in `sending` become `unknown` once it goes silent."""

    __tablename__ = "broadcast_workers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
