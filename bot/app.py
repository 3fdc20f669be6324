"""Builds everything: the PTB Application, the services it lives with, the capabilities in their order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram import BotCommand, Update
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder
from telegram.request import HTTPXRequest

from actions.base import Capability
from actions.content import Content
from actions.router import Assistant
from bot.adapter import TelegramAdapter
from bot.processor import PerChatUpdateProcessor
from bot.sender import TelegramSender
from core.flood import FloodGuard
from core.settings import Settings
from nlu.client import NluClient, NluUnavailable
from store.db import make_engine, make_sessionmaker, migrate, unit_of_work
from store.models import NluReview, ProcessedUpdate

log = structlog.get_logger(__name__)

PROCESSED_UPDATES_KEEP = dt.timedelta(days=2)  # Telegram keeps undelivered updates for 24 hours
COMMANDS = ("start", "menu", "help", "lang", "privacy")


@dataclass
class Runtime:
    """Services that live as long as the Application: created in build, opened in post_init, closed after."""

    settings: Settings
    content: Content
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    nlu: NluClient
    assistant: Assistant
    scheduler: AsyncIOScheduler
    services: dict[str, object] = field(default_factory=dict)
    adapter: TelegramAdapter | None = None

    async def purge(self) -> None:
        """Forget what is no longer needed: handled update ids, and review-queue texts past retention."""
        now = dt.datetime.now(dt.UTC)
        async with unit_of_work(self.sessions) as session:
            await session.execute(
                delete(ProcessedUpdate).where(ProcessedUpdate.handled_at < now - PROCESSED_UPDATES_KEEP)
            )
            cutoff = now - dt.timedelta(days=self.settings.review_retention_days)
            await session.execute(delete(NluReview).where(NluReview.created_at < cutoff))


def build_capabilities(runtime_services: dict[str, object]) -> list[Capability]:
    """The capabilities, in the order their menu buttons and text hooks are consulted."""
    return []


CapabilityFactory = Callable[[dict[str, object]], list[Capability]]


def build_application(
    settings: Settings,
    content: Content | None = None,
    capabilities: CapabilityFactory | None = None,
) -> tuple[Application, Runtime]:
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    content = content or Content.load()
    engine = make_engine(settings.database_url)
    nlu = NluClient(
        settings.rasa_url,
        settings.rasa_token.get_secret_value(),
        connect_timeout=settings.nlu_connect_timeout_s,
        read_timeout=settings.nlu_read_timeout_s,
    )
    services: dict[str, object] = {}
    assistant = Assistant(nlu, (capabilities or build_capabilities)(services), unavailable=(NluUnavailable,))
    runtime = Runtime(
        settings=settings,
        content=content,
        engine=engine,
        sessions=make_sessionmaker(engine),
        nlu=nlu,
        assistant=assistant,
        scheduler=AsyncIOScheduler(timezone=dt.UTC),
        services=services,
    )

    async def post_init(app: Application) -> None:
        await migrate(settings.database_url)
        services["sender"] = TelegramSender(app.bot)
        services["bot_username"] = app.bot.username
        runtime.adapter = TelegramAdapter(
            settings=settings,
            content=content,
            sessions=runtime.sessions,
            assistant=assistant,
            services=services,
            flood=FloodGuard(settings.flood_messages_per_minute),
            bot=app.bot,
        )
        runtime.adapter.register(app)
        for lang in ("vi", "en"):
            cmds = [BotCommand(c, content.text(f"bot.cmd_{c}", lang)) for c in COMMANDS]
            await app.bot.set_my_commands(cmds, language_code=lang if lang == "en" else None)
        runtime.scheduler.add_job(runtime.purge, "interval", hours=1, id="purge", replace_existing=True)
        runtime.scheduler.start()
        log.info("bot.started", bot=app.bot.username)

    async def post_shutdown(_: Application) -> None:
        if runtime.scheduler.running:
            runtime.scheduler.shutdown(wait=False)
        await nlu.aclose()
        await engine.dispose()
        log.info("bot.stopped")

    builder: ApplicationBuilder = (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_url.replace("/bot", "/file/bot"))
        .request(HTTPXRequest(connection_pool_size=64, connect_timeout=5, read_timeout=10, write_timeout=10))
        .get_updates_request(HTTPXRequest(connection_pool_size=2, connect_timeout=5, read_timeout=40))
        .concurrent_updates(PerChatUpdateProcessor(64))
        # Conversational replies are not throttled by us (the overall 30/s is a bulk limit, handled by the
        # broadcast sender); the limiter retries after a 429's retry_after and keeps groups at 20/min.
        .rate_limiter(AIORateLimiter(overall_max_rate=0, overall_time_period=1, max_retries=3))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    return builder.build(), runtime


async def start_in_loop(app: Application, poll_timeout: int = 1) -> None:
    """Start polling inside the caller's event loop (tests, benchmarks); `run_polling` owns its loop instead."""
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=poll_timeout, allowed_updates=Update.ALL_TYPES)


async def stop_in_loop(app: Application) -> None:
    assert app.updater is not None
    if app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await app.shutdown()
    if app.post_shutdown is not None:
        await app.post_shutdown(app)
