"""The time policy of reminders: the province's clock, default delivery times, quiet hours, and the
result type `When` that `parse_when` returns (rules: the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_TIME = time(7, 30)
# Reminders are not delivered at night unless the citizen asked for that exact time.
QUIET_START = time(21, 0)
QUIET_END = time(7, 0)

Status = Literal["ok", "missing", "past", "ambiguous", "invalid"]
Part = Literal["morning", "noon", "afternoon", "evening", "night"]

# Delivery time when only a part of the day was named ("tối mai"); night stays just before quiet hours.
PART_DEFAULTS: dict[str, time] = {
    "morning": DEFAULT_TIME,
    "noon": time(11, 30),
    "afternoon": time(14, 0),
    "evening": time(19, 0),
    "night": time(20, 30),
}
# When a part of the day is over for today (None: it runs until midnight).
_PART_ENDS: dict[str, time | None] = {
    "morning": time(11, 0),
    "noon": time(13, 0),
    "afternoon": time(18, 0),
    "evening": time(22, 0),
    "night": None,
}


@dataclass(frozen=True, slots=True)
class When:
    """What `parse_when` understood. See the module docstring for the rules."""

    status: Status
    at: datetime | None = None
    has_time: bool = False
    has_date: bool = False
    task: str = ""
    span: tuple[int, int] | None = None
    alternatives: tuple[datetime, ...] = ()
    part: Part | None = None
    in_quiet_hours: bool = False


def _part_over(part: Part, now: datetime) -> bool:
    end = _PART_ENDS[part]
    return end is not None and now.time() >= end


def is_quiet(at: datetime) -> bool:
    """True when a local time falls in 21:00–07:00, when reminders are not sent unless asked for."""
    t = at.time()
    return t >= QUIET_START or t < QUIET_END


def resolve_default(when: When, now: datetime) -> When:
    """Give a day-only reminder its delivery time: the part of day's default, else 07:30 local.

    A default that is already gone today becomes the next half hour at least 15 minutes ahead; if that falls
    in quiet hours (21:00–07:00) it moves to 07:30 the next morning. Explicit times are returned unchanged
    (`in_quiet_hours` tells the caller to confirm a night-time one).
    """
    if when.status != "ok" or when.at is None or when.has_time:
        return when
    tz = when.at.tzinfo
    local_now = now.astimezone(tz)
    default = PART_DEFAULTS[when.part] if when.part else DEFAULT_TIME
    at = datetime.combine(when.at.date(), default, tzinfo=tz)
    if at <= local_now:
        soon = local_now.replace(second=0, microsecond=0) + timedelta(minutes=15)
        at = soon + timedelta(minutes=(-soon.minute) % 30)
        if is_quiet(at):
            day = at.date() if at.time() < QUIET_END else at.date() + timedelta(days=1)
            at = datetime.combine(day, DEFAULT_TIME, tzinfo=tz)
    return replace(when, at=at, in_quiet_hours=False)
