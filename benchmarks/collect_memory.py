"""Peak memory of a whole `select` (signal collection + method) with the signal cache on and off.

Usage (from the repository root):
    python benchmarks/collect_memory.py [--rows 2000000] [--dim 128] [--method moderate] [--fraction 0.01]
                                        [--dir /tmp/...] [--out benchmarks/results/collect_memory.md]

A synthetic dataset (n rows of `dim` float32 inputs around 10 random class centres, and labels) is
written once as an Arrow file in chunks and opened memory-mapped (`datasets.Dataset.from_file`), as
a dataset loaded from disk is. Each variant runs `hf_coreset.select` on it in a fresh process
(multiprocessing spawn) at proxy epoch 0 (the model as given: a seeded 2-layer MLP whose head's input,
the "features", has `dim` dims), so the run is one signal pass plus the method:
"no cache" (`cache_dir=False`: the signals are arrays in memory) and "cache" (`cache_dir=<folder>`:
the proxy writes logits and features straight into memory-mapped cache files as rows arrive, and the
method reads them from there). Peak anonymous RSS (sampled from /proc/self/status every 10 ms) is the
memory the process owns; file pages of the dataset and the cache are not in it.
Only public imports of hf_coreset.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks import provenance  # noqa: E402
from benchmarks.out_of_core import TIMEOUT_S, AnonPeak, add_data_args, gb, write_report  # noqa: E402
from benchmarks.seed_utils import in_fresh_process  # noqa: E402

NUM_CLASSES = 10


class MLP(nn.Module):
    """inputs -> dim hidden units -> 10 logits; the head's input (the features) has `dim` dims."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, NUM_CLASSES)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def write_dataset(path: Path, n: int, dim: int, seed: int = 0, chunk: int = 1 << 17) -> None:
    """An Arrow stream file with columns x (fixed-size lists of float32) and label, written in chunks."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((NUM_CLASSES, dim), dtype=np.float32) * 2.0
    schema = pa.schema([("x", pa.list_(pa.float32(), dim)), ("label", pa.int64())])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for start in range(0, n, chunk):
            y = rng.integers(0, NUM_CLASSES, min(chunk, n - start))
            x = centres[y] + rng.standard_normal((len(y), dim), dtype=np.float32)
            writer.write_batch(pa.record_batch([pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), dim),
                                                pa.array(y)], schema=schema))


def run_variant(path: str, cache_dir, dim: int, method: str, fraction: float, queue) -> None:
    """In a fresh process: select from the dataset with the cache on or off; report time, peak anonymous RSS, picks."""
    import datasets

    import hf_coreset

    torch.set_num_threads(1)
    with AnonPeak() as peak:
        ds = datasets.Dataset.from_file(path)
        torch.manual_seed(0)
        model = MLP(dim)
        t0 = time.perf_counter()
        out = hf_coreset.select(ds, method, fraction=fraction, model=model, epoch=0, progress=False,
                                cache_dir=cache_dir if cache_dir else False)
        seconds = time.perf_counter() - t0
    queue.put({"seconds": seconds, "peak_anon": peak.bytes, "indices": np.asarray(out.indices)})


def measure(path: Path, cache_dir, dim: int, method: str, fraction: float) -> dict:
    out = in_fresh_process(run_variant, (str(path), cache_dir, dim, method, fraction), timeout_s=TIMEOUT_S)
    if out["status"] != "ok":
        raise RuntimeError(f"The {method} variant {out['status']}; run it alone to see its error.")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, out="collect_memory.md", dir_help="where the dataset and cache go (default: a temporary folder)")
    args = parser.parse_args(argv)
    header = provenance.header()  # the machine's load before the run
    folder = Path(tempfile.mkdtemp(prefix="collect_memory_", dir=args.dir))
    try:
        path = folder / "data.arrow"
        write_dataset(path, args.rows, args.dim)
        size = path.stat().st_size
        results = [(name, measure(path, cache, args.dim, args.method, args.fraction))
                   for name, cache in (("no cache (signals in memory)", None),
                                       ("cache (signals memory-mapped as collected)", str(folder / "cache")))]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    same = np.array_equal(results[0][1]["indices"], results[1][1]["indices"])
    signals = args.rows * (args.dim + NUM_CLASSES) * 4
    lines = ["# Peak memory of select, signal cache on and off", "", header.rstrip(), "",
             f"`hf_coreset.select(ds, {args.method!r}, fraction={args.fraction}, epoch=0)` on a memory-mapped Arrow "
             f"dataset of {args.rows:,} rows x {args.dim} float32 inputs ({gb(size)} on disk), a 2-layer MLP whose "
             f"head reads {args.dim}-dim features; one fresh process per variant, 1 torch thread. The logits and "
             f"features the signal pass collects take {gb(signals)}. Same picks: {'yes' if same else 'NO'}.", "",
             "| variant | select (collection + method) | peak anonymous RSS |", "|---|---|---|"]
    for name, r in results:
        lines.append(f"| {name} | {r['seconds']:.1f} s | {gb(r['peak_anon'])} |")
    lines += ["", "Peak anonymous RSS is the memory the process owns (sampled every 10 ms); the dataset's and the "
              "cache's file pages are page cache, which the kernel drops under memory pressure. The first run "
              "with a cache collects the signals (nothing cached yet), so both variants run the same signal pass."]
    return write_report(args.out, lines, same)


if __name__ == "__main__":
    sys.exit(main())
