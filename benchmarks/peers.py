"""Facility location against apricot-select and submodlib-py, k-center against a plain numpy loop, on the same data.

Usage (from the repository root; the peers come with `pip install -e ".[bench]"`):
    python benchmarks/peers.py [--sizes 2000,5000,10000] [--dim 512] [--threads 1]
                               [--out benchmarks/results/peers.md]

Synthetic data: one class of n rows x `dim` float32 dims, the mixture of 50 Gaussian blobs of
benchmarks/partitioned.py, 10% kept (k = n / 10). Every library runs in this process on the same
array, one after the other, with `threads` threads each: torch's, numpy's BLAS and any OpenMP pool
(threadpoolctl), numba's (apricot). Each size runs once; a 200-row round first warms every library up.

Facility location, F(S) = sum_i max_{j in S} (c - d_ij), d Euclidean, c = 2 max ||x|| + 1e-6 (the
similarity of `hf_coreset.ops.facility_location`, CRAIG's solver; any c >= max d gives the same greedy
picks). Ours: `facility_location(FeatureKernel(x, device="cpu"), k)`: lazy greedy, float32 similarity
blocks, float64 gains, keeping the n x n similarity matrix up to n = 16,384; the row `hf_coreset
dense=False` times the path it takes above that size (columns recomputed per re-evaluation). Neither
peer computes this similarity itself (apricot's `metric="euclidean"` uses squared distances,
submodlib's a Gaussian kernel of the squared distance), so both get the same dense float64 matrix
c - D, built by one numpy function whose time is added to each peer's: apricot
`FacilityLocationSelection(k, metric="precomputed", optimizer="lazy")`, submodlib
`FacilityLocationFunction(mode="dense", sijs=...)` maximised with `LazyGreedy` (its C++ side takes
float32: the binding converts the matrix, within its time). All four are exact greedy on the same
objective, so their picks may differ only where two candidates' gains are within rounding of each other.

k-center (Gonzalez): ours `kcenter_greedy(x, k, first=0, device="cpu")` against `numpy_gonzalez` of
benchmarks/kernel_rates.py (float32, lowest row on ties), same first center.

Reported per size and library: wall time and its ratio to ours; pick agreement with ours (shared
picks / k, and the length of the common prefix of the two greedy orders); the objective of each
selection by one shared float64 numpy function (`quality`): F, the sum of each row's distance to its
nearest pick (the part of F a selection changes; F's ratio is near 1 by construction since n c
dominates it) and the covering radius max_i min_j d_ij (k-center's objective). At the first pick where
a peer leaves our order, the float64 gains of the two candidates given the shared prefix are compared
(a relative gap near 1e-7 is a float32 near-tie in our similarity blocks, not a different algorithm).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks import provenance  # noqa: E402
from benchmarks.kernel_rates import numpy_gonzalez  # noqa: E402
from benchmarks.partitioned import BLOBS, blobs  # noqa: E402

FRACTION = 0.1
PEERS = ("apricot", "submodlib")  # module names; pip names apricot-select and submodlib-py
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(threads: int) -> str:
    """Give torch, numpy's BLAS, OpenMP and numba `threads` threads each; say how numpy's were set."""
    os.environ.update({v: str(threads) for v in THREAD_VARS})  # for libraries imported from here on (numba)
    torch.set_num_threads(threads)
    try:
        import numba

        numba.set_num_threads(threads)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # numpy was imported before the variables were set, so its BLAS keeps its own count
        return "numpy BLAS threads not limited (threadpoolctl is not installed)"
    threadpool_limits(limits=threads)
    return f"{threads} thread(s) for torch, numpy's BLAS, OpenMP and numba"


def unavailable(module: str) -> str | None:
    """None when `module` imports, otherwise why not ("not installed" or the import error)."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        return "not installed" if err.name == module else f"import fails: {err}"
    except Exception as err:  # e.g. a numba built for another numpy
        return f"import fails: {type(err).__name__}: {err}"
    return None


