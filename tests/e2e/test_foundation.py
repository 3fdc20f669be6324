"""End to end: a simulated citizen talks to the real PTB Application over HTTP through the Telegram emulator,
understood by the real Rasa server; we assert on what the citizen received and what the database holds."""

from __future__ import annotations

from sqlalchemy import func, select

from nlu.server import RasaServer
from sandbox.telegram.client import SandboxClient, SimMessage
from store.db import unit_of_work
from store.models import NluReview, User
from tests.support.bots import BotRunner

WELCOME_VI = "Xin chào"
MENU_VI = "🪪 Tài khoản VNeID"


async def replies(user: object, count: int = 1) -> list[SimMessage]:
    return await user.wait_for(count=count, timeout=15)  # type: ignore[attr-defined]


async def test_start_greets_in_vietnamese_with_menu(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    an = await sandbox.user(2001, first_name="An", language_code="vi")
    await an.command("start")
    welcome, menu = await replies(an, 2)
    assert welcome.body.startswith("Xin chào An!")
    assert "VNeID" in welcome.body
    assert "/privacy" in menu.body  # the short privacy notice comes with the menu
    assert "🇬🇧 English" in menu.labels
    async with unit_of_work(runtime.sessions) as s:
        row = await s.get(User, 2001)
        assert row is not None and row.lang == "vi"


async def test_greetings_are_understood_in_three_ways_of_typing(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url)
    binh = await sandbox.user(2002, first_name="Bình", language_code="vi")
    for text in ("xin chào", "xin chao", "chào bạn"):
        await binh.send(text)
        [reply] = await replies(binh)
        assert reply.body.startswith("Xin chào Bình!"), (text, reply.body)
        assert "🇬🇧 English" in reply.labels
    emily = await sandbox.user(2003, first_name="Emily", language_code="vi")
    await emily.send("hello")
    [reply] = await replies(emily)
    assert reply.body.startswith("Hello Emily!")
    assert "🇻🇳 Tiếng Việt" in reply.labels


async def test_unknown_message_gets_polite_fallback_and_is_queued_for_review(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    chi = await sandbox.user(2004, first_name="Chi", language_code="vi")
    await chi.send("qwzx plorf 0912345678 vvv")
    [reply] = await replies(chi)
    assert "chưa hiểu" in reply.body
    assert reply.buttons, "the fallback shows the menu"
    async with unit_of_work(runtime.sessions) as s:
        rows = (await s.execute(select(NluReview))).scalars().all()
    assert [r.reason for r in rows] == ["fallback"]
    assert "0912345678" not in rows[0].text and "[phone]" in rows[0].text


async def test_menu_button_switches_language_and_persists(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    dung = await sandbox.user(2005, first_name="Dũng", language_code="vi")
    await dung.command("menu")
    [menu] = await replies(dung)
    await dung.press(menu, "🇬🇧 English")
    [done] = await replies(dung)
    assert done.body.startswith("Switched to English")
    assert "🇻🇳 Tiếng Việt" in done.labels
    async with unit_of_work(runtime.sessions) as s:
        row = await s.get(User, 2005)
        assert row is not None and row.lang == "en"


async def test_nlu_down_keeps_commands_and_buttons_working(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    await bots.start(db_url, rasa_url="http://127.0.0.1:9")  # nothing listens there
    giang = await sandbox.user(2006, first_name="Giang", language_code="vi")
    await giang.send("kich hoat vneid the nao")
    [reply] = await replies(giang)
    assert "tạm thời không đọc được" in reply.body
    await giang.press(reply, "🇬🇧 English")
    [switched] = await replies(giang)
    assert switched.body.startswith("Switched to English")
    await giang.command("start")
    welcome, _menu = await replies(giang, 2)
    assert welcome.body.startswith("Hello Giang!")


async def test_redelivered_update_is_answered_once(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    ha = await sandbox.user(2007, first_name="Hà", language_code="vi")
    await sandbox.duplicates(1)  # the next update is delivered twice by getUpdates
    await ha.command("help")
    [reply] = await replies(ha)
    assert "Mình có thể" in reply.body
    await ha.command("menu")  # a later update still flows, and nothing else arrived in between
    received = await replies(ha)
    assert [m.body for m in received] == ["Bạn muốn làm gì?"]
    async with unit_of_work(runtime.sessions) as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 1


async def test_forged_callback_gets_the_menu(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    await bots.start(db_url)
    khoa = await sandbox.user(2008, first_name="Khoa", language_code="vi")
    await khoa.command("menu")
    [menu] = await replies(khoa)
    forged = {"message_id": menu.message_id, "forged": "__import__('os').system('x')"}
    await sandbox.call("POST", "/_sandbox/users/2008/press", forged)
    [reply] = await replies(khoa)
    assert reply.body.startswith("Nút này đã cũ")
