"""A stand-in for the outbound port (`bot/sender.py`) for tests of what is sent, not of how it travels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kernel.types import Reply


class FakeSender:
    """Records what citizens would receive; `script[chat_id]` lists exceptions to raise on the next sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Reply]] = []
        self.script: dict[int, list[Exception]] = {}
        self.before_send: Callable[[int, Reply], Any] | None = None
        self.arrived = asyncio.Event()

    async def send(self, chat_id: int, reply: Reply, *, paid: bool = False) -> int:
        if self.before_send is not None:
            await self.before_send(chat_id, reply)
        queue = self.script.get(chat_id)
        if queue:
            raise queue.pop(0)
        self.sent.append((chat_id, reply))
        self.arrived.set()
        return len(self.sent)

    def texts(self, chat_id: int) -> list[str]:
        return [r.text for c, r in self.sent if c == chat_id]