def peer_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def offset(sq: np.ndarray) -> float:
    """c of the similarity c - d: 2 max ||x|| + 1e-6, as `hf_coreset.ops.facility_location` sets it."""
    return 2.0 * float(np.sqrt(sq.max())) + 1e-6


def similarity_matrix(x: np.ndarray) -> np.ndarray:
    """The dense float64 n x n similarity c - ||x_i - x_j|| handed to both peers."""
    x64 = x.astype(np.float64)
    sq = (x64 * x64).sum(1)
    s = x64 @ x64.T
    s *= -2.0
    s += sq[:, None]
    s += sq[None, :]
    np.maximum(s, 0.0, out=s)
    np.sqrt(s, out=s)
    np.subtract(offset(sq), s, out=s)
    return s


def quality(x: np.ndarray, picks, block: int = 2048) -> dict:
    """F, the sum of nearest-pick distances and the covering radius of `picks` over all rows (float64)."""
    x64 = x.astype(np.float64)
    sq = (x64 * x64).sum(1)
    p = x64[np.asarray(picks)]
    near = np.empty(len(x))
    for i in range(0, len(x), block):
        d2 = sq[i:i + block, None] + sq[np.asarray(picks)][None, :] - 2.0 * (x64[i:i + block] @ p.T)
        near[i:i + block] = np.sqrt(np.maximum(d2.min(1), 0.0))
    cost = float(near.sum())
    return {"F": len(x) * offset(sq) - cost, "cost": cost, "radius": float(near.max())}


def agreement(picks, ours) -> dict:
    """Shared picks / k and the length of the common prefix of the two pick orders."""
    picks, ours = list(map(int, picks)), list(map(int, ours))
    prefix = next((i for i, (a, b) in enumerate(zip(picks, ours)) if a != b), min(len(picks), len(ours)))
    return {"shared": len(set(picks) & set(ours)) / len(ours), "prefix": prefix}


def divergence_gap(s: np.ndarray, picks, ours, prefix: int) -> float | None:
    """(peer's gain - our gain) / our gain at the first differing pick, both in float64 on `s`."""
    if prefix >= min(len(picks), len(ours)):
        return None
    current = s[list(ours[:prefix])].max(0) if prefix else np.zeros(len(s))
    gain = [float(np.maximum(s[j] - current, 0.0).sum()) for j in (picks[prefix], ours[prefix])]
    return (gain[0] - gain[1]) / gain[1]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def ours_fl(x: np.ndarray, k: int, dense: bool | None = None) -> np.ndarray:
    from hf_coreset.ops import FeatureKernel, facility_location

    return facility_location(FeatureKernel(x, device="cpu"), k, dense=dense)[0]


def apricot_fl(s: np.ndarray, k: int) -> np.ndarray:
    from apricot import FacilityLocationSelection

    return np.asarray(FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(s).ranking,
                      dtype=np.int64)


def submodlib_fl(s: np.ndarray, k: int) -> np.ndarray:
    from submodlib import FacilityLocationFunction

    f = FacilityLocationFunction(n=len(s), mode="dense", separate_rep=False, sijs=s)
    out = f.maximize(budget=k, optimizer="LazyGreedy", stopIfZeroGain=False, stopIfNegativeGain=False,
                     verbose=False, show_progress=False)
    return np.asarray([j for j, _ in out], dtype=np.int64)


PEER_FL = {"apricot": apricot_fl, "submodlib": submodlib_fl}


