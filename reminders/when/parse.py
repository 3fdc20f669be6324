"""From the recognised phrases to one answer: pick the phrases that win, merge them into day/clock/part slots,
resolve the slots against `now`, and clean the task text."""

from __future__ import annotations

import re
import unicodedata
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.text import fold
from reminders.when.clock import VN_TZ, Part, Status, When, _part_over, is_quiet
from reminders.when.lexicon import (
    _GREETINGS,
    _LEAD,
    _PATTERNS,
    _PUNCT,
    _TASK_HEAD,
    _TASK_TAIL,
    _Clock,
    _Date,
    _Day,
    _InvalidError,
    _Offset,
    _Piece,
    _prepare,
    _Week,
    _Weekday,
    _Weekend,
)

# ---------------------------------------------------------------------------------------------------------
# Finding the phrases


def _candidates(norm: str, blocked: tuple[int, int] | None) -> list[_Piece]:
    found: list[_Piece] = []
    for order, (rx, build) in enumerate(_PATTERNS):
        pos = 0
        while (m := rx.search(norm, pos)) is not None:
            pos = m.start() + 1  # overlapping search: a rejected match must not hide a later one
            if blocked and m.start() < blocked[1] and blocked[0] < m.end():
                continue
            meaning = build(m)
            if meaning is not None:
                found.append(_Piece(m.start(), m.end(), order, meaning))
    return found


def _select(found: list[_Piece], norm: str) -> list[_Piece]:
    """Earliest, then longest phrases win; bare ambiguous words stay only where their neighbours agree."""
    chosen: list[_Piece] = []
    for p in sorted(found, key=lambda p: (p.start, -(p.end - p.start), p.order)):
        if not chosen or p.start >= chosen[-1].end:
            chosen.append(p)

    def adjacent(a: _Piece, b: _Piece) -> bool:
        return not norm[a.end : b.start].strip()

    kept = []
    for i, p in enumerate(chosen):
        ctx = p.found.ctx
        if ctx:
            prev = chosen[i - 1].found if i > 0 and adjacent(chosen[i - 1], p) else None
            nxt = chosen[i + 1].found if i + 1 < len(chosen) and adjacent(p, chosen[i + 1]) else None
            ok = (
                ("next_day" in ctx and nxt is not None and nxt.day is not None)
                or ("next_clock" in ctx and nxt is not None and nxt.clock is not None)
                or ("prev_clock" in ctx and prev is not None and prev.clock is not None)
                or ("prev_day" in ctx and prev is not None and prev.day is not None)
                or ("prev_part" in ctx and prev is not None and prev.part is not None)
            )
            if not ok:
                continue
        kept.append(p)
    return kept


@dataclass(slots=True)
class _Slots:
    day: _Day | None = None
    clock: _Clock | None = None
    part: Part | None = None
    instant: timedelta | None = None
    used: list[_Piece] = field(default_factory=list)


def _merge(pieces: list[_Piece]) -> _Slots:
    s = _Slots()
    for p in pieces:
        f = p.found
        # "tuần sau ... thứ 6" / "next week on Friday": a weekday inside the named week
        if isinstance(s.day, _Week) and isinstance(f.day, _Weekday) and f.day.week is None and f.kinds() == {"day"}:
            s.day = _Weekday(f.day.weekday, week=s.day.weeks)
            s.used.append(p)
            continue
        if isinstance(s.day, _Weekday) and s.day.week is None and isinstance(f.day, _Week) and f.kinds() == {"day"}:
            s.day = _Weekday(s.day.weekday, week=f.day.weeks)
            s.used.append(p)
            continue
        taken = set()
        if s.day is not None or s.instant is not None:
            taken.add("day")
        if s.clock is not None or s.instant is not None:
            taken.add("clock")
        if s.part is not None:
            taken.add("part")
        if f.kinds() & taken:
            continue  # a second, conflicting mention stays in the task text
        s.day = f.day if f.day is not None else s.day
        s.clock = f.clock if f.clock is not None else s.clock
        s.part = f.part if f.part is not None else s.part
        s.instant = f.instant if f.instant is not None else s.instant
        s.used.append(p)
    return s


