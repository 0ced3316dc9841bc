"""Benchmarks behind `hf-coreset benchmark quality|cost|scaling` (fragments for BENCHMARKS.md).

- `quality`: every method against random and full data on MNIST-1D (accuracy, gap closed, cost).
- `cost`: throughput of signal collection against a plain forward pass of the same model.
- `scaling`: time and peak memory of the blocked pairwise kernels from 10k to 1M rows.
"""
