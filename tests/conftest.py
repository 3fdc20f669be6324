"""Shared fixtures: databases (SQLite, and PostgreSQL when TEST_DATABASE_URL is set) and the Telegram and portal
emulators. The real Rasa server and the real bot are fixtures of `tests/e2e/` only. The emulators are imported
inside their fixtures, so a unit test that needs neither does not pay for them."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import make_url, text

from tests.support.base import BOT_TOKEN, admin_engine
from tests.support.logscan import log_scan  # noqa: F401  (autouse: every test's log lines are scanned for PII)

if TYPE_CHECKING:
    from sandbox.portal.server import PortalEmulator
    from sandbox.telegram.client import SandboxClient
    from sandbox.telegram.server import TelegramEmulator

PG_ENV = "TEST_DATABASE_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run the soak and other slow tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow test: run with `make test-long`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# ---- databases ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database per test session, so runs never see each other's rows."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    name = f"ca_test_{uuid.uuid4().hex[:10]}"
    admin = admin_engine(base)
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
    engine = admin_engine(url)
    with engine.connect() as conn:  # a clean schema for every test
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


# ---- the Telegram emulator and the real bot --------------------------------------------------------------


@pytest.fixture(scope="session")
async def tg() -> AsyncIterator[tuple[TelegramEmulator, str]]:
    """The Telegram Bot API emulator, a real HTTP server on a free port, for the whole session."""
    from sandbox.telegram.server import TelegramEmulator

    emulator = TelegramEmulator(tokens=[BOT_TOKEN])
    url = await emulator.start("127.0.0.1", 0)
    yield emulator, url
    await emulator.stop()


@pytest.fixture
async def sandbox(tg: tuple[TelegramEmulator, str]) -> AsyncIterator[SandboxClient]:
    """A control client on a freshly reset emulator (no users, no messages, default rates, no faults)."""
    from sandbox.telegram.client import SandboxClient

    client = SandboxClient(tg[1])
    await client.reset()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def portal_emulator() -> AsyncIterator[PortalEmulator]:
    """The portal API emulator, a real HTTP server on a free port, for the whole session."""
    from sandbox.portal.server import PortalEmulator

    emulator = PortalEmulator()
    await emulator.start("127.0.0.1", 0)
    yield emulator
    await emulator.stop()


@pytest.fixture
def portal(portal_emulator: PortalEmulator) -> PortalEmulator:
    """The portal emulator back at its seed: sample dossiers in every status, no faults, no tokens."""
    portal_emulator.reset()
    return portal_emulator
