"""Shared helpers of the NLU maintainers' tools: paths, the training-input hash, model loading, scoring."""

# ruff: noqa: PLC0415 - Rasa, TensorFlow and the database drivers are imported where used: importing them
# costs seconds, and the bot environment (tests, linters) has none of them.

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.text import fold, has_diacritics
from nlu.figures import HELDOUT_MIN

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "nlu"
HELDOUT = ROOT / "data" / "nlu_heldout" / "test.yml"
# The field-style set: written from docs/intents.md by someone who had not seen data/nlu; never trained on.
FIELD = ROOT / "data" / "nlu_field"
FIELD_STYLES = ("vi_accented", "vi_plain", "en")
CONFIG = ROOT / "config.yml"
DOMAIN = ROOT / "domain.yml"
COMPONENTS = ROOT / "nlu" / "components"
TEXT = ROOT / "core" / "text.py"
MODELS = ROOT / "models"
CONTRACT_ENTITIES = ("procedure", "aspect", "eid_level", "dossier_code")
FALLBACK = "nlu_fallback"

# Targets the project holds the NLU to (docs/nlu.md explains where they come from).
TARGETS = {
    "heldout_accuracy_min": HELDOUT_MIN,
    "unaccented_gap_max": 0.03,
    "field_accuracy_min": 0.92,  # on data/nlu_field, a fallback counts as a miss
    "field_style_accuracy_min": 0.90,  # each of accented Vietnamese, unaccented/teencode, English
    "field_confident_wrong_max": 0.03,  # answered with a wrong intent at or above the answer threshold
    "field_entity_dossier_code_min": 1.0,
    "field_entity_procedure_min": 0.95,
    "field_entity_eid_level_min": 0.95,
    "field_baseline_margin_min": 0.05,  # field accuracy above Rasa's stock DIET trained on the same data, same run
    "parse_p50_ms_max": 25.0,
    "parse_p99_ms_max": 50.0,
    "train_seconds_max": 600.0,
    "server_rss_mb_max": 1500.0,
}


