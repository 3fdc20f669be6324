"""Who a broadcast reaches: the province's units (the areas file), the news topics, and the subscriber query."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.text import fold as fold_text
from kernel.content import Content
from store.models import User
from store.models_news import NewsArea, NewsSubscription, NewsTopic

AREAS_FILE = Path(__file__).resolve().parent.parent / "data" / "areas.yml"

# Ids travel in callback payloads (<= 64 bytes with the action name), so they stay short and plain.
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,23}$")]

# Words a citizen may type before a name ("phường Từ Sơn", "xa tam da", "p. Kinh Bắc"): not part of the name.
_TYPE_WORDS = frozenset({"phuong", "xa", "p", "x", "ward", "commune", "dac", "khu", "dackhu"})
_TYPE_WORDS_MARKED = frozenset({"phường", "xã", "đặc"})  # "Phượng" (a name) folds to "phuong" too


def fold(text: str) -> str:
    """Folded (core/text.py), every run of other characters one space: "Phường Từ Sơn" -> "phuong tu son"."""
    return " ".join(re.findall(r"[a-z0-9]+", fold_text(text)))


def _lower_words(text: str) -> str:
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFC", text.lower())))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unit(_Strict):
    """A commune-level unit: a ward (phường), a commune (xã) or a special zone (đặc khu)."""

    id: Slug
    code: str | None = None  # the national list's code, for matching other systems' data
    type: Literal["phuong", "xa", "dac_khu"]
    vi: str = Field(min_length=1)  # "Phường Từ Sơn"
    en: str = Field(min_length=1, pattern=r"^[\x20-\x7e]+$")  # "Tu Son Ward": plain ASCII, typable anywhere

    def name(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi

    @cached_property
    def _bare(self) -> str:
        """The name without its type word, folded: "tu son"."""
        words = fold(self.vi).split()
        return " ".join(words[1:] if len(words) > 1 and words[0] in _TYPE_WORDS else words)

    @cached_property
    def _bare_marked(self) -> str:
        words = _lower_words(self.vi).split()
        return " ".join(words[1:] if len(words) > 1 else words)

    def match_rank(self, query: str, marked: str) -> int | None:
        """How well a typed query names this unit (lower is better), None when it does not.

        `query` is folded ("tu son"); `marked` is the same text with its diacritics ("từ sơn"), so that a citizen
        who typed "Tân Sơn" sees Tân Sơn before Tam Sơn's neighbours. Spaces do not matter ("tuson")."""
        bare, glued = self._bare, self._bare.replace(" ", "")
        q = query.replace(" ", "")
        if not q or q not in glued:
            return None
        if q == glued:
            rank = 0
        elif f"{bare} ".startswith(f"{query} "):
            rank = 2  # the name's first word(s): "son" in "son dong"
        elif glued.startswith(q):
            rank = 4
        elif f" {query}" in f" {bare}":
            rank = 6  # starts a word: "son" in "tu son"
        else:
            rank = 8
        exact_marks = marked != query and marked.replace(" ", "") in self._bare_marked.replace(" ", "")
        return rank if exact_marks or marked == query else rank + 1


class Province(_Strict):
    id: Slug
    vi: str
    en: str


