"""The benchmarks are runnable: every module `make bench` names exposes `run()`, and the statistics are right."""

from __future__ import annotations

import importlib
import inspect
import math

from benchmarks.common import percentile
from benchmarks.run import BENCHMARKS


def test_every_benchmark_module_exposes_an_async_run() -> None:
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        assert inspect.iscoroutinefunction(getattr(module, "run", None)), name


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([0.2, 0.1], 99) == 0.2
    assert math.isnan(percentile([], 50))
