"""Redaction of ID numbers, phone numbers and tokens: the formats accepted, in both directions.

The two tables below are the published contract of core.pii: every line of MUST_REDACT is a way citizens type
an ID or phone number (it must come out as shown), every line of MUST_KEEP is a number that must stay readable
(amounts, dossier codes, dates, hotlines, payment references, log fields)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.pii import contains_pii, redact

ROOT = Path(__file__).resolve().parents[3]
NBSP, NNBSP, ZWSP = "\u00a0", "\u202f", "\u200b"

MUST_REDACT: list[tuple[str, str]] = [
    # --- 12-digit personal ID numbers (CCCD, số định danh) ---
    ("số cccd của tôi là 001099012345", "số cccd của tôi là [id]"),
    ("CCCD 001 099 012 345 nhé", "CCCD [id] nhé"),
    ("001099012345", "[id]"),
    ("038099001122", "[id]"),
    ("079 203 004 567", "[id]"),
    ("001-099-012-345", "[id]"),
    ("001.099.012.345", "[id]"),
    ("0010 9901 2345", "[id]"),
    ("001  099   012345", "[id]"),
    (f"001{NBSP}099{NBSP}012{NBSP}345", "[id]"),
    (f"001{NNBSP}099{NNBSP}012{NNBSP}345", "[id]"),
    ("001–099–012–345", "[id]"),  # en dashes, as phones autocorrect them
    ("CCCD.001099012345", "CCCD.[id]"),
    ("CCCD.0010 9901 2345", "CCCD.[id]"),
    ("cccd:001099012345", "cccd:[id]"),
    ("cccd001099012345", "cccd[id]"),
    ("số định danh 123456789012", "số định danh [id]"),  # with the word, any 12 digits
    ("so dinh danh ca nhan: 123 456 789 012", "so dinh danh ca nhan: [id]"),
    ("căn cước 987654321098", "căn cước [id]"),
    ("ID 123456789012", "ID [id]"),
    ("０３８０９９００１１２２", "[id]"),  # full-width digits
    # --- 9-digit CMND ---
    ("cmnd cũ 123456789", "cmnd cũ [id]"),
    ("cmnd 123 456 789", "cmnd [id]"),
    ("CMND: 125-456-789", "CMND: [id]"),
    ("chứng minh nhân dân số 212 345 678", "chứng minh nhân dân số [id]"),
    ("cmt 171234567", "cmt [id]"),
    ("số cmnd của tôi 013456789 ạ", "số cmnd của tôi [id] ạ"),
    ("cmnd 123456789 k nhớ ngày cấp", "cmnd [id] k nhớ ngày cấp"),  # "k" here is "không", not thousands
    ("013456789", "[id]"),  # an old Hà Nội number: amounts never start with 0
    # --- mobile phones ---
    ("sđt 0912345678 ko nhận dc otp", "sđt [phone] ko nhận dc otp"),
    ("0912345678", "[phone]"),
    ("0912.345.678", "[phone]"),
    ("0912-345-678", "[phone]"),
    ("0912 345 678", "[phone]"),
    ("091 234 5678", "[phone]"),
    ("09 12 34 56 78", "[phone]"),
    ("0912 - 345 - 678", "[phone]"),
    (f"0912{NBSP}345{NBSP}678", "[phone]"),
    (f"0912{ZWSP}345678", "[phone]"),
    ("gọi +84 912 345 678 giúp", "gọi [phone] giúp"),
    ("+84912345678", "[phone]"),
    ("+84-912-345-678", "[phone]"),
    ("(+84) 912 345 678", "[phone]"),
    ("+84 (0) 912 345 678", "[phone]"),
    ("+840912345678", "[phone]"),
    ("0084 912 345 678", "[phone]"),
    ("0084912345678", "[phone]"),
    ("so dt 84912345678", "so dt [phone]"),
    ("sdt0912345678", "sdt[phone]"),
    ("sđt:0912345678", "sđt:[phone]"),
    ("số0912345678", "số[phone]"),
    ("zalo 0387 654 321", "zalo [phone]"),
    ("zalo 912 345 678", "zalo [phone]"),  # the leading 0 left out, said by the context word
    ("gọi cho mình 0356.789.123 nhé", "gọi cho mình [phone] nhé"),
    ("0912345678/0987654321", "[phone]/[phone]"),
    ("0912345678, 0987654321", "[phone], [phone]"),
    ("hẹn 15 0912345678", "hẹn 15 [phone]"),
    ("sđt: 0912 345 678.Cảm ơn", "sđt: [phone].Cảm ơn"),
    ("(sđt 0912345678)", "(sđt [phone])"),
    # --- landlines (11 digits since 2017) ---
    ("0204 3854 123", "[phone]"),
    ("(0222) 3 822 456", "[phone]"),
    ("024 3825 1234", "[phone]"),
    ("điện thoại cơ quan 028.3829.1234", "điện thoại cơ quan [phone]"),
    ("+84 24 3825 1234", "[phone]"),
    # --- two at once: the ID is found first, the phone beside it too ---
    ("001099012345 0912345678", "[id] [phone]"),
    (
        "nhac toi mai 8h goi so 0911222333 hoi ve cccd 038099001122",
        "nhac toi mai 8h goi so [phone] hoi ve cccd [id]",
    ),
    ("cccd 001099012345, sđt 0912345678", "cccd [id], sđt [phone]"),
    # --- secrets ---
    ("url /bot123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345/getMe", "url /bot[secret]/getMe"),
    ("Authorization: Bearer eyJhbGciOi.abc.def", "Authorization: [secret]"),
    ("GET /model/parse?token=abc123&x=1", "GET /model/parse?token=[secret]&x=1"),
]

MUST_KEEP: list[str] = [
    # dossier codes and receipt numbers
    "tra cứu hồ sơ 000.00.12.H22-240101-0003",
    "38.98.H29-210519-0013",
    "H22.12-241205-0001",
    # amounts
    "lệ phí 200.000 đồng",
    "lệ phí 1.200.000 đồng",
    "chuyển khoản 120000000",
    "120.000.000 đ",
    "phí 120.000.000.000 đồng",
    "1,200,000,000 VND",
    "cccd 001099012345 hết, phí 120000000",  # the ID goes; the amount after it stays (checked below)
    "nộp 350000000đ",
    "cmnd 123456789đ",  # after the word, still an amount
    "cmnd 125000000 vnd",
    # payment references, UUIDs, hashes
    "mã giao dịch FT24001234567",
    "ref VNP14123456789",
    "123e4567-e89b-12d3-a456-426614174000",
    "sha 9f86d081884c7d659a2feaea0c55ad015a3bf4b822cd15d6c15b0f00a08",
    # dates, times, durations, years
    "nhắc tôi lúc 8h30 ngày 15/12/2026",
    "2026-12-05T11:59:48.123456Z",
    "từ 01/07/2024 đến 31/12/2026",
    "0.912345678",
    "elapsed 0.0912345678 s",
    # hotlines and service numbers (not a person's)
    "hotline 1900 0368",
    "gọi 1900.0368 bấm phím 4",
    "tổng đài 18001091",
    "gọi 113",
    # other long numbers
    "user 987654321012345",  # 15 digits: not an ID number
    "chat 7000000001",
    '{"user_id": 123456789}',  # "id" inside a log key is not the word "id"
    "update 123456789",
    "dân số 123456789 người",
    "mã số thuế 0101234567-001",
    "số hồ sơ 202412051234",
    "version 1.20.300.4000",
]


@pytest.mark.parametrize(("text", "expected"), MUST_REDACT)
def test_redacts(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert contains_pii(text) == ("[secret]" not in expected)  # secrets: the log scan looks for them by value
    assert redact(expected) == expected  # idempotent
    assert not contains_pii(expected)


@pytest.mark.parametrize("text", MUST_KEEP)
def test_keeps_ordinary_numbers(text: str) -> None:
    if "001099012345" in text:
        assert redact(text) == text.replace("001099012345", "[id]")
        return
    assert redact(text) == text
    assert not contains_pii(text)


def test_the_contract_is_wide_enough() -> None:
    assert len(MUST_REDACT) + len(MUST_KEEP) >= 60
    assert len(MUST_KEEP) >= 25


@settings(max_examples=400, deadline=None, database=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "0912",
                "345",
                "678",
                "001",
                "099",
                "84",
                "+",
                "(",
                ")",
                " ",
                "  ",
                ".",
                "-",
                "/",
                NBSP,
                ZWSP,
                "sđt",
                "cccd",
                "id",
                "đ",
                "H22",
                "x",
                ",",
                "\n",
                "0",
                "9",
                "[phone]",
            ]
        ),
        max_size=30,
    ).map("".join)
)
def test_redacting_twice_changes_nothing(text: str) -> None:
    """What redact leaves is never flagged (the log scan relies on it) and a second pass changes nothing."""
    once = redact(text)
    assert redact(once) == once
    assert not contains_pii(once)


def test_the_command_line_scrubs_stdin_line_by_line() -> None:
    """`python -m core.pii < export.txt`: each line redacted, line endings and undecodable bytes kept."""
    text = "sđt 0912 345 678\nphí 1.200.000 đồng\r\nCCCD.001099012345\nkhông có số\n"
    done = subprocess.run(
        [sys.executable, "-m", "core.pii"],
        input=text.encode() + b"\xff\xfe 0084 912 345 678",  # a broken byte, and no newline at the end
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    expected = "sđt [phone]\nphí 1.200.000 đồng\r\nCCCD.[id]\nkhông có số\n"
    assert done.stdout == expected.encode() + b"\xff\xfe [phone]"
    assert done.stderr == b""
