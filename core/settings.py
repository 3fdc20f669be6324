"""One frozen, typed settings object, read from the environment and `.env` (documented in .env.example)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    # Telegram
    telegram_bot_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: SecretStr | None = None
    admin_ids: list[int] = Field(default_factory=list)
    staff_chat_id: int | None = None
    answer_in_groups: bool = False

    # Storage
    database_url: str = f"sqlite+aiosqlite:///{ROOT / 'var' / 'assistant.db'}"

    # NLU (Rasa server)
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_token: SecretStr = SecretStr("change-me-rasa-token")
    nlu_connect_timeout_s: float = 1.0
    nlu_read_timeout_s: float = 2.0
    nlu_fallback_threshold: float = 0.55
    nlu_ambiguity_threshold: float = 0.12
    nlu_ambiguity_floor: float = 0.25  # below this even the best reading is noise: fall back instead of asking

    # Provincial portal
    portal_base_url: str = "http://127.0.0.1:8082"
    portal_token_url: str = "http://127.0.0.1:8082/oauth/token"  # noqa: S105 (a URL, not a secret)
    portal_client_id: str = "citizen-assistant"
    portal_client_secret: SecretStr = SecretStr("change-me")
    portal_connect_timeout_s: float = 2.0
    portal_read_timeout_s: float = 5.0

    # Behaviour
    timezone: str = "Asia/Ho_Chi_Minh"
    default_lang: str = "vi"
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
    flood_messages_per_minute: int = 20
    review_retention_days: int = 90


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
