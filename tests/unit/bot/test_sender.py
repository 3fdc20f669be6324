"""The aiohttp request backend under a real ExtBot, over real HTTP to the emulator: what a sender sees of each
Bot API answer and transport failure (the mapping PTB's own httpx backend gives, so callers need not care)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram.error import NetworkError, TimedOut
from telegram.ext import ExtBot

from bot.aiohttp_request import AiohttpRequest
from bot.sender import TelegramSender, in_doubt
from kernel.outbox import Blocked, MaybeDelivered, Refused, RetryLater, Throttled
from kernel.types import Reply
from sandbox.telegram.client import SandboxClient
from sandbox.telegram.server import TelegramEmulator
from tests.support.base import BOT_TOKEN


async def test_sends_and_maps_answers_and_transport_failures(
    tg: tuple[TelegramEmulator, str], sandbox: SandboxClient
) -> None:
    request = AiohttpRequest(4, connect_timeout=5, read_timeout=1.0)
    bot: ExtBot[Any] = ExtBot(BOT_TOKEN, base_url=f"{tg[1]}/bot", request=request)
    users = [await sandbox.user(9600 + i, first_name="An", language_code="vi") for i in range(8)]
    await bot.initialize()
    try:
        assert bot.username  # getMe went through it
        sender = TelegramSender(bot)
        # Eight at once over a pool of four: they queue for a connection, none is lost or mixed up.
        await asyncio.gather(*(sender.send(u.id, Reply(f"<b>tin</b> {u.id}")) for u in users))
        for u in users:
            [got] = await u.wait_for(1)
            assert got.body == f"tin {u.id}"

        await users[0].block()
        with pytest.raises(Blocked):
            await sender.send(users[0].id, Reply("sau khi chặn"))
        await sandbox.faults("sendMessage", retry_after=3)
        with pytest.raises(Throttled) as throttled:
            await sender.send(users[1].id, Reply("quá nhanh"))
        assert throttled.value.after_s == 3

        await sandbox.faults("sendMessage", status=502)  # answered: not delivered, safe to send again
        with pytest.raises(RetryLater) as bad_gateway:
            await sender.send(users[4].id, Reply("502"))
        assert type(bad_gateway.value) is RetryLater

        with pytest.raises(Refused):  # Telegram will not take this one, however often it is sent
            await sender.send(users[5].id, Reply("<b>không đóng thẻ"))

        await sandbox.faults("sendMessage", reset=True)  # the connection drops mid-request
        with pytest.raises(MaybeDelivered) as dropped:
            await sender.send(users[2].id, Reply("rớt kết nối"))
        assert isinstance(dropped.value.__cause__, NetworkError)

        await sandbox.faults("sendMessage", delay=2.0)  # slower than the 1 s read timeout
        with pytest.raises(MaybeDelivered) as slow:
            await sender.send(users[3].id, Reply("chậm"))
        assert isinstance(slow.value.__cause__, TimedOut)
    finally:
        await bot.shutdown()
    assert request.closed


async def test_a_refused_connection_is_a_network_error_and_known_not_sent() -> None:
    request = AiohttpRequest(2, connect_timeout=1, read_timeout=1)
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as refused:
            await request.do_request("http://127.0.0.1:9/botX/getMe", "POST")
        assert not isinstance(refused.value, TimedOut) and not in_doubt(refused.value)
    finally:
        await request.shutdown()
