"""Faults around the bot: Rasa down, too slow, back again; Telegram failing getUpdates and sendMessage; an
update delivered twice; PostgreSQL unreachable for a few seconds; a migration pending at start. Each time the
citizen gets a clear answer and the bot recovers by itself."""

from __future__ import annotations

import asyncio
import time

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.pool import NullPool

from nlu.server import RasaServer
from sandbox.telegram.client import SandboxClient, SandboxTimeout, SimMessage, SimUser
from store.db import alembic_config, unit_of_work
from store.models import ProcessedUpdate, User
from tests.support.bots import BotRunner
from tests.support.logscan import LogBuffer
from tests.support.tcp_proxy import TcpProxy

NLU_DOWN = "Hiện mình tạm thời không đọc được tin nhắn chữ."
ERROR = "Xin lỗi, mình gặp lỗi khi xử lý yêu cầu."
FEE = "lệ phí làm hộ chiếu"


async def reply(user: SimUser, wait_s: float = 30) -> SimMessage:
    [msg] = await user.wait_for(count=1, timeout=wait_s)
    return msg


async def rest(user: SimUser, idle_s: float = 1.5) -> list[SimMessage]:
    got: list[SimMessage] = []
    while True:
        try:
            got += await user.wait_for(count=1, timeout=idle_s)
        except SandboxTimeout:
            return got


async def understood(user: SimUser, wait_s: float = 30) -> SimMessage:
    """Ask the fee question until it is answered from the NLU (not the "can't read" menu), bounded."""
    deadline = time.monotonic() + wait_s
    while True:
        await user.send(FEE)
        msg = await reply(user)
        await rest(user, idle_s=0.3)
        if not msg.body.startswith(NLU_DOWN):
            return msg
        assert time.monotonic() < deadline, "the NLU never came back"
        await asyncio.sleep(1.0)


async def test_rasa_down_slow_and_back(sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str) -> None:
    host, port = rasa.url.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        runtime = await bots.start(db_url, rasa_url=f"http://127.0.0.1:{proxy.port}", nlu_read_timeout_s=1.0)
        runtime.nlu._cooldown_s = 1.0  # probe again soon: the test waits for recovery
        user = await sandbox.user(8001, first_name="An", language_code="vi")
        answer = await understood(user)
        assert "Hộ chiếu" in answer.body or "hộ chiếu" in answer.body

        await proxy.cut()  # down: connection refused
        await user.send(FEE)
        down = await reply(user)
        assert down.body.startswith(NLU_DOWN) and down.buttons  # the menu still works
        await user.press(down, "📋 Thủ tục hành chính")
        assert (await reply(user)).buttons

        await proxy.restore()  # restarted mid-conversation
        assert "hộ chiếu" in (await understood(user)).body.lower()

        proxy.delay = 2.0  # slower than the 1 s read timeout
        started = time.monotonic()
        await user.send(FEE)
        slow = await reply(user)
        assert slow.body.startswith(NLU_DOWN) and time.monotonic() - started < 10
        proxy.delay = 0.0
        assert "hộ chiếu" in (await understood(user)).body.lower()
    finally:
        await proxy.stop()


@pytest.mark.parametrize(
    "fault",
    [
        {"method": "getUpdates", "status": 502, "count": 3},
        {"method": "getUpdates", "reset": True, "count": 2},
        {"method": "getUpdates", "status": 500, "count": 1, "delay": 2.0},
        {"method": "sendMessage", "status": 502, "count": 1},
        {"method": "sendMessage", "status": 500, "count": 3},
        {"method": "sendMessage", "reset": True, "count": 2},
        {"method": "sendMessage", "retry_after": 1, "count": 5},  # more 429s than the rate limiter's 3 retries
    ],
    ids=[
        "getUpdates-502",
        "getUpdates-reset",
        "getUpdates-slow-500",
        "sendMessage-502",
        "sendMessage-500x3",
        "sendMessage-resetx2",
        "sendMessage-429x5",
    ],
)
async def test_telegram_faults(
    sandbox: SandboxClient, bots: BotRunner, fault: dict[str, object], log_scan: LogBuffer, tmp_path: object
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path}/assistant.db"
    runtime = await bots.start(db_url)
    user = await sandbox.user(8101, first_name="An", language_code="vi")
    await user.command("menu")
    assert (await reply(user)).buttons
    method = str(fault.pop("method"))
    await sandbox.faults(method, **fault)  # type: ignore[arg-type]
    await user.command("help")
    got = [await reply(user), *await rest(user)]
    bodies = [m.body for m in got]
    print(f"{method} {fault}: the citizen got {[b[:50] for b in bodies]}")
    # getUpdates: the update waits on Telegram's side and is fetched again. sendMessage: the reply is tried again
    # until Telegram takes it. Either way the citizen gets the answer itself, once, not an apology.
    assert len(got) == 1 and got[0].buttons and not bodies[0].startswith(ERROR)
    if method == "sendMessage":
        assert any('"reply.retry"' in line for line in log_scan.since_mark())  # the fault did hit the reply
    await user.command("menu")
    assert (await reply(user)).buttons
    async with unit_of_work(runtime.sessions) as s:
        assert await s.get(User, user.id) is not None


