"""Every log line the suite writes goes through the production formatter into memory, and a test fails if its
lines carry a citizen ID number, a phone number, a secret, or an unhandled update ("update.failed")."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog

from core.logs import setup_logging
from core.pii import contains_pii

# The secrets the fixtures hand the bot: none may appear in a log line, in any form.
SECRETS: list[str] = ["TEST-test-test-test-test-test", "test-rasa-token"]


class LogBuffer:
    """The rendered lines (JSON, redacted) of the current test."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.mark = 0
        self.allow_failed = False  # a fault test that provokes the error handler on purpose sets it

    def since_mark(self) -> list[str]:
        return self.stream.getvalue()[self.mark :].splitlines()

    def start_test(self) -> None:
        self.truncate()
        self.allow_failed = False

    def truncate(self) -> None:
        """Forget the lines so far (each test is scanned on its own; a soak scans as it goes)."""
        self.stream.seek(0)
        self.stream.truncate(0)
        self.mark = 0

    def check(self) -> None:
        """Fail on PII, secrets or (unless allowed) a failed update in the lines since the mark."""
        lines = self.since_mark()
        leaked = leaks(lines)
        assert not leaked, "log lines leak PII or a secret:\n" + "\n".join(leaked[:5])
        if not self.allow_failed:
            failed = failures(lines)
            assert not failed, "an update failed with an unhandled exception:\n" + "\n".join(failed[:3])


BUFFER = LogBuffer()


def install(level: str = "INFO") -> None:
    setup_logging(level, "json", stream=BUFFER.stream)
    # Tests that use structlog.testing.capture_logs need loggers that re-read the configuration.
    structlog.configure(cache_logger_on_first_use=False)


def leaks(lines: list[str], secrets: list[str] | None = None) -> list[str]:
    """The lines that carry PII or one of the secrets."""
    found = []
    for line in lines:
        if contains_pii(line) or any(s in line for s in (secrets or SECRETS)):
            found.append(line)
    return found


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if '"update.failed"' in line]


@pytest.fixture(autouse=True)
def log_scan() -> Iterator[LogBuffer]:
    """Checks the lines logged while one test ran (PII and secrets are never allowed)."""
    if not logging.getLogger().handlers or getattr(logging.getLogger().handlers[0], "stream", None) is not (
        BUFFER.stream
    ):
        install()
    BUFFER.start_test()
    yield BUFFER
    BUFFER.check()
