"""The outbound port: how background work (reminders, dossier notices, broadcasts) sends to a citizen."""

from __future__ import annotations

import json
from typing import Protocol

from kernel.types import Button, Reply


class SendError(Exception):
    """A message could not be delivered."""


class Blocked(SendError):
    """The citizen blocked the bot or the chat no longer exists: stop sending to them (mark inactive)."""


class Refused(SendError):
    """Telegram refused this message (400 Bad Request: bad markup, a photo it cannot fetch): sending it again
    would be refused again. Drop this one message, not the chat."""


class RetryLater(SendError):
    """Not delivered, safe to send again after `after_s` seconds: a 5xx, a connection that never opened."""

    def __init__(self, after_s: float, reason: str = "") -> None:
        super().__init__(reason or f"retry after {after_s}s")
        self.after_s = after_s


class Throttled(RetryLater):
    """Telegram's 429 Too Many Requests with its retry_after: the whole bot is over a limit, so every send (not
    only this one) should wait `after_s` seconds. Not delivered."""


class MaybeDelivered(RetryLater):
    """The request left and no answer came back (a read timeout, a connection dropped mid-request): Telegram may
    have shown the message. Work that must happen at most once (reminders, broadcasts) must not resend it; a reply
    the citizen is waiting for may be sent again."""


class Migrated(SendError):
    """The group became a supergroup: resend to `new_chat_id`."""

    def __init__(self, new_chat_id: int) -> None:
        super().__init__(f"migrated to {new_chat_id}")
        self.new_chat_id = new_chat_id


class Sender(Protocol):
    async def send(self, chat_id: int, reply: Reply, *, paid: bool = False) -> int:
        """Send one message; returns its message id. Raises Blocked, Migrated, Refused, or RetryLater — the last
        as Throttled (a 429) or MaybeDelivered (no answer to a request that left) where that is known."""
        ...


def encode(reply: Reply) -> str:
    """A reply as JSON, to be kept in the database and sent later (an outbox row, a reply kept through an outage).
    An edit becomes a new message: the message it was to replace may be long gone."""
    return json.dumps(
        {
            "text": reply.text,
            "buttons": [[[b.label, b.data, b.url] for b in row] for row in reply.buttons],
            "photo": reply.photo,
            "reply_to": reply.reply_to,
        },
        ensure_ascii=False,
    )


def decode(body: str) -> Reply:
    raw = json.loads(body)
    buttons = tuple(tuple(Button(label, data, url) for label, data, url in row) for row in raw["buttons"])
    return Reply(raw["text"], buttons, photo=raw["photo"], reply_to=raw["reply_to"])
