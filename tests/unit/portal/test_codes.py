"""Dossier codes: finding one in a sentence and normalising the many ways people type it."""

from __future__ import annotations

import pytest

from portal.codes import find_code, looks_like_code_attempt, normalize_code

NORMALIZE = [
    # (raw, expected)
    ("000.00.12.H22-240101-0003", "000.00.12.H22-240101-0003"),
    ("000.00.12.h22-240101-0003", "000.00.12.H22-240101-0003"),
    ("38.98.H29-210519-0013", "38.98.H29-210519-0013"),
    ("H22.38-240615-0001", "H22.38-240615-0001"),
    ("h22.38-240615-0001", "H22.38-240615-0001"),
    ("000.00.12.H22 - 240101 - 0003", "000.00.12.H22-240101-0003"),
    ("000.00.12.H22–240101–0003", "000.00.12.H22-240101-0003"),  # en dash
    ("000.00.12.H22—240101—0003", "000.00.12.H22-240101-0003"),  # em dash
    ("000.00.12.H22\u2212240101\u22120003", "000.00.12.H22-240101-0003"),  # minus sign
    ("000.00.12.H22-240101-0003.", "000.00.12.H22-240101-0003"),  # trailing full stop
    ("(000.00.12.H22-240101-0003)", "000.00.12.H22-240101-0003"),
    ("«000.00.12.H22-240101-0003»,", "000.00.12.H22-240101-0003"),
    ("  000.00.12.H22-240101-0003\n", "000.00.12.H22-240101-0003"),
    ("000.00 .12.H22-240101-0003", "000.00.12.H22-240101-0003"),  # a stray space inside
    ("000.00.12.H22-240229-0003", "000.00.12.H22-240229-0003"),  # 2024 is a leap year
    # invalid dates
    ("000.00.12.H22-241301-0003", None),
    ("000.00.12.H22-240132-0003", None),
    ("000.00.12.H22-230229-0003", None),
    ("000.00.12.H22-240100-0003", None),
    # wrong shape
    ("000.00.12.H22-240101-003", None),  # sequence too short
    ("000.00.12.H22-240101-00031", None),  # sequence too long
    ("000.00.12.H22-24011-0003", None),  # date too short
    ("240101-0003", None),  # no unit code
    ("H22-240101-0003", None),  # unit code of one segment
    ("000.00.12.000-240101-0003", None),  # unit code without a letter
    ("000.00.12.H22_240101_0003", None),
    ("03706/2026/07906", None),  # a social-insurance dossier number, another system
    ("", None),
    (None, None),
    ("hồ sơ", None),
    ("0" * 50 + ".H22-240101-0003", None),  # too long
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZE)
def test_normalize_code(raw: str | None, expected: str | None) -> None:
    assert normalize_code(raw) == expected


FIND = [
    ("tra cứu hồ sơ 000.00.12.H22-240101-0003", "000.00.12.H22-240101-0003"),
    ("hồ sơ 000.00.12.h22-240101-0003 xong chưa", "000.00.12.H22-240101-0003"),
    ("ma ho so 38.98.H29-210519-0013 den dau roi ad", "38.98.H29-210519-0013"),
    ("Cho mình hỏi hồ sơ H22.38-240615-0001.", "H22.38-240615-0001"),
    ("mã: h22.38 – 240615 – 0001 nhé", "H22.38-240615-0001"),
    ("Mã hồ sơ:000.00.12.H22-240101-0003, nộp hôm 1/1", "000.00.12.H22-240101-0003"),
    ("(mã hồ sơ 000.00.12.H22 - 240101 - 0003)", "000.00.12.H22-240101-0003"),
    ("000.00.12.H22-240101-0003", "000.00.12.H22-240101-0003"),
    ("check status of 000.00.12.H22-240102-0011 please", "000.00.12.H22-240102-0011"),
    # the first valid one wins; an invalid date is skipped
    ("000.00.12.H22-241399-0003 hay 000.00.12.H22-240101-0003", "000.00.12.H22-240101-0003"),
    # not a code
    ("hồ sơ của tôi đến đâu rồi", None),
    ("số điện thoại 0912-345-678", None),
    ("mã hồ sơ 000.00.12.H22-241399-0003", None),
    ("mã hồ sơ 000.00.12.H22-240101-003", None),
    ("000.00.12.H22-240101-00031", None),
    ("ngày 01-01-2024", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), FIND)
def test_find_code(text: str | None, expected: str | None) -> None:
    assert find_code(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("000.00.12.H22-241399-0003", True),
        ("mã của em là 240101 - 003", True),
        ("cách kích hoạt vneid", False),
        ("hồ sơ của tôi đến đâu rồi", False),
        (None, False),
    ],
)
def test_looks_like_code_attempt(text: str | None, expected: bool) -> None:
    assert looks_like_code_attempt(text) is expected
