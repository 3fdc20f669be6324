"""Run all benchmarks, or the ones named, and merge their figures into benchmarks/results.json."""

from __future__ import annotations

import asyncio
import importlib
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"

# name -> module exposing `async def run() -> dict[str, float]`; units are part of each figure's name.
BENCHMARKS: dict[str, str] = {
    "conversation": "benchmarks.bench_conversation",
    "reminders": "benchmarks.bench_reminders",
    "portal": "benchmarks.bench_portal",
    "broadcast": "benchmarks.bench_broadcast",
    "nlu": "benchmarks.bench_nlu",
    "console": "benchmarks.bench_console",
}


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


async def run_one(name: str) -> dict[str, float]:
    module = importlib.import_module(BENCHMARKS[name])
    fn: Callable[[], Awaitable[dict[str, float]]] = module.run
    started = time.monotonic()
    print(f"[bench] {name} …", flush=True)
    figures = await fn()
    print(f"[bench] {name} took {time.monotonic() - started:.0f} s", flush=True)
    for key, value in figures.items():
        print(f"  {key} = {value}")
    return figures


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    results: dict[str, object] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in names:
        results.update(asyncio.run(run_one(name)))
    results["_machine"] = machine()
    results["_date"] = time.strftime("%Y-%m-%d")
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"[bench] results in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