async def test_an_update_delivered_twice_is_answered_once(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    runtime = await bots.start(db_url)
    user = await sandbox.user(8201, first_name="An", language_code="vi")
    await sandbox.duplicates(1)
    sent = await user.command("menu")
    assert (await reply(user)).buttons
    await user.command("help")  # handled after the duplicate (same chat, in order)
    assert (await reply(user)).buttons
    assert await rest(user) == []
    async with unit_of_work(runtime.sessions) as s:
        assert await s.get(ProcessedUpdate, sent.update_id) is not None


async def test_database_unreachable_for_a_few_seconds(
    sandbox: SandboxClient, bots: BotRunner, pg_url: str, log_scan: LogBuffer
) -> None:
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    _clean(pg_url)
    try:
        runtime = await bots.start(proxied)
        user = await sandbox.user(8301, first_name="An", language_code="vi")
        await user.command("menu")
        assert (await reply(user)).buttons
        log_scan.allow_failed = True  # the update that meets the outage goes through the error handler
        await proxy.cut()
        await user.command("help")
        during = await reply(user, wait_s=60)
        assert during.body.startswith(ERROR)  # a clear answer, not silence
        await proxy.restore()
        deadline = time.monotonic() + 30
        while True:  # the pool reconnects by itself (pool_pre_ping)
            await user.command("menu")
            msg = await reply(user, wait_s=60)
            if msg.buttons:
                break
            assert time.monotonic() < deadline, "the bot did not recover from the database outage"
            await asyncio.sleep(1.0)
        async with unit_of_work(runtime.sessions) as s:
            assert await s.get(User, user.id) is not None
    finally:
        await proxy.stop()


def _clean(pg_url: str) -> None:
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


async def test_a_pending_migration_is_applied_at_start(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    cfg = alembic_config(db_url)
    head = ScriptDirectory.from_config(cfg).get_revision("head")
    assert head is not None and isinstance(head.down_revision, str)
    await asyncio.to_thread(command.upgrade, cfg, head.down_revision)  # the schema one release behind
    runtime = await bots.start(db_url)
    user = await sandbox.user(8401, first_name="An", language_code="vi")
    await user.command("menu")
    assert (await reply(user)).buttons
    async with unit_of_work(runtime.sessions) as s:
        version = (await s.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert version == head.revision
        assert await s.scalar(select(func.count()).select_from(User)) == 1


async def test_an_edit_telegram_refuses_goes_out_as_a_new_message(
    sandbox: SandboxClient, bots: BotRunner, tmp_path: object
) -> None:
    await bots.start(f"sqlite+aiosqlite:///{tmp_path}/assistant.db")
    user = await sandbox.user(8111, first_name="An", language_code="vi")
    await user.command("menu")
    menu = await reply(user)
    await user.press(menu, "📅 Hạn đổi thẻ căn cước")
    question = await reply(user)
    decade = question.buttons[0][0][0]
    # The picker answers a press by editing the question; here Telegram refuses that edit.
    await sandbox.faults("editMessageText", status=400, description="Bad Request: message to edit not found")
    await user.press(question, decade)
    picked = await reply(user)
    assert picked.message_id != question.message_id and picked.buttons  # the next question, as a new message
    assert not picked.body.startswith(ERROR) and await rest(user) == []
