"""Run the bot: `python -m bot` (polling), or webhook mode when WEBHOOK_URL is set."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any
from urllib.parse import urlparse

import structlog
import uvloop
from telegram.ext import Application

from bot.app import build_application, stop_in_loop
from bot.webhook import start_webhook
from broadcast.audience import AreasFileError
from core.logs import setup_logging
from core.secrets_check import startup_problems
from core.settings import Settings, load_settings

log = structlog.get_logger("bot")

ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]


async def run_webhook(app: Application[Any, Any, Any, Any, Any, Any], settings: Settings) -> None:
    """Webhook mode in one event loop: start the Application, serve bot/webhook.py, stop on SIGINT/SIGTERM."""
    assert settings.webhook_url and settings.webhook_secret  # startup_problems() refused to start otherwise
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    await app.start()
    runner = None
    try:
        runner = await start_webhook(
            app,
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            path=urlparse(settings.webhook_url).path.lstrip("/") or "telegram",
            secret=settings.webhook_secret.get_secret_value(),
            webhook_url=settings.webhook_url,
            allowed_updates=ALLOWED_UPDATES,
        )
        await stopping.wait()
    finally:
        if runner is not None:
            await runner.cleanup()  # no new updates first, then the Application finishes what it holds
        await stop_in_loop(app)


def main() -> int:
    # libuv's event loop: the bot's main thread is CPU-bound under load, and a good part of it was asyncio's own
    # selector, transports and thread wake-ups (measured in docs/benchmarks.md).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    settings = load_settings()
    id_key = settings.log_id_key.get_secret_value() if settings.log_id_key else None
    setup_logging(settings.log_level, settings.log_format, id_key=id_key)
    if settings.telegram_bot_token is None:
        print(
            "TELEGRAM_BOT_TOKEN is not set. Set it (see .env.example) to talk to Telegram, "
            "or run `make run` to try the bot on the local sandbox.",
            file=sys.stderr,
        )
        return 2
    problems = startup_problems(settings)
    if problems:
        print("The bot will not start:\n" + "\n".join(f"- {p}" for p in problems), file=sys.stderr)
        return 2
    try:
        app, _runtime = build_application(settings)
    except AreasFileError as exc:
        print(f"The bot will not start: {exc}", file=sys.stderr)
        return 2
    if settings.webhook_url:
        asyncio.run(run_webhook(app, settings))
    else:
        # PTB's run_polling installs SIGINT/SIGTERM handlers and shuts everything down in order.
        app.run_polling(allowed_updates=ALLOWED_UPDATES, poll_interval=0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
