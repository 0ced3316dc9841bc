"""Pairwise kernels against the machine's own GEMM rate, with k-center against a plain numpy loop.

Usage (from the repository root):
    python benchmarks/kernel_rates.py [--sizes 10000,30000,100000] [--threads 1,2] [--device cpu]
                                 [--budget-s 120] [--out benchmarks/results/kernels.md]

Synthetic data: n rows x 512 float32 dims in 10 equal classes (Gaussian blobs around random class
centres; for NFG and CRAIG-style kernels random logit gradients p - y). Every kernel runs per class as
the methods do, picking 10% of each class: greedy k-center (ours and a plain numpy Gonzalez loop on
the same data, with their pick agreement), herding, kernel herding (Gaussian kernel), facility
location, NFG radius-neighbour counts (radius 0.2), prototypes' k-means (k = 10% of the class, 20
Lloyd steps at most, then the row nearest each centre). Each (kernel, size, threads) runs in a fresh
process, so its peak RSS is its own. The same process times a 2048 x 2048 x 2048 fp32 `torch.matmul`
on the same device and thread count; "of GEMM" is the kernel's useful FLOP/s (the count below) over
that rate. A size whose predicted time (the last measured time x (size ratio)^2: each kernel's work
grows as n_c x k or n_c^2 with k proportional to n_c) exceeds the budget is skipped and reported with
its prediction. Only public imports of hf_coreset.

FLOPs counted (per class of n_c rows, k picks, d dims; C = 10 logits): k-center and herding 2 n_c d k
(one matrix-vector product per pick), kernel herding 2 n_c d (min(n_c, 4096) + k); up to 4,096 rows per
class the herdings keep their kernel matrix instead (herding 2 n_c^2 d for its Gram matrix, kernel
herding 2 n_c^2 d for the kernel its mean values are summed from), facility location
2 n_c^2 d (the dense pass of initial gains; the lazy re-evaluations are not counted, so its ratio is a
lower bound), NFG n_c^2 (C + d) (upper triangle, dense path), k-means 2 n_c d k x 3 (k-means++ seeding, the
first assignment and the nearest rows; the Lloyd steps, which stop when no assignment changes, are not
counted: a lower bound).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks import provenance, scaling  # noqa: E402
from benchmarks.seed_utils import in_fresh_process  # noqa: E402

NUM_CLASSES = 10
DIM = 512
FRACTION = 0.1
NFG_RADIUS = 0.2
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # numpy gets the same threads
KERNELS = ("kcenter", "kcenter_numpy", "herding", "kernel_herding", "facility_location", "nfg_counts", "kmeans")
KMEANS_ITERS = 20  # prototypes' default


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (n, dim) float32 sorted by class, labels, and logit gradients p - y (n, 10)."""
    rng = np.random.default_rng(seed)
    x, labels = scaling.synthetic(n, dim, rng=rng)  # the scaling benchmark's features; logits drawn after them
    return x, labels, scaling.logit_grads(rng, labels)


def numpy_gonzalez(x: np.ndarray, k: int, first: int) -> np.ndarray:
    """The plain numpy greedy k-center loop the library is compared with (lowest row on ties)."""
    sq = (x * x).sum(1)
    min_d = np.maximum(sq + sq[first] - 2.0 * (x @ x[first]), 0)
    min_d[first] = -1
    picks = [first]
    for _ in range(1, k):
        j = int(np.argmax(min_d))
        picks.append(j)
        np.minimum(min_d, np.maximum(sq + sq[j] - 2.0 * (x @ x[j]), 0), out=min_d)
        min_d[j] = -1
    return np.asarray(picks)


