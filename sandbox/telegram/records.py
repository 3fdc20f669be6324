"""The emulator's records: update kinds, Bot API errors, the bot's info and rates, injected faults, and the
compact records of users, messages, chats, updates, webhooks and callback queries that `BotState` keeps."""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass, replace
from typing import Any, Protocol

# Telegram sends every update type except these three unless a bot asks for them by name.
ALL_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
DEFAULT_ALLOWED_UPDATES = ALL_UPDATE_TYPES - {"chat_member", "message_reaction", "message_reaction_count"}
GROUP_TYPES = frozenset({"group", "supergroup"})


@functools.lru_cache(maxsize=4096)
def decode(text: str) -> Any:
    """json.loads, memoized: the same keyboard or entity list is decoded once (the result is shared: read-only)."""
    return json.loads(text)


class ApiError(Exception):
    """A Bot API error answer: HTTP status, Telegram's description, optional ResponseParameters."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str, parameters: dict[str, Any] | None = None) -> ApiError:
    return ApiError(400, "Bad Request: " + reason, parameters)


class ControlError(Exception):
    """A mistake in a control-API call (unknown user, no such button, ...): HTTP status and a reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BotInfo:
    """Who the bot is. `id=0` means "the number before the colon of its token"."""

    id: int = 0
    first_name: str = "Sandbox Bot"
    username: str = "sandbox_bot"
    can_join_groups: bool = True
    can_read_all_group_messages: bool = False
    supports_inline_queries: bool = False

    def for_token(self, token: str) -> BotInfo:
        if self.id:
            return self
        prefix = token.split(":", 1)[0]
        bot_id = int(prefix) if prefix.isdigit() else (abs(hash(token)) % 10**10) + 10**9
        return replace(self, id=bot_id)


@dataclass(slots=True)
class Rates:
    """Telegram's flood limits as the emulator enforces them (token buckets)."""

    enabled: bool = True
    global_rate: float = 30.0  # messages/s over all chats (burst: one second's worth)
    per_chat_rate: float = 1.0  # messages/s to one chat
    per_chat_burst: int = 3  # messages one chat may receive at once before the per-chat rate applies
    group_rate_per_min: float = 20.0  # messages/min to one group (burst: one minute's worth)
    paid_rate: float = 1000.0  # messages/s over all chats with allow_paid_broadcast


@dataclass(slots=True)
class Fault:
    """An injected failure for the next `remaining` calls of a method.

    kind: "status" (answer `status` with `description`), "delay" (answer `delay` s late), "reset" (drop the
    TCP connection without an answer), "flood" (429 with `retry_after`). `apply`: whether the call still
    takes effect (a message is delivered although the client sees a failure) - by default only for "delay".
    """

    kind: str
    remaining: int = 1
    status: int = 502
    description: str = "Bad Gateway"
    delay: float = 0.0
    retry_after: int = 1
    apply: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "status": self.status,
            "description": self.description,
            "delay": self.delay,
            "retry_after": self.retry_after,
            "apply": self.apply,
        }


class UserRec:
    """A simulated Telegram user."""

    __slots__ = (
        "_json",
        "blocked",
        "deactivated",
        "first_name",
        "id",
        "is_premium",
        "language_code",
        "last_name",
        "started",
        "username",
    )

    def __init__(
        self,
        user_id: int,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
        is_premium: bool,
        started: bool,
    ) -> None:
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.is_premium = is_premium
        self.started = started
        self.blocked = False
        self.deactivated = False
        self._json: dict[str, Any] | None = None

    def json(self) -> dict[str, Any]:
        if self._json is None:
            d: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
            if self.last_name:
                d["last_name"] = self.last_name
            if self.username:
                d["username"] = self.username
            if self.language_code:
                d["language_code"] = self.language_code
            if self.is_premium:
                d["is_premium"] = True
            self._json = d
        return self._json