# ---------------------------------------------------------------------------------------------------------
# Resolving against `now`


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, monthrange(year, month)[1]))


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _dates(day: _Day, today: date, timed: bool) -> list[date]:
    if isinstance(day, _Offset):
        return [_add_months(today, day.months) + timedelta(days=day.days)]
    if isinstance(day, _Date):
        return [_date(day, today)]
    if isinstance(day, _Weekday):
        if day.week is not None:
            return [_monday(today) + timedelta(days=7 * day.week + day.weekday)]
        ahead = (day.weekday - today.weekday()) % 7
        if ahead:
            return [today + timedelta(days=ahead)]
        if day.mode == "this":
            return [today]
        if day.mode == "plain" and timed:
            return [today, today + timedelta(days=7)]
        return [today + timedelta(days=7)]
    if isinstance(day, _Week):
        return [_monday(today) + timedelta(days=7 * day.weeks)]
    if isinstance(day, _Weekend):
        if day.weeks == 0 and today.weekday() >= 5:
            return [today]
        return [_monday(today) + timedelta(days=7 * day.weeks + 5)]
    first = _add_months(today.replace(day=1), day.months)
    if day.end:
        return [first.replace(day=monthrange(first.year, first.month)[1])]
    return [first]


def _date(spec: _Date, today: date) -> date:
    d, m, y = spec.day, spec.month, spec.year
    if m is None:
        if not 1 <= d <= 31:
            raise _InvalidError
        first = today.replace(day=1)
        for k in range(13):  # the next month that has this day ("ngày 31" skips 30-day months)
            month = _add_months(first, k)
            if d <= monthrange(month.year, month.month)[1] and (cand := month.replace(day=d)) >= today:
                return cand
        raise _InvalidError  # unreachable: every day 1..31 recurs within a year
    if y is not None:
        try:
            return date(y, m, d)
        except ValueError:
            raise _InvalidError from None
    if not (1 <= m <= 12 and 1 <= d <= monthrange(2000, m)[1]):  # 2000 is a leap year: 29/2 is a real date
        raise _InvalidError
    for year in range(today.year, today.year + 9):  # 29/2 recurs within 8 years
        if d <= monthrange(year, m)[1] and (cand := date(year, m, d)) >= today:
            return cand
    raise _InvalidError  # unreachable


def _hours(c: _Clock, part: Part | None) -> list[tuple[int, int, int]]:
    """(hour, minute, days after the named day) readings of a clock time."""
    h, mi = c.hour, c.minute
    if not 0 <= mi <= 59 or not 0 <= h <= 24 or (h == 24 and mi):
        raise _InvalidError
    if h == 24:
        return [(0, mi, 1)]
    if c.meridiem:
        if h == 0 or h > 12:
            if h > 12 and c.meridiem == "pm":
                return [(h, mi, 0)]
            raise _InvalidError
        if c.meridiem == "am":
            return [(0 if h == 12 else h, mi, 0)]
        return [(12 if h == 12 else h + 12, mi, 0)]
    if c.fixed or h >= 13:
        return [(h, mi, 0)]
    if h == 0:
        return [(0, mi, 1 if part in ("evening", "night") else 0)]
    if part is None:
        return [(h, mi, 0), (h + 12, mi, 0)] if h <= 6 else [(h, mi, 0)]
    if part == "morning":
        return [(0, mi, 0), (12, mi, 0)] if h == 12 else [(h, mi, 0)]
    if part == "noon":
        return [(h + 12, mi, 0)] if h <= 5 else [(h, mi, 0)]
    if part == "afternoon":
        return [(h if h == 12 else h + 12, mi, 0)]
    if part == "evening":
        if h == 12:
            return [(0, mi, 1)]
        return [(h, mi, 1)] if h <= 4 else [(h + 12, mi, 0)]
    # night
    if h == 12:
        return [(0, mi, 1)]
    return [(h, mi, 1)] if h <= 6 else [(h + 12, mi, 0)]


@dataclass(frozen=True, slots=True)
class _Resolved:
    status: Status
    at: datetime | None = None
    alternatives: tuple[datetime, ...] = ()


