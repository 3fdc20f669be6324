"""What an evaluation measured of one model, kept beside the model file, and the hot-swap guard that reads it.

`make nlu-test` (nlu/tools/evaluate.py) writes `models/nlu-<hash>.figures.json` next to `nlu-<hash>.tar.gz`. The
admins' models page shows these figures for the running model and a candidate side by side, and both hot-swap
paths (the page's button and `make nlu-reload`) refuse a candidate that is worse on the field set than the model it
would replace. The figures are compared only when both were measured on the same field set (its hash is recorded):
a field set rewritten between two evaluations makes the two accuracies incomparable.

No Rasa import here: the bot's environment reads these files too; and Python 3.10 syntax, for Rasa's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIELD_DIR = ROOT / "data" / "nlu_field"
HELDOUT_MIN = 0.95  # the held-out accuracy a model must reach to be swapped in (nlu/tools/common.py TARGETS)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)  # noqa: UP017 - dt.UTC is Python 3.11; the Rasa tools run on 3.10


def path_for(model: Path) -> Path:
    return model.with_name(model.name.removesuffix(".tar.gz") + ".figures.json")


def field_set_hash(field_dir: Path = FIELD_DIR) -> str:
    digest = hashlib.sha256()
    for path in sorted(field_dir.glob("*.yml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Figures:
    model: str  # the model's file name
    evaluated_at: dt.datetime
    field_set: str  # field_set_hash() when it was measured
    field_n: int
    heldout_accuracy: float
    field_accuracy: float  # a fallback counts as a miss
    field_confident_wrong: float  # share answered with a wrong intent at or above the answer threshold
    field_accuracy_by_style: dict[str, float]

    @classmethod
    def from_summary(cls, model: Path, summary: dict[str, Any], now: dt.datetime, field_set: str) -> Figures:
        """From nlu/tools/evaluate.py's summary dictionary."""
        styles = {
            key.removeprefix("nlu_field_accuracy_"): float(value)
            for key, value in summary.items()
            if key.startswith("nlu_field_accuracy_") and isinstance(value, int | float)
        }
        return cls(
            model=model.name,
            evaluated_at=now,
            field_set=field_set,
            field_n=int(summary["nlu_field_n"]),
            heldout_accuracy=float(summary["nlu_heldout_accuracy"]),
            field_accuracy=float(summary["nlu_field_accuracy"]),
            field_confident_wrong=float(summary["nlu_field_confident_wrong"]),
            field_accuracy_by_style=styles,
        )

    def write(self, model: Path) -> Path:
        data = asdict(self) | {"evaluated_at": self.evaluated_at.isoformat()}
        path = path_for(model)
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        return path


def read(model: Path) -> Figures | None:
    """The figures recorded for this model file, or None when it was never evaluated (or the file is unreadable:
    a half-written or hand-edited file must not let a model through the guard)."""
    path = path_for(model)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        figures = Figures(
            model=str(data["model"]),
            evaluated_at=dt.datetime.fromisoformat(data["evaluated_at"]),
            field_set=str(data["field_set"]),
            field_n=int(data["field_n"]),
            heldout_accuracy=float(data["heldout_accuracy"]),
            field_accuracy=float(data["field_accuracy"]),
            field_confident_wrong=float(data["field_confident_wrong"]),
            field_accuracy_by_style={str(k): float(v) for k, v in dict(data["field_accuracy_by_style"]).items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return figures if figures.model == model.name else None


class Refusal(str, Enum):  # noqa: UP042 - StrEnum is Python 3.11; nlu/tools/reload.py runs on Rasa's 3.10
    """Why a candidate may not replace the running model (the console shows each in words)."""

    CANDIDATE_UNMEASURED = "candidate_unmeasured"
    RUNNING_UNMEASURED = "running_unmeasured"
    DIFFERENT_FIELD_SETS = "different_field_sets"
    HELDOUT_BELOW_TARGET = "heldout_below_target"
    FIELD_WORSE = "field_worse"
    MORE_CONFIDENT_WRONG = "more_confident_wrong"
    ALREADY_RUNNING = "already_running"


def refusal(candidate: Figures | None, running: Figures | None, heldout_min: float = HELDOUT_MIN) -> Refusal | None:
    """None when `candidate` may replace `running`: measured on the same field set, held-out accuracy at target,
    and not worse on the field set (accuracy not lower, confident-wrong share not higher)."""
    if candidate is None:
        return Refusal.CANDIDATE_UNMEASURED
    if running is None:
        return Refusal.RUNNING_UNMEASURED
    if candidate.model == running.model:
        return Refusal.ALREADY_RUNNING
    if candidate.field_set != running.field_set:
        return Refusal.DIFFERENT_FIELD_SETS
    if candidate.heldout_accuracy < heldout_min:
        return Refusal.HELDOUT_BELOW_TARGET
    if candidate.field_accuracy < running.field_accuracy:
        return Refusal.FIELD_WORSE
    if candidate.field_confident_wrong > running.field_confident_wrong:
        return Refusal.MORE_CONFIDENT_WRONG
    return None
