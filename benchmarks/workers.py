"""Is the quality grid faster with 2 training processes of 1 thread, or 1 process of 2 threads?

Usage: `python benchmarks/workers.py [--rows 4000] [--epochs 20] [--cells 4]`

Trains `cells` ConvNets of the quality protocol (a `rows`-row subset of MNIST-1D, `epochs` epochs)
both ways and writes benchmarks/results/training_workers.md. The grid's `--workers` default
follows from this measurement.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks.provenance import command, git_revision, machine, now  # noqa: E402
from benchmarks.quality import init_worker, train_cell  # noqa: E402
from hf_coreset.evaluation import Protocol  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000, help="rows per training subset (10%% of MNIST-1D)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--cells", type=int, default=4, help="training runs per configuration")
    parser.add_argument("--cache-dir", default="benchmarks/cache")
    parser.add_argument("--out", default="benchmarks/results/training_workers.md")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    tasks = [{"num_samples": 50000, "cache_dir": args.cache_dir, "seed": s, "weights": None,
              "indices": rng.choice(40000, args.rows, replace=False), "protocol": vars(Protocol(epochs=args.epochs))}
             for s in range(args.cells)]
    train_cell({**tasks[0], "protocol": vars(Protocol(epochs=1))})  # data cache and warm-up
    t0 = time.perf_counter()
    for t in tasks:
        train_cell(t)
    one = time.perf_counter() - t0
    with mp.get_context("spawn").Pool(2, initializer=init_worker) as pool:
        pool.map(train_cell, [{**tasks[0], "protocol": vars(Protocol(epochs=1))}] * 2)  # start-up and warm-up
        t0 = time.perf_counter()
        pool.map(train_cell, tasks)
        two = time.perf_counter() - t0
    mach = machine()
    text = "\n".join([
        "## Training throughput: 1 process x 2 threads vs 2 processes x 1 thread", "",
        f"{args.cells} ConvNet trainings of the quality protocol ({args.rows:,} rows, {args.epochs} epochs, batch 128) "
        "run one after the other in one process with torch's default threads, and spread over a pool of 2 processes "
        "with 1 thread each (the quality grid's `--workers 2`).", "",
        f"Command: `{command()}`; {now()}; git {git_revision()}; {mach['cpu_count']} CPU cores, torch {mach['torch']} "
        f"({mach['threads']} default threads); 1-minute load average {mach['loadavg_1m']:.1f} (shared machine).",
        "", "| configuration | wall time (s) | speed-up |", "|---|---:|---:|",
        f"| 1 process x {torch.get_num_threads()} threads | {one:.1f} | 1.00 |",
        f"| 2 processes x 1 thread | {two:.1f} | {one / two:.2f} |", ""])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
