"""Time and peak memory of the blocked pairwise kernels from 10k to 1M rows.

Synthetic data: `n` rows of `dim` float32 features in 10 classes of equal size (Gaussian blobs
around random class centres), and for NFG random logits turned into logit gradients p - y. Each
kernel runs per class, as the methods run it: NFG radius-neighbour counts (radius 0.2), greedy
k-center and facility location picking `fraction` of each class. Every (kernel, size) runs in a
fresh process, so its peak resident memory (ru_maxrss) is its own; the table also shows the memory
the data takes and what one n x n float32 matrix would take, to show that none is formed.

Kernels are looked up by name at run time; a kernel missing at this revision is reported as such.
Sizes run in increasing order; a size whose predicted time (the last measured time scaled by the
square of the size ratio: every kernel here does pairwise work within a class) exceeds the budget
is skipped and reported with its prediction.
"""

from __future__ import annotations

import importlib
import json
import logging
import resource
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .provenance import git_revision, machine, now
from .seed_utils import in_fresh_process

logger = logging.getLogger(__name__)

NUM_CLASSES = 10
NFG_RADIUS = 0.2  # NFG's default cosine-distance radius
KERNELS = {  # name -> "module:function"
    "nfg_counts": "hf_coreset.ops.nfg:radius_neighbour_counts",
    "kcenter": "hf_coreset.ops.greedy:kcenter_greedy",
    "facility_location": "hf_coreset.ops.facility_location:facility_location",
    "gaussian_herding": "hf_coreset.ops.greedy:gaussian_herding",
}


def lookup(name: str):
    """The kernel function registered as `name`, or None when this revision does not have it."""
    if name not in KERNELS:
        raise ValueError(f"Unknown kernel {name!r}; known kernels: {', '.join(KERNELS)}.")
    module, fn = KERNELS[name].split(":")
    try:
        return getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError):
        return None


