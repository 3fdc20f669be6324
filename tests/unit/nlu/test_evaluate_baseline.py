"""make nlu-test's baseline model (Rasa's stock DIET, over an hour to train here) is kept under its inputs' hash.

The training itself is replaced by a stand-in that writes a file: what is checked is when the tool trains, reuses
or restores, not Rasa."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nlu.tools import evaluate
from nlu.tools.common import ROOT, training_hash

STOCK = Path("nlu/tools/pipelines/a_diet_stock.yml")


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    calls: list[Path] = []

    def fake_train(config: Path, nlu: Path, out: Path, name: str) -> tuple[Path, float]:
        calls.append(config)
        model = out / f"{name}.tar.gz"
        model.write_bytes(b"model of " + str(config).encode())
        return model, 4321.0

    monkeypatch.setattr(evaluate, "train_to", fake_train)
    monkeypatch.setattr(evaluate, "MODELS", tmp_path / "models")
    return calls


def test_the_baseline_is_trained_once_then_reused(trainings: list[Path], tmp_path: Path) -> None:
    first, seconds = evaluate.baseline_model(STOCK)
    again, seconds_again = evaluate.baseline_model(STOCK)
    assert trainings == [STOCK]
    assert first == again == tmp_path / "models" / "baseline" / f"a_diet_stock-{training_hash(STOCK)[:12]}.tar.gz"
    assert first.read_bytes() == b"model of " + str(STOCK).encode()
    name = f"a_diet_stock-{training_hash(STOCK)[:12]}"
    assert sorted(p.name for p in first.parent.iterdir()) == [f"{name}.lock", f"{name}.seconds", f"{name}.tar.gz"]
    # the reused model reports the training time it took, not the zero seconds of reusing it
    assert seconds == seconds_again == 4321.0


def test_a_clean_clone_restores_the_baseline_from_the_cache(trainings: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    trained, _ = evaluate.baseline_model(STOCK, cache)
    assert sorted(p.name for p in cache.iterdir()) == [trained.name.replace(".tar.gz", ".seconds"), trained.name]
    for path in (tmp_path / "models" / "baseline").iterdir():
        path.unlink()  # a fresh checkout: no models/ yet, the user's cache still there
    restored, seconds = evaluate.baseline_model(STOCK, cache)
    assert trainings == [STOCK]
    assert restored == trained and restored.exists() and seconds == 4321.0


def test_another_pipeline_is_another_model(trainings: list[Path]) -> None:
    other = Path("nlu/tools/pipelines/c_folded_lr.yml")
    stock, _ = evaluate.baseline_model(STOCK)
    lr, _ = evaluate.baseline_model(other)
    assert trainings == [STOCK, other] and stock != lr
    # the hash covers the pipeline file itself, as the running model's covers config.yml
    assert training_hash(STOCK) != training_hash(other) != training_hash()
    assert training_hash(ROOT / STOCK) == training_hash(STOCK)


def test_two_runs_at_once_train_the_baseline_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[Path] = []

    def slow_train(config: Path, nlu: Path, out: Path, name: str) -> tuple[Path, float]:
        calls.append(config)
        time.sleep(0.5)  # long enough for the second run to reach the lock while the first trains
        model = out / f"{name}.tar.gz"
        model.write_bytes(b"model")
        return model, 4321.0

    monkeypatch.setattr(evaluate, "train_to", slow_train)
    monkeypatch.setattr(evaluate, "MODELS", tmp_path / "models")
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(evaluate.baseline_model, STOCK) for _ in range(2)]
        results = [run.result(timeout=30) for run in runs]
    assert calls == [STOCK]
    assert results[0] == results[1] and results[0][1] == 4321.0


def _summary(model_right: int, baseline_right: int, n: int) -> dict[str, object]:
    # The figures as field_summary rounds them (4 places), which is what check_targets and margin_needs read.
    return {
        "nlu_field_n": n,
        "nlu_field_accuracy": round(model_right / n, 4),
        "nlu_baseline_field_accuracy": round(baseline_right / n, 4),
    }


def test_the_margin_row_fails_below_five_points_and_passes_at_them() -> None:
    def margin_row(summary: dict[str, object]) -> tuple[object, ...]:
        rows = [r for r in evaluate.check_targets(summary) if "baseline" in r[0]]
        assert len(rows) == 1
        return rows[0]

    # check_targets reads every field figure once the field accuracy is there; only the margin row matters here.
    def with_field(summary: dict[str, object]) -> dict[str, object]:
        styles = {f"nlu_field_accuracy_{s}": 1.0 for s in evaluate.FIELD_STYLES}
        entities = {"dossier_code": 1.0, "procedure": 1.0, "eid_level": 1.0}
        return summary | styles | {"nlu_field_confident_wrong": 0.0, "nlu_field_entity_f1_by_type": entities}

    _, value, target, met = margin_row(with_field(_summary(710, 710, 748)))
    assert (value, target, met) == (0.0, ">= 0.05", False)
    _, value, _, met = margin_row(with_field(_summary(700, 600, 800)))
    assert met and value == pytest.approx(0.125)


def test_margin_needs_says_when_only_a_perfect_score_would_do() -> None:
    # The seventh edition's run: the model and the stock DIET both 710 of 748.
    assert evaluate.margin_needs(_summary(710, 710, 748)) == (
        "baseline margin: 748 of 748 field messages right needed (baseline 710, model 710): "
        "every message, a perfect score"
    )
    beyond = evaluate.margin_needs(_summary(700, 740, 748))
    assert beyond is not None
    assert beyond.endswith(
        "needed (baseline 740, model 700): more than the edition holds, no model can meet it on this edition"
    )
    assert evaluate.margin_needs(_summary(700, 600, 800)) == (
        "baseline margin: 640 of 800 field messages right needed (baseline 600, model 700)"
    )
    assert evaluate.margin_needs({"nlu_field_n": 748, "nlu_field_accuracy": 0.9}) is None
