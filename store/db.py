"""The async engine, units of work, and Alembic migrations applied at start."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from store import sqlite_inline

ROOT = Path(__file__).resolve().parent.parent
# How long a write waits for this process's other writers on SQLite (the busy_timeout other processes get).
WRITE_WAIT_S = 30.0
# PostgreSQL advisory lock keys (the two-int key space, apart from the per-chat locks' one-bigint keys): migrations.
MIGRATION_LOCK = {"a": 0x0CA, "b": 1}
MIGRATION_WAIT_S = 300.0


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Statements run on the loop's thread (store/sqlite_inline.py), with the dialect's own connect arguments.
        args, kwargs = parsed.get_dialect()().create_connect_args(parsed)
        engine = create_async_engine(url, async_creator=sqlite_inline.creator(args, kwargs, WRITE_WAIT_S))
        _sqlite_pragmas(engine.sync_engine)
        _serialise_writers(engine.sync_engine, str(args[0]) if args else "")
        return engine
    # pool_pre_ping: a PostgreSQL restart must cost one reconnect, not a failed update.
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        # WAL lets the terminal chat, tests and the bot read while the bot writes; foreign keys make
        # ON DELETE CASCADE (used by /forget) real on SQLite.
        cur.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL syncs at checkpoints, not on every commit: a killed process loses nothing (the WAL
        # is in the OS's hands), only a power cut may undo the last commits; SQLite's recommended pairing with WAL.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # No busy_timeout: SQLite's busy handler would sleep on the event loop's thread. Another process's lock
        # is waited for by sqlite_inline (asyncio sleeps), this process's writers by _serialise_writers.
        cur.close()


_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLAC")
_WRITE_LOCKS: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}


def _serialise_writers(engine: Engine, database: str) -> None:
    """Queue this process's SQLite write transactions on an asyncio lock, in arrival order.

    SQLite has one writer at a time. A transaction takes its lock at the first INSERT/UPDATE/DELETE (the driver
    opens it there) and holds it until COMMIT. Left to SQLite, a second writer waits in the busy handler, which
    polls by sleeping 1, 2, 5 … 100 ms, unordered: under load the lock sat idle between those sleeps while
    writers queued — at 50 updates/s the conversation benchmark saw a first write wait 0.7 s at p90 and 9 s at
    worst, and the bot fell behind with its CPU not saturated (docs/benchmarks.md). Waiting here costs nothing
    while waiting and hands the lock over the moment the holder commits; and since statements run on the loop's
    thread (sqlite_inline), it keeps this process's writers from ever meeting SQLite's lock held by one another.
    Another process's lock is waited for by sqlite_inline's retry. PostgreSQL needs none of this.
    """

    def lock_for_loop() -> asyncio.Lock:
        # One queue per database file and event loop, shared by every engine of this process on that file.
        loop = asyncio.get_running_loop()  # the statement runs in a greenlet on the loop's own thread
        held = _WRITE_LOCKS.get(database)
        if held is None or held[0] is not loop:
            held = _WRITE_LOCKS[database] = (loop, asyncio.Lock())
        return held[1]

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        info = conn.info
        if "writer" in info or statement.lstrip()[:6].upper() not in _WRITE_VERBS:
            return
        lock = lock_for_loop()
        try:
            await_only(asyncio.wait_for(lock.acquire(), WRITE_WAIT_S))
        except TimeoutError as err:  # the same failure SQLite's own busy timeout gives
            raise exc.OperationalError(statement, parameters, sqlite3.OperationalError("database is locked")) from err
        info["writer"] = lock

    def _release(conn) -> None:  # type: ignore[no-untyped-def]
        lock = conn.info.pop("writer", None)
        if lock is not None:
            lock.release()

    # Released as the transaction ends: the event fires just before the COMMIT or ROLLBACK, which runs inline
    # before this greenlet yields, and a waiter only runs once it has (asyncio wakes it with call_soon). Should a
    # connection go back to the pool some other way, it is released when the pool resets it.
    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)

    def _on_reset(_dbapi_connection, connection_record, _reset_state) -> None:  # type: ignore[no-untyped-def]
        # The full 2.0 signature: with two parameters SQLAlchemy takes the listener for the legacy one and warns on
        # every check-in, and under a warnings-as-errors test run that warning aborted the reset, so the pool
        # closed the connection instead of reusing it and never ran this release.
        _release(connection_record)

    event.listen(engine.pool, "reset", _on_reset)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends normally, rolled back on error."""
    async with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "store" / "migrations"))
    cfg.attributes["database_url"] = url
    return cfg


async def migrate(url: str) -> None:
    """Bring the schema to the latest revision (run in a thread: Alembic's env drives its own event loop)."""
    await asyncio.to_thread(_upgrade, url)


def _upgrade(url: str) -> None:
    """On PostgreSQL under a session advisory lock: two replicas starting together would otherwise both see the
    revision missing and both apply it (the second failing half-way on "already exists"); the second now waits,
    then finds nothing to do. SQLite is one process's file: nothing to serialise."""
    if make_url(url).get_backend_name() != "postgresql":
        command.upgrade(alembic_config(url), "head")
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            # A stuck migration elsewhere fails this start after MIGRATION_WAIT_S instead of hanging it for ever.
            conn.execute(text(f"SET lock_timeout = '{int(MIGRATION_WAIT_S * 1000)}ms'"))
            conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), MIGRATION_LOCK)
            conn.commit()
            try:
                command.upgrade(alembic_config(url), "head")
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), MIGRATION_LOCK)
                conn.commit()
    finally:
        engine.dispose()
