"""End to end, the assembled assistant on handover to staff, answer feedback and /stats: the real PTB Application
with every capability, the real Rasa server where text is typed, a citizen and a staff group in the emulator."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.app import Runtime
from nlu.server import RasaServer
from sandbox.telegram.client import SandboxClient, SimGroup, SimMessage, SimUser
from store.db import unit_of_work
from store.models import NluReview, User
from store.models_handover import CLOSED, WAITING, ConversationCount, Feedback, MessageCount, Ticket
from store.models_staff import StaffMember
from tests.support.bots import BotRunner

TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # the default settings.timezone the office hours are read in
ALWAYS_OPEN = "mon-sun 00:00-24:00"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STAFF_BTN = "👤 Gặp cán bộ"
GIBBERISH = ("blorf snuzz", "snuzz blorf quux")  # what the model reads as nlu_fallback


def closed_now() -> str:
    """Office hours on another weekday only: closed at whatever time the test runs."""
    tomorrow = dt.datetime.now(TZ).weekday() + 1
    return f"{DAYS[tomorrow % 7]} 08:00-09:00"


async def one(chat: SimUser | SimGroup, wait_s: float = 15) -> SimMessage:
    [msg] = await chat.wait_for(count=1, timeout=wait_s)
    return msg


async def nothing(chat: SimUser | SimGroup, wait_s: float = 1.0) -> None:
    """Nothing more arrives in `chat` within `wait_s` (a bounded wait, then the inbox is checked)."""
    before = len(chat.inbox)
    try:
        extra = await chat.wait_for(count=1, timeout=wait_s)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message(s): {[m.body for m in extra]} (had {before})")


async def staff_group(sandbox: SandboxClient) -> tuple[SimUser, SimGroup]:
    staff = await sandbox.user(6901, first_name="Bình", language_code="vi")
    group = await sandbox.group("Tổ công tác 06", members=[staff], supergroup=True, bot_admin=True)
    return staff, group


async def make_staff(runtime: Runtime, user_id: int) -> None:
    """What an admin's `/staff add <id>` leaves: the role that lets a group member take and answer tickets."""
    async with unit_of_work(runtime.sessions) as session:
        session.add(StaffMember(user_id=user_id, role="staff", added_by=None))


async def take_talk_close_rate(citizen: SimUser, staff: SimUser, group: SimGroup, post: SimMessage) -> None:
    """[Take], a reply relayed each way, [Close], a rating: the part of a ticket the hour does not change."""
    await group.press(staff, post, "🙋 Nhận")
    edited = await one(group)
    assert edited.message_id == post.message_id and "Bình đã nhận" in edited.body
    assert "Cán bộ Bình đã nhận" in (await one(citizen)).body

    await citizen.send("toi bi khoa tai khoan, cccd 001099012345")
    relayed = await one(group)
    assert "[id]" in relayed.body and "001099012345" not in relayed.body
    assert (await one(citizen)).body.startswith("✓")

    await group.send(staff, "Bạn mang CCCD tới công an phường để mở khoá nhé.", reply_to=post)
    answer = await one(citizen)
    assert answer.body == "👤 Bình (cán bộ): Bạn mang CCCD tới công an phường để mở khoá nhé."
    await group.send(staff, "(trao đổi nội bộ, không trả lời bài đăng)")  # chatter in the group stays there
    await nothing(citizen)

    await group.press(staff, post, "✅ Đóng")
    closed = await one(group)
    assert closed.message_id == post.message_id and "Đã đóng" in closed.body and not closed.buttons
    prompt = await one(citizen)
    assert prompt.labels == ["1 ⭐", "2 ⭐", "3 ⭐", "4 ⭐", "5 ⭐"]
    await citizen.press(prompt, "4 ⭐")
    thanks = await one(citizen)
    assert thanks.message_id == prompt.message_id and "⭐⭐⭐⭐" in thanks.body and "⭐⭐⭐⭐⭐" not in thanks.body


