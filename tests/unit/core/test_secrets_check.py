"""The bot refuses to start with a secret that protects nothing (core/secrets_check.py, bot/__main__.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.secrets_check import startup_problems
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
GOOD = {
    "telegram_bot_token": "123:ABC",
    "rasa_token": "qP3v9XkT2mL8sR4wZ7nB",
    "portal_client_secret": "Hc8Jq2VtN5xR9mKw3LpZ",
}
GOOD_WEBHOOK_SECRET = "Zk3pQ9vX2mT7rL4wN8sB6cH1yJ5dF0gA"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"webhook_url": "https://bot.example.org/tg"}, "WEBHOOK_SECRET"),  # unset
        ({"webhook_url": "https://bot.example.org/tg", "webhook_secret": ""}, "WEBHOOK_SECRET"),  # blank, as shipped
        ({"webhook_url": "https://bot.example.org/tg", "webhook_secret": "short-secret"}, "WEBHOOK_SECRET"),
        ({"webhook_url": "https://bot.example.org/tg", "webhook_secret": "a" * 40}, "WEBHOOK_SECRET"),
        ({"webhook_url": "https://bot.example.org/tg", "webhook_secret": GOOD_WEBHOOK_SECRET + "!"}, "WEBHOOK_SECRET"),
        ({"rasa_token": "change-me-rasa-token"}, "RASA_TOKEN"),  # the old public default
        ({"rasa_token": "abc123"}, "RASA_TOKEN"),
        ({"portal_client_secret": "change-me"}, "PORTAL_CLIENT_SECRET"),  # the emulator seed's value
    ],
)
def test_weak_or_default_secrets_are_named(overrides: dict[str, object], named: str) -> None:
    problems = startup_problems(load_settings(**{**GOOD, **overrides}))
    assert len(problems) == 1 and problems[0].startswith(named), problems


def test_random_secrets_pass_in_polling_and_webhook_mode() -> None:
    assert startup_problems(load_settings(**GOOD)) == []
    webhook = {"webhook_url": "https://bot.example.org/tg", "webhook_secret": GOOD_WEBHOOK_SECRET}
    assert startup_problems(load_settings(**GOOD, **webhook)) == []


def test_the_defaults_are_refused() -> None:
    """Out of the box (no .env) nothing is secret, so the bot must not run with it."""
    problems = startup_problems(load_settings(_env_file=None, telegram_bot_token="123:ABC"))
    assert {p.split(":")[0] for p in problems} == {"RASA_TOKEN", "PORTAL_CLIENT_SECRET"}


def test_python_m_bot_refuses_a_webhook_without_a_secret(tmp_path: Path) -> None:
    """The entry point itself: exits 2 with the reason before it listens on anything or touches the database."""
    db = tmp_path / "never.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK", "RASA", "PORTAL", "TELEGRAM"))},
        "TELEGRAM_BOT_TOKEN": "123:ABC",
        "WEBHOOK_URL": "https://bot.example.org/telegram",
        "WEBHOOK_SECRET": "",
        "RASA_TOKEN": GOOD["rasa_token"],
        "PORTAL_CLIENT_SECRET": GOOD["portal_client_secret"],
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "WEBHOOK_SECRET" in done.stderr and "at least 32 random characters" in done.stderr
    assert not db.exists()
