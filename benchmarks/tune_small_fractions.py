"""Validation studies for the small-fraction methods (coverage, prototypes, schedule) and `auto`.

Tuning never sees the MNIST-1D test split: the 40k train split is cut (fixed permutation, seed 0)
into a 32k selection part and an 8k validation part; every candidate selects from the 32k part
(a proxy: the ConvNet trained 10 epochs, Adam lr 1e-2, batch 128) and a
fresh ConvNet trains on its rows with the library's protocol (hf_coreset.evaluation.train_convnet:
Adam lr 1e-2 cosine to 0, batch 128, `--epochs` epochs over the subset), scored on the 8k part.
Selection seed = training seed, and by default also the proxy's seed (`--proxy-seed N` fixes it
for every cell, as the first studies did). Cells are appended to a JSON-lines file (`--cells`), each with the
command and git revision that made it, so an interrupted study resumes; the markdown next to it is
rebuilt from all its cells each time, with every candidate's margin over random paired by seed.

Three studies are stored: `auto_validation.jsonl` (the default; the study behind `auto` version 2,
a proxy per seed), `auto_validation_fixed_proxy.jsonl` (its first pass, proxy seed 0 for every
cell: `--proxy-seed 0 --cells ...`) and `tuning_small_fractions.jsonl` (the first, smaller study
behind the `prototypes` and `coverage` defaults, also `--proxy-seed 0`).

    python benchmarks/tune_small_fractions.py --fractions 0.05 --seeds 0 1 2 3 4
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
from benchmarks.provenance import git_revision, machine, now  # noqa: E402
from hf_coreset import methods  # noqa: E402
from hf_coreset.budget import make_budget  # noqa: E402
from hf_coreset.data.mnist1d import load_mnist1d, make_convnet  # noqa: E402
from hf_coreset.evaluation import accuracy, arrays, train_convnet  # noqa: E402
from hf_coreset.proxy import ProxyConfig, run_proxy  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEFAULT_CELLS = RESULTS / "auto_validation.jsonl"
PROXY = {"optimizer": "adam", "lr": 1e-2, "batch_size": 128}

# name -> (method, options). "ccs-*" = coverage over a score; "random-cutX" = coverage with one stratum,
# i.e. uniform over the rows left after cutting the hardest X (EL2N); "proto" = prototypes
# ("proto-random" keeps a random member of each cluster instead of the row nearest its centre).
CANDIDATES = {
    "random": ("random", {}),
    "kcenter": ("kcenter", {}),
    "herding": ("herding", {}),
    "kherding": ("kernel-herding", {}),
    "kherding-bw0.3": ("kernel-herding", {"bandwidth": 0.3}),
    "kherding-bw3": ("kernel-herding", {"bandwidth": 3.0}),
    "el2n": ("el2n", {}),
    "grand": ("grand", {}),
    "entropy": ("entropy", {}),
    "forgetting": ("forgetting", {}),
    "ccs-el2n": ("coverage", {"score": "el2n", "cut": 0.0}),
    "ccs-el2n-cut0.1": ("coverage", {"score": "el2n", "cut": 0.1}),
    "ccs-forgetting": ("coverage", {"score": "forgetting", "cut": 0.0}),
    "schedule-el2n": ("schedule", {}),
    "random-cut0.1": ("coverage", {"strata": 1, "cut": 0.1}),
    "random-cut0.3": ("coverage", {"strata": 1, "cut": 0.3}),
    "random-cut0.5": ("coverage", {"strata": 1, "cut": 0.5}),
    "ccs-el2n-cut0.3": ("coverage", {"score": "el2n", "cut": 0.3}),
    "ccs-el2n-cut0.5": ("coverage", {"score": "el2n", "cut": 0.5}),
    "proto": ("prototypes", {"easy": 1.0}),
    "proto-easy0.9": ("prototypes", {"easy": 0.9}),
    "proto-easy0.5": ("prototypes", {"easy": 0.5}),
    "proto-norm": ("prototypes", {"easy": 1.0, "normalize": True}),
    "proto-ep3": ("prototypes", {"epoch": 3, "easy": 1.0}),
    "proto-ep1": ("prototypes", {"epoch": 1, "easy": 1.0}),
    "proto-ep0": ("prototypes", {"epoch": 0, "easy": 1.0}),
    "proto-ep0-norm": ("prototypes", {"epoch": 0, "easy": 1.0, "normalize": True}),
    "proto-ep3-easy0.5": ("prototypes", {"epoch": 3, "easy": 0.5}),
    "proto-random": ("prototypes", {"easy": 1.0, "keep": "random"}),
    "proto-random-easy0.9": ("prototypes", {"easy": 0.9, "keep": "random"}),
}
# The invocations behind the first study's cells (tuning_small_fractions.jsonl), which predate the
# per-cell "command" field; CPU time was short, so candidates that lost clearly at seed 0 were not
# repeated, and runs 1 and 6 were stopped early to reorder the queue.
FIRST_STUDY_RUNS = (
    "--fractions 0.01 0.05 --seeds 0 1",
    "--fractions 0.01 0.05 --seeds 0 --candidates random-cut0.1 random-cut0.3 random-cut0.5 ccs-el2n-cut0.3 "
    "proto-easy0.9",
    "--fractions 0.01 0.05 --seeds 0 --candidates proto-ep0 proto-ep1 proto-ep0-norm",
    "--fractions 0.01 --seeds 1 --candidates proto-easy0.9 proto-ep1 proto-ep0-norm random-cut0.5",
    "--fractions 0.05 --seeds 1 --candidates random proto proto-ep1 ccs-el2n-cut0.3 proto-easy0.9",
    "--fractions 0.1 --seeds 0 1 --candidates random proto-ep1 proto ccs-el2n-cut0.3",
    "--fractions 0.1 --seeds 1 --candidates ccs-el2n-cut0.3",
    "--fractions 0.1 --seeds 0 --candidates proto-easy0.9",
    "--fractions 0.01 --seeds 1 2 --candidates random proto-easy0.9 ccs-el2n-cut0.3",
    "--fractions 0.05 --seeds 2 --candidates random proto-easy0.9 ccs-el2n-cut0.3",
    "--fractions 0.3 --seeds 0 --candidates random entropy el2n",
    "--fractions 0.3 --seeds 1 --candidates random entropy",
)
# The proxy collects what every candidate may use; features also at epochs 0, 1 and 3 for the proto-ep* ones.
NEEDS = ({e: frozenset({"correct"}) for e in range(1, 11)}
         | {e: frozenset({"features"}) for e in (0, 1, 3, 10)})


def load_cells(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def paired_margin(cells: list[dict], fraction: float, name: str) -> tuple[float, float, int]:
    """Mean and standard deviation (points) of acc(name) - acc(random) over the seeds both ran."""
    acc = {(c["candidate"], c["seed"]): c["acc"] for c in cells if c["fraction"] == fraction}
    diffs = [100 * (acc[(name, s)] - acc[("random", s)]) for (n, s) in acc if n == name and ("random", s) in acc]
    if not diffs:
        return float("nan"), float("nan"), 0
    return float(np.mean(diffs)), float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan"), len(diffs)


def render(cells: list[dict], header: str) -> str:
    fractions = sorted({c["fraction"] for c in cells})
    names = [n for n in CANDIDATES if any(c["candidate"] == n for c in cells)]
    lines = [header, "", "Validation accuracy (%) on the 8k held-out part of the train split, mean ± std over seeds "
             "(n = number of seeds); Δ = mean minus random's mean at that fraction; the best mean per fraction "
             "is in bold.", "",
             "| candidate | method, options | " + " | ".join(f"{f:.0%}" for f in fractions) + " |",
             "|---|---|" + "---|" * len(fractions)]
    rnd = {f: np.mean([c["acc"] for c in cells if c["fraction"] == f and c["candidate"] == "random"] or [np.nan])
           for f in fractions}
    best = {}
    for f in fractions:
        means = {n: np.mean([c["acc"] for c in cells if c["fraction"] == f and c["candidate"] == n])
                 for n in names if any(c["fraction"] == f and c["candidate"] == n for c in cells)}
        best[f] = max(means, key=means.get) if means else None
    for n in names:
        method, opts = CANDIDATES[n]
        row = [n, f"`{method}` {json.dumps(opts) if opts else ''}".strip()]
        for f in fractions:
            accs = [c["acc"] for c in cells if c["fraction"] == f and c["candidate"] == n]
            if not accs:
                row.append("-")
                continue
            m, s = 100 * np.mean(accs), 100 * np.std(accs)
            cell = f"{m:.1f} ± {s:.1f} (Δ {m - 100 * rnd[f]:+.1f}, n={len(accs)})"
            row.append(f"**{cell}**" if best[f] == n else cell)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Margin over random paired by seed (points): mean ± sample std of acc(candidate, seed) - "
              "acc(random, seed) over the seeds both ran, and t = mean / (std / sqrt(n)), the paired "
              "t statistic (|t| > 2.8 is about p < 0.05 two-sided at n = 5).", "",
              "| candidate | " + " | ".join(f"{f:.0%}" for f in fractions) + " |", "|---|" + "---|" * len(fractions)]
    for n in names:
        if n == "random":
            continue
        row = [n]
        for f in fractions:
            m, s, k = paired_margin(cells, f, n)
            if k == 0:
                row.append("-")
            elif k == 1 or not s > 0:
                row.append(f"{m:+.1f} (n={k})")
            else:
                row.append(f"{m:+.1f} ± {s:.1f}, t = {m / (s / np.sqrt(k)):+.1f} (n={k})")
        lines.append("| " + " | ".join(row) + " |")
    secs = {}
    for c in cells:
        secs.setdefault(c["candidate"], []).append(c["select_s"])
    lines += ["", "Selection time from cached signals (s, mean over cells): " +
              ", ".join(f"{n} {np.mean(secs[n]):.2f}" for n in names), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--epochs", type=int, default=100, help="training epochs over each subset (protocol: 100)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--proxy-seed", type=int, default=None,
                    help="train one proxy with this seed for every cell (the first studies used 0); by default "
                         "each seed trains its own proxy (proxy seed = selection seed = training seed), so a "
                         "deterministic method's selection varies across seeds as random's does")
    ap.add_argument("--cells", type=Path, default=DEFAULT_CELLS,
                    help="JSON-lines file of the study; the report is written next to it as .md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.cells.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(sys.argv[1:])

    train = load_mnist1d()["train"]
    perm = np.random.default_rng(0).permutation(train.num_rows)
    part, val = train.select(np.sort(perm[:32000])), train.select(np.sort(perm[32000:]))
    x, y = arrays(part)
    xv, yv = arrays(val)
    labels = np.asarray(y.numpy(), dtype=np.int64)
    done = {(c["candidate"], c["fraction"], c["seed"], c["epochs"], c.get("proxy_seed", 0))
            for c in load_cells(args.cells)}
    proxy_seed = (lambda seed: seed) if args.proxy_seed is None else (lambda seed: args.proxy_seed)
    todo = [(s, f, n) for s in args.seeds for f in args.fractions for n in args.candidates
            if (n, f, s, args.epochs, proxy_seed(s)) not in done]
    rev = git_revision()
    signals, signals_seed = None, None
    for seed, fraction, name in todo:  # seed-major, so each proxy trains once
        if signals_seed != proxy_seed(seed):
            t0 = time.perf_counter()
            signals, _ = run_proxy(make_convnet(proxy_seed(seed)), part, labels, 10, NEEDS,
                                   config=ProxyConfig.coerce(PROXY), seed=proxy_seed(seed), label_column="label",
                                   progress=False)
            signals_seed = proxy_seed(seed)
            print(f"proxy seed {signals_seed}: signals ready in {time.perf_counter() - t0:.0f} s", flush=True)
        budget = make_budget(labels, fraction=fraction, num_classes=10)
        method, opts = CANDIDATES[name]
        spec = methods.get(method)
        t1 = time.perf_counter()
        out = spec.fn(signals, budget, rng=np.random.default_rng(seed), **spec.check_options(dict(opts)))
        sel_s = time.perf_counter() - t1
        idx = torch.as_tensor(np.asarray(out.indices, dtype=np.int64))
        assert len(np.unique(out.indices)) == budget.total
        model = train_convnet(x[idx], y[idx], epochs=args.epochs, seed=seed)
        acc = accuracy(model, xv, yv)
        cell = {"candidate": name, "fraction": fraction, "seed": seed, "epochs": args.epochs, "acc": acc,
                "select_s": sel_s, "train_s": time.perf_counter() - t1 - sel_s, "command": command, "git": rev,
                "proxy_seed": proxy_seed(seed)}
        with args.cells.open("a") as f:
            f.write(json.dumps(cell) + "\n")
        print(f"{fraction:.2f} seed {seed} {name:20s} {100 * acc:.2f}", flush=True)

    cells = [c for c in load_cells(args.cells) if c["epochs"] == args.epochs]
    commands = list(dict.fromkeys(c.get("command") for c in cells))
    if None in commands:  # cells of the first study, made before cells recorded their command
        commands = [r for r in FIRST_STUDY_RUNS] + [c for c in commands if c is not None]
    revisions = sorted({c.get("git") for c in cells if c.get("git")}) or ["d301f10 and earlier (not recorded)"]
    try:
        shown = args.cells.resolve().relative_to(RESULTS.parent.parent.resolve())
    except ValueError:
        shown = args.cells
    report = args.cells.with_suffix(".md")
    proxy_seeds = sorted({c.get("proxy_seed", 0) for c in cells})
    mach = machine()
    per_seed = all(c.get("proxy_seed", 0) == c["seed"] for c in cells) and len(proxy_seeds) > 1
    header = "\n".join([
        f"# Validation study `{args.cells.stem}` (validation split only)", "",
        f"Cells accumulate in `{shown}`; this table shows every stored cell with {args.epochs} training epochs. "
        "They come from these runs of `PYTHONPATH=. python benchmarks/tune_small_fractions.py`, in order: "
        + "; ".join(f"`{r}`" for r in commands) + ".",
        f"Rebuilt: {now()}. Machine: {mach['cpu_count']} "
        f"cores, {mach['arch']}, torch {mach['torch']}, {args.threads} torch thread(s). Git revision(s) of "
        f"the cells: {', '.join(revisions)}.",
        "Protocol: MNIST-1D 40k train split cut into 32k (selection) + 8k (validation), permutation seed 0; "
        "the test split is never used. Proxy: ConvNet, Adam lr 1e-2, batch 128, 10 epochs (features at epochs "
        "0 = the untrained ConvNet, 1, 3 and 10). Subset training: `train_convnet`, "
        f"{args.epochs} epochs; selection seed = training seed. Proxy seed: "
        + ("= the seed, so every seed re-draws proxy, selection and training." if per_seed else
           f"{', '.join(map(str, proxy_seeds))} for every cell, so a deterministic method keeps one selection "
           "and only its training seed varies.")])
    report.write_text(render(cells, header))
    print(report.read_text())


if __name__ == "__main__":
    main()
