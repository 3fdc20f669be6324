"""Two intent classifiers in one pipeline, their rankings blended into one calibrated ranking.

Rasa runs the NLU components as a chain, and each intent classifier overwrites the message's `intent` and
`intent_ranking`. `IntentRankingStash`, placed after the first classifier, keeps its ranking aside;
`IntentRankingBlend`, placed after the second, mixes the two:

    p(intent) = weight * softmax(log p_second / temperature) + (1 - weight) * p_first   (nlu/blend.py)

Why (docs/nlu.md, candidate (g)): DIET reads citizens' messages better than the logistic regression, but it puts
0.99 on almost every reading, nonsense included, so the bot's "did you mean", fallback and ticket confirmation
cannot rely on it. The regression's probabilities do carry uncertainty. A temperature above 1 would soften DIET's
ranking, and the average keeps the regression's doubt where the two disagree. Both parameters are chosen by
`nlu/tools/blend_tune.py` on the first field edition, never on the field set that measures the model.

Rasa has no stock component that combines classifiers, hence these two small ones.
"""
# ruff: noqa: UP006, UP035
# (typing.Dict/List on purpose: the Rasa graph validator compares these signatures with its own, on 3.10)

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY
from rasa.shared.nlu.training_data.message import Message

from nlu.blend import blend

STASH = "stashed_intent_ranking"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class IntentRankingStash(GraphComponent):
    """Keeps the ranking of the classifier before it, for `IntentRankingBlend`."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {}

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> IntentRankingStash:
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            message.set(STASH, list(message.get(INTENT_RANKING_KEY) or []))
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class IntentRankingBlend(GraphComponent):
    """Mixes the stashed ranking with the ranking of the classifier before it (see the module's docstring)."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"weight": 0.5, "temperature": 1.0, "ranking_length": 10}

    def __init__(self, config: Dict[str, Any]) -> None:
        self._weight = float(config["weight"])
        self._temperature = float(config["temperature"])
        self._length = int(config["ranking_length"])
        blend([], [], self._weight, self._temperature)  # refuses a weight or temperature out of range now

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> IntentRankingBlend:
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            first = message.data.pop(STASH, None) or []
            second = message.get(INTENT_RANKING_KEY) or []
            ranking = blend(first, second, self._weight, self._temperature)
            if not ranking:
                continue
            if self._length > 0:
                ranking = ranking[: self._length]
            message.set(INTENT, dict(ranking[0]), add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