class AreasFileError(Exception):
    """The areas file is missing or not of the expected shape; the message says which file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Matches:
    units: tuple[Unit, ...]  # at most the limit asked for, best first
    total: int  # how many matched in all (more than `units` when the query is too short)


class Areas(_Strict):
    province: Province
    source: str
    checked: dt.date
    units: list[Unit] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Areas:
        seen: set[str] = set()
        for u in self.units:
            if u.id in seen:
                raise ValueError(f"unit id {u.id!r} appears twice")
            seen.add(u.id)
        return self

    @cached_property
    def _by_id(self) -> dict[str, Unit]:
        return {u.id: u for u in self.units}

    def unit(self, unit_id: str | None) -> Unit | None:
        return self._by_id.get(unit_id or "")

    def valid(self, unit_ids: Sequence[str]) -> bool:
        """True for the whole province (no ids) or ids that are all known units."""
        return all(i in self._by_id for i in unit_ids)

    def province_name(self, lang: str) -> str:
        return self.province.en if lang == "en" else self.province.vi

    def label(self, unit_ids: Sequence[str], lang: str) -> str:
        """A human name for an area: the province when empty, else the units' names ("Phường Từ Sơn, Xã Tam Đa")."""
        if not unit_ids:
            return self.province_name(lang)
        names = [u.name(lang) if (u := self.unit(i)) else i for i in unit_ids]
        return ", ".join(sorted(names, key=fold))  # alphabetical as read: "Đồng…" before "Phù…"

    def search(self, text: str, limit: int = 8) -> Matches:
        """The units whose name contains what was typed, with or without diacritics or spaces, best first."""
        words, marked_words = fold(text).split(), _lower_words(text).split()
        if len(marked_words) != len(words):  # a word of signs only ("-"): compare the folded text alone
            marked_words = words
        # "phuong son" may be "Phượng Sơn" or "phường Sơn…": try it whole, and without a leading type word
        readings = [(" ".join(words), " ".join(marked_words))]
        typed_type = marked_words[0] in _TYPE_WORDS_MARKED or marked_words[0] == words[0] if words else False
        if len(words) > 1 and words[0] in _TYPE_WORDS and typed_type:
            readings.append((" ".join(words[1:]), " ".join(marked_words[1:])))
        if len("".join(words)) < 2:  # one letter matches half the province
            return Matches((), 0)
        ranked = []
        for u in self.units:
            ranks = [r for q, m in readings if (r := u.match_rank(q, m)) is not None]
            if ranks:
                ranked.append((min(ranks), fold(u.vi), u))
        ranked.sort(key=lambda t: (t[0], t[1]))
        return Matches(tuple(u for _, _, u in ranked[:limit]), len(ranked))


def load_areas(path: Path = AREAS_FILE) -> Areas:
    """The areas file, checked against its schema; any problem is an AreasFileError naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AreasFileError(f"areas file {path}: cannot be read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise AreasFileError(f"areas file {path}: not valid YAML ({exc})") from exc
    try:
        return Areas.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:5])
        raise AreasFileError(f"areas file {path}: {problems}") from exc


class TopicDef(_Strict):
    id: Slug
    label: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$")]


class NewsSection(_Strict):
    topics: list[TopicDef] = Field(min_length=1)


def news_topics(content: Content) -> list[TopicDef]:
    """The topics a citizen can follow, from the `topics:` section of data/content/news.yml."""
    raw = content.raw.get("news", {})
    return NewsSection.model_validate({"topics": raw.get("topics", [])}).topics


@dataclass(frozen=True, slots=True)
class Audience:
    """A broadcast's target: units (none = the whole province) and topics (empty = every subscriber)."""

    areas: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()

    def condition(self) -> ColumnElement[bool]:
        """Which subscriptions match. A subscriber of the whole province gets one unit's news too (a registration
        day in Từ Sơn ward); a subscriber of other units does not."""
        sub = NewsSubscription
        parts: list[ColumnElement[bool]] = []
        if self.areas:
            any_area = exists().where(NewsArea.user_id == sub.user_id)
            chosen = exists().where(NewsArea.user_id == sub.user_id, NewsArea.area.in_(self.areas))
            parts.append(or_(~any_area, chosen))  # no units chosen means the whole province
        if self.topics:
            any_topic = exists().where(NewsTopic.user_id == sub.user_id)
            chosen_topic = exists().where(NewsTopic.user_id == sub.user_id, NewsTopic.topic.in_(self.topics))
            parts.append(or_(~any_topic, chosen_topic))  # no topics chosen means "everything"
        return and_(*parts) if parts else ~false()

    def recipients(self) -> Select[tuple[int, int, str]]:
        """(user id, chat id, language) of every active subscriber in the audience."""
        return (
            select(User.id, User.chat_id, User.lang)
            .join(NewsSubscription, NewsSubscription.user_id == User.id)
            .where(User.active.is_(True), self.condition())
        )

    async def count(self, session: AsyncSession) -> int:
        stmt = (
            select(func.count())
            .select_from(NewsSubscription)
            .join(User, User.id == NewsSubscription.user_id)
            .where(User.active.is_(True), self.condition())
        )
        return int((await session.execute(stmt)).scalar_one())

    @classmethod
    def of(cls, areas: Sequence[str], topics: Sequence[str]) -> Audience:
        return cls(tuple(sorted(set(areas))), tuple(sorted(set(topics))))
