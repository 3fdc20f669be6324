"""End to end, the assembled assistant on VNeID guides, procedures and ID-card renewal: the real PTB Application
with every capability, the real Rasa server where text is typed, the Telegram emulator over HTTP."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from nlu.server import RasaServer
from sandbox.telegram.client import SandboxClient, SimMessage, SimUser
from store.db import unit_of_work
from store.models import User
from store.models_guides import GuideProgress, RenewalDialogue
from store.models_reminders import Reminder
from tests.support.bots import BotRunner

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DONE, FAIL, BACK_TO = "✅ Xong", "❌ Không được", "↩️ Quay lại bước"
LEVEL1 = "Đăng ký VNeID mức 1"


async def one(user: SimUser, wait_s: float = 15) -> SimMessage:
    [msg] = await user.wait_for(count=1, timeout=wait_s)
    return msg


def step_of(msg: SimMessage, title: str) -> int:
    """The step number in a guide message's header ("<title> — Bước n/total")."""
    head = msg.body.split("\n")[0] if title in msg.body.split("\n")[0] else msg.body
    assert title in head, msg.body
    for marker in ("Bước ", "Step "):
        if marker in head:
            return int(head.split(marker, 1)[1].split("/")[0].split(" ")[0])
    raise AssertionError(f"no step header in {msg.body!r}")


async def open_level1(user: SimUser) -> SimMessage:
    await user.command("menu")
    menu = await one(user)
    await user.press(menu, "🪪 Tài khoản VNeID")
    info = await one(user)
    assert "VNeID" in info.body and "📲 Đăng ký mức 1" in info.labels
    await user.press(info, "📲 Đăng ký mức 1")
    first = await one(user)
    assert step_of(first, LEVEL1) == 1 and "Bước 1/6" in first.body
    return first


