"""Rasa entity extractor matching lookup tables and synonyms on diacritic-folded text."""
# ruff: noqa: UP006, UP035
# (typing.Dict/List on purpose: the Rasa graph validator compares these signatures with its own, on 3.10)

from __future__ import annotations

import json
import unicodedata
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
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from core.text import fold, fold_char, fold_with_offsets, phrase_pattern

_FILE = "folded_lookup.json"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class FoldedLookupEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Finds entities by dictionary on folded text and returns their canonical value.

    The dictionary is learnt from the training data of the configured `entities`: lookup tables,
    synonyms (variant -> canonical value) and the annotated examples. Matching folds diacritics on both
    sides, so "nhập hộ khẩu", "nhap ho khau" and "NHẬP HỘ KHẨU" all give permanent_residence, with
    start/end pointing into the original text. The longest phrase wins; whole words only.
    When the citizen did type diacritics, they must agree with a known spelling: "báo từ" (from) is not
    "báo tử" (death notice) although both fold to "bao tu"; a partly accented "dang ký" still matches.
    """

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"entities": []}

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        table: Dict[str, Dict[str, str]] | None = None,
        spellings: Dict[str, Dict[str, List[str]]] | None = None,
    ) -> None:
        self._config = config
        self._model_storage = model_storage
        self._resource = resource
        # entity -> folded phrase -> canonical value
        self._table: Dict[str, Dict[str, str]] = table or {}
        # entity -> folded phrase -> the accented spellings seen in the data (lower-case NFC)
        self._spellings: Dict[str, Dict[str, List[str]]] = spellings or {}
        self._patterns: Dict[str, Pattern[str]] = self._compile(self._table)

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> FoldedLookupEntityExtractor:
        return cls(config, model_storage, resource)

    @staticmethod
    def _compile(table: Dict[str, Dict[str, str]]) -> Dict[str, Pattern[str]]:
        patterns = {}
        for entity, phrases in table.items():
            if not phrases:
                continue
            patterns[entity] = phrase_pattern(phrases)
        return patterns

    def train(self, training_data: TrainingData) -> Resource:
        wanted = set(self._config.get("entities") or [])
        synonyms = {fold(k): v for k, v in training_data.entity_synonyms.items()}
        table: Dict[str, Dict[str, str]] = {e: {} for e in wanted}
        spellings: Dict[str, Dict[str, List[str]]] = {e: {} for e in wanted}

        def add(entity: str, phrase: str, value: str | None = None) -> None:
            key = fold(phrase).strip()
            if entity in wanted and key:
                table[entity].setdefault(key, value or synonyms.get(key, phrase))
                spelled = unicodedata.normalize("NFC", phrase.strip().lower())
                if spelled != key and spelled not in spellings[entity].setdefault(key, []):
                    spellings[entity][key].append(spelled)

        for lookup in training_data.lookup_tables:
            for element in lookup.get("elements") or []:
                add(lookup["name"], element)
        for message in training_data.training_examples:
            text = message.get(TEXT) or ""
            for entity in message.get(ENTITIES) or []:
                phrase = text[entity[ENTITY_ATTRIBUTE_START] : entity[ENTITY_ATTRIBUTE_END]]
                value = entity.get(ENTITY_ATTRIBUTE_VALUE)
                canonical = synonyms.get(fold(phrase)) or (value if value != phrase else None)
                add(entity[ENTITY_ATTRIBUTE_TYPE], phrase, canonical)
        # Synonym variants of a canonical value that belongs to one of our entities
        values_by_entity = {e: set(t.values()) for e, t in table.items()}
        for variant, canonical in training_data.entity_synonyms.items():
            for entity, values in values_by_entity.items():
                if canonical in values:
                    add(entity, variant, canonical)

        self._table = table
        self._spellings = spellings
        self._patterns = self._compile(table)
        with self._model_storage.write_to(self._resource) as directory:
            payload = {"table": table, "spellings": spellings}
            (directory / _FILE).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> FoldedLookupEntityExtractor:
        try:
            with model_storage.read_from(resource) as directory:
                payload = json.loads((directory / _FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            payload = {}
        return cls(config, model_storage, resource, payload.get("table"), payload.get("spellings"))

    @staticmethod
    def _compatible(typed: str, known: str) -> bool:
        """Every typed character is the known one or its bare letter (diacritics may be left out, not changed)."""
        return len(typed) == len(known) and all(t == k or t == fold_char(k) for t, k in zip(typed, known, strict=True))

    def _diacritics_agree(self, entity: str, key: str, typed: str) -> bool:
        typed = unicodedata.normalize("NFC", typed.lower())
        known = self._spellings.get(entity, {}).get(key)
        if typed == key or not known:
            return True
        return any(self._compatible(typed, k) for k in known)

    def _extract(self, text: str) -> List[Dict[str, Any]]:
        folded, index = fold_with_offsets(text)
        found = []
        for entity, pattern in self._patterns.items():
            for match in pattern.finditer(folded):
                start = index[match.start()]
                end = index[match.end() - 1] + 1
                if not self._diacritics_agree(entity, match.group(0), text[start:end]):
                    continue
                found.append(
                    {
                        ENTITY_ATTRIBUTE_TYPE: entity,
                        ENTITY_ATTRIBUTE_START: start,
                        ENTITY_ATTRIBUTE_END: end,
                        ENTITY_ATTRIBUTE_VALUE: self._table[entity][match.group(0)],
                        "text": text[start:end],
                        "confidence_entity": 1.0,
                    }
                )
        return found

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            entities = self.add_extractor_name(self._extract(message.get(TEXT) or ""))
            message.set(ENTITIES, message.get(ENTITIES, []) + entities, add_to_output=True)
        return messages
