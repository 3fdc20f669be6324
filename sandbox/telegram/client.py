"""Async client for the Telegram emulator's control API: simulated citizens and staff groups.

    async with SandboxClient("http://127.0.0.1:8081") as sc:
        an = await sc.user(1001, first_name="An", language_code="vi")
        await an.command("start", "dossier_X")
        [welcome] = await an.wait_for(count=1, timeout=10)
        await an.press(welcome, "Tra cứu hồ sơ")
        staff = await sc.group("Tổ công tác 06", members=[an])

Tests, benchmarks and the terminal chat use it; it speaks HTTP, so the emulator may run in another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Press", "SandboxClient", "SandboxError", "SandboxTimeout", "Sent", "SimGroup", "SimMessage", "SimUser"]


class SandboxError(Exception):
    """The control API refused a call (unknown user, no such button, ...)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class SandboxTimeout(TimeoutError):
    """Fewer messages arrived than awaited; `received` holds those that did."""

    def __init__(self, message: str, received: list[SimMessage]) -> None:
        super().__init__(message)
        self.received = received


@dataclass(frozen=True, slots=True)
class SimMessage:
    """A message the bot sent to a chat, as the user sees it (after the event `event`)."""

    message_id: int
    chat_id: int
    text: str | None
    buttons: list[list[tuple[str, str]]] = field(default_factory=list)  # rows of (label, callback data or URL)
    edited: bool = False
    deleted: bool = False
    event: str = "state"  # "new" | "edit" | "delete" | "state"
    caption: str | None = None
    parse_mode: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    photo: str | None = None  # file_id of the largest size
    reply_to_message_id: int | None = None
    date: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def body(self) -> str:
        """The text, or the caption of a photo."""
        return self.text if self.text is not None else (self.caption or "")

    @property
    def labels(self) -> list[str]:
        return [label for row in self.buttons for label, _ in row]

    def button(self, label: str) -> str | None:
        """The callback data (or URL) of the button with this label."""
        for row in self.buttons:
            for text, value in row:
                if text == label:
                    return value
        return None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> SimMessage:
        markup = event.get("reply_markup") or {}
        rows = markup.get("inline_keyboard") or []
        buttons = [
            [(str(b.get("text", "")), str(b.get("callback_data", b.get("url", "")))) for b in row] for row in rows
        ]
        media = event.get("media")
        photo = media[-1]["file_id"] if event.get("media_kind") == "photo" and media else None
        return cls(
            message_id=int(event["message_id"]),
            chat_id=int(event["chat_id"]),
            text=event.get("text"),
            buttons=buttons,
            edited=bool(event.get("edited")),
            deleted=bool(event.get("deleted")),
            event=str(event.get("event", "state")),
            caption=event.get("caption"),
            parse_mode=event.get("parse_mode"),
            entities=list(event.get("entities") or []),
            photo=photo,
            reply_to_message_id=event.get("reply_to_message_id"),
            date=int(event.get("date") or 0),
            raw=event,
        )


@dataclass(frozen=True, slots=True)
class Sent:
    """A message a simulated user sent; `update_id` is None when the bot does not get it (privacy mode)."""

    message_id: int
    chat_id: int
    text: str | None
    update_id: int | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Press:
    """What pressing a button did: a callback query for the bot, or a URL the app would open."""

    callback_query_id: str | None
    data: str | None
    update_id: int | None
    url: str | None = None


def _message_id(message: SimMessage | Sent | int) -> int:
    return message if isinstance(message, int) else message.message_id


