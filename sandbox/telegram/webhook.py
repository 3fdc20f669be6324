"""Pushes a bot's updates to its webhook by HTTP POST, retrying with backoff while the receiver fails.

Like Telegram, up to `max_connections` deliveries run at once; updates of one chat go through one lane, in
order, so a chat's update waits until the one before it was accepted (2xx). A failing receiver holds back
only the lanes it fails on. An update leaves the queue only once delivered, so deleting the webhook
returns the undelivered ones (including one in flight) to getUpdates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque

import aiohttp
import structlog

from core.backoff import backoff_s
from sandbox.telegram.world import BotState, Update, WebhookConfig

__all__ = ["WebhookManager", "WebhookPusher"]

log = structlog.get_logger(__name__)


class WebhookPusher:
    """The delivery lanes of one bot's webhook."""

    def __init__(
        self,
        bot: BotState,
        config: WebhookConfig,
        session: aiohttp.ClientSession,
        *,
        retry_base: float,
        retry_max: float,
        timeout: float,
    ) -> None:
        self._bot = bot
        self._config = config
        self._session = session
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        lanes = max(1, min(config.max_connections, 100))
        self._queues: list[deque[Update]] = [deque() for _ in range(lanes)]
        self._wakeups = [asyncio.Event() for _ in range(lanes)]
        self._headers = {"Content-Type": "application/json"}
        if config.secret_token:
            self._headers["X-Telegram-Bot-Api-Secret-Token"] = config.secret_token
        self._failing = False
        self._tasks = [asyncio.create_task(self._lane(i), name=f"webhook-lane-{i}") for i in range(lanes)]

    def enqueue(self, update: Update) -> None:
        lane = hash(update.chat_id) % len(self._queues)
        self._queues[lane].append(update)
        self._wakeups[lane].set()

    def pending_count(self) -> int:
        return sum(len(q) for q in self._queues)

    async def close(self) -> list[Update]:
        """Stop delivering; returns the updates not delivered yet, oldest first."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        remaining = [u for q in self._queues for u in q]
        remaining.sort(key=lambda u: u.update_id)
        for q in self._queues:
            q.clear()
        return remaining

    async def _lane(self, index: int) -> None:
        queue = self._queues[index]
        wakeup = self._wakeups[index]
        while True:
            if not queue:
                wakeup.clear()
                await wakeup.wait()
                continue
            update = queue[0]
            attempt = 0
            while not await self._post(update):
                attempt += 1
                await asyncio.sleep(backoff_s(attempt, base_s=self._retry_base, cap_s=self._retry_max))
            queue.popleft()
            self._bot.counters["updates_delivered"] += 1
            if self._bot.take_duplicate():
                await self._post(update)
            self._bot.check_counter_waiters()

    async def _post(self, update: Update) -> bool:
        body = json.dumps(update.json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        counters = self._bot.counters
        counters["webhook_posts"] += 1
        error: str
        try:
            async with self._session.post(
                self._config.url, data=body, headers=self._headers, timeout=self._timeout
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    if self._failing:
                        self._failing = False
                        log.info("webhook_recovered", bot_id=self._bot.info.id)
                    return True
                error = f"Wrong response from the webhook: {response.status} {response.reason}"
        except TimeoutError:
            error = "Read timeout expired"
        except aiohttp.ClientConnectorError:
            error = "Connection refused"
        except aiohttp.ClientError as exc:
            error = f"Connection error: {type(exc).__name__}"
        counters["webhook_failures"] += 1
        self._config.last_error_date = int(time.time())
        self._config.last_error_message = error
        if not self._failing:
            # one line per failure streak, not per retry
            self._failing = True
            log.warning("webhook_delivery_failing", bot_id=self._bot.info.id, error=error)
        return False


class WebhookManager:
    """Creates and stops pushers; owns the HTTP client they share."""

    def __init__(self, *, retry_base: float = 0.1, retry_max: float = 5.0, timeout: float = 10.0) -> None:
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._pushers: dict[str, WebhookPusher] = {}

    async def start(self, bot: BotState, config: WebhookConfig) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        old = self._pushers.pop(bot.token, None)
        if old is not None:
            await old.close()
        pusher = WebhookPusher(
            bot,
            config,
            self._session,
            retry_base=self.retry_base,
            retry_max=self.retry_max,
            timeout=self.timeout,
        )
        self._pushers[bot.token] = pusher
        config.sink = pusher

    async def stop(self, bot: BotState) -> list[Update]:
        pusher = self._pushers.pop(bot.token, None)
        if bot.webhook is not None:
            bot.webhook.sink = None
        if pusher is None:
            return []
        return await pusher.close()

    async def close(self) -> None:
        for token in list(self._pushers):
            await self._pushers.pop(token).close()
        if self._session is not None:
            await self._session.close()
            self._session = None
