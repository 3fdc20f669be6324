"""The Bot API methods the emulator answers, with Telegram's parameter handling, validation and error texts.

Each method takes the bot's state and the request parameters (strings from a query string or a form, typed
values from a JSON body, aiohttp FileFields from multipart uploads) and returns the `result` of a successful
answer or raises ApiError. Flood control: every call of a method that puts or changes a message in a chat
(sendMessage, sendPhoto, editMessageText, editMessageCaption, editMessageReplyMarkup) takes one token from
the global bucket (or the paid one with allow_paid_broadcast), the chat's bucket and, for groups, the group's
per-minute bucket; a refused call changes nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from sandbox.telegram.formatting import EntityParseError, parse_html
from sandbox.telegram.world import (
    ALL_UPDATE_TYPES,
    ApiError,
    BotState,
    ChatRec,
    MessageRec,
    Update,
    WebhookConfig,
    bad_request,
)

__all__ = ["BotApi", "Described", "Method", "WebhookControl"]

MAX_TEXT = 4096
MAX_CAPTION = 1024
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same as a "
    "current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_BUTTON_ACTIONS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_URL = re.compile(r"^(?:https?|tg)://\S+$", re.IGNORECASE)
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_JSON_SEPARATORS = (",", ":")
_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Described:
    """A result that Telegram answers with a `description` too (setWebhook, deleteWebhook)."""

    result: Any
    description: str


class WebhookControl(Protocol):
    """Starts and stops the pusher that POSTs a bot's updates to its webhook (the server owns the HTTP client)."""

    async def start(self, bot: BotState, config: WebhookConfig) -> None: ...

    async def stop(self, bot: BotState) -> list[Update]: ...


Method = Callable[[BotState, dict[str, Any]], Awaitable[Any]]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=_JSON_SEPARATORS)


def _str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise bad_request(f"parameter {name!r} must be a string")


