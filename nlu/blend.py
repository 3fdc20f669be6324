"""The arithmetic of blending two intent rankings (used by nlu/components/ensemble.py).

No Rasa import here, so that the bot's environment can test it; and Python 3.10 syntax, for Rasa's.
A ranking is Rasa's: a list of {"name": intent, "confidence": probability}, best first, possibly truncated.

    p(intent) = weight * softmax(log p_second / temperature) + (1 - weight) * p_first / sum(p_first)

A temperature above 1 flattens the second ranking (DIET's, which puts 0.99 on nearly everything); the weighted
average keeps the first ranking's doubt (the logistic regression's) where the two disagree.
"""

from __future__ import annotations

import math
from typing import Any

FLOOR = 1e-6  # the probability taken for an intent missing from a truncated ranking


def blend(
    first: list[dict[str, Any]], second: list[dict[str, Any]], weight: float, temperature: float
) -> list[dict[str, Any]]:
    """The mixed ranking, best first (ties by name, so the result does not depend on input order)."""
    if not 0.0 <= weight <= 1.0 or temperature <= 0.0:
        raise ValueError("weight must be in [0, 1] and temperature above 0")
    p_first = {r["name"]: float(r["confidence"]) for r in first}
    p_second = {r["name"]: float(r["confidence"]) for r in second}
    names = sorted(set(p_first) | set(p_second))
    if not names:
        return []
    logits = {n: math.log(max(p_second.get(n, 0.0), FLOOR)) / temperature for n in names}
    top = max(logits.values())
    exps = {n: math.exp(x - top) for n, x in logits.items()}
    total = sum(exps.values())
    first_total = sum(p_first.values())
    if first_total > 0:
        mixed = {n: weight * exps[n] / total + (1.0 - weight) * p_first.get(n, 0.0) / first_total for n in names}
    else:  # no first ranking: the second one alone, softened
        mixed = {n: exps[n] / total for n in names}
    return [{"name": n, "confidence": p} for n, p in sorted(mixed.items(), key=lambda item: (-item[1], item[0]))]
