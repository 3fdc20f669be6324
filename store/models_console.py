"""The staff console's single-use sign-in links (console/auth.py); the session itself is a signed cookie."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, utcnow


class ConsoleLink(Base):
    """A sign-in link sent by the bot to a staff member. Only the SHA-256 of its random token is kept, so the
    table alone cannot sign anyone in; `used_at` makes it single-use, `expires_at` makes it short-lived."""

    __tablename__ = "console_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