def quiet_rasa() -> None:
    """Keep Rasa offline and quiet: no telemetry or crash reports leave the machine, no TF chatter."""
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Rasa's component cache (~/.rasa/cache) makes training times meaningless and has restored models
    # without their classifier file here; our own hash-keyed model cache replaces it.
    os.environ.setdefault("RASA_MAX_CACHE_SIZE", "0")
    # Custom components are imported by module path (nlu.components...), so the repo root must be importable,
    # in this process and in the `rasa` subprocesses we start.
    paths = [str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    warnings.filterwarnings("ignore")


def rasa_bin() -> str:
    """The `rasa` executable of the interpreter running this tool (the Rasa environment)."""
    return str(Path(sys.executable).with_name("rasa"))


def _input_files(config: Path = CONFIG) -> Iterator[Path]:
    for base, pattern in ((DATA, "**/*"), (COMPONENTS, "**/*.py")):
        for path in sorted(base.glob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                yield path
    yield TEXT  # the components' folding
    yield ROOT / "nlu" / "blend.py"  # the components' blend of two rankings
    yield config
    yield DOMAIN


def training_hash(config: Path = CONFIG) -> str:
    """sha256 over the names and bytes of everything that changes the trained model (of `config`'s pipeline)."""
    digest = hashlib.sha256()
    for path in _input_files(ROOT / config):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def model_path_for(hash_: str, models_dir: Path = MODELS) -> Path:
    return models_dir / f"nlu-{hash_[:12]}.tar.gz"


def latest_model(models_dir: Path = MODELS) -> Path | None:
    """The model of the current data if trained, else the newest nlu-*.tar.gz."""
    current = model_path_for(training_hash(), models_dir)
    if current.exists():
        return current
    models = sorted(models_dir.glob("nlu-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


@dataclass
class Example:
    text: str
    intent: str
    entities: list[tuple[str, str]] = field(default_factory=list)  # (entity, canonical value)


def load_examples(path: Path, synonyms: dict[str, str] | None = None) -> list[Example]:
    """Read Rasa NLU YAML; entity values go through `synonyms` (folded keys) to their canonical form."""
    from rasa.shared.nlu.training_data.loading import load_data  # type: ignore[import-not-found,unused-ignore]

    data = load_data(str(path))
    table = {fold(k): v for k, v in (synonyms or {}).items()}
    table.update({fold(k): v for k, v in data.entity_synonyms.items()})
    out = []
    for msg in data.intent_examples:
        ents = []
        for e in msg.get("entities") or []:
            value = str(e.get("value"))
            if e["entity"] == "dossier_code":
                # the contract: codes are reported upper-case, whatever the citizen typed
                value = value.strip(" .,;:()[]").upper()
            ents.append((e["entity"], table.get(fold(value), value)))
        out.append(Example(msg.get("text"), msg.get("intent"), ents))
    return out


def training_synonyms() -> dict[str, str]:
    from rasa.shared.nlu.training_data.loading import load_data  # type: ignore[import-not-found,unused-ignore]

    return dict(load_data(str(DATA)).entity_synonyms)


class Parser:
    """In-process parsing with a trained model (no server needed)."""

    def __init__(self, model: Path) -> None:
        quiet_rasa()
        import logging

        from rasa.core.agent import Agent  # type: ignore[import-not-found,unused-ignore]
        from rasa.utils.log_utils import configure_structlog  # type: ignore[import-not-found,unused-ignore]

        # Rasa's structlog prints every parse at debug level to stdout; tools own stdout.
        configure_structlog(logging.WARNING)
        for name in ("rasa", "tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self._loop = asyncio.new_event_loop()
        self.agent = Agent.load(str(model))

    def parse(self, text: str) -> dict[str, Any]:
        result: dict[str, Any] = self._loop.run_until_complete(self.agent.parse_message(text))
        return result

    def close(self) -> None:
        self._loop.close()


def simplify(result: dict[str, Any]) -> dict[str, Any]:
    """The one-line JSON shape the tools print: text, intent, confidence, entities after synonym mapping."""
    intent = result.get("intent") or {}
    return {
        "text": result.get("text"),
        "intent": intent.get("name"),
        "confidence": round(float(intent.get("confidence") or 0.0), 4),
        "entities": [
            {"entity": e["entity"], "value": e["value"], "start": e.get("start"), "end": e.get("end")}
            for e in result.get("entities") or []
        ],
    }


def raw_top(result: dict[str, Any]) -> tuple[str | None, float]:
    """The classifier's best intent, ignoring the FallbackClassifier's substitution."""
    for item in result.get("intent_ranking") or []:
        if item.get("name") != FALLBACK:
            return item.get("name"), float(item.get("confidence") or 0.0)
    intent = result.get("intent") or {}
    return intent.get("name"), float(intent.get("confidence") or 0.0)


def runner_up(result: dict[str, Any]) -> tuple[str, float]:
    """The classifier's second intent and its confidence (FallbackClassifier's substitution ignored)."""
    ranked = [i for i in result.get("intent_ranking") or [] if i.get("name") != FALLBACK]
    if len(ranked) < 2:
        return FALLBACK, 0.0
    return str(ranked[1].get("name")), float(ranked[1].get("confidence") or 0.0)


def entity_pairs(result: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["entity"], str(e["value"])) for e in result.get("entities") or [] if e["entity"] in CONTRACT_ENTITIES}


def score(examples: Iterable[Example], results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Intent accuracy (overall, accented, unaccented), macro F1 and entity P/R/F1 on (entity, value) pairs."""
    from sklearn.metrics import f1_score  # type: ignore[import-not-found,unused-ignore]

    gold: list[str] = []
    pred: list[str] = []
    raw: list[str] = []
    conf: list[float] = []
    second: list[tuple[str, float]] = []
    accented: list[bool] = []
    tp = fp = fn = 0
    per_entity: dict[str, list[int]] = {e: [0, 0, 0] for e in CONTRACT_ENTITIES}
    errors = []
    for ex, res in zip(examples, results, strict=True):
        top = (res.get("intent") or {}).get("name") or FALLBACK
        name, confidence = raw_top(res)
        gold.append(ex.intent)
        pred.append(top)
        raw.append(name or FALLBACK)
        conf.append(confidence)
        second.append(runner_up(res))
        accented.append(has_diacritics(ex.text))
        want = set(ex.entities)
        got = entity_pairs(res)
        tp += len(want & got)
        fp += len(got - want)
        fn += len(want - got)
        for ent, counts in per_entity.items():
            w = {p for p in want if p[0] == ent}
            g = {p for p in got if p[0] == ent}
            counts[0] += len(w & g)
            counts[1] += len(g - w)
            counts[2] += len(w - g)
        if top != ex.intent or want != got:
            errors.append(
                {
                    "text": ex.text,
                    "gold": ex.intent,
                    "pred": top,
                    "raw": name,
                    "confidence": round(confidence, 3),
                    "missing": sorted(want - got),
                    "extra": sorted(got - want),
                }
            )

    def acc(mask: list[bool], labels: list[str]) -> float:
        pairs = [(g, p) for g, p, m in zip(gold, labels, mask, strict=True) if m]
        return sum(g == p for g, p in pairs) / len(pairs) if pairs else float("nan")

    def f1(t: int, f_p: int, f_n: int) -> float:
        return 2 * t / (2 * t + f_p + f_n) if t + f_p + f_n else 1.0

    everyone = [True] * len(gold)
    return {
        "n": len(gold),
        "n_accented": sum(accented),
        "n_unaccented": len(gold) - sum(accented),
        "accuracy": acc(everyone, pred),
        "accuracy_accented": acc(accented, pred),
        "accuracy_unaccented": acc([not a for a in accented], pred),
        "raw_accuracy": acc(everyone, raw),
        "raw_accuracy_accented": acc(accented, raw),
        "raw_accuracy_unaccented": acc([not a for a in accented], raw),
        "fallback_rate": sum(p == FALLBACK for p in pred) / max(len(pred), 1),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "raw_macro_f1": float(f1_score(gold, raw, average="macro", zero_division=0)),
        "entity_f1": f1(tp, fp, fn),
        "entity_precision": tp / (tp + fp) if tp + fp else 1.0,
        "entity_recall": tp / (tp + fn) if tp + fn else 1.0,
        "entity_f1_by_type": {e: round(f1(*c), 4) for e, c in per_entity.items()},
        "confident_wrong": sum(p not in (g, FALLBACK) for g, p in zip(gold, pred, strict=True)) / max(len(gold), 1),
        "errors": errors,
        "_pred": pred,
        "_gold": gold,
        "_raw": raw,
        "_confidence": conf,
        "_second": second,
    }
