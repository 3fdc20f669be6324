"""SQLite for SQLAlchemy's async engine, run on the event loop's own thread.

SQLAlchemy's `sqlite+aiosqlite` dialect drives an aiosqlite connection: one thread per connection, and every
statement, fetch and commit a round trip to it (a queue put, a thread wake-up and the GIL, then a wake-up of the
loop, where the answer queues behind whatever else is ready). A conversation update makes about ten of them.
Under load the round trips cost CPU on both sides and, worse, their waiting falls inside the write transaction,
which is SQLite's one writer lock: the conversation benchmark measured the lock held 18 ms per update at 40/s,
most of it waiting for the loop (docs/benchmarks.md).

Our statements are small and indexed (tens of microseconds in SQLite itself), so this module gives the dialect
the surface of an aiosqlite connection (`async_creator`, SQLAlchemy's documented seam) whose methods call
`sqlite3` directly. What makes blocking the loop for a statement safe:

- this process's writers never meet SQLite's busy handler: `store.db` queues them on an asyncio lock;
- the busy handler is off (timeout 0). When another process (a maintainer's tool) holds the write lock, the
  statement that would open a transaction fails at once with SQLITE_BUSY and is retried here after an asyncio
  sleep (1 ms doubling to 100 ms, for up to `busy_s`), so the loop keeps running meanwhile. Only a statement
  outside a transaction is retried: nothing of that transaction has happened yet. Inside one, in WAL mode, a
  writer is not refused (COMMIT waits for no reader), so there is nothing to retry.

aiosqlite itself stays a dependency of the dialect (its exceptions are sqlite3's); only its thread goes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from core.backoff import backoff_s

RETRY_FIRST_S = 0.001
RETRY_MAX_S = 0.1


class InlineCursor:
    """aiosqlite.Cursor's surface over a sqlite3 cursor."""

    def __init__(self, owner: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._owner = owner
        self._cursor = cursor

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        await self._owner.run(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> InlineCursor:
        rows = list(seq)  # a retry must see the same rows again
        await self._owner.run(self._cursor.executemany, sql, rows)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize


class _RunNow:
    """Stands in for aiosqlite's thread queue, which SQLAlchemy's isolation-level setter feeds directly."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as err:  # handed to the waiter, as aiosqlite's thread does
            if future is not None:
                future.set_exception(err)
            return
        if future is not None:
            future.set_result(result)


class InlineConnection:
    """aiosqlite.Connection's surface (as SQLAlchemy's adapter uses it) over a sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection, busy_s: float) -> None:
        self._conn = conn
        self._tx = _RunNow()
        self._busy_s = busy_s

    async def run(self, call: Callable[..., Any], *args: Any) -> Any:
        """One statement, retried while another process holds the lock it needs and no transaction is open."""
        retry = not self._conn.in_transaction
        attempt, waited = 0, 0.0
        while True:
            try:
                return call(*args)
            except sqlite3.OperationalError as err:
                busy = getattr(err, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not (busy and retry) or waited >= self._busy_s:
                    raise
            attempt += 1
            delay = backoff_s(attempt, base_s=RETRY_FIRST_S, cap_s=RETRY_MAX_S)
            await asyncio.sleep(delay)
            waited += delay

    async def cursor(self) -> InlineCursor:
        return InlineCursor(self, self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        return await InlineCursor(self, self._conn.cursor()).execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    async def create_function(self, name: str, num_params: int, func: Callable[..., Any], **kw: Any) -> None:
        self._conn.create_function(name, num_params, func, **kw)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level


def creator(args: Sequence[Any], kwargs: Mapping[str, Any], busy_s: float) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: connects with the dialect's own connect arguments."""

    async def connect() -> InlineConnection:
        # timeout=0: SQLite's busy handler would sleep on the loop's thread; InlineConnection.run retries instead.
        # check_same_thread=False: the pool may close a connection from the garbage collector's thread.
        conn = sqlite3.connect(*args, **{**kwargs, "timeout": 0, "check_same_thread": False})
        return InlineConnection(conn, busy_s)

    return connect