def _int(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {name} specified") from None


def _float(params: dict[str, Any], name: str) -> float | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {name} specified") from None


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    return value is True or value == 1 or value in ("true", "True", "1")


def _json(params: dict[str, Any], name: str, error: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(error) from None
    if isinstance(value, web.FileField):
        raise bad_request(error)
    return value


class BotApi:
    """The method table: lower-case method name -> (Telegram's spelling, implementation)."""

    def __init__(self, webhooks: WebhookControl) -> None:
        self._webhooks = webhooks
        table: list[tuple[str, Method]] = [
            ("getMe", self.get_me),
            ("getUpdates", self.get_updates),
            ("setWebhook", self.set_webhook),
            ("deleteWebhook", self.delete_webhook),
            ("getWebhookInfo", self.get_webhook_info),
            ("sendMessage", self.send_message),
            ("sendPhoto", self.send_photo),
            ("editMessageText", self.edit_message_text),
            ("editMessageCaption", self.edit_message_caption),
            ("editMessageReplyMarkup", self.edit_message_reply_markup),
            ("deleteMessage", self.delete_message),
            ("answerCallbackQuery", self.answer_callback_query),
            ("sendChatAction", self.send_chat_action),
            ("setMyCommands", self.set_my_commands),
            ("getMyCommands", self.get_my_commands),
            ("deleteMyCommands", self.delete_my_commands),
            ("getChat", self.get_chat),
            ("logOut", self.log_out),
            ("close", self.close),
        ]
        self.methods: dict[str, tuple[str, Method]] = {name.lower(): (name, fn) for name, fn in table}
        # broadcasts and menus repeat the same HTML and keyboards: parse and validate each once
        self._html_cache: dict[str, tuple[str, str | None]] = {}
        self._markup_cache: dict[str, str | None] = {}

    # ------------------------------------------------------------------ shared checks

    def _chat(self, bot: BotState, params: dict[str, Any], *, write: bool = True) -> ChatRec:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            # "@username" addresses public chats only; the emulator has none
            raise bad_request("chat not found") from None
        chat = bot.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        if chat.migrated_to is not None:
            raise bad_request("group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": chat.migrated_to})
        if write:
            reason = self._forbidden(chat)
            if reason is not None:
                chat.forbidden += 1
                bot.counters["forbidden"] += 1
                raise ApiError(403, "Forbidden: " + reason)
        return chat

    @staticmethod
    def _forbidden(chat: ChatRec) -> str | None:
        user = chat.user
        if user is not None:
            if user.deactivated:
                return "user is deactivated"
            if user.blocked:
                return "bot was blocked by the user"
            if not user.started:
                return "bot can't initiate conversation with a user"
            return None
        kind = "supergroup" if chat.type == "supergroup" else "group"
        if chat.bot_status == "kicked":
            return f"bot was kicked from the {kind} chat"
        if chat.bot_status == "left":
            return f"bot is not a member of the {kind} chat"
        return None

    def _formatted(
        self,
        params: dict[str, Any],
        field: str,
        entities_field: str,
        *,
        limit: int,
        empty: str | None,
        too_long: str,
    ) -> tuple[str | None, str | None, str | None]:
        """(text, entities JSON, parse_mode) of a text or caption; empty=None allows an absent value."""
        raw = _str(params, field)
        if raw is None or raw == "":
            if empty is None:
                return None, None, None
            raise bad_request(empty)
        parse_mode = _str(params, "parse_mode") or None
        entities_json: str | None
        if parse_mode is not None:
            mode = parse_mode.lower()
            if mode == "html":
                cached = self._html_cache.get(raw)
                if cached is None:
                    try:
                        parsed, entities = parse_html(raw)
                    except EntityParseError as exc:
                        raise bad_request(f"can't parse entities: {exc}") from None
                    if len(self._html_cache) >= _CACHE_SIZE:
                        self._html_cache.clear()
                    cached = self._html_cache[raw] = (parsed, _dumps(entities) if entities else None)
                text, entities_json = cached
            elif mode in ("markdown", "markdownv2"):
                # accepted but not parsed: the project formats with HTML only
                text, entities_json = raw, None
            else:
                raise bad_request("unsupported parse_mode")
        else:
            text = raw
            given = _json(params, entities_field, "can't parse entities JSON object") or []
            if not isinstance(given, list):
                raise bad_request("can't parse entities JSON object")
            entities_json = _dumps(given) if given else None
        if not text.strip():
            if empty is None:
                return None, None, parse_mode
            raise bad_request(empty)
        if len(text) > limit:
            raise bad_request(too_long)
        return text, entities_json, parse_mode

    def _markup(self, params: dict[str, Any]) -> str | None:
        """Validate reply_markup as Telegram does; returns it as compact JSON (one shared string per keyboard)."""
        raw = params.get("reply_markup")
        if isinstance(raw, str) and raw:
            known = self._markup_cache.get(raw)
            if known is None:
                known = self._check_markup(params)
                if len(self._markup_cache) >= _CACHE_SIZE:
                    self._markup_cache.clear()
                self._markup_cache[raw] = known
            return known
        return self._check_markup(params)

    @staticmethod
    def _check_markup(params: dict[str, Any]) -> str | None:
        obj = _json(params, "reply_markup", "can't parse reply keyboard markup JSON object")
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in obj:
            keyboard = obj["inline_keyboard"]
            if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
                raise bad_request('can\'t parse inline keyboard button: Field "inline_keyboard" must be of type Array')
            count = 0
            for row in keyboard:
                for button in row:
                    _check_inline_button(button)
                    count += 1
            if count > 100:
                raise bad_request("reply markup is too long")
        elif "keyboard" in obj:
            keyboard = obj["keyboard"]
            if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
                raise bad_request('can\'t parse keyboard button: Field "keyboard" must be of type Array')
            for row in keyboard:
                for button in row:
                    label = button.get("text") if isinstance(button, dict) else button
                    if not isinstance(label, str) or not label:
                        raise bad_request("can't parse keyboard button: Keyboard button must be a String or an Object")
        elif not ("remove_keyboard" in obj or "force_reply" in obj):
            raise bad_request("can't parse reply keyboard markup JSON object")
        return _dumps(obj)

    @staticmethod
    def _reply_to(chat: ChatRec, params: dict[str, Any]) -> int | None:
        reply = _json(params, "reply_parameters", "can't parse reply parameters JSON object")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow = bool(reply.get("allow_sending_without_reply"))
        else:
            message_id = _int(params, "reply_to_message_id")
            allow = _bool(params, "allow_sending_without_reply")
        if message_id is None:
            return None
        target = chat.messages.get(int(message_id))
        if target is None or target.deleted:
            if allow:
                return None
            raise bad_request("message to be replied not found")
        return target.message_id

    @staticmethod
    def _own_message(bot: BotState, chat: ChatRec, params: dict[str, Any], missing: str) -> MessageRec:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        message_id = _int(params, "message_id")
        rec = chat.messages.get(message_id) if message_id is not None else None
        if rec is None or rec.deleted:
            raise bad_request(missing)
        if rec.sender_id != bot.info.id:
            raise bad_request("message can't be edited")
        return rec

    # ------------------------------------------------------------------ methods

    async def get_me(self, bot: BotState, params: dict[str, Any]) -> Any:
        info = bot.info
        return {
            "id": info.id,
            "is_bot": True,
            "first_name": info.first_name,
            "username": info.username,
            "can_join_groups": info.can_join_groups,
            "can_read_all_group_messages": info.can_read_all_group_messages,
            "supports_inline_queries": info.supports_inline_queries,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def log_out(self, bot: BotState, params: dict[str, Any]) -> Any:
        return True

    async def close(self, bot: BotState, params: dict[str, Any]) -> Any:
        return True

    async def get_updates(self, bot: BotState, params: dict[str, Any]) -> Any:
        offset = _int(params, "offset")
        limit = _int(params, "limit")
        limit = 100 if limit is None else min(max(limit, 1), 100)
        timeout = _float(params, "timeout") or 0.0
        allowed = _json(params, "allowed_updates", "can't parse allowed updates")
        if allowed is not None:
            if not isinstance(allowed, list):
                raise bad_request("can't parse allowed updates")
            bot.set_allowed_updates([a for a in allowed if isinstance(a, str)])
        return await bot.get_updates(offset, limit, max(0.0, timeout))

    async def set_webhook(self, bot: BotState, params: dict[str, Any]) -> Any:
        url = _str(params, "url") or ""
        if not url:
            return await self.delete_webhook(bot, params)
        if not re.match(r"^https?://[^/\s:]+", url, re.IGNORECASE):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = _str(params, "secret_token")
        if secret is not None and not _SECRET.match(secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = _int(params, "max_connections") or 40
        if not 1 <= max_connections <= 100:
            raise bad_request("invalid max_connections specified")
        allowed = _json(params, "allowed_updates", "can't parse allowed updates")
        if allowed is not None and not isinstance(allowed, list):
            raise bad_request("can't parse allowed updates")
        queued = await self._unset_webhook(bot)
        if _bool(params, "drop_pending_updates"):
            queued = []
            bot.pending.clear()
            bot.redelivery = []
        bot.set_allowed_updates(allowed)
        config = WebhookConfig(url, secret, max_connections, allowed)
        await self._webhooks.start(bot, config)
        sink = config.sink
        assert sink is not None
        backlog = sorted([*queued, *bot.pending], key=lambda u: u.update_id)
        bot.pending.clear()
        bot.redelivery = []
        bot.webhook = config
        for update in backlog:
            sink.enqueue(update)
        # a getUpdates parked in a long poll must not go on waiting for updates that now go to the webhook
        if bot.poller is not None and not bot.poller.done():
            bot.poller.set_result(None)
        return Described(True, "Webhook was set")

    async def _unset_webhook(self, bot: BotState) -> list[Update]:
        if bot.webhook is None:
            return []
        remaining = await self._webhooks.stop(bot)
        bot.webhook = None
        return remaining

    async def delete_webhook(self, bot: BotState, params: dict[str, Any]) -> Any:
        was_set = bot.webhook is not None
        remaining = await self._unset_webhook(bot)
        if _bool(params, "drop_pending_updates"):
            bot.pending.clear()
            bot.redelivery = []
        elif remaining:
            merged = sorted([*remaining, *bot.pending], key=lambda u: u.update_id)
            bot.pending.clear()
            bot.pending.extend(merged)
        return Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    async def get_webhook_info(self, bot: BotState, params: dict[str, Any]) -> Any:
        webhook = bot.webhook
        if webhook is None:
            return {"url": "", "has_custom_certificate": False, "pending_update_count": len(bot.pending)}
        info: dict[str, Any] = {
            "url": webhook.url,
            "has_custom_certificate": False,
            "pending_update_count": webhook.sink.pending_count() if webhook.sink else 0,
            "max_connections": webhook.max_connections,
            "ip_address": "127.0.0.1",
        }
        if webhook.allowed_updates is not None:
            info["allowed_updates"] = sorted(set(webhook.allowed_updates) & ALL_UPDATE_TYPES)
        if webhook.last_error_date is not None:
            info["last_error_date"] = webhook.last_error_date
            info["last_error_message"] = webhook.last_error_message
        return info

    async def send_message(self, bot: BotState, params: dict[str, Any]) -> Any:
        chat = self._chat(bot, params)
        text, entities, parse_mode = self._formatted(
            params, "text", "entities", limit=MAX_TEXT, empty="message text is empty", too_long="message is too long"
        )
        markup = self._markup(params)
        reply_to = self._reply_to(chat, params)
        bot.rate_check(chat, _bool(params, "allow_paid_broadcast"))
        rec = bot.new_bot_message(chat)
        rec.text, rec.entities, rec.parse_mode, rec.markup, rec.reply_to = (
            text,
            entities,
            parse_mode,
            markup,
            reply_to,
        )
        bot.delivered(chat, rec)
        return bot.message_json(chat, rec)

    async def send_photo(self, bot: BotState, params: dict[str, Any]) -> Any:
        chat = self._chat(bot, params)
        photo = self._photo(bot, params)
        caption, entities, parse_mode = self._formatted(
            params,
            "caption",
            "caption_entities",
            limit=MAX_CAPTION,
            empty=None,
            too_long="message caption is too long",
        )
        markup = self._markup(params)
        reply_to = self._reply_to(chat, params)
        bot.rate_check(chat, _bool(params, "allow_paid_broadcast"))
        sizes = photo() if callable(photo) else photo
        rec = bot.new_bot_message(chat)
        rec.media_kind, rec.media = "photo", sizes
        rec.caption, rec.entities, rec.parse_mode, rec.markup, rec.reply_to = (
            caption,
            entities,
            parse_mode,
            markup,
            reply_to,
        )
        bot.delivered(chat, rec)
        return bot.message_json(chat, rec)

    @staticmethod
    def _photo(bot: BotState, params: dict[str, Any]) -> list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]:
        """The photo's sizes, or a maker for a new file (made only once the message is accepted)."""
        value = params.get("photo")
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value[len("attach://") :])
        if isinstance(value, web.FileField):
            size = _file_size(value)
            if size == 0:
                raise bad_request("file must be non-empty")
            return lambda: bot.new_photo(size)
        if isinstance(value, str) and value:
            known = bot.files.get(value)
            if known is not None:
                kind, obj = known
                if kind != "photo":
                    raise bad_request("type of file mismatch")
                sizes: list[dict[str, Any]] = obj
                return sizes
            if _URL.match(value) and value.lower().startswith("http"):
                # Telegram downloads the URL; the emulator cannot, so it accepts it as given
                return lambda: bot.new_photo(0)
            raise bad_request("wrong file identifier/HTTP URL specified")
        raise bad_request("there is no photo in the request")

    async def edit_message_text(self, bot: BotState, params: dict[str, Any]) -> Any:
        if params.get("inline_message_id") and not params.get("chat_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(bot, params)
        rec = self._own_message(bot, chat, params, "message to edit not found")
        if rec.text is None:
            raise bad_request("there is no text in the message to edit")
        text, entities, parse_mode = self._formatted(
            params, "text", "entities", limit=MAX_TEXT, empty="message text is empty", too_long="message is too long"
        )
        # without reply_markup an edit removes the inline keyboard, as in Telegram
        markup = self._markup(params)
        if text == rec.text and entities == rec.entities and markup == rec.markup:
            raise bad_request(NOT_MODIFIED)
        bot.rate_check(chat, False)
        bot.edit_bot_message(
            chat, rec, text=text, caption=None, entities=entities, markup=markup, parse_mode=parse_mode
        )
        return bot.message_json(chat, rec)

    async def edit_message_caption(self, bot: BotState, params: dict[str, Any]) -> Any:
        if params.get("inline_message_id") and not params.get("chat_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(bot, params)
        rec = self._own_message(bot, chat, params, "message to edit not found")
        if rec.media_kind is None:
            raise bad_request("there is no caption in the message to edit")
        caption, entities, parse_mode = self._formatted(
            params,
            "caption",
            "caption_entities",
            limit=MAX_CAPTION,
            empty=None,
            too_long="message caption is too long",
        )
        markup = self._markup(params)
        if caption == rec.caption and entities == rec.entities and markup == rec.markup:
            raise bad_request(NOT_MODIFIED)
        bot.rate_check(chat, False)
        bot.edit_bot_message(
            chat, rec, text=None, caption=caption, entities=entities, markup=markup, parse_mode=parse_mode
        )
        return bot.message_json(chat, rec)

    async def edit_message_reply_markup(self, bot: BotState, params: dict[str, Any]) -> Any:
        if params.get("inline_message_id") and not params.get("chat_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(bot, params)
        rec = self._own_message(bot, chat, params, "message to edit not found")
        markup = self._markup(params)
        if markup == rec.markup:
            raise bad_request(NOT_MODIFIED)
        bot.rate_check(chat, False)
        bot.edit_bot_message(
            chat,
            rec,
            text=rec.text,
            caption=rec.caption,
            entities=rec.entities,
            markup=markup,
            parse_mode=rec.parse_mode,
        )
        return bot.message_json(chat, rec)

    async def delete_message(self, bot: BotState, params: dict[str, Any]) -> Any:
        chat = self._chat(bot, params, write=False)
        message_id = _int(params, "message_id")
        rec = chat.messages.get(message_id) if message_id is not None else None
        if rec is None or rec.deleted:
            raise bad_request("message to delete not found")
        if rec.sender_id != bot.info.id and chat.members is not None and chat.bot_status != "administrator":
            raise bad_request("message can't be deleted")
        bot.delete_message(chat, rec)
        return True

    async def answer_callback_query(self, bot: BotState, params: dict[str, Any]) -> Any:
        query_id = _str(params, "callback_query_id") or ""
        query = bot.callbacks.get(query_id)
        if query is None or query.answered:
            raise bad_request(QUERY_TOO_OLD)
        query.answered = True
        answer = {
            "callback_query_id": query_id,
            "message_id": query.message_id,
            "user_id": query.user_id,
            "data": query.data,
            "text": _str(params, "text"),
            "show_alert": _bool(params, "show_alert"),
            "url": _str(params, "url"),
            "cache_time": _int(params, "cache_time") or 0,
            "answered_at": time.time(),
            "latency_s": round(time.time() - query.created, 6),
        }
        chat = bot.chats.get(query.chat_id)
        if chat is not None:
            if chat.answers is None:
                chat.answers = []
            chat.answers.append(answer)
        bot.counters["callback_answers"] += 1
        return True

    async def send_chat_action(self, bot: BotState, params: dict[str, Any]) -> Any:
        chat = self._chat(bot, params)
        action = _str(params, "action")
        if not action:
            raise bad_request("action is empty")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        if chat.actions is None:
            chat.actions = []
        chat.actions.append((action, time.time()))
        if len(chat.actions) > 200:
            del chat.actions[:100]
        return True

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> tuple[str, str]:
        scope = _json(params, "scope", "can't parse BotCommandScope JSON object") or {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise bad_request("can't parse BotCommandScope JSON object")
        return json.dumps(scope, sort_keys=True), _str(params, "language_code") or ""

    async def set_my_commands(self, bot: BotState, params: dict[str, Any]) -> Any:
        commands = _json(params, "commands", "can't parse commands JSON object")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        clean: list[dict[str, str]] = []
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand JSON object")
            name = command.get("command")
            description = command.get("description")
            if not isinstance(name, str) or not _COMMAND_NAME.match(name.lower().lstrip("/")):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise bad_request("command description must be 1-256 characters long")
            clean.append({"command": name.lower().lstrip("/"), "description": description})
        key = self._commands_key(params)
        if clean:
            bot.commands[key] = clean
        else:
            bot.commands.pop(key, None)
        return True

    async def get_my_commands(self, bot: BotState, params: dict[str, Any]) -> Any:
        return bot.commands.get(self._commands_key(params), [])

    async def delete_my_commands(self, bot: BotState, params: dict[str, Any]) -> Any:
        bot.commands.pop(self._commands_key(params), None)
        return True

    async def get_chat(self, bot: BotState, params: dict[str, Any]) -> Any:
        chat = self._chat(bot, params, write=False)
        info = dict(chat.json)
        info.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return info


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    label = button.get("text")
    if not isinstance(label, str):
        raise bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
    if not label.strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
    elif "url" in button:
        url = button["url"]
        if not isinstance(url, str) or not _URL.match(url):
            raise bad_request("BUTTON_URL_INVALID")
    elif not any(key in button for key in _BUTTON_ACTIONS):
        raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")


def _file_size(field: web.FileField) -> int:
    stream = field.file
    try:
        stream.seek(0, 2)
        return int(stream.tell())
    except (OSError, ValueError):
        return len(stream.read())
