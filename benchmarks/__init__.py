"""Benchmarks run by `make bench` against the sandbox; figures go to benchmarks/results.json."""
