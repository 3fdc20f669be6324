"""The Telegram Bot API emulator, driven by python-telegram-bot's own Bot and Application, judged by its record."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from sandbox.telegram import BotInfo, SandboxClient, SandboxError, SandboxTimeout, TelegramEmulator
from sandbox.telegram.formatting import EntityParseError, parse_html

TOKEN = "7000000001:TEST-token"
BOT_INFO = BotInfo(first_name="Trợ lý 06", username="tro_ly_06_bot")


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator({TOKEN: BOT_INFO}, webhook_retry_base=0.02, webhook_retry_max=0.1)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def sc(emu: TelegramEmulator) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(emu.base_url) as client:
        yield client


@pytest.fixture
async def bot(emu: TelegramEmulator) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=emu.api_url) as b:
        yield b


def keyboard(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in rows]
    )


def seconds(value: int | float | timedelta | None) -> float:
    """PTB 22 gives durations as int or timedelta depending on its PTB_TIMEDELTA setting."""
    assert value is not None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def wait_until_polling(emu: TelegramEmulator) -> None:
    """Wait until a getUpdates long poll is parked in the emulator."""
    async with asyncio.timeout(5):
        # the emulator has no event for "a long poll is parked": poll its state, bounded by the timeout
        while emu.bot().poller is None:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# ---------------------------------------------------------------------- HTML parse mode


@pytest.mark.parametrize(
    ("html", "text", "entities"),
    [
        ("plain", "plain", []),
        ("<b>Xin chào</b> bạn", "Xin chào bạn", [{"type": "bold", "offset": 0, "length": 8}]),
        ("😀 <i>x</i>", "😀 x", [{"type": "italic", "offset": 3, "length": 1}]),  # emoji = 2 UTF-16 units
        ("a &lt;b&gt; &amp; &quot; &#65; &#x1F600;", 'a <b> & " A 😀', []),
        ("&nbsp;stays", "&nbsp;stays", []),
        (
            '<a href="https://dichvucong.gov.vn">DVC</a>',
            "DVC",
            [{"type": "text_link", "offset": 0, "length": 3, "url": "https://dichvucong.gov.vn"}],
        ),
        (
            '<pre><code class="language-python">x = 1</code></pre>',
            "x = 1",
            [{"type": "pre", "offset": 0, "length": 5, "language": "python"}],
        ),
        (
            "<b>1<i>2</i></b>",
            "12",
            [{"type": "bold", "offset": 0, "length": 2}, {"type": "italic", "offset": 1, "length": 1}],
        ),
        ('<span class="tg-spoiler">s</span>', "s", [{"type": "spoiler", "offset": 0, "length": 1}]),
        ("<blockquote expandable>q</blockquote>", "q", [{"type": "expandable_blockquote", "offset": 0, "length": 1}]),
        ("<b></b>x", "x", []),
    ],
)
def test_parse_html_gives_telegram_text_and_entities(html: str, text: str, entities: list[dict[str, Any]]) -> None:
    assert parse_html(html) == (text, entities)


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("dòng<br>", 'Unsupported start tag "br" at byte offset 5'),  # byte offsets count UTF-8 bytes
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("x <b", "Unclosed start tag at byte offset 2"),
    ],
)
def test_parse_html_rejects_what_telegram_rejects(html: str, error: str) -> None:
    with pytest.raises(EntityParseError) as info:
        parse_html(html)
    assert str(info.value) == error


# ---------------------------------------------------------------------- transport and routing


async def test_get_me_describes_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.first_name, me.is_bot) == (7000000001, "tro_ly_06_bot", "Trợ lý 06", True)


async def test_unknown_token_is_401_and_unknown_method_404(emu: TelegramEmulator) -> None:
    async with httpx.AsyncClient(base_url=emu.base_url) as http:
        r = await http.post("/bot1:WRONG/getMe")
        assert (r.status_code, r.json()) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        r = await http.post(f"/bot{TOKEN}/sendSticker")
        assert (r.status_code, r.json()) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
        r = await http.get(f"/bot{TOKEN}/GETME")  # method names are case-insensitive
        assert r.json()["result"]["username"] == "tro_ly_06_bot"
    with pytest.raises(InvalidToken):
        async with Bot("1:WRONG", base_url=emu.api_url):
            pass  # initialize() calls getMe, which the emulator refuses


async def test_parameters_come_from_query_json_or_form(emu: TelegramEmulator, sc: SandboxClient) -> None:
    an = await sc.user(1001)
    async with httpx.AsyncClient(base_url=f"{emu.api_url}{TOKEN}") as http:
        r1 = await http.get("/sendMessage", params={"chat_id": "1001", "text": "query"})
        r2 = await http.post("/sendMessage", json={"chat_id": 1001, "text": "json"})
        markup = json.dumps({"inline_keyboard": [[{"text": "Có", "callback_data": "yes"}]]})
        r3 = await http.post("/sendMessage", data={"chat_id": "1001", "text": "form", "reply_markup": markup})
    assert [r.json()["ok"] for r in (r1, r2, r3)] == [True, True, True]
    got = await an.wait_for(count=3)
    assert [m.text for m in got] == ["query", "json", "form"]
    assert got[2].buttons == [[("Có", "yes")]]


# ---------------------------------------------------------------------- updates by polling


async def test_get_updates_confirms_by_offset_and_long_polls(
    emu: TelegramEmulator, sc: SandboxClient, bot: Bot
) -> None:
    an = await sc.user(1001, "An")
    sent = await an.command("start", "dossier_X")
    [update] = await bot.get_updates()
    assert update.update_id == sent.update_id
    assert update.message is not None
    assert update.message.text == "/start dossier_X"
    assert update.message.entities[0].type == "bot_command"
    assert update.message.entities[0].length == len("/start")
    assert update.message.from_user is not None
    assert update.message.from_user.language_code == "vi"
    # not confirmed yet: delivered again; confirmed with offset: gone
    assert [u.update_id for u in await bot.get_updates()] == [update.update_id]
    assert await bot.get_updates(offset=update.update_id + 1) == ()

    poll = asyncio.create_task(bot.get_updates(offset=update.update_id + 1, timeout=30))
    await wait_until_polling(emu)
    started = time.monotonic()
    await an.send("xin chào")
    [fresh] = await asyncio.wait_for(poll, timeout=5)
    assert time.monotonic() - started < 5  # answered on arrival, not at the end of the 30 s long poll
    assert fresh.message is not None
    assert fresh.message.text == "xin chào"

    started = time.monotonic()
    assert await bot.get_updates(offset=fresh.update_id + 1, timeout=timedelta(seconds=0.3)) == ()
    assert time.monotonic() - started >= 0.25


async def test_a_second_get_updates_ends_the_first_with_conflict(emu: TelegramEmulator, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=30))
    await wait_until_polling(emu)
    async with Bot(TOKEN, base_url=emu.api_url) as second_instance:
        assert await second_instance.get_updates() == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await first


async def test_allowed_updates_filters_what_the_bot_gets(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    assert await bot.get_updates(allowed_updates=["callback_query"]) == ()
    sent = await an.send("not wanted")
    assert sent.update_id is None
    msg = await bot.send_message(1001, "Chọn", reply_markup=keyboard([("Có", "g_yes")]))
    press = await an.press(msg.message_id, "Có")
    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [press.update_id]
    assert updates[0].callback_query is not None
    assert (await sc.stats())["counters"]["updates_filtered"] == 1


# ---------------------------------------------------------------------- messages, buttons, edits


async def test_html_message_with_keyboard_is_seen_pressed_and_answered(
    emu: TelegramEmulator, sc: SandboxClient, bot: Bot
) -> None:
    an = await sc.user(1001, "An")
    sent = await bot.send_message(
        1001,
        "<b>Kích hoạt VNeID</b> mức 2 &amp; OTP",
        parse_mode="HTML",
        reply_markup=keyboard([("Có", "g_yes"), ("Không", "g_no")], [("Hướng dẫn", "g_help")]),
        disable_notification=True,
        protect_content=True,
    )
    assert sent.text == "Kích hoạt VNeID mức 2 & OTP"
    assert sent.from_user is not None
    assert sent.from_user.id == 7000000001
    [seen] = await an.wait_for(count=1)
    assert (seen.message_id, seen.text, seen.parse_mode) == (sent.message_id, "Kích hoạt VNeID mức 2 & OTP", "HTML")
    assert seen.entities == [{"type": "bold", "offset": 0, "length": 15}]
    assert seen.buttons == [[("Có", "g_yes"), ("Không", "g_no")], [("Hướng dẫn", "g_help")]]

    press = await an.press(seen, 0, 1)
    assert press.data == "g_no"
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None
    assert (query.id, query.data, query.from_user.id) == (press.callback_query_id, "g_no", 1001)
    assert query.message is not None
    assert query.message.message_id == sent.message_id
    assert query.chat_instance

    assert await bot.answer_callback_query(query.id, text="Đã ghi nhận")
    with pytest.raises(BadRequest, match="Query is too old and response timeout expired or query id is invalid"):
        await bot.answer_callback_query(query.id)
    [answer] = await an.answers()
    assert (answer["callback_query_id"], answer["text"], answer["show_alert"]) == (query.id, "Đã ghi nhận", False)

    with pytest.raises(SandboxError) as no_button:
        await an.press(seen, "Không có nút này")
    assert no_button.value.status == 404


async def test_edits_are_recorded_and_unchanged_edits_refused(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    sent = await bot.send_message(1001, "Bước 1", reply_markup=keyboard([("Tiếp", "g_next")]))
    await bot.edit_message_text(
        "Bước 2", chat_id=1001, message_id=sent.message_id, reply_markup=keyboard([("Xong", "g_done")])
    )
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text(
            "Bước 2", chat_id=1001, message_id=sent.message_id, reply_markup=keyboard([("Xong", "g_done")])
        )
    # without reply_markup an edit removes the keyboard, as Telegram does
    await bot.edit_message_reply_markup(chat_id=1001, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(chat_id=1001, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=1001, message_id=999)

    new, first_edit, second_edit = await an.wait_for(count=3)
    assert (new.event, new.text, new.edited, new.buttons) == ("new", "Bước 1", False, [[("Tiếp", "g_next")]])
    assert (first_edit.event, first_edit.text, first_edit.edited) == ("edit", "Bước 2", True)
    assert first_edit.buttons == [[("Xong", "g_done")]]
    assert (second_edit.text, second_edit.buttons) == ("Bước 2", [])
    assert [m.text for m in an.inbox] == ["Bước 2"]  # one message, in its latest state

    record = await an.record()
    [message] = record["messages"]
    assert [h["text"] for h in message["history"]] == ["Bước 1", "Bước 2"]
    assert record["counters"]["sent"] == 1
    assert record["counters"]["edits"] == 2


async def test_bad_requests_carry_telegram_texts(sc: SandboxClient, bot: Bot) -> None:
    await sc.user(1001)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(424242, "x")
    with pytest.raises(BadRequest, match='Can\'t parse entities: unsupported start tag "br" at byte offset 1'):
        await bot.send_message(1001, "a<br>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(1001, "<b> </b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(1001, "x" * 4097)
    # 4096 characters after entity parsing are fine even when the HTML is longer
    await bot.send_message(1001, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(1001, "x", reply_markup=keyboard([("Quá dài", "d" * 65)]))
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(1001, "x", reply_to_message_id=999)
    record = await sc.chat_record(1001)
    assert [len(m["text"]) for m in record["messages"]] == [4096]  # refused messages were not delivered


async def test_photo_upload_resend_and_caption(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    first = await bot.send_photo(1001, b"\x89PNG not really", caption="<i>Mẫu tờ khai</i>", parse_mode="HTML")
    assert first.photo
    assert first.caption == "Mẫu tờ khai"
    assert first.caption_entities[0].type == "italic"
    again = await bot.send_photo(1001, first.photo[-1].file_id)
    assert again.photo[-1].file_id == first.photo[-1].file_id
    with pytest.raises(BadRequest, match="Wrong file identifier/http url specified"):
        await bot.send_photo(1001, "no-such-file")
    await bot.edit_message_caption(chat_id=1001, message_id=first.message_id, caption="Mẫu CT01")
    seen = await an.wait_for(count=3)
    assert [(m.event, m.caption, m.photo) for m in seen] == [
        ("new", "Mẫu tờ khai", first.photo[-1].file_id),
        ("new", None, first.photo[-1].file_id),
        ("edit", "Mẫu CT01", first.photo[-1].file_id),
    ]


async def test_delete_chat_action_commands_and_get_chat(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001, "An", username="an_nguyen")
    msg = await bot.send_message(1001, "tạm")
    assert await bot.send_chat_action(1001, "typing")
    assert await bot.delete_message(1001, msg.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(1001, msg.message_id)
    new, deleted = await an.wait_for(count=2)
    assert (new.deleted, deleted.event, deleted.deleted) == (False, "delete", True)
    record = await an.record()
    assert [a["action"] for a in record["chat_actions"]] == ["typing"]

    assert await bot.set_my_commands([("start", "Bắt đầu"), ("help", "Trợ giúp")], language_code="vi")
    assert [c.command for c in await bot.get_my_commands(language_code="vi")] == ["start", "help"]
    assert await bot.get_my_commands() == ()
    assert await bot.delete_my_commands(language_code="vi")
    assert await bot.get_my_commands(language_code="vi") == ()

    chat = await bot.get_chat(1001)
    assert (chat.id, chat.type, chat.username) == (1001, "private", "an_nguyen")


# ---------------------------------------------------------------------- Telegram's refusals


class FakeClock:
    """Flood control's time, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_rate_limits_answer_retry_after_and_refused_messages_are_not_delivered() -> None:
    clock = FakeClock()
    emulator = TelegramEmulator({TOKEN: BOT_INFO}, global_rate=4, per_chat_rate=1, per_chat_burst=3, clock=clock)
    async with emulator, SandboxClient(emulator.base_url) as sc, Bot(TOKEN, base_url=emulator.api_url) as bot:
        for uid in (1, 2, 3, 4):
            await sc.user(uid)
        for i in range(3):
            await bot.send_message(1, f"tin {i}")
        with pytest.raises(RetryAfter) as per_chat:
            await bot.send_message(1, "tin 3")
        assert seconds(per_chat.value.retry_after) == 1
        await bot.send_message(2, "khác")  # the 4th message this second: the global bucket is now empty
        with pytest.raises(RetryAfter):
            await bot.send_message(3, "global")
        # paid broadcast has its own, larger allowance
        await bot.send_message(3, "paid", allow_paid_broadcast=True)
        clock.now += 1.0  # one second later the chat and the global bucket have a token again
        await bot.send_message(1, "tin 3")
        record = await sc.chat_record(1)
        assert [m["text"] for m in record["messages"]] == ["tin 0", "tin 1", "tin 2", "tin 3"]
        assert record["counters"]["rate_limited"] == 1
        stats = await sc.stats()
        assert stats["counters"]["rate_limited"] == 2
        assert stats["counters"]["paid_messages"] == 1
        assert stats["statuses"]["429"] == 2


