"""`python -m tools.ask` end to end, as a maintainer runs it: two questions on stdin, one JSON line each."""

from __future__ import annotations

import json
import subprocess
import sys

from core.settings import ROOT


def test_ask_prints_what_the_citizen_sees_for_each_question() -> None:
    questions = "Số tổng đài VNeID là gì?\nlàm hộ chiếu mất bao lâu\n"
    done = subprocess.run(
        [sys.executable, "-m", "tools.ask"],
        check=False,
        cwd=ROOT,
        input=questions,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    hotline, passport = (json.loads(line) for line in done.stdout.splitlines())
    assert hotline["question"] == "Số tổng đài VNeID là gì?" and hotline["lang"] == "vi"
    assert hotline["intent"] and 0 < hotline["confidence"] <= 1
    [answer] = hotline["replies"]
    assert "1900 0368" in answer["text"] and "<b>" not in answer["text"]  # plain text, HTML stripped
    assert answer["buttons"] == ["📖 Xem hướng dẫn: Tổng đài hỗ trợ và công an"]  # the related guide, offered
    assert "8 ngày làm việc" in passport["replies"][0]["text"]
    assert "Rasa" in done.stderr  # progress goes to stderr, stdout holds only the answers
