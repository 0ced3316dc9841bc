"""CRAIG's selections trained with and without its cluster-size weights, on the quality protocol.

The quality grid trains CRAIG's rows weighted by cluster size, as the method prescribes, and CRAIG
stays far below random there. This study trains the same rows (the grid's cached selections,
`benchmarks/cache/selections/craig-v1-*`; run `python -m benchmarks quality --methods craig` first
if the cache is gone) with uniform weights and the same seeds, to tell the selection apart from the
weighting. The weighted and random figures are read from the grid's cells file; only the unweighted
cells are trained here (appended to `craig_unweighted.jsonl`, so a stopped run resumes).

    python benchmarks/craig_unweighted.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks.provenance import command, git_revision, machine, now  # noqa: E402
from benchmarks.quality import QualityConfig, selection_dir, train_cell  # noqa: E402
from hf_coreset import CoresetSelection, methods  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=Path, default=RESULTS / "craig_unweighted.jsonl")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = QualityConfig()
    version = methods.get("craig").version
    done = [json.loads(line) for line in args.cells.read_text().splitlines()] if args.cells.is_file() else []
    keys = {(c["fraction"], c["seed"]) for c in done}
    for fraction in cfg.fractions:
        folder = selection_dir(cfg, "craig", version, fraction)
        if not folder.is_dir():
            sys.exit(f"No cached CRAIG selection at {folder}; run `python -m benchmarks quality --methods craig` first.")
        sel = CoresetSelection.load(folder)
        for seed in cfg.seeds:
            if (fraction, seed) in keys:
                continue
            out = train_cell({"num_samples": cfg.num_samples, "cache_dir": cfg.cache_dir, "seed": seed,
                              "indices": sel.indices, "weights": None, "protocol": cfg.setup()["protocol"]})
            acc = float(np.mean(out["predictions"] == out["references"]))
            cell = {"fraction": fraction, "seed": seed, "accuracy": acc, "train_s": out["train_s"], "git": git_revision(),
                    "date": now()}
            with args.cells.open("a") as f:
                f.write(json.dumps(cell) + "\n")
            done.append(cell)
            print(f"craig unweighted {fraction:.0%} seed {seed}: {100 * acc:.2f}%", flush=True)

    grid = [json.loads(line) for line in Path(cfg.results).read_text().splitlines()]

    def grid_acc(method, fraction):
        return {r["seed"]: r["accuracy"] for r in grid if r["kind"] == "train" and r["method"] == method
                and r["fraction"] == fraction and r["setup"] == cfg.setup()}

    mach = machine()
    lines = ["## CRAIG with and without its weights", "",
             "The same CRAIG selections as the quality grid (selection seed 0), trained on the grid's protocol with "
             "the cluster-size weights (the grid's cells) and with uniform weights (this study); test accuracy (%), "
             "mean +- std over training seeds; margin = minus random's accuracy with the same seed.", "",
             f"Command: `{command()}`; {now()}; git {git_revision()}; "
             f"{mach['cpu_count']} CPU cores, torch {mach['torch']}.", "",
             "| fraction | random | CRAIG, weighted (grid) | CRAIG, unweighted | margin weighted | margin unweighted |",
             "|---|---:|---:|---:|---:|---:|"]
    for fraction in cfg.fractions:
        rnd, wtd = grid_acc("random", fraction), grid_acc("craig", fraction)
        unw = {c["seed"]: c["accuracy"] for c in done if c["fraction"] == fraction}
        seeds = sorted(set(rnd) & set(wtd) & set(unw))

        def cell(d):
            v = 100 * np.array([d[s] for s in seeds])
            return f"{v.mean():.1f} +- {v.std():.1f}"

        def margin(d):
            v = 100 * np.array([d[s] - rnd[s] for s in seeds])
            return f"{v.mean():+.1f} +- {v.std():.1f}"

        lines.append(f"| {fraction:.0%} | {cell(rnd)} | {cell(wtd)} | {cell(unw)} | {margin(wtd)} | {margin(unw)} |")
    (RESULTS / "craig_unweighted.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
