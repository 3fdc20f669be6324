"""Vietnamese diacritic folding shared by the custom components (pure Python, no Rasa import)."""

from __future__ import annotations

import unicodedata

# đ/Đ is a separate letter, not a base letter plus a combining mark, so NFD alone does not strip it.
_SPECIAL = str.maketrans({"đ": "d", "Đ": "D"})


def fold_char(ch: str) -> str:
    """Return `ch` without diacritics, lower-cased; may be "" for a lone combining mark."""
    decomposed = unicodedata.normalize("NFD", ch.translate(_SPECIAL))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower()


def fold(text: str) -> str:
    """Fold a whole string: NFC normalise, strip combining marks, đ→d, lower-case."""
    return "".join(fold_char(c) for c in unicodedata.normalize("NFC", text))


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """Fold `text` keeping, for every folded character, the index of the original character it came from.

    Entity offsets must point into the text the citizen typed, which may be NFC or NFD, so the folded
    string is built character by character instead of normalising the whole text first.
    """
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        for f in fold_char(ch):
            out.append(f)
            index.append(i)
    return "".join(out), index
