"""Parse utterances with the latest trained model, in-process (no server needed).

Reads one utterance per line on stdin; writes one JSON object per line on stdout:
{"text", "intent", "confidence", "entities": [{"entity", "value", "start", "end"}]} (values after synonym
mapping and normalisation).  Usage:  echo "kich hoat vneid muc 2" | python -m nlu.tools.parse [--model PATH]
--ranking adds the classifier's top three intents ([intent, confidence]), which is what the bot's fallback and
"did you mean" thresholds look at.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nlu.tools.common import FALLBACK, Parser, latest_model, simplify


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="model file (default: the latest in models/)")
    ap.add_argument("--ranking", action="store_true", help="also print the top three intents")
    args = ap.parse_args(argv)
    model = args.model or latest_model()
    if model is None or not model.exists():
        print("no model: run `python -m nlu.tools.train` first", file=sys.stderr)
        return 2
    parser = Parser(model)
    try:
        for line in sys.stdin:
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            result = parser.parse(text)
            out = simplify(result)
            if args.ranking:
                ranked = [i for i in result.get("intent_ranking") or [] if i.get("name") != FALLBACK]
                out["ranking"] = [[i["name"], round(float(i["confidence"]), 4)] for i in ranked[:3]]
            print(json.dumps(out, ensure_ascii=False), flush=True)
    finally:
        parser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
