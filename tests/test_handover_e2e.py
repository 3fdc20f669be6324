"""End to end: a citizen and a staff group talk through the real PTB Application and the Telegram emulator."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select

from actions.base import Capability
from actions.handover import HandoverCapability, OfficeHours
from bot.app import Runtime, Wiring
from sandbox.telegram.client import SandboxClient, SimGroup, SimMessage, SimUser
from store.db import unit_of_work
from store.models_handover import CLOSED, Ticket
from tests.conftest import BotRunner


def always_open() -> OfficeHours:
    """Office hours round the clock, so the test does not depend on when it runs."""
    return OfficeHours(ZoneInfo("UTC"), {d: ((dt.time(0), dt.time.max),) for d in range(7)})


async def one(chat: object) -> SimMessage:
    [msg] = await chat.wait_for(count=1, timeout=15)  # type: ignore[attr-defined]
    assert isinstance(msg, SimMessage)
    return msg


async def test_ticket_relay_take_close_and_rating(sandbox: SandboxClient, bots: BotRunner, db_url: str) -> None:
    citizen = await sandbox.user(3101, first_name="An", language_code="vi")
    staff = await sandbox.user(3901, first_name="Bình", language_code="vi")
    group = await sandbox.group("Tổ công tác 06", members=[staff], supergroup=True, bot_admin=True)
    handover = HandoverCapability(always_open())

    def capabilities(_: Wiring) -> list[Capability]:
        return [handover]

    runtime = await bots.start(db_url, capabilities=capabilities, staff_chat_id=group.chat_id)
    await _conversation(runtime, citizen, staff, group)


async def _conversation(runtime: Runtime, citizen: SimUser, staff: SimUser, group: SimGroup) -> None:

    await citizen.command("menu")
    menu = await one(citizen)
    await citizen.press(menu, "👤 Gặp cán bộ")
    opened = await one(citizen)
    assert "chuyển yêu cầu của bạn tới cán bộ" in opened.body
    post = await one(group)
    assert post.body.startswith("🆘 Yêu cầu #") and "An" in post.body
    assert post.labels == ["🙋 Nhận", "✅ Đóng"]

    # The citizen writes: it goes to the group (ID number masked), the bot only acknowledges.
    await citizen.send("toi bi khoa tai khoan, cccd 001099012345")
    relayed = await one(group)
    assert "[id]" in relayed.body and "001099012345" not in relayed.body
    assert (await one(citizen)).body.startswith("✓")

    # [Take] edits the post and tells the citizen who is helping.
    await group.press(staff, post, "🙋 Nhận")
    edited = await one(group)
    assert edited.message_id == post.message_id and "Bình đã nhận" in edited.body
    assert "Cán bộ Bình đã nhận" in (await one(citizen)).body

    # The staff member replies to the post in the group: the citizen gets it.
    await group.send(staff, "Bạn mang CCCD tới công an phường để mở khoá nhé.", reply_to=post)
    answer = await one(citizen)
    assert answer.body == "👤 Bình (cán bộ): Bạn mang CCCD tới công an phường để mở khoá nhé."

    # [Close] edits the post and asks the citizen for a rating.
    await group.press(staff, post, "✅ Đóng")
    closed = await one(group)
    assert closed.message_id == post.message_id and "Đã đóng" in closed.body and not closed.buttons
    prompt = await one(citizen)
    assert prompt.labels == ["1 ⭐", "2 ⭐", "3 ⭐", "4 ⭐", "5 ⭐"]
    await citizen.press(prompt, "5 ⭐")
    thanks = await one(citizen)
    assert thanks.message_id == prompt.message_id and "⭐⭐⭐⭐⭐" in thanks.body

    async with unit_of_work(runtime.sessions) as session:
        [ticket] = (await session.scalars(select(Ticket))).all()
        assert (ticket.status, ticket.rating, ticket.taken_by, ticket.user_id) == (CLOSED, 5, staff.id, citizen.id)
