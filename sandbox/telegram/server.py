"""A local Telegram Bot API server for tests, benchmarks and development (`TelegramEmulator`).

python-telegram-bot talks to it unchanged through `base_url=<emulator>/bot`. Bot API: `/bot<token>/<method>`
by GET or POST, parameters from the query string, a JSON body, a urlencoded form or multipart/form-data
(nested objects as JSON strings, as PTB sends them); method names are case-insensitive. Unknown token: 401
Unauthorized; unknown method: 404 Not Found. Methods: getMe, getUpdates, setWebhook, deleteWebhook,
getWebhookInfo, sendMessage, sendPhoto, editMessageText, editMessageCaption, editMessageReplyMarkup,
deleteMessage, answerCallbackQuery, sendChatAction, setMyCommands, getMyCommands, deleteMyCommands, getChat,
logOut, close. Answers, objects and errors are shaped like Telegram's (see botapi.py for the checks, world.py
for the state and the flood-control buckets, webhook.py for webhook delivery).

Deliberate differences from Telegram: webhooks may be plain http (for a local receiver); Markdown parse modes
are accepted but not parsed (the project formats with HTML); a photo URL is not downloaded; inline mode,
payments, other media and channels do not exist; callback queries do not expire with time (only answering
twice or an unknown id is refused).

Control API (JSON in, JSON out; errors are `{"error": "..."}` with a 4xx status). With several tokens, pick
the bot with `?bot=<bot id>` (default: the first token).

    GET  /_sandbox/health                        -> {"ok": true, "bots": [bot ids]}
    POST /_sandbox/reset                         forget users, chats, updates, webhook, faults, counters
    GET  /_sandbox/stats                         counters, calls per method, answers per HTTP status, rates
    POST /_sandbox/wait      {counter, at_least, timeout}   wait until a counter (e.g. "messages_sent")
                                                 reaches a value -> {"value": n, "reached": bool}
    POST /_sandbox/users     {id, first_name, last_name?, username?, language_code?, is_premium?,
                              started? (default true; false: the bot gets 403 "can't initiate conversation")}
    POST /_sandbox/users/bulk {first_id, count, first_name?, language_code?, started?}  -> {"created": n}
    POST /_sandbox/users/{id}/send   {chat_id? (default: the private chat), text? | sticker{emoji} |
                              photo{width,height,file_size} + caption? | voice{duration} |
                              location{latitude,longitude} | contact{phone_number,first_name},
                              reply_to_message_id?}  -> {"message": Message, "update_id": n | null}
                              ("/start arg" gets a bot_command entity; in a group a bot without admin rights
                              and without can_read_all_group_messages only gets commands and replies to it)
    POST /_sandbox/users/{id}/edit   {chat_id?, message_id, text}  -> {"update_id": n | null}
    POST /_sandbox/users/{id}/press  {chat_id?, message_id, data? | label? | row+col | forged}
                              -> {"callback_query_id", "data", "update_id"} or {"url"} for a URL button;
                              404 when the message has no such button; `forged` sends that data as a
                              modified client would
    POST /_sandbox/users/{id}/block | /unblock   (my_chat_member update) ; /deactivate
    POST /_sandbox/groups    {id?, title, members: [user ids], type? ("group"), bot_admin?, username?}
    POST /_sandbox/groups/{id}/members  {user_id}
    POST /_sandbox/groups/{id}/migrate  {new_id?}  -> {"migrate_to_chat_id": n}
    POST /_sandbox/groups/{id}/kick_bot {by?}
    GET  /_sandbox/chats/{id}             the chat's record: messages with edit history and deleted flag,
                                          callback answers, chat actions, counters, cursor
    GET  /_sandbox/chats/{id}/events?after=N    what the chat received from the bot after cursor N
    POST /_sandbox/chats/{id}/wait   {after, count, timeout}  long-poll until `count` events (new message,
                              edit, deletion) arrived after `after` -> {"cursor", "events", "timed_out",
                              "truncated"}
    GET  /_sandbox/faults ; DELETE /_sandbox/faults
    POST /_sandbox/faults    {method ("*" = all), count, status? | delay? | reset? | retry_after?,
                              description?, apply?}  next `count` calls fail with `status` (502 "Bad Gateway"),
                              answer `delay` s late, drop the connection, or answer 429; `apply` says whether
                              the call still takes effect (default: only for delay)
    POST /_sandbox/duplicates {count}  the next `count` updates are delivered twice (getUpdates: again after
                              being confirmed; webhook: posted twice)
    GET|POST /_sandbox/rates {enabled?, global_rate?, per_chat_rate?, per_chat_burst?, group_rate_per_min?,
                              paid_rate?}
    GET  /_sandbox/updates   the updates waiting for the bot (not consumed)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog
from aiohttp import web

from sandbox.telegram.botapi import BotApi, Described, Method
from sandbox.telegram.webhook import WebhookManager
from sandbox.telegram.world import ApiError, BotInfo, BotState, ControlError, Fault, Rates

__all__ = ["DEFAULT_TOKEN", "TelegramEmulator"]

log = structlog.get_logger(__name__)

# not a secret: the emulator accepts whatever tokens it is started with; this one is the default
DEFAULT_TOKEN = "123456789:SANDBOX-token-for-local-use-only"  # noqa: S105
_STATUS_TEXT = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_UNAUTHORIZED = json.dumps({"ok": False, "error_code": 401, "description": "Unauthorized"}).encode()
_NOT_FOUND = json.dumps({"ok": False, "error_code": 404, "description": "Not Found"}).encode()
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _answer(status: int, body: Any) -> web.Response:
    return web.Response(body=_dumps(body), status=status, content_type="application/json")


def _abort_connection(request: web.Request) -> None:
    """Drop the client's TCP connection with a reset, no answer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class TelegramEmulator:
    """The Bot API emulator: `await start()` serves it in the running event loop, `await stop()` ends it."""

    def __init__(
        self,
        tokens: Mapping[str, BotInfo] | Iterable[str] = (DEFAULT_TOKEN,),
        *,
        global_rate: float = 30.0,
        per_chat_rate: float = 1.0,
        per_chat_burst: int = 3,
        group_rate_per_min: float = 20.0,
        paid_rate: float = 1000.0,
        rate_limits: bool = True,
        max_messages_per_chat: int = 1000,
        webhook_retry_base: float = 0.1,
        webhook_retry_max: float = 5.0,
        webhook_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        infos = dict(tokens) if isinstance(tokens, Mapping) else {t: BotInfo() for t in tokens}
        if not infos:
            raise ValueError("at least one bot token is needed")
        rates = Rates(
            enabled=rate_limits,
            global_rate=global_rate,
            per_chat_rate=per_chat_rate,
            per_chat_burst=per_chat_burst,
            group_rate_per_min=group_rate_per_min,
            paid_rate=paid_rate,
        )
        self.bots: dict[str, BotState] = {
            token: BotState(token, info, rates, max_messages_per_chat=max_messages_per_chat, clock=clock)
            for token, info in infos.items()
        }
        self._by_id = {bot.info.id: bot for bot in self.bots.values()}
        self._webhooks = WebhookManager(
            retry_base=webhook_retry_base, retry_max=webhook_retry_max, timeout=webhook_timeout
        )
        self._api = BotApi(self._webhooks)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        # photo uploads may be up to 10 MB
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._bot_api)
        self._add_control_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port); returns the base URL (PTB's base_url is this + "/bot")."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(
            self.make_app(), handle_signals=False, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown}:{bound_port}"
        log.info("telegram_emulator_started", base_url=self.base_url, bots=len(self.bots))
        return self.base_url

    async def stop(self) -> None:
        for bot in self.bots.values():
            bot.closing = True
            bot.wake_all()
        await self._webhooks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for bot in self.bots.values():
            bot.closing = False
        log.info("telegram_emulator_stopped")

    async def __aenter__(self) -> TelegramEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """What to give python-telegram-bot as `base_url`."""
        return self.base_url + "/bot"

    # ------------------------------------------------------------------ Python API

    def bot(self, which: str | int | None = None) -> BotState:
        """A bot's state by token or bot id (default: the first token)."""
        if which is None:
            return next(iter(self.bots.values()))
        if isinstance(which, str) and which in self.bots:
            return self.bots[which]
        try:
            return self._by_id[int(which)]
        except (KeyError, ValueError):
            raise ControlError(404, f"unknown bot {which!r}") from None

    def add_fault(
        self,
        method: str,
        *,
        count: int = 1,
        status: int | None = None,
        description: str | None = None,
        delay: float | None = None,
        reset: bool = False,
        retry_after: int | None = None,
        apply: bool | None = None,
        bot: str | int | None = None,
    ) -> Fault:
        """Make the next `count` calls of `method` ("*" = any) fail; see Fault for the kinds."""
        if reset:
            fault = Fault("reset", count)
        elif delay is not None:
            fault = Fault("delay", count, delay=delay, apply=True)
        elif retry_after is not None:
            fault = Fault("flood", count, status=429, retry_after=retry_after)
        else:
            code = status or 502
            fault = Fault("status", count, status=code, description=_STATUS_TEXT.get(code, "Internal Server Error"))
        if description is not None:
            fault.description = description
        if apply is not None:
            fault.apply = apply
        self.bot(bot).add_fault(method, fault)
        return fault

    def clear_faults(self, bot: str | int | None = None) -> None:
        state = self.bot(bot)
        state.faults.clear()
        state.dup_budget = 0

    def duplicate_updates(self, count: int, bot: str | int | None = None) -> None:
        """Deliver each of the next `count` updates twice."""
        self.bot(bot).dup_budget += count

    async def reset(self, bot: str | int | None = None) -> None:
        state = self.bot(bot)
        if state.webhook is not None:
            await self._webhooks.stop(state)
        state.reset()

    # ------------------------------------------------------------------ Bot API

    async def _bot_api(self, request: web.Request) -> web.StreamResponse:
        bot = self.bots.get(request.match_info["token"])
        if bot is None:
            return web.Response(body=_UNAUTHORIZED, status=401, content_type="application/json")
        entry = self._api.methods.get(request.match_info["method"].lower())
        if entry is None:
            return web.Response(body=_NOT_FOUND, status=404, content_type="application/json")
        name, method = entry
        bot.method_calls[name] = bot.method_calls.get(name, 0) + 1
        fault = bot.next_fault(name.lower()) if bot.faults else None
        if fault is None:
            return await self._call(request, bot, method)
        if fault.kind == "delay":
            if fault.apply:
                answer = await self._call(request, bot, method)
                await asyncio.sleep(fault.delay)
                return answer
            # the call takes effect after the delay, unless the client gave up and disconnected meanwhile
            await asyncio.sleep(fault.delay)
            return await self._call(request, bot, method)
        if fault.apply:
            await self._call(request, bot, method)
        if fault.kind == "reset":
            _abort_connection(request)
            return web.Response(status=500)
        status = 429 if fault.kind == "flood" else fault.status
        bot.statuses[status] = bot.statuses.get(status, 0) + 1
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": fault.description}
        if fault.kind == "flood":
            body["description"] = f"Too Many Requests: retry after {fault.retry_after}"
            body["parameters"] = {"retry_after": fault.retry_after}
        return _answer(status, body)

    @staticmethod
    async def _call(request: web.Request, bot: BotState, method: Method) -> web.Response:
        try:
            params = await _read_params(request)
            result = await method(bot, params)
        except ApiError as exc:
            status, body = exc.status, exc.body()
            if status == 400:
                bot.counters["bad_requests"] += 1
        else:
            status = 200
            if isinstance(result, Described):
                body = {"ok": True, "result": result.result, "description": result.description}
            else:
                body = {"ok": True, "result": result}
        bot.statuses[status] = bot.statuses.get(status, 0) + 1
        bot.check_counter_waiters()
        return web.Response(body=_dumps(body), status=status, content_type="application/json")

    # ------------------------------------------------------------------ control API

    def _add_control_routes(self, app: web.Application) -> None:
        routes: list[tuple[str, str, Callable[[web.Request, BotState], Awaitable[Any]]]] = [
            ("GET", "/_sandbox/health", self._c_health),
            ("POST", "/_sandbox/reset", self._c_reset),
            ("GET", "/_sandbox/stats", self._c_stats),
            ("POST", "/_sandbox/wait", self._c_wait),
            ("POST", "/_sandbox/users", self._c_user),
            ("POST", "/_sandbox/users/bulk", self._c_users_bulk),
            ("POST", "/_sandbox/users/{user_id}/send", self._c_send),
            ("POST", "/_sandbox/users/{user_id}/edit", self._c_edit),
            ("POST", "/_sandbox/users/{user_id}/press", self._c_press),
            ("POST", "/_sandbox/users/{user_id}/block", self._c_block),
            ("POST", "/_sandbox/users/{user_id}/unblock", self._c_unblock),
            ("POST", "/_sandbox/users/{user_id}/deactivate", self._c_deactivate),
            ("POST", "/_sandbox/groups", self._c_group),
            ("POST", "/_sandbox/groups/{chat_id}/members", self._c_member),
            ("POST", "/_sandbox/groups/{chat_id}/migrate", self._c_migrate),
            ("POST", "/_sandbox/groups/{chat_id}/kick_bot", self._c_kick),
            ("GET", "/_sandbox/chats/{chat_id}", self._c_record),
            ("GET", "/_sandbox/chats/{chat_id}/events", self._c_events),
            ("POST", "/_sandbox/chats/{chat_id}/wait", self._c_chat_wait),
            ("GET", "/_sandbox/faults", self._c_faults),
            ("POST", "/_sandbox/faults", self._c_add_fault),
            ("DELETE", "/_sandbox/faults", self._c_clear_faults),
            ("POST", "/_sandbox/duplicates", self._c_duplicates),
            ("GET", "/_sandbox/rates", self._c_rates),
            ("POST", "/_sandbox/rates", self._c_rates),
            ("GET", "/_sandbox/updates", self._c_updates),
        ]
        for verb, path, fn in routes:
            app.router.add_route(verb, path, self._control(fn))

    def _control(self, fn: Callable[[web.Request, BotState], Awaitable[Any]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                bot = self.bot(request.query.get("bot"))
                result = await fn(request, bot)
            except ControlError as exc:
                return _answer(exc.status, {"error": exc.reason})
            except (KeyError, ValueError, TypeError) as exc:
                return _answer(400, {"error": f"bad request: {exc!r}"})
            bot.check_counter_waiters()
            return _answer(200, result)

        return handler

    async def _c_health(self, request: web.Request, bot: BotState) -> Any:
        return {"ok": True, "bots": [b.info.id for b in self.bots.values()]}

    async def _c_reset(self, request: web.Request, bot: BotState) -> Any:
        await self.reset(bot.info.id)
        return {"ok": True}

    async def _c_stats(self, request: web.Request, bot: BotState) -> Any:
        return bot.stats()

    async def _c_wait(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        at_least = int(body["at_least"])
        value = await bot.wait_counter(str(body.get("counter", "messages_sent")), at_least, _timeout(body))
        return {"value": value, "reached": value >= at_least}

    async def _c_user(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        user = bot.create_user(
            int(body["id"]),
            first_name=str(body.get("first_name") or "User"),
            last_name=body.get("last_name"),
            username=body.get("username"),
            language_code=body.get("language_code"),
            is_premium=bool(body.get("is_premium", False)),
            started=bool(body.get("started", True)),
        )
        return user.json()

    async def _c_users_bulk(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        first, count = int(body["first_id"]), int(body["count"])
        name = str(body.get("first_name") or "User")
        lang = body.get("language_code")
        started = bool(body.get("started", True))
        for uid in range(first, first + count):
            bot.create_user(uid, first_name=name, language_code=lang, started=started)
        return {"created": count}

    async def _c_send(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        user_id = int(request.match_info["user_id"])
        media_kind, media, caption = _user_media(bot, body)
        reply_to = body.get("reply_to_message_id")
        rec, chat, update_id = bot.user_message(
            user_id,
            _opt_int(body.get("chat_id")),
            text=body.get("text"),
            media_kind=media_kind,
            media=media,
            caption=caption,
            reply_to=None if reply_to is None else int(reply_to),
        )
        return {"message": bot.message_json(chat, rec), "update_id": update_id}

    async def _c_edit(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        update_id = bot.user_edit(
            int(request.match_info["user_id"]),
            _opt_int(body.get("chat_id")),
            int(body["message_id"]),
            str(body["text"]),
        )
        return {"update_id": update_id}

    async def _c_press(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        return bot.press(
            int(request.match_info["user_id"]),
            _opt_int(body.get("chat_id")),
            int(body["message_id"]),
            data=body.get("data"),
            label=body.get("label"),
            row=_opt_int(body.get("row")),
            col=_opt_int(body.get("col")),
            forged=body.get("forged"),
        )

    async def _c_block(self, request: web.Request, bot: BotState) -> Any:
        bot.set_blocked(int(request.match_info["user_id"]), True)
        return {"ok": True}

    async def _c_unblock(self, request: web.Request, bot: BotState) -> Any:
        bot.set_blocked(int(request.match_info["user_id"]), False)
        return {"ok": True}

    async def _c_deactivate(self, request: web.Request, bot: BotState) -> Any:
        bot.set_deactivated(int(request.match_info["user_id"]))
        return {"ok": True}

    async def _c_group(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        chat = bot.create_group(
            _opt_int(body.get("id")),
            str(body.get("title") or "Group"),
            [int(m) for m in body.get("members", [])],
            chat_type=str(body.get("type") or "group"),
            bot_admin=bool(body.get("bot_admin", False)),
            username=body.get("username"),
        )
        return chat.json

    async def _c_member(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        bot.add_member(int(request.match_info["chat_id"]), int(body["user_id"]))
        return {"ok": True}

    async def _c_migrate(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        new = bot.migrate_group(int(request.match_info["chat_id"]), _opt_int(body.get("new_id")))
        return {"migrate_to_chat_id": new.id, "chat": new.json}

    async def _c_kick(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        bot.kick_bot(int(request.match_info["chat_id"]), _opt_int(body.get("by")))
        return {"ok": True}

    async def _c_record(self, request: web.Request, bot: BotState) -> Any:
        return bot.record(bot.control_chat(int(request.match_info["chat_id"])))

    async def _c_events(self, request: web.Request, bot: BotState) -> Any:
        chat = bot.control_chat(int(request.match_info["chat_id"]))
        after = int(request.query.get("after", "0"))
        events, truncated = bot.events_after(chat, after)
        return {"cursor": chat.cursor, "events": events, "truncated": truncated, "timed_out": False}

    async def _c_chat_wait(self, request: web.Request, bot: BotState) -> Any:
        chat = bot.control_chat(int(request.match_info["chat_id"]))
        body = await _body(request)
        after = int(body.get("after", 0))
        target = after + int(body.get("count", 1))
        await bot.wait_chat(chat, target, _timeout(body))
        events, truncated = bot.events_after(chat, after)
        return {"cursor": chat.cursor, "events": events, "truncated": truncated, "timed_out": chat.cursor < target}

    async def _c_faults(self, request: web.Request, bot: BotState) -> Any:
        return {m: [f.as_json() for f in q] for m, q in bot.faults.items()}

    async def _c_add_fault(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        delay = body.get("delay")
        retry_after = body.get("retry_after")
        apply = body.get("apply")
        fault = self.add_fault(
            str(body["method"]),
            count=int(body.get("count", 1)),
            status=_opt_int(body.get("status")),
            description=body.get("description"),
            delay=None if delay is None else float(delay),
            reset=bool(body.get("reset", False)),
            retry_after=_opt_int(retry_after),
            apply=None if apply is None else bool(apply),
            bot=bot.info.id,
        )
        return fault.as_json()

    async def _c_clear_faults(self, request: web.Request, bot: BotState) -> Any:
        self.clear_faults(bot.info.id)
        return {"ok": True}

    async def _c_duplicates(self, request: web.Request, bot: BotState) -> Any:
        body = await _body(request)
        self.duplicate_updates(int(body.get("count", 1)), bot.info.id)
        return {"duplicate_budget": bot.dup_budget}

    async def _c_rates(self, request: web.Request, bot: BotState) -> Any:
        if request.method == "POST":
            body = await _body(request)
            bot.set_rates(**body)
        return bot.stats()["rates"]

    async def _c_updates(self, request: web.Request, bot: BotState) -> Any:
        return {"pending": [u.json() for u in bot.pending], "webhook": bot.webhook.url if bot.webhook else None}


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Bot API parameters from the query string and the body (JSON, urlencoded or multipart)."""
    params: dict[str, Any] = dict(request.query) if request.query_string else {}
    if request.body_exists:
        ctype = request.content_type
        if ctype in _FORM_TYPES:
            form = await request.post()
            params.update(form.items())
        elif ctype == "application/json":
            try:
                data = await request.json()
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse JSON encoded request parameters") from None
            if isinstance(data, dict):
                params.update(data)
    return params


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise ControlError(400, "the body must be JSON") from None
    if not isinstance(data, dict):
        raise ControlError(400, "the body must be a JSON object")
    return data


def _opt_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _timeout(body: dict[str, Any]) -> float:
    return min(max(float(body.get("timeout", 10.0)), 0.0), 600.0)


def _user_media(bot: BotState, body: dict[str, Any]) -> tuple[str | None, Any, str | None]:
    """What a user sends besides text, as Bot API objects."""
    caption = body.get("caption")
    if "sticker" in body:
        spec = body["sticker"] or {}
        return (
            "sticker",
            bot.new_media(
                "sticker",
                {
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "emoji": spec.get("emoji", "👍"),
                    "file_size": int(spec.get("file_size", 20_000)),
                },
            ),
            None,
        )
    if "photo" in body:
        spec = body["photo"] or {}
        sizes = bot.new_photo(
            int(spec.get("file_size", 120_000)), int(spec.get("width", 1280)), int(spec.get("height", 960))
        )
        return "photo", sizes, caption
    if "voice" in body:
        spec = body["voice"] or {}
        return (
            "voice",
            bot.new_media(
                "voice",
                {
                    "duration": int(spec.get("duration", 3)),
                    "mime_type": "audio/ogg",
                    "file_size": int(spec.get("file_size", 9_000)),
                },
            ),
            caption,
        )
    if "location" in body:
        spec = body["location"]
        return "location", {"latitude": float(spec["latitude"]), "longitude": float(spec["longitude"])}, None
    if "contact" in body:
        spec = body["contact"]
        contact: dict[str, Any] = {"phone_number": str(spec["phone_number"]), "first_name": str(spec["first_name"])}
        if spec.get("last_name"):
            contact["last_name"] = str(spec["last_name"])
        if spec.get("user_id") is not None:
            contact["user_id"] = int(spec["user_id"])
        return "contact", contact, None
    return None, None, None
