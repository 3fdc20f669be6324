"""The first-reply regression set (tests/support/data/first_reply.yml): loading it and judging one answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FILE = Path(__file__).parent / "data" / "first_reply.yml"
STYLES = (("vi", "vi", "vi"), ("plain", "vi", "vi"), ("en", "en", "en"))  # (field, Telegram language, expect)


@dataclass(frozen=True)
class Case:
    topic: str
    style: str
    question: str
    lang: str
    expect: tuple[str, ...]


def load_cases(path: Path = FILE) -> list[Case]:
    cases = []
    for topic in yaml.safe_load(path.read_text(encoding="utf-8"))["topics"]:
        for style, lang, expect in STYLES:
            cases.append(Case(topic["id"], style, topic[style], lang, tuple(topic["expect"][expect])))
    return cases


def missing(case: Case, answer: dict[str, Any]) -> list[str]:
    """The expected strings the first reply lacks (text and button labels, case-insensitive)."""
    seen = " ".join(r["text"] + " " + " ".join(r["buttons"]) for r in answer["replies"]).casefold()
    return [e for e in case.expect if e.casefold() not in seen]
