"""Benchmark evaluation: lm-eval tasks over the offline data files or the hub."""
