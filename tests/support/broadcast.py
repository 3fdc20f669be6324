"""Shared helpers for the broadcast and news tests (no tests here): databases, contexts, a sender with edits."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from actions.base import Context, Services
from core.settings import Settings
from kernel.content import Content
from store import models, models_news, models_staff  # noqa: F401 - every table this area touches
from store.all_models import Base
from store.db import make_engine, make_sessionmaker
from store.models import User
from store.models_news import NewsArea, NewsSubscription, NewsTopic

TOKEN = "7000000001:TEST-token"


def make_bot(api_url: str, pool: int = 64) -> ExtBot[None]:
    """A bot without PTB's limiter: the broadcast engine owns pacing and retries."""
    return ExtBot(
        TOKEN,
        base_url=api_url,
        request=HTTPXRequest(connection_pool_size=pool, connect_timeout=5, read_timeout=10, write_timeout=10),
    )


async def make_db(url: str) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return engine, make_sessionmaker(engine)


async def add_subscribers(
    sessions: async_sessionmaker[AsyncSession],
    ids: list[int],
    areas: tuple[str, ...] = (),
    topics: tuple[str, ...] = (),
    lang: str = "vi",
) -> None:
    async with sessions() as s, s.begin():
        for uid in ids:
            s.add(User(id=uid, chat_id=uid, lang=lang))
        await s.flush()
        for uid in ids:
            s.add(NewsSubscription(user_id=uid))
        await s.flush()
        for uid in ids:
            s.add_all(NewsArea(user_id=uid, area=a) for a in areas)
            for t in topics:
                s.add(NewsTopic(user_id=uid, topic=t))


def context(
    session: AsyncSession,
    user: User,
    content: Content,
    *,
    admin_ids: tuple[int, ...] = (),
    services: Services | None = None,
    now: dt.datetime | None = None,
) -> Context:
    settings = Settings(admin_ids=list(admin_ids), _env_file=None)  # type: ignore[call-arg]
    return Context(
        content=content,
        settings=settings,
        session=session,
        user=user,
        now=now or dt.datetime.now(dt.UTC),
        services=services if services is not None else Services(),
    )
