"""Start and stop the Rasa NLU server (in its own Python 3.10 environment) for make run, tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RASA_BIN = ROOT / ".rasa-venv" / "bin" / "rasa"
RASA_PY = ROOT / ".rasa-venv" / "bin" / "python"
TOKEN_ENV = "RASA_AUTH_TOKEN"  # noqa: S105 = nlu/serve.py TOKEN_ENV (that module runs in the Rasa environment)
MODELS = ROOT / "models"


class RasaStartError(RuntimeError):
    """The Rasa server could not be started or did not become ready."""


def latest_model(models: Path = MODELS) -> Path:
    found = sorted(models.glob("nlu-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RasaStartError(f"no trained NLU model in {models}: run `make nlu-train`")
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RasaServer:
    """A running `rasa run --enable-api`, bound to loopback and protected by a token (CVE-2024-49375)."""

    process: subprocess.Popen[bytes]
    url: str
    token: str
    model: Path

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_rasa(
    token: str,
    port: int | None = None,
    model: Path | None = None,
    log_path: Path | None = None,
    timeout_s: float = 180.0,
    progress: bool = False,
) -> RasaServer:
    """Start the server and wait until it has loaded its model (≈20 s on a 2-core machine)."""
    if not RASA_BIN.exists():
        raise RasaStartError("the Rasa environment is missing: run `make env` (python3 tools/envs.py rasa)")
    model = model or latest_model()
    port = port or free_port()
    log_path = log_path or ROOT / "var" / "log" / f"rasa-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # our custom components live in nlu/components
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "RASA_TELEMETRY_ENABLED": "false",
    }
    env[TOKEN_ENV] = token  # not on the command line: nlu/serve.py reads it from the environment and drops it
    cmd = [
        str(RASA_PY),
        "-m",
        "nlu.serve",
        "--interface",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        str(model),
        "--log-file",
        str(log_path),
    ]
    with log_path.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = RasaServer(proc, f"http://127.0.0.1:{port}", token, model)
    start = time.monotonic()
    next_note = start + 5
    while True:
        if proc.poll() is not None:
            raise RasaStartError(f"the Rasa server exited with {proc.returncode}; see {log_path}")
        try:
            r = httpx.get(f"{server.url}/status", params={"token": token}, timeout=2)
            if r.status_code == 200 and r.json().get("model_file"):
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() - start > timeout_s:
            server.stop()
            raise RasaStartError(f"the Rasa server was not ready after {timeout_s:.0f} s; see {log_path}")
        if progress and time.monotonic() > next_note:
            print(f"[rasa] starting… {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
            next_note += 5
        time.sleep(0.5)
    if progress:
        print(f"[rasa] ready on {server.url} in {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)
    return server
