"""Prometheus metrics of the bot process (served on /metrics by bot/health.py); no label carries a user id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPDATES = Counter("assistant_updates_total", "Telegram updates handled, by kind", ["kind"])
REFUSED = Counter("assistant_updates_refused_total", "Updates refused by flood control")
REPLY_RETRIES = Counter("assistant_reply_retries_total", "Reply API calls tried again after a Telegram failure")
NLU_SECONDS = Histogram(
    "assistant_nlu_seconds",
    "Time of one NLU parse request",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
NLU_ERRORS = Counter("assistant_nlu_errors_total", "NLU requests that failed or answered an error")
REVIEWS = Counter("assistant_review_queue_added_total", "Messages added to the review queue, by reason", ["reason"])
PORTAL = Counter("assistant_portal_responses_total", "Portal API responses, by status class", ["status"])
TELEGRAM = Counter(
    "assistant_telegram_calls_total", "Bot API calls, by method and status (429 = rate limited)", ["method", "status"]
)
QUEUE = Gauge("assistant_queue_depth", "Work waiting in the database, by queue", ["queue"])
UP = Gauge("assistant_dependency_up", "1 when the dependency answered the last health check", ["dependency"])
