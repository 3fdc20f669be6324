"""A reminders-only bot process for the multi-process tests: the bot's scheduler ticks a Dispatcher that sends
through python-telegram-bot to the Telegram emulator. Prints "ready" once ticking; on SIGTERM it stops the way the
bot does (bot/app.py `_stop_background`): no new tick, the sends in flight finish, the rest go back to pending.

    python tests/support/reminders_worker.py --database-url URL --api-url http://127.0.0.1:PORT/bot --token T
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from telegram.ext import ExtBot

import store.models_reminders  # noqa: F401  (the reminders tables)
from bot.sender import TelegramSender
from core.logs import setup_logging
from core.scheduler import DrainingScheduler
from kernel.content import Content
from reminders import Dispatcher, schedule
from reminders.when import VN_TZ
from store.db import make_engine, make_sessionmaker


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database-url", required=True)
    p.add_argument("--api-url", required=True, help="PTB base_url, e.g. http://127.0.0.1:8081/bot")
    p.add_argument("--token", required=True)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--lease", type=float, default=120.0)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--backoff", type=float, default=5.0)
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    engine = make_engine(args.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with ExtBot(args.token, base_url=args.api_url) as bot:  # no limiter: the dispatcher paces
        dispatcher = Dispatcher(
            make_sessionmaker(engine),
            TelegramSender(bot),
            Content.load(),
            VN_TZ,
            args.batch,
            concurrency=args.concurrency,
            lease_s=args.lease,
            backoff_s=args.backoff,
            interval_s=args.interval,
        )
        scheduler = DrainingScheduler()
        schedule(scheduler, dispatcher, args.interval)
        scheduler.start()
        print(f"ready {dispatcher.worker_id}", flush=True)
        await stop.wait()
        scheduler.stop_starting()
        await dispatcher.aclose()
        await scheduler.aclose()
        print(f"stats {dict(dispatcher.stats)}", flush=True)
    await engine.dispose()


if __name__ == "__main__":
    setup_logging("WARNING", "console")
    asyncio.run(serve(parse()))
