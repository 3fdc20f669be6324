"""What the bot says, loaded from data/content/*.yml (Vietnamese and English), validated on load.

Each file holds `texts:` whose keys become `<file stem>.<key>`. An entry has `vi` and `en`, and — for a
fact (fee, deadline, legal rule) — its `source` and the date it was `checked`.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kernel.types import LANGS

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "data" / "content"


class TextEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    vi: str = Field(min_length=1)
    en: str = Field(min_length=1)
    source: str | None = None
    checked: dt.date | None = None

    @field_validator("vi", "en")
    @classmethod
    def _no_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is blank")
        return v


class ContentFile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    texts: dict[str, TextEntry] = Field(default_factory=dict)


class ContentError(Exception):
    """A content file is missing, malformed or incomplete."""


class Content:
    """All texts, keyed `<file>.<key>`. Built once at start-up and shared read-only."""

    def __init__(self, entries: Mapping[str, TextEntry], raw: Mapping[str, Mapping[str, Any]]) -> None:
        self._entries = dict(entries)
        self.raw = dict(raw)  # the whole parsed file per stem, for capability-specific sections

    @classmethod
    def load(cls, directory: Path = DEFAULT_DIR) -> Content:
        entries: dict[str, TextEntry] = {}
        raw: dict[str, Mapping[str, Any]] = {}
        files = sorted(directory.glob("*.yml"))
        if not files:
            raise ContentError(f"no content files in {directory}")
        for path in files:
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                parsed = ContentFile.model_validate(data)
            except (yaml.YAMLError, ValueError) as exc:
                raise ContentError(f"{path.name}: {exc}") from exc
            raw[path.stem] = data
            for key, entry in parsed.texts.items():
                entries[f"{path.stem}.{key}"] = entry
        return cls(entries, raw)

    def has(self, key: str) -> bool:
        return key in self._entries

    def entry(self, key: str) -> TextEntry:
        try:
            return self._entries[key]
        except KeyError:
            raise ContentError(f"no text {key!r}") from None

    def text(self, key: str, lang: str, **values: object) -> str:
        """The text in `lang`, with `values` HTML-escaped and substituted for `{name}` placeholders."""
        entry = self.entry(key)
        template = entry.en if lang == "en" else entry.vi
        if not values:
            return template
        safe = {k: html.escape(str(v), quote=False) for k, v in values.items()}
        return template.format_map(safe)

    def keys(self) -> list[str]:
        return sorted(self._entries)


__all__ = ["LANGS", "Content", "ContentError", "TextEntry"]
