"""Law 91/2025/QH15 on personal data protection, as the citizen meets it: the notice names the controller and the
rights (Art. 4, 9, 24); accepting it records the version and the time, and a changed notice is shown once again;
the no to the review queue keeps their messages out of it and removes what was there; /mydata copies what is kept;
the hourly purge applies each table's retention period (Art. 14)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from actions.privacy import notice_version
from kernel.content import Content
from nlu.server import RasaServer
from sandbox.telegram.client import SandboxClient
from store.db import unit_of_work
from store.models import NluReview, User
from store.models_dossier import DossierLookup
from store.models_handover import CLOSED, WAITING, Feedback, Ticket
from store.models_news import DONE, SENT, Broadcast, Delivery
from store.models_reminders import PENDING, Reminder
from store.personal import user_tables
from tests.e2e.test_privacy import all_messages, one, until_button
from tests.support.bots import BotRunner

CONTENT = Content.load()
VERSION = notice_version(CONTENT)


def test_every_table_about_users_has_a_name_in_the_copy_in_both_languages() -> None:
    for name in user_tables():
        for lang in ("vi", "en"):
            assert CONTENT.text(f"privacy.table_{name}", lang), f"no privacy.table_{name} text in {lang}"


async def test_the_notice_names_the_controller_and_records_consent_with_its_version(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url, privacy_contact="Số 1 Lý Thái Tổ, tp@example.gov.vn")
    hoa = await sandbox.user(5201, first_name="Hoa", language_code="vi")
    await hoa.command("privacy")
    first, second = await hoa.wait_for(count=2, timeout=20)
    assert "Tổ công tác Đề án 06 của tỉnh" in first.body and "Số 1 Lý Thái Tổ, tp@example.gov.vn" in first.body
    assert "Cổng dịch vụ công" in first.body and "Telegram" in first.body  # who receives data
    assert "Điều 4" in second.body and "Điều 24" in second.body and "dưới 16 tuổi" in second.body
    assert "chưa đồng ý" in second.body
    await hoa.press(second, "✅ Tôi đồng ý")
    assert f"phiên bản {VERSION}" in (await one(hoa)).body
    async with unit_of_work(runtime.sessions) as s:
        user = await s.get(User, hoa.id)
        assert user is not None and user.notice_version == VERSION and user.notice_accepted_at is not None
        accepted_at = user.notice_accepted_at
        assert dt.datetime.now(dt.UTC) - accepted_at < dt.timedelta(minutes=1)
        user.notice_version = user.notice_shown = "2025-01-01"  # as if she had accepted an earlier notice

    await hoa.send("lệ phí làm hộ chiếu")  # her next message meets the new notice first
    changed, rights = await hoa.wait_for(count=2, timeout=20)
    assert "đã thay đổi" in changed.body and f"phiên bản {VERSION}" in changed.body
    assert "✅ Tôi đồng ý" in rights.labels
    await hoa.send("lệ phí làm hộ chiếu")  # once: now the question is answered
    answer = await until_button(hoa, "👍")
    assert "Thông báo về dữ liệu cá nhân" not in answer.body and "Lệ phí" in answer.body
    async with unit_of_work(runtime.sessions) as s:
        user = await s.get(User, hoa.id)
        assert user is not None and user.notice_version == "2025-01-01" and user.notice_shown == VERSION
    await hoa.press(rights, "✅ Tôi đồng ý")
    await one(hoa)
    async with unit_of_work(runtime.sessions) as s:
        user = await s.get(User, hoa.id)
        assert user is not None and user.notice_version == VERSION and user.notice_accepted_at != accepted_at


async def test_without_a_contact_the_notice_invents_none(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    await bots.start(db_url)
    khanh = await sandbox.user(5202, first_name="Khánh", language_code="en")
    await khanh.command("privacy")
    first, _ = await khanh.wait_for(count=2, timeout=20)
    assert "Contact: not published yet" in first.body


async def test_saying_no_to_the_review_queue_keeps_the_citizen_out_of_it(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    lam = await sandbox.user(5203, first_name="Lâm", language_code="vi")
    other = await sandbox.user(5204, first_name="Mai", language_code="vi")
    for who in (lam, other):
        await who.send("qwzx plorf vrrt")  # not understood: kept for maintainers
        await one(who)

    async def queued(uid: int) -> int:
        async with unit_of_work(runtime.sessions) as s:
            return int(await s.scalar(select(func.count()).select_from(NluReview).where(NluReview.user_id == uid)))

    assert await queued(lam.id) == 1 and await queued(other.id) == 1
    await lam.command("privacy")
    _, rights = await lam.wait_for(count=2, timeout=20)
    await lam.press(rights, "🚫 Không dùng tin nhắn của tôi")
    done = await one(lam)
    assert "1 tin nhắn đã có ở đó đã được xoá" in done.body
    assert await queued(lam.id) == 0 and await queued(other.id) == 1

    await lam.send("qwzx plorf vrrt")  # still answered, no longer kept
    await one(lam)
    await lam.send("lệ phí làm hộ chiếu")
    await lam.press(await until_button(lam, "👎"), "👎")  # a 👎 comment goes to the queue too, but not hers
    await one(lam)
    await lam.send("không nói nộp ở đâu")
    await one(lam)
    assert await queued(lam.id) == 0
    async with unit_of_work(runtime.sessions) as s:
        user = await s.get(User, lam.id)
        assert user is not None and user.review_opt_out and user.review_choice_at is not None

    await lam.command("privacy")  # and back: allowed again
    _, rights = await lam.wait_for(count=2, timeout=20)
    assert "🚫" in rights.body
    await lam.press(rights, "Cho phép dùng để cải thiện")
    await one(lam)
    await lam.send("qwzx plorf vrrt")
    await one(lam)
    assert await queued(lam.id) == 1


async def test_mydata_copies_what_is_kept(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    runtime = await bots.start(db_url)
    nam = await sandbox.user(5205, first_name="Nam", language_code="en")
    await nam.command("start")
    await all_messages(nam)
    now = dt.datetime.now(dt.UTC)
    async with unit_of_work(runtime.sessions) as s:
        s.add(
            Reminder(
                user_id=nam.id,
                source="citizen",
                kind="task",
                task="nộp hồ sơ [phone]",
                remind_at=now + dt.timedelta(days=1),
                due_at=now + dt.timedelta(days=1),
                group_key="task",
                state=PENDING,
            )
        )
    await nam.command("mydata")
    copy = "\n".join(m.body for m in await all_messages(nam))
    assert "What I keep about you" in copy
    assert "Account" in copy and f"id: {nam.id}" in copy and "lang: en" in copy
    assert "Reminders" in copy and "nộp hồ sơ [phone]" in copy


async def test_the_purge_applies_each_retention_period(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    runtime = await bots.start(
        db_url,
        ticket_retention_days=365,
        feedback_retention_days=180,
        reminder_history_days=90,
        delivery_retention_days=180,
    )
    now = dt.datetime.now(dt.UTC)

    def ago(days: int) -> dt.datetime:
        return now - dt.timedelta(days=days)

    async with unit_of_work(runtime.sessions) as s:
        for uid in (601, 602):
            s.add(User(id=uid, chat_id=uid, lang="vi"))
        await s.flush()
        s.add_all(
            [
                Ticket(user_id=601, status=CLOSED, closed_at=ago(366), created_at=ago(367), origin="old"),
                Ticket(user_id=601, status=CLOSED, closed_at=ago(300), created_at=ago(301), origin="recent"),
                Ticket(user_id=602, status=WAITING, created_at=ago(400), origin="open"),  # open: never purged
                Feedback(user_id=601, topic="old", offered_at=ago(181)),
                Feedback(user_id=601, topic="recent", offered_at=ago(100)),
            ]
        )
        for kind, state, updated in (("old", SENT, 91), ("recent", SENT, 30), ("due", PENDING, 200)):
            s.add(
                Reminder(
                    user_id=601,
                    source="citizen",
                    kind=kind,
                    remind_at=ago(updated),
                    due_at=ago(updated),
                    group_key=kind,
                    state=state,
                    updated_at=ago(updated),
                )
            )
        old = Broadcast(created_by=9, status=DONE, text="a", total=1, finished_at=ago(181))
        recent = Broadcast(created_by=9, status=DONE, text="b", total=1, finished_at=ago(10))
        s.add_all([old, recent])
        await s.flush()
        s.add_all(
            [
                Delivery(broadcast_id=old.id, user_id=601, chat_id=601, state=SENT, message_id=5),
                Delivery(broadcast_id=recent.id, user_id=601, chat_id=601, state=SENT, message_id=6),
            ]
        )
        for code, last in (("a" * 64, ago(2)), ("b" * 64, now - dt.timedelta(hours=2))):
            s.add(DossierLookup(user_id=601, code_hash=code, first_at=last, last_at=last, failures=0))
    await runtime.purge()
    async with unit_of_work(runtime.sessions) as s:
        assert (await s.scalars(select(DossierLookup.code_hash))).all() == ["b" * 64]
        assert sorted((await s.scalars(select(Ticket.origin))).all()) == ["open", "recent"]
        assert (await s.scalars(select(Feedback.topic))).all() == ["recent"]
        assert sorted((await s.scalars(select(Reminder.kind))).all()) == ["due", "recent"]
        rows = (await s.execute(select(Delivery.broadcast_id, Delivery.user_id, Delivery.chat_id))).all()
        assert sorted(rows) == sorted([(old.id, None, 0), (recent.id, 601, 601)])  # the old one counts, anonymous