def flops(name: str, n_c: int, k: int, d: int) -> float:
    dense = n_c <= 4096  # the herdings keep their n_c x n_c kernel (hf_coreset.ops.greedy.DENSE_MAX_BYTES)
    if name in ("kcenter", "kcenter_numpy") or (name == "herding" and not dense):
        return 2.0 * n_c * d * k
    if name in ("herding", "kernel_herding") and dense:
        return 2.0 * n_c * n_c * d
    if name == "kernel_herding":
        return 2.0 * n_c * d * (min(n_c, 4096) + k)
    if name == "facility_location":
        return 2.0 * n_c * n_c * d
    if name == "kmeans":
        return 3 * 2.0 * n_c * d * k
    return float(n_c) * n_c * (NUM_CLASSES + d)


def gemm_rate(torch, device) -> float:
    """fp32 FLOP/s of a 2048^3 torch.matmul on `device` (best of 3 after a warm-up)."""
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    best = float("inf")
    for _ in range(4):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * 2048 ** 3 / best


def _child(name: str, n: int, dim: int, threads: int, device: str, queue) -> None:
    import torch

    from hf_coreset.ops import (FeatureKernel, facility_location, gaussian_herding, herding, kcenter_greedy, kmeans,
                                nearest_rows)
    from hf_coreset.ops.nfg import radius_neighbour_counts

    torch.set_num_threads(threads)
    dev = torch.device(device)
    x, _, e = synthetic(n, dim)
    per = n // NUM_CLASSES
    rate = gemm_rate(torch, dev)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    agree = []
    t0 = None
    for c in range(-1, NUM_CLASSES):  # class -1: a 64-row warm-up, untimed (torch's one-time op setup)
        if c == 0:
            t0 = time.perf_counter()
        xc, ec = (x[:64], e[:64]) if c < 0 else (x[c * per:(c + 1) * per], e[c * per:(c + 1) * per])
        k = max(1, int(round(FRACTION * len(xc))))
        if name == "kcenter":
            picks = kcenter_greedy(xc, k, first=0, device=dev)[0]
        elif name == "kcenter_numpy":
            picks = numpy_gonzalez(xc, k, 0)
        elif name == "herding":
            herding(xc, k, device=dev)
        elif name == "kernel_herding":
            gaussian_herding(xc, k, rng=np.random.default_rng(0), device=dev)
        elif name == "facility_location":
            facility_location(FeatureKernel(xc, device=dev), k)
        elif name == "kmeans":
            x64 = xc.astype(np.float64)  # prototypes clusters float64 rows
            centres, _ = kmeans(x64, k, iters=KMEANS_ITERS, rng=np.random.default_rng(0), device=dev)
            nearest_rows(x64, centres, device=dev)
        else:
            radius_neighbour_counts(ec, xc, NFG_RADIUS, device=dev)
        if name.startswith("kcenter") and c >= 0:
            agree.append(picks)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
           "base_rss": base, "gemm_flops": rate, "flops": NUM_CLASSES * flops(name, per, k, dim)}  # k: a class's
    if agree:
        out["picks"] = [p.tolist() for p in agree]
    queue.put(out)


def run_one(name: str, n: int, dim: int, threads: int, device: str, timeout_s: float) -> dict:
    return in_fresh_process(_child, (name, n, dim, threads, device), timeout_s,
                            env={v: str(threads) for v in THREAD_VARS})


def run(sizes, threads, device: str, budget_s: float, dim: int = DIM, log=print) -> list[dict]:
    rows = []
    for t in threads:
        for name in KERNELS:
            last = None
            for n in sorted(sizes):
                row = {"kernel": name, "n": n, "threads": t}
                if last is not None:
                    predicted = last["seconds"] * (n / last["n"]) ** 2
                    if predicted > budget_s:
                        rows.append({**row, "status": f"skipped: predicted {predicted:,.0f} s > {budget_s:.0f} s"})
                        log(f"{name} {n:,} x{t}: {rows[-1]['status']}")
                        continue
                r = {**row, **run_one(name, n, dim, t, device, timeout_s=3 * budget_s + 60)}
                rows.append(r)
                log(f"{name} {n:,} x{t}: {r['status']} {r.get('seconds', 0):.2f} s")
                last = {"n": n, "seconds": r["seconds"]} if r["status"] == "ok" else None
                if r["status"] != "ok":
                    break
    # pick agreement of ours with the numpy loop, same data and size
    for r in rows:
        if r["kernel"] == "kcenter" and "picks" in r:
            ref = next((q for q in rows if q["kernel"] == "kcenter_numpy" and q["n"] == r["n"] and "picks" in q), None)
            if ref is not None:
                same = sum(len(set(a) & set(b)) for a, b in zip(r["picks"], ref["picks"]))
                r["agreement"] = same / sum(len(a) for a in r["picks"])
                r["vs_numpy"] = ref["seconds"] / r["seconds"]
    for r in rows:
        r.pop("picks", None)
    return rows


