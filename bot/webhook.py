"""The webhook server: takes Telegram's POSTs, checks the secret header in constant time, queues the update.

Written here rather than using PTB's `run_webhook` because PTB's handler compares the secret header with `!=` (its
time depends on how many leading characters match) and logs the wrong value at debug level. This server is an
aiohttp app like the health server: it answers 403 without reading the body when the header is missing or wrong,
413 over 1 MiB (Telegram's updates are a few kB), 400 on a body that is not an update, and 200 once the update is on
the Application's queue, the same queue polling feeds.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import structlog
from aiohttp import web
from telegram import Update
from telegram.ext import Application

log = structlog.get_logger("bot.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
MAX_BODY = 1 << 20


def webhook_app(app: Application[Any, Any, Any, Any, Any, Any], path: str, secret: str) -> web.Application:
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("webhook.refused", reason="secret header missing or wrong", peer=request.remote)
            return web.Response(status=403)
        try:
            data = json.loads(await request.read())
            update = Update.de_json(data, app.bot)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("webhook.bad_body", error=type(exc).__name__)
            return web.Response(status=400)
        if update is None:
            return web.Response(status=400)
        await app.update_queue.put(update)
        return web.Response(status=200)

    server = web.Application(client_max_size=MAX_BODY)
    server.router.add_post("/" + path.strip("/"), receive)
    return server


async def start_webhook(
    app: Application[Any, Any, Any, Any, Any, Any],
    *,
    listen: str,
    port: int,
    path: str,
    secret: str,
    webhook_url: str | None,
    allowed_updates: list[str],
) -> web.AppRunner:
    """Serve the webhook and (when `webhook_url` is given) tell Telegram to post to it; stop with `runner.cleanup()`."""
    runner = web.AppRunner(webhook_app(app, path, secret), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, listen, port).start()
    if webhook_url:
        await app.bot.set_webhook(webhook_url, secret_token=secret, allowed_updates=allowed_updates)
    log.info("webhook.listening", listen=listen, port=port)
    return runner
