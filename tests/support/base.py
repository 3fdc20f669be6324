"""What every kind of test shares and that needs no application code: the tokens and an admin engine."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

BOT_TOKEN = "123456:TEST-test-test-test-test-test"
RASA_TOKEN = "test-rasa-token"


def admin_engine(base_url: str) -> Engine:
    """An engine outside any transaction, for CREATE/DROP DATABASE and schema resets."""
    return create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
