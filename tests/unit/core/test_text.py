"""The one diacritic folding (core/text.py) every part of the assistant uses: one table of what it must do."""

from __future__ import annotations

import unicodedata

import pytest

from core.text import fold, fold_with_offsets, has_diacritics, phrase_pattern

CASES = [
    ("Đăng KÝ định danh", "dang ky dinh danh"),
    ("Thứ Sáu tuần sau", "thu sau tuan sau"),
    ("ĐỔI CĂN CƯỚC", "doi can cuoc"),
    ("quên mật khẩu", "quen mat khau"),
    ("ðăng ký", "dang ky"),  # eth, which looks like đ, from some keyboards
    ("Phường Từ Sơn, xã Tam Đa", "phuong tu son, xa tam da"),
    ("ho so 000.00.12.H22-240101-0003", "ho so 000.00.12.h22-240101-0003"),  # codes and punctuation stay
    ("reset my password 🙏", "reset my password 🙏"),
    ("Nguyễn Thị Hương", "nguyen thi huong"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "folded"), CASES)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded
    assert fold(unicodedata.normalize("NFD", text)) == folded  # decomposed input folds the same


@pytest.mark.parametrize(("text", "folded"), CASES)
def test_fold_with_offsets_points_into_what_was_typed(text: str, folded: str) -> None:
    for typed in (text, unicodedata.normalize("NFD", text)):
        out, index = fold_with_offsets(typed)
        assert out == folded and len(index) == len(out)
        assert all(fold(typed[i]) == out[k] for k, i in enumerate(index))


def test_has_diacritics() -> None:
    assert has_diacritics("đăng ký") and has_diacritics("Đ") and has_diacritics("cám ơn")
    assert not has_diacritics("dang ky vneid") and not has_diacritics("HELLO 123") and not has_diacritics("")


def test_phrase_pattern_finds_whole_words_longest_first() -> None:
    pattern = phrase_pattern(["dang ky", "dang ky ket hon", "ho chieu", ""])
    assert [m.group(0) for m in pattern.finditer("muon dang ky ket hon o xa")] == ["dang ky ket hon"]
    assert [m.group(0) for m in pattern.finditer("lam ho chieu cho con")] == ["ho chieu"]
    assert pattern.search("dang kyy") is None and pattern.search("xho chieu") is None  # parts of words do not count
    assert [m.group(0) for m in pattern.finditer("ho chieu, dang ky.")] == ["ho chieu", "dang ky"]


def test_phrase_pattern_escapes_and_refuses_nothing() -> None:
    assert phrase_pattern(["c++ (v2)"]).search("hoc c++ (v2) nhe") is not None
    with pytest.raises(ValueError, match="at least one phrase"):
        phrase_pattern(["", ""])
