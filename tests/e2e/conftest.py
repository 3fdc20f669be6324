"""End-to-end fixtures: the real Rasa server and the real bot, talking HTTP to the emulators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from nlu.server import RasaServer, RasaStartError, start_rasa
from sandbox.telegram.server import TelegramEmulator
from tests.support.base import RASA_TOKEN
from tests.support.bots import BotRunner


@pytest.fixture(scope="session")
def rasa() -> Iterator[RasaServer]:
    """One real Rasa server per test process (≈20 s to start), bound to loopback with a token."""
    try:
        server = start_rasa(RASA_TOKEN)
    except RasaStartError as exc:
        pytest.fail(f"cannot start the Rasa server: {exc} (make test trains the model first)")
    yield server
    server.stop()


@pytest.fixture
async def bots(tg: tuple[TelegramEmulator, str]) -> AsyncIterator[BotRunner]:
    runner = BotRunner(tg[1])
    yield runner
    await runner.stop_all()
