"""Bad input through the real bot, the emulator and the real Rasa server: generated Unicode, decomposed
Vietnamese, invisible characters, 4,096-character pastes, media where text was expected, junk commands and
callback data, HTML in names and texts, group chats, repeated presses. Every update gets a readable answer (or is
ignored on purpose) and none fails with an unhandled exception (the log scan fails on "update.failed")."""

from __future__ import annotations

import asyncio
import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from nlu.client import clean_text
from nlu.server import RasaServer
from sandbox.telegram.client import SandboxClient, SandboxTimeout, SimMessage, SimUser
from store.db import unit_of_work
from store.models import ProcessedUpdate
from store.models_reminders import Reminder
from tests.support.bots import BotRunner

# Random examples on every run, CI included: that is how new bugs are found.
EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)
PHOTO_WARNING = "⚠️ Mình chỉ đọc được tin nhắn chữ và không cần ảnh giấy tờ. Đừng gửi ảnh thẻ căn cước"
NOT_TEXT = "Mình chỉ đọc được tin nhắn chữ."
STALE = "Nút này đã cũ hoặc không còn dùng được."
EMPTY = "Tin nhắn trống."
# Vietnamese letters (composed), the combining tone marks that decomposed input carries, invisible characters
# that keyboards and copy-paste leave, emoji, and plain ASCII.
VI = "aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
MARKS = "\u0300\u0301\u0303\u0309\u0323\u0302\u0306\u031b"
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
TEXTS = st.text(
    alphabet=st.one_of(
        st.sampled_from(VI + VI.upper() + MARKS + INVISIBLE + " \n\t0123456789.,?!<>&\"'/"),
        st.sampled_from("😀🙏👍🇻🇳❤️‍🔥"),
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
    ),
    min_size=1,
    max_size=300,
)
PHRASES = [
    "lệ phí làm hộ chiếu",
    "kích hoạt tài khoản định danh điện tử",
    "không nhận được mã OTP",
    "đăng ký thường trú cần giấy tờ gì",
    "quên mật khẩu VNeID",
    "làm lý lịch tư pháp ở đâu",
    "xin chào",
]


def samples(strategy: st.SearchStrategy[Any]) -> list[Any]:
    """Up to 30 generated values (collected first, then sent through the bot one by one)."""
    found: list[Any] = []

    @EXAMPLES
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found


async def answer(user: SimUser, wait_s: float = 20) -> SimMessage:
    [msg] = await user.wait_for(count=1, timeout=wait_s)
    assert msg.body.strip(), "an empty message"
    assert "Traceback" not in msg.body and "Exception" not in msg.body
    return msg


async def all_answers(user: SimUser, idle_s: float = 2.5) -> list[SimMessage]:
    got: list[SimMessage] = []
    while True:
        try:
            got += await user.wait_for(count=1, timeout=idle_s)
        except SandboxTimeout:
            return got


def readable(msg: SimMessage) -> tuple[str, list[str]]:
    return msg.body, msg.labels


async def test_generated_text_always_gets_an_answer(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, flood_messages_per_minute=1000)
    texts = samples(TEXTS)
    texts += ["x" * 4096, "lệ phí " * 585, " ", "\u200b\u200b", "\n\n\t", "🙏" * 100]
    user = await sandbox.user(7001, first_name="An", language_code="vi")
    for i, text in enumerate(texts):
        await user.send(text)
        try:
            await answer(user)
        except SandboxTimeout:
            raise AssertionError(f"no answer to example {i}: {text!r}") from None
        await all_answers(user, idle_s=0.3)  # a reply split in two parts: read the rest


async def test_decomposed_and_invisible_characters_read_like_composed_text(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url, flood_messages_per_minute=1000)
    words = samples(st.lists(st.sampled_from(PHRASES), min_size=1, max_size=1).map(lambda x: x[0]))
    for i, phrase in enumerate(dict.fromkeys(words + PHRASES)):
        nfd = unicodedata.normalize("NFD", phrase)
        zw = "\u200b".join(phrase[j : j + 3] for j in range(0, len(phrase), 3))
        assert nfd != phrase and clean_text(nfd) == clean_text(zw) == phrase
        replies = []
        for k, variant in enumerate((phrase, nfd, zw)):
            user = await sandbox.user(7100 + 3 * i + k, first_name="An", language_code="vi")
            await user.send(variant)
            replies.append([readable(m) for m in [await answer(user), *await all_answers(user, idle_s=1.0)]])
        assert replies[0] == replies[1] == replies[2], phrase


