"""Hot-swap the model of a running Rasa NLU server, after checking the new model on the held-out set.

1. Validate (nlu/figures.py, the same guard as the console's swap button): MODEL's held-out intent accuracy must
   reach --min-accuracy, and on the field set MODEL must not be worse than the running model (accuracy not lower,
   confident-wrong share not higher). Figures `make nlu-test` recorded beside a model are used when they were
   measured on today's field set; otherwise this tool measures them (and records them). A model that does not
   load, or a running model whose file is neither in models/ nor beside MODEL, is refused: nothing is sent, exit
   status 1.
2. PUT {url}/model {"model_file": MODEL}: Rasa loads the new model fully, then switches to it; the old one
   keeps answering until then (a failed load leaves it in place).
3. Check GET /status reports the new model.
--watch keeps parsing from two client threads before, during and after the PUT and reports how many
requests failed (it should be 0) and the slowest one.

Usage (repo root, Rasa env):
  python -m nlu.tools.reload [models/nlu-<hash>.tar.gz] --url http://127.0.0.1:5005 --token "$RASA_TOKEN" [--watch]
"""

# ruff: noqa: PLC0415 - Rasa, TensorFlow and the database drivers are imported where used: importing them
# costs seconds, and the bot environment (tests, linters) has none of them.

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlu import figures
from nlu.figures import Figures, Refusal, field_set_hash, utcnow
from nlu.tools.common import MODELS, TARGETS, latest_model, quiet_rasa
from nlu.tools.server import request_json

REASONS = {
    Refusal.CANDIDATE_UNMEASURED: "the new model does not load",
    Refusal.RUNNING_UNMEASURED: "the running model's file is neither in models/ nor beside the new one, so the two "
    "cannot be compared",
    Refusal.DIFFERENT_FIELD_SETS: "the two were measured on different field sets",
    Refusal.HELDOUT_BELOW_TARGET: "held-out accuracy below the minimum",
    Refusal.FIELD_WORSE: "lower accuracy on the field set than the running model",
    Refusal.MORE_CONFIDENT_WRONG: "more confident wrong answers on the field set than the running model",
    Refusal.ALREADY_RUNNING: "the server already runs it",
}
PROBES = ["kich hoat vneid muc 2", "quên mật khẩu", "ho so 000.00.12.H22-240101-0003", "hello", "gplx het han"]


@dataclass
class Watch:
    """Parses continuously from a few threads until stopped; counts what failed."""

    url: str
    token: str
    threads: int = 2
    ok: int = 0
    failed: int = 0
    slowest_ms: float = 0.0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _run(self, offset: int) -> None:
        i = offset
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                result = request_json(
                    f"{self.url}/model/parse?token={self.token}", {"text": PROBES[i % len(PROBES)]}, timeout=60
                )
                good = bool(result and (result.get("intent") or {}).get("name"))
                err = "" if good else "empty parse result"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                good, err = False, f"{type(exc).__name__}: {exc}"
            elapsed = (time.perf_counter() - t0) * 1000
            with self._lock:
                self.slowest_ms = max(self.slowest_ms, elapsed)
                if good:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append(err)
            i += 1

    def start(self) -> None:
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=90)


def status(url: str, token: str) -> dict[str, Any]:
    result: dict[str, Any] = request_json(f"{url}/status?token={token}", None, method="GET", timeout=10)
    return result


def measured(model: Path) -> Figures | None:
    """The model's recorded figures if measured on today's field set, else measured now (and recorded); None when
    the model does not load."""
    field_set = field_set_hash()
    recorded = figures.read(model)
    if recorded is not None and recorded.field_set == field_set:
        return recorded
    from nlu.tools.evaluate import field, field_summary, heldout

    print(f"nlu-reload: measuring {model.name} on the held-out and field sets")
    try:
        summary = {"nlu_heldout_accuracy": heldout(model)["accuracy"], **field_summary(field(model))}
    except Exception as exc:  # any model that does not load and parse is refused
        print(f"nlu-reload: {model.name} does not load: {type(exc).__name__}: {str(exc)[:300]}")
        return None
    result = Figures.from_summary(model, summary, utcnow(), field_set)
    try:
        result.write(model)
    except OSError as exc:  # a read-only models directory: the figures still guard this swap
        print(f"nlu-reload: cannot record the figures beside {model.name}: {exc}")
    return result


def running_model_file(reported: str | None, beside: Path) -> Path | None:
    """The file of the model the server runs. Rasa reports only its file name: look in models/ and beside the
    new model."""
    if not reported:
        return None
    path = Path(reported)
    for candidate in (path, MODELS / path.name, beside.parent / path.name):
        if candidate.is_file():
            return candidate.resolve()
    return None


def describe(f: Figures) -> str:
    return (
        f"held-out {f.heldout_accuracy:.4f}, field {f.field_accuracy:.4f} "
        f"(confident-wrong {f.field_confident_wrong:.4f}, {f.field_n} messages)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, nargs="?", help="default: the model of the current data (models/)")
    ap.add_argument("--url", default=os.environ.get("RASA_URL", "http://127.0.0.1:5005"))
    ap.add_argument("--token", default=os.environ.get("RASA_TOKEN", ""))
    ap.add_argument("--min-accuracy", type=float, default=TARGETS["heldout_accuracy_min"])
    ap.add_argument("--watch", action="store_true", help="parse continuously during the swap and count failures")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to keep watching after the swap")
    args = ap.parse_args(argv)
    quiet_rasa()
    model = (args.model or latest_model() or MODELS / "nlu-missing.tar.gz").resolve()
    if not model.is_file():
        print(f"nlu-reload: no such model file {model}", file=sys.stderr)
        return 2
    url = args.url.rstrip("/")
    before = status(url, args.token).get("model_file")
    print(f"nlu-reload: server {url} runs {before}")

    candidate = measured(model)
    running_file = running_model_file(before, model)
    running = measured(running_file) if running_file is not None and running_file != model else None
    if running_file == model:
        print("nlu-reload: the server already runs this model")
        return 0
    for label, found in (("candidate", candidate), ("running", running)):
        if found is not None:
            print(f"nlu-reload: {label} {found.model}: {describe(found)}")
    verdict = figures.refusal(candidate, running, args.min_accuracy)
    if verdict is not None:
        print(f"nlu-reload: REFUSED ({REASONS[verdict]}), the running model stays in place")
        return 1

    watch = Watch(url, args.token) if args.watch else None
    if watch:
        watch.start()
        time.sleep(1.0)
    t0 = time.perf_counter()
    failed_put = ""
    try:
        request_json(f"{url}/model?token={args.token}", {"model_file": str(model)}, method="PUT", timeout=300)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        failed_put = f"{type(exc).__name__}: {exc}"
    swap_s = time.perf_counter() - t0
    if watch:
        time.sleep(args.settle)
        watch.stop()
    after = status(url, args.token).get("model_file")
    print(f"nlu-reload: PUT /model took {swap_s:.1f}s; server now runs {after}")
    if watch:
        print(f"nlu-reload: during the swap {watch.ok} parses answered, {watch.failed} failed, "
              f"slowest {watch.slowest_ms:.0f} ms")  # fmt: skip
        for err in watch.errors[:5]:
            print(f"  {err}")
    if failed_put or after is None or Path(str(after)).name != model.name:
        print(f"nlu-reload: swap FAILED {failed_put}".rstrip())
        return 1
    return 1 if watch and watch.failed else 0


if __name__ == "__main__":
    sys.exit(main())
