"""Who a broadcast reaches: the province's areas (data/areas.yml), the news topics, and the subscriber query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from actions.content import Content
from store.models import User
from store.models_news import NewsSubscription, NewsTopic

AREAS_FILE = Path(__file__).resolve().parent.parent / "data" / "areas.yml"

# Ids travel in callback payloads (<= 64 bytes with the action name), so they stay short and plain.
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,23}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ward(_Strict):
    id: Slug
    name: str = Field(min_length=1)


class District(_Strict):
    id: Slug
    name: str = Field(min_length=1)
    wards: list[Ward] = Field(default_factory=list)

    def ward(self, ward_id: str | None) -> Ward | None:
        return next((w for w in self.wards if w.id == ward_id), None)


class Province(_Strict):
    id: Slug
    vi: str
    en: str


class Areas(_Strict):
    province: Province
    source: str
    checked: dt.date
    districts: list[District] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Areas:
        ids = [d.id for d in self.districts]
        if len(ids) != len(set(ids)):
            raise ValueError("district ids must be unique")
        for d in self.districts:
            wards = [w.id for w in d.wards]
            if len(wards) != len(set(wards)):
                raise ValueError(f"ward ids must be unique within {d.id}")
        return self

    def district(self, district_id: str | None) -> District | None:
        return next((d for d in self.districts if d.id == district_id), None)

    def valid(self, district_id: str | None, ward_id: str | None) -> bool:
        """True for the whole province (None, None), a known district, or a known ward of it."""
        if district_id is None:
            return ward_id is None
        district = self.district(district_id)
        if district is None:
            return False
        return ward_id is None or district.ward(ward_id) is not None

    def label(self, district_id: str | None, ward_id: str | None, lang: str) -> str:
        """A human name for an area, e.g. "Phường Đồng Nguyên, Thành phố Từ Sơn"."""
        if district_id is None:
            return self.province.en if lang == "en" else self.province.vi
        district = self.district(district_id)
        if district is None:
            return district_id
        ward = district.ward(ward_id)
        return f"{ward.name}, {district.name}" if ward else district.name


def load_areas(path: Path = AREAS_FILE) -> Areas:
    return Areas.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


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
    """A broadcast's target: an area (None = the whole province) and topics (empty = every subscriber)."""

    district: str | None = None
    ward: str | None = None
    topics: tuple[str, ...] = ()

    def condition(self) -> ColumnElement[bool]:
        """Which subscriptions match. A subscriber of a wider area gets the narrower area's news (someone
        following the whole province also hears of one ward's registration day); a subscriber of another
        district or ward does not."""
        sub = NewsSubscription
        parts: list[ColumnElement[bool]] = []
        if self.district is not None:
            in_district = sub.district == self.district
            if self.ward is not None:
                in_district = and_(in_district, or_(sub.ward.is_(None), sub.ward == self.ward))
            parts.append(or_(sub.district.is_(None), in_district))
        if self.topics:
            any_topic = exists().where(NewsTopic.user_id == sub.user_id)
            chosen = exists().where(NewsTopic.user_id == sub.user_id, NewsTopic.topic.in_(self.topics))
            parts.append(or_(~any_topic, chosen))  # no topics chosen means "everything"
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
    def of(cls, district: str | None, ward: str | None, topics: Sequence[str]) -> Audience:
        return cls(district, ward, tuple(sorted(set(topics))))
