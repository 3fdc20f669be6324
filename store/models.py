"""Core tables: citizens (by Telegram id only) and processed updates. Capabilities add theirs in store/models_*.py."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, utcnow


class User(Base):
    """A citizen or staff member as Telegram knows them. No ID-card or phone number is ever stored here."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # Telegram user id
    chat_id: Mapped[int] = mapped_column(BigInteger)
    lang: Mapped[str] = mapped_column(String(2), default="vi")
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False once Telegram says 403 (blocked)
    fallbacks_in_row: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The privacy notice (data/content/privacy.yml `notice_version`) the citizen accepted, and when: the proof of
    # consent Law 91/2025/QH15 Art. 9 asks for. `notice_shown` is the last version shown after a change, so a new
    # version is put in front of them once, not on every message.
    notice_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    notice_accepted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    notice_shown: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The citizen said no to their misunderstood messages going to the review queue (used to improve the model).
    review_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    review_choice_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class ProcessedUpdate(Base):
    """Telegram update ids already handled, so a redelivered update is not answered twice."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    handled_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class NluReview(Base):
    """Messages the NLU fell back on or was unsure of, PII-redacted, for maintainers to label (purged by age)."""

    __tablename__ = "nlu_review"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=True
    )
    text: Mapped[str] = mapped_column(String(1000))
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    ranking: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of [intent, confidence]
    reason: Mapped[str] = mapped_column(String(32))  # fallback | ambiguous | feedback
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # What a maintainer decided in the console (console/review.py): open -> labelled -> exported, or dismissed.
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open", index=True)
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the intent a maintainer assigned
    decided_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # staff user id
    decided_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class PendingReply(Base):
    """A reply Telegram did not take within the reply's retry budget (an outage of the Bot API's sending side):
    kept and sent again by the scheduler, in order per chat, until Telegram takes it or it is too old to be of
    use. Rows live minutes; they hold what the bot said, never what the citizen typed."""

    __tablename__ = "pending_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    body: Mapped[str] = mapped_column(Text)  # the Reply as JSON (bot.spool.encode)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    next_at: Mapped[dt.datetime] = mapped_column(index=True)  # due again at; moved forward to claim it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
