"""Choose the blend of two intent classifiers (nlu/components/ensemble.py) and its fallback thresholds.

Usage (repo root, Rasa env):
    P=nlu/tools/pipelines
    rasa train nlu --nlu data/nlu --config $P/d_folded_lr_words.yml --out /tmp/m --fixed-model-name first
    rasa train nlu --nlu data/nlu --config $P/h_diet_typed_half.yml --out /tmp/m --fixed-model-name second
    python -m nlu.tools.blend_tune /tmp/m/first.tar.gz /tmp/m/second.tar.gz --ambiguity 0.2 [--out var/nlu/blend.json]

The SECOND config is the DIET half of config.yml (h_diet_typed_half.yml since candidate (h); g_diet_half.yml
was (g)'s). `--nlu data/nlu` matters: without it rasa reads every NLU file under data/, the evaluation sets
included, and the models then score about 1.0 on them.

FIRST is a model whose ranking is kept as it is (the logistic regression), SECOND the one that is softened and
mixed in (the DIET half, trained on the same data). Both are parsed in-process on the held-out set, the choosing
edition and the measuring one; then every weight, temperature, fallback threshold and ambiguity threshold of the
grid below is scored with `nlu.blend.blend`, the very function the component runs, as `FallbackClassifier` would
apply them (below the threshold, or top two closer than the ambiguity threshold: a fallback, which counts as a miss).

The choice is made on one retired field edition (`--choose-on`, by default CHOOSING_FIELD, the edition that
retired last, which docs/nlu.md names): the highest accuracy with a confident-wrong share of at most the target;
ties go to the higher threshold. The measuring edition (data/nlu_field/) is only reported, for the chosen point and
for each model alone: choosing on it would flatter the result, so the tool refuses to choose on it. The point
config.yml runs now is scored on the choosing edition too (`running_on_choosing`): a choice that only ties it is
no reason to change what citizens see.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from nlu.blend import blend
from nlu.tools.common import CONFIG, FALLBACK, FIELD, FIELD_STYLES, HELDOUT, ROOT, TARGETS, Parser, load_examples

# The edition choices are made on: retired from measuring, so choosing on it does not flatter the measured figures.
CHOOSING_FIELD = ROOT / "data" / "nlu_field_2026-12-07d"
WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
TEMPERATURES = (1.0, 2.0, 3.0, 5.0, 8.0)
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
AMBIGUITIES = (0.0, 0.05, 0.1, 0.15, 0.2)

Row = dict[str, Any]  # text, gold, style, first, second (rankings without the fallback)


def running_point(config: Path = CONFIG) -> dict[str, float]:
    """The blend and thresholds config.yml runs now: the report scores them on the choosing edition beside the
    chosen point, so a maintainer sees whether the choice beats what citizens get today or only ties it."""
    pipeline = yaml.safe_load(config.read_text(encoding="utf-8"))["pipeline"]
    by_name = {str(c["name"]).rsplit(".", 1)[-1]: c for c in pipeline}
    mix, fallback = by_name["IntentRankingBlend"], by_name["FallbackClassifier"]
    return {
        "weight": float(mix["weight"]),
        "temperature": float(mix.get("temperature", 1.0)),
        "threshold": float(fallback["threshold"]),
        "ambiguity": float(fallback["ambiguity_threshold"]),
    }


def rankings(model: Path, sets: dict[str, list[tuple[str, Path]]]) -> dict[str, list[list[dict[str, Any]]]]:
    parser = Parser(model)
    try:
        out: dict[str, list[list[dict[str, Any]]]] = {}
        for name, files in sets.items():
            out[name] = [
                [r for r in parser.parse(ex.text).get("intent_ranking") or [] if r.get("name") != FALLBACK]
                for _, path in files
                for ex in load_examples(path)
            ]
        return out
    finally:
        parser.close()


def score(rows: list[Row], weight: float, temperature: float, threshold: float, ambiguity: float) -> dict[str, Any]:
    right = wrong = fallback = 0
    styles: dict[str, list[int]] = {}
    for row in rows:
        ranked = blend(row["first"], row["second"], weight, temperature)
        top, conf = (ranked[0]["name"], ranked[0]["confidence"]) if ranked else (None, 0.0)
        runner = ranked[1]["confidence"] if len(ranked) > 1 else 0.0
        pred = FALLBACK if top is None or conf < threshold or conf - runner < ambiguity else top
        right += pred == row["gold"]
        fallback += pred == FALLBACK
        wrong += pred not in (FALLBACK, row["gold"])
        seen = styles.setdefault(row["style"], [0, 0])
        seen[0] += 1
        seen[1] += pred == row["gold"]
    n = len(rows) or 1
    return {
        "accuracy": round(right / n, 4),
        "confident_wrong": round(wrong / n, 4),
        "fallback": round(fallback / n, 4),
        "styles": {s: round(c[1] / c[0], 4) for s, c in styles.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "var" / "nlu" / "blend.json")
    ap.add_argument(
        "--ambiguity",
        type=float,
        help="hold the ambiguity threshold at this value instead of searching it: it is also the bot's "
        "did-you-mean band (core/settings.py nlu_ambiguity_threshold), a choice about the conversation",
    )
    ap.add_argument("--choose-on", type=Path, default=CHOOSING_FIELD, help="the retired field edition to choose on")
    ap.add_argument(
        "--no-measuring",
        action="store_true",
        help="do not parse data/nlu_field/ at all: when an edition is new, its first look should be make nlu-test's",
    )
    args = ap.parse_args(argv)
    if args.choose_on.resolve() == FIELD.resolve():
        ap.error("data/nlu_field/ measures: choosing on it would flatter the figures it reports")

    sets = {
        "heldout": [("heldout", HELDOUT)],
        "field_choose": [(s, args.choose_on / f"{s}.yml") for s in FIELD_STYLES],
        "field": [] if args.no_measuring else [(s, FIELD / f"{s}.yml") for s in FIELD_STYLES],
    }
    first, second = rankings(args.first, sets), rankings(args.second, sets)
    data: dict[str, list[Row]] = {}
    for name, files in sets.items():
        examples = [(style, ex) for style, path in files for ex in load_examples(path)]
        data[name] = [
            {"text": ex.text, "gold": ex.intent, "style": style, "first": f, "second": s}
            for (style, ex), f, s in zip(examples, first[name], second[name], strict=True)
        ]

    limit = TARGETS["field_confident_wrong_max"]
    grid = []
    ambiguities = AMBIGUITIES if args.ambiguity is None else (args.ambiguity,)
    for w, t, th, amb in itertools.product(WEIGHTS, TEMPERATURES, THRESHOLDS, ambiguities):
        if w == 0.0 and t != 1.0:  # the temperature only touches the second ranking
            continue
        s = score(data["field_choose"], w, t, th, amb)
        grid.append(({"weight": w, "temperature": t, "threshold": th, "ambiguity": amb}, s))
    allowed = [g for g in grid if g[1]["confident_wrong"] <= limit] or grid
    chosen, on_choosing = max(allowed, key=lambda g: (g[1]["accuracy"], g[0]["threshold"], -g[1]["confident_wrong"]))

    running = running_point()
    report = {
        "chosen_on": {**chosen, "edition": str(args.choose_on.relative_to(ROOT)), "figures": on_choosing},
        "running_on_choosing": {**running, "figures": score(data["field_choose"], **running)},
        "heldout": score(data["heldout"], **chosen),
        "first_alone_on_choosing": score(data["field_choose"], 0.0, 1.0, chosen["threshold"], chosen["ambiguity"]),
        "second_alone_on_choosing": score(data["field_choose"], 1.0, 1.0, chosen["threshold"], chosen["ambiguity"]),
    }
    if not args.no_measuring:
        report["field"] = score(data["field"], **chosen)
        report["first_alone_on_field"] = score(data["field"], 0.0, 1.0, chosen["threshold"], chosen["ambiguity"])
        report["second_alone_on_field"] = score(data["field"], 1.0, 1.0, chosen["threshold"], chosen["ambiguity"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    json.dump(report, sys.stdout, ensure_ascii=False, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
