"""The partitioned path of kcenter, craig, kernel herding and herding against exact, on one class where exact still runs.

Usage (from the repository root):
    python benchmarks/partitioned.py [--sizes 10000,20000] [--parts 2000,5000] [--fractions 0.1] [--dim 512]
                                     [--methods kcenter craig kernel-herding herding]
                                     [--threads 1] [--out benchmarks/results/partitioned.md]

Synthetic data: one class of n rows x `dim` float32 dims, a mixture of 50 Gaussian blobs (so that a
random split cuts clusters), each fraction kept (10% by default; at 30% of 30,000 rows the round-1
candidates outnumber `ROUND2_ROWS` and round 2 runs in groups). Each method runs through
`hf_coreset.methods.run` with its `partition_size=None` (exact; the default, "auto", would partition
classes above the method's threshold) and with `partition_size` P, in this process, one after the
other: `kcenter`, `craig` with `space="features"` (facility location on the same 512-dim rows),
`kernel-herding`, `herding` and `prototypes` (k-means over every row: `easy=1.0`). Rows of a method
not run this time are kept from the previous run's JSON beside the table. Reported:
wall time of each, and the partitioned solution's quality against exact's, evaluated on the whole
class: the facility-location objective F(S) = sum_i max_{j in S} (c - d_ij) (`hf_coreset.ops.facility_gains`,
c = 2 max ||x||, as CRAIG's solver), the sum of each row's distance to its nearest pick (the part
of F that S changes, 1 - the F ratio magnified), the k-center covering radius max_i min_j d_ij, and
the maximum mean discrepancy between picks and class under kernel herding's Gaussian kernel
(bandwidth 1: exp(-d^2 / D), D the class's mean squared pairwise distance; float64 sums of float32
kernel blocks, the class-class term computed once per size), and the distance between the picks' mean
and the class's (herding's objective), with a random subset's for scale. Prototypes' own objective is the
k-medoid one: the nearest-pick distance ratio.
Only public imports of hf_coreset.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks import provenance  # noqa: E402

BLOBS = 50
METHODS = {"kcenter": {}, "craig": {"space": "features"}, "kernel-herding": {}, "herding": {}, "prototypes": {"easy": 1.0}}


def blobs(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """n rows x `dim` float32 dims around BLOBS random centres (also the data of benchmarks/peers.py)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((BLOBS, dim), dtype=np.float32) * 1.5
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x += centres[rng.integers(BLOBS, size=n)]
    return x


def synthetic(n: int, dim: int, seed: int = 0):
    import hf_coreset
    from hf_coreset.signals import Checkpoint

    x = blobs(n, dim, seed)
    labels = np.zeros(n, dtype=np.int64)
    return hf_coreset.Signals(labels=labels, num_classes=1, checkpoints={1: Checkpoint(
        epoch=1, features=x, logits=np.zeros((n, 1), dtype=np.float32))}), x  # logits: craig reads them, space='features' ignores them


def quality(x: np.ndarray, picks: np.ndarray) -> dict:
    """F, sum of nearest-pick distances and covering radius of `picks` on all rows, in blocks."""
    from hf_coreset.ops import FeatureKernel, facility_gains

    gains, _ = facility_gains(FeatureKernel(x, device="cpu"), picks)
    xt = torch.from_numpy(x)
    c = xt[torch.as_tensor(picks)]
    near = torch.cat([torch.cdist(xt[i:i + 4096], c).min(1).values for i in range(0, len(x), 4096)]).double()
    gap = float(np.linalg.norm(x[picks].astype(np.float64).mean(0) - x.astype(np.float64).mean(0)))
    return {"F": float(gains.sum()), "cost": float(near.sum()), "radius": float(near.max()), "gap": gap}


