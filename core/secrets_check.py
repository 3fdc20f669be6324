"""Refuse to start with a secret that protects nothing: blank, a public default, or too short to be random.

`python -m bot` calls `startup_problems(settings)` before anything listens. There is no "sandbox mode" here: the
local sandbox (`make run`) generates random secrets for its run, so it passes the same check as production.
"""

from __future__ import annotations

from pydantic import SecretStr

from core.settings import Settings

WEBHOOK_SECRET_MIN = 32  # Telegram allows 1-256 characters of A-Z a-z 0-9 _ -; 32 random ones are ~190 bits
SECRET_MIN = 16
_ALLOWED_WEBHOOK_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# Values published in this repository (.env.example, the portal emulator's seed, older defaults): never secret.
PUBLIC_DEFAULTS = frozenset({"change-me", "change-me-rasa-token", "changeme", "secret", "password", "test"})


def _weak(value: str, minimum: int) -> str | None:
    """Why `value` cannot be a secret, or None."""
    if not value:
        return "it is empty"
    if value.lower() in PUBLIC_DEFAULTS or value.lower().startswith("change-me"):
        return "it is a public default value"
    if len(value) < minimum:
        return f"it has {len(value)} characters, fewer than {minimum}"
    if len(set(value)) < min(10, minimum // 2):
        return "it repeats too few distinct characters to be random"
    return None


def _value(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""


def startup_problems(settings: Settings) -> list[str]:
    """Every reason the bot must not start with these settings, phrased for the operator."""
    problems = []
    if settings.webhook_url:
        secret = _value(settings.webhook_secret)
        why = _weak(secret, WEBHOOK_SECRET_MIN)
        if why is None and not set(secret) <= _ALLOWED_WEBHOOK_CHARS:
            why = "Telegram accepts only A-Z, a-z, 0-9, _ and - in it"
        if why:
            problems.append(
                f"WEBHOOK_SECRET: {why}. In webhook mode anyone who can reach the webhook could post updates "
                f"'from' any user (an admin included) without it. Set at least {WEBHOOK_SECRET_MIN} random "
                "characters, e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
    named = (("RASA_TOKEN", settings.rasa_token), ("PORTAL_CLIENT_SECRET", settings.portal_client_secret))
    for name, configured in named:
        why = _weak(_value(configured), SECRET_MIN)
        if why:
            problems.append(f"{name}: {why}. Set the real value (at least {SECRET_MIN} random characters).")
    return problems
