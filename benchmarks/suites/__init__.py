"""Benchmark suites: each runs one documented command and writes `benchmarks/results/<suite>.json`."""
