"""Evaluate the NLU: 5-fold cross-validation on data/nlu and the held-out set, against the project's targets.

Usage (repo root, Rasa env):  python -m nlu.tools.evaluate [--quick] [--model PATH] [--config config.yml]
  (default)     held-out set on the given or latest model, one timed training of --config on all of data/nlu,
                and 5-fold cross-validation of --config
  --quick       held-out set only (no training, no cross-validation)
  --latency     also start a loopback server on the model and measure parse p50/p99 and RSS
  --json PATH   where to write the summary (default var/nlu/evaluation.json)
  --confusion PATH  write the cross-validation confusion matrix image (e.g. docs/nlu-confusion.png)
  --field-confusion PATH  write the field set's confusion matrix image (e.g. docs/nlu-field-confusion.png)
  --baseline CONFIG  also train CONFIG (e.g. Rasa's stock DIET pipeline) on the same data and score it on the
                field set in this run: the chosen pipeline must beat it by 5 points. Its model is kept in
                models/baseline/ (and --cache-dir) under its inputs' hash and trained again only when they change
The field set (data/nlu_field/) is scored on every run: overall, per style, confident-wrong share, entities.
Exit status: 0 when every measured figure meets its target, 1 otherwise, 2 when there is no model.
"""

# ruff: noqa: PLC0415 - Rasa, TensorFlow and the database drivers are imported where used: importing them
# costs seconds, and the bot environment (tests, linters) has none of them.

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nlu.figures import Figures, field_set_hash, utcnow
from nlu.tools.common import (
    CONFIG,
    DATA,
    DOMAIN,
    FIELD,
    FIELD_STYLES,
    HELDOUT,
    MODELS,
    ROOT,
    TARGETS,
    Example,
    Parser,
    latest_model,
    load_examples,
    quiet_rasa,
    rasa_bin,
    score,
    training_hash,
    training_synonyms,
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train_to(config: Path, nlu: Path, out: Path, name: str) -> tuple[Path, float]:
    """`rasa train nlu` in a subprocess (as maintainers run it); returns the model and wall seconds."""
    quiet_rasa()
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        rasa_bin(), "train", "nlu", "--config", str(config), "--nlu", str(nlu), "--domain", str(DOMAIN),
        "--out", str(out), "--fixed-model-name", name, "--quiet",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    model = out / f"{name}.tar.gz"
    if proc.returncode != 0 or not model.exists():
        raise RuntimeError(f"training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return model, seconds


def baseline_model(config: Path, cache_dir: Path | None = None) -> tuple[Path, float]:
    """The baseline pipeline trained on data/nlu: reused while its inputs are unchanged, else trained.

    Rasa's stock DIET takes over an hour here on the current data, so its model is kept like the running one's:
    models/baseline/<pipeline>-<hash12>.tar.gz (and in `cache_dir`), with its training seconds beside it
    (<pipeline>-<hash12>.seconds)."""
    name = f"{config.stem}-{training_hash(config)[:12]}"
    target = MODELS / "baseline" / f"{name}.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two runs at once (a maintainer's and CI's, say) must not both spend the hour: the second waits for the first.
    with (target.parent / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _baseline_model(config, target, cache_dir)


def _baseline_model(config: Path, target: Path, cache_dir: Path | None) -> tuple[Path, float]:
    seconds_file = target.parent / (target.name.removesuffix(".tar.gz") + ".seconds")  # its training time
    kept = [target, seconds_file]
    cached = [cache_dir / p.name for p in kept] if cache_dir else []
    if not target.exists() and cached and all(p.exists() for p in cached):
        for src, dst in zip(cached, kept, strict=True):
            shutil.copy2(src, dst)
        log(f"baseline: restored {target.name} from {cache_dir}")
    if target.exists() and seconds_file.exists():
        log(f"baseline: {target.name} is up to date, not trained again")
        return target, float(seconds_file.read_text(encoding="utf-8"))
    log(f"baseline: training {config} on all of data/nlu")
    with tempfile.TemporaryDirectory(prefix="nlu-base-") as tmp:
        trained, seconds = train_to(config, DATA, Path(tmp), "baseline")
        shutil.move(trained, target)
    seconds_file.write_text(f"{seconds:.1f}\n", encoding="utf-8")
    for src, dst in zip(kept, cached, strict=False):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return target, seconds


def heldout(model: Path, path: Path = HELDOUT) -> dict[str, Any]:
    """Score a trained model on the held-out file, parsing in-process."""
    examples = load_examples(path, training_synonyms())
    parser = Parser(model)
    try:
        results = [parser.parse(ex.text) for ex in examples]
    finally:
        parser.close()
    return score(examples, results)


def field(model: Path) -> dict[str, Any]:
    """Score a trained model on the field-style set (data/nlu_field/), overall and per style of writing.

    accuracy counts a fallback as a miss; confident_wrong is the share of messages answered with a wrong intent
    (not the fallback: what the bot would act on)."""
    synonyms = training_synonyms()
    parser = Parser(model)
    examples: list[Example] = []
    results: list[dict[str, Any]] = []
    by_style: dict[str, dict[str, Any]] = {}
    try:
        for style in FIELD_STYLES:
            ex = load_examples(FIELD / f"{style}.yml", synonyms)
            res = [parser.parse(e.text) for e in ex]
            by_style[style] = score(ex, res)
            examples += ex
            results += res
    finally:
        parser.close()
    total = score(examples, results)
    total["by_style"] = {
        k: {"n": v["n"], "accuracy": round(v["accuracy"], 4), "confident_wrong": round(v["confident_wrong"], 4)}
        for k, v in by_style.items()
    }
    return total


def field_summary(fd: dict[str, Any], prefix: str = "nlu_field") -> dict[str, Any]:
    out: dict[str, Any] = {
        f"{prefix}_n": fd["n"],
        f"{prefix}_accuracy": round(fd["accuracy"], 4),
        f"{prefix}_raw_accuracy": round(fd["raw_accuracy"], 4),
        f"{prefix}_confident_wrong": round(fd["confident_wrong"], 4),
        f"{prefix}_fallback_rate": round(fd["fallback_rate"], 4),
        f"{prefix}_macro_f1": round(fd["macro_f1"], 4),
        f"{prefix}_entity_f1_by_type": fd["entity_f1_by_type"],
    }
    for style, figures in fd["by_style"].items():
        out[f"{prefix}_accuracy_{style}"] = figures["accuracy"]
    return out


def cross_validate(config: Path, folds: int = 5, seed: int = 42) -> dict[str, Any]:
    """Stratified k-fold on data/nlu: train on k-1 folds with `config`, parse the held fold, pool the results."""
    quiet_rasa()
    from rasa.shared.nlu.training_data.loading import load_data  # type: ignore[import-not-found,unused-ignore]
    from rasa.shared.nlu.training_data.training_data import TrainingData  # type: ignore[import-not-found,unused-ignore]
    from sklearn.model_selection import StratifiedKFold  # type: ignore[import-not-found,unused-ignore]

    data = load_data(str(DATA))
    messages = list(data.intent_examples)
    labels = [m.get("intent") for m in messages]
    synonyms = dict(data.entity_synonyms)
    all_examples = load_examples(DATA)
    by_text = {(e.text, e.intent): e for e in all_examples}
    pooled_examples: list[Example] = []
    pooled_results: list[dict[str, Any]] = []
    train_seconds = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with tempfile.TemporaryDirectory(prefix="nlu-cv-") as tmp:
        for k, (train_idx, test_idx) in enumerate(splitter.split(messages, labels), start=1):
            fold_data = TrainingData(
                training_examples=[messages[i] for i in train_idx],
                entity_synonyms=synonyms,
                regex_features=data.regex_features,
                lookup_tables=data.lookup_tables,
            )
            fold_file = Path(tmp) / f"fold{k}.yml"
            fold_file.write_text(fold_data.nlu_as_yaml(), encoding="utf-8")
            log(f"cv: fold {k}/{folds}: training on {len(train_idx)} examples")
            model, seconds = train_to(config, fold_file, Path(tmp) / "models", f"fold{k}")
            train_seconds.append(seconds)
            parser = Parser(model)
            try:
                for i in test_idx:
                    msg = messages[i]
                    pooled_examples.append(by_text[(msg.get("text"), msg.get("intent"))])
                    pooled_results.append(parser.parse(msg.get("text")))
            finally:
                parser.close()
    result = score(pooled_examples, pooled_results)
    result["fold_train_seconds"] = [round(s, 1) for s in train_seconds]
    return result


def confusion_png(gold: list[str], pred: list[str], path: Path, title: str) -> None:
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    from sklearn.metrics import confusion_matrix  # type: ignore[import-not-found,unused-ignore]

    labels = sorted(set(gold) | set(pred))
    matrix = confusion_matrix(gold, pred, labels=labels)
    fig, ax = plt.subplots(figsize=(13, 11))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels=labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels=labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def threshold_table(
    result: dict[str, Any], steps: tuple[float, ...] = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
) -> list[dict[str, float]]:
    """What a FallbackClassifier threshold would do on these predictions (raw classifier output).

    accuracy: right answers that pass the threshold / all messages (a fallback counts as a miss);
    wrong_accepted: share of messages answered with a wrong intent; fallback: share sent to fallback.
    """
    rows = []
    triples = list(zip(result["_gold"], result["_raw"], result["_confidence"], strict=True))
    for t in steps:
        kept = [(g, p) for g, p, c in triples if c >= t]
        rows.append(
            {
                "threshold": t,
                "accuracy": round(sum(g == p for g, p in kept) / len(triples), 4),
                "wrong_accepted": round(sum(g != p for g, p in kept) / len(triples), 4),
                "fallback": round(1 - len(kept) / len(triples), 4),
            }
        )
    return rows


def ambiguity_table(
    result: dict[str, Any], floor: float, margins: tuple[float, ...] = (0.0, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2)
) -> list[dict[str, float]]:
    """What the bot's "did you mean" rule (top two closer than `margin`, best at least `floor`) would do.

    asked: share of messages answered with the two buttons; asked_right: of those, the share where the true
    intent is one of the two; wrong_caught: share of all messages whose wrong top intent the question turns
    into a choice the citizen can correct.
    """
    rows = []
    items = list(zip(result["_gold"], result["_raw"], result["_confidence"], result["_second"], strict=True))
    for m in margins:
        asked = [(g, p, s) for g, p, c, (s, c2) in items if c >= floor and c - c2 < m]
        rows.append(
            {
                "margin": m,
                "asked": round(len(asked) / len(items), 4),
                "asked_right": round(sum(g in (p, s) for g, p, s in asked) / len(asked), 4) if asked else 1.0,
                "wrong_caught": round(sum(g != p and g == s for g, p, s in asked) / len(items), 4),
            }
        )
    return rows


def print_tables(summary: dict[str, Any]) -> None:
    if "cv_threshold_table" in summary:
        print("cross-validation (out-of-fold): fallback threshold (raw classifier confidence)")
        print("  threshold  accuracy  wrong_accepted  fallback")
        for r in summary["cv_threshold_table"]:
            print(f"  {r['threshold']:9.2f}  {r['accuracy']:8.4f}  {r['wrong_accepted']:14.4f}  {r['fallback']:8.4f}")
    print("held-out: fallback threshold (raw classifier confidence)")
    print("  threshold  accuracy  wrong_accepted  fallback")
    for r in summary["heldout_threshold_table"]:
        print(f"  {r['threshold']:9.2f}  {r['accuracy']:8.4f}  {r['wrong_accepted']:14.4f}  {r['fallback']:8.4f}")
    print(f"held-out: did-you-mean margin (floor {summary['ambiguity_floor']})")
    print("  margin  asked  asked_right  wrong_caught")
    for r in summary["heldout_ambiguity_table"]:
        print(f"  {r['margin']:6.2f}  {r['asked']:5.3f}  {r['asked_right']:11.3f}  {r['wrong_caught']:12.3f}")


def check_targets(summary: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    """(figure, value, target text, met) for every target whose figure was measured."""
    rows = []
    acc = summary.get("nlu_heldout_accuracy")
    if acc is not None:
        rows.append(("held-out intent accuracy", acc, f">= {TARGETS['heldout_accuracy_min']}",
                     acc >= TARGETS["heldout_accuracy_min"]))  # fmt: skip
        gap = summary["nlu_heldout_accuracy_accented"] - summary["nlu_heldout_accuracy_unaccented"]
        rows.append(("accented - unaccented accuracy", gap, f"<= {TARGETS['unaccented_gap_max']}",
                     gap <= TARGETS["unaccented_gap_max"]))  # fmt: skip
    f_acc = summary.get("nlu_field_accuracy")
    if f_acc is not None:
        rows.append(("field intent accuracy", f_acc, f">= {TARGETS['field_accuracy_min']}",
                     f_acc >= TARGETS["field_accuracy_min"]))  # fmt: skip
        for style in FIELD_STYLES:
            value = summary[f"nlu_field_accuracy_{style}"]
            rows.append((f"field accuracy, {style}", value, f">= {TARGETS['field_style_accuracy_min']}",
                         value >= TARGETS["field_style_accuracy_min"]))  # fmt: skip
        wrong = summary["nlu_field_confident_wrong"]
        rows.append(("field confident-wrong share", wrong, f"<= {TARGETS['field_confident_wrong_max']}",
                     wrong <= TARGETS["field_confident_wrong_max"]))  # fmt: skip
        for ent in ("dossier_code", "procedure", "eid_level"):
            value = summary["nlu_field_entity_f1_by_type"][ent]
            minimum = TARGETS[f"field_entity_{ent}_min"]
            rows.append((f"field entity F1, {ent}", value, f">= {minimum}", value >= minimum))
    base = summary.get("nlu_baseline_field_accuracy")
    if base is not None and f_acc is not None:
        margin = TARGETS["field_baseline_margin_min"]
        rows.append(("field accuracy - baseline", f_acc - base, f">= {margin}", f_acc - base >= margin))
    for key, label, target in (
        ("nlu_parse_p50_ms", "parse p50 ms", "parse_p50_ms_max"),
        ("nlu_parse_p99_ms", "parse p99 ms", "parse_p99_ms_max"),
        ("nlu_server_rss_mb", "server RSS MB", "server_rss_mb_max"),
        ("nlu_train_seconds", "training seconds", "train_seconds_max"),
    ):
        if summary.get(key) is not None:
            rows.append((label, summary[key], f"<= {TARGETS[target]}", summary[key] <= TARGETS[target]))
    return rows


def margin_needs(summary: dict[str, Any]) -> str | None:
    """How many field messages the model must get right to clear the baseline margin, in words.

    The margin is absolute: once the baseline is within `margin` of a perfect score, no model can clear it on
    that edition, and the maintainer reading a BELOW TARGET row should be told so rather than left tuning."""
    base, n = summary.get("nlu_baseline_field_accuracy"), summary.get("nlu_field_n")
    if base is None or not n:
        return None
    margin = TARGETS["field_baseline_margin_min"]
    needed = math.ceil(round((base + margin) * n, 6))
    right = round(summary["nlu_field_accuracy"] * n)
    text = f"baseline margin: {needed} of {n} field messages right needed (baseline {round(base * n)}, model {right})"
    if needed > n:
        text += ": more than the edition holds, no model can meet it on this edition"
    elif needed == n:
        text += ": every message, a perfect score"
    return text


def clean(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="held-out set only")
    ap.add_argument("--model", type=Path, help="model to score (default: the latest in models/)")
    ap.add_argument("--config", type=Path, default=CONFIG, help="pipeline for cross-validation")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--latency", action="store_true", help="measure parse latency/RSS through the HTTP API")
    ap.add_argument("--json", type=Path, default=ROOT / "var" / "nlu" / "evaluation.json")
    ap.add_argument("--confusion", type=Path, help="write the CV confusion matrix PNG here")
    ap.add_argument("--field-confusion", type=Path, help="write the field set's confusion matrix PNG here")
    ap.add_argument("--baseline", type=Path, help="a pipeline to train and score on the field set in this run")
    env_cache = os.environ.get("NLU_MODEL_CACHE")
    ap.add_argument("--cache-dir", type=Path, default=Path(env_cache) if env_cache else None,
                    help="where trained baseline models are kept across clones (as for nlu-train)")  # fmt: skip
    ap.add_argument("--ambiguity-floor", type=float, default=0.25, help="the bot's NLU_AMBIGUITY_FLOOR")
    ap.add_argument("--min-accuracy", type=float, default=TARGETS["heldout_accuracy_min"])
    args = ap.parse_args(argv)
    TARGETS["heldout_accuracy_min"] = args.min_accuracy
    quiet_rasa()

    model = args.model or latest_model()
    if model is None or not model.exists():
        log("no model: run `python -m nlu.tools.train` first")
        return 2
    summary: dict[str, Any] = {"model": str(model)}
    log(f"held-out: scoring {model}")
    ho = heldout(model)
    summary.update(
        nlu_heldout_n=ho["n"],
        nlu_heldout_accuracy=round(ho["accuracy"], 4),
        nlu_heldout_accuracy_accented=round(ho["accuracy_accented"], 4),
        nlu_heldout_accuracy_unaccented=round(ho["accuracy_unaccented"], 4),
        nlu_heldout_raw_accuracy=round(ho["raw_accuracy"], 4),
        nlu_heldout_fallback_rate=round(ho["fallback_rate"], 4),
        nlu_heldout_macro_f1=round(ho["macro_f1"], 4),
        nlu_heldout_entity_f1=round(ho["entity_f1"], 4),
        nlu_heldout_entity_f1_by_type=ho["entity_f1_by_type"],
        heldout_threshold_table=threshold_table(ho),
        ambiguity_floor=args.ambiguity_floor,
        heldout_ambiguity_table=ambiguity_table(ho, args.ambiguity_floor),
        heldout_errors=ho["errors"],
    )
    log("field set: scoring the same model")
    fd = field(model)
    summary.update(field_summary(fd), field_errors=fd["errors"])
    if args.field_confusion:
        confusion_png(fd["_gold"], fd["_pred"], args.field_confusion,
                      f"field set ({fd['n']} messages): accuracy {fd['accuracy']:.3f}, fallback counted")  # fmt: skip
        log(f"field confusion matrix: {args.field_confusion}")
    if not args.quick:
        log(f"training time: {args.config} on all of data/nlu, from scratch")
        with tempfile.TemporaryDirectory(prefix="nlu-timed-") as tmp:
            _, seconds = train_to(args.config, DATA, Path(tmp), "timed")
        summary["nlu_train_seconds"] = round(seconds, 1)
        log(f"cross-validation: {args.folds} folds with {args.config}")
        cv = cross_validate(args.config, args.folds)
        summary.update(
            nlu_cv_macro_f1=round(cv["macro_f1"], 4),
            nlu_cv_accuracy=round(cv["accuracy"], 4),
            nlu_cv_entity_f1=round(cv["entity_f1"], 4),
            nlu_cv_entity_f1_by_type=cv["entity_f1_by_type"],
            cv_fold_train_seconds=cv["fold_train_seconds"],
            # out-of-fold predictions: training-side data the model did not see, harder than the held-out file;
            # the fallback threshold is chosen on this table (docs/nlu.md), never on the field set
            cv_threshold_table=threshold_table(cv, (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)),
            cv_errors=cv["errors"],
        )
        if args.confusion:
            confusion_png(cv["_gold"], cv["_raw"], args.confusion,
                          f"{args.folds}-fold CV confusion (macro F1 {cv['raw_macro_f1']:.3f})")  # fmt: skip
            log(f"confusion matrix: {args.confusion}")
    # The baseline after the model's own figures (its training is the run's longest step), before the latency,
    # which is measured with no training running.
    if args.baseline:
        base_model, base_seconds = baseline_model(args.baseline, args.cache_dir)
        base = field(base_model)
        summary.update(field_summary(base, "nlu_baseline_field"), nlu_baseline_train_seconds=round(base_seconds, 1))
        summary["nlu_baseline_config"] = str(args.baseline)
    if args.latency:
        from nlu.tools.server import measure_latency, running_server

        texts = [e.text for e in load_examples(HELDOUT)]
        with running_server(model) as server:
            figures = measure_latency(server, texts)
        summary.update({f"nlu_{k}": v for k, v in figures.items()})

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    # Beside the model: what the models page shows and the hot-swap guard compares (nlu/figures.py).
    recorded = Figures.from_summary(model, summary, utcnow(), field_set_hash()).write(model)
    rows = check_targets(summary)
    print(f"model: {model}")
    print_tables(summary)
    for key in (
        "nlu_cv_macro_f1",
        "nlu_cv_entity_f1",
        "nlu_heldout_entity_f1",
        "nlu_heldout_fallback_rate",
        "nlu_field_raw_accuracy",
        "nlu_field_fallback_rate",
        "nlu_baseline_field_accuracy",
        "nlu_baseline_field_confident_wrong",
    ):
        if key in summary:
            print(f"{key:34s} {summary[key]:.4f}")
    ok = True
    for label, value, target, met in rows:
        ok = ok and met and not math.isnan(value)
        print(f"{label:34s} {value:10.4f}  target {target:10s} {'ok' if met else 'BELOW TARGET'}")
    needs = margin_needs(summary)
    if needs:
        print(needs)
    print(f"summary: {args.json}")
    print(f"figures: {recorded}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
