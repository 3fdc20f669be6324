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
    health_listen: str = "127.0.0.1"
    health_port: int | None = None  # /healthz and /metrics (bot/health.py); off when unset
    # Staff web console (console/): off unless CONSOLE_PORT is set; refuses to start without CONSOLE_SECRET.
    console_listen: str = "127.0.0.1"
    console_port: int | None = None
    console_url: str = "http://127.0.0.1:8090"  # the public base URL put in the bot's sign-in links
    console_secret: SecretStr | None = None  # signs the session cookie and its CSRF token
    console_link_minutes: float = 5.0  # a sign-in link works once, within this long
    console_session_hours: float = 8.0
    console_export_dir: Path = ROOT / "data" / "nlu"  # where labelled review messages are written as Rasa YAML
    nlu_models_dir: Path = ROOT / "models"  # the models page lists, and its swap button loads, models from here
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
    nlu_fallback_threshold: float = 0.45  # = config.yml FallbackClassifier threshold (docs/nlu.md)
    nlu_ambiguity_threshold: float = 0.2  # = config.yml FallbackClassifier ambiguity_threshold
    nlu_ambiguity_floor: float = 0.25  # below this even the best reading is noise: fall back instead of asking

    # Provincial portal
    portal_base_url: str = "http://127.0.0.1:8082"
    portal_token_url: str = "http://127.0.0.1:8082/oauth/token"  # noqa: S105 (a URL, not a secret)
    portal_client_id: str = "citizen-assistant"
    portal_client_secret: SecretStr = SecretStr("change-me")
    portal_connect_timeout_s: float = 2.0
    portal_read_timeout_s: float = 5.0
    portal_deadline_s: float = 8.0  # the longest a citizen waits for one lookup, retries included
    portal_breaker_reset_s: float = 30.0  # after the portal failed 3 times in a row, probe it again this much later
    portal_poll_interval_s: float = 1800.0  # how often each followed dossier is looked up
    portal_budget_rps: float = 2.0  # the most requests per second the poller may send to the portal
    portal_poll_run_s: float = 5.0  # the poller wakes this often and uses at most budget × this many requests
    dossier_max_follows: int = 10
    dossier_lookups_per_hour: int = 10  # new codes one citizen may look up per hour (codes seen before are free)
    dossier_lookup_rps: float = 1.0  # citizens' lookups this process may send the portal per second, on average…
    dossier_lookup_burst: int = 20  # …and at most this many at once; beyond that citizens are asked to wait a minute
    dossier_verify_tries: int = 3  # wrong phone digits for one dossier before it is locked for the citizen
    dossier_verify_lock_minutes: int = 30

    # Behaviour
    # The province's commune-level units (news areas); another province drops in its own file (checked at start).
    areas_file: Path = ROOT / "data" / "areas.yml"
    timezone: str = "Asia/Ho_Chi_Minh"
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
    log_id_key: SecretStr | None = None  # keys the hash user ids are logged as (core/logs.py); unset: random per run
    flood_messages_per_minute: int = 20
    flood_buttons_per_minute: int = 60  # button presses have their own budget (a forged-callback flood)
    review_retention_days: int = 90
    reminder_cap: int = 20  # upcoming reminders one citizen may have
    reminder_tick_s: float = 1.0
    reminder_draft_hours: float = 1.0  # an unconfirmed reminder expires, and the hourly purge deletes it, after this

    # Personal data (Law 91/2025/QH15): who answers for the data, shown in /privacy, and how long each kind is kept
    # (the hourly purge enforces these; README lists them table by table).
    privacy_controller: str = "Tổ công tác Đề án 06 của tỉnh"
    privacy_contact: str = ""  # the controller's address, e-mail or phone: the operator must set it
    ticket_retention_days: int = 365  # closed handover tickets (and their message ids) are deleted after this
    feedback_retention_days: int = 180  # 👍/👎 votes on answers
    reminder_history_days: int = 90  # reminders already sent, cancelled or dropped
    delivery_retention_days: int = 180  # broadcast deliveries lose who received them (the count stays)

    # Staff: broadcasts and handover
    broadcast_rate: float = 30.0  # messages per second, all chats together (Telegram's bulk limit)
    broadcast_paid_rate: float = 1000.0  # with allow_paid_broadcast (billed: admins only)
    # A broadcast to at least this many people needs a second staff member's approval before it goes out.
    broadcast_approval_audience: int = 1000
    office_hours: str = "mon-fri 07:30-11:30,13:30-17:00"  # local time; holidays from data/holidays.yml
    handover_repost_after_s: float = 1800.0  # a ticket nobody took is posted again after this long


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
