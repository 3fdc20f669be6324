"""Rasa component adding the entity an intent implies when the message names its object without a known phrase.

A question about the ID card is `id_card_renewal`, and its procedure is `id_card` (docs/intents.md), but citizens
name the card alone: "cccd hết hạn năm 25 tuổi có bắt buộc đổi không", "my CCCD expires when I turn 25". The
dictionary extractor cannot map "cccd" or "căn cước" to `id_card` by itself: the same words are in every VNeID
question ("quét căn cước không được" is a face/NFC problem, not a card procedure). Once the intent is known, the
card named in the message is the procedure's object. Each rule of the config says: for this intent, when the
message has no `entity` yet, any of these words (folded, whole words) gives `entity` = `value`, spanning the first
word found. Rasa's extractors see no intent, hence this component; it runs after the intent classifiers.
"""
# ruff: noqa: UP006, UP035
# (typing.Dict/List on purpose: the Rasa graph validator compares these signatures with its own, on 3.10)

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Pattern

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    INTENT,
    INTENT_NAME_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from core.text import fold, fold_with_offsets, phrase_pattern


@dataclass(frozen=True)
class _Rule:
    intent: str
    entity: str
    value: str
    pattern: Pattern[str]


def _rules(config: Dict[str, Any]) -> List[_Rule]:
    rules = []
    for raw in config.get("rules") or []:
        words = {fold(w).strip() for w in raw["words"]} - {""}
        if not words:
            raise ValueError(f"implied entity rule for {raw.get('intent')!r} has no words")
        pattern = phrase_pattern(words)
        rules.append(_Rule(str(raw["intent"]), str(raw["entity"]), str(raw["value"]), pattern))
    return rules


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class IntentImpliedEntity(GraphComponent, EntityExtractorMixin):
    """For a message of a rule's intent with none of the rule's entity, the first rule word found gives it."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"rules": []}

    def __init__(self, config: Dict[str, Any]) -> None:
        self._rules = _rules(config)

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> IntentImpliedEntity:
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            entities = list(message.get(ENTITIES) or [])
            added = []
            for rule in self._rules:
                if rule.intent != intent or any(e.get(ENTITY_ATTRIBUTE_TYPE) == rule.entity for e in entities):
                    continue
                text = message.get(TEXT) or ""
                folded, index = fold_with_offsets(text)
                match = rule.pattern.search(folded)
                if match is None:
                    continue
                start, end = index[match.start()], index[match.end() - 1] + 1
                added.append(
                    {
                        ENTITY_ATTRIBUTE_TYPE: rule.entity,
                        ENTITY_ATTRIBUTE_START: start,
                        ENTITY_ATTRIBUTE_END: end,
                        ENTITY_ATTRIBUTE_VALUE: rule.value,
                        "text": text[start:end],
                        "confidence_entity": 1.0,
                    }
                )
            if added:
                message.set(ENTITIES, entities + self.add_extractor_name(added), add_to_output=True)
        return messages
