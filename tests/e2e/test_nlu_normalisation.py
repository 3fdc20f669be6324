"""The NLU's text normalisation (nlu/components/diacritics.py), run in the Rasa environment as the model runs it:
diacritics folded and the teencode/abbreviation table of config.yml applied to whole tokens, English untouched.
With config.yml's `fold_text: false` the folded form is the token's lemma (what the regression's featurizers read)
and the token text stays as typed (what DIET's featurizers read, `use_lemma: false`)."""

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
defaults = VietnameseDiacriticFolder.get_default_config()
component = VietnameseDiacriticFolder({**defaults, **folder})
folding_text = VietnameseDiacriticFolder({**defaults, **folder, "fold_text": True})
out = []
for text in json.load(sys.stdin):
    seen = []
    for folder_ in (component, folding_text):
        message = Message.build(text=text)
        tokenizer.process([message])
        folder_.process([message])
        tokens = message.get("text_tokens")
        seen.append({"lemma": [t.lemma for t in tokens], "text": [t.text for t in tokens]})
    out.append({"config": seen[0], "fold_text": seen[1]})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def normalised() -> dict[str, dict[str, dict[str, list[str]]]]:
    texts = [text for text, _ in CASES]
    return dict(zip(texts, run_in_rasa(SCRIPT, texts), strict=True))


@pytest.mark.parametrize(("typed", "tokens"), CASES)
def test_teencode_and_diacritics_are_normalised(
    normalised: dict[str, dict[str, dict[str, list[str]]]], typed: str, tokens: list[str]
) -> None:
    # config.yml: the lemma is folded and expanded, the text keeps what the citizen typed
    assert normalised[typed]["config"] == {"lemma": tokens, "text": typed.split()}
    # fold_text: true (the default) folds the text as well
    assert normalised[typed]["fold_text"] == {"lemma": tokens, "text": tokens}
