"""The terminal chat behind `make run`: its session logic against the emulators and the real assembled bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from kernel.content import Content
from nlu.server import RasaServer
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient
from tests.support.bots import BotRunner, portal_settings
from tools.run import STAFF_GROUP_ID, STAFF_ID, ChatSession, _plain

NEW = "000.00.12.H22-240102-0001"  # status 1 in the portal's seed


class Screen:
    """What the terminal printed, and a bounded wait for a line to appear in it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._printed = asyncio.Event()

    def __call__(self, text: str) -> None:
        self.lines.append(text)
        self._printed.set()

    def since(self, mark: int) -> str:
        return "\n".join(self.lines[mark:])

    async def wait_for(self, found: Callable[[str], bool], mark: int, timeout_s: float = 20) -> str:
        async with asyncio.timeout(timeout_s):
            while not found(self.since(mark)):
                self._printed.clear()
                await self._printed.wait()
        return self.since(mark)


@pytest.fixture
async def chat(sandbox: SandboxClient, portal: PortalEmulator) -> AsyncIterator[tuple[ChatSession, Screen]]:
    screen = Screen()
    session = ChatSession(sandbox, portal.base_url, out=screen)
    await session.setup()
    yield session, screen
    await session.aclose()


async def _start(bots: BotRunner, db_url: str, rasa: RasaServer, session: ChatSession, portal: PortalEmulator) -> None:
    await bots.start(
        db_url,
        rasa_url=rasa.url,
        admin_ids=[STAFF_ID],
        staff_chat_id=STAFF_GROUP_ID,
        portal_poll_interval_s=2.0,
        portal_poll_run_s=1.0,
        **portal_settings(portal),
    )
    session.start_watching()


async def test_a_greeting_is_answered_and_a_numbered_button_pressed(
    chat: tuple[ChatSession, Screen], bots: BotRunner, db_url: str, rasa: RasaServer, portal: PortalEmulator
) -> None:
    session, screen = chat
    await _start(bots, db_url, rasa, session, portal)
    content = Content.load()
    greeting = _plain(content.text("common.greet", "vi", name="An"))

    mark = len(screen.lines)
    assert await session.handle("xin chào")
    shown = await screen.wait_for(lambda s: greeting in s, mark)
    assert "[3] 🔎 Tra cứu hồ sơ" in shown  # the menu's buttons are numbered choices

    mark = len(screen.lines)
    assert await session.handle("3")
    ask = _plain(content.text("dossier.ask_code", "vi"))
    await screen.wait_for(lambda s: ask in s, mark)

    mark = len(screen.lines)
    assert await session.handle("99")  # no such button: told so, nothing sent
    assert "no button 99" in screen.since(mark)
    assert not await session.handle("/quit")


async def test_a_followed_dossier_advanced_from_the_chat_brings_a_notice(
    chat: tuple[ChatSession, Screen], bots: BotRunner, db_url: str, rasa: RasaServer, portal: PortalEmulator
) -> None:
    session, screen = chat
    await _start(bots, db_url, rasa, session, portal)
    content = Content.load()

    mark = len(screen.lines)
    await session.handle("/portal codes")
    assert f"{NEW}  Đăng ký khai sinh — 1:" in screen.since(mark)
    assert f"(phone …{portal.phone_last4(NEW)})" in screen.since(mark)

    def button(shown: str, label: str) -> str:
        return next(line.split("]")[0].rsplit("[", 1)[1] for line in shown.splitlines() if f"] {label}" in line)

    mark = len(screen.lines)
    await session.handle(NEW)
    shown = await screen.wait_for(lambda s: "] 🔑 Xem chi tiết và theo dõi" in s, mark)
    mark = len(screen.lines)
    await session.handle(button(shown, "🔑 Xem chi tiết và theo dõi"))
    await screen.wait_for(lambda s: "4 số cuối" in s, mark)
    mark = len(screen.lines)
    await session.handle(portal.phone_last4(NEW))  # what /portal codes shows as "phone …NNNN"
    shown = await screen.wait_for(lambda s: "] 🔔 Theo dõi hồ sơ này" in s, mark)
    mark = len(screen.lines)
    await session.handle(button(shown, "🔔 Theo dõi hồ sơ này"))
    await screen.wait_for(lambda s: NEW in s, mark)

    mark = len(screen.lines)
    await session.handle(f"/portal advance {NEW}")
    assert "now in status 2" in screen.since(mark)
    title = _plain(content.text("dossier.change_title", "vi"))
    await screen.wait_for(lambda s: title in s, mark)
    assert portal.dossier(NEW).status == 2


async def test_staff_take_a_ticket_and_answer_from_the_staff_group(
    chat: tuple[ChatSession, Screen], bots: BotRunner, db_url: str, rasa: RasaServer, portal: PortalEmulator
) -> None:
    session, screen = chat
    await _start(bots, db_url, rasa, session, portal)

    mark = len(screen.lines)
    await session.handle("/menu")
    shown = await screen.wait_for(lambda s: "] 👤 Gặp cán bộ" in s, mark)
    number = next(line.split("]")[0].rsplit("[", 1)[1] for line in shown.splitlines() if "] 👤 Gặp cán bộ" in line)
    mark = len(screen.lines)
    await session.handle(number)
    await screen.wait_for(lambda s: "── to 👥" in s, mark)  # the ticket is posted in the staff group

    await session.handle("/staff")
    assert "Tổ công tác" in session.prompt()
    mark = len(screen.lines)
    await session.handle("Chào An, Tổ 06 đây.")
    shown = await screen.wait_for(lambda s: "Chào An, Tổ 06 đây." in s and "── to An ──" in s, mark)
    assert "(cán bộ)" in shown
