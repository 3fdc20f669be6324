"""The outbound port's sharded request: a real ExtBot over real HTTP to the emulator, requests spread over pools."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from telegram.ext import ExtBot

from actions.outbox import Blocked, RetryLater
from actions.types import Reply
from bot.sender import ShardedRequest, TelegramSender
from sandbox.telegram.client import SandboxClient
from sandbox.telegram.server import TelegramEmulator
from tests.conftest import BOT_TOKEN


def _counting(request: ShardedRequest) -> Counter[int]:
    """Count the requests each shard makes (a wrapper around each shard's own do_request)."""
    counts: Counter[int] = Counter()
    for i, shard in enumerate(request.shards):
        inner = shard.do_request

        async def counted(*args: Any, _i: int = i, _inner: Any = inner, **kwargs: Any) -> tuple[int, bytes]:
            counts[_i] += 1
            result: tuple[int, bytes] = await _inner(*args, **kwargs)
            return result

        shard.do_request = counted  # type: ignore[method-assign]
    return counts


async def test_messages_go_out_over_every_shard_and_errors_still_map(
    tg: tuple[TelegramEmulator, str], sandbox: SandboxClient
) -> None:
    request = ShardedRequest.of(4, 2, connect_timeout=5, read_timeout=10, write_timeout=10)
    bot: ExtBot[Any] = ExtBot(BOT_TOKEN, base_url=f"{tg[1]}/bot", request=request)
    users = [await sandbox.user(9600 + i, first_name="An", language_code="vi") for i in range(8)]
    await bot.initialize()
    counts = _counting(request)
    try:
        sender = TelegramSender(bot)
        ids = await asyncio.gather(*(sender.send(u.id, Reply(f"tin {u.id}")) for u in users))
        assert len(ids) == 8 and all(isinstance(i, int) for i in ids)
        for u in users:
            [got] = await u.wait_for(1)
            assert got.body == f"tin {u.id}"
        assert sorted(counts.values()) == [2, 2, 2, 2]  # round-robin over the four pools

        await users[0].block()
        try:
            await sender.send(users[0].id, Reply("sau khi chặn"))
            raise AssertionError("a blocked chat must raise Blocked")
        except Blocked:
            pass
        await sandbox.faults("sendMessage", retry_after=3)
        try:
            await sender.send(users[1].id, Reply("quá nhanh"))
            raise AssertionError("a 429 must raise RetryLater")
        except RetryLater as exc:
            assert exc.after_s == 3
    finally:
        await bot.shutdown()
    assert all(shard._client.is_closed for shard in request.shards)  # every pool was closed
