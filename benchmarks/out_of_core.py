"""Selection from memory-mapped signals (as the signal cache now hands them to methods) against the same
signals loaded into memory.

Usage (from the repository root):
    python benchmarks/out_of_core.py [--rows 2000000] [--dim 128] [--method moderate] [--fraction 0.01]
                                     [--dir /tmp/...] [--out benchmarks/results/out_of_core.md]

Synthetic signals, written once as .npy files the way the cache writes them: n rows x `dim` float32
features (Gaussian blobs around 10 random class centres, rows in random class order) and 10-class float32
logits. Each variant runs in a fresh process (multiprocessing spawn), so its peak RSS is its own:
"in memory" loads the files with `np.load`, "memory-mapped" with `np.load(mmap_mode="r")`; both build the
same `Signals` and run the method through `hf_coreset.methods.run`. Peak RSS is `ru_maxrss`, which counts
file pages mapped in by the method's reads (clean page cache the kernel can drop under memory pressure);
peak anonymous RSS (sampled from /proc/self/status every 10 ms) is the memory the process really owns.
The files are in the page cache when the variants run (written just before), so the memory-mapped
times are those of a warm cache. Only public imports of hf_coreset.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks import provenance  # noqa: E402
from benchmarks.seed_utils import in_fresh_process  # noqa: E402

NUM_CLASSES = 10
VARIANTS = (("in memory", None), ("memory-mapped", "r"))
TIMEOUT_S = 3 * 3600  # a variant at 10M rows takes minutes; a hung child must not hang the run


def write_signals(folder: Path, n: int, dim: int, seed: int = 0, chunk: int = 1 << 18) -> None:
    """labels.npy, features.npy and logits.npy, written in chunks (the writer never holds the whole array)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n).astype(np.int64)
    np.save(folder / "labels.npy", labels)
    centres = rng.standard_normal((NUM_CLASSES, dim), dtype=np.float32) * 2.0
    feats = np.lib.format.open_memmap(folder / "features.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    logits = np.lib.format.open_memmap(folder / "logits.npy", mode="w+", dtype=np.float32, shape=(n, NUM_CLASSES))
    for start in range(0, n, chunk):
        y = labels[start:start + chunk]
        feats[start:start + chunk] = centres[y] + rng.standard_normal((len(y), dim), dtype=np.float32)
        logits[start:start + chunk] = rng.standard_normal((len(y), NUM_CLASSES), dtype=np.float32)
    feats.flush()
    logits.flush()
    del feats, logits


def _anon_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class AnonPeak:
    """Peak anonymous RSS (bytes) of this process while the block runs, sampled every 10 ms."""

    def __enter__(self) -> "AnonPeak":
        self.kb, self._stop = _anon_kb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.kb = max(self.kb, _anon_kb())
            self._stop.wait(0.01)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.kb = max(self.kb, _anon_kb())

    @property
    def bytes(self) -> int:
        return self.kb * 1024


def add_data_args(parser: argparse.ArgumentParser, *, out: str, dir_help: str) -> None:
    """The options this script and collect_memory.py share: data size, method, where files and the report go."""
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--method", default="moderate")
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--dir", type=Path, default=None, help=dir_help)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / out)


def run_variant(folder: str, mmap_mode, method: str, fraction: float, queue) -> None:
    """In a fresh process: load the signals one way, select, report times, peak RSS and the picks."""
    import hf_coreset
    from hf_coreset.signals import Checkpoint, Signals

    folder = Path(folder)
    with AnonPeak() as peak:
        t0 = time.perf_counter()
        labels = np.load(folder / "labels.npy")
        ckpt = Checkpoint(epoch=1, features=np.load(folder / "features.npy", mmap_mode=mmap_mode),
                          logits=np.load(folder / "logits.npy", mmap_mode=mmap_mode))
        signals = Signals(labels=labels, num_classes=NUM_CLASSES, checkpoints={1: ckpt})
        t1 = time.perf_counter()
        out = hf_coreset.methods.run(method, signals, hf_coreset.make_budget(labels, fraction=fraction), seed=0, epoch=1)
        t2 = time.perf_counter()
    queue.put({"load_s": t1 - t0, "select_s": t2 - t1, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               "peak_anon": peak.bytes, "indices": np.asarray(out.indices)})


def measure(folder: Path, mmap_mode, method: str, fraction: float) -> dict:
    out = in_fresh_process(run_variant, (str(folder), mmap_mode, method, fraction), timeout_s=TIMEOUT_S)
    if out["status"] != "ok":
        raise RuntimeError(f"The {method} variant {out['status']}; run it alone to see its error.")
    return out


def gb(x: float) -> str:
    return f"{x / 1e9:.2f} GB"


def write_report(out: Path, lines: list[str], same: bool) -> int:
    """Write and print the fragment; the exit status says whether both variants picked the same rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if same else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, out="out_of_core.md", dir_help="where the .npy files go (default: a temporary folder)")
    args = parser.parse_args(argv)
    header = provenance.header()  # the machine's load before the run
    folder = Path(tempfile.mkdtemp(prefix="out_of_core_", dir=args.dir))
    try:
        t0 = time.perf_counter()
        write_signals(folder, args.rows, args.dim)
        write_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in folder.iterdir())
        results = [(name, measure(folder, mode, args.method, args.fraction)) for name, mode in VARIANTS]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    same = np.array_equal(results[0][1]["indices"], results[1][1]["indices"])
    lines = [f"# Selection from memory-mapped signals: `{args.method}`", "", header.rstrip(), "",
             f"{args.rows:,} rows x {args.dim} float32 features + {NUM_CLASSES}-class float32 logits "
             f"({gb(size)} of .npy files, written in {write_s:.1f} s), method `{args.method}`, "
             f"fraction {args.fraction}; one fresh process per variant. Same picks: {'yes' if same else 'NO'}.", "",
             "| signals | load | select | peak RSS | peak anonymous RSS |", "|---|---|---|---|---|"]
    for name, r in results:
        lines.append(f"| {name} | {r['load_s']:.2f} s | {r['select_s']:.2f} s | {gb(r['peak_rss'])} | "
                     f"{gb(r['peak_anon'])} |")
    lines += ["", "Peak RSS counts file pages the method's reads mapped in (the page cache, which the kernel drops "
              "under memory pressure); peak anonymous RSS is the memory the process owns. The files were in "
              "the page cache (just written), so memory-mapped times are warm-cache times."]
    return write_report(args.out, lines, same)


if __name__ == "__main__":
    sys.exit(main())
