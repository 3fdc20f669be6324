"""Reads when a reminder is due, and what it is about, from free Vietnamese or English text.

Pure functions: no I/O, no clock of its own (the caller passes `now`). The rules below are product decisions;
the reminders capability and tests/test_when.py rely on them.

Input: any case, extra spaces, with or without Vietnamese diacritics, precomposed or decomposed Unicode.
A word typed *with* marks must carry the right ones: "tôi" (I) is never read as "tối" (evening) and "tới"
(until) never as "tối", while the bare "toi" may be either and is resolved by its neighbours. Likewise bare
"sang", "dem", "mot" count only next to a day or a clock time; "chị Mai" is a name and "lần thứ 2" an ordinal.

Days
- "hôm nay"/"today" = today; "mai"/"ngày mai"/"tomorrow" = +1; "mốt"/"ngày mốt"/"ngày kia"/"the day after
  tomorrow" = +2; "hôm qua"/"hôm kia"/"yesterday" are in the past (status "past").
- "3 ngày nữa", "sau 3 ngày", "3 hôm sau", "2 tuần nữa", "1 tháng nữa", "in 3 days", "in 2 weeks": a day
  offset (no time). "30 phút nữa", "2 tiếng nữa", "nửa tiếng nữa", "in 2 hours": an instant (now + delta).
  "3 ngày tới" (a span of days) is not a point in time and is left alone.
- A weekday ("thứ 2".."thứ 7", "thứ hai".."thứ bảy", "t2".."t7", "chủ nhật"/"cn", "Monday", "on Fri") is its
  next occurrence. When it names today: with a time of day that is still ahead today the answer is
  "ambiguous" (today or a week later); with a time already gone, or with no time at all, it is next week's
  (someone who means today says "hôm nay"). "thứ 6 này"/"this Friday" counts today; "thứ 6 tới"/"coming
  Friday" never does. "thứ 6 tuần sau"/"tuần tới"/"next Friday"/"Friday next week" is the Friday of the next
  calendar week (weeks start on Monday, so on a Sunday "thứ 2 tuần sau" is tomorrow); "tuần sau nữa" is the
  week after.
- "tuần sau"/"tuần tới"/"next week" alone = Monday of next week (no time: the default time applies).
  "cuối tuần"/"weekend" = the coming Saturday (today on a Saturday or Sunday); "cuối tuần sau" = Saturday of
  next week. "cuối tháng" = the last day of this month; "tháng sau"/"đầu tháng sau"/"next month" = the 1st of
  next month.
- Dates are day first, as Vietnamese write them: "15/12", "15-12", "15/12/2026", "15.12.2026", "ngày 15",
  "mùng 5", "ngày 15 tháng 12 (năm 2026)", "Dec 15", "15 December", "the 15th". English "12/15" is therefore
  day 12 of month 15, which does not exist: status "invalid" (the audience is Vietnamese; asking again is
  cheaper than guessing). A date without a year is its next occurrence (today counts; "29/2" waits for the
  next leap year); "ngày 15" is the next 15th. A date that cannot exist ("30/2", "29/2/2027", "32/1") or a
  clock that cannot ("25h", "8h75") gives status "invalid".

Times
- "8h", "8 giờ", "8g", "8h30", "8g30", "8 giờ 30 (phút)", "8:30", "8 rưỡi", "8h kém 15" (7:45), "tám giờ",
  "lúc 8", "9am", "9:30 pm", "at 21:00", "at 9", "9 o'clock", "noon", "midnight"/"nửa đêm".
- Parts of the day: "sáng"/"morning" (AM), "trưa"/"noon" (10–12 as is, 1–5 → 13–17), "chiều"/"afternoon"
  (PM), "tối"/"evening" (5–11 → 17–23; 12 and 1–4 → after midnight), "đêm"/"khuya"/"night" (7–11 → 19–23;
  12 and 0–6 → after midnight, i.e. the next calendar day when a day is named). "sáng nay", "tối nay",
  "tonight", "this morning" also name today.
- Hours 13–23 and 0 are read as a 24-hour clock whatever the part of day. Without a part of day or am/pm,
  7–12 are morning/noon, and 1–6 are "ambiguous" between AM and PM (both alternatives are returned).
- A time with no day is its next occurrence (today if still ahead, else tomorrow). A named day with a time
  already gone is "past"; so is a part of day already over ("sáng nay" at 15:00).

Several mentions
- At most one day, one clock time and one part of day are used; the first of each kind wins and a later
  conflicting one is left in the task text. "tuần sau ... thứ 6" combines into Friday of next week.

Result
- `at` is aware, in `tz`. With `has_time` False it is local midnight of the day (or of the day the part of
  day falls on): call `resolve_default` to get the delivery time. `at` is None for "missing", "invalid" and
  "ambiguous" (see `alternatives`, sorted); for "past" it is the moment that is gone.
- `task` is the text with the lead-in ("nhắc tôi", "đặt lời nhắc", "remind me to", "set a reminder for"),
  the time words and their prepositions ("vào", "lúc", "at", "on") and trailing particles ("nhé", "nha")
  removed. `span` runs from the first to the last time word used, in the caller's string.

Why hand rules and not a library: dateparser 1.5.0 (the usual choice; measured with languages vi+en, DMY,
future dates) reads "thứ 6" as 6 June, returns nothing for "8h sáng mai", "3 ngày nữa" and "5h chiều", reads
"12/15" as 12 June 2115, takes ~0.7 s on its first Vietnamese parse and brings regex, pytz and tzlocal. English
here is a small, closed vocabulary that a few dozen rules cover and the tests pin down.
"""

