"""One citizen's slow or heavy traffic must not hold up the others: the assembled bot over HTTP (Telegram and
portal emulators), on SQLite and on PostgreSQL. A portal lookup runs before the update's transaction (SQLite's
one write lock is not held across it)."""

from __future__ import annotations

import asyncio
import time

from actions.dossier import encode_start_payload
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient
from tests.conftest import BotRunner, portal_settings

PROCESSING = "000.00.12.H22-240101-0003"  # status 4 in the portal's seed
NO_RASA = "http://127.0.0.1:9"  # these tests type no free text: commands and buttons only


async def test_a_hanging_portal_does_not_delay_another_citizens_reply(
    sandbox: SandboxClient, bots: BotRunner, portal: PortalEmulator, db_url: str
) -> None:
    # The first attempt hangs until the 3 s read timeout, the retry answers: the first citizen waits ≈3 s.
    await bots.start(db_url, rasa_url=NO_RASA, portal_read_timeout_s=3.0, **portal_settings(portal))
    waiting = await sandbox.user(6101, first_name="An", language_code="vi")
    other = await sandbox.user(6102, first_name="Bình", language_code="vi")
    portal.hang(count=1)
    # Both are new citizens: each update writes (the citizen's row), so on SQLite both need the write lock.
    await waiting.command("start", encode_start_payload(PROCESSING))
    await asyncio.sleep(0.3)  # the lookup is under way
    started = time.monotonic()
    await other.command("start")
    await other.wait_for(count=2, timeout=10)  # the welcome and the menu
    other_s = time.monotonic() - started
    print(f"another citizen answered in {other_s:.2f} s while a portal lookup hung")
    assert other_s < 1.0, other_s
    assert not await waiting.read(), "the first citizen was answered before the portal did"
    [card] = await waiting.wait_for(count=1, timeout=15)
    assert PROCESSING in card.body
