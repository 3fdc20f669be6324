"""The entity an intent implies (nlu/components/implied_entity.py), run in the Rasa environment with config.yml's
rules, as the model runs it: the card named in an ID-card question is the `id_card` procedure, the same words in
another intent are not, and an entity already found is kept."""

from __future__ import annotations

import pytest

from tests.support.rasa_env import run_in_rasa

# (text, the intent the classifiers gave, an entity already found or None) -> the procedure entities after it:
# (value, the text it spans).
CASES = [
    ("cccd hết hạn năm 25 tuổi có bắt buộc đổi không", "id_card_renewal", None, [("id_card", "cccd")]),
    ("25t co phai doi CCCD ko", "id_card_renewal", None, [("id_card", "CCCD")]),
    ("bác 60 tuổi rồi, Căn Cước có phải làm lại không", "id_card_renewal", None, [("id_card", "Căn Cước")]),
    ("my citizen ID expires next month", "id_card_renewal", None, [("id_card", "citizen ID")]),
    # the same words in another intent: the card is the means, not the procedure
    ("quét căn cước mãi không được", "eid_face_nfc_problem", None, []),
    # no word naming the card: nothing is invented
    ("25 tuổi có phải đi làm lại không", "id_card_renewal", None, []),
    # a rule word inside a longer word is not the card
    ("cccdx hết hạn", "id_card_renewal", None, []),
    # an entity the dictionary found is kept as it is, not doubled
    ("đổi cccd ở đâu", "id_card_renewal", ("id_card", 0, 8), [("id_card", "đổi cccd")]),
]

SCRIPT = """
import json, sys, yaml
from rasa.shared.nlu.training_data.message import Message
from nlu.components.implied_entity import IntentImpliedEntity
config = yaml.safe_load(open("config.yml", encoding="utf-8"))
[rule] = [c for c in config["pipeline"] if c["name"].endswith("IntentImpliedEntity")]
component = IntentImpliedEntity({**IntentImpliedEntity.get_default_config(), **rule})
out = []
for text, intent, found in json.load(sys.stdin):
    message = Message.build(text=text)
    message.set("intent", {"name": intent, "confidence": 0.9})
    if found:
        value, start, end = found
        message.set("entities", [{"entity": "procedure", "value": value, "start": start, "end": end}])
    component.process([message])
    out.append([(e["value"], text[e["start"]:e["end"]]) for e in message.get("entities") or []
                if e["entity"] == "procedure"])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def extracted() -> list[list[list[str]]]:
    return run_in_rasa(SCRIPT, [[text, intent, found] for text, intent, found, _ in CASES])


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_the_intent_implies_the_procedure_of_the_card_it_names(extracted: list[list[list[str]]], case: int) -> None:
    expected = [list(pair) for pair in CASES[case][3]]
    assert extracted[case] == expected
