"""Rasa component normalising extracted entity values (dossier codes upper-case, no stray punctuation)."""
# ruff: noqa: UP006, UP035
# (typing.Dict/List on purpose: the Rasa graph validator compares these signatures with its own, on 3.10)

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, ENTITY_ATTRIBUTE_TYPE, ENTITY_ATTRIBUTE_VALUE
from rasa.shared.nlu.training_data.message import Message

# Characters a citizen may type around a code ("(000.00.12.H22-240101-0003)." ) that are never part of it.
_STRIP = " \t\r\n.,;:!?()[]{}<>\"'`“”‘’"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class EntityValueNormalizer(GraphComponent, EntityExtractorMixin):
    """Upper-cases and trims the values of the configured entities; drops duplicates; orders by position."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"upper_case": ["dossier_code"]}

    def __init__(self, config: Dict[str, Any]) -> None:
        self._upper = set(config.get("upper_case") or [])

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EntityValueNormalizer:
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            entities = message.get(ENTITIES) or []
            seen = set()
            kept = []
            for entity in entities:
                if entity.get(ENTITY_ATTRIBUTE_TYPE) in self._upper:
                    entity[ENTITY_ATTRIBUTE_VALUE] = str(entity[ENTITY_ATTRIBUTE_VALUE]).strip(_STRIP).upper()
                    self.add_processor_name(entity)
                key = (entity.get(ENTITY_ATTRIBUTE_TYPE), entity.get(ENTITY_ATTRIBUTE_VALUE), entity.get("start"))
                if key in seen:
                    continue
                seen.add(key)
                kept.append(entity)
            kept.sort(key=lambda e: (e.get("start") or 0, e.get("end") or 0))
            message.set(ENTITIES, kept, add_to_output=True)
        return messages