def facility_rows(x: np.ndarray, k: int, peers, blocked: bool) -> tuple[list[dict], dict]:
    """One row per library (ours first; with `blocked`, ours without the kept matrix next), and the
    peers' agreement with each other."""
    ours, t_ours = timed(lambda: ours_fl(x, k))
    q_ours = quality(x, ours)
    rows = [{"library": "hf_coreset", "status": "ok", "seconds": t_ours, **q_ours, "picks": ours.tolist()}]
    if blocked:
        picks, t = timed(lambda: ours_fl(x, k, dense=False))
        rows.append({"library": "hf_coreset dense=False", "status": "ok", "seconds": t, **quality(x, picks),
                     **agreement(picks, ours), "picks": picks.tolist()})
    missing = {p: unavailable(p) for p in peers}
    s, t_build = (timed(lambda: similarity_matrix(x)) if any(v is None for v in missing.values())
                  else (None, None))
    for peer in peers:
        if missing[peer]:
            rows.append({"library": peer, "status": missing[peer]})
            continue
        picks, t = timed(lambda: PEER_FL[peer](s, k))
        agree = agreement(picks, ours)
        rows.append({"library": peer, "status": "ok", "seconds": t_build + t, "build_seconds": t_build,
                     **quality(x, picks), **agree, "gap": divergence_gap(s, picks, ours, agree["prefix"]),
                     "picks": picks.tolist()})
    done = [r for r in rows if r["library"] in peers and r["status"] == "ok"]
    between = agreement(done[1]["picks"], done[0]["picks"]) if len(done) == 2 else {}
    return rows, between


def kcenter_rows(x: np.ndarray, k: int) -> list[dict]:
    from hf_coreset.ops import kcenter_greedy

    ours, t_ours = timed(lambda: kcenter_greedy(x, k, first=0, device="cpu")[0])
    loop, t_loop = timed(lambda: numpy_gonzalez(x, k, 0))
    return [{"library": "hf_coreset", "status": "ok", "seconds": t_ours, **quality(x, ours), "picks": ours.tolist()},
            {"library": "numpy loop", "status": "ok", "seconds": t_loop, **quality(x, loop),
             **agreement(loop, ours), "picks": loop.tolist()}]


def compare(x: np.ndarray, fraction: float = FRACTION, peers=PEERS, blocked: bool = True) -> dict:
    """Every library on the rows of `x`, keeping `fraction` of them (the script's core, one size)."""
    k = max(1, int(round(fraction * len(x))))
    fl, between = facility_rows(x, k, peers, blocked)
    kc = kcenter_rows(x, k)
    for rows in (fl, kc):
        for r in rows[1:]:
            if r["status"] == "ok":
                r.update(time_ratio=r["seconds"] / rows[0]["seconds"], F_ratio=r["F"] / rows[0]["F"],
                         cost_ratio=r["cost"] / rows[0]["cost"], radius_ratio=r["radius"] / rows[0]["radius"])
    return {"n": len(x), "k": k, "facility_location": fl, "peers_between": between, "kcenter": kc}


def _cell(r: dict, key: str, fmt: str) -> str:
    return format(r[key], fmt) if r.get(key) is not None else ""


def _off_one(r: dict, key: str) -> str:
    """A ratio as its distance from 1 (the objectives agree to ~1e-11, beyond a ratio's printed digits)."""
    return "" if r.get(key) is None else "0" if r[key] == 1.0 else f"{r[key] - 1:+.1e}"


