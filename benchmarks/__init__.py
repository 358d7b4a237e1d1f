"""Benchmarks of rnnkit, each a module run as `python -m benchmarks.NAME` (e.g. `benchmarks.layers`)."""
