"""What a ticket shows staff about the citizen: the ring of their last messages (redacted, kept a day) and the
area of their news subscriptions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from sqlalchemy import MetaData, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.base import Context
from core.pii import redact
from store.base import Base
from store.models_handover import RecentMessage

RING_SIZE = 5
RING_TEXT_CHARS = 300
RING_KEEP = dt.timedelta(days=1)

AreaLookup = Callable[[AsyncSession, int], Awaitable[str | None]]


async def remember(ctx: Context, text: str, intent: str | None) -> None:
    """Keep one message (redacted) and what the bot understood in the citizen's ring of RING_SIZE messages.

    The router calls it for each understood or fallen-back text, so a ticket can show staff what came before.
    """
    ctx.session.add(RecentMessage(user_id=ctx.user.id, text=redact(text)[:RING_TEXT_CHARS], intent=intent, at=ctx.now))
    newest = (
        select(RecentMessage.id)
        .where(RecentMessage.user_id == ctx.user.id)
        .order_by(RecentMessage.at.desc(), RecentMessage.id.desc())
        .limit(RING_SIZE)
    )
    # One statement (the INSERT above is flushed before it): everything of this citizen's but the newest RING_SIZE.
    await ctx.session.execute(
        delete(RecentMessage)
        .where(RecentMessage.user_id == ctx.user.id, RecentMessage.id.not_in(newest.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )


async def purge(session: AsyncSession, now: dt.datetime) -> int:
    """Delete recent-message rings older than a day; returns how many rows went. Schedule it hourly."""
    result = await session.execute(delete(RecentMessage).where(RecentMessage.at < now - RING_KEEP))
    return int(getattr(result, "rowcount", 0) or 0)


def area_from_subscriptions(metadata: MetaData = Base.metadata) -> AreaLookup:
    """An area lookup reading the news subscriptions table if one is registered (a table whose name contains
    "subscri" with `user_id` and `area` columns); without such a table it always answers None (area omitted)."""

    async def lookup(session: AsyncSession, user_id: int) -> str | None:
        for table in metadata.sorted_tables:
            if "subscri" in table.name and {"user_id", "area"} <= set(table.c.keys()):
                rows = await session.execute(
                    select(table.c.area).where(table.c.user_id == user_id, table.c.area.is_not(None)).limit(3)
                )
                areas = sorted({str(a) for a in rows.scalars().all() if a})
                return ", ".join(areas) or None
        return None

    return lookup
