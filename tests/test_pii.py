"""Redaction of ID numbers, phone numbers and tokens: what must go, and what must stay readable."""

import pytest

from core.pii import contains_pii, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("số cccd của tôi là 001099012345", "số cccd của tôi là [id]"),
        ("CCCD 001 099 012 345 nhé", "CCCD [id] nhé"),
        ("cmnd cũ 123456789", "cmnd cũ [id]"),
        ("sđt 0912345678 ko nhận dc otp", "sđt [phone] ko nhận dc otp"),
        ("gọi +84 912 345 678 giúp", "gọi [phone] giúp"),
        ("so dt 84912345678", "so dt [phone]"),
        ("0912.345.678", "[phone]"),
        ("url /bot123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345/getMe", "url /bot[secret]/getMe"),
        ("Authorization: Bearer eyJhbGciOi.abc.def", "Authorization: [secret]"),
    ],
)
def test_redacts(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(redact(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tra cứu hồ sơ 000.00.12.H22-240101-0003",
        "38.98.H29-210519-0013",
        "nhắc tôi lúc 8h30 ngày 15/12/2026",
        "lệ phí 200.000 đồng",
        "hotline 1900 0368",
        "user 987654321012345",  # 15 digits: not an ID number
    ],
)
def test_keeps_ordinary_numbers(text: str) -> None:
    assert redact(text) == text
    assert not contains_pii(text)