async def test_level1_guide_is_walked_to_its_end_by_buttons(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    runtime = await bots.start(db_url)
    an = await sandbox.user(5001, first_name="An", language_code="vi")
    msg = await open_level1(an)
    for n in range(1, 7):
        assert f"Bước {n}/6" in msg.body, msg.body
        assert msg.labels[0] == DONE and "☰ Menu" in msg.labels
        await an.press(msg, DONE)
        nxt = await one(an)
        assert nxt.message_id == msg.message_id  # the guide edits its one message, the chat stays short
        msg = nxt
    assert "Bạn đã nộp xong hồ sơ đăng ký mức 1" in msg.body
    assert "🔓 Kích hoạt tài khoản" in msg.labels and "🏢 Làm mức 2 tại công an" in msg.labels  # what comes next
    assert msg.labels[-2:] == ["👍", "👎"]
    async with unit_of_work(runtime.sessions) as s:
        assert await s.get(GuideProgress, an.id) is None  # finished: nothing left to resume


async def test_a_troubleshooting_detour_comes_back_to_the_same_step(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    await bots.start(db_url)
    binh = await sandbox.user(5002, first_name="Bình", language_code="vi")
    msg = await open_level1(binh)
    for _ in range(2):
        await binh.press(msg, DONE)
        msg = await one(binh)
    assert "Bước 3/6" in msg.body and FAIL in msg.labels  # the card scan step
    await binh.press(msg, FAIL)
    detour = await one(binh)
    assert "Không quét được thẻ (NFC/QR)" in detour.body and "quay lại bước 3" in detour.body
    steps = 0
    while BACK_TO not in " ".join(detour.labels):
        await binh.press(detour, DONE)
        detour = await one(binh)
        steps += 1
        assert steps <= 5, detour.body
    assert steps == 3 and "Đã quét được thẻ." in detour.body
    [back] = [label for label in detour.labels if label.startswith(BACK_TO)]
    assert back == "↩️ Quay lại bước 3"
    await binh.press(detour, back)
    again = await one(binh)
    assert step_of(again, LEVEL1) == 3 and "Bước 3/6" in again.body


async def test_a_guide_left_halfway_resumes_after_a_restart(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    first = await bots.start(db_url, rasa_url=rasa.url)
    chi = await sandbox.user(5003, first_name="Chi", language_code="vi")
    msg = await open_level1(chi)
    for _ in range(3):
        await chi.press(msg, DONE)
        msg = await one(chi)
    assert "Bước 4/6" in msg.body
    await chi.send("lệ phí làm hộ chiếu")  # the citizen wanders off to something else
    assert "hộ chiếu" in (await one(chi)).body.lower()
    await bots.stop(first)

    await bots.start(db_url, rasa_url=rasa.url)  # a new process on the same database
    await chi.command("menu")
    menu = await one(chi)
    assert menu.labels[0] == "▶️ Tiếp tục hướng dẫn"
    await chi.press(menu, "▶️ Tiếp tục hướng dẫn")
    resumed = await one(chi)
    assert "Mình tiếp tục từ chỗ bạn dừng lại" in resumed.body and "Bước 4/6" in resumed.body
    await chi.press(resumed, DONE)
    assert "Bước 5/6" in (await one(chi)).body

    await chi.send("tiep tuc huong dan")  # typed, without diacritics
    typed = await one(chi)
    assert "Mình tiếp tục từ chỗ bạn dừng lại" in typed.body and "Bước 5/6" in typed.body


@pytest.mark.parametrize("text", ["đăng ký định danh mức 2 ở đâu", "dang ky dinh danh muc 2 o dau"])
async def test_a_level2_question_jumps_into_the_level2_guide(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str, text: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url)
    dung = await sandbox.user(5004, first_name="Dũng", language_code="vi")
    await dung.send(text)
    guide = await one(dung)
    # "ở đâu" (where) opens the guide at the step that answers it, with the way back to its start.
    assert "Làm tài khoản VNeID mức 2 — Bước 3/6" in guide.body and "công an xã/phường" in guide.body
    assert guide.labels[0] == DONE and "◀️ Quay lại" in guide.labels
    await dung.press(guide, "◀️ Quay lại")
    assert "Bước 2/6" in (await one(dung)).body


# Registering without a level is asked with buttons; activating a registered account opens its own guide at once
# (tests/e2e/test_first_answers.py), since "level 1" there would restart the registration.
ACTIVATE = [
    ("đăng ký tài khoản định danh", "mức nào", ["Mức 1", "Mức 2"], "Làm tài khoản VNeID mức 2 — Bước 1/6"),
    ("dang ky vneid", "mức nào", ["Mức 1", "Mức 2"], "Làm tài khoản VNeID mức 2 — Bước 1/6"),
    ("register my VNeID account", "Which VNeID level", ["Level 1", "Level 2"], "VNeID level 2 account — Step 1 of 6"),
]


@pytest.mark.parametrize(("text", "question", "levels", "header"), ACTIVATE)
async def test_activate_without_a_level_asks_with_buttons(
    sandbox: SandboxClient,
    bots: BotRunner,
    rasa: RasaServer,
    db_url: str,
    text: str,
    question: str,
    levels: list[str],
    header: str,
) -> None:
    await bots.start(db_url, rasa_url=rasa.url)
    em = await sandbox.user(5005, first_name="Em", language_code="vi")
    await em.send(text)
    ask = await one(em)
    assert question in ask.body and ask.labels[:2] == levels
    await em.press(ask, levels[1])
    guide = await one(em)
    assert header in guide.body, guide.body


FEE_QUESTIONS = [
    ("lệ phí đăng ký thường trú", "vi"),
    ("le phi dang ky thuong tru", "vi"),
    ("le phi dk thuong tru", "vi"),
    ("phi nhap ho khau bn", "vi"),
    ("what is the fee for permanent residence registration", "en"),
]


@pytest.mark.parametrize(("text", "lang"), FEE_QUESTIONS)
async def test_the_residence_fee_is_answered_first_then_the_other_aspects(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str, text: str, lang: str
) -> None:
    await bots.start(db_url, rasa_url=rasa.url)
    user = await sandbox.user(5006, first_name="Giang", language_code="vi")
    await user.send(text)
    answer = await one(user)
    first_line = answer.body.split("\n")[0]
    if lang == "vi":
        assert "Đăng ký thường trú" in first_line and "Lệ phí" in first_line, answer.body
        assert "Kiểm tra ngày" in answer.body
        others = ["Giấy tờ", "Thời gian", "Nộp ở đâu"]
    else:
        assert "Permanent residence" in first_line and "Fee" in first_line, answer.body
        assert "Checked on" in answer.body
        others = ["Documents", "Processing time", "Where"]
    assert "20.000" in answer.body or "20,000" in answer.body  # in person (Circular 75/2022)
    labels = " | ".join(answer.labels)
    assert "Lệ phí" not in labels and "Fee" not in labels  # the aspect answered is not offered again
    for other in others:
        assert other.lower() in labels.lower(), labels
    # Pressing another aspect answers it in the same message.
    await user.press(answer, 1, 0)
    aspect = await one(user)
    assert aspect.message_id == answer.message_id and aspect.body != answer.body


def picker_path(day: dt.date) -> list[str]:
    """The button labels a citizen presses for a date of birth: decade, year, month, day."""
    decade = day.year // 10 * 10
    return [f"{decade}–{decade + 9}", str(day.year), f"Tháng {day.month}", str(day.day)]


def issue_path(day: dt.date) -> list[str]:
    return [str(day.year), f"Tháng {day.month}", str(day.day)]


def add_years(day: dt.date, years: int) -> dt.date:
    return day.replace(year=day.year + years)


async def test_renewal_by_buttons_then_a_reminder_row(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    runtime = await bots.start(db_url)
    hoa = await sandbox.user(5007, first_name="Hoa", language_code="vi")
    today = dt.datetime.now(TZ).date()
    # A child of 11 with a card under the 2023 law: the next replacement is at 14 (new in that law).
    birth = dt.date(today.year - 11, 3, 15)
    issued = today - dt.timedelta(days=30)
    due = add_years(birth, 14)
    await hoa.command("menu")
    menu = await one(hoa)
    await hoa.press(menu, "📅 Hạn đổi thẻ căn cước")
    msg = await one(hoa)
    assert "ngày sinh" in msg.body

    def labels(m: SimMessage) -> list[str]:
        return [label for row in m.buttons for label, _ in row]

    assert "🔁 Tính lại" not in labels(msg)  # on the first question it would only show the same screen again
    for label in picker_path(birth):
        await hoa.press(msg, label)
        msg = await one(hoa)
        assert "🔁 Tính lại" in labels(msg)
    assert "được cấp ngày nào" in msg.body
    for label in issue_path(issued):
        await hoa.press(msg, label)
        msg = await one(hoa)
    assert f"đủ 14 tuổi, tức là ngày {due:%d/%m/%Y}" in msg.body  # body is the visible text, no tags
    assert "Kiểm tra ngày" in msg.body
    async with unit_of_work(runtime.sessions) as s:
        assert await s.get(RenewalDialogue, hoa.id) is None  # the date of birth is gone once answered
    await hoa.press(msg, "🔔 Nhắc tôi đổi thẻ")
    done = await one(hoa)
    assert due.strftime("%d/%m/%Y") in done.body
    async with unit_of_work(runtime.sessions) as s:
        [reminder] = (await s.scalars(select(Reminder).where(Reminder.user_id == hoa.id))).all()
        assert reminder.deadline_at is not None
        assert reminder.deadline_at.astimezone(TZ).date() == due
        assert reminder.remind_at < reminder.deadline_at


async def test_renewal_by_typed_dates(sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str) -> None:
    await bots.start(db_url, rasa_url=rasa.url)
    khanh = await sandbox.user(5008, first_name="Khánh", language_code="vi")
    await khanh.send("khi nào phải đổi cccd")
    assert "ngày sinh" in (await one(khanh)).body
    await khanh.send("31/02/2001")  # date-shaped but not a day: asked again, not dropped
    assert "Mình chưa đọc được ngày này" in (await one(khanh)).body
    await khanh.send("15/03/2001")
    assert "được cấp ngày nào" in (await one(khanh)).body
    await khanh.send("20/05/2021")  # a CCCD of the 2014 law, issued at 20: replaced at 25
    result = await one(khanh)
    assert "15/03/2026" in result.body and "25 tuổi" in result.body
    today = dt.datetime.now(TZ).date()
    if today >= dt.date(2026, 3, 15):  # past: it says so, and offers no reminder for a day gone by
        assert "đã đến hạn đổi" in result.body and "🔔 Nhắc tôi đổi thẻ" not in result.labels
    else:
        assert "🔔 Nhắc tôi đổi thẻ" in result.labels


async def test_lang_persists_and_guides_answer_in_english(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    first = await bots.start(db_url, rasa_url=rasa.url)
    lan = await sandbox.user(5009, first_name="Lan", language_code="vi")
    await lan.command("lang")
    choice = await one(lan)
    await lan.press(choice, 0, 1)
    assert (await one(lan)).body.startswith("Switched to English")
    async with unit_of_work(first.sessions) as s:
        user = await s.get(User, lan.id)
        assert user is not None and user.lang == "en"
    await bots.stop(first)
    await bots.start(db_url, rasa_url=rasa.url)
    await lan.command("menu")
    menu = await one(lan)
    assert "👤 Talk to staff" in menu.labels and "🇻🇳 Tiếng Việt" in menu.labels
    await lan.press(menu, "🪪 VNeID account")
    info = await one(lan)
    assert "electronic identification" in info.body
    await lan.press(info, "📲 Register level 1")
    step = await one(lan)
    assert "VNeID level 1 registration" in step.body and "Step 1 of 6" in step.body
    assert step.labels[0] == "✅ Done"
    await lan.send("how do I register level 1 VNeID")  # typed in English: the guide answers in English
    typed = await one(lan)
    assert "VNeID level 1 registration" in typed.body and "Step 1 of 6" in typed.body