def write(rows: list[dict], out: Path, device: str, budget_s: float) -> str:
    import torch

    lines = ["# Pairwise kernels: time, memory and share of the GEMM rate", "",
             provenance.header().rstrip(), f"- device: {device}", "",
             f"Synthetic data: n rows x {DIM} float32 dims, 10 equal classes (Gaussian blobs), each kernel per class "
             f"picking {FRACTION:.0%} of it, in a fresh process per row. \"GEMM\" is the fp32 rate of a 2048^3 "
             "`torch.matmul` measured in that process (same device, same threads); \"of GEMM\" is the kernel's "
             "counted FLOP/s over it (counts in `benchmarks/kernel_rates.py`; facility location counts only its dense "
             "pass and k-means its seeding, first assignment and nearest rows: lower bounds). k-center and herding are memory-bound matrix-vector products per pick, so a "
             "few percent is their physical ceiling (the herdings keep their kernel matrix up to 4,096 rows per "
             "class instead: a block GEMM); NFG, facility location and k-means' assignments are block GEMMs (k-means in float64: numpy on the CPU). `kcenter_numpy` "
             "is a plain numpy Gonzalez loop on the same data; agreement is the share of picks both make. "
             f"Sizes predicted to take over {budget_s:.0f} s are skipped (prediction: last time x (size ratio)^2). "
             "The machine is shared by several jobs, so times are rough and 2 threads may not beat 1.", ""]
    if torch.cuda.is_available() and device == "cpu":
        lines += ["A CUDA device is present: `--device cuda` runs the same table on it.", ""]
    elif device == "cpu":
        lines += ["No GPU on this machine: every number is CPU. The same command with `--device cuda` runs "
                  "the same table on a GPU; none was available for this run.", ""]
    lines += ["| kernel | rows | threads | time (s) | peak RSS (GiB) | GEMM (GFLOP/s) | of GEMM | vs numpy | "
              "agreement | status |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['kernel']} | {r['n']:,} | {r['threads']} | - | - | - | - | - | - | {r['status']} |")
            continue
        achieved = r["flops"] / r["seconds"]
        vs = f"{r['vs_numpy']:.2f}x" if "vs_numpy" in r else ""
        agree = f"{r['agreement']:.1%}" if "agreement" in r else ""
        lines.append(f"| {r['kernel']} | {r['n']:,} | {r['threads']} | {r['seconds']:.3g} | "
                     f"{r['peak_rss'] / 2**30:.2f} | {r['gemm_flops'] / 1e9:.0f} | {achieved / r['gemm_flops']:.1%} | "
                     f"{vs} | {agree} | ok |")
    md = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"device": device, "dim": DIM, "rows": rows}, indent=1))
    return md


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,30000,100000", help="comma-separated row counts")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--device", default="cpu", help="torch device for the library's kernels (cpu, cuda)")
    parser.add_argument("--budget-s", type=float, default=120.0, help="skip sizes predicted to take longer")
    parser.add_argument("--dim", type=int, default=DIM, help=argparse.SUPPRESS)  # tests: a tiny run
    parser.add_argument("--out", default="benchmarks/results/kernels.md")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    rows = run(sizes, threads, args.device, args.budget_s, dim=args.dim)
    write(rows, Path(args.out), args.device, args.budget_s)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
