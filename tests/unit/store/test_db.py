"""Migrations build the schema the models describe, on SQLite and PostgreSQL; UTC datetimes round-trip."""

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from store import db as store_db
from store import sqlite_inline
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


# ---- SQLite: this process's writers queue in order instead of polling SQLite's busy handler ----------------


async def _sqlite_sessions(tmp_path: Path) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await migrate(url)
    engine = make_engine(url)
    return engine, make_sessionmaker(engine)


async def test_sqlite_writers_commit_in_arrival_order(tmp_path: Path) -> None:
    """Five citizens write while a sixth transaction holds SQLite's write lock: they commit in the order they
    came, as soon as it is free. (SQLite's busy handler wakes waiters by their own sleep schedules, so without
    the queue later writers, who sleep shorter, tend to overtake earlier ones.)"""
    engine, sessions = await _sqlite_sessions(tmp_path)
    holding = asyncio.Event()

    async def holder() -> None:
        async with unit_of_work(sessions) as s:
            s.add(User(id=1, chat_id=1, lang="vi"))
            await s.flush()  # the write lock is taken here
            holding.set()
            await asyncio.sleep(0.5)

    async def writer(uid: int) -> None:
        async with unit_of_work(sessions) as s:
            s.add(User(id=uid, chat_id=uid, lang="vi"))

    first = asyncio.create_task(holder())
    await holding.wait()
    waiting = []
    for uid in range(10, 16):
        waiting.append(asyncio.create_task(writer(uid)))
        await asyncio.sleep(0.03)
    await asyncio.gather(first, *waiting)
    async with sessions() as s:
        order = (await s.execute(text("SELECT id FROM users ORDER BY rowid"))).scalars().all()
    await engine.dispose()
    assert order == [1, 10, 11, 12, 13, 14, 15]


async def test_sqlite_rolled_back_writer_frees_the_queue(tmp_path: Path) -> None:
    engine, sessions = await _sqlite_sessions(tmp_path)
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions) as s:
            s.add(User(id=1, chat_id=1, lang="vi"))
            await s.flush()
            raise RuntimeError("the capability failed half-way")
    async with asyncio.timeout(5):  # the next writer does not wait for the rolled-back one
        async with unit_of_work(sessions) as s:
            s.add(User(id=2, chat_id=2, lang="vi"))
    async with sessions() as s:
        assert (await s.execute(text("SELECT id FROM users"))).scalars().all() == [2]
    await engine.dispose()


async def test_sqlite_connection_goes_back_to_the_pool_cleanly_and_is_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The pool's reset listener runs without a warning, so a returned connection is reused. (With the legacy
    two-argument signature SQLAlchemy warned on every check-in; with warnings as errors the reset failed, the
    pool logged it and closed the connection, and a writer lock left on it would never have been freed.)"""
    engine, sessions = await _sqlite_sessions(tmp_path)
    used = []
    for uid in (1, 2):
        async with unit_of_work(sessions) as s:
            s.add(User(id=uid, chat_id=uid, lang="vi"))
            raw = await (await s.connection()).get_raw_connection()
            used.append(raw.driver_connection)
    await engine.dispose()
    assert "Exception during reset" not in caplog.text
    assert used[0] is used[1]


async def test_sqlite_writer_waiting_too_long_fails_like_a_busy_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_db, "WRITE_WAIT_S", 0.2)
    engine, sessions = await _sqlite_sessions(tmp_path)
    holding, done = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with unit_of_work(sessions) as s:
            s.add(User(id=1, chat_id=1, lang="vi"))
            await s.flush()
            holding.set()
            await done.wait()

    first = asyncio.create_task(holder())
    await holding.wait()
    with pytest.raises(OperationalError, match="database is locked"):
        async with unit_of_work(sessions) as s:
            s.add(User(id=2, chat_id=2, lang="vi"))
    done.set()
    await first
    async with sessions() as s:
        assert (await s.execute(text("SELECT id FROM users"))).scalars().all() == [1]
    await engine.dispose()


async def test_sqlite_another_process_lock_is_waited_for_without_stopping_the_loop(tmp_path: Path) -> None:
    """Statements run on the loop's thread: while another connection (a maintainer's tool) holds SQLite's write
    lock, the bot's write waits with asyncio sleeps — other citizens' work goes on — and lands once it is free."""
    engine, sessions = await _sqlite_sessions(tmp_path)
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO users (id, chat_id, lang, active, fallbacks_in_row, created_at, last_seen_at) "
        "VALUES (1, 1, 'vi', 1, 0, '2026-12-01 00:00:00', '2026-12-01 00:00:00')"
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def write() -> None:
        async with unit_of_work(sessions) as s:
            s.add(User(id=2, chat_id=2, lang="vi"))

    ticking = asyncio.create_task(ticker())
    writing = asyncio.create_task(write())
    await asyncio.sleep(0.5)
    assert not writing.done()  # still waiting for the other connection…
    assert ticks >= 20  # …and the loop was not blocked meanwhile
    other.execute("COMMIT")
    await asyncio.wait_for(writing, 5)
    ticking.cancel()
    other.close()
    async with sessions() as s:
        assert (await s.execute(text("SELECT id FROM users ORDER BY id"))).scalars().all() == [1, 2]
    await engine.dispose()


async def test_sqlite_another_process_lock_held_too_long_fails_like_a_busy_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await migrate(url)
    engine = create_async_engine(url, async_creator=sqlite_inline.creator([str(tmp_path / "w.db")], {}, 0.3))
    sessions = make_sessionmaker(engine)
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="database is locked"):
        async with unit_of_work(sessions) as s:
            s.add(User(id=2, chat_id=2, lang="vi"))
    other.execute("ROLLBACK")
    other.close()
    await engine.dispose()


async def test_upgrading_a_sqlite_database_keeps_every_row_that_refers_to_a_rebuilt_table(tmp_path: Path) -> None:
    # SQLite alters `users` by copying it and dropping the old table: with foreign keys on, that drop used to
    # cascade-delete every citizen's reminders and follows (and subscriptions) on the first upgrade.
    from alembic import command

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await asyncio.to_thread(command.upgrade, store_db.alembic_config(url), "9d2f4b6a1c37")  # before users changed
    now = "2026-12-01 08:00:00.000000"
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute(
            "INSERT INTO users (id, chat_id, lang, active, fallbacks_in_row, created_at, last_seen_at) "
            "VALUES (7, 7, 'vi', 1, 0, ?, ?)",
            (now, now),
        )
        conn.execute(
            "INSERT INTO reminders (user_id, source, kind, params, task, remind_at, due_at, group_key, state, "
            "attempts, late, created_at, updated_at) VALUES (7, 'citizen', 'task', '{}', 'nộp hồ sơ', ?, ?, 'g', "
            "'pending', 0, 0, ?, ?)",
            (now, now, now, now),
        )
        conn.execute(
            "INSERT INTO dossier_follows (user_id, code, next_poll_at, failures, created_at) "
            "VALUES (7, 'BN-261201-0001', ?, 0, ?)",
            (now, now),
        )
    await migrate(url)
    with sqlite3.connect(tmp_path / "old.db") as conn:
        assert conn.execute("SELECT task FROM reminders WHERE user_id = 7").fetchall() == [("nộp hồ sơ",)]
        assert conn.execute("SELECT code FROM dossier_follows WHERE user_id = 7").fetchall() == [("BN-261201-0001",)]
        assert conn.execute("SELECT review_opt_out FROM users WHERE id = 7").fetchall() == [(0,)]
