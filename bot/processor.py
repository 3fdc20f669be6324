"""Process updates concurrently across chats but strictly in order within one chat."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

import structlog
from telegram import Update
from telegram.constants import ChatType
from telegram.ext import BaseUpdateProcessor

from core import metrics

log = structlog.get_logger(__name__)

# PTB's own semaphore (taken before `do_process_update`) only bounds how many updates are in the process at all,
# waiting included; the working slots are taken after the chat's lock (see `do_process_update`).
IN_PROCESS_MAX = 4096
# A private chat with more updates than this waiting is flooding (the flood guards refuse far fewer per minute):
# the excess is dropped before it costs anything, so one chat cannot fill IN_PROCESS_MAX either.
QUEUED_PER_CHAT_MAX = 64


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """PTB's SimpleUpdateProcessor runs everything concurrently, so two quick messages (or button presses) from
    one citizen could be handled out of order or race on that citizen's row; this keeps one lane per chat.

    A chat's update takes its lane first and one of the `max_concurrent_updates` working slots only once it is
    that chat's turn: were the slot taken first (as PTB does around `do_process_update`), one chat's queued
    updates would hold every slot while waiting for their own lane, and every other chat would wait behind them.
    """

    def __init__(self, max_concurrent_updates: int = 64, queued_per_chat: int = QUEUED_PER_CHAT_MAX) -> None:
        super().__init__(max(IN_PROCESS_MAX, max_concurrent_updates))
        self._slots = asyncio.Semaphore(max_concurrent_updates)
        self._queued_max = queued_per_chat
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _key(update)
        if key is None:
            async with self._slots:
                await coroutine
            return
        if self._users.get(key, 0) >= self._queued_max and _private(update):
            _discard(coroutine)
            log.warning("update.dropped_chat_queue_full", chat=key, queued=self._users[key])
            metrics.REFUSED.inc()
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock, self._slots:
                await coroutine
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:  # keep the table as small as the set of chats being served right now
                del self._users[key]
                del self._locks[key]

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def _key(update: object) -> int | None:
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return update.effective_user.id
    return None


def _private(update: object) -> bool:
    """Only private chats are capped: a staff group's messages are staff answering citizens, never dropped."""
    chat = update.effective_chat if isinstance(update, Update) else None
    return chat is None or chat.type == ChatType.PRIVATE


def _discard(coroutine: Awaitable[Any]) -> None:
    if inspect.iscoroutine(coroutine):
        coroutine.close()  # never awaited on purpose: closed so Python does not warn about it
