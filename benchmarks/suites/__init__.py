"""Benchmark suites: each runs one documented command and writes `benchmarks/results/<suite>.json`, through the
command line they share (`command_line.suite_main`)."""
