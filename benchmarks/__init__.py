"""The benchmarks behind BENCHMARKS.md: not part of the installed package, run from the repository root.

- `python -m benchmarks quality|cost|scaling`: the runner (`cli.py`); `quality` is every method
  against random and full data on MNIST-1D (accuracy, gap closed, cost), `cost` the throughput of
  signal collection against a plain forward pass, `scaling` the time and peak memory of the
  blocked pairwise kernels from 10k to 1M rows.
- `python benchmarks/<study>.py`: the research scripts (validation studies, CREST, seed methods).
- `python benchmarks/build_report.py`: BENCHMARKS.md from the fragments in benchmarks/results/.

Every fragment records where its numbers come from through `provenance.py`; the scripts use only
hf_coreset's public API. They need the `bench` extra (`pip install -e ".[bench]"`).
"""
