"""Tables of the dossier-status capability: followed dossiers, codes looked up (hashed), pending questions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, utcnow


class DossierFollow(Base):
    """A citizen follows a dossier: the poller checks it and tells them when it changes.

    The code is kept only while the dossier is followed (the row is deleted on unfollow or when the dossier
    reaches a final status). No applicant name or other portal data is stored, only a digest of the state.
    """

    __tablename__ = "dossier_follows"
    __table_args__ = (UniqueConstraint("user_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40), index=True)
    last_status: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)  # portal.models.Dossier.fingerprint
    next_poll_at: Mapped[dt.datetime] = mapped_column(index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive failed polls, for back-off
    notified_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The portal's dossier key, issued when the citizen proved the second factor (docs/portal-api.yaml): the
    # poller sends it to read the full dossier. A revocable grant for this one dossier, not the factor itself.
    access_key: Mapped[str | None] = mapped_column(String(128), default=None)


class DossierPrompt(Base):
    """The assistant asked this citizen for a dossier code and waits for it (kept in the database, not in
    memory, so any bot replica that receives the next message knows)."""

    __tablename__ = "dossier_prompts"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    expires_at: Mapped[dt.datetime]
    # Set while the question is "the last 4 digits of the phone number on dossier <code>" rather than "a code".
    verify_code: Mapped[str | None] = mapped_column(String(40), default=None)


class DossierLookup(Base):
    """A dossier code a citizen looked up: the per-citizen quota counts new ones, and only codes reached this way
    (or followed) may be shown again by a button. The code is kept as a keyed hash (actions.dossier.code_digest),
    never in clear; the row also carries the wrong second-factor tries and the portal's key once one was right."""

    __tablename__ = "dossier_lookups"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[dt.datetime] = mapped_column(index=True)
    last_at: Mapped[dt.datetime]
    failures: Mapped[int] = mapped_column(Integer, default=0)  # wrong second-factor tries since the last lock
    locked_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    access_key: Mapped[str | None] = mapped_column(String(128), default=None)  # from a verified full lookup
    key_until: Mapped[dt.datetime | None] = mapped_column(default=None)
