"""The pairwise methods' selection step at a million rows: wall time, peak memory, share of the GEMM rate.

Usage (from the repository root):
    python benchmarks/million.py [--rows 1000000] [--dim 512] [--methods kcenter craig ...]
                                 [--classes 10] [--threads 1] [--timeout-s 1500]
                                 [--out benchmarks/results/million.md]

Synthetic signals: `scaling.synthetic` features (n rows x `dim` float32, 10 equal classes of Gaussian
blobs) and random float32 logits (craig reads them; with `space="features"` it uses only the
features). Each method runs through `hf_coreset.methods.run` (the selection step of `select`, no
proxy), keeping 10% of each class, in a fresh process, with the options in `SETTINGS`: the
partitioned path (`partition_size`) for the methods that have one, at the size that met issue 13's
quality target fastest in benchmarks/results/partitioned.md, and the exact method otherwise. The same
process times a 2048^3 fp32 `torch.matmul` (`kernel_rates.gemm_rate`); "of GEMM" is the method's
counted FLOPs (`flops` below: the dense terms only, so a lower bound) per second over that rate.

`--classes m` runs only the first m of the 10 classes (the others get a budget of 0; the data is
still all n rows, so peak memory counts it): the classes are the same size and independent, so the
time of all 10 is projected as measured x 10 / m and marked so in the table. Use it for a method too
slow to run whole in the time at hand; a run that outlives `--timeout-s` is reported as stopped.

The objective ratio beside each partitioned row is read from partitioned.md (its largest class size
for the same method and partition size, where exact still ran), not measured here.
Only public imports of hf_coreset.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks import provenance, scaling  # noqa: E402
from benchmarks.kernel_rates import THREAD_VARS, gemm_rate  # noqa: E402
from benchmarks.seed_utils import in_fresh_process  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FRACTION = 0.1
ANCHORS = 4096  # kernel herding's mean-kernel anchor rows (gaussian_herding's default)
SETTINGS = {  # method -> options; partition sizes: the faster one meeting the target in partitioned.md
    "kcenter": {"partition_size": 5000},
    "craig": {"space": "features", "partition_size": 2000},
    "kernel-herding": {"partition_size": 2000},
    "herding": {"partition_size": 2000},
    "prototypes": {"partition_size": 2000},
}


def parts(n_c: int, k: int, size: int | None) -> int:
    """How many parts the partitioned path cuts a class into (`_common.partition_count`'s rule)."""
    return 1 if size is None or n_c <= size else max(1, min(-(-n_c // size), k))


ROUND2_ROWS = 4096  # the round-2 group bound, `_common.ROUND2_ROWS` (only public imports here)


def flops(method: str, n_c: int, k: int, d: int, options: dict) -> float | None:
    """Counted FLOPs for one class of n_c rows and k picks: matrix(-vector) products only."""
    m = parts(n_c, k, options.get("partition_size"))
    p, kp = n_c / m, k / m  # a part's rows and picks
    pool = min(n_c, 2 * k)  # round 2 works on the parts' 2 k_p candidates, in groups of about ROUND2_ROWS
    group = min(pool, ROUND2_ROWS)
    if method == "kcenter":
        return 2.0 * d * m * p * kp  # one matrix-vector product per pick, within its part
    if method in ("herding", "kernel-herding"):
        anchors = min(n_c, ANCHORS) if method == "kernel-herding" else 1
        if m == 1:
            return 2.0 * n_c * d * (anchors + (k if n_c > 4096 else n_c))  # a product per pick, or the kept matrix
        # round 1: each part's kept kernel (and mean kernel); round 2: each group's kept kernel, mean kernel to
        # the class's anchors and pull of the earlier groups' picks (k / 2 on average)
        return 2.0 * d * (m * p * (p + (min(p, ANCHORS) if anchors > 1 else 1)) + pool * (group + anchors + k / 2))
    if method == "craig":
        if m == 1:
            return 2.0 * n_c * n_c * d
        # dense passes of each part and of each round-2 group, A and B on the group's rows, the gains on the class
        return 2.0 * d * (m * p * p + pool * group + 2 * n_c * group / 2 + n_c * k)
    return None  # prototypes: k-means, iteration count data-dependent; not counted


def _child(method: str, n: int, dim: int, classes: int, threads: int, queue) -> None:
    import torch

    import hf_coreset
    from hf_coreset.budget import Budget
    from hf_coreset.signals import Checkpoint

    torch.set_num_threads(threads)
    x, labels = scaling.synthetic(n, dim)
    logits = np.random.default_rng(1).standard_normal((len(x), scaling.NUM_CLASSES), dtype=np.float32)
    signals = hf_coreset.Signals(labels=labels, num_classes=scaling.NUM_CLASSES,
                                 checkpoints={0: Checkpoint(epoch=0, features=x, logits=logits)})
    full = hf_coreset.make_budget(labels, fraction=FRACTION)
    per_class = np.where(np.arange(len(full.per_class)) < classes, full.per_class, 0)
    budget = Budget(total=int(per_class.sum()), per_class=per_class, classes=full.classes)
    rate = gemm_rate(torch, torch.device("cpu"))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    out = hf_coreset.methods.run(method, signals, budget, seed=0, epoch=0, **SETTINGS[method])
    seconds = time.perf_counter() - t0
    queue.put({"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               "base_rss": base, "gemm_flops": rate, "picks": len(out.indices), "info": out.info,
               "threads": torch.get_num_threads()})


def run_one(method: str, n: int, dim: int, classes: int, threads: int, timeout_s: float) -> dict:
    row = {"method": method, "n": n, "dim": dim, "classes_run": classes, "options": SETTINGS[method],
           "git": provenance.git_revision(), "date": provenance.now(), "command": provenance.command(),
           "load": os.getloadavg()[0]}  # other jobs on a shared machine slow the run and its GEMM alike
    row.update(in_fresh_process(_child, (method, n, dim, classes, threads), timeout_s,
                                env={v: str(threads) for v in THREAD_VARS}))
    if row["status"] == "ok":
        n_c = n // scaling.NUM_CLASSES
        k = max(1, int(round(FRACTION * n_c)))
        row["projected_s"] = row["seconds"] * scaling.NUM_CLASSES / classes
        count = flops(method, n_c, k, dim, SETTINGS[method])
        row["flops"] = None if count is None else classes * count
    return row


def reference_ratios(path: Path = RESULTS / "partitioned.md") -> dict:
    """(method, partition_size) -> (rows, ratios) from partitioned.md's largest class size at FRACTION kept,
    with its revision."""
    if not path.is_file():
        return {}
    text = path.read_text()
    rev = re.search(r"git revision: (\S+)", text)
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 13 or not cells[0].replace(",", "").isdigit() or cells[1] != f"{FRACTION:.0%}":
            continue
        rows, method, size = int(cells[0].replace(",", "")), cells[2], int(cells[3].replace(",", ""))
        if rows >= out.get((method, size), {"rows": -1})["rows"]:
            out[(method, size)] = {"rows": rows, "F": cells[8], "cost": cells[9], "radius": cells[10], "mmd": cells[11],
                                   "gap": cells[12].split()[0], "git": rev.group(1) if rev else "?"}
    return out


TARGET = {"kcenter": ("radius", "<= 1.1"), "craig": ("F", ">= 0.98"), "kernel-herding": ("mmd", "<= 1.1"),
          "herding": ("gap", "none in the issue"), "prototypes": ("cost", "none in the issue")}


def ratio_cell(method: str, options: dict, refs: dict) -> str:
    size = options.get("partition_size")
    if size is None:
        return "exact"
    ref = refs.get((method, size))
    if ref is None or method not in TARGET:
        return "not measured"
    key, target = TARGET[method]
    name = {"F": "F ratio", "radius": "radius ratio", "mmd": "MMD ratio", "gap": "mean-gap ratio",
            "cost": "k-medoid ratio"}[key]
    return f"{name} {ref[key]} (target {target}; {ref['rows']:,} rows/class, partitioned.md)"


def merge(rows: list[dict], out_json: Path) -> list[dict]:
    """`rows` plus stored rows of (method, n, dim) this run did not measure."""
    if not out_json.is_file():
        return rows
    ran = {(r["method"], r["n"], r["dim"]) for r in rows}
    kept = [r for r in json.loads(out_json.read_text()) if (r["method"], r["n"], r["dim"]) not in ran]
    order = list(SETTINGS)
    return sorted(kept + rows, key=lambda r: (order.index(r["method"]) if r["method"] in order else 99, r["n"]))


def write(rows: list[dict], out: Path) -> str:
    refs = reference_ratios()
    runs = {}
    for r in rows:
        runs.setdefault((r["command"], r["git"]), []).append(r)
    threads = next((r["threads"] for r in rows if r.get("status") == "ok"), None)
    mach = provenance.machine()
    lines = ["# The pairwise methods at a million rows", "",
             "Measured by: " + "; ".join(f"`{cmd}` at git {rev} ({', '.join(dict.fromkeys(r['method'] for r in g))}, "
                                         f"{min(r['date'] for r in g)} to {max(r['date'] for r in g)})"
                                         for (cmd, rev), g in runs.items()) + ".",
             f"{mach['cpu_count']} CPU cores, torch {mach['torch']}, {threads} torch thread(s) per run.", "",
             f"Selection step only (`hf_coreset.methods.run`, no proxy) on synthetic signals: n rows x d float32 "
             f"features in 10 equal classes (Gaussian blobs, `scaling.synthetic`), {FRACTION:.0%} of each class "
             "kept, one fresh process per row. Options: the partitioned path where a method has one, at the "
             "partition size that met issue 13's target fastest in the partitioned section, else exact. "
             "\"10 classes\" time: measured on all 10, or on the first m and x 10 / m (marked; classes are equal "
             "and independent, the data is all n rows either way, so peak RSS is the real one). \"GEMM\": a "
             "2048^3 fp32 matmul in the same process; \"of GEMM\": counted FLOPs (dense terms only, "
             "`benchmarks/million.py`) per second over it. Quality: the partitioned path's objective against "
             "exact, read from the partitioned section at the largest class size where exact ran (exact CRAIG "
             "and prototypes on a 100,000-row class would take about 20 and 35 minutes, their 30,000-row times x "
             "(10 / 3)^2). Load at start: the 1-minute load average when the run began (this machine has 2 cores; "
             "other jobs slow a run and its GEMM measurement alike, so compare a row's GEMM rate with a quiet "
             "run's).", "",
             "| method | rows x dims | options | classes timed | 10 classes (s) | <= 600 s | peak RSS (GiB) | "
             "GEMM (GFLOP/s) | of GEMM | quality vs exact | status | load at start |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---|---|---:|"]
    for r in rows:
        opts = ", ".join(f"{k}={v!r}" for k, v in r["options"].items()) or "exact"
        ratio = ratio_cell(r["method"], r["options"], refs)
        head = f"| {r['method']} | {r['n']:,} x {r['dim']} | {opts} | {r['classes_run']} |"
        load = f" {r['load']:.1f} |" if "load" in r else " - |"
        if r["status"] != "ok":
            lines.append(f"{head} - | no | - | - | - | {ratio} | {r['status']} |{load}")
            continue
        t = r["projected_s"]
        timed = (f"{t:,.0f}" if t >= 100 else f"{t:.3g}") + ("" if r["classes_run"] == scaling.NUM_CLASSES
                                                          else " (projected)")
        share = "" if r.get("flops") is None else f"{r['flops'] / r['seconds'] / r['gemm_flops']:.1%}"
        lines.append(f"{head} {timed} | {'yes' if t <= 600 else 'no'} | {r['peak_rss'] / 2**30:.2f} | "
                     f"{r['gemm_flops'] / 1e9:.0f} | {share} | {ratio} | ok |{load}")
    md = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return md


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--methods", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--classes", type=int, default=scaling.NUM_CLASSES,
                        help="run only the first CLASSES classes and project the time of all 10")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=1500.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "million.md")
    args = parser.parse_args(argv)
    if not 1 <= args.classes <= scaling.NUM_CLASSES:
        parser.error(f"--classes {args.classes}: pass a number of classes from 1 to {scaling.NUM_CLASSES}.")
    rows = []
    for method in args.methods:
        r = run_one(method, args.rows, args.dim, args.classes, args.threads, args.timeout_s)
        rows.append(r)
        print(method, r["status"], f"{r.get('seconds', math.nan):.1f} s", flush=True)
    print(write(merge(rows, args.out.with_suffix(".json")), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
