"""Redaction of citizens' identifiers (ID-card and phone numbers) and secrets from free text.

What people type is messy: `0912-345-678`, `(+84) 912 345 678`, `0084…`, `CCCD.001099012345`, `sdt0912345678`,
IDs in groups with odd or non-breaking spaces, landlines such as `(0222) 3 822 456`. Detection therefore runs on
a folded copy of the text (compatibility-normalised so full-width digits are digits, lower case, no diacritics,
one kind of space, dash and dot, invisible characters dropped) that keeps, for every character, the offset it
came from, so the original text is cut exactly there.

A run of digit groups ("chain") is judged as a whole, ID numbers before phone numbers, and split only at spaces
(two numbers typed side by side). Context words decide where the digits alone cannot: a bare 9-digit number is
an old CMND after "cmnd"/"số id", a phone number after "sđt"/"gọi"/"zalo", an old CMND too when it starts
with 0, and otherwise an amount (`120000000`) that stays: amounts never start with 0, while IDs and national
phone numbers always do. A unit after a number (`đồng`, `vnd`, `500k`) makes it an amount; numbers glued to
other codes (`000.00.12.H22-240101-0003`, `FT24…`, UUIDs) stay.

Why not the `phonenumbers` library (PyPI): its matcher finds phone numbers only, not ID numbers, so the
ID-before-phone ordering, the context words and the folding would all still be ours; at its default leniency it
skips, on purpose, a number touching a Latin letter (`sdt0912345678`); and its Vietnamese metadata validates
exact operator ranges, so a newly assigned prefix would pass unredacted until the library is updated, where for
redaction any 0[35789]xxxxxxxx must go.

`python -m core.pii` reads lines on stdin and writes them redacted (for scrubbing exports).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import TextIO

ID, PHONE, SECRET = "[id]", "[phone]", "[secret]"

# Telegram bot tokens (in URLs httpx would log) and bearer tokens.
_TOKEN = re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{20,}|(?i:bearer)\s+[A-Za-z0-9._~+/-]+=*")
# Secrets in query strings: Rasa's `?token=` travels in every parse URL, and httpx's HTTPStatusError quotes it.
_QUERY_SECRET = re.compile(r"(?i)([?&](?:token|auth_token|secret|client_secret|password)=)[^&#\s'\"]+")

# Province codes that open a 12-digit personal ID number (Circular 07/2016/TT-BCA, kept by Circular 59/2021).
# They stay valid after the 2025 merger of provinces: numbers already issued do not change.
_PROVINCES = frozenset(
    f"{code:03d}"
    for code in (
        *(1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26, 27, 30, 31, 33, 34, 35, 36, 37, 38, 40),
        *(42, 44, 45, 46, 48, 49, 51, 52, 54, 56, 58, 60, 62, 64, 66, 67, 68, 70, 72, 74, 75, 77, 79, 80, 82, 83),
        *(84, 86, 87, 89, 91, 92, 93, 94, 95, 96),
    )
)

# Digit groups joined by a space or two, a dot or a dash (with spaces around it), or a bracket around an area
# or country code. Newlines and commas end a chain: they separate list items.
_SEP = r"(?:[ ]{0,2}[-.][ ]{0,2}|[ ]{1,3}|[ ]?\)[ ]?|[ ]?\([ ]?)"
_CHAIN = re.compile(rf"(?<![0-9+])(?:\([ ]?)?\+?[0-9]+(?:{_SEP}[0-9]+)*")
_GROUP = re.compile(r"[0-9]+")
_PLACEHOLDER = re.compile(r"\[(?:id|phone|secret)\]")
_EIGHT_DIGITS = re.compile(r"\d(?:\D*\d){7}")  # any script's digits: fewer than 8 in all, nothing to find
_NON_DIGIT = re.compile(r"[^0-9]")

# Context words, folded (no diacritics, lower case). "id" counts only as a word of its own, so a log key such as
# "user_id" is not one.
_ID_WORDS = r"cccd|cmnd|cmtnd|cmt|cc|can cuoc|cong dan|chung minh(?: nhan dan| thu)?|dinh danh|ddcn|id|so id|the cc"
_PHONE_WORDS = (
    r"sdt|so dt|dt|dtdd|dien thoai|di dong|didong|phone|tel|mobile|goi|call|zalo|viber|whatsapp|hotline|"
    r"lien he|lien lac|lh|nhan tin|sms"
)
_ID_CONTEXT = re.compile(rf"(?<![a-z0-9_])(?:{_ID_WORDS})(?![a-z0-9_])")
_PHONE_CONTEXT = re.compile(rf"(?<![a-z0-9_])(?:{_PHONE_WORDS})(?![a-z0-9_])")
# A word a number may be glued to ("sdt0912…", "cccd.0010…", "số0912…").
_GLUE_OK = re.compile(r"(?:cccd|cmnd|cmt|id|sdt|dt|tel|phone|zalo|goi|so|lh)$")
# Units after a number make it an amount; "k" only glued ("500k"): alone it is "không" in texting.
_UNIT_AFTER = re.compile(r"(?:[ ]?(?:d|dong|vnd|₫|tr|trieu|ty|nghin|ngan|usd|%)|k)(?![a-z0-9])")
_LEFT_WINDOW, _RIGHT_WINDOW = 32, 24

_SPACES = {"\t", "\u00a0", "\u1680", "\u202f", "\u205f", "\u3000", *(chr(c) for c in range(0x2000, 0x200B))}
_INVISIBLE = {"\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
_DASHES = {"\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "\ufe58", "\ufe63", "\uff0d"}
_DOTS = {"\u00b7", "\u2024", "\u2027", "\u3002", "\uff0e", "\u30fb"}


@dataclass(frozen=True)
class _Folded:
    text: str
    origin: list[int] | None  # origin[i]: offset in the original of folded character i (None: the same offset)

    def span(self, start: int, end: int) -> tuple[int, int]:
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1


def _fold_char(c: str) -> str:
    if c in _SPACES:
        return " "
    if c in _INVISIBLE:
        return ""
    if c in _DASHES:
        return "-"
    if c in _DOTS:
        return "."
    out = []
    for k in unicodedata.normalize("NFKD", c):
        if unicodedata.combining(k):
            continue
        if k in "đĐðÐ":  # ð: the Icelandic eth some keyboards give for Đ
            out.append("d")
        elif not k.isascii() and k.isdecimal():  # Arabic-Indic and other digits count as digits
            out.append(str(unicodedata.decimal(k)))
        else:
            out.append(k.lower())
    return "".join(out)


def _fold(text: str) -> _Folded:
    if text.isascii():
        return _Folded(text.lower().replace("\t", " "), None)
    chars: list[str] = []
    origin: list[int] = []
    for i, c in enumerate(text):
        folded = c if c.isascii() and c != "\t" else _fold_char(c)
        for k in folded.lower():
            chars.append(k)
            origin.append(i)
    return _Folded("".join(chars), origin)


def _context(window: str, *, before: bool) -> str | None:
    """The kind of the nearest context word in the window ("id", "phone" or None)."""
    window = _PLACEHOLDER.sub(lambda m: " " * len(m.group()), window)
    best: tuple[int, str] | None = None
    for kind, pattern in (("id", _ID_CONTEXT), ("phone", _PHONE_CONTEXT)):
        for m in pattern.finditer(window):
            distance = len(window) - m.end() if before else m.start()
            if best is None or distance < best[0]:
                best = (distance, kind)
    return best[1] if best else None


def _classify(digits: str, *, plus: bool, context: Callable[[], str | None], unit_after: bool) -> str | None:
    """ID, PHONE or None for a candidate's digits; `context()` (the nearest context word's kind) is asked for
    only where the digits alone do not decide."""
    n = len(digits)
    if plus:
        national = digits[2:].removeprefix("0") if digits.startswith("84") else None
        if national is None or re.fullmatch(r"[35789]\d{8}|2\d{9}", national):
            return PHONE if 8 <= n <= 15 else None  # +84 or a foreign number
    if unit_after and not digits.startswith("0"):
        return None
    if n == 12 and (digits[:3] in _PROVINCES or context() == "id"):  # ID numbers first: 001… is Hà Nội, not 00…
        return ID
    if re.fullmatch(r"0084(?:0?[35789]\d{8}|0?2\d{9})|00[1-9]\d{8,14}", digits):  # 0084…, 00 + a foreign number
        return PHONE
    if re.fullmatch(r"0[35789]\d{8}|02\d{9}|84(?:0?[35789]\d{8}|0?2\d{9})", digits):
        return PHONE
    if n == 9:
        kind = context()
        if kind == "phone" and digits[0] in "035789":
            return PHONE
        if kind == "id" or digits[0] == "0":  # an old CMND; amounts never start with 0
            return ID
    if 9 <= n <= 11 and digits[0] == "0" and context() == "phone":  # a mistyped phone number still is one
        return PHONE
    return None


def _glued_left(f: str, start: int) -> str | None:
    """The word the chain is glued to on the left ("" for a word ending in a digit), or None if not glued."""
    i = start
    if i > 0 and f[i - 1] in "-._":
        i -= 1
    j = i
    while j > 0 and (f[j - 1].isalnum() and f[j - 1].isascii()):
        j -= 1
    if j == i:
        return None
    word = f[j:i]
    return "" if any(c.isdigit() for c in word) else word


def _glued_right(f: str, end: int) -> bool:
    """True when the chain continues a code on the right (`.H22`, `-A01`, `T11`); `/` separates two numbers."""
    i = end + 1 if end < len(f) and f[end] in "-._" else end
    j = i
    while j < len(f) and f[j].isascii() and f[j].isalnum():
        j += 1
    return any(c.isdigit() for c in f[i:j])


def _find(text: str) -> list[tuple[int, int, str]]:
    """The spans (in `text`) of ID and phone numbers with their placeholders, in order."""
    if not _EIGHT_DIGITS.search(text):  # most log values: nothing to look at
        return []
    folded = _fold(text)
    f = folded.text
    chains = [m for m in _CHAIN.finditer(f) if len(_NON_DIGIT.sub("", m.group())) >= 8]
    marks: list[tuple[int, int]] = []

    def window(start: int, end: int, floor: int, ceiling: int, glued: str | None) -> str | None:
        # A context window stops at the previous or next number or placeholder, so a word belongs to the
        # number it stands beside, and redacting once more gives the same windows.
        if not marks:
            marks.extend(sorted((m.start(), m.end()) for m in (*_CHAIN.finditer(f), *_PLACEHOLDER.finditer(f))))
        left = max([e for s, e in marks if e <= start] + [floor, start - _LEFT_WINDOW])
        right = min([s for s, e in marks if s >= end] + [ceiling, end + _RIGHT_WINDOW])
        found = _context(f[left:start], before=True) or (_context(glued, before=True) if glued else None)
        return found or _context(f[end:right], before=False)

    found: list[tuple[int, int, str]] = []
    for chain in chains:
        groups = list(_GROUP.finditer(f, chain.start(), chain.end()))
        seps = [f[a.end() : b.start()] for a, b in pairwise(groups)]
        splittable = [s.strip(" ") == "" for s in seps]
        lead = f[chain.start() : groups[0].start()]
        glued = _glued_left(f, chain.start())
        glued_ok = glued is None or (glued != "" and _GLUE_OK.search(glued) is not None)
        right_ok = not _glued_right(f, chain.end())
        last = len(groups) - 1
        i = 0
        while i <= last:
            if (i > 0 and not splittable[i - 1]) or (i == 0 and not glued_ok):
                i += 1
                continue
            if i < last and groups[i].group() == "0" and seps[i] == ".":
                i += 1  # 0.912345678 is a decimal fraction
                continue
            matched = False
            for j in range(last, i - 1, -1):
                if (j < last and not splittable[j]) or (j == last and not right_ok):
                    continue
                digits = "".join(g.group() for g in groups[i : j + 1])
                if not 8 <= len(digits) <= 17:  # nothing shorter or longer is an ID or a phone number
                    continue
                if i == 0 and "(" in lead and ")" in f[chain.start() : groups[j].end()]:
                    start = chain.start()
                else:
                    start = groups[i].start() - (1 if i == 0 and lead.endswith("+") else 0)
                end = groups[j].end()
                # Inside a chain the window is the space between groups: the number beside it is no word.
                floor = groups[i - 1].end() if i > 0 else 0
                ceiling = groups[j + 1].start() if j < last else len(f)
                kind = _classify(
                    digits,
                    plus=i == 0 and "+" in lead,
                    context=partial(window, start, end, floor, ceiling, glued if i == 0 else None),
                    unit_after=_UNIT_AFTER.match(f, end) is not None,
                )
                if kind is not None:
                    found.append((*folded.span(start, end), kind))
                    i = j + 1
                    matched = True
                    break
            if not matched:
                i += 1
    return found


def redact(text: str) -> str:
    """Replace ID numbers, phone numbers and tokens with placeholders. Idempotent."""
    text = _TOKEN.sub(SECRET, text)
    text = _QUERY_SECRET.sub(rf"\1{SECRET}", text)
    for start, end, placeholder in reversed(_find(text)):
        text = text[:start] + placeholder + text[end:]
    return text


def contains_pii(text: str) -> bool:
    """True if the text holds an ID or phone number `redact` would replace."""
    return bool(_find(text))


def main(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Copy stdin to stdout line by line, redacted; undecodable bytes pass through unchanged."""
    if stdin is None:
        stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="surrogateescape", newline="", closefd=False)  # noqa: SIM115
    if stdout is None:
        stdout = open(sys.stdout.fileno(), "w", encoding="utf-8", errors="surrogateescape", newline="", closefd=False)  # noqa: SIM115
    for line in stdin:
        stdout.write(redact(line))
    stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
