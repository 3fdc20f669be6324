"""Per-citizen state of the guided flows: where they are in a guide, and an open card-renewal question."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, utcnow


class GuideProgress(Base):
    """Where a citizen is in a guide, so [Continue] works after a restart or a day later. One row per user.

    `stack` is the guide and step, then any troubleshooting detours on top, e.g. "level1:3>scan:2".
    """

    __tablename__ = "guide_progress"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    stack: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RenewalDialogue(Base):
    """An open "when must I renew my ID card?" question.

    Privacy: the date of birth is the only personal datum kept, only between the two questions (birth date,
    then issue date); the row is deleted as soon as the answer is shown, when the citizen moves on to
    something else, or by `actions.renewal.purge_stale`. The issue date is never stored.
    """

    __tablename__ = "renewal_dialogues"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    birth: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
