"""Run the Telegram emulator standalone: `python -m sandbox.telegram --port 8081 --token 123:ABC`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import structlog

from sandbox.telegram.server import DEFAULT_TOKEN, TelegramEmulator
from sandbox.telegram.world import BotInfo


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sandbox.telegram", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument(
        "--token",
        action="append",
        default=None,
        help=f"a bot token to accept (repeatable; default {DEFAULT_TOKEN})",
    )
    p.add_argument("--bot-name", default="Trợ lý Đề án 06 (sandbox)", help="the bot's first_name")
    p.add_argument("--bot-username", default="de_an_06_sandbox_bot")
    p.add_argument("--read-all-group-messages", action="store_true", help="turn the bot's privacy mode off")
    p.add_argument("--no-rate-limits", action="store_true", help="never answer 429")
    p.add_argument("--global-rate", type=float, default=30.0, help="messages/s over all chats")
    p.add_argument("--per-chat-rate", type=float, default=1.0, help="messages/s to one chat")
    p.add_argument("--per-chat-burst", type=int, default=3)
    p.add_argument("--group-rate-per-min", type=float, default=20.0)
    p.add_argument("--paid-rate", type=float, default=1000.0, help="messages/s with allow_paid_broadcast")
    p.add_argument("--max-messages-per-chat", type=int, default=1000)
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    info = BotInfo(
        first_name=args.bot_name,
        username=args.bot_username,
        can_read_all_group_messages=args.read_all_group_messages,
    )
    emulator = TelegramEmulator(
        {token: info for token in (args.token or [DEFAULT_TOKEN])},
        global_rate=args.global_rate,
        per_chat_rate=args.per_chat_rate,
        per_chat_burst=args.per_chat_burst,
        group_rate_per_min=args.group_rate_per_min,
        paid_rate=args.paid_rate,
        rate_limits=not args.no_rate_limits,
        max_messages_per_chat=args.max_messages_per_chat,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    base_url = await emulator.start(args.host, args.port)
    # one line on stdout that scripts can wait for
    print(f"telegram emulator listening on {base_url} (bot API: {emulator.api_url})", flush=True)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    level = logging.getLevelName(args.log_level.upper())
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level if isinstance(level, int) else 20))
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
