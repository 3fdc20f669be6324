"""End to end, reminders: the assembled bot, the real Rasa server, the Telegram and portal emulators over HTTP.
Setting one by sentence and confirming it, delivery with its four buttons, listing and cancelling, the reminders
a followed dossier's deadline brings (and takes away), delivery after downtime, and a citizen who blocked the bot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from nlu.server import RasaServer
from reminders import create_reminder
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient, SimMessage, SimUser
from store.db import make_engine, make_sessionmaker, unit_of_work
from store.models import User
from store.models_reminders import CANCELLED, FAILED, PENDING, SENT, STOPPED, Reminder
from tests.support.bots import BotRunner, portal_settings

VN = ZoneInfo("Asia/Ho_Chi_Minh")
REMINDER_BUTTONS = ["Xong", "Nhắc lại sau 1 giờ", "Ngày mai", "Dừng các nhắc này"]


def plain(message: SimMessage) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", message.body))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def local_morning(days_ahead: int, hour: int, minute: int = 0) -> dt.datetime:
    """hour:minute Vietnam time, `days_ahead` days after today there, in UTC."""
    day = utcnow().astimezone(VN).date() + dt.timedelta(days=days_ahead)
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=VN).astimezone(dt.UTC)


async def one(user: SimUser, wait_s: float = 15) -> SimMessage:
    [msg] = await user.wait_for(count=1, timeout=wait_s)
    return msg


async def rows_of(runtime_sessions: object, user_id: int) -> list[Reminder]:
    async with unit_of_work(runtime_sessions) as s:  # type: ignore[arg-type]
        return list((await s.scalars(select(Reminder).where(Reminder.user_id == user_id).order_by(Reminder.id))).all())


async def eventually(check: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Poll an async check until it returns truthy (the background jobs commit just after they send)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_a_reminder_set_by_sentence_is_confirmed_with_buttons_and_saved_in_utc(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    monday = (0 - utcnow().astimezone(VN).weekday()) % 7 or 7  # "on Monday": the next one, never today
    cases = [
        (6001, "vi", "nhắc tôi 8h sáng mai đi công an phường", "đi công an phường", local_morning(1, 8)),
        (6002, "vi", "nhac toi 8h sang mai di cong an phuong", "di cong an phuong", local_morning(1, 8)),
        (6003, "en", "remind me to bring my documents on Monday", "bring my documents", local_morning(monday, 7, 30)),
    ]
    for user_id, lang, sentence, task, due in cases:
        citizen = await sandbox.user(user_id, first_name="Citizen", language_code=lang)
        await citizen.send(sentence)
        ask = await one(citizen)
        yes, change = ("Đúng", "Sửa") if lang == "vi" else ("Yes", "Change")
        assert ask.labels == [yes, change], sentence
        shown = due.astimezone(VN).strftime("%H:%M")
        assert task in plain(ask) and shown in plain(ask) and due.astimezone(VN).strftime("%d/%m") in plain(ask)
        assert await rows_of(runtime.sessions, user_id) == []  # nothing saved before [Yes]
        await citizen.press(ask, yes)
        saved = await one(citizen)
        assert saved.message_id == ask.message_id and task in plain(saved)
        [row] = await rows_of(runtime.sessions, user_id)
        assert (row.remind_at, row.state, row.task, row.source) == (due, PENDING, task, "citizen"), sentence
        async with unit_of_work(runtime.sessions) as s:
            raw = await s.scalar(text("SELECT remind_at FROM reminders WHERE user_id = :u"), {"u": user_id})
        # Stored as UTC: 08:00 in Hà Nội is 01:00 UTC.
        stored = raw if isinstance(raw, dt.datetime) else dt.datetime.fromisoformat(str(raw))
        stored = stored.replace(tzinfo=dt.UTC) if stored.tzinfo is None else stored
        assert stored.astimezone(dt.UTC).hour == due.hour and str(raw)[11:13] == f"{due.hour:02d}", raw
        assert saved.labels == ["Xem lời nhắc" if lang == "vi" else "My reminders"]  # [Yes] is gone


async def test_a_reminder_set_for_a_minute_from_now_is_delivered_once_with_its_buttons(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    an = await sandbox.user(6010, first_name="An", language_code="vi")
    # "1 phút nữa" rounds up to the next whole minute (so the confirmation never finds it past): sent at second
    # s it falls 120 - s seconds later. Send late in a minute so the wait is about a minute and the test stays short.
    await eventually(lambda: 40 <= utcnow().second < 52, timeout_s=65)
    sent = utcnow()
    await an.send("nhắc tôi 1 phút nữa đi công an phường")
    ask = await one(an)
    assert ask.labels == ["Đúng", "Sửa"], ask.body
    await an.press(ask, "Đúng")
    assert "Đã đặt lời nhắc" in plain(await one(an))
    [row] = await rows_of(runtime.sessions, 6010)
    assert row.remind_at.second == 0
    assert dt.timedelta(seconds=60) <= row.remind_at - sent < dt.timedelta(seconds=121)
    reminder = await one(an, wait_s=(row.remind_at - utcnow()).total_seconds() + 20)
    assert utcnow() >= row.remind_at
    assert "đi công an phường" in plain(reminder) and reminder.labels == REMINDER_BUTTONS
    # A sentinel due after it: once it arrives, the first one has had many ticks to be (wrongly) sent again.
    async with unit_of_work(runtime.sessions) as s:
        await create_reminder(s, 6010, utcnow() + dt.timedelta(seconds=2), "citizen", None, task="sentinel")
    assert "sentinel" in plain(await one(an))
    copies = [m.message_id for m in an.inbox if m.labels == REMINDER_BUTTONS and "đi công an phường" in m.body]
    assert copies == [reminder.message_id]
    [first, _] = await rows_of(runtime.sessions, 6010)
    assert (first.state, first.message_id, first.late, first.attempts) == (SENT, reminder.message_id, False, 1)


async def test_each_button_on_a_delivered_reminder_does_what_it_says(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    runtime = await bots.start(db_url)
    binh = await sandbox.user(6020, first_name="Bình", language_code="vi")
    await binh.command("start")
    await binh.wait_for(count=2)  # welcome + menu: the citizen is known
    soon = utcnow() + dt.timedelta(seconds=1)
    async with unit_of_work(runtime.sessions) as s:
        for task in ("việc một", "việc hai", "việc ba", "việc bốn"):
            await create_reminder(s, 6020, soon, "citizen", None, task=task, group_key=f"g:{task}")
        # A later one of the last group: what "Stop these" stops.
        later = await create_reminder(
            s, 6020, utcnow() + dt.timedelta(days=2), "citizen", None, task="việc bốn", group_key="g:việc bốn"
        )
    got = {plain(m).splitlines()[-1]: m for m in await binh.wait_for(count=4, timeout=15)}
    assert sorted(got) == ["việc ba", "việc bốn", "việc hai", "việc một"]
    assert all(m.labels == REMINDER_BUTTONS for m in got.values())
    by_task = {r.task: r for r in await rows_of(runtime.sessions, 6020) if r.id != later.id}

    await binh.press(got["việc một"], "Xong")
    done = await one(binh)
    assert done.message_id == got["việc một"].message_id and "Đã xong" in plain(done)
    pressed = utcnow()
    await binh.press(got["việc hai"], "Nhắc lại sau 1 giờ")
    assert "nhắc lại lúc" in plain(await one(binh))
    await binh.press(got["việc ba"], "Ngày mai")
    assert "nhắc lại lúc" in plain(await one(binh))
    await binh.press(got["việc bốn"], "Dừng các nhắc này")
    assert "Đã dừng 1 lời nhắc" in plain(await one(binh))

    rows = {r.id: r for r in await rows_of(runtime.sessions, 6020)}
    assert rows[by_task["việc một"].id].done_at is not None
    [snoozed] = [r for r in rows.values() if r.parent_id == by_task["việc hai"].id]
    assert snoozed.state == PENDING and snoozed.task == "việc hai"
    assert abs(snoozed.remind_at - (pressed + dt.timedelta(hours=1))) < dt.timedelta(minutes=2)
    [tomorrow] = [r for r in rows.values() if r.parent_id == by_task["việc ba"].id]
    first_local = by_task["việc ba"].remind_at.astimezone(VN)
    at = first_local.time().replace(second=0, microsecond=0)
    if at >= dt.time(21) or at < dt.time(7):  # a night time of day moves to the morning
        at = dt.time(7, 30)
    day = utcnow().astimezone(VN).date() + dt.timedelta(days=1)
    assert tomorrow.remind_at == dt.datetime.combine(day, at, tzinfo=VN).astimezone(dt.UTC)
    assert tomorrow.state == PENDING
    assert rows[later.id].state == STOPPED
    assert all(rows[by_task[t].id].state == SENT for t in by_task)


async def test_the_list_shows_upcoming_reminders_with_cancel_buttons_and_cancelling_works(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    cuong = await sandbox.user(6030, first_name="Cường", language_code="vi")
    await cuong.send("xem lời nhắc")
    assert "chưa có lời nhắc" in plain(await one(cuong))
    async with unit_of_work(runtime.sessions) as s:
        first = await create_reminder(s, 6030, local_morning(1, 9), "citizen", None, task="nộp hồ sơ")
        second = await create_reminder(s, 6030, local_morning(2, 9), "citizen", None, task="lấy kết quả")
    await cuong.send("các lời nhắc của tôi")
    listing = await one(cuong)
    body = plain(listing)
    assert body.index("nộp hồ sơ") < body.index("lấy kết quả")  # soonest first
    assert listing.labels == ["❌ Hủy 1", "❌ Hủy 2"]
    await cuong.press(listing, "❌ Hủy 1")
    after = await one(cuong)
    assert after.message_id == listing.message_id and "Đã hủy lời nhắc" in plain(after)
    assert "nộp hồ sơ" not in plain(after) and "lấy kết quả" in plain(after) and after.labels == ["❌ Hủy 1"]
    states = {r.id: r.state for r in await rows_of(runtime.sessions, 6030)}
    assert states == {first.id: CANCELLED, second.id: PENDING}
    await cuong.press(listing, "❌ Hủy 1")  # the list was edited: this is now the second reminder
    assert "Bạn chưa có lời nhắc nào" in plain(await one(cuong))
    assert {r.state for r in await rows_of(runtime.sessions, 6030)} == {CANCELLED}


async def test_a_followed_dossier_deadline_brings_three_reminders_and_its_removal_cancels_them(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    runtime = await bots.start(
        db_url, rasa_url=rasa.url, portal_poll_interval_s=1.0, portal_poll_run_s=0.5, **portal_settings(portal)
    )
    code = "000.00.12.H22-240103-0002"
    deadline_day = utcnow().astimezone(VN).date() + dt.timedelta(days=10)
    deadline = dt.datetime.combine(deadline_day, dt.time(17), tzinfo=VN)
    portal.set_status(code, 5, "Thiếu giấy tờ", supplement={"items": ["Hợp đồng thuê nhà"], "deadline": deadline})
    dung = await sandbox.user(6040, first_name="Dũng", language_code="vi")
    await dung.send(f"tra cứu hồ sơ {code}")
    public = await one(dung)
    assert "Hợp đồng thuê nhà" not in plain(public)  # a bare code shows the status only
    await dung.press(public, "🔑 Xem chi tiết và theo dõi")
    await one(dung)
    await dung.send(portal.phone_last4(code))  # the applicant's phone digits open the full card
    card = await one(dung)
    assert "Hợp đồng thuê nhà" in plain(card) and deadline.strftime("%d/%m/%Y") in plain(card)
    await dung.press(card, "🔔 Theo dõi hồ sơ này")
    await one(dung)
    await asyncio.sleep(1.5)  # Telegram takes about one message a second per chat: let the notice not be throttled
    rows = await rows_of(runtime.sessions, 6040)
    expected = [
        dt.datetime.combine(deadline_day - dt.timedelta(days=n), dt.time(7, 30), tzinfo=VN).astimezone(dt.UTC)
        for n in (3, 1, 0)
    ]
    assert sorted(r.remind_at for r in rows) == expected
    assert {(r.source, r.state, r.deadline_at) for r in rows} == {("dossier", PENDING, deadline)}

    portal.set_status(code, 4, "Đã nhận đủ giấy tờ")  # the supplement (and its deadline) is gone
    notice = plain(await one(dung, wait_s=20))
    assert code in notice and "Đang xử lý" in notice

    async def all_cancelled() -> bool:
        return {r.state for r in await rows_of(runtime.sessions, 6040)} == {CANCELLED}

    await eventually(all_cancelled)


async def test_a_reminder_due_while_the_bot_was_stopped_is_delivered_after_start_marked_late(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    runtime = await bots.start(db_url)
    em = await sandbox.user(6050, first_name="Em", language_code="vi")
    await em.command("start")
    await em.wait_for(count=2)
    await bots.stop(runtime)
    engine = make_engine(db_url)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as s:
            late = await create_reminder(s, 6050, utcnow() - dt.timedelta(hours=2), "citizen", None, task="trễ hẹn")
            fresh = await create_reminder(s, 6050, utcnow() - dt.timedelta(minutes=5), "citizen", None, task="vừa")
    finally:
        await engine.dispose()
    runtime = await bots.start(db_url)
    got = {plain(m).splitlines()[-1]: m for m in await em.wait_for(count=2, timeout=15)}
    assert ", trễ)" in plain(got["trễ hẹn"]) and ", trễ)" not in plain(got["vừa"])

    async def recorded() -> bool:  # the dispatcher records the outcome just after the send
        rows = {r.id: (r.state, r.late) for r in await rows_of(runtime.sessions, 6050)}
        return rows == {late.id: (SENT, True), fresh.id: (SENT, False)}

    await eventually(recorded)


async def test_a_citizen_who_blocked_the_bot_gets_no_more_reminders_and_is_marked_inactive(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    runtime = await bots.start(db_url)
    giang = await sandbox.user(6060, first_name="Giang", language_code="vi")
    await giang.command("start")
    await giang.wait_for(count=2)
    await giang.block()
    async with unit_of_work(runtime.sessions) as s:
        first = await create_reminder(
            s, 6060, utcnow() + dt.timedelta(seconds=1), "citizen", None, task="mang sổ hộ khẩu"
        )
        second = await create_reminder(s, 6060, utcnow() + dt.timedelta(minutes=5), "citizen", None, task="hai")

    async def blocked_seen() -> bool:
        return {r.id: r.state for r in await rows_of(runtime.sessions, 6060)} == {
            first.id: FAILED,
            second.id: CANCELLED,
        }

    await eventually(blocked_seen)
    async with unit_of_work(runtime.sessions) as s:
        user = await s.get(User, 6060)
        assert user is not None and user.active is False
        third = await create_reminder(s, 6060, utcnow(), "citizen", None, task="ba")

    async def third_cancelled() -> bool:
        return {r.id: r.state for r in await rows_of(runtime.sessions, 6060)}[third.id] == CANCELLED

    await eventually(third_cancelled)
    record = await giang.record()
    assert not any("mang sổ hộ khẩu" in (m.get("text") or "") for m in record["messages"]), record["messages"]
