"""The Telegram implementation of the outbound port, mapping Bot API errors onto what callers act on."""

from __future__ import annotations

from typing import Any

from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import ExtBot

from actions.outbox import Blocked, Migrated, RetryLater, SendError
from actions.types import Reply
from bot.render import keyboard

TRANSIENT_RETRY_S = 2.0


class TelegramSender:
    """Sends without PTB's rate limiter retries: the callers (broadcast, reminders) own pacing and retries."""

    def __init__(self, bot: ExtBot[Any]) -> None:
        self.bot = bot

    async def send(self, chat_id: int, reply: Reply, *, paid: bool = False) -> int:
        try:
            msg = await self.bot.send_message(
                chat_id,
                reply.text,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(reply),
                allow_paid_broadcast=paid or None,
                rate_limit_args={"max_retries": 0},
            )
        except RetryAfter as exc:
            retry = exc.retry_after
            seconds = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
            raise RetryLater(seconds, "telegram 429") from exc
        except ChatMigrated as exc:
            raise Migrated(exc.new_chat_id) from exc
        except Forbidden as exc:
            raise Blocked(exc.message) from exc
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                raise Blocked(exc.message) from exc
            raise SendError(exc.message) from exc
        except (TimedOut, NetworkError) as exc:  # TimedOut first: it is a NetworkError too
            raise RetryLater(TRANSIENT_RETRY_S, type(exc).__name__) from exc
        return msg.message_id
