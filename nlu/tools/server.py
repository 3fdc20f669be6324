"""Start a loopback `rasa run --enable-api` server for a model, measure parse latency and RSS, stop it."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlu.tools.common import ROOT, quiet_rasa


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    ready_seconds: float

    def parse(self, text: str, timeout: float = 10.0) -> dict[str, Any]:
        return request_json(f"{self.url}/model/parse?token={self.token}", {"text": text}, timeout=timeout)

    def rss_mb(self) -> float:
        return tree_rss_mb(self.process.pid)


def request_json(url: str, body: dict[str, Any] | None, method: str = "POST", timeout: float = 10.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    # only ever called with the loopback http:// URLs these tools build
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        raw = resp.read()
    return json.loads(raw) if raw else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, from /proc (Linux)."""
    total_kb = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pids.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total_kb / 1024


@contextmanager
def running_server(model: Path, port: int | None = None, startup_timeout: float = 180.0) -> Iterator[Server]:
    """A Rasa NLU server bound to 127.0.0.1 with a random token; stopped when the block ends."""
    quiet_rasa()
    port = port or free_port()
    token = secrets.token_hex(16)
    # The token goes through the environment, not argv (nlu/serve.py says why).
    cmd = [sys.executable, "-m", "nlu.serve", "--port", str(port), "--model", str(model), "--quiet"]
    env = {**os.environ, "RASA_AUTH_TOKEN": token, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"rasa server exited with {process.returncode}")
            if time.perf_counter() - started > startup_timeout:
                raise TimeoutError("rasa server did not become ready")
            try:
                status = request_json(f"{url}/status?token={token}", None, method="GET", timeout=2)
                if status and status.get("model_file"):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            time.sleep(0.5)
        yield Server(url, token, process, time.perf_counter() - started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure_latency(server: Server, texts: list[str], requests: int = 400, warmup: int = 30) -> dict[str, float]:
    """Sequential /model/parse calls (one client, as the bot makes them): p50/p99 in ms, and RSS after."""
    for i in range(warmup):
        server.parse(texts[i % len(texts)])
    times = []
    for i in range(requests):
        t0 = time.perf_counter()
        server.parse(texts[i % len(texts)])
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()

    def pct(p: float) -> float:
        return times[min(len(times) - 1, round(p * (len(times) - 1)))]

    return {
        "parse_p50_ms": round(pct(0.50), 2),
        "parse_p99_ms": round(pct(0.99), 2),
        "parse_mean_ms": round(sum(times) / len(times), 2),
        "server_rss_mb": round(server.rss_mb(), 1),
        "server_ready_s": round(server.ready_seconds, 1),
    }