async def test_in_office_hours_the_ticket_relays_at_once(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    staff, group = await staff_group(sandbox)
    runtime = await bots.start(db_url, rasa_url=rasa.url, staff_chat_id=group.chat_id, office_hours=ALWAYS_OPEN)
    await make_staff(runtime, staff.id)
    an = await sandbox.user(6001, first_name="An", language_code="vi")
    await an.send("lệ phí làm hộ chiếu")  # what came before is shown to staff with the ticket
    await one(an)
    await an.command("menu")
    menu = await one(an)
    await an.press(menu, STAFF_BTN)
    opened = await one(an)
    assert "chuyển yêu cầu của bạn tới cán bộ" in opened.body
    post = await one(group)
    assert post.body.startswith("🆘 Yêu cầu #") and "An" in post.body and "hộ chiếu" in post.body
    assert post.labels == ["🙋 Nhận", "✅ Đóng"]

    # One open ticket per citizen: asking again shows the one already open, nothing new reaches the group.
    await an.command("menu")
    await an.press(await one(an), STAFF_BTN)
    assert "Bạn đang trò chuyện với cán bộ" in (await one(an)).body
    await nothing(group)
    async with unit_of_work(runtime.sessions) as s:
        assert await s.scalar(select(func.count()).select_from(Ticket)) == 1

    await take_talk_close_rate(an, staff, group, post)
    async with unit_of_work(runtime.sessions) as s:
        [ticket] = (await s.scalars(select(Ticket))).all()
        assert (ticket.status, ticket.rating, ticket.taken_by, ticket.user_id) == (CLOSED, 4, staff.id, an.id)
        assert ticket.opened_in_hours


async def test_outside_office_hours_the_ticket_waits_and_the_bot_keeps_helping(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    staff, group = await staff_group(sandbox)
    runtime = await bots.start(db_url, rasa_url=rasa.url, staff_chat_id=group.chat_id, office_hours=closed_now())
    await make_staff(runtime, staff.id)
    chi = await sandbox.user(6002, first_name="Chi", language_code="vi")
    await chi.send("tôi muốn gặp cán bộ")
    queued = await one(chi)
    assert "ngoài giờ làm việc" in queued.body and "08:00" in queued.body
    post = await one(group)
    assert post.body.startswith("🆘 Yêu cầu #")
    await chi.send("lệ phí đăng ký thường trú")  # not relayed: the assistant answers it
    answer = await one(chi)
    assert "Đăng ký thường trú" in answer.body and "20.000" in answer.body
    await nothing(group)
    async with unit_of_work(runtime.sessions) as s:
        [ticket] = (await s.scalars(select(Ticket))).all()
        assert ticket.status == WAITING and not ticket.opened_in_hours

    await take_talk_close_rate(chi, staff, group, post)  # taken: a person answers, whatever the hour
    async with unit_of_work(runtime.sessions) as s:
        [ticket] = (await s.scalars(select(Ticket))).all()
        assert (ticket.status, ticket.rating) == (CLOSED, 4)


async def test_two_fallbacks_offer_talk_to_staff(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    _, group = await staff_group(sandbox)
    runtime = await bots.start(db_url, rasa_url=rasa.url, staff_chat_id=group.chat_id, office_hours=ALWAYS_OPEN)
    dung = await sandbox.user(6003, first_name="Dũng", language_code="vi")
    await dung.send(GIBBERISH[0])
    first = await one(dung)
    assert "Mình vẫn chưa hiểu" not in first.body
    await dung.send(GIBBERISH[1])
    second = await one(dung)
    assert "Mình vẫn chưa hiểu ý bạn" in second.body and STAFF_BTN in second.labels
    await dung.press(second, STAFF_BTN)
    assert "chuyển yêu cầu của bạn tới cán bộ" in (await one(dung)).body
    post = await one(group)
    assert GIBBERISH[1] in post.body  # staff see what the assistant could not understand
    async with unit_of_work(runtime.sessions) as s:
        reasons = (await s.scalars(select(NluReview.reason).where(NluReview.user_id == dung.id))).all()
        assert sorted(reasons) == ["fallback", "fallback"]
        assert await s.scalar(select(func.count()).select_from(Ticket).where(Ticket.user_id == dung.id)) == 1


async def test_thumbs_down_comment_then_still_need_help(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    _, group = await staff_group(sandbox)
    runtime = await bots.start(db_url, rasa_url=rasa.url, staff_chat_id=group.chat_id, office_hours=ALWAYS_OPEN)
    em = await sandbox.user(6004, first_name="Em", language_code="vi")
    await em.send("le phi dk thuong tru")
    answer = await one(em)
    assert answer.labels[-2:] == ["👍", "👎"]
    await em.press(answer, "👎")
    assert "còn thiếu gì" in (await one(em)).body
    await em.send("không nói nộp ở đâu, sđt 0912345678")
    thanks = await one(em)
    assert "Cảm ơn bạn đã góp ý" in thanks.body and "🙋 Vẫn cần hỗ trợ → Gặp cán bộ" in thanks.labels
    async with unit_of_work(runtime.sessions) as s:
        [review] = (await s.scalars(select(NluReview).where(NluReview.reason == "feedback"))).all()
        assert "không nói nộp ở đâu" in review.text and "0912345678" not in review.text
        assert review.intent == "proc:permanent_residence" and review.user_id == em.id
    await em.press(thanks, "🙋 Vẫn cần hỗ trợ → Gặp cán bộ")
    assert "chuyển yêu cầu của bạn tới cán bộ" in (await one(em)).body
    post = await one(group)
    assert post.body.startswith("🆘 Yêu cầu #") and "0912345678" not in post.body
    async with unit_of_work(runtime.sessions) as s:
        [ticket] = (await s.scalars(select(Ticket))).all()
        assert ticket.user_id == em.id and ticket.origin.startswith("fb:")


async def test_stats_for_an_admin_match_the_rows_and_others_get_unknown_command(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    staff, group = await staff_group(sandbox)
    admin = await sandbox.user(6900, first_name="Quản trị", language_code="vi")
    runtime = await bots.start(
        db_url,
        rasa_url=rasa.url,
        staff_chat_id=group.chat_id,
        office_hours=ALWAYS_OPEN,
        admin_ids=[admin.id],
    )
    await make_staff(runtime, staff.id)
    giang = await sandbox.user(6005, first_name="Giang", language_code="vi")
    hai = await sandbox.user(6006, first_name="Hải", language_code="vi")
    # 3 understood messages and 1 fallback, from two citizens; one 👍, one 👎; one ticket taken, closed, rated 4.
    await giang.send("lệ phí đăng ký thường trú")
    fee = await one(giang)
    await giang.press(fee, "👍")
    await one(giang)
    await hai.send("le phi lam ho chieu")
    passport = await one(hai)
    await hai.press(passport, "👎")
    await hai.press(await one(hai), "Bỏ qua")  # no comment
    await one(hai)
    await hai.send(GIBBERISH[0])
    await one(hai)
    await giang.send("tôi muốn gặp cán bộ")
    await one(giang)
    post = await one(group)
    await take_talk_close_rate(giang, staff, group, post)

    async with unit_of_work(runtime.sessions) as s:
        conversations = int(await s.scalar(select(func.sum(ConversationCount.conversations))) or 0)
    await admin.command("stats")
    stats = await one(admin)
    async with unit_of_work(runtime.sessions) as s:
        # the admin at work begins no conversation, even in a private chat
        assert int(await s.scalar(select(func.sum(ConversationCount.conversations))) or 0) == conversations
        handled = int(await s.scalar(select(func.sum(MessageCount.handled))) or 0)
        fallbacks = int(await s.scalar(select(func.sum(MessageCount.fallbacks))) or 0)
        users = await s.scalar(select(func.count()).select_from(User))
        votes = (await s.execute(select(Feedback.topic, Feedback.vote).where(Feedback.vote.is_not(None)))).all()
    # The relayed message and the ticket request are typed too; what the rows say, /stats must say.
    assert (handled, fallbacks) == (4, 1), (handled, fallbacks)
    assert users is not None and users >= 3  # the two citizens and the admin at least
    assert sorted(votes) == [("proc:passport", -1), ("proc:permanent_residence", 1)]
    assert stats.body.startswith("📊 Thống kê trợ lý")
    week, month = stats.body.split("30 ngày qua")
    for window in (week, month):
        assert f"Người dùng hoạt động: {users}" in window
        assert f"Tin nhắn: {handled}, trợ lý hiểu được {round(100 * (handled - fallbacks) / handled)}%" in window
        assert "Gặp cán bộ: 1 yêu cầu (0 đang mở)" in window
        assert "Đánh giá cán bộ: 1 lượt, trung bình 4.0/5" in window
        assert f"Lượt trò chuyện: {conversations}" in window and conversations == 2  # Giang's and Hải's
        assert "Lỗi khi tra cứu cổng dịch vụ công: không có" in window
        assert "proc:passport 0👍/1👎" in window and "proc:permanent_residence 1👍/0👎" in window

    await giang.command("stats")
    assert (await one(giang)).body == "Mình không biết lệnh này. Gõ /help để xem các việc mình làm được."