class _ChatView:
    """What one chat received from the bot, read incrementally through a cursor."""

    def __init__(self, client: SandboxClient, chat_id: int) -> None:
        self._client = client
        self.chat_id = chat_id
        self._cursor = 0
        self._inbox: dict[int, SimMessage] = {}

    @property
    def inbox(self) -> list[SimMessage]:
        """Every bot message read so far, in the state last read (edits applied, deletions flagged)."""
        return list(self._inbox.values())

    @property
    def last(self) -> SimMessage | None:
        return next(reversed(self._inbox.values()), None)

    def _absorb(self, data: dict[str, Any]) -> list[SimMessage]:
        self._cursor = int(data["cursor"])
        out = []
        for event in data["events"]:
            if event.get("forgotten"):
                continue
            msg = SimMessage.from_event(event)
            self._inbox[msg.message_id] = msg
            out.append(msg)
        return out

    # the emulator does the waiting (a long poll), so the time limit is a parameter of the call
    async def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[SimMessage]:  # noqa: ASYNC109
        """New messages, edits and deletions since the last read; waits until `count` arrived.

        Raises SandboxTimeout (with what did arrive) when fewer than `count` came within `timeout` s.
        """
        data = await self._client.call(
            "POST",
            f"/_sandbox/chats/{self.chat_id}/wait",
            {"after": self._cursor, "count": count, "timeout": timeout},
            read_timeout=timeout + 10.0,
        )
        received = self._absorb(data)
        if len(received) < count:
            raise SandboxTimeout(
                f"chat {self.chat_id}: expected {count} message(s) within {timeout} s, got {len(received)}: "
                + "; ".join(repr(m.body[:60]) for m in received),
                received,
            )
        return received

    async def read(self) -> list[SimMessage]:
        """What arrived since the last read, without waiting."""
        return self._absorb(
            await self._client.call("GET", f"/_sandbox/chats/{self.chat_id}/events?after={self._cursor}")
        )

    async def record(self) -> dict[str, Any]:
        """The emulator's full record of this chat (messages with history, answers, actions, counters)."""
        result: dict[str, Any] = await self._client.call("GET", f"/_sandbox/chats/{self.chat_id}")
        return result

    async def answers(self) -> list[dict[str, Any]]:
        """The bot's answers to callback queries from this chat."""
        return list((await self.record())["callback_answers"])

    async def _send(self, sender_id: int, payload: dict[str, Any]) -> Sent:
        payload["chat_id"] = self.chat_id
        data = await self._client.call("POST", f"/_sandbox/users/{sender_id}/send", payload)
        message = data["message"]
        return Sent(
            message_id=int(message["message_id"]),
            chat_id=self.chat_id,
            text=message.get("text"),
            update_id=data.get("update_id"),
            raw=message,
        )

    async def _press(
        self, sender_id: int, message: SimMessage | int, label_or_row: str | int, col: int | None
    ) -> Press:
        payload: dict[str, Any] = {"chat_id": self.chat_id, "message_id": _message_id(message)}
        if isinstance(label_or_row, str):
            payload["label"] = label_or_row
        else:
            if col is None:
                raise ValueError("press(message, row, col) needs both row and col")
            payload["row"], payload["col"] = label_or_row, col
        data = await self._client.call("POST", f"/_sandbox/users/{sender_id}/press", payload)
        return Press(
            callback_query_id=data.get("callback_query_id"),
            data=data.get("data"),
            update_id=data.get("update_id"),
            url=data.get("url"),
        )


