"""Fixtures the capability tests share: the reviewed texts, and an in-memory database with every table."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

import store.models_guides  # noqa: F401  (registers the tables on Base.metadata)
from kernel.content import Content
from store.all_models import Base


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


@pytest.fixture
async def db() -> AsyncIterator[AsyncEngine]:
    # One shared in-memory connection: fast, and every unit of work sees the last one's commit.
    engine = create_async_engine("sqlite+aiosqlite:///:memory:", poolclass=StaticPool)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()