from __future__ import annotations

import re
import unicodedata
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from core.text import fold

__all__ = [
    "DEFAULT_TIME",
    "PART_DEFAULTS",
    "QUIET_END",
    "QUIET_START",
    "VN_TZ",
    "Part",
    "Status",
    "When",
    "is_quiet",
    "parse_when",
    "resolve_default",
]

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


# ---------------------------------------------------------------------------------------------------------
# Text preparation


def _prepare(text: str) -> tuple[str, list[int], list[int]]:
    """NFC lower-cased text plus, per character, the [start, end) it came from in the caller's string."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        cluster = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text[i:j]).lower())
        for ch in cluster:
            chars.append(_CHAR_FIX.get(ch, ch))
            starts.append(i)
            ends.append(j)
        i = j
    return "".join(chars), starts, ends


_CHAR_FIX = {"’": "'", "‘": "'", "ð": "đ"}  # smart quotes from phones; Icelandic eth typed for Đ


def _vi(pattern: str) -> re.Pattern[str]:
    """Compile a pattern written with Vietnamese marks so each marked letter also matches its bare letter.

    "tối" becomes t[oố]i: it matches "tối" and "toi" but not "tôi" or "tới", which are other words.
    """
    out = []
    for ch in pattern:
        if ch.isalpha() and not ch.isascii():
            base = "d" if ch == "đ" else unicodedata.normalize("NFD", ch)[0]
            out.append(f"[{ch}{base}]")
        else:
            out.append(ch)
    return re.compile("".join(out))


# ---------------------------------------------------------------------------------------------------------
# What a matched phrase means


@dataclass(frozen=True, slots=True)
class _Offset:
    days: int = 0
    months: int = 0


@dataclass(frozen=True, slots=True)
class _Date:
    day: int
    month: int | None = None
    year: int | None = None


@dataclass(frozen=True, slots=True)
class _Weekday:
    weekday: int  # Monday = 0
    week: int | None = None  # calendar weeks ahead ("tuần sau" = 1)
    mode: Literal["plain", "this", "after"] = "plain"


@dataclass(frozen=True, slots=True)
class _Week:
    weeks: int  # Monday of the calendar week this many weeks ahead


@dataclass(frozen=True, slots=True)
class _Weekend:
    weeks: int


@dataclass(frozen=True, slots=True)
class _MonthEdge:
    months: int
    end: bool  # last day of the month, else the 1st


_Day = _Offset | _Date | _Weekday | _Week | _Weekend | _MonthEdge


@dataclass(frozen=True, slots=True)
class _Clock:
    hour: int
    minute: int = 0
    meridiem: str | None = None  # "am" | "pm"
    fixed: bool = False  # "noon"/"midnight": a part of day does not reinterpret it


# Which neighbours make a bare, ambiguous word ("sang", "toi", "dem", "mot", "morning") a time word.
_Ctx = frozenset[str]


@dataclass(frozen=True, slots=True)
class _Found:
    day: _Day | None = None
    clock: _Clock | None = None
    part: Part | None = None
    instant: timedelta | None = None
    ctx: _Ctx = frozenset()

    def kinds(self) -> set[str]:
        k = set()
        if self.day is not None or self.instant is not None:
            k.add("day")
        if self.clock is not None or self.instant is not None:
            k.add("clock")
        if self.part is not None:
            k.add("part")
        return k


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    order: int
    found: _Found = field(compare=False)


class _InvalidError(Exception):
    """A date or clock time that cannot exist (30/2, 25h)."""


# ---------------------------------------------------------------------------------------------------------
# Vocabulary

_PARTS: dict[str, Part] = {
    "sang": "morning",
    "trua": "noon",
    "chieu": "afternoon",
    "toi": "evening",
    "dem": "night",
    "khuya": "night",
    "morning": "morning",
    "noon": "noon",
    "afternoon": "afternoon",
    "evening": "evening",
    "night": "night",
    "tonight": "evening",
    "tonite": "evening",
}
_VI_WEEKDAY_WORDS = {"hai": 0, "ba": 1, "tu": 2, "nam": 3, "sau": 4, "bay": 5}
_EN_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_EN_MONTHS = {
    m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
}
_NUMBERS: dict[str, float] = {
    "mot": 1, "hai": 2, "ba": 3, "bon": 4, "nam": 5, "sau": 6, "bay": 7, "tam": 8, "chin": 9, "muoi": 10,
    "muoi mot": 11, "muoi hai": 12, "muoi lam": 15, "hai muoi": 20, "ba muoi": 30, "bon muoi lam": 45,
    "nua": 0.5,
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
    "forty five": 45, "forty-five": 45, "half a": 0.5, "half an": 0.5,
}  # fmt: skip
# Words before "Mai" that make it a person's name, not "tomorrow" ("chị Mai").
_TITLES = {"chi", "anh", "em", "co", "ba", "ong", "be", "chau", "ban", "chu", "bac", "di", "mr", "ms", "hoa", "cay"}
# Nouns that make "thứ 2" an ordinal ("bước thứ 2" = step two), not Monday. Not "số"/"sơ": "hồ sơ thứ 5"
# is a dossier on Thursday.
_ORDINAL_NOUNS = {
    "lần", "bước", "người", "hạng", "tầng", "lớp", "phần", "mục", "điều", "khoản", "trang", "đợt", "kỳ", "kì",
    "chương", "tuần", "tháng", "năm",
}  # fmt: skip
# Allowed before a lead-in ("bot ơi, nhắc tôi ...").
_GREETINGS = {
    "bot", "oi", "hey", "hi", "hello", "chao", "ban", "ad", "admin", "ok", "okay", "oke", "a", "em", "good", "morning",
    "afternoon", "evening", "buoi", "sang", "chieu", "toi",
}  # fmt: skip
_TASK_HEAD = {"to", "about", "that", "of", "for", "là", "la", "rằng", "rang", "để", "de", "please", "pls"}
_TASK_TAIL = {
    "vào", "vao", "lúc", "luc", "at", "on", "by", "for", "in", "nhé", "nhe", "nha", "nhá", "nhen", "với", "voi",
    "ạ", "giúp", "giup", "giùm", "gium", "hộ", "dùm", "please", "pls", "thanks",
}  # fmt: skip
_PUNCT = " ,.;:!?-–—…"

# ---------------------------------------------------------------------------------------------------------
# Patterns (matched on the prepared text; see _vi for how marks are treated)

_B = r"(?<!\w)"
_E = r"(?!\w)"
_PT = r"(?P<pre>(?:vào\s+lúc|vào|lúc|khoảng|tầm|at|around|about|by)\s+)?"  # before a clock time
_PD = r"(?P<pre>(?:vào|trong|on|by)\s+)?"  # before a day
_NUM_VI = (
    r"\d{1,3}|bốn\s+mươi\s+lăm|hai\s+mươi|ba\s+mươi|mười\s+một|mười\s+hai|mười\s+lăm|mười"
    r"|một|hai|ba|bốn|năm|sáu|bảy|bẩy|tám|chín|nửa"
)
_NUM_EN = (
    r"\d{1,3}|half\s+an?|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen"
    r"|twenty|thirty|forty[\s-]five"
)
_HOUR_WORDS = r"mười\s+một|mười\s+hai|một|hai|ba|bốn|năm|sáu|bảy|bẩy|tám|chín|mười"
_AMPM = r"(?P<ap>a\.m\.|p\.m\.|am|pm)"
_VI_PART_WORD = r"(?:sáng|trưa|chiều|tối|đêm|khuya)"
_MONTHS = (
    r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_EN_WD = r"(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues?|wed|thurs|fri|sat|sun)"

_LEAD = _vi(
    _B
    + r"(?:(?:hãy|làm\s+ơn|vui\s+lòng|xin)\s+)?"
    + r"(?:(?:đặt|tạo|thêm|lập|cài)(?:\s+(?:giúp|giùm|hộ|cho))?(?:\s+(?:tôi|mình|em|tớ))?\s+(?:(?:một|1)\s+)?"
    + r"(?:lời\s+nhắc(?:\s+nhở)?|nhắc\s+nhở|lịch\s+nhắc(?:\s+nhở)?|lịch\s+hẹn|nhắc\s+hẹn|hẹn\s+giờ)"
    + r"(?:\s+(?:cho\s+)?(?:tôi|mình|em|tớ))?"
    + r"|nhắc(?:\s+nhở)?(?:\s+(?:giúp|giùm|hộ|dùm))?"
    + r"(?:\s+(?:cho\s+)?(?:tôi|mình|em|anh|chị|tớ|tao|con|cháu|bác|cô|chú))?(?:\s+(?:với|nhé|nha))?"
    + r"|(?:(?:please|pls|plz|can\s+you|could\s+you|would\s+you)\s+)?"
    + r"(?:remind\s+me(?:\s+(?:to|about|that|of))?"
    + r"|(?:set|create|add|make|schedule)\s+(?:me\s+)?(?:up\s+)?(?:a\s+|an\s+)?reminder"
    + r"(?:\s+(?:for|to|about|that|on))?|reminder))"
    + r"(?:\s+(?:là|rằng|để))?"
    + _E
    + r"\s*:?"
)

_PART_AHEAD = _vi(r"\s+(?:buổi\s+)?" + _VI_PART_WORD + _E + r"|\s*(?:am|pm|a\.m\.|p\.m\.)")


def _g(m: re.Match[str], name: str) -> str | None:
    return m.groupdict().get(name)


def _number(s: str) -> float:
    s = s.strip()
    if s.isdigit():
        return int(s)
    return _NUMBERS[re.sub(r"\s+", " ", fold(s))]


def _is_word(word: str, vocab: set[str]) -> bool:
    """`word` is in `vocab` as written, or typed without marks ("lan" for "lần")."""
    return word in vocab or (word.isascii() and word in {fold(v) for v in vocab})


def _part_of(word: str) -> Part:
    return _PARTS[fold(word).split()[0]]


# Builders: each turns a match into what it means, or None when context shows it is not a time phrase.


def _relative_vi(m: re.Match[str]) -> _Found | None:
    tail = fold(_g(m, "tail") or "")
    if tail == "toi":  # "3 ngày tới" is a span of days, not a point in time
        return None
    if not _g(m, "lead") and tail not in ("nua", "sau"):
        return None
    if not tail and _PART_AHEAD.match(m.string, m.end()):  # "sau 2 giờ chiều" = after 2 pm
        return None
    return _relative(_number(m["n"]), fold(m["u"]))


def _relative_en(m: re.Match[str]) -> _Found | None:
    unit = fold(m["u"]).rstrip("s")
    return _relative(_number(m["n"]), unit)


def _relative(n: float, unit: str) -> _Found | None:
    if n <= 0:
        return None
    if unit in ("tieng", "gio", "hour", "hr"):
        return _Found(instant=timedelta(hours=n))
    if unit in ("phut", "minute", "min"):
        return _Found(instant=timedelta(minutes=n))
    if n != int(n):  # "nửa ngày" is not a day
        return None
    k = int(n)
    if unit in ("ngay", "hom", "day"):
        return _Found(day=_Offset(days=k))
    if unit in ("tuan", "week"):
        return _Found(day=_Offset(days=7 * k))
    if unit in ("thang", "month"):
        return _Found(day=_Offset(months=k))
    return _Found(day=_Offset(months=12 * k))  # năm / year


def _clock(m: re.Match[str]) -> _Found | None:
    hw = _g(m, "hw")
    if hw is not None:
        if hw.strip() == "bay":  # bare "bay giờ" is far more often "bây giờ" (now) than "bảy giờ"
            return None
        hour = int(_number(hw))
    else:
        hour = int(m["h"])
    minute = int(_g(m, "m") or 0)
    if _g(m, "half"):
        minute = 30
    less = _g(m, "less")
    if less is not None:  # "8h kém 15" = 7:45
        n = int(less)
        hour, minute = ((hour - 1) % 24, 60 - n) if 0 < n < 60 else (hour, 99)
    ap = _g(m, "ap")
    return _Found(clock=_Clock(hour, minute, ap.replace(".", "") if ap else None))


def _noon_midnight(m: re.Match[str]) -> _Found:
    word = fold(m["w"])
    if word in ("noon", "midday"):
        return _Found(clock=_Clock(12, 0, fixed=True))
    return _Found(clock=_Clock(24, 0, fixed=True))


def _part_vi(m: re.Match[str]) -> _Found:
    word = m["p"]
    part = _part_of(word)
    if _g(m, "nay"):
        return _Found(day=_Offset(0), part=part)
    ctx: _Ctx = frozenset()
    # Bare "sang" (go over), "toi" (I), "dem" (bring) are only time words next to a day or a clock time.
    if word.isascii() and word in ("sang", "toi", "dem") and not _g(m, "buoi") and not _g(m, "pre"):
        ctx = frozenset({"next_day", "prev_clock", "next_clock"})
    return _Found(part=part, ctx=ctx)


def _part_en(m: re.Match[str]) -> _Found:
    word = m["p"]
    part = _part_of(word)
    intro = fold(_g(m, "intro") or "")
    if word in ("tonight", "tonite") or intro == "this":
        return _Found(day=_Offset(0), part=part)
    if intro:
        return _Found(part=part)
    # Bare "morning" ("good morning") counts only beside a day or a clock time.
    return _Found(part=part, ctx=frozenset({"next_day", "prev_day", "prev_clock"}))


def _today(m: re.Match[str]) -> _Found:
    return _Found(day=_Offset(0))


def _core(m: re.Match[str]) -> str:
    """The matched phrase without its preposition ("vào mai" -> "mai")."""
    return m.group(0)[len(_g(m, "pre") or "") :]


def _tomorrow(m: re.Match[str]) -> _Found | None:
    before = m.string[: m.start()].split()
    if _core(m) == "mai" and before and fold(before[-1]) in _TITLES:  # "chị Mai", "hoa mai": not a day
        return None
    return _Found(day=_Offset(1))


def _after_tomorrow(m: re.Match[str]) -> _Found:
    # Bare "mot" is usually "một" (one); alone it means "mốt" only after a part of day ("sang mot").
    if _core(m) == "mot":
        return _Found(day=_Offset(2), ctx=frozenset({"prev_part"}))
    return _Found(day=_Offset(2))


def _yesterday(m: re.Match[str]) -> _Found:
    word = fold(m.group(0))
    return _Found(day=_Offset(-2 if "kia" in word else -1))


def _weekday_vi(m: re.Match[str]) -> _Found | None:
    before = m.string[: m.start()].split()
    if not _g(m, "pre") and before and _is_word(before[-1], _ORDINAL_NOUNS):  # "lần thứ 2" = the second time
        return None
    if _g(m, "wn"):
        wd = int(m["wn"]) - 2
    elif _g(m, "wt"):
        wd = int(m["wt"]) - 2
    elif _g(m, "ww"):
        wd = _VI_WEEKDAY_WORDS[fold(m["ww"])]
    else:
        wd = 6
    mod = fold(_g(m, "mod") or "").split()
    if not mod:
        return _Found(day=_Weekday(wd))
    if mod[-1] == "nay":
        return _Found(day=_Weekday(wd, mode="this"))
    if mod == ["toi"]:
        return _Found(day=_Weekday(wd, mode="after"))
    return _Found(day=_Weekday(wd, week=2 if mod[-1] == "nua" else 1))


def _weekday_en(m: re.Match[str]) -> _Found | None:
    name = m["wd"]
    mod = fold(_g(m, "mod") or "")
    mod2 = fold(_g(m, "mod2") or "")
    if len(name) <= 5 and not (mod or _g(m, "pre")):
        return None  # "sat", "sun", "wed" are ordinary words unless introduced ("on Sat", "next Wed")
    wd = _EN_WEEKDAYS[name[:3]]
    if mod == "next" or "next" in mod2:
        return _Found(day=_Weekday(wd, week=1))
    if mod == "coming":
        return _Found(day=_Weekday(wd, mode="after"))
    if mod or mod2:
        return _Found(day=_Weekday(wd, mode="this"))
    return _Found(day=_Weekday(wd))


def _week(m: re.Match[str]) -> _Found:
    text = fold(m.group(0))
    return _Found(day=_Week(2 if ("nua" in text.split() or "after next" in text) else 1))


def _weekend(m: re.Match[str]) -> _Found:
    mod = fold(_g(m, "mod") or "")
    return _Found(day=_Weekend(1 if mod in ("sau", "toi", "next") else 0))


def _month_edge(m: re.Match[str]) -> _Found:
    text = fold(m.group(0))
    nxt = any(w in text.split() for w in ("sau", "toi", "next"))
    end = "cuoi" in text or "end" in text
    return _Found(day=_MonthEdge(1 if nxt else (0 if end else 1), end=end))


def _date_num(m: re.Match[str]) -> _Found:
    year = _g(m, "y")
    y = int(year) if year else None
    if y is not None and len(year or "") == 2:
        y += 2000
    month = _g(m, "m")
    return _Found(day=_Date(int(m["d"]), int(month) if month else None, y))


def _date_words(m: re.Match[str]) -> _Found:
    d = _g(m, "d") or _g(m, "d2")
    mo = _g(m, "m") or _g(m, "m2")
    y = _g(m, "y") or _g(m, "y2")
    return _Found(day=_Date(int(d or 0), int(mo) if mo else None, int(y) if y else None))


def _date_en(m: re.Match[str]) -> _Found:
    mon = _g(m, "mon")
    y = _g(m, "y")
    return _Found(day=_Date(int(m["d"]), _EN_MONTHS[mon[:3]] if mon else None, int(y) if y else None))


_Builder = Callable[[re.Match[str]], _Found | None]

_PATTERNS: list[tuple[re.Pattern[str], _Builder]] = [
    # relative: "3 ngày nữa", "sau 2 tiếng", "nửa tiếng nữa", "in 3 days", "2 hours from now"
    (
        _vi(
            _B + _PD + r"(?:(?P<lead>sau)\s+)?(?P<n>" + _NUM_VI + r")\s+(?P<u>ngày|hôm|tuần|tháng|năm|tiếng|giờ|phút)"
            r"(?:\s+đồng\s+hồ)?(?:\s+(?P<tail>nữa|sau|tới))?" + _E
        ),
        _relative_vi,
    ),
    (
        _vi(
            _B + r"(?:in|after)\s+(?P<n>" + _NUM_EN + r")\s+(?P<u>minutes?|mins?|hours?|hrs?|days?|weeks?|months?"
            r"|years?)" + _E
        ),
        _relative_en,
    ),
    (
        _vi(
            _B + r"(?P<n>" + _NUM_EN + r")\s+(?P<u>minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)"
            r"\s+(?:from\s+now|later)" + _E
        ),
        _relative_en,
    ),
    # clock: "8h", "8 giờ 30 phút", "8g30", "8h rưỡi", "8h kém 15"
    (
        _vi(
            r"(?<![\w/.:-])" + _PT + r"(?P<h>\d{1,2})\s*(?:giờ|h|g)"
            r"(?:\s*(?P<m>\d{1,2})(?![\d/:]|\.\d)\s*(?:phút|p|')?|\s*(?P<half>rưỡi)"
            r"|\s*kém\s*(?P<less>\d{1,2})\s*(?:phút|p)?)?" + r"(?![\w/-])"
        ),
        _clock,
    ),
    (
        _vi(_B + _PT + r"(?P<hw>" + _HOUR_WORDS + r")\s+giờ(?:\s+(?P<half>rưỡi)|\s+(?P<m>\d{1,2})(?:\s*phút)?)?" + _E),
        _clock,
    ),
    # "8:30", "9:30 pm", "9am", "9 o'clock", "8 rưỡi"
    (_vi(r"(?<![\w/.:-])" + _PT + r"(?P<h>\d{1,2}):(?P<m>\d{2})(?:\s*" + _AMPM + r")?(?![\w:])"), _clock),
    (_vi(r"(?<![\w/.:-])" + _PT + r"(?P<h>\d{1,2})\s*" + _AMPM + r"(?!\w)"), _clock),
    (_vi(r"(?<![\w/.:-])" + _PT + r"(?P<h>\d{1,2})\s*o'?clock" + _E), _clock),
    (_vi(r"(?<![\w/.:-])" + _PT + r"(?P<h>\d{1,2})\s+(?P<half>rưỡi)" + _E), _clock),
    # bare hour, only where the words around make it one: "lúc 8", "at 9", "8 tối", "9 tonight"
    (_vi(_B + r"(?P<pre>(?:vào\s+lúc|lúc|at)\s+)(?P<h>\d{1,2})(?![\w/.:-])"), _clock),
    (
        _vi(
            r"(?<![\w/.:-])"
            + _PT
            + r"(?P<h>\d{1,2})(?=\s+(?:buổi\s+)?"
            + _VI_PART_WORD
            + _E
            + r"|\s+(?:in\s+the\s+(?:morning|afternoon|evening)|at\s+night|tonight)"
            + _E
            + ")"
        ),
        _clock,
    ),
    (_vi(_B + _PT + r"(?P<w>noon|midday|midnight|nửa\s+đêm)" + _E), _noon_midnight),
    # parts of the day
    (
        _vi(_B + _PT + r"(?P<buoi>buổi\s+)?(?P<p>sáng|trưa|chiều|tối|đêm|khuya)(?:\s+sớm)?(?:\s+(?P<nay>nay))?" + _E),
        _part_vi,
    ),
    (
        _vi(_B + r"(?:(?P<intro>in\s+the|this|at)\s+)?(?P<p>morning|afternoon|evening|night|tonight|tonite)" + _E),
        _part_en,
    ),
    # days
    (_vi(_B + _PD + r"(?:(?:ngày\s+)?hôm\s+nay|bữa\s+nay|today)" + _E), _today),
    (_vi(_B + r"(?:(?:ngày\s+)?hôm\s+(?:qua|kia)|yesterday)" + _E), _yesterday),
    (_vi(_B + _PD + r"(?:(?:ngày|hôm)\s+)?mai(?!\s+mốt)" + _E), _tomorrow),
    (_vi(_B + _PD + r"(?:tomorrow|tomorow|tmrw?)" + _E), _tomorrow),
    (
        _vi(_B + _PD + r"(?:(?:ngày\s+)?mốt(?!\s+tháng)|ngày\s+kia|(?:the\s+)?day\s+after\s+tomorrow)" + _E),
        _after_tomorrow,
    ),
    (
        _vi(
            _B + _PD + r"(?:(?:ngày|hôm)\s+)?"
            r"(?:thứ\s*(?P<wn>[2-7])(?!\d)|thứ\s+(?P<ww>hai|ba|tư|năm|sáu|bảy|bẩy)|t(?P<wt>[2-7])|chủ\s*nhật|cn)"
            r"(?P<mod>\s+(?:tuần\s+)?này|\s+tuần\s+(?:sau|tới|kế(?:\s+tiếp)?|tiếp\s+theo)(?:\s+nữa)?|\s+tới)?" + _E
        ),
        _weekday_vi,
    ),
    (
        _vi(
            _B
            + _PD
            + r"(?:(?P<mod>this\s+coming|this|next|coming)\s+)?"
            + _EN_WD
            + r"\.?(?P<mod2>\s+(?:next|this)\s+week)?"
            + _E
        ),
        _weekday_en,
    ),
    (
        _vi(
            _B + _PD + r"(?:(?:đầu\s+)?tuần\s+(?:sau|tới|kế(?:\s+tiếp)?|tiếp\s+theo)(?:\s+nữa)?"
            r"|next\s+week|(?:the\s+)?week\s+after\s+next)" + _E
        ),
        _week,
    ),
    (_vi(_B + _PD + r"(?:cuối\s+tuần(?:\s+(?P<mod>này|sau|tới))?|(?:(?P<mod2>this|next)\s+)?weekend)" + _E), _weekend),
    (
        _vi(
            _B + _PD + r"(?:cuối\s+tháng(?:\s+(?:này|sau|tới))?|(?:đầu\s+)?tháng\s+(?:sau|tới)"
            r"|(?:the\s+)?end\s+of\s+(?:the\s+|this\s+|next\s+)?month|next\s+month"
            r"|(?:the\s+)?(?:beginning|start)\s+of\s+next\s+month)" + _E
        ),
        _month_edge,
    ),
    # dates, day first: "15/12", "15-12-2026", "15.12.2026", "ngày 15 tháng 12", "mùng 5", "Dec 15", "the 15th"
    (
        _vi(
            r"(?<![\w./-])" + _PD + r"(?:(?:ngày|mùng|mồng)\s+)?(?P<d>\d{1,2})\s*(?P<sep>[/-])\s*(?P<m>\d{1,2})"
            r"(?:\s*(?P=sep)\s*(?P<y>\d{4}|\d{2}))?(?![\w/-]|\.\d)"
        ),
        _date_num,
    ),
    (
        _vi(r"(?<![\w./-])" + _PD + r"(?:ngày\s+)?(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})(?![\w/.-])"),
        _date_num,
    ),
    (
        _vi(
            _B + _PD + r"(?:(?:ngày|mùng|mồng)\s+(?P<d>\d{1,2})(?:\s+tháng\s+(?P<m>\d{1,2})(?:\s+năm\s+(?P<y>\d{4}))?)?"
            r"|(?P<d2>\d{1,2})\s+tháng\s+(?P<m2>\d{1,2})(?:\s+năm\s+(?P<y2>\d{4}))?)(?![\w/.:-])"
        ),
        _date_words,
    ),
    (
        _vi(
            _B
            + _PD
            + r"(?:the\s+)?(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?"
            + _MONTHS
            + r"(?:,?\s+(?P<y>\d{4}))?"
            + r"(?![\w/])"
        ),
        _date_en,
    ),
    (
        _vi(_B + _PD + _MONTHS + r"\s+(?:the\s+)?(?P<d>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?P<y>\d{4}))?" + r"(?![\w/:])"),
        _date_en,
    ),
    (_vi(_B + _PD + r"the\s+(?P<d>\d{1,2})(?:st|nd|rd|th)" + _E), _date_en),
]


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


def _part_over(part: Part, now: datetime) -> bool:
    end = _PART_ENDS[part]
    return end is not None and now.time() >= end


def is_quiet(at: datetime) -> bool:
    """True when a local time falls in 21:00–07:00, when reminders are not sent unless asked for."""
    t = at.time()
    return t >= QUIET_START or t < QUIET_END


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
