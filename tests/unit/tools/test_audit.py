"""`make audit` (tools/audit.py): the full installed sets are what is audited; no database is a failure unless
accepted out loud."""

from __future__ import annotations

import pytest

from tools import audit


def test_without_a_vulnerability_database_the_audit_fails_unless_accepted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(audit, "reachable", lambda url, body: "ConnectError: no network")
    monkeypatch.delenv("AUDIT_OFFLINE_OK", raising=False)
    assert audit.main() == 1
    assert "FAILED" in capsys.readouterr().out
    monkeypatch.setenv("AUDIT_OFFLINE_OK", "1")
    assert audit.main() == 0
    assert "NOT AUDITED" in capsys.readouterr().out


def test_the_audited_set_is_every_installed_package_not_only_the_top_level_pins() -> None:
    pinned = audit.frozen(audit.ENVIRONMENTS["bot"])
    names = {line.split("==")[0].lower() for line in pinned.splitlines() if "==" in line}
    top_level = {"python-telegram-bot", "sqlalchemy", "httpx", "apscheduler"}
    transitive = {"anyio", "h11", "certifi", "greenlet"}  # pulled in by httpx and SQLAlchemy, pinned nowhere by us
    assert top_level <= names and transitive & names, sorted(names)[:20]


def test_every_accepted_advisory_says_why() -> None:
    lines = [line for line in audit.EXCEPTIONS.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines, "the Rasa environment's known advisories are listed"
    for line in lines:
        advisory, package, reason = line.split(maxsplit=2)
        assert advisory.startswith(("CVE-", "GHSA-", "PYSEC-")) and package and len(reason) > 40, line
