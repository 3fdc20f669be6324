"""Running a short script in the Rasa environment (Python 3.10, its own venv), for tests of the custom components
as the model runs them: JSON in on stdin, the script's last line of stdout parsed as JSON."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RASA_PY = ROOT / ".rasa-venv" / "bin" / "python"


def run_in_rasa(script: str, payload: Any) -> Any:
    """Run `script` with the repo importable; skips the test when the environment is missing (make env builds it)."""
    if not RASA_PY.exists():
        pytest.skip("the Rasa environment is missing (make env builds it)")
    done = subprocess.run(
        [str(RASA_PY), "-c", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "RASA_TELEMETRY_ENABLED": "false"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
