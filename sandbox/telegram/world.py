"""The emulator's state for one bot: users, chats, what each chat received, pending updates, rates and faults (the
records it keeps are in sandbox/telegram/records.py).

Everything here is synchronous and O(1) per operation on the hot path (dict lookups, deque ends), except the
waits (`get_updates`, `wait_chat`, `wait_counter`), which park a future that the state resolves when the
awaited thing happens. Messages are kept compactly (entities and keyboards as JSON strings) so that 100,000
chats with a few messages each fit in a few hundred MB; each chat keeps at most `max_messages_per_chat`
messages (older ones are forgotten, like Telegram forgets what a bot may still edit) while its counters stay
exact.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

from sandbox.telegram.formatting import utf16_len
from sandbox.telegram.records import (
    ALL_UPDATE_TYPES,
    DEFAULT_ALLOWED_UPDATES,
    GROUP_TYPES,
    ApiError,
    BotInfo,
    CallbackRec,
    ChatRec,
    ControlError,
    Fault,
    MessageRec,
    Rates,
    Update,
    UserRec,
    WebhookConfig,
    bad_request,
    decode,
)

__all__ = [
    "DEFAULT_ALLOWED_UPDATES",
    "ApiError",
    "BotInfo",
    "BotState",
    "ChatRec",
    "ControlError",
    "Fault",
    "MessageRec",
    "Rates",
    "Update",
    "UserRec",
    "bad_request",
]

_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@([A-Za-z0-9_]{3,32}))?(?=\s|$)")
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{3,32})\b")


@functools.lru_cache(maxsize=4096)
@dataclass(slots=True)
class _CounterWait:
    name: str
    at_least: int
    future: asyncio.Future[None] = field(repr=False)


_CONFLICT = object()
_WAKE = object()


class BotState:
    """Everything the emulator knows about one bot token."""

    def __init__(
        self,
        token: str,
        info: BotInfo,
        rates: Rates,
        *,
        max_messages_per_chat: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self._clock = clock  # flood control's time source (seconds); tests pass a fake one
        self.info = info.for_token(token)
        self.default_rates = rates
        self.max_messages_per_chat = max_messages_per_chat
        self.closing = False  # set while the server stops: waits return at once
        self.me_from: dict[str, Any] = {
            "id": self.info.id,
            "is_bot": True,
            "first_name": self.info.first_name,
            "username": self.info.username,
        }
        self._reset_state()

    # ------------------------------------------------------------------ lifecycle

    def _reset_state(self) -> None:
        self.rates = replace(self.default_rates)
        self.users: dict[int, UserRec] = {}
        self.chats: dict[int, ChatRec] = {}
        self.next_update_id = 1
        self.pending: deque[Update] = deque()
        self.redelivery: list[tuple[Update, bool]] = []
        self.allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self.poller: asyncio.Future[object] | None = None
        self.webhook: WebhookConfig | None = None
        self.faults: dict[str, deque[Fault]] = {}
        self.dup_budget = 0
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.callbacks: dict[str, CallbackRec] = {}
        self.files: dict[str, tuple[str, Any]] = {}  # file_id -> (kind, Bot API object)
        self.next_file = 1
        self.next_callback = 1
        self.next_group_id = 1
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "messages_sent",
                "paid_messages",
                "edits",
                "deletes",
                "rate_limited",
                "forbidden",
                "bad_requests",
                "updates_created",
                "updates_filtered",
                "updates_delivered",
                "duplicates_delivered",
                "webhook_posts",
                "webhook_failures",
                "callback_answers",
                "faults_injected",
            ),
            0,
        )
        self.method_calls: dict[str, int] = {}
        self.statuses: dict[int, int] = {}
        self._gtokens = self.rates.global_rate
        self._gstamp = self._clock()
        self._ptokens = self.rates.paid_rate
        self._pstamp = self._gstamp
        self._counter_waiters: list[_CounterWait] = []

    def reset(self) -> WebhookConfig | None:
        """Forget everything but the bot's identity; returns the webhook that was set (its pusher must stop)."""
        webhook = self.webhook
        self.wake_all()
        self._reset_state()
        return webhook

    def wake_all(self) -> None:
        """Release every parked wait (used on stop and reset)."""
        if self.poller is not None and not self.poller.done():
            self.poller.set_result(_WAKE)
        for chat in self.chats.values():
            if chat.waiters:
                for _, fut in chat.waiters:
                    if not fut.done():
                        fut.set_result(None)
                chat.waiters = None
        for w in self._counter_waiters:
            if not w.future.done():
                w.future.set_result(None)
        self._counter_waiters = []

    # ------------------------------------------------------------------ users and chats (control side)

    def create_user(
        self,
        user_id: int,
        first_name: str = "User",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        is_premium: bool = False,
        started: bool = True,
    ) -> UserRec:
        """Create (or refresh) a user and their private chat with the bot."""
        if user_id <= 0:
            raise ControlError(400, "a user id must be a positive integer")
        user = UserRec(user_id, first_name, last_name, username, language_code, is_premium, started)
        old = self.users.get(user_id)
        if old is not None:
            user.blocked, user.deactivated = old.blocked, old.deactivated
            user.started = old.started or started
        self.users[user_id] = user
        chat_json: dict[str, Any] = {"id": user_id, "first_name": first_name}
        if last_name:
            chat_json["last_name"] = last_name
        if username:
            chat_json["username"] = username
        chat_json["type"] = "private"
        chat = self.chats.get(user_id)
        if chat is None:
            self.chats[user_id] = ChatRec(user_id, "private", chat_json, user)
        else:
            chat.json, chat.user = chat_json, user
        return user

    def create_group(
        self,
        chat_id: int | None,
        title: str,
        members: Iterable[int],
        *,
        chat_type: str = "group",
        bot_admin: bool = False,
        username: str | None = None,
    ) -> ChatRec:
        """Create a group or supergroup with the bot in it; Telegram sends the bot a my_chat_member update."""
        if chat_type not in GROUP_TYPES:
            raise ControlError(400, "type must be 'group' or 'supergroup'")
        member_ids = list(members)
        for uid in member_ids:
            if uid not in self.users:
                raise ControlError(404, f"unknown user {uid}; create the user first")
        if chat_id is None:
            chat_id = self._new_group_id(chat_type)
        if chat_id >= 0:
            raise ControlError(400, "group chat ids are negative")
        if chat_id in self.chats:
            raise ControlError(409, f"chat {chat_id} already exists")
        chat_json: dict[str, Any] = {"id": chat_id, "title": title}
        if username:
            chat_json["username"] = username
        chat_json["type"] = chat_type
        chat = ChatRec(chat_id, chat_type, chat_json, None)
        chat.members = set(member_ids)
        chat.bot_status = "administrator" if bot_admin else "member"
        self.chats[chat_id] = chat
        actor = member_ids[0] if member_ids else None
        if actor is not None:
            self._my_chat_member(chat, self.users[actor], "left", chat.bot_status)
        return chat

    def _new_group_id(self, chat_type: str) -> int:
        while True:
            n = self.next_group_id
            self.next_group_id += 1
            chat_id = -(1_000_000_000_000 + n) if chat_type == "supergroup" else -(4_000_000_000 + n)
            if chat_id not in self.chats:
                return chat_id

    def add_member(self, chat_id: int, user_id: int) -> None:
        chat = self.control_chat(chat_id)
        if chat.members is None:
            raise ControlError(400, "only groups have members")
        if user_id not in self.users:
            raise ControlError(404, f"unknown user {user_id}")
        chat.members.add(user_id)

    def migrate_group(self, chat_id: int, new_id: int | None = None) -> ChatRec:
        """Upgrade a group to a supergroup, as Telegram does (service messages in both chats)."""
        old = self.control_chat(chat_id)
        if old.type != "group" or old.migrated_to is not None:
            raise ControlError(400, "only a basic group that was not migrated yet can be upgraded")
        if new_id is None:
            new_id = self._new_group_id("supergroup")
        if new_id in self.chats or new_id >= 0:
            raise ControlError(400, f"cannot use {new_id} as the supergroup id")
        members = sorted(old.members or ())
        new = ChatRec(new_id, "supergroup", {"id": new_id, "title": old.title, "type": "supergroup"}, None)
        new.members = set(members)
        new.bot_status = old.bot_status
        new.migrated_from = old.id
        self.chats[new_id] = new
        old.migrated_to = new_id
        actor = self.users[members[0]] if members else None
        if actor is not None:
            rec = self._new_message(old, actor.id)
            self._push_message(old, rec, {"migrate_to_chat_id": new_id})
            rec = self._new_message(new, actor.id)
            self._push_message(new, rec, {"migrate_from_chat_id": old.id})
        return new

    def set_blocked(self, user_id: int, blocked: bool) -> None:
        """The user blocks (or unblocks) the bot; Telegram tells the bot with a my_chat_member update."""
        user = self.control_user(user_id)
        if user.blocked == blocked:
            return
        user.blocked = blocked
        chat = self.chats[user_id]
        if blocked:
            self._my_chat_member(chat, user, "member", "kicked")
        else:
            self._my_chat_member(chat, user, "kicked", "member")

    def set_deactivated(self, user_id: int, deactivated: bool = True) -> None:
        self.control_user(user_id).deactivated = deactivated

    def kick_bot(self, chat_id: int, by_user: int | None = None) -> None:
        chat = self.control_chat(chat_id)
        if chat.members is None:
            raise ControlError(400, "the bot can only be removed from a group")
        old = chat.bot_status
        chat.bot_status = "kicked"
        actor_id = by_user if by_user is not None else min(chat.members, default=None)
        if actor_id is not None and actor_id in self.users:
            self._my_chat_member(chat, self.users[actor_id], old, "kicked")

    def _my_chat_member(self, chat: ChatRec, actor: UserRec, old: str, new: str) -> None:
        def member(status: str) -> dict[str, Any]:
            d: dict[str, Any] = {"user": self.me_from, "status": status}
            if status == "kicked":
                d["until_date"] = 0
            if status == "administrator":
                d.update(
                    can_be_edited=False,
                    is_anonymous=False,
                    can_manage_chat=True,
                    can_delete_messages=True,
                    can_manage_video_chats=False,
                    can_restrict_members=True,
                    can_promote_members=False,
                    can_change_info=False,
                    can_invite_users=True,
                    can_post_stories=False,
                    can_edit_stories=False,
                    can_delete_stories=False,
                )
            return d

        payload = {
            "chat": chat.json,
            "from": actor.json(),
            "date": int(time.time()),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }
        self.push_update("my_chat_member", payload, chat.id)

    def control_user(self, user_id: int) -> UserRec:
        user = self.users.get(user_id)
        if user is None:
            raise ControlError(404, f"unknown user {user_id}")
        return user

    def control_chat(self, chat_id: int) -> ChatRec:
        chat = self.chats.get(chat_id)
        if chat is None:
            raise ControlError(404, f"unknown chat {chat_id}")
        return chat

    def _actor_chat(self, user_id: int, chat_id: int | None) -> tuple[UserRec, ChatRec]:
        user = self.control_user(user_id)
        chat = self.control_chat(user_id if chat_id is None else chat_id)
        if chat.members is not None and user_id not in chat.members:
            raise ControlError(403, f"user {user_id} is not a member of chat {chat.id}")
        if chat.members is None and chat.id != user_id:
            raise ControlError(403, f"chat {chat.id} is another user's private chat")
        if chat.migrated_to is not None:
            raise ControlError(409, f"chat {chat.id} was upgraded to supergroup {chat.migrated_to}")
        if user.deactivated:
            raise ControlError(409, f"user {user_id} is deactivated")
        return user, chat

    # ------------------------------------------------------------------ what users do (control side)

    def user_message(
        self,
        user_id: int,
        chat_id: int | None = None,
        *,
        text: str | None = None,
        media_kind: str | None = None,
        media: Any = None,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> tuple[MessageRec, ChatRec, int | None]:
        """A user sends a message; returns it, its chat and the update id (None when the bot does not get it)."""
        user, chat = self._actor_chat(user_id, chat_id)
        if text is None and media_kind is None:
            raise ControlError(400, "a message needs text or media")
        if chat.members is None:
            if user.blocked:
                # Telegram's apps unblock the bot when the user writes to it again ("Restart")
                self.set_blocked(user_id, False)
            user.started = True
        reply: MessageRec | None = None
        if reply_to is not None:
            reply = chat.messages.get(reply_to)
            if reply is None or reply.deleted:
                raise ControlError(404, f"message {reply_to} not found in chat {chat.id}")
        rec = self._new_message(chat, user_id)
        rec.text = text
        rec.caption = caption
        rec.media_kind = media_kind
        rec.media = media
        rec.reply_to = reply_to
        body = text if text is not None else caption
        if body:
            entities = _detect_entities(body)
            if entities:
                rec.entities = json.dumps(entities, separators=(",", ":"))
        update_id = None
        if self._group_sees(chat, rec, body, reply):
            update_id = self._push_message(chat, rec, None)
        return rec, chat, update_id

    def _group_sees(self, chat: ChatRec, rec: MessageRec, body: str | None, reply: MessageRec | None) -> bool:
        """Privacy mode: in groups a bot that is not an admin only sees commands and replies to itself."""
        if chat.members is None or self.info.can_read_all_group_messages:
            return True
        if chat.bot_status == "administrator":
            return True
        if chat.bot_status in ("kicked", "left"):
            return False
        if reply is not None and reply.sender_id == self.info.id:
            return True
        if body and body.startswith("/"):
            m = _COMMAND.match(body)
            if m is not None:
                target = m.group(1)
                return target is None or target.lower() == self.info.username.lower()
        return False

    def user_edit(self, user_id: int, chat_id: int | None, message_id: int, text: str) -> int | None:
        _user, chat = self._actor_chat(user_id, chat_id)
        rec = chat.messages.get(message_id)
        if rec is None or rec.deleted or rec.sender_id != user_id:
            raise ControlError(404, f"user {user_id} has no message {message_id} in chat {chat.id}")
        if rec.text is None:
            if rec.media_kind is None:
                raise ControlError(400, "this message has no text to edit")
            raise ControlError(400, "edit the caption of a media message with caption=")
        if rec.text == text:
            raise ControlError(400, "the text is unchanged")
        self._remember_version(rec)
        rec.text = text
        entities = _detect_entities(text)
        rec.entities = json.dumps(entities, separators=(",", ":")) if entities else None
        rec.edit_date = int(time.time())
        reply = chat.messages.get(rec.reply_to) if rec.reply_to is not None else None
        if not self._group_sees(chat, rec, text, reply):
            return None
        return self.push_update("edited_message", self.message_json(chat, rec), chat.id)

    def press(
        self,
        user_id: int,
        chat_id: int | None,
        message_id: int,
        *,
        data: str | None = None,
        label: str | None = None,
        row: int | None = None,
        col: int | None = None,
        forged: str | None = None,
    ) -> dict[str, Any]:
        """A user presses an inline button of a message they see; a callback button makes a callback_query.

        `forged` stands for a modified client: it sends that callback data for the message whatever its
        buttons say (Telegram relays it; the bot must treat callback data as untrusted input).
        """
        user, chat = self._actor_chat(user_id, chat_id)
        if chat.members is None and user.blocked:
            raise ControlError(409, "the user blocked the bot; unblock first")
        rec = chat.messages.get(message_id)
        if rec is None or rec.deleted:
            raise ControlError(404, f"message {message_id} not found in chat {chat.id}")
        markup = decode(rec.markup) if rec.markup else None
        keyboard = markup.get("inline_keyboard") if isinstance(markup, dict) else None
        if forged is not None:
            keyboard = [[{"text": "?", "callback_data": forged}]]
            data, label, row, col = forged, None, None, None
        if not keyboard:
            raise ControlError(404, f"message {message_id} has no inline keyboard")
        button = _find_button(keyboard, data=data, label=label, row=row, col=col)
        if button is None:
            raise ControlError(404, f"message {message_id} has no such button (data={data!r}, label={label!r})")
        if "callback_data" not in button:
            return {"button": button, "url": button.get("url")}
        query_id = str(4_382_000_000_000_000_000 + self.next_callback * 7_919)
        self.next_callback += 1
        self.callbacks[query_id] = CallbackRec(chat.id, message_id, user_id, button["callback_data"], time.time())
        payload = {
            "id": query_id,
            "from": user.json(),
            "message": self.message_json(chat, rec),
            "chat_instance": str((chat.id * 2_654_435_761 + self.info.id) % 10**19),
            "data": button["callback_data"],
        }
        update_id = self.push_update("callback_query", payload, chat.id)
        return {"callback_query_id": query_id, "data": button["callback_data"], "update_id": update_id}

    # ------------------------------------------------------------------ updates

    def push_update(self, kind: str, payload: dict[str, Any], chat_id: int) -> int | None:
        if kind not in self.allowed_updates:
            self.counters["updates_filtered"] += 1
            return None
        update = Update(self.next_update_id, kind, payload, chat_id)
        self.next_update_id += 1
        self.counters["updates_created"] += 1
        webhook = self.webhook
        if webhook is not None and webhook.sink is not None:
            webhook.sink.enqueue(update)
        else:
            self.pending.append(update)
            poller = self.poller
            if poller is not None and not poller.done():
                poller.set_result(None)
        return update.update_id

    def set_allowed_updates(self, allowed: list[str] | None) -> None:
        """Telegram keeps the last list a bot gave; an empty list means the default set."""
        if allowed is None:
            return
        self.allowed_updates = frozenset(allowed) & ALL_UPDATE_TYPES if allowed else DEFAULT_ALLOWED_UPDATES

    async def get_updates(self, offset: int | None, limit: int, wait_s: float) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        # a new getUpdates ends the previous long poll, as Telegram does with two bot instances
        if self.poller is not None and not self.poller.done():
            self.poller.set_result(_CONFLICT)
        if offset is not None:
            self._confirm(offset)
        if not self.pending and not self.redelivery and wait_s > 0 and not self.closing:
            fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            self.poller = fut
            result: object = None
            try:
                async with asyncio.timeout(wait_s):
                    result = await fut
            except TimeoutError:
                result = None
            finally:
                if self.poller is fut:
                    self.poller = None
            if result is _CONFLICT:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
            if self.webhook is not None:
                return []
        return self._take(limit)

    def _confirm(self, offset: int) -> None:
        pending = self.pending
        if offset < 0:
            while len(pending) > -offset:
                pending.popleft()
            self.redelivery = []
            return
        if self.redelivery:
            self.redelivery = [(u, sent) for (u, sent) in self.redelivery if not sent]
        while pending and pending[0].update_id < offset:
            update = pending.popleft()
            if update.redeliver:
                update.redeliver = False
                update.duplicated = True
                self.redelivery.append((update, False))

    def _take(self, limit: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.redelivery:
            for i, (update, _sent) in enumerate(self.redelivery):
                if len(out) >= limit:
                    break
                self.redelivery[i] = (update, True)
                out.append(update.json())
                self.counters["duplicates_delivered"] += 1
        for update in islice(self.pending, limit - len(out)):
            if self.dup_budget > 0 and not update.redeliver and not update.duplicated:
                update.redeliver = True
                self.dup_budget -= 1
            out.append(update.json())
        self.counters["updates_delivered"] += len(out)
        return out

    def take_duplicate(self) -> bool:
        """For webhook delivery: whether to post the update just delivered once more."""
        if self.dup_budget > 0:
            self.dup_budget -= 1
            self.counters["duplicates_delivered"] += 1
            return True
        return False

    # ------------------------------------------------------------------ files

    def _file_ids(self, prefix: str) -> tuple[str, str]:
        n = self.next_file
        self.next_file += 1
        return f"{prefix}{self.info.id:x}{n:08x}", f"AQAD{n:08x}"

    def new_photo(self, file_size: int, width: int = 800, height: int = 800) -> list[dict[str, Any]]:
        """A new photo file in three sizes, as Telegram stores an upload; any size's file_id re-sends it."""
        file_id, unique_id = self._file_ids("AgACAgIAAxkDAAI")
        sizes: list[dict[str, Any]] = []
        for suffix, scale in (("s", 90), ("m", 320), ("x", max(width, height))):
            w = min(width, scale) if suffix != "x" else width
            h = min(height, scale) if suffix != "x" else height
            sizes.append(
                {
                    "file_id": file_id + suffix,
                    "file_unique_id": unique_id + suffix,
                    "file_size": file_size if suffix == "x" else max(1, file_size * scale // 800),
                    "width": w,
                    "height": h,
                }
            )
        for size in sizes:
            self.files[size["file_id"]] = ("photo", sizes)
        return sizes

    def new_media(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A sticker, voice note or document a user sends (Bot API object with fresh file ids)."""
        prefix = {"sticker": "CAACAgIAAxkBAAI", "voice": "AwACAgIAAxkBAAI"}.get(kind, "BQACAgIAAxkBAAI")
        file_id, unique_id = self._file_ids(prefix)
        obj = {"file_id": file_id, "file_unique_id": unique_id, **fields}
        self.files[file_id] = (kind, obj)
        return obj

    # ------------------------------------------------------------------ bot side primitives

    def _new_message(self, chat: ChatRec, sender_id: int) -> MessageRec:
        rec = MessageRec(chat.next_id, sender_id, int(time.time()), time.time())
        chat.next_id += 1
        messages = chat.messages
        messages[rec.message_id] = rec
        cap = self.max_messages_per_chat
        if len(messages) > cap + (cap >> 2) + 1:
            # trimmed in batches so that the cost per message stays O(1)
            chat.messages = dict(islice(messages.items(), len(messages) - cap, None))
        return rec

    def _push_message(self, chat: ChatRec, rec: MessageRec, extra: dict[str, Any] | None) -> int | None:
        payload = self.message_json(chat, rec)
        if extra:
            payload.update(extra)
        return self.push_update("message", payload, chat.id)

    def new_bot_message(self, chat: ChatRec) -> MessageRec:
        rec = self._new_message(chat, self.info.id)
        chat.sent += 1
        self.counters["messages_sent"] += 1
        return rec

    def delivered(self, chat: ChatRec, rec: MessageRec) -> None:
        """Log that the chat received a new bot message (after its fields are filled)."""
        self._event(chat, "new", rec.message_id, 0)

    def _remember_version(self, rec: MessageRec) -> None:
        version = (rec.text, rec.caption, rec.entities, rec.markup, rec.edit_date or rec.date)
        if rec.edits is None:
            rec.edits = [version]
        else:
            rec.edits.append(version)

    def edit_bot_message(
        self,
        chat: ChatRec,
        rec: MessageRec,
        *,
        text: str | None,
        caption: str | None,
        entities: str | None,
        markup: str | None,
        parse_mode: str | None,
    ) -> None:
        self._remember_version(rec)
        rec.text, rec.caption, rec.entities, rec.markup = text, caption, entities, markup
        rec.parse_mode = parse_mode
        rec.edit_date = int(time.time())
        chat.edits += 1
        self.counters["edits"] += 1
        assert rec.edits is not None
        self._event(chat, "edit", rec.message_id, len(rec.edits))

    def delete_message(self, chat: ChatRec, rec: MessageRec) -> None:
        rec.deleted = True
        rec.deleted_at = time.time()
        self.counters["deletes"] += 1
        if rec.sender_id == self.info.id:
            self._event(chat, "delete", rec.message_id, -1)

    def _event(self, chat: ChatRec, kind: str, message_id: int, version: int) -> None:
        events = chat.events
        events.append((kind, message_id, version))
        cap = self.max_messages_per_chat
        if len(events) > 2 * cap:
            drop = len(events) - cap
            del events[:drop]
            chat.events_base += drop
        if chat.waiters:
            cursor = chat.cursor
            keep = []
            for target, fut in chat.waiters:
                if cursor >= target:
                    if not fut.done():
                        fut.set_result(None)
                elif not fut.done():
                    keep.append((target, fut))
            chat.waiters = keep or None

    def rate_check(self, chat: ChatRec, paid: bool) -> None:
        """Take one message from the global, per-chat and per-group buckets, or raise 429 and take none."""
        rates = self.rates
        if not rates.enabled:
            return
        now = self._clock()
        if paid:
            tokens = min(rates.paid_rate, self._ptokens + (now - self._pstamp) * rates.paid_rate)
            self._ptokens, self._pstamp = tokens, now
            wait = 0.0 if tokens >= 1 else (1 - tokens) / rates.paid_rate
        else:
            tokens = min(rates.global_rate, self._gtokens + (now - self._gstamp) * rates.global_rate)
            self._gtokens, self._gstamp = tokens, now
            wait = 0.0 if tokens >= 1 else (1 - tokens) / rates.global_rate
        burst = float(rates.per_chat_burst)
        ctokens = burst if chat.tokens < 0 else min(burst, chat.tokens + (now - chat.stamp) * rates.per_chat_rate)
        chat.tokens, chat.stamp = ctokens, now
        if ctokens < 1:
            wait = max(wait, (1 - ctokens) / rates.per_chat_rate)
        is_group = chat.members is not None
        if is_group:
            gcap = rates.group_rate_per_min
            grate = gcap / 60.0
            gtokens = gcap if chat.gtokens < 0 else min(gcap, chat.gtokens + (now - chat.gstamp) * grate)
            chat.gtokens, chat.gstamp = gtokens, now
            if gtokens < 1:
                wait = max(wait, (1 - gtokens) / grate)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            chat.rate_limited += 1
            self.counters["rate_limited"] += 1
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        if paid:
            self._ptokens -= 1
            self.counters["paid_messages"] += 1
        else:
            self._gtokens -= 1
        chat.tokens -= 1
        if is_group:
            chat.gtokens -= 1

    def set_rates(self, **changes: Any) -> Rates:
        for name, value in changes.items():
            if value is None:
                continue
            if not hasattr(self.rates, name):
                raise ControlError(400, f"unknown rate setting {name!r}")
            setattr(self.rates, name, value)
        self._gtokens, self._ptokens = self.rates.global_rate, self.rates.paid_rate
        return self.rates

    # ------------------------------------------------------------------ faults

    def add_fault(self, method: str, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ControlError(400, "count must be at least 1")
        self.faults.setdefault(method.lower(), deque()).append(fault)

    def next_fault(self, method: str) -> Fault | None:
        """The fault for this call, if any (consumes one use); `*` faults apply to every method."""
        for key in (method, "*"):
            queue = self.faults.get(key)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.popleft()
                    if not queue:
                        del self.faults[key]
                self.counters["faults_injected"] += 1
                return fault
        return None

    # ------------------------------------------------------------------ JSON views

    def message_json(self, chat: ChatRec, rec: MessageRec, *, reply: bool = True) -> dict[str, Any]:
        """The message as a Bot API Message object."""
        if rec.sender_id == self.info.id:
            sender = self.me_from
        else:
            user = self.users.get(rec.sender_id)
            sender = user.json() if user else {"id": rec.sender_id, "is_bot": False, "first_name": "?"}
        d: dict[str, Any] = {"message_id": rec.message_id, "from": sender, "chat": chat.json, "date": rec.date}
        if rec.edit_date is not None:
            d["edit_date"] = rec.edit_date
        if reply and rec.reply_to is not None:
            target = chat.messages.get(rec.reply_to)
            if target is not None:
                d["reply_to_message"] = self.message_json(chat, target, reply=False)
        if rec.text is not None:
            d["text"] = rec.text
            if rec.entities:
                d["entities"] = decode(rec.entities)
        if rec.media_kind is not None:
            d[rec.media_kind] = rec.media
            if rec.caption is not None:
                d["caption"] = rec.caption
                if rec.entities:
                    d["caption_entities"] = decode(rec.entities)
        if rec.markup is not None and rec.markup.startswith('{"inline_keyboard"'):
            # a Message carries only inline keyboards; reply keyboards live on the client
            d["reply_markup"] = decode(rec.markup)
        return d

    def snapshot(
        self, chat: ChatRec, rec: MessageRec, kind: str = "state", version: int | None = None
    ) -> dict[str, Any]:
        """The control API's view of a message: as it is now (`version` None or -1) or after `version` edits."""
        current = version is None or version < 0
        n_edits = len(rec.edits or ())
        text, caption, entities, markup, date = rec.version(n_edits if current else version or 0)
        edited = n_edits > 0 if current else (version or 0) > 0
        return {
            "event": kind,
            "chat_id": chat.id,
            "message_id": rec.message_id,
            "from_bot": rec.sender_id == self.info.id,
            "sender_id": rec.sender_id,
            "date": rec.date,
            "received_at": rec.received_at,
            "text": text,
            "caption": caption,
            "parse_mode": rec.parse_mode,
            "entities": decode(entities) if entities else [],
            "reply_markup": decode(markup) if markup else None,
            "media_kind": rec.media_kind,
            "media": rec.media,
            "reply_to_message_id": rec.reply_to,
            "edited": edited,
            "edit_date": date if edited else None,
            "deleted": rec.deleted if current else False,
        }

    def record(self, chat: ChatRec) -> dict[str, Any]:
        """Everything a chat received and did, for tests to judge."""
        messages = []
        for rec in chat.messages.values():
            m = self.snapshot(chat, rec)
            m["deleted_at"] = rec.deleted_at
            m["history"] = [
                {
                    "text": t,
                    "caption": c,
                    "entities": decode(e) if e else [],
                    "reply_markup": decode(k) if k else None,
                    "date": d,
                }
                for (t, c, e, k, d) in (rec.edits or ())
            ]
            messages.append(m)
        return {
            "chat": chat.json,
            "bot_status": chat.bot_status,
            "migrated_to": chat.migrated_to,
            "members": sorted(chat.members) if chat.members is not None else None,
            "blocked": chat.user.blocked if chat.user else False,
            "messages": messages,
            "callback_answers": list(chat.answers or ()),
            "chat_actions": [{"action": a, "at": t} for a, t in (chat.actions or ())],
            "counters": chat.counters(),
            "cursor": chat.cursor,
        }

    def events_after(self, chat: ChatRec, after: int) -> tuple[list[dict[str, Any]], bool]:
        """Bot messages, edits and deletions the chat saw after `after`; True when some were trimmed."""
        start = after - chat.events_base
        truncated = start < 0
        out = []
        for kind, mid, version in chat.events[max(start, 0) :]:
            rec = chat.messages.get(mid)
            if rec is None:
                out.append({"event": kind, "chat_id": chat.id, "message_id": mid, "forgotten": True})
                continue
            out.append(self.snapshot(chat, rec, kind, version))
        return out, truncated

    async def wait_chat(self, chat: ChatRec, target: int, wait_s: float) -> None:
        if chat.cursor >= target or wait_s <= 0 or self.closing:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if chat.waiters is None:
            chat.waiters = []
        chat.waiters.append((target, fut))
        try:
            async with asyncio.timeout(wait_s):
                await fut
        except TimeoutError:
            pass
        finally:
            if chat.waiters:
                chat.waiters = [(t, f) for (t, f) in chat.waiters if f is not fut] or None

    async def wait_counter(self, name: str, at_least: int, wait_s: float) -> int:
        if name not in self.counters:
            raise ControlError(400, f"unknown counter {name!r}")
        if self.counters[name] >= at_least or wait_s <= 0 or self.closing:
            return self.counters[name]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _CounterWait(name, at_least, fut)
        self._counter_waiters.append(waiter)
        try:
            async with asyncio.timeout(wait_s):
                await fut
        except TimeoutError:
            pass
        finally:
            if waiter in self._counter_waiters:
                self._counter_waiters.remove(waiter)
        return self.counters[name]

    def check_counter_waiters(self) -> None:
        if not self._counter_waiters:
            return
        keep = []
        for w in self._counter_waiters:
            if self.counters[w.name] >= w.at_least:
                if not w.future.done():
                    w.future.set_result(None)
            else:
                keep.append(w)
        self._counter_waiters = keep

    def stats(self) -> dict[str, Any]:
        webhook = self.webhook
        pending = (
            webhook.sink.pending_count() if webhook is not None and webhook.sink is not None else len(self.pending)
        )
        return {
            "bot_id": self.info.id,
            "counters": dict(self.counters),
            "methods": dict(self.method_calls),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "users": len(self.users),
            "chats": len(self.chats),
            "pending_updates": pending,
            "webhook": webhook.url if webhook is not None else None,
            "rates": {
                "enabled": self.rates.enabled,
                "global_rate": self.rates.global_rate,
                "per_chat_rate": self.rates.per_chat_rate,
                "per_chat_burst": self.rates.per_chat_burst,
                "group_rate_per_min": self.rates.group_rate_per_min,
                "paid_rate": self.rates.paid_rate,
            },
            "faults": {m: [f.as_json() for f in q] for m, q in self.faults.items()},
            "duplicate_budget": self.dup_budget,
        }


def _detect_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram adds to a user's text: a leading bot_command and @mentions."""
    entities: list[dict[str, Any]] = []
    if text.startswith("/"):
        m = _COMMAND.match(text)
        if m is not None:
            entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(m.group(0))})
    if "@" in text:
        for m in _MENTION.finditer(text):
            entities.append(
                {"type": "mention", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group(0))}
            )
    return entities


def _find_button(
    keyboard: list[list[dict[str, Any]]],
    *,
    data: str | None,
    label: str | None,
    row: int | None,
    col: int | None,
) -> dict[str, Any] | None:
    if row is not None or col is not None:
        if row is None or col is None:
            return None
        if 0 <= row < len(keyboard) and 0 <= col < len(keyboard[row]):
            return keyboard[row][col]
        return None
    for buttons in keyboard:
        for button in buttons:
            if data is not None and button.get("callback_data") == data:
                return button
            if label is not None and button.get("text") == label:
                return button
    return None
