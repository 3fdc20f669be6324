"""Log lines name citizens by a keyed hash of their id, never by the id (core/logs.py)."""

from __future__ import annotations

import io
import json

import structlog

from core.logs import pseudonym, setup_logging
from tests.support.logscan import LogBuffer, install


def test_user_ids_are_logged_as_a_keyed_hash_and_group_chats_as_they_are(log_scan: LogBuffer) -> None:
    structlog.get_logger("t").warning("ticket.opened", user=612345678, chat=612345678, staff_chat=-1001234567890)
    structlog.get_logger("t").warning("staff.refused", actor="612345678", command="staff")
    [opened, refused] = [json.loads(line) for line in log_scan.since_mark() if '"t"' in line]
    assert opened["user"] == opened["chat"] == refused["actor"] == pseudonym(612345678)
    assert opened["staff_chat"] == -1001234567890  # a group is not a person
    assert "612345678" not in json.dumps([opened, refused])


def test_the_key_decides_the_hash() -> None:
    out = io.StringIO()
    try:
        setup_logging("INFO", "json", stream=out, id_key="key-one-0123456789")
        first = pseudonym(42)
        setup_logging("INFO", "json", stream=out, id_key="key-two-0123456789")
        assert pseudonym(42) != first and pseudonym(42) == pseudonym("42")
        assert first.startswith("u:") and len(first) == 14
    finally:
        install()  # back to the suite's log scan stream
