"""Compare candidate pipelines on the same data: field-set accuracy (overall, per style, confident-wrong share),
CV macro F1, held-out accuracy, entity F1, training time, parse latency through the HTTP API and server RSS.

Each candidate's own FallbackClassifier decides what counts as a fallback, so give every candidate the thresholds
it would run with (a fallback counts as a miss on the field set).

Usage (repo root, Rasa env):  python -m nlu.tools.compare nlu/tools/pipelines/*.yml [--out var/nlu/compare.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from nlu.tools.common import DATA, HELDOUT, ROOT, load_examples, quiet_rasa
from nlu.tools.evaluate import clean, cross_validate, field, heldout, log, threshold_table, train_to
from nlu.tools.server import measure_latency, running_server


def measure(config: Path, folds: int, skip_cv: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"config": str(config)}
    with tempfile.TemporaryDirectory(prefix="nlu-cmp-") as tmp:
        log(f"{config.name}: training on all of data/nlu")
        model, seconds = train_to(config, DATA, Path(tmp), "full")
        row["train_seconds"] = round(seconds, 1)
        row["model_mb"] = round(model.stat().st_size / 2**20, 1)
        ho = heldout(model)
        row["heldout"] = clean(ho)
        row["heldout_threshold_table"] = threshold_table(ho)
        fd = field(model)
        row["field"] = {k: v for k, v in clean(fd).items() if k != "errors"}
        row["field_threshold_table"] = threshold_table(fd)
        texts = [e.text for e in load_examples(HELDOUT)]
        log(f"{config.name}: serving for latency")
        with running_server(model) as server:
            row["latency"] = measure_latency(server, texts)
    if not skip_cv:
        row["cv"] = clean(cross_validate(config, folds))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("configs", nargs="+", type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--skip-cv", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "var" / "nlu" / "compare.json")
    args = ap.parse_args(argv)
    quiet_rasa()
    rows = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for config in args.configs:
        row = measure(config, args.folds, args.skip_cv)
        rows.append(row)
        args.out.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    print(
        "| pipeline | field acc | accented | plain | English | confident-wrong | CV macro F1 | held-out acc "
        "| entity F1 (field) | train s | p50 ms | p99 ms | RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        h, lat, cv, f = r["heldout"], r["latency"], r.get("cv", {}), r["field"]
        st = f["by_style"]
        print(
            f"| {Path(r['config']).stem} | {f['accuracy']:.3f} | {st['vi_accented']['accuracy']:.3f} "
            f"| {st['vi_plain']['accuracy']:.3f} | {st['en']['accuracy']:.3f} | {f['confident_wrong']:.3f} "
            f"| {cv.get('macro_f1', float('nan')):.3f} | {h['accuracy']:.3f} | {f['entity_f1']:.3f} "
            f"| {r['train_seconds']} | {lat['parse_p50_ms']} | {lat['parse_p99_ms']} | {lat['server_rss_mb']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
