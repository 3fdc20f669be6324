"""The NLU's text normalisation (nlu/components/diacritics.py), run in the Rasa environment as the model runs it:
diacritics folded and the teencode/abbreviation table of config.yml applied to whole tokens, English untouched."""

from __future__ import annotations

import pytest

from tests.support.rasa_env import run_in_rasa

# What a citizen types -> the tokens the featurizers see (config.yml's table; docs/nlu.md says why each is there).
CASES = [
    ("Ko nhận đc OTP", ["khong", "nhan", "duoc", "otp"]),
    ("k nhan dc ma", ["khong", "nhan", "duoc", "ma"]),
    ("hong nhận được mã", ["khong", "nhan", "duoc", "ma"]),
    ("quên mk vneid", ["quen", "mat khau", "vneid"]),
    ("đổi sdt tk định danh", ["doi", "so dien thoai", "tai khoan", "dinh", "danh"]),
    ("làm ntn vậy ad", ["lam", "nhu the nao", "vay", "admin"]),
    ("hỏi j vs ai", ["hoi", "gi", "voi", "ai"]),
    ("dky muc 2 het bn", ["dang ky", "muc", "2", "het", "bao nhieu"]),
    ("KÍCH HOẠT", ["kich", "hoat"]),
    ("đăng ký", ["dang", "ky"]),
    ("I need a passport", ["i", "need", "a", "passport"]),  # English words are not teencode
    ("can I get a new card", ["can", "i", "get", "a", "new", "card"]),
]

SCRIPT = """
import json, sys, yaml
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message
from nlu.components.diacritics import VietnameseDiacriticFolder
config = yaml.safe_load(open("config.yml", encoding="utf-8"))
[folder] = [c for c in config["pipeline"] if c["name"].endswith("VietnameseDiacriticFolder")]
tokenizer = WhitespaceTokenizer({**WhitespaceTokenizer.get_default_config()})
component = VietnameseDiacriticFolder({**VietnameseDiacriticFolder.get_default_config(), **folder})
out = []
for text in json.load(sys.stdin):
    message = Message.build(text=text)
    tokenizer.process([message])
    component.process([message])
    out.append([t.text for t in message.get("text_tokens")])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def normalised() -> dict[str, list[str]]:
    texts = [text for text, _ in CASES]
    return dict(zip(texts, run_in_rasa(SCRIPT, texts), strict=True))


@pytest.mark.parametrize(("typed", "tokens"), CASES)
def test_teencode_and_diacritics_are_normalised(
    normalised: dict[str, list[str]], typed: str, tokens: list[str]
) -> None:
    assert normalised[typed] == tokens
