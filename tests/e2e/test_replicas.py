"""Two bot replicas on one PostgreSQL database, each handed the same updates (a webhook redelivered to the other
replica, a citizen's two first messages landing on both): every update is answered once, none with the error
reply, and two replicas migrating at once leave one schema."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from telegram import Update
from telegram.ext import Application

from bot.app import Runtime, build_application, stop_in_loop
from kernel.content import Content
from sandbox.telegram.client import SandboxClient, SimUser
from sandbox.telegram.server import TelegramEmulator
from store.db import ROOT, unit_of_work
from store.models import ProcessedUpdate, User
from tests.support.base import admin_engine
from tests.support.bots import bot_settings

CONTENT = Content.load()
CITIZENS = range(6401, 6411)
FIRST_ID = 910_000


@pytest.fixture
def pg_db(pg_url: str) -> str:
    """PostgreSQL only (the skip reason is printed without TEST_DATABASE_URL): replicas share no SQLite file."""
    engine = admin_engine(pg_url)
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return pg_url


@pytest.fixture
async def replicas(tg: tuple[TelegramEmulator, str], pg_db: str) -> AsyncIterator[list[tuple[Application, Runtime]]]:
    """Two Applications on one database, taking updates from their queues as a webhook behind a proxy hands them
    over; neither polls. Started one after the other: Alembic's state is per process, so migrating at once is
    tested with two processes below."""
    started: list[tuple[Application, Runtime]] = []
    for _ in range(2):
        app, runtime = build_application(bot_settings(tg[1], pg_db))
        started.append((app, runtime))

    async def start(app: Application) -> None:
        await app.initialize()
        assert app.post_init is not None
        await app.post_init(app)  # migrations run here, in both at once
        await app.start()

    for app, _ in started:
        await start(app)
    yield started
    for app, _ in started:
        await stop_in_loop(app)


def command_update(update_id: int, user: SimUser, message_id: int, command: str) -> dict[str, Any]:
    sender = {"id": user.id, "is_bot": False, "first_name": user.first_name, "language_code": "vi"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": int(dt.datetime.now(dt.UTC).timestamp()),
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "from": sender,
            "text": f"/{command}",
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command) + 1}],
        },
    }


async def test_two_replicas_fed_the_same_updates_answer_each_once_without_errors(
    sandbox: SandboxClient, replicas: list[tuple[Application, Runtime]]
) -> None:
    citizens = [await sandbox.user(uid, first_name=f"Dân {uid}", language_code="vi") for uid in CITIZENS]
    updates = []
    for i, citizen in enumerate(citizens):
        updates.append(command_update(FIRST_ID + 2 * i, citizen, 1, "start"))  # a new citizen's first two messages
        updates.append(command_update(FIRST_ID + 2 * i + 1, citizen, 2, "help"))
    # Every update reaches both replicas at once: the redelivery race and the first-message race together.
    for data in updates:
        for app, _ in replicas:
            await app.update_queue.put(Update.de_json(data, app.bot))

    error = CONTENT.text("common.error", "vi")
    for citizen in citizens:
        got = await citizen.wait_for(count=3, timeout=20)  # /start: welcome and menu; /help: the help menu
        await asyncio.sleep(0.5)
        got += await citizen.read()
        bodies = [m.body for m in got if m.event == "new"]
        assert error not in bodies, bodies
        assert len(bodies) == 3, bodies  # none lost, none doubled
    _, runtime = replicas[0]
    async with unit_of_work(runtime.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(User).where(User.id.in_(CITIZENS))) == 10
        handled = await session.scalar(
            select(func.count()).select_from(ProcessedUpdate).where(ProcessedUpdate.update_id >= FIRST_ID)
        )
        assert handled == len(updates)


async def test_two_replicas_migrating_at_once_leave_one_schema(pg_db: str) -> None:
    code = f"import asyncio; from store.db import migrate; asyncio.run(migrate({pg_db!r}))"
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=ROOT, stderr=asyncio.subprocess.PIPE)
        for _ in range(3)
    ]
    results = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err.decode()[-500:] for _, err in results]
    engine = admin_engine(pg_db)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()