def markdown(results: list[dict], head: str, threads_note: str, warm: dict, dim: int) -> str:
    lines = ["# Facility location and k-center against apricot, submodlib and a numpy loop", "",
             f"The same data for every library in one run: one class of n rows x {dim} float32 dims (a mixture of "
             f"{BLOBS} Gaussian blobs), {FRACTION:.0%} kept, CPU, {threads_note}. Peers get the dense float64 "
             "similarity c - d (the objective ours maximises); its build time is part of each peer's time. "
             "Objectives by one shared float64 function; see the script's docstring.\n", head,
             "## Facility location\n",
             "| rows | k | library | time (s) | of which c - D build (s) | time / ours | shared picks | "
             "common prefix | F / ours - 1 | nearest-pick distance sum / ours - 1 | gain gap at first divergence |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        for r in res["facility_location"]:
            if r["status"] != "ok":
                lines.append(f"| {res['n']:,} | {res['k']:,} | {r['library']} | {r['status']} |  |  |  |  |  |  |  |")
                continue
            lines.append(f"| {res['n']:,} | {res['k']:,} | {r['library']} | {r['seconds']:.2f} | "
                         f"{_cell(r, 'build_seconds', '.2f')} | {_cell(r, 'time_ratio', '.2f')} | "
                         f"{_cell(r, 'shared', '.3f')} | {r.get('prefix', '')} | {_off_one(r, 'F_ratio')} | "
                         f"{_off_one(r, 'cost_ratio')} | {_cell(r, 'gap', '.1e')} |")
    between = [f"{res['n']:,} rows: {b['shared']:.3f} shared, common prefix {b['prefix']}"
               for res in results if (b := res["peers_between"])]
    if between:
        lines.append("\napricot against submodlib (the same matrix, float64 in apricot, float32 in submodlib): " + "; ".join(between) + ".")
    if warm.get("apricot") is not None:
        lines.append(f"\napricot builds and compiles its numba gain functions inside every `fit` (eager signatures "
                     f"in `_initialize`), so each fit pays a fixed cost: {warm['apricot']:.2f} s for the 200-row "
                     "warm-up fit of this run.")
    lines += ["\n## k-center\n",
              "| rows | k | library | time (s) | time / ours | shared picks | common prefix | covering radius / ours - 1 |",
              "|---:|---:|---|---:|---:|---:|---:|---:|"]
    for res in results:
        for r in res["kcenter"]:
            lines.append(f"| {res['n']:,} | {res['k']:,} | {r['library']} | {r['seconds']:.2f} | "
                         f"{_cell(r, 'time_ratio', '.2f')} | {_cell(r, 'shared', '.3f')} | {r.get('prefix', '')} | "
                         f"{_off_one(r, 'radius_ratio')} |")
    lines.append("\nTime / ours above 1 means the other library is slower. Objective ratios are printed as their "
                 "distance from 1: F is maximised (positive: better than ours), the distance sum and the radius minimised "
                 "(negative: better than ours). Ratios within "
                 "~1e-10 of 1 with agreement below 1 mean the selections part only at near-ties, as the gain gap at "
                 "the first divergence (relative, float64, positive: the peer's pick gains more) confirms.\n")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,5000,10000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/peers.md")
    args = ap.parse_args(argv)
    threads_note = limit_threads(args.threads)
    head = provenance.header()  # load average before the runs
    warm_up = compare(blobs(200, args.dim, seed=1))  # untimed: imports, torch's op setup, numba's first compile
    warm = {r["library"]: r.get("seconds", 0.0) - r.get("build_seconds", 0.0)
            for r in warm_up["facility_location"] if r["status"] == "ok"}
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        results.append(compare(blobs(n, args.dim)))
        for key in ("facility_location", "kcenter"):
            for r in results[-1][key]:
                print(n, key, r["library"], r["status"], *(f"{m}={r[m]:.4g}" for m in
                      ("seconds", "time_ratio", "shared", "prefix", "cost_ratio", "radius_ratio", "gap")
                      if r.get(m) is not None), flush=True)
    out = Path(args.out)
    end_load = os.getloadavg()[0]  # the machine is shared: the load can change during the run
    out.write_text(markdown(results, head, threads_note, warm, args.dim)
                   + f"\nLoad average {end_load:.1f} at the end of the run (1 minute).\n")
    versions = {dist: peer_version(dist) for dist in ("apricot-select", "submodlib-py")}
    out.with_suffix(".json").write_text(json.dumps(
        {"command": provenance.command(), "date": provenance.now(), "git": provenance.git_revision(),
         "machine": provenance.machine(), "end_loadavg_1m": end_load, "threads": threads_note, "peer_versions": versions, "warm_up": warm,
         "results": results}, indent=1) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
