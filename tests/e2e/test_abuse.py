"""Abuse: flood control in front of the NLU, staff commands refused to citizens, secrets kept out of logs, Rasa
reachable only on loopback with a token, and webhook updates without the secret header refused."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import structlog
from aiohttp import web
from sqlalchemy import select

from bot.app import build_application, stop_in_loop
from bot.webhook import start_webhook
from kernel.types import Understanding
from nlu.server import RasaServer, free_port
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient, SandboxTimeout, SimMessage, SimUser
from sandbox.telegram.server import TelegramEmulator
from store.db import unit_of_work
from store.models import ProcessedUpdate
from tests.support.bots import BotRunner, bot_settings, portal_settings
from tests.support.logscan import LogBuffer, leaks

UNKNOWN = "Mình không biết lệnh này. Gõ /help để xem các việc mình làm được."
SLOW_DOWN = "Bạn nhắn hơi nhanh, mình xin phép chờ một chút rồi trả lời tiếp nhé."
STAFF_COMMANDS = ("broadcast", "broadcasts", "broadcast_status", "staff", "tickets", "stats")


async def drain(user: SimUser, idle_s: float = 3.0) -> list[SimMessage]:
    """Everything the user receives until nothing more arrives for `idle_s`."""
    got: list[SimMessage] = []
    while True:
        try:
            got += await user.wait_for(count=1, timeout=idle_s)
        except SandboxTimeout:
            return got


async def wait_lines(buffer: LogBuffer, event: str, count: int, wait_s: float = 20) -> int:
    deadline = time.monotonic() + wait_s
    while True:
        seen = sum(f'"event": "{event}"' in line for line in buffer.since_mark())
        if seen >= count or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.05)


async def test_flood_gets_one_polite_answer_and_stops_reaching_the_nlu(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str, log_scan: LogBuffer
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    calls: list[str] = []
    parse = runtime.nlu.parse

    async def counting_parse(text: str) -> Understanding:
        calls.append(text)
        return await parse(text)

    runtime.nlu.parse = counting_parse  # type: ignore[method-assign]
    spammer = await sandbox.user(6001, first_name="Spam", language_code="vi")
    for i in range(26):
        await spammer.send(f"xin chào {i}")
    assert await wait_lines(log_scan, "flood.refused", 6) == 6  # messages 21..26, each once
    received = await drain(spammer)
    assert [m.body for m in received].count(SLOW_DOWN) == 1
    assert len(calls) == 20
    # Another citizen is not slowed down by the spammer.
    other = await sandbox.user(6002, first_name="An", language_code="vi")
    await other.send("xin chào")
    [reply] = await other.wait_for(count=1, timeout=15)
    assert reply.body != SLOW_DOWN and len(calls) == 21


async def test_staff_commands_are_unknown_to_citizens(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    await bots.start(db_url, admin_ids=[6999])
    citizen = await sandbox.user(6003, first_name="An", language_code="vi")
    for name in STAFF_COMMANDS:
        for arg in (None, "all hello <b>x</b>", "6003 admin"):
            await citizen.command(name, arg)
            [reply] = await citizen.wait_for(count=1, timeout=15)
            assert reply.body == UNKNOWN, (name, arg, reply.body)
            assert not reply.buttons


async def test_secrets_stay_out_of_the_logs_even_with_request_logging_on(
    sandbox: SandboxClient, bots: BotRunner, portal: PortalEmulator, db_url: str, log_scan: LogBuffer
) -> None:
    # A Rasa stand-in that fails (nlu.down is logged), a portal lookup (OAuth with the client secret, logged by
    # httpx at INFO), a webhook secret in the settings: none of the secrets may reach the log.
    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_post("/model/parse", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    httpx_log = logging.getLogger("httpx")
    level = httpx_log.level
    httpx_log.setLevel(logging.INFO)  # an operator debugging: every request URL is logged
    try:
        await bots.start(
            db_url,
            rasa_url=f"http://127.0.0.1:{port}",
            webhook_secret="webhook-secret-value-123",
            **portal_settings(portal),
        )
        citizen = await sandbox.user(6004, first_name="An", language_code="vi")
        await citizen.send("tra cứu hồ sơ 000.00.12.H22-240101-0003")  # the portal: OAuth with the client secret
        await citizen.wait_for(count=1, timeout=20)
        await citizen.send("xin chào")  # the NLU fails with 500
        [reply] = await citizen.wait_for(count=1, timeout=20)
        assert reply.buttons  # the "NLU is down" answer comes with the menu
    finally:
        httpx_log.setLevel(level)
        await runner.cleanup()
    lines = log_scan.since_mark()
    assert any('"logger": "httpx"' in line for line in lines)  # request logging really was on
    assert any('"event": "nlu.down"' in line and "HTTP 500" in line for line in lines)
    assert leaks(lines, ["webhook-secret-value-123", portal.client_secret, "test-rasa-token", "TEST-test-test"]) == []


def test_rasa_listens_on_loopback_only_and_wants_its_token(rasa: RasaServer) -> None:
    args = list(rasa.process.args)  # type: ignore[arg-type]
    assert args[args.index("--interface") + 1] == "127.0.0.1"
    # The token is not on the command line, which every local user can read (`ps`); it went through the
    # environment, which /proc shows only to the process's owner.
    proc = Path(f"/proc/{rasa.process.pid}")
    cmdline = (proc / "cmdline").read_bytes().decode()
    assert rasa.token not in cmdline and "--auth-token" not in cmdline
    assert (proc / "cmdline").stat().st_mode & 0o004 and not (proc / "environ").stat().st_mode & 0o044
    port = int(rasa.url.rsplit(":", 1)[1])
    listening = set(_listening_addresses(port))
    assert listening == {"127.0.0.1"}, listening
    assert httpx.get(f"{rasa.url}/status", timeout=5).status_code == 401
    assert httpx.get(f"{rasa.url}/status", params={"token": "wrong"}, timeout=5).status_code == 401
    wrong = httpx.post(f"{rasa.url}/model/parse", params={"token": "wrong"}, json={"text": "x"}, timeout=5)
    assert wrong.status_code == 401
    assert httpx.get(f"{rasa.url}/status", params={"token": rasa.token}, timeout=5).status_code == 200


def test_rasa_serves_only_the_nlu_routes(rasa: RasaServer) -> None:
    """The REST chat channel, trackers and training are not reachable even with the token, even on loopback."""
    token = {"token": rasa.token}
    ok = httpx.post(f"{rasa.url}/model/parse", params=token, json={"text": "xin chao"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["intent"]["name"]
    refused = [
        httpx.post(f"{rasa.url}/webhooks/rest/webhook", json={"sender": "x", "message": "hi"}, timeout=5),
        httpx.get(f"{rasa.url}/conversations/x/tracker", params=token, timeout=5),
        httpx.post(f"{rasa.url}/model/train", params=token, content=b"{}", timeout=5),
        httpx.get(f"{rasa.url}/domain", params=token, timeout=5),
        httpx.post(f"{rasa.url}/model/test/intents", params=token, content=b"{}", timeout=5),
    ]
    assert [r.status_code for r in refused] == [404] * len(refused)


def _listening_addresses(port: int) -> Iterator[str]:
    """Local addresses with a socket listening on `port`, from /proc/net/tcp{,6}."""
    for path, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        with open(path) as f:
            next(f)
            for line in f:
                local, _remote, state = line.split()[1:4]
                addr, hexport = local.split(":")
                if state != "0A" or int(hexport, 16) != port:  # 0A = LISTEN
                    continue
                if v6:
                    yield "::" if set(addr) == {"0"} else addr
                else:
                    yield ".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0))


async def test_webhook_updates_without_the_secret_header_are_refused(
    sandbox: SandboxClient, tg: tuple[TelegramEmulator, str], db_url: str
) -> None:
    port = free_port()
    secret = "webhook-secret-value-456-" + "x7Kq2mZp9RtVwY3b"
    settings = bot_settings(
        tg[1], db_url, webhook_url=f"http://127.0.0.1:{port}/telegram", webhook_secret=secret, webhook_port=port
    )
    app, runtime = build_application(settings)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    await app.start()
    # What `python -m bot` does with WEBHOOK_URL set (bot/__main__.py run_webhook), inside this test's event loop.
    runner = await start_webhook(
        app,
        listen="127.0.0.1",
        port=port,
        path="telegram",
        secret=secret,
        webhook_url=settings.webhook_url,
        allowed_updates=["message", "callback_query"],
    )
    try:
        citizen = await sandbox.user(6005, first_name="An", language_code="vi")
        await citizen.command("menu")  # pushed by the emulator with the right header
        [menu] = await citizen.wait_for(count=1, timeout=20)
        assert menu.buttons
        forged: dict[str, Any] = {
            "update_id": 987654,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": 6005, "type": "private", "first_name": "An"},
                "from": {"id": 6005, "is_bot": False, "first_name": "An"},
                "text": "/menu",
                "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
            },
        }
        url = f"http://127.0.0.1:{port}/telegram"
        async with httpx.AsyncClient(timeout=10) as http:
            no_header = await http.post(url, json=forged)
            wrong = await http.post(url, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"})
            # same length, one character off: still refused
            near = await http.post(url, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": secret[:-1] + "c"})
            empty = await http.post(url, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": ""})
            garbage = await http.post(url, content=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": secret})
        assert [r.status_code for r in (no_header, wrong, near, empty)] == [403] * 4
        assert garbage.status_code == 400
        # One chat's updates are handled in order: once this reply is in, a forged update taken in would be too.
        await citizen.command("help")
        [help_reply] = await citizen.wait_for(count=1, timeout=20)
        assert help_reply.buttons
        async with unit_of_work(runtime.sessions) as s:
            assert await s.get(ProcessedUpdate, 987654) is None
            assert (await s.scalars(select(ProcessedUpdate.update_id))).all()  # the pushed one was handled
    finally:
        await runner.cleanup()
        await stop_in_loop(app)


def test_the_log_formatter_redacts_nested_values_and_query_tokens(log_scan: LogBuffer) -> None:
    structlog.get_logger("abuse").warning(
        "probe",
        body={"text": ["cccd 001099012345", "sđt 0912345678"]},
        url="http://127.0.0.1:5005/model/parse?token=test-rasa-token",
    )
    logging.getLogger("httpx").warning("GET http://127.0.0.1/bot123456:TEST-test-test-test-test-test/getUpdates")
    lines = [line for line in log_scan.since_mark() if '"probe"' in line or "getUpdates" in line]
    assert len(lines) == 2
    assert "[id]" in lines[0] and "[phone]" in lines[0] and "token=[secret]" in lines[0]
    assert "/bot[secret]/getUpdates" in lines[1]
    assert leaks(lines) == []
