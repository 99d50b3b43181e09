"""Benchmarks, not tests: each prints a ratio against the plain way, measured in one run.
Run from the repository root as `python -m bench.step`, `python -m bench.ops`, `python -m bench.fid` (or as a path, `python bench/step.py`).
"""
