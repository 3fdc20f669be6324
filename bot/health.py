"""Operations endpoints on HEALTH_PORT, in polling and webhook mode alike: /livez (the process answers: for the
supervisor's liveness check), /readyz (200 only when the database and the NLU server answer: for the proxy's
upstream check; /healthz is the same, kept for existing checks) and Prometheus /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.aiohttp_request import AiohttpRequest
from core import metrics
from nlu.client import NluClient
from portal.client import PortalClient
from store.db import unit_of_work
from store.models import NluReview
from store.queues import queue_depths

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_S = 3.0
_installed: set[str] = set()  # mapper events are global: listen once per process

Check = Callable[[], Awaitable[bool]]  # a dependency's readiness: True when it answers now


class HealthServer:
    """A small aiohttp server beside PTB's (whose webhook server takes no extra routes). It knows the database
    (for the queue depths) and the named readiness checks it is given, nothing else of the application."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], checks: Mapping[str, Check], host: str, port: int
    ) -> None:
        self.sessions = sessions
        self.named_checks = dict(checks)
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/livez", self.livez)
        app.router.add_get("/readyz", self.healthz)
        app.router.add_get("/healthz", self.healthz)  # the readiness check's former name
        app.router.add_get("/metrics", self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("health.started", port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def livez(self, _: web.Request) -> web.Response:
        """The event loop answers: nothing else is asked. A Rasa or database outage must not make a supervisor
        restart a bot whose menus and buttons still work (and whose restart would not bring either back)."""
        return web.json_response({"alive": True})

    async def healthz(self, _: web.Request) -> web.Response:
        results = await dependency_states(self.named_checks)
        return web.json_response(results, status=200 if all(results.values()) else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self._queue_depths(), CHECK_TIMEOUT_S)
        except Exception as exc:  # the counters are still worth serving when the database is away
            log.warning("health.queue_depths_failed", error=type(exc).__name__)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _queue_depths(self) -> None:
        async with unit_of_work(self.sessions) as s:
            for name, depth in (await queue_depths(s)).items():
                metrics.QUEUE.labels(name).set(depth)


def database_check(sessions: async_sessionmaker[AsyncSession]) -> Check:
    """The database answers a SELECT 1."""

    async def database() -> bool:
        async with unit_of_work(sessions) as session:
            await session.execute(text("SELECT 1"))
        return True

    return database


async def dependency_states(checks: Mapping[str, Check]) -> dict[str, bool]:
    """Whether each dependency answers now (each within CHECK_TIMEOUT_S); also sets the gauges. /readyz and the
    staff console's dashboard both show it."""
    results: dict[str, bool] = {}
    for name, check in checks.items():
        try:
            results[name] = bool(await asyncio.wait_for(check(), CHECK_TIMEOUT_S))
        except Exception as exc:  # any failure means "not healthy", never a 500 from the probe itself
            log.warning("health.check_failed", dependency=name, error=type(exc).__name__)
            results[name] = False
        metrics.UP.labels(name).set(1 if results[name] else 0)
    return results


def instrument(nlu: NluClient, portal: PortalClient | None, telegram: Iterable[AiohttpRequest]) -> None:
    """Count what crosses the process's edges through each client's public observers: the NLU client's, the
    portal client's and the Bot API request backends'. No client code path changes."""
    if "reviews" not in _installed:
        _installed.add("reviews")
        event.listen(NluReview, "after_insert", _review_added)
    nlu.observers.append(_nlu_observed)
    if portal is not None:
        portal.observers.append(_portal_observed)
    for request in telegram:
        request.observers.append(_telegram_observed)


def _review_added(_mapper: Any, _conn: Any, target: NluReview) -> None:
    metrics.REVIEWS.labels(target.reason).inc()


def _nlu_observed(path: str, status: int | None, seconds: float) -> None:
    if path == "/model/parse" and status is not None:
        metrics.NLU_SECONDS.observe(seconds)
    if status is None or status >= 400:
        metrics.NLU_ERRORS.inc()


def _portal_observed(status: int) -> None:
    metrics.PORTAL.labels(f"{status // 100}xx").inc()


def _telegram_observed(url: str, status: int) -> None:
    method = url.rsplit("/", 1)[-1]
    if method in ("getUpdates", "getMe", "setMyCommands", "deleteWebhook", "setWebhook"):
        return  # polling and start-up chatter: not sends
    metrics.TELEGRAM.labels(method, str(status)).inc()
