"""Sign-in without passwords: single-use links the bot hands to staff, then a signed session cookie with a CSRF
token derived from it. The role is never in the cookie: every request asks the database (console/server.py)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models_console import ConsoleLink

COOKIE = "console_session"


def link_hash(token: str) -> str:
    """What `console_links` keeps of a token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def new_link(session: AsyncSession, user_id: int, now: dt.datetime, minutes: float) -> str:
    """A random token for `user_id`, stored hashed; the caller puts it in the link and forgets it."""
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleLink(
            token_hash=link_hash(token), user_id=user_id, created_at=now, expires_at=now + dt.timedelta(minutes=minutes)
        )
    )
    return token


async def purge_links(session: AsyncSession, now: dt.datetime) -> None:
    """Links a day past their expiry are of no further use (the audit log keeps the sign-ins)."""
    await session.execute(delete(ConsoleLink).where(ConsoleLink.expires_at < now - dt.timedelta(days=1)))


class LinkRefused(Exception):
    """Why a sign-in link does not work; `reason` is unknown | expired | used (logged, shown in general terms)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def redeem(session: AsyncSession, token: str, now: dt.datetime) -> int:
    """Use a link: the staff member's user id, or LinkRefused. One conditional UPDATE decides, so two tabs (or
    two replicas) racing with the same link cannot both sign in."""
    if not token or len(token) > 128:
        raise LinkRefused("unknown")
    digest = link_hash(token)
    link = await session.get(ConsoleLink, digest)
    if link is None:
        raise LinkRefused("unknown")
    if link.used_at is not None:
        raise LinkRefused("used")
    if link.expires_at <= now:
        raise LinkRefused("expired")
    result = await session.execute(
        update(ConsoleLink)
        .where(ConsoleLink.token_hash == digest, ConsoleLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise LinkRefused("used")
    return link.user_id


@dataclass(frozen=True)
class Session:
    user_id: int
    expires: int  # unix seconds
    nonce: str

    def csrf(self, secret: bytes) -> str:
        """The session's CSRF token: derived, so nothing is stored; a forged form cannot know it."""
        return _mac(secret, f"csrf|{self.user_id}|{self.nonce}")


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: bytes, user_id: int, now: dt.datetime, hours: float) -> tuple[str, Session]:
    session = Session(user_id, int((now + dt.timedelta(hours=hours)).timestamp()), secrets.token_urlsafe(16))
    body = f"{session.user_id}.{session.expires}.{session.nonce}"
    return f"{body}.{_mac(secret, 'session|' + body)}", session


def verify(secret: bytes, cookie: str | None, now: dt.datetime) -> Session | None:
    """The session a cookie carries, or None when it is missing, altered, signed with another key or expired."""
    if not cookie or len(cookie) > 300:
        return None
    body, _, mac = cookie.rpartition(".")
    if not hmac.compare_digest(mac, _mac(secret, "session|" + body)):
        return None
    try:
        uid, expires, nonce = body.split(".")
        session = Session(int(uid), int(expires), nonce)
    except ValueError:
        return None
    return session if session.expires > now.timestamp() else None


def csrf_ok(secret: bytes, session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(str(given), session.csrf(secret))
