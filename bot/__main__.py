"""Run the bot: `python -m bot` (polling), or webhook mode when WEBHOOK_URL is set."""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlparse

import structlog
import uvloop

from bot.app import build_application
from core.logs import setup_logging
from core.settings import load_settings

log = structlog.get_logger("bot")


def main() -> int:
    # libuv's event loop: the bot's main thread is CPU-bound under load, and a good part of it was asyncio's own
    # selector, transports and thread wake-ups (measured in docs/benchmarks.md).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    if settings.telegram_bot_token is None:
        print(
            "TELEGRAM_BOT_TOKEN is not set. Set it (see .env.example) to talk to Telegram, "
            "or run `make run` to try the bot on the local sandbox.",
            file=sys.stderr,
        )
        return 2
    app, _runtime = build_application(settings)
    # PTB's run_* install SIGINT/SIGTERM handlers and shut everything down in order (post_shutdown included).
    if settings.webhook_url:
        path = urlparse(settings.webhook_url).path.lstrip("/") or "telegram"
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        app.run_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            url_path=path,
            webhook_url=settings.webhook_url,
            secret_token=secret,
            allowed_updates=["message", "callback_query", "my_chat_member"],
        )
    else:
        app.run_polling(allowed_updates=["message", "callback_query", "my_chat_member"], poll_interval=0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