class SimUser(_ChatView):
    """A citizen in a private chat with the bot."""

    def __init__(self, client: SandboxClient, info: dict[str, Any]) -> None:
        super().__init__(client, int(info["id"]))
        self.id = int(info["id"])
        self.first_name = str(info.get("first_name", ""))
        self.language_code: str | None = info.get("language_code")
        self.info = info

    async def send(self, text: str, *, reply_to: SimMessage | Sent | int | None = None) -> Sent:
        payload: dict[str, Any] = {"text": text}
        if reply_to is not None:
            payload["reply_to_message_id"] = _message_id(reply_to)
        return await self._send(self.id, payload)

    async def command(self, name: str, arg: str | None = None) -> Sent:
        """Send `/name arg` (Telegram marks it with a bot_command entity)."""
        return await self.send(f"/{name}" + (f" {arg}" if arg else ""))

    async def send_sticker(self, emoji: str = "👍") -> Sent:
        return await self._send(self.id, {"sticker": {"emoji": emoji}})

    async def send_photo(self, caption: str | None = None) -> Sent:
        return await self._send(self.id, {"photo": {}, "caption": caption})

    async def send_voice(self, duration: int = 3) -> Sent:
        return await self._send(self.id, {"voice": {"duration": duration}})

    async def send_location(self, latitude: float, longitude: float) -> Sent:
        return await self._send(self.id, {"location": {"latitude": latitude, "longitude": longitude}})

    async def send_contact(self, phone_number: str, first_name: str | None = None) -> Sent:
        contact = {"phone_number": phone_number, "first_name": first_name or self.first_name, "user_id": self.id}
        return await self._send(self.id, {"contact": contact})

    async def edit(self, message: Sent | int, text: str) -> int | None:
        """Edit one of the user's own messages; returns the edited_message update id."""
        data = await self._client.call(
            "POST",
            f"/_sandbox/users/{self.id}/edit",
            {"chat_id": self.chat_id, "message_id": _message_id(message), "text": text},
        )
        update_id: int | None = data.get("update_id")
        return update_id

    async def press(self, message: SimMessage | int, label_or_row: str | int, col: int | None = None) -> Press:
        """Press a button by its label (`press(msg, "Có")`) or position (`press(msg, 0, 1)`)."""
        return await self._press(self.id, message, label_or_row, col)

    async def block(self) -> None:
        await self._client.call("POST", f"/_sandbox/users/{self.id}/block")

    async def unblock(self) -> None:
        await self._client.call("POST", f"/_sandbox/users/{self.id}/unblock")

    async def deactivate(self) -> None:
        await self._client.call("POST", f"/_sandbox/users/{self.id}/deactivate")


class SimGroup(_ChatView):
    """A group chat with the bot (e.g. the staff group): members send, reply and press buttons."""

    def __init__(self, client: SandboxClient, info: dict[str, Any]) -> None:
        super().__init__(client, int(info["id"]))
        self.title = str(info.get("title", ""))
        self.info = info

    async def send(self, member: SimUser | int, text: str, *, reply_to: SimMessage | Sent | int | None = None) -> Sent:
        payload: dict[str, Any] = {"text": text}
        if reply_to is not None:
            payload["reply_to_message_id"] = _message_id(reply_to)
        return await self._send(_user_id(member), payload)

    async def command(
        self, member: SimUser | int, name: str, arg: str | None = None, *, bot_username: str = ""
    ) -> Sent:
        """`/name@bot_username arg` when a username is given (how group members address one bot)."""
        target = f"@{bot_username}" if bot_username else ""
        return await self.send(member, f"/{name}{target}" + (f" {arg}" if arg else ""))

    async def press(
        self, member: SimUser | int, message: SimMessage | int, label_or_row: str | int, col: int | None = None
    ) -> Press:
        return await self._press(_user_id(member), message, label_or_row, col)

    async def add(self, member: SimUser | int) -> None:
        await self._client.call("POST", f"/_sandbox/groups/{self.chat_id}/members", {"user_id": _user_id(member)})

    async def migrate(self) -> int:
        """Upgrade to a supergroup; this object then follows the new chat. Returns the new chat id."""
        data = await self._client.call("POST", f"/_sandbox/groups/{self.chat_id}/migrate", {})
        self.chat_id = int(data["migrate_to_chat_id"])
        self._cursor = 0
        self.info = data["chat"]
        return self.chat_id

    async def kick_bot(self, by: SimUser | int | None = None) -> None:
        payload = {} if by is None else {"by": _user_id(by)}
        await self._client.call("POST", f"/_sandbox/groups/{self.chat_id}/kick_bot", payload)


def _user_id(member: SimUser | int) -> int:
    return member if isinstance(member, int) else member.id


