"""Structured logging: one JSON line per event, for our code and the libraries', with PII redacted."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from core.pii import redact


def _redacted(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    if depth > 5:  # nothing we log nests deeper; stop rather than walk a cycle
        return value
    if isinstance(value, (list, tuple, set)):
        return [_redacted(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v, depth + 1) for k, v in value.items()}
    return value


# Log fields that hold a Telegram user or private-chat id: logged as a keyed hash, so the log lines of one citizen
# still belong together (for an operator following one case) but a log line alone does not name anyone, and after
# /forget nothing in the logs links back to them once the key is changed. Group chats (negative ids) stay as they are.
ID_FIELDS = frozenset({"user", "user_id", "actor", "actor_id", "chat", "chat_id", "citizen", "sender"})
_id_key: bytes = secrets.token_bytes(16)


def pseudonym(user_id: int | str) -> str:
    """The form a user id takes in the logs (`u:` and 12 hex digits of HMAC-SHA256 under LOG_ID_KEY)."""
    digest = hmac.new(_id_key, str(user_id).encode(), hashlib.sha256).hexdigest()
    return f"u:{digest[:12]}"


def _is_person(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return isinstance(value, str) and value.isdigit()


def _pseudonymise_ids(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in ID_FIELDS & event.keys():
        if _is_person(event[key]):
            event[key] = pseudonym(event[key])
    return event


# Fields the logging set-up writes itself: they never hold a citizen's words, and the timestamp alone (8+ digits)
# would cost every line a full pass of the number detector.
_OWN_FIELDS = frozenset({"timestamp", "level", "logger"})


def _redact_values(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # Nested values too: a payload or an error body logged as a dict must not carry a number past the filter.
    for key, value in list(event.items()):
        if key not in _OWN_FIELDS:
            event[key] = _redacted(value)
    return event


def setup_logging(
    level: str = "INFO", fmt: str = "json", stream: TextIO | None = None, id_key: str | None = None
) -> None:
    """Configure structlog and the standard library's logging (httpx, telegram, apscheduler) alike.

    `id_key` (LOG_ID_KEY) keys the hash user ids are logged as; without it a random key is drawn for this process,
    so ids hash the same within one run only."""
    global _id_key  # noqa: PLW0603 - one key for the process's one logging configuration
    if id_key:
        _id_key = id_key.encode()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _pseudonymise_ids,
            _redact_values,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, and Telegram URLs carry the bot token.
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