def logit_grads(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """p - y (float64, (n, 10)) from random logits with +3 on the label: the NFG and CRAIG signal of the
    synthetic benchmarks."""
    z = rng.standard_normal((len(labels), NUM_CLASSES)) + 3.0 * np.eye(NUM_CLASSES)[labels]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return p - np.eye(NUM_CLASSES)[labels]


def synthetic(n: int, dim: int, seed: int = 0, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, dim) float32 sorted by class, and labels; classes of n // 10 rows. Drawn from `rng`
    when given (a caller that draws more data after them), else from `seed`."""
    rng = np.random.default_rng(seed) if rng is None else rng
    per = n // NUM_CLASSES
    x = np.empty((per * NUM_CLASSES, dim), dtype=np.float32)
    for c in range(NUM_CLASSES):
        block = x[c * per:(c + 1) * per]
        rng.standard_normal(out=block, dtype=np.float32)
        block += rng.standard_normal(dim, dtype=np.float32) * 2.0
    return x, np.repeat(np.arange(NUM_CLASSES), per)


def _run_one(name: str, n: int, dim: int, fraction: float, threads: int | None, queue) -> None:
    """Child process: build the data, run the kernel per class, report time and peak memory."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    x, labels = synthetic(n, dim)
    per = n // NUM_CLASSES
    e = None
    if name == "nfg_counts":
        e = logit_grads(np.random.default_rng(1), labels).astype(np.float32)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    fn = lookup(name)
    k = max(1, int(round(fraction * per)))
    t0 = time.perf_counter()
    for c in range(NUM_CLASSES):
        xc = x[c * per:(c + 1) * per]
        if name == "nfg_counts":
            fn(e[c * per:(c + 1) * per], xc, NFG_RADIUS)
        elif name == "kcenter":
            fn(xc, k, first=0)
        elif name == "gaussian_herding":
            fn(xc, k, rng=np.random.default_rng(0))
        else:
            from hf_coreset.ops import FeatureKernel

            fn(FeatureKernel(xc), k)
    seconds = time.perf_counter() - t0
    queue.put({"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               "base_rss": base, "threads": torch.get_num_threads()})


def run_size(name: str, n: int, dim: int, fraction: float, timeout_s: float, threads: int | None = None) -> dict:
    """Run one (kernel, size) in a fresh process; {"status": "ok", seconds, peak_rss, ...} or a reason."""
    return in_fresh_process(_run_one, (name, n, dim, fraction, threads), timeout_s)


def run_scaling(*, out_md: str = "benchmarks/results/scaling.md", sizes=(10_000, 30_000, 100_000, 300_000, 1_000_000),
                kernels=tuple(KERNELS), dim: int = 512, fraction: float = 0.1, budget_s: float = 300.0,
                threads: int | None = None, command: str | None = None,
                log: Callable[[str], None] = logger.info) -> list[dict]:
    """Time each kernel at each size within the budget and write the fragment `out_md` (and its plot).

    Returns:
        `list[dict]`: one row per (kernel, size) with status, seconds, peak_rss and base_rss.
    """
    rows = []
    rev = git_revision()  # the code that runs; HEAD may move during a long run
    for name in kernels:
        if lookup(name) is None:
            rows += [{"kernel": name, "n": n, "status": "not available at this revision"} for n in sizes]
            log(f"{name}: not available at this revision ({KERNELS[name]})")
            continue
        last, failed = None, False  # last: the largest size that finished
        for n in sorted(sizes):
            if failed:
                rows.append({"kernel": name, "n": n, "status": "skipped: a smaller size did not finish"})
                continue
            if last is not None:
                predicted = last["seconds"] * (n / last["n"]) ** 2
                if predicted > budget_s:
                    rows.append({"kernel": name, "n": n, "status": f"skipped: predicted {predicted:,.0f} s > "
                                                                    f"budget {budget_s:.0f} s", "predicted": predicted})
                    continue
            log(f"{name}: {n:,} rows x {dim} ...")
            r = {"kernel": name, "n": n, **run_size(name, n, dim, fraction, timeout_s=3 * budget_s, threads=threads),
                 "git": rev, "date": now(), "command": command}
            rows.append(r)
            if r["status"] == "ok":
                last = r
                log(f"{name}: {n:,} rows: {r['seconds']:.1f} s, peak RSS {r['peak_rss'] / 2**30:.2f} GiB")
            else:
                failed = True
                log(f"{name}: {n:,} rows: {r['status']}")
    _write(_merge(rows, out_md, dim=dim, fraction=fraction), out_md, dim=dim, fraction=fraction, budget_s=budget_s)
    return rows


def _merge(rows: list[dict], out_md, *, dim: int, fraction: float) -> list[dict]:
    """`rows` plus the stored rows (the fragment's .json) of the (kernel, size) pairs this run did not
    measure, when they were measured with the same dim and fraction, so one kernel or one size can be
    (re)measured alone."""
    stored_path = Path(out_md).with_suffix(".json")
    if not stored_path.is_file():
        return rows
    stored = json.loads(stored_path.read_text())
    if isinstance(stored, list) or stored.get("dim") != dim or stored.get("fraction") != fraction:
        return rows  # an older format, or another setup: nothing comparable to keep
    ran = {(r["kernel"], r["n"]) for r in rows}
    kept = [r for r in stored["rows"] if (r["kernel"], r["n"]) not in ran and r["kernel"] in KERNELS]
    order = list(KERNELS)
    return sorted(kept + rows, key=lambda r: (order.index(r["kernel"]), r["n"]))


def _write(rows, out_md, *, dim, fraction, budget_s) -> None:
    mach = machine()
    threads = next((r["threads"] for r in rows if r.get("status") == "ok"), None)
    lines = ["## Scaling: pairwise kernels from 10k to 1M rows", "",
             f"Synthetic features: n rows x {dim} float32 dims, 10 equal classes (Gaussian blobs); every kernel runs "
             f"per class as the methods do: NFG radius-neighbour counts (cosine radius {NFG_RADIUS}, on random logit "
             f"gradients, so its prefilter's skip rate is that of this data, not of a trained model's), greedy "
             f"k-center, facility location and Gaussian kernel herding (the `kernel-herding` method: mean kernel "
             f"values on at most 4096 anchor rows, then one O(n_c d) update per pick) each picking {fraction:.0%} of "
             f"every class. Each size runs in a fresh "
             f"process; peak RSS is that process's maximum resident memory, data included. Sizes whose predicted "
             f"time exceeds the budget of {budget_s:.0f} s per run are skipped (prediction: last measured time x "
             f"(size ratio)^2).", "",
             "Measured by: " + "; ".join(
                 f"`{cmd}` at git {rev}, {', '.join(dict.fromkeys(r['kernel'] for r in group))} "
                 f"({min(r['date'] for r in group)} to {max(r['date'] for r in group)})"
                 for (cmd, rev), group in _by_run(rows)) + ". "
             f"{mach['cpu_count']} CPU cores, torch {mach['torch']} ({threads} threads); 1-minute load average at the "
             f"end of the last run {mach['loadavg_1m']:.1f} (shared machine, so times are rough).", "",
             "Peak RSS is the whole process (Python, torch, the data); the kernel's own share is the peak minus the "
             "peak before it started. For scale: one n x n float32 matrix, and one class's n_c x n_c one "
             "(n_c = n / 10, the largest block a per-class kernel could form).", "",
             "| kernel | rows | time (s) | peak RSS (GiB) | kernel's share (GiB) | data (GiB) | n_c x n_c (GiB) | "
             "n x n (GiB) | status |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        nn = r["n"] ** 2 * 4 / 2**30
        ncnc = (r["n"] // NUM_CLASSES) ** 2 * 4 / 2**30
        data = r["n"] * dim * 4 / 2**30
        if r["status"] == "ok":
            lines.append(f"| {r['kernel']} | {r['n']:,} | {r['seconds']:.3g} | {r['peak_rss'] / 2**30:.2f} | "
                         f"{(r['peak_rss'] - r['base_rss']) / 2**30:.2f} | {data:.2f} | {ncnc:,.2f} | {nn:,.1f} | ok |")
        else:
            lines.append(f"| {r['kernel']} | {r['n']:,} | - | - | - | {data:.2f} | {ncnc:,.2f} | {nn:,.1f} | "
                         f"{r['status']} |")
    lines.append("")
    png = Path(out_md).with_suffix(".png")
    if _plot(rows, png, dim):
        lines += [f"![kernel time and peak memory vs rows]({png.name})", ""]
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text("\n".join(lines))
    Path(out_md).with_suffix(".json").write_text(json.dumps({"dim": dim, "fraction": fraction, "rows": rows},
                                                            indent=1))  # the raw rows, to rebuild and merge from


def _by_run(rows) -> list[tuple[tuple[str, str], list[dict]]]:
    """Measured rows grouped by (command, git revision), in first-seen order."""
    groups: dict = {}
    for r in rows:
        if "git" in r:
            groups.setdefault((r.get("command") or "python -m benchmarks scaling", r["git"]), []).append(r)
    return list(groups.items())


def _plot(rows, png, dim) -> bool:
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name in dict.fromkeys(r["kernel"] for r in ok):
        rs = [r for r in ok if r["kernel"] == name]
        a1.plot([r["n"] for r in rs], [r["seconds"] for r in rs], marker="o", label=name)
        a2.plot([r["n"] for r in rs], [r["peak_rss"] / 2**30 for r in rs], marker="o", label=name)
    ns = sorted({r["n"] for r in rows})
    a2.plot(ns, [n * dim * 4 / 2**30 for n in ns], color="gray", linestyle=":", label="the features alone")
    for ax, title in ((a1, "time (s)"), (a2, "peak RSS (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True
