"""Benchmarks run by `make bench`: each figure measured beside its baseline in the same run."""
