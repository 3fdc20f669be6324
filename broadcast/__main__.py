"""Command line for large campaigns: `python -m broadcast send ...` queues a broadcast, `run` delivers.

    python -m broadcast send --text-file notice.html --area tu_son,tam_son --topic vneid [--paid]
                             [--at 2026-12-15T08:30+07:00] [--run]
    python -m broadcast run [--forever]

`send` writes the broadcast row (the running bot's engine picks it up) and prints its id; with `--run` it
delivers it itself. `run` delivers whatever is queued, running or due, then exits (or keeps going).
Settings (database, bot token, Telegram base URL) come from the environment / .env like the bot's, and so does
logging (LOG_LEVEL, LOG_FORMAT; user ids pseudonymised as in the bot's logs). While `run` delivers, SIGTERM or
Ctrl-C stops it cleanly (the rows it claimed but did not send go back to the queue) and SIGUSR1 prints where it
is waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sys
from pathlib import Path
from typing import Any

import structlog

from broadcast.audience import Audience, load_areas, news_topics
from broadcast.engine import BroadcastEngine
from broadcast.html import HtmlError, check_html
from broadcast.reports import progress_of
from core.logs import setup_logging
from core.settings import Settings, load_settings
from kernel.content import Content
from store.db import make_engine, make_sessionmaker, unit_of_work
from store.models_news import QUEUED, SCHEDULED, Broadcast
from store.models_staff import AuditEntry

log = structlog.get_logger(__name__)
_SIGNALLED: set[asyncio.Task[None]] = set()  # stop tasks started by a signal, held until they finish


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m broadcast", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", help="default: DATABASE_URL from the settings")
    p.add_argument("--rate", type=float, default=30.0, help="overall messages/s (Telegram's bulk limit)")
    p.add_argument("--paid-rate", type=float, default=1000.0, help="messages/s with allow_paid_broadcast")
    p.add_argument("--stale-after", type=float, default=30.0, help="s before a silent engine's rows are unknown")
    p.add_argument("--worker-id", default=None)
    sub = p.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send", help="create a broadcast")
    send.add_argument("--text-file", type=Path, required=True, help="Telegram HTML, UTF-8")
    send.add_argument("--photo", default=None, help="a Telegram file_id or https URL")
    send.add_argument(
        "--area", default=None, help="unit ids from the areas file, comma-separated (default: the whole province)"
    )
    send.add_argument("--topic", action="append", default=[], help="a topic id (repeatable)")
    send.add_argument("--paid", action="store_true", help="allow_paid_broadcast (up to 1000 msg/s, paid)")
    send.add_argument("--at", default=None, help="ISO 8601 time to send at (default: now)")
    send.add_argument("--created-by", type=int, default=0, help="the staff user id recorded (default 0: CLI)")
    send.add_argument(
        "--approved-by",
        type=int,
        default=None,
        help="the second staff member who approved it: required from BROADCAST_APPROVAL_AUDIENCE recipients",
    )
    send.add_argument("--report-chat", type=int, default=None, help="chat that gets progress and the report")
    send.add_argument("--run", action="store_true", help="deliver it from this process now")
    run = sub.add_parser("run", help="deliver queued broadcasts")
    run.add_argument("--forever", action="store_true", help="keep running (like the bot's background engine)")
    run.add_argument("--broadcast", type=int, default=None, help="stop when this broadcast is done")
    return p.parse_args(argv)


def _make_sender(settings: Settings) -> tuple[Any, Any]:
    """The real Telegram sender (imported here so that creating rows needs no Telegram at all)."""
    from telegram.ext import ExtBot  # noqa: PLC0415 - only `run` talks to Telegram
    from telegram.request import HTTPXRequest  # noqa: PLC0415

    from bot.sender import TelegramSender  # noqa: PLC0415

    if settings.telegram_bot_token is None:
        raise SystemExit("TELEGRAM_BOT_TOKEN is not set")
    bot: ExtBot[None] = ExtBot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_base_url,
        # no PTB limiter, as in the bot: the engine paces, and a 429 must reach it at once
        request=HTTPXRequest(connection_pool_size=128, connect_timeout=5, read_timeout=10, write_timeout=10),
    )
    return bot, TelegramSender(bot)


async def _create(args: argparse.Namespace, settings: Settings, content: Content) -> int:
    try:
        text = check_html(args.text_file.read_text(encoding="utf-8"), caption=args.photo is not None)
    except HtmlError as err:
        raise SystemExit(f"invalid text: {content.text(err.key, 'en', **err.values)}") from None
    chosen = sorted({a.strip() for a in (args.area or "").split(",") if a.strip()})
    areas = load_areas(settings.areas_file)
    if not areas.valid(chosen):
        raise SystemExit(f"unknown area {args.area!r}: unit ids of {settings.areas_file}, comma-separated")
    known = {t.id for t in news_topics(content)}
    if unknown := set(args.topic) - known:
        raise SystemExit(f"unknown topic(s) {sorted(unknown)}; known: {sorted(known)}")
    now = dt.datetime.now(dt.UTC)
    send_at = dt.datetime.fromisoformat(args.at) if args.at else now
    if send_at.tzinfo is None:
        raise SystemExit("--at needs a UTC offset, e.g. 2026-12-15T08:30+07:00")
    engine = make_engine(args.database_url or settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with unit_of_work(sessions) as s:
            b = Broadcast(
                created_by=args.created_by,
                status=SCHEDULED if send_at > now else QUEUED,
                step="done",
                text=text,
                photo=args.photo,
                areas=",".join(chosen),
                topics=",".join(sorted(set(args.topic))),
                paid=args.paid,
                send_at=send_at.astimezone(dt.UTC),
                created_at=now,
                report_chat_id=args.report_chat,
            )
            s.add(b)
            await s.flush()
            count = await Audience.of(b.area_list(), b.topic_list()).count(s)
            threshold = settings.broadcast_approval_audience
            if threshold > 0 and count >= threshold and args.approved_by in (None, args.created_by):
                # leaving the block with an exception rolls the row back: nothing is queued
                raise SystemExit(
                    f"{count} recipients: from {threshold} a second staff member must approve; "
                    "pass --approved-by <their user id> (not --created-by's)"
                )
            # the same audit rows the bot writes (actions/broadcast_ui.py), so one log answers "who sent what"
            action = "broadcast.schedule" if b.status == SCHEDULED else "broadcast.send"
            at = f" at={b.send_at.isoformat()}" if b.status == SCHEDULED and b.send_at else ""
            s.add(AuditEntry(actor_id=args.created_by, action=action, detail=f"{b.audit_detail()}{at} via=cli",
                             audience_size=count, at=now))  # fmt: skip
            if args.approved_by is not None:
                s.add(AuditEntry(actor_id=args.approved_by, action="broadcast.approve",
                                 detail=f"{b.audit_detail()} via=cli", audience_size=count, at=now))  # fmt: skip
            bid = b.id
        print(f"broadcast #{bid} {b.status}: {count} recipients now", flush=True)
        return bid
    finally:
        await engine.dispose()


async def _deliver(args: argparse.Namespace, settings: Settings, content: Content, only: int | None) -> None:
    db = make_engine(args.database_url or settings.database_url)
    bot, sender = _make_sender(settings)
    engine = BroadcastEngine(
        make_sessionmaker(db),
        sender,
        content,
        rate=args.rate,
        paid_rate=args.paid_rate,
        stale_after_s=args.stale_after,
        worker_id=args.worker_id,
    )
    _on_signals(engine)
    try:
        async with bot:
            if getattr(args, "forever", False):
                await engine.run_forever()
            else:
                await engine.run_until_idle(only)
        if only is not None:
            async with make_sessionmaker(db)() as s:
                p = await progress_of(s, only)
            print(f"broadcast #{only}: {p.by_state}", flush=True)
        print(f"engine {engine.worker_id}: {engine.stats}", flush=True)
    finally:
        await db.dispose()


def _on_signals(engine: BroadcastEngine) -> None:
    """SIGTERM / Ctrl-C stop the engine the way the bot stops it: the sends in flight finish and the rows claimed
    but not sent go back to `pending` (a plain kill leaves them `unknown`). SIGUSR1 prints where every task of this
    process is waiting, for a delivery that seems stuck; it changes nothing."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        task = loop.create_task(engine.stop())
        _SIGNALLED.add(task)
        task.add_done_callback(_SIGNALLED.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    loop.add_signal_handler(signal.SIGUSR1, _print_tasks)


def _print_tasks() -> None:
    tasks = asyncio.all_tasks()
    print(f"--- {len(tasks)} tasks ---", file=sys.stderr)
    for task in tasks:
        print(f"{task.get_name()}:", file=sys.stderr)
        # Down the chain of awaits, the innermost last. Task.print_stack() shows only the outermost frame of a
        # suspended coroutine (`_main`), which says nothing about where it waits.
        coro: Any = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                print(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}", file=sys.stderr)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    sys.stderr.flush()


async def _main(args: argparse.Namespace) -> int:
    settings = load_settings()
    # the bot's logging: user ids pseudonymised, phone and ID numbers redacted, on stderr
    id_key = settings.log_id_key.get_secret_value() if settings.log_id_key else None
    setup_logging(settings.log_level, settings.log_format, id_key=id_key)
    content = Content.load()
    if args.command == "send":
        bid = await _create(args, settings, content)
        if args.run:
            await _deliver(args, settings, content, bid)
        return 0
    await _deliver(args, settings, content, args.broadcast)
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_main(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
