"""Train the NLU model only when its inputs changed.

The model is named after a hash of data/nlu/**, config.yml, domain.yml and nlu/components/**:
models/nlu-<hash12>.tar.gz. If that file exists, nothing is trained. With a cache directory
(--cache-dir or NLU_MODEL_CACHE) a trained model is also copied there, and a later run with the same hash
(e.g. on a clean clone) restores it instead of training. The last line printed is the model path.

Usage (repo root, Rasa env):  python -m nlu.tools.train [--cache-dir DIR] [--force]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from nlu.tools.common import CONFIG, DATA, DOMAIN, MODELS, ROOT, model_path_for, quiet_rasa, rasa_bin, training_hash


def log(msg: str) -> None:
    print(msg, flush=True)


def train(models_dir: Path = MODELS, cache_dir: Path | None = None, force: bool = False) -> Path:
    started = time.perf_counter()
    digest = training_hash()
    target = model_path_for(digest, models_dir)
    log(f"nlu-train: inputs hash {digest[:12]}")
    if target.exists() and not force:
        log(f"nlu-train: up to date, nothing to train ({time.perf_counter() - started:.1f}s)")
        return target
    cached = cache_dir / target.name if cache_dir else None
    if cached and cached.exists() and not force:
        models_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cached, target)
        log(f"nlu-train: restored from cache {cached} ({time.perf_counter() - started:.1f}s)")
        return target
    quiet_rasa()
    models_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        rasa_bin(), "train", "nlu", "--config", str(CONFIG), "--nlu", str(DATA), "--domain", str(DOMAIN),
        "--out", str(models_dir), "--fixed-model-name", target.name.removesuffix(".tar.gz"),
    ]  # fmt: skip
    log(f"nlu-train: training {target.name} (rasa train nlu) ...")
    env = {**os.environ, "LOG_LEVEL": "INFO"}  # Rasa's INFO lines are the per-component progress
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        # Rasa's own progress lines, minus library deprecation noise
        if any(k in line for k in ("Starting to train", "Finished training", "Epochs:", "Error", "model is trained")):
            log(f"  {line.rstrip()[:200]}")
    if proc.wait() != 0 or not target.exists():
        raise SystemExit(f"nlu-train: training failed (exit {proc.returncode})")
    if cached:
        cache_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        shutil.copy2(target, cached)
        log(f"nlu-train: cached as {cached}")
    log(f"nlu-train: trained in {time.perf_counter() - started:.1f}s")
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env_cache = os.environ.get("NLU_MODEL_CACHE")
    ap.add_argument("--cache-dir", type=Path, default=Path(env_cache) if env_cache else None)
    ap.add_argument("--models-dir", type=Path, default=MODELS)
    ap.add_argument("--force", action="store_true", help="train even if a model with this hash exists")
    args = ap.parse_args(argv)
    path = train(args.models_dir, args.cache_dir, args.force)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
