"""The words and patterns `parse_when` recognises: text preparation, the vocabulary tables and the regular
expressions, each with the builder that turns a match into a meaning."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from core.text import fold
from reminders.when.clock import Part

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
