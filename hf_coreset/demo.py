"""`hf-coreset demo`: select 10% of MNIST-1D with a few methods, train on each, print a table.

Needs the demo extra (`pip install 'hf-coreset[demo]'`: mnist1d generates the data, evaluate scores it).
"""

from __future__ import annotations

import time

import numpy as np

from .extras import require

# `auto` is the library's default answer; the others show a diversity method and two difficulty ones.
DEFAULT_METHODS = ("random", "auto", "kcenter", "el2n", "craig")
# 8,000 training rows, so that the demo takes a few minutes at most on 2 CPU cores (the README gives
# the measured time); 50,000 is the benchmarks' size, about five times longer.
DEFAULT_SAMPLES = 10000


def check_extra() -> None:
    """Raise one clear ImportError, before any data or training, when the demo's packages are missing."""
    require("evaluate", "mnist1d", extra="demo", what="hf-coreset demo")


def run_demo(*, fraction: float = 0.1, methods=DEFAULT_METHODS, seed: int = 0, num_samples: int = DEFAULT_SAMPLES,
             epochs: int | None = None, full_data_epochs: int | None = None, out=print,
             progress: bool = True) -> list[dict]:
    """Run the demo and return its rows (method, kept, accuracy, selection seconds, training seconds).

    Each phase is announced through `out` as it starts and ends; with `progress`, the training and
    the proxy show their progress on stderr (bars on a terminal, periodic lines in a log).
    """
    import hf_coreset
    from hf_coreset.data.mnist1d import make_convnet
    from hf_coreset.evaluation import Protocol, subset_accuracy

    check_extra()
    protocol = Protocol()
    if epochs is not None or full_data_epochs is not None:
        protocol = Protocol(epochs=epochs or protocol.epochs, full_data_epochs=full_data_epochs or protocol.full_data_epochs)
    t0 = time.perf_counter()
    out(f"Generating MNIST-1D ({num_samples} samples, cached after the first run)...")
    data = hf_coreset.data.load_mnist1d(num_samples=num_samples)
    train, test = data["train"], data["test"]
    out(f"MNIST-1D: {train.num_rows} train / {test.num_rows} test rows ({time.perf_counter() - t0:.0f} s); keeping "
        f"{fraction:.0%} (training {protocol.epochs} epochs on each subset, {protocol.full_data_epochs} on the full "
        "data).")
    total = len(methods) + 1
    rows = []
    out(f"[1/{total}] full data: training the ConvNet on {train.num_rows} rows for {protocol.full_data_epochs} epochs...")
    t0 = time.perf_counter()
    acc = subset_accuracy(train, test, None, seed=seed, protocol=protocol,
                          progress="full data training" if progress else None)
    rows.append({"method": "full data", "kept": train.num_rows, "accuracy": acc, "select_s": 0.0,
                 "train_s": time.perf_counter() - t0})
    out(f"[1/{total}] full data: test accuracy {acc:.1%} ({rows[-1]['train_s']:.0f} s)")
    proxy = {"optimizer": "adam", "lr": 1e-2, "batch_size": 128}
    for i, method in enumerate(methods, start=2):
        out(f"[{i}/{total}] {method}: selecting {fraction:.0%} (a proxy run when the method needs one; "
            "cached signals are reused)...")
        t0 = time.perf_counter()
        sel = hf_coreset.select(train, method, fraction=fraction, model=make_convnet(seed), seed=seed, proxy=proxy,
                                progress=progress)
        t1 = time.perf_counter()
        picked = sel.config.get("auto_method")
        out(f"[{i}/{total}] {method}: kept {len(sel)} rows{f' (auto picked {picked})' if picked else ''} in "
            f"{t1 - t0:.0f} s; training on them for {protocol.epochs} epochs...")
        acc = subset_accuracy(train, test, sel.indices, seed=seed, protocol=protocol, weights=sel.weights,
                              progress=f"{method} subset training" if progress else None)
        rows.append({"method": f"{method} ({picked})" if picked else method, "kept": len(sel), "accuracy": acc,
                     "select_s": t1 - t0,
                     "train_s": time.perf_counter() - t1})
        out(f"[{i}/{total}] {method}: test accuracy {acc:.1%} ({rows[-1]['train_s']:.0f} s)")
    out(format_table(rows))
    return rows


def format_table(rows: list[dict]) -> str:
    rand = next((r["accuracy"] for r in rows if r["method"] == "random"), np.nan)
    lines = ["| method | rows kept | test accuracy | vs random | selection s | training s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        diff = "" if r["method"] in ("random", "full data") else f"{100 * (r['accuracy'] - rand):+.1f}"
        lines.append(f"| {r['method']} | {r['kept']} | {100 * r['accuracy']:.1f}% | {diff} | {r['select_s']:.1f} | "
                     f"{r['train_s']:.1f} |")
    return "\n".join(lines)