class SandboxClient:
    """The control API of one emulator (`base_url` is the server root, not the `/bot` URL)."""

    def __init__(
        self,
        base_url: str,
        *,
        bot: int | None = None,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._owns_client = client is None
        self._http = client or httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout, connect=5.0)
        )
        self._params = {"bot": str(bot)} if bot is not None else None

    async def __aenter__(self) -> SandboxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def call(
        self, verb: str, path: str, payload: dict[str, Any] | None = None, *, read_timeout: float | None = None
    ) -> Any:
        """One control-API call; raises SandboxError on a 4xx/5xx answer."""
        extra: dict[str, Any] = {}
        if read_timeout is not None:
            extra["timeout"] = httpx.Timeout(read_timeout, connect=5.0)
        response = await self._http.request(verb, path, json=payload, params=self._params, **extra)
        if response.status_code >= 400:
            try:
                reason = str(response.json().get("error", response.text))
            except ValueError:
                reason = response.text
            raise SandboxError(response.status_code, reason)
        return response.json()

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", "/_sandbox/health")
        return result

    async def user(
        self,
        user_id: int,
        first_name: str = "An",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "vi",
        started: bool = True,
    ) -> SimUser:
        """Create (or refresh) a citizen; `started=False`: never talked to the bot (sending to them gets 403)."""
        info = await self.call(
            "POST",
            "/_sandbox/users",
            {
                "id": user_id,
                "first_name": first_name,
                "last_name": last_name,
                "username": username,
                "language_code": language_code,
                "started": started,
            },
        )
        return SimUser(self, info)

    async def users_bulk(
        self, first_id: int, count: int, *, first_name: str = "User", language_code: str | None = "vi"
    ) -> int:
        """Create users first_id .. first_id+count-1 in one call (for benchmarks)."""
        data = await self.call(
            "POST",
            "/_sandbox/users/bulk",
            {"first_id": first_id, "count": count, "first_name": first_name, "language_code": language_code},
            read_timeout=300.0,
        )
        return int(data["created"])

    def sim_user(self, user_id: int, first_name: str = "User") -> SimUser:
        """A handle on a user that already exists in the emulator (e.g. made by users_bulk)."""
        return SimUser(self, {"id": user_id, "first_name": first_name})

    async def group(
        self,
        title: str,
        members: list[SimUser | int],
        *,
        chat_id: int | None = None,
        supergroup: bool = False,
        bot_admin: bool = False,
    ) -> SimGroup:
        info = await self.call(
            "POST",
            "/_sandbox/groups",
            {
                "id": chat_id,
                "title": title,
                "members": [_user_id(m) for m in members],
                "type": "supergroup" if supergroup else "group",
                "bot_admin": bot_admin,
            },
        )
        return SimGroup(self, info)

    async def faults(
        self,
        method: str = "sendMessage",
        *,
        status: int | None = None,
        count: int = 1,
        delay: float | None = None,
        reset: bool = False,
        retry_after: int | None = None,
        apply: bool | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Make the next `count` calls of `method` ("*" = any) fail: with `status` (default 502 Bad Gateway),
        `delay` s late, by a dropped connection (`reset`) or 429 (`retry_after`)."""
        payload: dict[str, Any] = {"method": method, "count": count, "reset": reset}
        for key, value in (
            ("status", status),
            ("delay", delay),
            ("retry_after", retry_after),
            ("apply", apply),
            ("description", description),
        ):
            if value is not None:
                payload[key] = value
        result: dict[str, Any] = await self.call("POST", "/_sandbox/faults", payload)
        return result

    async def clear_faults(self) -> None:
        await self.call("DELETE", "/_sandbox/faults")

    async def duplicates(self, count: int = 1) -> None:
        """Deliver each of the next `count` updates twice."""
        await self.call("POST", "/_sandbox/duplicates", {"count": count})

    async def rates(self, **changes: float | int | bool) -> dict[str, Any]:
        """Read or change the flood limits (enabled, global_rate, per_chat_rate, per_chat_burst, ...)."""
        result: dict[str, Any] = await self.call("POST", "/_sandbox/rates", dict(changes))
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", "/_sandbox/stats")
        return result

    async def wait_counter(self, counter: str, at_least: int, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        """Wait until a stats counter (e.g. "messages_sent") reaches `at_least`; returns its value."""
        data = await self.call(
            "POST",
            "/_sandbox/wait",
            {"counter": counter, "at_least": at_least, "timeout": timeout},
            read_timeout=timeout + 10.0,
        )
        return int(data["value"])

    async def chat_record(self, chat_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"/_sandbox/chats/{chat_id}")
        return result

    async def pending_updates(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/_sandbox/updates"))["pending"])

    async def reset(self) -> None:
        await self.call("POST", "/_sandbox/reset")
