"""The Telegram implementation of the outbound port, mapping Bot API errors onto what callers act on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp
import httpx
from telegram import Bot, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import ExtBot

from bot.render import keyboard
from kernel.outbox import Blocked, MaybeDelivered, Migrated, Refused, RetryLater, SendError, Throttled
from kernel.types import Reply

TRANSIENT_RETRY_S = 2.0


class TelegramSender:
    """Sends for background work (broadcasts, reminders, dossier notices, handover posts).

    It is given a bot with no rate limiter of its own: the callers own pacing and retries, and a 429 must reach
    them at once (the broadcast engine pauses the whole sender on it) instead of being slept on here.
    """

    def __init__(self, bot: ExtBot[Any]) -> None:
        self.bot = bot

    async def send(self, chat_id: int, reply: Reply, *, paid: bool = False) -> int:
        try:
            msg = await message_call(self.bot, chat_id, reply, paid=paid)()
        except TelegramError as exc:
            raise _mapped(exc) from exc
        return msg.message_id

    async def edit(self, chat_id: int, message_id: int, reply: Reply) -> None:
        """Replace a message's text and buttons (progress reports, ticket posts); "not modified" is no error."""
        try:
            await self.bot.edit_message_text(
                reply.text,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(reply),
            )
        except BadRequest as exc:
            if "not modified" in exc.message.lower():
                return
            raise _mapped(exc) from exc
        except TelegramError as exc:
            raise _mapped(exc) from exc

    async def delete(self, chat_id: int, message_id: int) -> None:
        """Delete a message (the staff group's copies of an erased citizen's ticket, actions/erasure.py)."""
        try:
            await self.bot.delete_message(chat_id, message_id)
        except TelegramError as exc:
            raise _mapped(exc) from exc


def message_call(bot: Bot, chat_id: int, reply: Reply, *, paid: bool = False) -> Callable[[], Awaitable[Message]]:
    """The Bot API call that sends `reply` as a new message (sendPhoto for a photo, else sendMessage), unsent:
    callers await it, once or again on a retry."""
    markup = keyboard(reply)
    thread = ReplyParameters(reply.reply_to, allow_sending_without_reply=True) if reply.reply_to else None
    if reply.photo:
        return partial(
            bot.send_photo,
            chat_id,
            reply.photo,
            caption=reply.text or None,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            reply_parameters=thread,
            allow_paid_broadcast=paid or None,
        )
    return partial(
        bot.send_message,
        chat_id,
        reply.text,
        parse_mode=ParseMode.HTML,
        reply_markup=markup,
        reply_parameters=thread,
        allow_paid_broadcast=paid or None,
    )


def retry_seconds(exc: RetryAfter) -> float:
    """A 429's retry_after in seconds (PTB gives an int or a timedelta, by version and setting)."""
    retry = exc.retry_after
    return retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)


# Failures after the request may have reached Telegram: it may have delivered the message, and a resend could
# make a second copy. The request left (or may have) and no answer came, in either HTTP client's terms (PTB wraps
# them in TimedOut / NetworkError and keeps them as the cause); a failure to connect is not in doubt.
_IN_DOUBT = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    aiohttp.SocketTimeoutError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientOSError,
)
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def in_doubt(exc: BaseException) -> bool:
    """True when the failed request was (perhaps) received: its cause chain holds a timeout or a drop mid-request."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, _IN_DOUBT) and not isinstance(cur, _NOT_SENT):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _mapped(exc: TelegramError) -> SendError:
    if isinstance(exc, RetryAfter):
        return Throttled(retry_seconds(exc), "telegram 429")
    if isinstance(exc, ChatMigrated):
        return Migrated(exc.new_chat_id)
    if isinstance(exc, Forbidden):
        return Blocked(exc.message)
    if isinstance(exc, BadRequest):
        if "chat not found" in exc.message.lower():
            return Blocked(exc.message)
        return Refused(exc.message)
    if isinstance(exc, TimedOut | NetworkError):  # TimedOut is a NetworkError too; both are transient
        if in_doubt(exc):
            return MaybeDelivered(TRANSIENT_RETRY_S, type(exc).__name__)
        return RetryLater(TRANSIENT_RETRY_S, type(exc).__name__)
    return SendError(getattr(exc, "message", str(exc)))