async def test_media_edits_and_junk_commands(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    runtime = await bots.start(db_url, flood_messages_per_minute=1000)
    user = await sandbox.user(7201, first_name="An", language_code="vi")
    for send, says in (
        (user.send_sticker(), NOT_TEXT),
        (user.send_photo(), PHOTO_WARNING),  # a photo is often of papers: never send those in a chat
        (user.send_photo(caption="ảnh cccd đây"), PHOTO_WARNING),
        (user.send_voice(), NOT_TEXT),
        (user.send_location(21.03, 105.85), NOT_TEXT),
        (user.send_contact("0912345678"), NOT_TEXT),
    ):
        await send
        reply = await answer(user)
        assert reply.body.startswith(says) and reply.buttons, reply.body
    junk = samples(st.text(min_size=1, max_size=80).filter(lambda s: s.strip()))
    for i, arg in enumerate(junk):
        name = ("start", "lang", "help", "menu", "forget", "privacy", "nosuch", "START")[i % 8]
        await user.command(name, arg)
        try:
            await answer(user)
        except SandboxTimeout:
            raise AssertionError(f"no answer to /{name} {arg!r}") from None
        await all_answers(user, idle_s=0.3)
    await all_answers(user, idle_s=2.0)  # a late second part of the last answer
    # An edited message is ignored on purpose: the citizen's next message is answered as usual.
    sent = await user.send("xin chào")
    await answer(user)
    edit_id = await user.edit(sent, "lệ phí hộ chiếu")
    assert edit_id is not None
    await user.command("menu")
    assert (await answer(user)).buttons
    assert await all_answers(user, idle_s=1.0) == []
    async with unit_of_work(runtime.sessions) as s:
        assert await s.get(ProcessedUpdate, edit_id) is None


async def test_forged_and_stale_callback_data_get_the_menu(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    await bots.start(db_url, flood_messages_per_minute=1000, flood_buttons_per_minute=1000)
    user = await sandbox.user(7301, first_name="An", language_code="vi")
    await user.command("menu")
    menu = await answer(user)
    forged = samples(st.one_of(st.text(min_size=1, max_size=64), st.binary(min_size=1, max_size=40).map(bytes.hex)))
    forged += ["c_lang|xx", "rm_cx|not-a-number", "pv_yes|" + "9" * 50, "g_done|level1|99", "|||", "c_pick"]
    forged = [d for d in forged if len(d.encode()) <= 64]  # Telegram refuses longer data: no client sends it
    stale = 0
    for data in forged:
        await sandbox.call(
            "POST",
            f"/_sandbox/users/{user.id}/press",
            {"chat_id": user.id, "message_id": menu.message_id, "forged": data},
        )
        replies = [await answer(user), *await all_answers(user, idle_s=0.3)]
        # Telegram lets a bot send about one message a second to one chat; pressing faster than that tests the
        # flood limits (known gap: when PTB's limiter runs out of retries the answer is dropped), not the payload.
        await asyncio.sleep(1.0)
        # "This button is old" and the menu, or what the owning capability says of a bad argument: never a
        # crash (the log scan) and never silence.
        assert replies[0].buttons or replies[0].body, data
        stale += replies[0].body.startswith(STALE)
    assert stale >= len(forged) // 2  # most random payloads are no known action at all


async def test_html_in_names_and_texts_is_escaped(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url)
    name = '<b>Ấn</b> & <a href="http://x">y</a>'
    user = await sandbox.user(7401, first_name=name, language_code="vi")
    await user.command("start")
    welcome = await answer(user)
    assert name in welcome.body  # shown literally, not as bold text or a link
    assert not any(e.get("type") in ("bold", "text_link") and e.get("url") == "http://x" for e in welcome.entities)
    await all_answers(user, idle_s=0.5)
    await user.send("<script>alert(1)</script> <b>hộ chiếu</b> &amp;")
    replies = [await answer(user), *await all_answers(user, idle_s=1.0)]
    for reply in replies:  # where the bot quotes the citizen, it quotes the characters typed
        if "alert(1)" in reply.body:
            assert "<script>alert(1)</script>" in reply.body


async def test_group_chats_are_ignored_unless_configured(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    runtime = await bots.start(db_url)
    member = await sandbox.user(7501, first_name="An", language_code="vi")
    group = await sandbox.group("Nhóm bạn bè", members=[member])
    sent = await group.send(member, "xin chào bot")
    cmd = await group.command(member, "menu")
    await member.command("menu")  # a private message after the two group ones
    assert (await answer(member)).buttons
    for _ in range(100):  # the bot has taken every update off the queue
        if not await sandbox.pending_updates():
            break
        await asyncio.sleep(0.05)
    assert await group.read() == []
    async with unit_of_work(runtime.sessions) as s:
        for update_id in (sent.update_id, cmd.update_id):
            if update_id is not None:
                assert await s.get(ProcessedUpdate, update_id) is None
    await bots.stop(runtime)
    await bots.start(db_url, answer_in_groups=True)
    await group.command(member, "menu")
    [reply] = await group.wait_for(count=1, timeout=20)
    assert reply.buttons


async def test_fast_repeated_presses_take_effect_once(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    user = await sandbox.user(7601, first_name="An", language_code="vi")
    await user.send("nhắc tôi 8 giờ sáng mai đi nộp giấy tờ")
    confirm = None
    for msg in [await answer(user), *await all_answers(user, idle_s=1.0)]:
        if "Đúng" in msg.labels:
            confirm = msg
    assert confirm is not None
    # Five taps before the bot's edit reaches the citizen's screen (sent together: one after another, the bot now
    # answers the first before the second arrives, and the emulator refuses a press on a button already gone).
    await asyncio.gather(*(user.press(confirm, "Đúng") for _ in range(5)))
    replies = [await answer(user), *await all_answers(user, idle_s=2.0)]
    assert len(replies) >= 1
    async with unit_of_work(runtime.sessions) as s:
        count = await s.scalar(select(func.count()).select_from(Reminder).where(Reminder.user_id == user.id))
    assert count == 1
