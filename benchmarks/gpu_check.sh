#!/usr/bin/env bash
# The GPU checks of the scale issue in one run, for a machine with a CUDA device and the package
# installed (`pip install -e ".[dev]"`): the CPU-vs-CUDA equality tests (skipped everywhere else), then
# the kernel table of kernels.md on the device (sizes predicted past --budget-s are skipped and reported),
# then BENCHMARKS.md rebuilt with it. A size predicted past 90 s per kernel is skipped, to keep the run short
# (never timed: no GPU has been available to this project yet). No test depends on it.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device here: run this on a machine with a GPU')"
export TOKENIZERS_PARALLELISM=false
python -m pytest -q -p no:cacheprovider tests/test_kernel_device.py
python benchmarks/kernel_rates.py --device cuda --threads 1 --sizes 10000,100000,1000000 --budget-s 90 \
    --out benchmarks/results/kernels_cuda.md
python benchmarks/build_report.py
