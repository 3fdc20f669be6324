"""The maintainers' NLU tools against real parts: the review export reads the bot's database, the model hot swap
runs against a real Rasa server while it keeps answering."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import yaml

from nlu import figures
from nlu.server import ROOT, latest_model, start_rasa
from nlu.tools import review
from store.db import make_engine, make_sessionmaker, migrate, unit_of_work
from store.models import NluReview, User
from tests.support.base import RASA_TOKEN

RASA_PY = ROOT / ".rasa-venv" / "bin" / "python"


async def test_review_export_is_a_rasa_draft_grouped_by_predicted_intent(db_url: str, tmp_path: Path) -> None:
    await migrate(db_url)
    engine = make_engine(db_url)
    now = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
    rows = [  # as the router writes them: already redacted; a fallback row carries nlu_fallback as its intent
        ("quen mk vneid roi [phone]", "nlu_fallback", 0.35, [["nlu_fallback", 0.35], ["eid_forgot_password", 0.3]]),
        ("vneid la gi va kich hoat the nao", "eid_activate", 0.5, [["eid_activate", 0.5], ["eid_info", 0.49]]),
        ("mat khau vneid quen mat", "nlu_fallback", 0.35, [["nlu_fallback", 0.35], ["eid_forgot_password", 0.33]]),
        ("Quen MK VNeID roi [phone]", "nlu_fallback", 0.35, [["nlu_fallback", 0.35], ["eid_forgot_password", 0.3]]),
        ("xin chào", "greet", 0.3, [["greet", 0.3], ["thank", 0.25]]),  # already a training example
    ]
    try:
        async with unit_of_work(make_sessionmaker(engine)) as s:
            s.add(User(id=8101, chat_id=8101, lang="vi"))
            await s.flush()
            for i, (text, intent, conf, ranking) in enumerate(rows):
                s.add(
                    NluReview(
                        user_id=8101,
                        text=text,
                        intent=intent,
                        confidence=conf,
                        ranking=json.dumps(ranking),
                        reason="ambiguous" if intent == "eid_activate" else "fallback",
                        created_at=now + dt.timedelta(minutes=i),
                    )
                )
    finally:
        await engine.dispose()
    out = tmp_path / "draft.yml"
    assert review.main(["--database-url", db_url, "--out", str(out)]) == 0
    draft = yaml.safe_load(out.read_text(encoding="utf-8"))
    groups = {block["intent"]: block["examples"].splitlines() for block in draft["nlu"]}
    assert groups == {
        # grouped under the classifier's best reading, not under nlu_fallback; case-folded duplicates once
        "eid_forgot_password": ["- quen mk vneid roi [phone]", "- mat khau vneid quen mat"],
        "eid_activate": ["- vneid la gi va kich hoat the nao"],
    }
    assert "runner-up eid_info 0.49" in out.read_text(encoding="utf-8")


def reload(model: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(RASA_PY), "-m", "nlu.tools.reload", str(model), "--url", url, "--token", RASA_TOKEN, *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "RASA_TELEMETRY_ENABLED": "false"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


async def running_model(url: str) -> str:
    async with httpx.AsyncClient() as client:
        status = (await client.get(f"{url}/status", params={"token": RASA_TOKEN})).json()
    return Path(status["model_file"]).name


async def test_hot_swap_drops_no_request_and_refuses_a_bad_model(tmp_path: Path) -> None:
    # a server of its own: swapping the session server's model would change what other tests talk to
    server = await asyncio.to_thread(start_rasa, RASA_TOKEN)
    try:
        new = tmp_path / "nlu-swapped.tar.gz"
        shutil.copy2(latest_model(), new)
        done = await asyncio.to_thread(reload, new, server.url, "--watch")
        assert done.returncode == 0, done.stdout + done.stderr
        assert " 0 failed" in done.stdout, done.stdout  # parses kept being answered during the swap
        assert await running_model(server.url) == "nlu-swapped.tar.gz"

        # the swap measured both models on the field set and recorded the figures beside each file
        measured = figures.read(new)
        assert measured is not None and measured.field_set == figures.field_set_hash()
        assert measured.field_n > 600 and 0.5 < measured.field_accuracy <= 1.0
        lesser = tmp_path / "nlu-lesser.tar.gz"
        shutil.copy2(latest_model(), lesser)
        dataclasses.replace(measured, model=lesser.name, field_accuracy=measured.field_accuracy - 0.01).write(lesser)
        refused = await asyncio.to_thread(reload, lesser, server.url)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "REFUSED (lower accuracy on the field set than the running model)" in refused.stdout, refused.stdout

        strict = tmp_path / "nlu-strict.tar.gz"
        shutil.copy2(latest_model(), strict)
        refused = await asyncio.to_thread(reload, strict, server.url, "--min-accuracy", "0.9999")
        assert refused.returncode == 1 and "REFUSED" in refused.stdout, refused.stdout + refused.stderr

        broken = tmp_path / "nlu-broken.tar.gz"
        broken.write_bytes(b"not a model")
        refused = await asyncio.to_thread(reload, broken, server.url)
        assert refused.returncode == 1 and "REFUSED" in refused.stdout, refused.stdout + refused.stderr
        assert await running_model(server.url) == "nlu-swapped.tar.gz"  # still the good one
    finally:
        await asyncio.to_thread(server.stop)
