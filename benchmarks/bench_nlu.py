"""The NLU as deployed: training time, held-out accuracy, parse latency through the HTTP API and server RSS."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from benchmarks.common import RASA_TOKEN, note, percentile, scale
from core.settings import ROOT
from nlu.server import start_rasa
from nlu.tools.server import tree_rss_mb

NAME = "nlu"
# Rasa entity annotations: [mức 2]{"entity": ...} or [mức 2](eid_level)
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\{[^}]*\}|\([^)]*\))")
RASA_PY = ROOT / ".rasa-venv" / "bin" / "python"
RASA_ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    "RASA_TELEMETRY_ENABLED": "false",
}


def heldout_texts() -> list[str]:
    doc = yaml.safe_load((ROOT / "data" / "nlu_heldout" / "test.yml").read_text(encoding="utf-8"))
    texts = []
    for block in doc["nlu"]:
        for raw in block["examples"].splitlines():
            line = raw.strip().removeprefix("- ")
            if line:
                texts.append(_ANNOTATION.sub(r"\1", line))  # sent as the citizen typed it
    return texts


def train(out: Path) -> tuple[Path, float]:
    """`rasa train nlu` of config.yml on data/nlu, from scratch (no cache), in the Rasa environment."""
    cmd = [
        str(RASA_PY), "-m", "rasa", "train", "nlu", "--config", "config.yml", "--nlu", "data/nlu",
        "--domain", "domain.yml", "--out", str(out), "--fixed-model-name", "bench", "--quiet",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env={**RASA_ENV, "RASA_MAX_CACHE_SIZE": "0"}, check=True, capture_output=True)
    return out / "bench.tar.gz", time.perf_counter() - started


def accuracy_figures(model: Path, tmp: Path) -> dict[str, float]:
    """The held-out file's and the field set's figures (nlu.tools.evaluate --quick scores both)."""
    summary = tmp / "evaluation.json"
    cmd = [str(RASA_PY), "-m", "nlu.tools.evaluate", "--quick", "--model", str(model), "--json", str(summary)]
    # exit status 1 only says a target was missed; the figure is what the benchmark reports
    subprocess.run(cmd, cwd=ROOT, env=RASA_ENV, check=False, capture_output=True)
    figures = json.loads(summary.read_text(encoding="utf-8"))
    keys = ("nlu_heldout_accuracy", "nlu_field_accuracy", "nlu_field_confident_wrong")
    return {k: round(float(figures[k]), 4) for k in keys}


async def latency(url: str, texts: list[str], requests: int) -> list[float]:
    """Sequential /model/parse calls, one client as the bot makes them; milliseconds per call."""
    times = []
    async with httpx.AsyncClient(base_url=url, params={"token": RASA_TOKEN}, timeout=10) as client:
        for i in range(30):  # warm-up: first calls load lazily-built featurizer state
            (await client.post("/model/parse", json={"text": texts[i % len(texts)]})).raise_for_status()
        for i in range(requests):
            t0 = time.perf_counter()
            (await client.post("/model/parse", json={"text": texts[i % len(texts)]})).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
    return times


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-nlu-") as tmp:
        note(NAME, "training config.yml on data/nlu")
        model, train_s = await asyncio.to_thread(train, Path(tmp))
        note(NAME, f"trained in {train_s:.1f} s; scoring the held-out and field sets")
        accuracy = await asyncio.to_thread(accuracy_figures, model, Path(tmp))
        note(NAME, "starting the server")
        server = await asyncio.to_thread(start_rasa, RASA_TOKEN, None, model)
        try:
            times = await latency(server.url, heldout_texts(), int(scale(1000, 200)))
            rss = tree_rss_mb(server.process.pid)
        finally:
            await asyncio.to_thread(server.stop)
    return {
        "nlu_parse_p50_ms": round(percentile(times, 50), 2),
        "nlu_parse_p99_ms": round(percentile(times, 99), 2),
        "nlu_train_s": round(train_s, 1),
        "nlu_server_rss_mb": round(rss, 1),
        **accuracy,
    }
