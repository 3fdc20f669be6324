"""What the benchmarks share: scale, databases, the bot as a child process, RSS, percentiles, progress lines."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pstats
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from core.logs import setup_logging
from core.settings import ROOT
from sandbox.telegram.server import TelegramEmulator

BOT_TOKEN = "123456:BENCH-bench-bench-bench-bench"
RASA_TOKEN = "bench-rasa-token"
LOG_DIR = ROOT / "var" / "log"


def quick() -> bool:
    """BENCH_QUICK=1: the reduced scale (short steps, fewer rows) for a busy machine or a smoke run."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def scale(full: float, reduced: float) -> float:
    return reduced if quick() else full


def note(bench: str, msg: str) -> None:
    print(f"[{bench}] {msg}", flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@contextlib.asynccontextmanager
async def database(bench: str) -> AsyncIterator[str]:
    """A fresh, empty database for one benchmark: a SQLite file in a temp dir, or a throwaway PostgreSQL
    database next to BENCH_DATABASE_URL (dropped afterwards)."""
    base = os.environ.get("BENCH_DATABASE_URL")
    if not base:
        with tempfile.TemporaryDirectory(prefix=f"bench-{bench}-") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'assistant.db'}"
        return
    name = f"ca_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class BotProcess:
    """`python -m bot` as a child process, polling the in-process Telegram emulator: what production runs."""

    def __init__(
        self, emulator: TelegramEmulator, db_url: str, name: str, *, profile: str | None = None, **env: str
    ) -> None:
        self.emulator = emulator
        # BENCH_PROFILE=1: run the bot under cProfile and write its statistics next to its log
        if profile is None and os.environ.get("BENCH_PROFILE"):
            profile = str(LOG_DIR / f"bench-{name}-bot.prof")
        self.profile = profile
        self.log_path = LOG_DIR / f"bench-{name}-bot.log"
        self.env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_BASE_URL": emulator.api_url,
            "WEBHOOK_URL": "",
            "DATABASE_URL": db_url,
            "RASA_URL": "http://127.0.0.1:9",
            "RASA_TOKEN": RASA_TOKEN,
            # `python -m bot` refuses public default secrets; nothing listens on port 9 anyway
            "PORTAL_CLIENT_SECRET": secrets.token_urlsafe(24),
            "PORTAL_BASE_URL": "http://127.0.0.1:9",
            "PORTAL_TOKEN_URL": "http://127.0.0.1:9/oauth/token",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_s = math.nan

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout_s: float = 60.0) -> float:
        """Spawn and wait for the first getUpdates (migrations done, background jobs started); returns the
        start-up time in seconds."""
        state = self.emulator.bot()
        before = state.method_calls.get("getUpdates", 0)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        t0 = time.monotonic()
        cmd = [sys.executable, *(["-m", "cProfile", "-o", self.profile] if self.profile else []), "-m", "bot"]
        # Popen only forks and execs; its start-up cost is part of what is measured.
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=out)  # noqa: ASYNC220
        out.close()
        while state.method_calls.get("getUpdates", 0) <= before:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise RuntimeError(f"the bot did not poll within {timeout_s:.0f} s; see {self.log_path}")
            await asyncio.sleep(0.01)
        self.started_s = time.monotonic() - t0
        return self.started_s

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def cpu_s(self) -> float:
        return cpu_s(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # PTB's run_polling shuts down in order on SIGINT
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


async def start_emulator(**rates: float | bool) -> TelegramEmulator:
    emulator = TelegramEmulator(tokens=[BOT_TOKEN], **rates)  # type: ignore[arg-type]
    await emulator.start("127.0.0.1", 0)
    return emulator


class RssSampler:
    """The highest RSS of a process, sampled every `every_s` seconds in the background."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid = pid
        self.every_s = every_s
        self.peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mb(self.pid))
            await asyncio.sleep(self.every_s)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def quiet() -> None:
    """Only warnings from the libraries in the benchmark's own process: its output is the figures."""
    setup_logging("WARNING", "console")


def print_profile(bench: str, path: str | None, top: int = 30) -> None:
    """The bot's most expensive functions by own time (cumulative time in asyncio code mostly counts awaiting)."""
    if path is None:
        return
    if not os.path.exists(path):
        note(bench, f"no profile written at {path}")
        return
    note(bench, f"bot profile ({path}), top functions by own time:")
    pstats.Stats(path).sort_stats("tottime").print_stats(top)