async def test_group_limit_is_per_minute() -> None:
    clock = FakeClock()
    emulator = TelegramEmulator({TOKEN: BOT_INFO}, group_rate_per_min=2, per_chat_burst=10, clock=clock)
    async with emulator, SandboxClient(emulator.base_url) as sc, Bot(TOKEN, base_url=emulator.api_url) as bot:
        member = await sc.user(1)
        group = await sc.group("Tổ 06", [member], chat_id=-500)
        await bot.send_message(group.chat_id, "1")
        await bot.send_message(group.chat_id, "2")
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(group.chat_id, "3")
        assert seconds(info.value.retry_after) == 30  # 2 per minute: one token every 30 s
        clock.now += 30
        await bot.send_message(group.chat_id, "3")
        assert [m.text for m in await group.wait_for(count=3)] == ["1", "2", "3"]


async def test_blocked_user_gives_forbidden_and_my_chat_member(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    await an.block()
    [update] = await bot.get_updates()
    member = update.my_chat_member
    assert member is not None
    assert (member.old_chat_member.status, member.new_chat_member.status) == ("member", "kicked")
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(1001, "x")
    # writing to the bot again unblocks it, as Telegram's apps do
    await an.send("/start")
    await bot.send_message(1001, "chào lại")
    record = await an.record()
    assert [m["text"] for m in record["messages"] if m["from_bot"]] == ["chào lại"]
    assert record["counters"]["forbidden"] == 1

    stranger = await sc.user(2002, started=False)
    with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
        await bot.send_message(stranger.id, "x")


async def test_migrated_group_raises_chat_migrated(sc: SandboxClient, bot: Bot) -> None:
    staff = await sc.user(11, "Cán bộ")
    group = await sc.group("Tổ công tác 06", [staff], chat_id=-100)
    new_id = await group.migrate()
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(-100, "x")
    assert info.value.new_chat_id == new_id
    await bot.send_message(new_id, "đã chuyển")
    [msg] = await group.wait_for(count=1)
    assert msg.text == "đã chuyển"
    updates = await bot.get_updates()
    migrations = [u.message for u in updates if u.message is not None]
    assert [(m.chat.id, m.migrate_to_chat_id, m.migrate_from_chat_id) for m in migrations] == [
        (-100, new_id, None),
        (new_id, None, -100),
    ]


async def test_group_privacy_mode_and_replies(sc: SandboxClient, bot: Bot) -> None:
    lan = await sc.user(11, "Lan")
    minh = await sc.user(12, "Minh")
    group = await sc.group("Tổ công tác 06", [lan, minh], chat_id=-200)
    await bot.get_updates(offset=-1)  # forget the my_chat_member of the bot being added
    plain = await group.send(lan, "chào cả nhà")
    assert plain.update_id is None  # a bot in privacy mode does not see plain group messages
    command = await group.command(minh, "status", "H22.38-240615-0001", bot_username="tro_ly_06_bot")
    other_bot = await group.command(minh, "start", bot_username="someone_else_bot")
    assert command.update_id is not None
    assert other_bot.update_id is None
    handover = await bot.send_message(-200, "Công dân 1001 cần hỗ trợ")
    reply = await group.send(lan, "Tôi nhận", reply_to=handover.message_id)
    assert reply.update_id is not None
    updates = await bot.get_updates(offset=-2)
    replied = updates[-1].message
    assert replied is not None
    assert replied.reply_to_message is not None
    assert replied.reply_to_message.message_id == handover.message_id
    assert replied.reply_to_message.from_user is not None
    assert replied.reply_to_message.from_user.is_bot


async def test_users_send_media_that_ptb_reads(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    await an.send_sticker("🙏")
    await an.send_photo(caption="CCCD mặt trước")
    await an.send_voice(4)
    await an.send_location(21.0285, 105.8542)
    await an.send_contact("0900000000")
    sent = await an.send("sai chính tả")
    await an.edit(sent, "đúng chính tả")
    updates = await bot.get_updates()
    messages = [u.message for u in updates[:5]]
    assert all(m is not None for m in messages)
    sticker, photo, voice, location, contact = (m for m in messages if m is not None)
    assert sticker.sticker is not None
    assert sticker.sticker.emoji == "🙏"
    assert photo.photo
    assert photo.caption == "CCCD mặt trước"
    assert voice.voice is not None
    assert seconds(voice.voice.duration) == 4
    assert location.location is not None
    assert location.location.latitude == pytest.approx(21.0285)
    assert contact.contact is not None
    assert contact.contact.user_id == 1001
    edited = updates[-1].edited_message
    assert edited is not None
    assert (edited.message_id, edited.text) == (sent.message_id, "đúng chính tả")


# ---------------------------------------------------------------------- webhook


class Receiver:
    """A tiny webhook endpoint: fails the first `fail` posts with 500, records the rest."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.failed = 0
        self.received: asyncio.Queue[tuple[str | None, dict[str, Any]]] = asyncio.Queue()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.failed < self.fail:
            self.failed += 1
            return web.Response(status=500)
        await self.received.put((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), body))
        return web.Response(text="ok")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def next(self) -> tuple[str | None, dict[str, Any]]:
        return await asyncio.wait_for(self.received.get(), timeout=10)


async def test_webhook_pushes_with_secret_and_retries(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    queued = await an.send("trước webhook")
    async with Receiver(fail=2) as receiver:
        assert await bot.set_webhook(receiver.url, secret_token="bi-mat_06")
        with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
            await bot.get_updates()
        secret, body = await receiver.next()
        assert secret == "bi-mat_06"
        assert body["update_id"] == queued.update_id
        assert body["message"]["text"] == "trước webhook"
        assert receiver.failed == 2  # the first two posts failed and were retried
        later = await an.send("sau webhook")
        _, body = await receiver.next()
        assert body["update_id"] == later.update_id
        info = await bot.get_webhook_info()
        assert info.url == receiver.url
        assert info.pending_update_count == 0
        assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    await an.send("lại polling")
    [update] = await bot.get_updates()
    assert update.message is not None
    assert update.message.text == "lại polling"


async def test_webhook_duplicate_delivery(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    async with Receiver() as receiver:
        await bot.set_webhook(receiver.url)
        await sc.duplicates(1)
        sent = await an.send("một lần")
        first = await receiver.next()
        second = await receiver.next()
        assert first[1]["update_id"] == second[1]["update_id"] == sent.update_id
        await bot.delete_webhook()


# ---------------------------------------------------------------------- faults


async def test_duplicate_delivery_by_get_updates(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    await sc.duplicates(1)
    sent = await an.send("chỉ một lần")
    [first] = await bot.get_updates()
    again = await bot.get_updates(offset=first.update_id + 1)
    assert [u.update_id for u in again] == [sent.update_id]  # delivered again although confirmed
    assert await bot.get_updates(offset=first.update_id + 1) == ()


async def test_injected_502_fails_calls_without_delivering(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    await sc.faults("sendMessage", status=502, count=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(1001, "thử lại")
    await bot.send_message(1001, "thử lại")
    [msg] = await an.wait_for(count=1)
    assert msg.text == "thử lại"
    record = await an.record()
    assert record["counters"]["sent"] == 1
    assert (await sc.stats())["statuses"]["502"] == 2


async def test_delayed_answer_times_out_but_the_message_arrives(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    await sc.faults("sendMessage", delay=1.0)
    with pytest.raises(TimedOut):
        await bot.send_message(1001, "trễ", read_timeout=0.2)
    [msg] = await an.wait_for(count=1, timeout=5)
    assert msg.text == "trễ"  # delivered: a retry would duplicate it


async def test_connection_reset_and_flood_storm(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    await sc.faults("sendMessage", reset=True)
    with pytest.raises(NetworkError):
        await bot.send_message(1001, "mất kết nối")
    await sc.faults("*", retry_after=7, count=2)
    for _ in range(2):
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(1001, "bão")
        assert seconds(info.value.retry_after) == 7
    await bot.send_message(1001, "bình thường")
    record = await an.record()
    assert [m["text"] for m in record["messages"]] == ["bình thường"]


async def test_wait_for_raises_with_what_arrived(sc: SandboxClient, bot: Bot) -> None:
    an = await sc.user(1001)
    await bot.send_message(1001, "chỉ một")
    with pytest.raises(SandboxTimeout) as info:
        await an.wait_for(count=2, timeout=0.2)
    assert [m.text for m in info.value.received] == ["chỉ một"]


async def test_memory_is_bounded_per_chat_but_counters_stay_exact() -> None:
    emulator = TelegramEmulator({TOKEN: BOT_INFO}, rate_limits=False, max_messages_per_chat=4)
    async with emulator, SandboxClient(emulator.base_url) as sc, Bot(TOKEN, base_url=emulator.api_url) as bot:
        await sc.user(1)
        for i in range(12):
            await bot.send_message(1, str(i))
        record = await sc.chat_record(1)
        assert len(record["messages"]) <= 6
        assert record["messages"][-1]["text"] == "11"
        assert record["counters"]["sent"] == 12


async def test_reset_forgets_everything(sc: SandboxClient, bot: Bot) -> None:
    await sc.user(1001)
    await bot.send_message(1001, "x")
    await sc.reset()
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(1001, "x")
    assert (await sc.stats())["counters"]["messages_sent"] == 0


# ---------------------------------------------------------------------- python-telegram-bot's Application


async def test_application_polling_receives_a_citizen_message(emu: TelegramEmulator, sc: SandboxClient) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(f"Đã nhận: <b>{update.message.text}</b>", parse_mode="HTML")

    app = Application.builder().token(TOKEN).base_url(emu.api_url).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    an = await sc.user(1001, "An")
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=10)
        await an.send("kich hoat vneid")
        [reply] = await an.wait_for(count=1, timeout=10)
        await app.updater.stop()
        await app.stop()
    assert reply.text == "Đã nhận: kich hoat vneid"
    assert reply.entities == [{"type": "bold", "offset": 9, "length": 15}]


async def test_standalone_process_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.telegram",
        "--port",
        "0",
        "--token",
        TOKEN,
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode()
        base_url = line.split(" listening on ")[1].split()[0]
        async with Bot(TOKEN, base_url=base_url + "/bot") as bot:
            assert (await bot.get_me()).id == 7000000001
    finally:
        proc.terminate()
        code = await asyncio.wait_for(proc.wait(), timeout=10)
    assert code == 0