def _resolve(s: _Slots, now: datetime, tz: ZoneInfo) -> _Resolved:
    today = now.date()

    def at(d: date, h: int = 0, mi: int = 0) -> datetime:
        return datetime.combine(d, time(h, mi), tzinfo=tz)

    if s.instant is not None:
        # Up to the next whole minute, never down: "in 1 minute" said at 19:19:40 is 19:21, not 19:20 (which the
        # confirmation a few seconds later would already find in the past).
        moment = now + s.instant
        minute = moment.replace(second=0, microsecond=0)
        return _Resolved("ok", minute if minute == moment else minute + timedelta(minutes=1))
    if s.clock is not None:
        options = _hours(s.clock, s.part)
        if s.day is not None:
            cands = sorted(
                {at(d + timedelta(days=shift), h, mi) for d in _dates(s.day, today, True) for h, mi, shift in options}
            )
            future = [c for c in cands if c > now]
            if not future:
                return _Resolved("past", cands[-1])
        else:
            future = []
            for h, mi, _shift in options:  # no day named: the next time the clock shows this
                c = at(today, h, mi)
                future.append(c if c > now else at(today + timedelta(days=1), h, mi))
            future = sorted(set(future))
        if len(future) > 1:
            return _Resolved("ambiguous", None, tuple(future))
        return _Resolved("ok", future[0])
    if s.day is not None:
        d = _dates(s.day, today, False)[0]
        if d < today or (d == today and s.part is not None and _part_over(s.part, now)):
            return _Resolved("past", at(d))
        return _Resolved("ok", at(d))
    if s.part is not None:
        return _Resolved("ok", at(today + timedelta(days=1) if _part_over(s.part, now) else today))
    return _Resolved("missing")


# ---------------------------------------------------------------------------------------------------------
# Task text


def _clean_task(text: str) -> str:
    s = unicodedata.normalize("NFC", text)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s+([,.;:!?])", r"\1", s)
    s = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", s)
    while True:
        s = s.strip(_PUNCT)
        words = s.split(" ")
        if words and words[0].lower() in _TASK_HEAD:
            s = " ".join(words[1:])
        elif words and words[-1].lower().rstrip(_PUNCT) in _TASK_TAIL:
            s = " ".join(words[:-1])
        else:
            return s


def _lead_ok(norm: str, lead: tuple[int, int], used: list[_Piece]) -> bool:
    """A lead-in counts only at the start, after greetings or time words ("bot ơi, mai nhắc tôi ...")."""
    head = list(norm[: lead[0]])
    for p in used:
        if p.start < lead[0]:
            head[p.start : min(p.end, lead[0])] = " " * (min(p.end, lead[0]) - p.start)
    words = re.findall(r"\w+", "".join(head))
    return all(fold(w) in _GREETINGS for w in words)


# ---------------------------------------------------------------------------------------------------------
# Public API


def parse_when(text: str, now: datetime, tz: ZoneInfo = VN_TZ) -> When:
    """Understand the due time and the task in a reminder request. `now` must be timezone-aware."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    local_now = now.astimezone(tz)
    norm, starts, ends = _prepare(text)

    lead_match = _LEAD.search(norm)
    lead = (lead_match.start(), lead_match.end()) if lead_match else None
    slots = _merge(_select(_candidates(norm, lead), norm))
    if lead is not None and not _lead_ok(norm, lead, slots.used):
        # Not a request's opening ("gọi chị Lan nhắc chị ấy ..."): read the whole text for time words.
        lead = None
        slots = _merge(_select(_candidates(norm, None), norm))

    removed = [(p.start, p.end) for p in slots.used]
    if lead is not None:
        removed.append((0, lead[1]))
    keep_from, parts = 0, []
    for a, b in sorted(removed):
        if a > keep_from:
            parts.append(text[starts[keep_from] : starts[a]])
        keep_from = max(keep_from, b)
    if keep_from < len(norm):
        parts.append(text[starts[keep_from] :])
    task = _clean_task(" ".join(parts))

    span = None
    if slots.used:
        span = (starts[slots.used[0].start], ends[slots.used[-1].end - 1])
    has_time = slots.clock is not None or slots.instant is not None
    has_date = slots.day is not None or slots.instant is not None
    try:
        r = _resolve(slots, local_now, tz)
    except (_InvalidError, OverflowError):  # OverflowError: a day after 31/12/9999
        r = _Resolved("invalid")
    return When(
        status=r.status,
        at=r.at,
        has_time=has_time,
        has_date=has_date,
        task=task,
        span=span,
        alternatives=r.alternatives,
        part=slots.part,
        in_quiet_hours=r.status == "ok" and has_time and r.at is not None and is_quiet(r.at),
    )
