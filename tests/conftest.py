"""Shared fixtures: databases (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), the real Rasa server,
the Telegram and portal emulators, and the real PTB Application wired to them."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool
from telegram.ext import Application

from bot.app import Runtime, build_application, start_in_loop, stop_in_loop
from core.settings import Settings
from nlu.server import RasaServer, RasaStartError, start_rasa
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient
from sandbox.telegram.server import TelegramEmulator
from tests.logscan import log_scan  # noqa: F401  (autouse: every test's log lines are scanned for PII)

RASA_TOKEN = "test-rasa-token"
PG_ENV = "TEST_DATABASE_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run the soak and other slow tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # `make test-fast` leaves out what needs the real Rasa server: marked by the fixture it uses
        if "rasa" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.rasa)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow test: run with `make test-long`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# ---- databases ----------------------------------------------------------------------------------------


def _admin(base_url: str) -> Engine:
    return create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database per test session, so runs never see each other's rows."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    name = f"ca_test_{uuid.uuid4().hex[:10]}"
    admin = _admin(base)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.skip(f"PostgreSQL at {PG_ENV} is not reachable: {exc}")
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs once on a fresh SQLite file and once on PostgreSQL (or is skipped with a reason)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'assistant.db'}"
    url: str = request.getfixturevalue("pg_url")
    engine = _admin(url)
    with engine.connect() as conn:  # a clean schema for every test
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


# ---- the real Rasa server -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rasa() -> Iterator[RasaServer]:
    """One real Rasa server for the session (≈20 s to start), bound to loopback with a token."""
    try:
        server = start_rasa(RASA_TOKEN)
    except RasaStartError as exc:
        pytest.fail(f"cannot start the Rasa server: {exc} (make test trains the model first)")
    yield server
    server.stop()


# ---- the Telegram emulator and the real bot --------------------------------------------------------------

BOT_TOKEN = "123456:TEST-test-test-test-test-test"


@pytest.fixture(scope="session")
async def tg() -> AsyncIterator[tuple[TelegramEmulator, str]]:
    """The Telegram Bot API emulator, a real HTTP server on a free port, for the whole session."""
    emulator = TelegramEmulator(tokens=[BOT_TOKEN])
    url = await emulator.start("127.0.0.1", 0)
    yield emulator, url
    await emulator.stop()


@pytest.fixture
async def sandbox(tg: tuple[TelegramEmulator, str]) -> AsyncIterator[SandboxClient]:
    """A control client on a freshly reset emulator (no users, no messages, default rates, no faults)."""
    client = SandboxClient(tg[1])
    await client.reset()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def portal_emulator() -> AsyncIterator[PortalEmulator]:
    """The portal API emulator, a real HTTP server on a free port, for the whole session."""
    emulator = PortalEmulator()
    await emulator.start("127.0.0.1", 0)
    yield emulator
    await emulator.stop()


@pytest.fixture
def portal(portal_emulator: PortalEmulator) -> PortalEmulator:
    """The portal emulator back at its seed: sample dossiers in every status, no faults, no tokens."""
    portal_emulator.reset()
    return portal_emulator


def bot_settings(tg_url: str, db_url: str, rasa_url: str = "http://127.0.0.1:9", **overrides: object) -> Settings:
    values: dict[str, object] = {
        "telegram_bot_token": BOT_TOKEN,
        "telegram_base_url": f"{tg_url}/bot",
        "database_url": db_url,
        "rasa_url": rasa_url,
        "rasa_token": RASA_TOKEN,
        "webhook_url": None,
        "admin_ids": [],
        "staff_chat_id": None,
        # Nothing listens on port 9: a test that needs the portal passes the emulator's URLs.
        "portal_base_url": "http://127.0.0.1:9",
        "portal_token_url": "http://127.0.0.1:9/oauth/token",
        **overrides,
    }
    return Settings.model_validate(values)


def portal_settings(emulator: PortalEmulator) -> dict[str, object]:
    """Settings overrides that point the bot at the portal emulator."""
    return {
        "portal_base_url": emulator.base_url,
        "portal_token_url": emulator.token_url,
        "portal_client_id": emulator.client_id,
        "portal_client_secret": emulator.client_secret,
    }


class BotRunner:
    """Starts the real PTB Application (polling the emulator over HTTP) and stops it at teardown."""

    def __init__(self, tg_url: str) -> None:
        self.tg_url = tg_url
        self.running: list[tuple[Application, Runtime]] = []

    async def start(
        self, db_url: str, *, rasa_url: str = "http://127.0.0.1:9", capabilities: object = None, **overrides: object
    ) -> Runtime:
        settings = bot_settings(self.tg_url, db_url, rasa_url, **overrides)
        app, runtime = build_application(settings, capabilities=capabilities)  # type: ignore[arg-type]
        await start_in_loop(app)
        self.running.append((app, runtime))
        return runtime

    async def stop(self, runtime: Runtime) -> None:
        for i, (app, rt) in enumerate(self.running):
            if rt is runtime:
                await stop_in_loop(app)
                del self.running[i]
                return

    async def stop_all(self) -> None:
        while self.running:
            await self.stop(self.running[-1][1])


@pytest.fixture
async def bots(tg: tuple[TelegramEmulator, str]) -> AsyncIterator[BotRunner]:
    runner = BotRunner(tg[1])
    yield runner
    await runner.stop_all()
