"""Reply-language detection: English, Vietnamese with and without diacritics, and neutral text."""

import pytest

from actions.lang import detect


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("hello", "en"),
        ("Hi there", "en"),
        ("how do I activate my VNeID account", "en"),
        ("I forgot my password", "en"),
        ("xin chào", "vi"),
        ("xin chao", "vi"),
        ("kich hoat tai khoan dinh danh muc 2", "vi"),
        ("ko nhan dc otp", "vi"),
        ("cảm ơn", "vi"),
        ("000.00.12.H22-240101-0003", None),
        ("👍", None),
        ("vneid", None),
    ],
)
def test_detect(text: str, lang: str | None) -> None:
    assert detect(text) == lang