class MessageRec:
    """One message in a chat (from the bot or from a user), with its edit history.

    `entities` and `markup` are compact JSON strings; `edits` holds the earlier versions as tuples
    (text, caption, entities, markup, date) - None until the first edit.
    """

    __slots__ = (
        "caption",
        "date",
        "deleted",
        "deleted_at",
        "edit_date",
        "edits",
        "entities",
        "markup",
        "media",
        "media_kind",
        "message_id",
        "parse_mode",
        "received_at",
        "reply_to",
        "sender_id",
        "text",
    )

    def __init__(self, message_id: int, sender_id: int, date: int, received_at: float) -> None:
        self.message_id = message_id
        self.sender_id = sender_id
        self.date = date
        self.received_at = received_at
        self.text: str | None = None
        self.caption: str | None = None
        self.parse_mode: str | None = None
        self.entities: str | None = None
        self.markup: str | None = None
        self.media_kind: str | None = None
        self.media: Any = None
        self.reply_to: int | None = None
        self.edits: list[tuple[str | None, str | None, str | None, str | None, int]] | None = None
        self.edit_date: int | None = None
        self.deleted = False
        self.deleted_at: float | None = None

    def version(self, index: int) -> tuple[str | None, str | None, str | None, str | None, int]:
        """The message as it was after `index` edits (0 = as first sent)."""
        if self.edits is not None and index < len(self.edits):
            return self.edits[index]
        return (self.text, self.caption, self.entities, self.markup, self.edit_date or self.date)


class ChatRec:
    """A private chat (id = the user's id) or a group/supergroup, with what it received and its counters."""

    __slots__ = (
        "actions",
        "answers",
        "bot_status",
        "edits",
        "events",
        "events_base",
        "forbidden",
        "gstamp",
        "gtokens",
        "id",
        "json",
        "members",
        "messages",
        "migrated_from",
        "migrated_to",
        "next_id",
        "rate_limited",
        "sent",
        "stamp",
        "title",
        "tokens",
        "type",
        "user",
        "waiters",
    )

    def __init__(self, chat_id: int, chat_type: str, json_: dict[str, Any], user: UserRec | None) -> None:
        self.id = chat_id
        self.type = chat_type
        self.json = json_
        self.user = user
        self.title: str | None = json_.get("title")
        self.members: set[int] | None = None
        self.bot_status = "member"
        self.migrated_to: int | None = None
        self.migrated_from: int | None = None
        self.next_id = 1
        self.messages: dict[int, MessageRec] = {}
        # what the chat received from the bot, in order: ("new" | "edit" | "delete", message_id, version)
        self.events: list[tuple[str, int, int]] = []
        self.events_base = 0
        self.waiters: list[tuple[int, asyncio.Future[None]]] | None = None
        self.tokens = -1.0  # per-chat bucket; negative: not used yet (full)
        self.stamp = 0.0
        self.gtokens = -1.0  # per-group bucket
        self.gstamp = 0.0
        self.sent = 0
        self.edits = 0
        self.rate_limited = 0
        self.forbidden = 0
        self.actions: list[tuple[str, float]] | None = None
        self.answers: list[dict[str, Any]] | None = None

    @property
    def cursor(self) -> int:
        return self.events_base + len(self.events)

    def counters(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "edits": self.edits,
            "rate_limited": self.rate_limited,
            "forbidden": self.forbidden,
            "chat_actions": len(self.actions or ()),
            "callback_answers": len(self.answers or ()),
        }


class Update:
    """One update waiting for the bot (Telegram's Update object is {"update_id": ..., kind: payload})."""

    __slots__ = ("chat_id", "duplicated", "kind", "payload", "redeliver", "update_id")

    def __init__(self, update_id: int, kind: str, payload: dict[str, Any], chat_id: int) -> None:
        self.update_id = update_id
        self.kind = kind
        self.payload = payload
        self.chat_id = chat_id
        self.redeliver = False  # chosen for duplicate delivery, not yet re-delivered
        self.duplicated = False

    def json(self) -> dict[str, Any]:
        return {"update_id": self.update_id, self.kind: self.payload}


class UpdateSink(Protocol):
    """Where updates go while a webhook is set (the webhook pusher)."""

    def enqueue(self, update: Update) -> None: ...

    def pending_count(self) -> int: ...


@dataclass(slots=True)
class WebhookConfig:
    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str] | None
    sink: UpdateSink | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(slots=True)
class CallbackRec:
    chat_id: int
    message_id: int
    user_id: int
    data: str
    created: float
    answered: bool = False
