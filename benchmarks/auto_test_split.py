"""`auto` against random on the MNIST-1D test split (defaults frozen from the validation study).

Selection from the full 40k train split through `hf_coreset.select` (proxy: the ConvNet, Adam lr
1e-2, batch 128, 10 epochs, proxy seed 0), subset training with `train_convnet` (100 epochs),
final accuracy on the 10k test split; selection seed = training seed. Cells are appended to a
JSON-lines file so a stopped run resumes; the markdown is rebuilt from all cells.

    python benchmarks/auto_test_split.py --fractions 0.01 0.05 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
import hf_coreset  # noqa: E402
from benchmarks.provenance import command, git_revision, machine, now  # noqa: E402
from hf_coreset.data.mnist1d import load_mnist1d, make_convnet  # noqa: E402
from hf_coreset.evaluation import accuracy, arrays, train_convnet  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CELLS = RESULTS / "auto_test_split.jsonl"
REPORT = RESULTS / "auto_test_split.md"
PROXY = {"optimizer": "adam", "lr": 1e-2, "batch_size": 128}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.3])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["random", "auto", "kernel-herding"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_mnist1d()
    x, y = arrays(data["train"])
    xt, yt = arrays(data["test"])
    cells = [json.loads(s) for s in CELLS.read_text().splitlines()] if CELLS.is_file() else []
    version = {m: hf_coreset.methods.get(m).version for m in args.methods}
    done = {(c["method"], c.get("version", 1), c["fraction"], c["seed"]) for c in cells}
    for fraction in args.fractions:
        for seed in args.seeds:
            for method in args.methods:
                if (method, version[method], fraction, seed) in done:
                    continue
                sel = hf_coreset.select(data["train"], method, fraction=fraction, model=make_convnet(0), seed=seed,
                                        proxy=PROXY, progress=False)
                idx = torch.as_tensor(sel.indices)
                acc = accuracy(train_convnet(x[idx], y[idx], epochs=100, seed=seed), xt, yt)
                cell = {"method": method, "version": version[method], "fraction": fraction, "seed": seed, "acc": acc,
                        "picked": sel.config.get("auto_method", method)}
                with CELLS.open("a") as f:
                    f.write(json.dumps(cell) + "\n")
                cells.append(cell)
                print(f"{fraction:.2f} seed {seed} {method:8s} {100 * acc:.2f}", flush=True)
    cells = [c for c in cells if c["method"] in version and c.get("version", 1) == version[c["method"]]]
    mach = machine()
    fr = sorted({c["fraction"] for c in cells})
    lines = ["# `auto` against random on the MNIST-1D test split", "",
             f"Command: `{command()}` (cells accumulate in `{CELLS.name}`). "
             f"Date: {now()}. Machine: {mach['cpu_count']} "
             f"cores (shared), {mach['arch']}, torch {mach['torch']}. Git revision: {git_revision()}.",
             "Selection from the 40k train split (proxy ConvNet initialised with seed 0, Adam lr 1e-2, 10 epochs; "
             "the seed sets the proxy's batch order, the selection and the training); subset training 100 epochs; "
             "final test accuracy (%), mean ± std over seeds (n). Method versions: "
             + ", ".join(f"{m} v{v}" for m, v in version.items()) + ".", "",
             "| method | " + " | ".join(f"{f:.0%}" for f in fr) + " |", "|---|" + "---|" * len(fr)]
    for m in args.methods:
        row = [m if m != "auto" else "auto (" + ", ".join(sorted({c["picked"] for c in cells if c["method"] == m})) + ")"]
        for f in fr:
            a = [100 * c["acc"] for c in cells if c["method"] == m and c["fraction"] == f]
            r = [100 * c["acc"] for c in cells if c["method"] == "random" and c["fraction"] == f]
            row.append(f"{np.mean(a):.1f} ± {np.std(a):.1f} (Δ {np.mean(a) - np.mean(r):+.1f}, n={len(a)})" if a else "-")
        lines.append("| " + " | ".join(row) + " |")
    REPORT.write_text("\n".join(lines) + "\n")
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
