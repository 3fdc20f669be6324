"""End to end, the assembled assistant: the real PTB Application with every capability as `make run` builds it,
the real Rasa server, the Telegram and portal emulators over HTTP. Each test checks that the pieces are wired to
each other (menu, NLU entities, portal, poller, feedback, erasure), not each capability's details."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from nlu.server import RasaServer
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient, SimMessage, SimUser
from store.all_models import Base
from store.db import unit_of_work
from store.models import NluReview, User
from store.models_dossier import DossierFollow
from store.models_handover import Feedback
from tests.support.bots import BotRunner, portal_settings

PROCESSING = "000.00.12.H22-240101-0003"


async def one(user: SimUser, wait_s: float = 15) -> SimMessage:
    [msg] = await user.wait_for(count=1, timeout=wait_s)
    return msg


async def test_the_menu_offers_every_capability(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    await bots.start(db_url)
    an = await sandbox.user(4001, first_name="An", language_code="vi")
    await an.command("menu")
    menu = await one(an)
    assert menu.labels == [
        "🪪 Tài khoản VNeID",
        "📋 Thủ tục hành chính",
        "🔎 Tra cứu hồ sơ",
        "📅 Hạn đổi thẻ căn cước",
        "⏰ Lời nhắc",
        "📰 Nhận thông báo",
        "👤 Gặp cán bộ",
        "🇬🇧 English",
    ]


async def test_a_fee_question_is_answered_from_one_sentence_with_its_source(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    binh = await sandbox.user(4002, first_name="Bình", language_code="vi")
    await binh.send("le phi dang ky thuong tru bao nhieu")
    answer = await one(binh)
    assert "Đăng ký thường trú" in answer.body and "Lệ phí" in answer.body
    assert "20.000" in answer.body and "10.000" in answer.body  # in person / online (Circular 75/2022)
    assert "Kiểm tra ngày" in answer.body  # "checked on …" under a fee
    assert answer.labels[-2:] == ["👍", "👎"]
    await binh.press(answer, "👎")
    assert "thiếu" in (await one(binh)).body  # "what was missing?"
    await binh.send("không nói nộp ở đâu")
    await one(binh)
    async with unit_of_work(runtime.sessions) as s:
        [review] = (await s.scalars(select(NluReview).where(NluReview.reason == "feedback"))).all()
        assert "không nói nộp ở đâu" in review.text and review.intent == "proc:permanent_residence"


async def test_status_lookup_follow_and_change_notice(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, portal: PortalEmulator, db_url: str
) -> None:
    runtime = await bots.start(
        db_url, rasa_url=rasa.url, portal_poll_interval_s=1.0, portal_poll_run_s=0.5, **portal_settings(portal)
    )
    chi = await sandbox.user(4003, first_name="Chi", language_code="vi")
    await chi.send(f"tra cứu hồ sơ {PROCESSING.lower()}")
    public = await one(chi)
    assert "Đang xử lý" in public.body and "N***" not in public.body  # a bare code: procedure and status only
    # The full card and following need the last 4 digits of the applicant's phone number.
    await chi.press(public, "🔑 Xem chi tiết và theo dõi")
    await one(chi)
    await chi.send(portal.phone_last4(PROCESSING))
    card = await one(chi)
    assert "Đang xử lý" in card.body and "N*** V** A" in card.body and "Nguyễn Văn An" not in card.body
    await chi.press(card, "🔔 Theo dõi hồ sơ này")
    followed = await one(chi)
    assert "theo dõi" in followed.body
    await asyncio.sleep(1.5)  # Telegram takes about one message a second per chat: let the notice not be throttled
    portal.advance(PROCESSING)  # 4 → the next status
    notice = await one(chi, wait_s=20)
    assert PROCESSING in notice.body
    # The poller records the new state in the transaction that sent the notice, so it lands just after it.
    for _ in range(50):
        async with unit_of_work(runtime.sessions) as s:
            [follow] = (await s.scalars(select(DossierFollow))).all()
        if follow.last_status == portal.dossier(PROCESSING).status:
            break
        await asyncio.sleep(0.1)
    assert follow.last_status == portal.dossier(PROCESSING).status == 9


async def test_forget_erases_every_row_about_the_citizen(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    dung = await sandbox.user(4004, first_name="Dũng", language_code="vi")
    await dung.send("lệ phí làm hộ chiếu")
    answer = await one(dung)
    await dung.press(answer, "👎")  # a feedback row and a review-queue row
    await one(dung)
    async with unit_of_work(runtime.sessions) as s:
        for model in (NluReview, Feedback):
            assert await s.scalar(select(func.count()).select_from(model)) == 1
    await dung.command("forget")
    ask = await one(dung)
    await dung.press(ask, "🗑 Xoá hết")
    done = await one(dung)
    assert done.message_id == ask.message_id and "Đã xoá" in done.body
    async with unit_of_work(runtime.sessions) as s:
        assert await s.get(User, 4004) is None
        for model in (NluReview, Feedback):
            assert await s.scalar(select(func.count()).select_from(model)) == 0
        for table in Base.metadata.sorted_tables:
            if "user_id" in table.c:
                rows = await s.scalar(select(func.count()).select_from(table).where(table.c.user_id == 4004))
                assert rows == 0, table.name
