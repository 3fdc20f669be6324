"""Office hours: the staff group's weekly opening intervals in the province's timezone, minus the holidays of
data/holidays.yml; when a ticket relays at once and when the citizen is told staff will answer."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict

HOLIDAYS_FILE = Path(__file__).resolve().parents[2] / "data" / "holidays.yml"
DEFAULT_OFFICE_HOURS = "mon-fri 07:30-11:30,13:30-17:00"
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


class Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    date: dt.date
    name_vi: str
    name_en: str
    source: str
    checked: dt.date
    confirmed: bool = True


class HolidayFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_source: str
    holidays: list[Holiday]


def load_holidays(path: Path = HOLIDAYS_FILE) -> frozenset[dt.date]:
    """The dates offices are closed, from data/holidays.yml (validated)."""
    parsed = HolidayFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    return frozenset(h.date for h in parsed.holidays)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")

Interval = tuple[dt.time, dt.time]


@dataclass(frozen=True)
class OfficeHours:
    """Weekly opening intervals in a local timezone, minus holidays."""

    tz: ZoneInfo
    weekly: Mapping[int, tuple[Interval, ...]]  # Monday = 0
    holidays: frozenset[dt.date] = frozenset()

    @classmethod
    def parse(
        cls,
        spec: str = DEFAULT_OFFICE_HOURS,
        *,
        holidays: frozenset[dt.date] = frozenset(),
        timezone: str = DEFAULT_TIMEZONE,
    ) -> OfficeHours:
        """`"mon-fri 07:30-11:30,13:30-17:00; sat 08:00-11:00"`: day ranges, then comma-separated intervals
        (an interval may end at 24:00)."""
        weekly: dict[int, tuple[Interval, ...]] = {}
        for group in filter(None, (g.strip() for g in spec.split(";"))):
            days_part, _, spans_part = group.partition(" ")
            days = _parse_days(days_part.strip().lower())
            spans = tuple(_parse_span(s.strip()) for s in spans_part.split(",") if s.strip())
            if not spans:
                raise ValueError(f"office hours {group!r}: no time interval")
            for day in days:
                weekly[day] = tuple(sorted((*weekly.get(day, ()), *spans)))
        if not weekly:
            raise ValueError("office hours: no opening day")
        return cls(ZoneInfo(timezone), weekly, holidays)

    def _intervals(self, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        if day in self.holidays:
            return ()
        return tuple(
            (dt.datetime.combine(day, start, self.tz), dt.datetime.combine(day, end, self.tz))
            for start, end in self.weekly.get(day.weekday(), ())
        )

    def is_open(self, now: dt.datetime) -> bool:
        local = now.astimezone(self.tz)
        return any(start <= local < end for start, end in self._intervals(local.date()))

    def next_open(self, now: dt.datetime) -> dt.datetime:
        """`now` when open, else the start of the next opening interval (aware UTC)."""
        local = now.astimezone(self.tz)
        for offset in range(400):  # holidays never close a whole year; bounded so a bad list cannot loop forever
            for start, end in self._intervals(local.date() + dt.timedelta(days=offset)):
                if start <= local < end:
                    return now
                if start > local:
                    return start.astimezone(dt.UTC)
        raise ValueError("office hours: no opening in the next 400 days")


def _parse_days(part: str) -> list[int]:
    out: list[int] = []
    for item in part.split(","):
        first, _, last = item.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"office hours: unknown day {item!r}")
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        if b < a:
            raise ValueError(f"office hours: day range {item!r} runs backwards")
        out.extend(range(a, b + 1))
    return out


def _parse_span(span: str) -> Interval:
    m = _SPAN.match(span)
    if not m:
        raise ValueError(f"office hours: bad interval {span!r} (want HH:MM-HH:MM)")
    if int(m[1]) > 23 or int(m[2]) > 59 or int(m[4]) > 59 or int(m[3]) > 24 or (int(m[3]) == 24 and int(m[4])):
        raise ValueError(f"office hours: bad interval {span!r} (want HH:MM-HH:MM)")
    start = dt.time(int(m[1]), int(m[2]))
    # "24:00" closes at the end of the day, so "mon-sun 00:00-24:00" is open round the clock.
    end = dt.time.max if int(m[3]) == 24 else dt.time(int(m[3]), int(m[4]))
    if end <= start:
        raise ValueError(f"office hours: interval {span!r} ends before it starts")
    return start, end


# ---- module functions the router and the scheduler call -----------------------------------------------------
