"""Benchmarks: `make bench` writes figures to bench/results/*.json."""
