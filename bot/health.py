"""Operations endpoints on HEALTH_PORT, in polling and webhook mode alike: /livez (the process answers: for the
supervisor's liveness check), /readyz (200 only when the database and the NLU server answer: for the proxy's
upstream check; /healthz is the same, kept for existing checks) and Prometheus /metrics."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from telegram.ext import Application

from bot.aiohttp_request import AiohttpRequest
from core import metrics
from store.db import unit_of_work
from store.models import NluReview, PendingReply
from store.models_handover import CLOSED, Ticket
from store.models_news import DONE as BROADCAST_DONE
from store.models_news import PENDING as DELIVERY_PENDING
from store.models_news import Broadcast, Delivery
from store.models_reminders import PENDING as REMINDER_PENDING
from store.models_reminders import Reminder

if TYPE_CHECKING:
    from bot.app import Runtime

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_S = 3.0
_installed: set[str] = set()  # mapper events are global: listen once per process


class HealthServer:
    """A small aiohttp server beside PTB's (whose webhook server takes no extra routes)."""

    def __init__(self, runtime: Runtime, host: str, port: int) -> None:
        self.runtime = runtime
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

    async def checks(self) -> dict[str, bool]:
        return await dependency_states(self.runtime)

    async def livez(self, _: web.Request) -> web.Response:
        """The event loop answers: nothing else is asked. A Rasa or database outage must not make a supervisor
        restart a bot whose menus and buttons still work (and whose restart would not bring either back)."""
        return web.json_response({"alive": True})

    async def healthz(self, _: web.Request) -> web.Response:
        results = await self.checks()
        return web.json_response(results, status=200 if all(results.values()) else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self._queue_depths(), CHECK_TIMEOUT_S)
        except Exception as exc:  # the counters are still worth serving when the database is away
            log.warning("health.queue_depths_failed", error=type(exc).__name__)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _queue_depths(self) -> None:
        async with unit_of_work(self.runtime.sessions) as s:
            for name, depth in (await queue_depths(s)).items():
                metrics.QUEUE.labels(name).set(depth)


async def dependency_states(runtime: Runtime) -> dict[str, bool]:
    """Whether the database and the NLU server answer now (each within CHECK_TIMEOUT_S); also sets the gauges.
    /healthz and the staff console's dashboard both show it."""

    async def database() -> bool:
        async with unit_of_work(runtime.sessions) as session:
            await session.execute(text("SELECT 1"))
        return True

    results: dict[str, bool] = {}
    for name, check in (("database", database), ("nlu", runtime.nlu.ready)):
        try:
            results[name] = bool(await asyncio.wait_for(check(), CHECK_TIMEOUT_S))
        except Exception as exc:  # any failure means "not healthy", never a 500 from the probe itself
            log.warning("health.check_failed", dependency=name, error=type(exc).__name__)
            results[name] = False
        metrics.UP.labels(name).set(1 if results[name] else 0)
    return results


async def queue_depths(s: AsyncSession) -> dict[str, int]:
    """Work waiting now, by queue: what /metrics exports and the staff console shows."""
    depths = {
        "reminders_pending": select(func.count()).select_from(Reminder).where(Reminder.state == REMINDER_PENDING),
        # A done broadcast has no pending row (BroadcastEngine._finish_if_done), so only the other broadcasts'
        # rows are counted: a range of the claim index instead of a scan of every delivery ever made.
        "deliveries_pending": select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.broadcast_id.in_(select(Broadcast.id).where(Broadcast.status != BROADCAST_DONE)),
            Delivery.state == DELIVERY_PENDING,
        ),
        "tickets_open": select(func.count()).select_from(Ticket).where(Ticket.status != CLOSED),
        "review_queue": select(func.count()).select_from(NluReview).where(NluReview.status == "open"),
        "replies_pending": select(func.count()).select_from(PendingReply),
    }
    return {name: int(await s.scalar(query) or 0) for name, query in depths.items()}


def instrument(runtime: Runtime, app: Application) -> None:
    """Count what crosses the process's edges: the NLU client's and the aiohttp Bot API backend's observers, and
    httpx event hooks on the portal client (no change to the clients' code paths)."""
    if "reviews" not in _installed:
        _installed.add("reviews")
        event.listen(NluReview, "after_insert", _review_added)

    # The portal client keeps its httpx.AsyncClient private; event hooks are httpx's public way to observe it.
    runtime.nlu.observers.append(_nlu_observed)
    if runtime.portal is not None:
        _hook(getattr(runtime.portal, "_http", None), None, _portal_response)
    for bot in (app.bot, runtime.port_bot):
        request = getattr(bot, "request", None)
        if isinstance(request, AiohttpRequest):
            request.observers.append(_telegram_observed)
        else:
            _hook(getattr(request, "_client", None), None, _telegram_response)


def _review_added(_mapper: Any, _conn: Any, target: NluReview) -> None:
    metrics.REVIEWS.labels(target.reason).inc()


def _hook(client: object, on_request: Any, on_response: Any) -> None:
    if not isinstance(client, httpx.AsyncClient):
        log.warning("metrics.client_not_instrumented")
        return
    hooks = client.event_hooks
    if on_request is not None:
        hooks["request"] = [*hooks.get("request", []), on_request]
    hooks["response"] = [*hooks.get("response", []), on_response]
    client.event_hooks = hooks


def _nlu_observed(path: str, status: int | None, seconds: float) -> None:
    if path == "/model/parse" and status is not None:
        metrics.NLU_SECONDS.observe(seconds)
    if status is None or status >= 400:
        metrics.NLU_ERRORS.inc()


async def _portal_response(response: httpx.Response) -> None:
    metrics.PORTAL.labels(f"{response.status_code // 100}xx").inc()


async def _telegram_response(response: httpx.Response) -> None:
    _telegram_observed(str(response.request.url), response.status_code)


def _telegram_observed(url: str, status: int) -> None:
    method = url.rsplit("/", 1)[-1]
    if method in ("getUpdates", "getMe", "setMyCommands", "deleteWebhook", "setWebhook"):
        return  # polling and start-up chatter: not sends
    metrics.TELEGRAM.labels(method, str(status)).inc()
