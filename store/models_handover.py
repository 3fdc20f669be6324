"""Handover tickets and their relayed messages, recent-message rings, answer feedback, and the dashboard's anonymous
daily counters (messages, conversations, portal errors)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, utcnow

WAITING = "waiting"  # posted to the staff group, nobody took it yet
TAKEN = "taken"  # a staff member answers; messages are relayed both ways
CLOSED = "closed"
TICKET_STATUSES = (WAITING, TAKEN, CLOSED)


class Ticket(Base):
    """A citizen's request to talk to a person.

    `open_user_id` equals `user_id` while the ticket is open and is NULL once it is closed: a unique column that
    NULLs do not collide in, so the database itself keeps "at most one open ticket per citizen", across replicas.
    `citizen_name` and `summary` (the redacted recent messages shown in the group post) are blanked at closing.
    """

    __tablename__ = "handover_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    open_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=WAITING, index=True)
    origin: Mapped[str] = mapped_column(String(64), default="")  # intent | menu | fallback | feedback:<topic>
    lang: Mapped[str] = mapped_column(String(2), default="vi")
    opened_in_hours: Mapped[bool] = mapped_column(Boolean, default=True)  # decides when relaying starts
    citizen_name: Mapped[str] = mapped_column(String(128), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    posted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)  # last (re)post to the staff group
    reposts: Mapped[int] = mapped_column(Integer, default=0)
    group_chat_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    group_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    taken_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    taken_by_name: Mapped[str] = mapped_column(String(128), default="")
    taken_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True, index=True)
    closed_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closed_by_name: Mapped[str] = mapped_column(String(128), default="")  # the staff member, when staff closed it
    close_reason: Mapped[str] = mapped_column(String(16), default="")  # staff | citizen | blocked
    rating: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    rated_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class TicketMessage(Base):
    """One message the bot sent for a ticket (the group post, a re-post, a relayed message); no text is kept.

    Staff answer by replying in Telegram to any of the ticket's messages in the group, so each group message id
    is recorded here to find the ticket again.
    """

    __tablename__ = "handover_messages"
    __table_args__ = (Index("ix_handover_messages_chat_message", "chat_id", "message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("handover_tickets.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # post | repost | citizen | staff | notice
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    staff_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HandoverOutbox(Base):
    """A ticket's message to another chat (the group post, a relayed message, a notice), committed with the update
    that decided to send it and sent after the commit, so no transaction waits on Telegram (a 429 can ask for
    seconds). The row goes once the message is sent and recorded (a TicketMessage), or its failure reported.

    `lease_until` is set when the row is written (the writing process sends it at once); a row still here after
    its lease (that process died in between) is claimed by moving the lease in a committed conditional update
    and sent by the scheduler, so two replicas never send it twice. Rows live seconds."""

    __tablename__ = "handover_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("handover_tickets.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)  # the Reply as JSON
    direction: Mapped[str] = mapped_column(String(8))  # post | citizen | staff | notice (as in TicketMessage)
    staff_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[dt.datetime] = mapped_column(index=True)


class StaffCopyDeletion(Base):
    """A message in the staff group to delete because the citizen it was about used /forget (the ticket post, its
    re-posts, relayed messages and notices). Written in /forget's transaction, deleted from Telegram after it by
    actions/erasure.py; the row goes once Telegram deleted the message or said it cannot (older than 48 hours)."""

    __tablename__ = "staff_copy_deletions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the staff group (named so that store/personal.py does not take it for a citizen's chat: it never is one)
    group_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RecentMessage(Base):
    """The last few messages of a citizen (PII-redacted) and what the bot understood, for a ticket's first post.

    Capped per citizen, deleted when a ticket copies them, and purged after a day.
    """

    __tablename__ = "recent_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(String(300))
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class Feedback(Base):
    """👍/👎 on one answer topic, offered at most once per topic per conversation window."""

    __tablename__ = "answer_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    topic: Mapped[str] = mapped_column(String(48))
    answer: Mapped[str] = mapped_column(String(48), default="")  # the content key of the answer shown
    offered_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    vote: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)  # 1 | -1
    voted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True, index=True)
    awaiting_comment: Mapped[bool] = mapped_column(Boolean, default=False)
    review_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("nlu_review.id", ondelete="SET NULL"), nullable=True
    )


class StyleCount(Base):
    """Messages handled per local day and style of writing (vi_accented | vi_plain | en), and how many of them the
    NLU did not understand: the console's fallback share by style. Anonymous, like MessageCount."""

    __tablename__ = "message_style_counts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    style: Mapped[str] = mapped_column(String(16), primary_key=True)
    handled: Mapped[int] = mapped_column(Integer, default=0)
    fallbacks: Mapped[int] = mapped_column(Integer, default=0)


class ConversationCount(Base):
    """Conversations begun per local day (actions/stats.py `begins_conversation` says when one begins): the day and
    a number, nothing about who. Counted by the router from the citizen's own row, so no chat id is kept here."""

    __tablename__ = "conversation_counts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    conversations: Mapped[int] = mapped_column(Integer, default=0)


class PortalErrorCount(Base):
    """Portal lookups that got no usable answer, per local day and kind of error (portal/tally.py KINDS: timeout,
    connection, server_error, rate_limited, auth, circuit_open, bad_response, other). Counted where the lookups'
    callers catch the error (actions/dossier.py, portal/poller.py); anonymous: no dossier code, no citizen."""

    __tablename__ = "portal_error_counts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    errors: Mapped[int] = mapped_column(Integer, default=0)


class MessageCount(Base):
    """Messages handled per local day and intent ("" = not understood); anonymous, so /forget leaves it."""

    __tablename__ = "message_counts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    intent: Mapped[str] = mapped_column(String(64), primary_key=True)
    handled: Mapped[int] = mapped_column(Integer, default=0)
    fallbacks: Mapped[int] = mapped_column(Integer, default=0)