def mmd_terms(x: np.ndarray, block: int = 2048):
    """The class's kernel scale D and a function giving the MMD of picks against the whole class."""
    xt = torch.from_numpy(x)
    centred = xt.double() - xt.double().mean(0)
    scale = 2.0 * float((centred * centred).sum(1).mean())

    def mean_kernel(a: torch.Tensor, b: torch.Tensor) -> float:
        total = 0.0
        for i in range(0, len(a), block):
            d = torch.cdist(a[i:i + block], b).pow_(2)
            total += float(torch.exp(-d / scale).double().sum())
        return total / (len(a) * len(b))

    whole = mean_kernel(xt, xt)

    def mmd(picks: np.ndarray) -> float:
        s = xt[torch.as_tensor(picks)]
        return float(np.sqrt(max(mean_kernel(s, s) - 2 * mean_kernel(s, xt) + whole, 0.0)))

    return mmd


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def write(rows: list[tuple], out: Path, dim: int, threads: int) -> None:
    """The table of `rows` (each ending with its run's provenance lines) and of the rows kept in the JSON beside
    `out` for what `rows` does not measure again."""
    out_json = out.with_suffix(".json")
    if out_json.is_file():  # keep the rows of what this run did not measure
        ran = {(r[0], r[1], r[2], r[3]) for r in rows}
        rows = [tuple(r) for r in json.loads(out_json.read_text()) if (r[0], r[1], r[2], r[3]) not in ran] + rows
    order = list(METHODS)
    rows.sort(key=lambda r: (r[0], r[1], order.index(r[2]), r[3]))
    out_json.write_text(json.dumps(rows))
    lines = ["# Partitioned k-center, facility location, kernel herding, herding and prototypes against exact", "",
             "The partitioned path (`partition_size`) against exact greedy on one class of n rows x "
             f"{dim} dims (a mixture of {BLOBS} Gaussian blobs), the kept fraction in its column, "
             f"{threads} torch thread(s), CPU. Objectives on the whole class; see the script's docstring.\n"]
    for run in dict.fromkeys(r[-1] for r in rows):
        lines += [f"Rows of {', '.join(dict.fromkeys(r[2] for r in rows if r[-1] == run))}:", "", run]
    lines += ["| rows | kept | method | partition_size | parts | exact s | partitioned s | speed-up | F ratio | "
              "nearest-pick distance ratio | radius ratio | MMD ratio | mean-gap ratio (random's) |",
              "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, fraction, method, size, m, te, tp, f, cost, rad, mm, gap, random_gap, _ in rows:
        lines.append(f"| {n:,} | {fraction:.0%} | {method} | {size:,} | {m} | {te:.2f} | {tp:.2f} | {te / tp:.1f}x | "
                     f"{f:.4f} | {cost:.4f} | {rad:.3f} | {mm:.3f} | {gap:.3f} ({random_gap:.1f}) |")
    lines.append("\nTargets (issue 13): F ratio >= 0.98 for facility location (craig), radius ratio <= 1.1 for "
                 "k-center, MMD ratio <= 1.1 for kernel herding (its two rounds: 2 k_p candidates per part, then "
                 "the class's k among them matching the whole class, in groups of parts whose candidates fit "
                 "`ROUND2_ROWS` each going on from the earlier groups' picks). Herding has no target in the issue; its "
                 "column shows the mean gap against exact's, and a random subset's in brackets for scale. Each "
                 "method optimises only its own objective; the other columns show what it does to the others. The "
                 "F ratio is near 1 by construction (c n dominates F); the nearest-pick distance ratio (lower is "
                 "better, exact = 1) is the sharper comparison, and prototypes' own objective (k-medoid).\n")
    out.write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,20000")
    ap.add_argument("--parts", default="2000,5000")
    ap.add_argument("--fractions", default="0.1")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/partitioned.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import hf_coreset
    from hf_coreset import methods

    head = provenance.header()  # load average before the runs
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        signals, x = synthetic(n, args.dim)
        mmd = mmd_terms(x)
        for fraction in (float(f) for f in args.fractions.split(",")):
            budget = hf_coreset.make_budget(signals.labels, fraction=fraction)
            random_gap = quality(x, np.random.default_rng(0).choice(n, budget.total, replace=False))["gap"]
            for method in args.methods:
                opts = METHODS[method]
                exact, t_exact = timed(lambda: methods.run(method, signals, budget, epoch=1, partition_size=None, **opts))
                q_exact = {**quality(x, exact.indices), "mmd": mmd(exact.indices)}
                for size in (int(p) for p in args.parts.split(",")):
                    out, t = timed(lambda: methods.run(method, signals, budget, epoch=1, partition_size=size, **opts))
                    q = {**quality(x, out.indices), "mmd": mmd(out.indices)}
                    rows.append((n, fraction, method, size, out.info["partitioned"]["parts"]["0"], t_exact, t,
                                 q["F"] / q_exact["F"], q["cost"] / q_exact["cost"], q["radius"] / q_exact["radius"],
                                 q["mmd"] / q_exact["mmd"], q["gap"] / q_exact["gap"], random_gap / q_exact["gap"], head))
                    print(*rows[-1], flush=True)
    write(rows, Path(args.out), args.dim, args.threads)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
