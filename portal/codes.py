"""Dossier codes as one-stop systems issue them: finding one in a sentence and normalising it."""

from __future__ import annotations

import datetime as dt
import re

# Circular 01/2018/TT-VPCP art. 19: unit code (Circular 10/2016/TT-BTTTT, e.g. 000.00.12.H22), then the day
# the dossier was received (YYMMDD), then a 4-digit daily sequence number, joined by dashes.
_SEGMENT = r"[A-Z0-9]{1,6}"
_UNIT = rf"{_SEGMENT}(?:\.{_SEGMENT}){{1,5}}"
_CODE = re.compile(rf"^(?P<unit>{_UNIT})-(?P<date>\d{{6}})-(?P<seq>\d{{4}})$")

# In free text people type spaces around the dashes and any case; the unit code itself has no spaces (a space
# next to a dot is more likely the end of a sentence than part of a code).
_IN_TEXT = re.compile(
    rf"(?<![\w.])(?P<raw>{_UNIT}\s*-\s*\d{{6}}\s*-\s*\d{{4}})(?!\w)",
    re.IGNORECASE,
)

# Dash look-alikes that keyboards, phones and word processors substitute for "-".
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"))
_STRAY = "\"'`«»“”‘’()[]{}<>.,;:!?*_#"  # punctuation that clings to a code copied out of a sentence

MAX_LEN = 40  # longest code the store and callback payloads accept


def _valid_date(yymmdd: str) -> bool:
    try:
        dt.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        return False
    return True


def normalize_code(raw: str | None) -> str | None:
    """The canonical form (upper case, no spaces, ASCII dashes) of `raw`, or None if it is no dossier code."""
    if not raw:
        return None
    text = raw.translate(_DASHES)
    text = "".join(text.split()).strip(_STRAY).upper()
    if len(text) > MAX_LEN:
        return None
    match = _CODE.match(text)
    if match is None or not any(c.isalpha() for c in match["unit"]):
        return None
    if not _valid_date(match["date"]):
        return None
    return text


def find_code(text: str | None) -> str | None:
    """The first valid dossier code anywhere in `text`, normalised, or None."""
    if not text:
        return None
    for match in _IN_TEXT.finditer(text.translate(_DASHES)):
        code = normalize_code(match["raw"])
        if code is not None:
            return code
    return None


def looks_like_code_attempt(text: str | None) -> bool:
    """True when `text` seems to be a mistyped code (digits joined by dashes) rather than another question."""
    if not text:
        return False
    return re.search(r"\d{2,}\s*-\s*\d{2,}", text.translate(_DASHES)) is not None
