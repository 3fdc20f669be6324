"""Shared fixtures: databases (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), the real Rasa server,
the Telegram and portal emulators, and the real PTB Application wired to them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from nlu.server import RasaServer, RasaStartError, start_rasa

RASA_TOKEN = "test-rasa-token"
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
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means: skip, with the reason
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
