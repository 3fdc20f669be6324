"""Rasa featurizer-stage component folding Vietnamese diacritics in token texts (message text untouched)."""
# ruff: noqa: UP006, UP035
# (typing.Dict/List on purpose: the Rasa graph validator compares these signatures with its own, on 3.10)

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from core.text import fold


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class VietnameseDiacriticFolder(GraphComponent):
    """Rewrites the text and lemma of every token of the message text to its folded form.

    Placed after the tokenizer and before the featurizers, it makes "kích hoạt", "kich hoat" and
    "KÍCH HOẠT" produce the same features. The message text itself and the token offsets are left
    alone, so entity extractors that read the text (regex, lookup) keep exact spans.
    `replacements` maps whole folded tokens (teencode such as "ko", "dc") to a canonical spelling.
    With `fold_text: false` only the lemma is folded and the token text keeps its diacritics, so a
    featurizer with `use_lemma: false` can see them ("bao tử" is not "báo tử") while the others,
    which read the lemma by default, see the folded form.
    """

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"replacements": {}, "fold_text": True}

    def __init__(self, config: Dict[str, Any]) -> None:
        self._replacements = {fold(k): fold(v) for k, v in (config.get("replacements") or {}).items()}
        self._fold_text = bool(config.get("fold_text", True))

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> VietnameseDiacriticFolder:
        return cls(config)

    def _fold_message(self, message: Message) -> None:
        tokens = message.get(TOKENS_NAMES[TEXT])
        if not tokens:
            return
        for token in tokens:
            folded = fold(token.text)
            folded = self._replacements.get(folded, folded)
            if self._fold_text:
                token.text = folded
            token.lemma = folded

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for message in training_data.training_examples:
            self._fold_message(message)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._fold_message(message)
        return messages

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        replacements: Any | None = config.get("replacements")
        if replacements is not None and not isinstance(replacements, dict):
            raise ValueError("VietnameseDiacriticFolder: 'replacements' must be a mapping")
