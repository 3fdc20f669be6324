"""Vietnamese diacritic folding: the one implementation every part of the assistant uses.

"Đăng ký thường trú" and "dang ky thuong tru" must look alike to the NLU components, the time-expression parser,
the language detector, the reminders' yes/no reading and the area search. Folding lower-cases, drops every
combining mark after canonical decomposition (the tone and vowel marks), and maps đ/Đ to d: đ is a letter of its
own in Unicode, not d plus a mark, so decomposition alone keeps it. ð/Ð (eth) is mapped too: it looks like đ and
some keyboards and fonts produce it.

Pure standard library and Python 3.10 syntax: the custom Rasa components (run by Rasa's Python 3.10) import it,
and nlu/tools/common.py counts this file among the inputs of a trained model.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_D = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "Ð": "d"})


def fold_char(ch: str) -> str:
    """`ch` lower-cased without diacritics; "" for a lone combining mark, several letters for a ligature never."""
    decomposed = unicodedata.normalize("NFD", ch.translate(_D))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def fold(text: str) -> str:
    """Fold a whole string: "Thứ Sáu, ĐĂNG KÝ" -> "thu sau, dang ky". Other characters are kept as they are."""
    decomposed = unicodedata.normalize("NFD", text.translate(_D))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """Fold `text` keeping, for every folded character, the index of the character it came from.

    Entity offsets must point into the text the citizen typed, which may be NFC or NFD, so the folded string is
    built character by character instead of normalising the whole text first.
    """
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        for f in fold_char(ch):
            out.append(f)
            index.append(i)
    return "".join(out), index


def has_diacritics(text: str) -> bool:
    """Whether the text carries Vietnamese marks (or đ): what tells accented writing from unaccented."""
    return fold(text) != text.lower()


def phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str]:
    """A regex finding any of `phrases` as whole words, the longest first ("dang ky ket hon" before "dang ky").

    The phrases are matched as given: fold them, and the text searched, for diacritic-blind matching."""
    alternatives = sorted({p for p in phrases if p}, key=len, reverse=True)
    if not alternatives:
        raise ValueError("phrase_pattern needs at least one phrase")
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in alternatives) + r")(?!\w)")
