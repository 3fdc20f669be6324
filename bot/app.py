"""Builds everything: the PTB Application, the services it lives with, the capabilities in their order."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram import BotCommand, Update
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ExtBot

from actions import handover as handover_module
from actions import renewal as renewal_module
from actions.base import Capability, Services
from actions.broadcast_ui import BroadcastUI
from actions.dossier import DossierCapability, purge_lookups, render_change
from actions.eid import EidCapability
from actions.erasure import delete_staff_copies
from actions.faq import Faq
from actions.feedback import FeedbackCapability
from actions.handover import HandoverCapability, OfficeHours, load_holidays
from actions.news import News
from actions.privacy import PrivacyCapability
from actions.procedures import ProceduresCapability
from actions.reminders import ReminderCapability
from actions.renewal import RenewalCapability
from actions.router import Assistant
from actions.stats import StatsCapability
from bot.adapter import TelegramAdapter
from bot.aiohttp_request import AiohttpRequest
from bot.health import HealthServer, database_check, dependency_states, instrument
from bot.processor import PerChatUpdateProcessor
from bot.sender import TelegramSender
from bot.spool import EVERY_S as SPOOL_EVERY_S
from bot.spool import ReplySpool
from broadcast.audience import load_areas
from broadcast.engine import BroadcastEngine
from console.auth import purge_links as purge_console_links
from console.capability import ConsoleCapability
from console.server import ConsoleServer
from core.flood import FloodGuard
from core.scheduler import DrainingScheduler
from core.settings import Settings
from kernel.content import Content
from kernel.content_schema import guides_section
from nlu.client import NluClient, NluUnavailable
from portal.breaker import CircuitBreaker
from portal.budget import LookupBudget
from portal.client import PortalClient
from portal.models import Dossier
from portal.poller import DossierPoller
from reminders import Dispatcher, make_deadlines_hook, sync_dossier_deadlines
from reminders import schedule as schedule_reminders
from reminders.store import purge_drafts as purge_reminder_drafts
from store.db import make_engine, make_sessionmaker, migrate, unit_of_work
from store.models import NluReview, ProcessedUpdate
from store.queues import queue_depths
from store.retention import purge_by_retention

log = structlog.get_logger(__name__)

PROCESSED_UPDATES_KEEP = dt.timedelta(days=2)  # Telegram keeps undelivered updates for 24 hours
COMMANDS = ("start", "menu", "help", "lang", "privacy", "mydata", "forget")


@dataclass
class Wiring:
    """What capabilities are built from: the settings, the texts, the database, and the services that post_init
    fills in (the outbound sender, the portal client, the broadcast engine) before the first update."""

    settings: Settings
    content: Content
    sessions: async_sessionmaker[AsyncSession]
    services: Services


@dataclass
class Runtime:
    """Services that live as long as the Application: created in build, opened in post_init, closed after."""

    settings: Settings
    content: Content
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    nlu: NluClient
    assistant: Assistant
    scheduler: DrainingScheduler
    services: Services = field(default_factory=Services)
    adapter: TelegramAdapter | None = None
    port_bot: ExtBot[Any] | None = None
    portal: PortalClient | None = None
    dispatcher: Dispatcher | None = None
    poller: DossierPoller | None = None
    broadcasts: BroadcastEngine | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    health: HealthServer | None = None
    console: ConsoleServer | None = None
    spool: ReplySpool | None = None

    async def purge(self) -> None:
        """Forget what is no longer needed: handled update ids, review-queue texts past retention, the recent
        messages kept for handover posts, renewal dialogues (they hold a date of birth) left unfinished,
        reminder drafts never confirmed (REMINDER_DRAFT_HOURS), and what the retention settings say is no longer
        needed: closed tickets, answer feedback, reminder history, who received a broadcast (store/retention.py);
        dossier codes looked up (as hashes) a day after their last use."""
        now = dt.datetime.now(dt.UTC)
        async with unit_of_work(self.sessions) as session:
            await session.execute(
                delete(ProcessedUpdate).where(ProcessedUpdate.handled_at < now - PROCESSED_UPDATES_KEEP)
            )
            cutoff = now - dt.timedelta(days=self.settings.review_retention_days)
            await session.execute(delete(NluReview).where(NluReview.created_at < cutoff))
            await handover_module.purge(session, now)
            await renewal_module.purge_stale(session, now)
            await purge_console_links(session, now)
            await purge_reminder_drafts(session, now - dt.timedelta(hours=self.settings.reminder_draft_hours))
            await purge_by_retention(session, self.settings, now)
            await purge_lookups(session, now)


def build_capabilities(w: Wiring) -> list[Capability]:
    """The capabilities, in the order their text hooks are consulted and their menu buttons shown.

    Whoever is waiting for a typed answer goes first: an open handover ticket relays everything; a staff member
    composing a broadcast types its text; a 👎 waits for "what was missing?"; reminders, renewal and dossier
    lookups wait for a time, a date or a code. The rest answer intents only.
    """
    s, content = w.settings, w.content
    tz = ZoneInfo(s.timezone)
    areas = load_areas(s.areas_file)
    hours = OfficeHours.parse(s.office_hours, holidays=load_holidays(), timezone=s.timezone)
    reminders = ReminderCapability(
        content, tz=tz, cap=s.reminder_cap, draft_ttl=dt.timedelta(hours=s.reminder_draft_hours)
    )

    async def dossier_deadlines(session: AsyncSession, user_id: int, code: str, deadlines: list[Any]) -> None:
        await sync_dossier_deadlines(session, user_id, code, deadlines, tz=tz)

    procedures = ProceduresCapability(content)
    return [
        HandoverCapability(
            hours,
            content=content,
            sessions=w.sessions,
            services=w.services,
            repost_after_s=s.handover_repost_after_s,
        ),
        BroadcastUI(areas, rate=s.broadcast_rate, paid_rate=s.broadcast_paid_rate),
        FeedbackCapability(),
        PrivacyCapability(content),
        reminders,
        RenewalCapability(content, remind=reminders.remind_renewal, procedures=procedures),
        DossierCapability(
            max_follows=s.dossier_max_follows,
            poll_interval_s=s.portal_poll_interval_s,
            on_deadlines=dossier_deadlines,
            lookups_per_hour=s.dossier_lookups_per_hour,
            budget=LookupBudget(s.dossier_lookup_rps, s.dossier_lookup_burst),
            verify_tries=s.dossier_verify_tries,
            verify_lock_s=s.dossier_verify_lock_minutes * 60.0,
            sessions=w.sessions,
            hash_secret=s.portal_client_secret.get_secret_value(),
        ),
        EidCapability(content),
        procedures,
        News(areas),
        StatsCapability(),
        ConsoleCapability(),
    ]


CapabilityFactory = Callable[[Wiring], list[Capability]]


def build_application(
    settings: Settings,
    content: Content | None = None,
    capabilities: CapabilityFactory | None = None,
) -> tuple[Application, Runtime]:
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    token = settings.telegram_bot_token.get_secret_value()
    content = content or Content.load()
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    nlu = NluClient(
        settings.rasa_url,
        settings.rasa_token.get_secret_value(),
        connect_timeout=settings.nlu_connect_timeout_s,
        read_timeout=settings.nlu_read_timeout_s,
    )
    services = Services()
    wiring = Wiring(settings, content, sessions, services)
    guide_titles = {gid: g.title for gid, g in guides_section(content).guides.items()}
    assistant = Assistant(
        nlu,
        (capabilities or build_capabilities)(wiring),
        unavailable=(NluUnavailable,),
        faq=Faq(content, guide_titles),
    )
    runtime = Runtime(
        settings=settings,
        content=content,
        engine=engine,
        sessions=sessions,
        nlu=nlu,
        assistant=assistant,
        scheduler=DrainingScheduler(timezone=dt.UTC),
        services=services,
    )
    # Background sends (broadcasts, reminders, dossier notices, ticket posts) go through their own bot object and
    # connection pool, with no PTB rate limiter: their callers pace them, and a 100,000-recipient broadcast must
    # not queue the replies citizens are waiting for in the conversation.
    runtime.port_bot = ExtBot(
        token,
        base_url=settings.telegram_base_url,
        base_file_url=settings.telegram_base_url.replace("/bot", "/file/bot"),
        request=AiohttpRequest(128, connect_timeout=5, read_timeout=10),
    )

    async def post_init(app: Application) -> None:
        await migrate(settings.database_url)
        assert runtime.port_bot is not None
        await runtime.port_bot.initialize()
        sender = TelegramSender(runtime.port_bot)
        services.sender = sender
        runtime.portal = PortalClient(
            settings.portal_base_url,
            settings.portal_token_url,
            settings.portal_client_id,
            settings.portal_client_secret.get_secret_value(),
            connect_timeout=settings.portal_connect_timeout_s,
            read_timeout=settings.portal_read_timeout_s,
            deadline_s=settings.portal_deadline_s,
            breaker=CircuitBreaker(reset_timeout_s=settings.portal_breaker_reset_s),
        )
        services.portal = runtime.portal
        runtime.adapter = TelegramAdapter(
            settings=settings,
            content=content,
            sessions=sessions,
            assistant=assistant,
            services=services,
            flood=FloodGuard(settings.flood_messages_per_minute),
            bot=app.bot,
        )
        runtime.spool = ReplySpool(sessions, sender, on_blocked=runtime.adapter.mark_inactive)
        runtime.adapter.spool = runtime.spool
        runtime.adapter.register(app)
        for lang in ("vi", "en"):
            cmds = [BotCommand(c, content.text(f"bot.cmd_{c}", lang)) for c in COMMANDS]
            await app.bot.set_my_commands(cmds, language_code=lang if lang == "en" else None)
        _start_background(runtime, sender)
        requests = [bot.request for bot in (app.bot, runtime.port_bot)]
        instrument(nlu, runtime.portal, [r for r in requests if isinstance(r, AiohttpRequest)])
        checks = {"database": database_check(sessions), "nlu": nlu.ready}
        if settings.health_port is not None:
            runtime.health = HealthServer(sessions, checks, settings.health_listen, settings.health_port)
            await runtime.health.start()
        if settings.console_port is not None:  # refuses to start without CONSOLE_SECRET

            async def dependencies() -> dict[str, bool]:
                return await dependency_states(checks)

            runtime.console = ConsoleServer(
                settings,
                sessions,
                dependencies=dependencies,
                queue_depths=queue_depths,
                model_status=nlu.status,
                swap_model=nlu.load_model,
                models_dir=settings.nlu_models_dir,
                content=content,
            )
            await runtime.console.start()
        log.info("bot.started", bot=app.bot.username)

    async def post_shutdown(_: Application) -> None:
        if runtime.health is not None:
            await runtime.health.stop()
        if runtime.console is not None:
            await runtime.console.stop()
        await _stop_background(runtime)
        if runtime.portal is not None:
            await runtime.portal.aclose()
        if runtime.port_bot is not None:
            with contextlib.suppress(RuntimeError):  # never initialised when start-up failed early
                await runtime.port_bot.shutdown()
        await nlu.aclose()
        await engine.dispose()
        log.info("bot.stopped")

    builder: ApplicationBuilder = (
        Application.builder()
        .token(token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_url.replace("/bot", "/file/bot"))
        .request(AiohttpRequest(64, connect_timeout=5, read_timeout=10))
        # Polling on aiohttp too: at a few updates per getUpdates, the long poll costs as much as a send.
        .get_updates_request(AiohttpRequest(2, connect_timeout=5, read_timeout=40))
        .concurrent_updates(PerChatUpdateProcessor(64))
        # Conversational replies are not throttled by us (the overall 30/s is a bulk limit, handled by the
        # broadcast engine); the limiter retries after a 429's retry_after and keeps groups at 20/min.
        .rate_limiter(AIORateLimiter(overall_max_rate=0, overall_time_period=1, max_retries=3))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    return builder.build(), runtime


def _start_background(runtime: Runtime, sender: TelegramSender) -> None:
    """The scheduler ticks; the database decides who does what, so two bot processes never do it twice."""
    s, content, sessions = runtime.settings, runtime.content, runtime.sessions
    tz = ZoneInfo(s.timezone)
    scheduler = runtime.scheduler
    scheduler.add_job(runtime.purge, "interval", hours=1, id="purge", replace_existing=True)
    if runtime.spool is not None:  # replies Telegram did not take during an outage
        scheduler.add_job(
            runtime.spool.tick, "interval", seconds=SPOOL_EVERY_S, id="replies.resend", replace_existing=True,
            max_instances=1, coalesce=True,
        )  # fmt: skip

    runtime.dispatcher = Dispatcher(sessions, sender, content, tz, interval_s=s.reminder_tick_s)
    schedule_reminders(scheduler, runtime.dispatcher, s.reminder_tick_s)

    if runtime.portal is not None:

        async def notify(user_id: int, chat_id: int, dossier: Dossier, lang: str) -> None:
            await sender.send(chat_id, render_change(content, dossier, lang, s.timezone))

        runtime.poller = DossierPoller(
            sessions,
            runtime.portal,
            notify,
            on_deadlines=make_deadlines_hook(sessions, tz),
            interval_s=s.portal_poll_interval_s,
            budget_rps=s.portal_budget_rps,
            run_s=s.portal_poll_run_s,
            tz=tz,
        )
        scheduler.add_job(
            runtime.poller.run_once,
            "interval",
            seconds=s.portal_poll_run_s,
            id="portal.poll",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
        )

    handover = next((c for c in runtime.assistant.capabilities if isinstance(c, HandoverCapability)), None)
    if handover is not None:

        async def repost() -> None:
            await handover.deliver_left(dt.datetime.now(dt.UTC))  # ticket messages a dead process left queued
            await handover.repost_stale(dt.datetime.now(dt.UTC))

        scheduler.add_job(repost, "interval", seconds=60, id="handover.repost", replace_existing=True, max_instances=1)

    async def erase_staff_copies() -> None:
        await delete_staff_copies(sessions, sender)  # what /forget left in the staff group

    scheduler.add_job(
        erase_staff_copies, "interval", seconds=10, id="forget.staff_copies", replace_existing=True, max_instances=1
    )

    runtime.broadcasts = BroadcastEngine(
        sessions, sender, content, rate=s.broadcast_rate, paid_rate=s.broadcast_paid_rate
    )
    runtime.services.broadcasts = runtime.broadcasts
    runtime.services.reply_sent = runtime.broadcasts.count_reply
    runtime.background.append(asyncio.create_task(runtime.broadcasts.run_forever(), name="broadcasts"))
    scheduler.start()


async def _stop_background(runtime: Runtime) -> None:
    """Stop the background work without cutting a send from the write that records it: no new job runs, the
    reminders tick hands back what it has not started, the runs in flight finish (core/scheduler.py), and only
    then is anything cancelled. Called before the senders and the database engine close."""
    runtime.scheduler.stop_starting()
    if runtime.dispatcher is not None:
        await runtime.dispatcher.aclose()
    await runtime.scheduler.aclose()
    if runtime.broadcasts is not None:
        await runtime.broadcasts.stop()
    for task in runtime.background:
        try:
            await asyncio.wait_for(task, timeout=15)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    runtime.background.clear()


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


__all__ = ["Runtime", "Wiring", "build_application", "build_capabilities", "start_in_loop", "stop_in_loop"]
