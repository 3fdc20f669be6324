"""Migrations build the schema the models describe, on SQLite and PostgreSQL; UTC datetimes round-trip."""

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from store.all_models import Base
from store.db import make_engine, make_sessionmaker, migrate, unit_of_work
from store.models import User


async def test_migrations_match_models(db_url: str) -> None:
    await migrate(db_url)
    await migrate(db_url)  # a second start finds nothing to do
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    await engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert diff == [], f"models and migrations differ (write a migration): {diff}"


async def test_aware_utc_round_trip(db_url: str) -> None:
    await migrate(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    saigon = dt.timezone(dt.timedelta(hours=7))
    seen = dt.datetime(2026, 12, 4, 8, 0, tzinfo=saigon)
    async with unit_of_work(sessions) as s:
        s.add(User(id=42, chat_id=42, lang="vi", last_seen_at=seen))
    async with unit_of_work(sessions) as s:
        user = await s.get(User, 42)
        assert user is not None
        assert user.last_seen_at == seen
        assert user.last_seen_at.tzinfo == dt.UTC
    await engine.dispose()
