"""CREST time-to-accuracy against full-data training on MNIST-1D, both through CoresetTrainer.

Target: the full-data run's final test accuracy minus 1 point. Reported: the training wall time
(evaluation excluded) at which each run first reaches the target at an epoch end, its final
accuracy, its optimizer steps, and CREST's re-selections. Writes
benchmarks/results/crest_time_to_accuracy.md and .png.

    python benchmarks/crest_time_to_accuracy.py [--num-samples 50000] [--seeds 0 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository root, where `benchmarks` is a package

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

import hf_coreset  # noqa: E402
from benchmarks.provenance import command, git_revision, machine, now  # noqa: E402
from hf_coreset import CoresetTrainer, CoresetTrainingArguments  # noqa: E402
from hf_coreset.data.mnist1d import make_convnet  # noqa: E402
from hf_coreset.evaluation import accuracy, arrays  # noqa: E402

OUT = ROOT / "benchmarks" / "results"


class Clock(TrainerCallback):
    """Test accuracy after every epoch against training wall time (time spent evaluating is excluded)."""

    def __init__(self, test):
        self.x, self.y = arrays(test)
        self.curve = []

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.start, self.paused = time.perf_counter(), 0.0

    def on_epoch_end(self, args, state, control, model=None, **kw):
        t0 = time.perf_counter()
        model.eval()
        acc = accuracy(model, self.x, self.y)
        model.train()
        t1 = time.perf_counter()
        self.curve.append((t0 - self.start - self.paused, acc, state.global_step))
        self.paused += t1 - t0


def run(train, test, *, seed, epochs, schedule, fraction, warmup, tmp, tau, subset_fraction=0.01):
    clock = Clock(test)
    common = dict(output_dir=str(Path(tmp) / f"{schedule}-{seed}"), num_train_epochs=epochs, per_device_train_batch_size=128,
                  learning_rate=1e-2, optim="adamw_torch", weight_decay=0.0, lr_scheduler_type="cosine",
                  report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=10**6, seed=seed,
                  dataloader_pin_memory=False, per_device_eval_batch_size=1024)
    if schedule == "full":
        args = CoresetTrainingArguments(coreset_warmup_epochs=0, **common)
        sel = hf_coreset.select(train, "random", fraction=1.0, seed=seed)
        trainer = CoresetTrainer(model=make_convnet(seed), args=args, train_dataset=train, coreset_selection=sel,
                                 callbacks=[clock])
    else:
        args = CoresetTrainingArguments(coreset_schedule="crest", coreset_fraction=fraction,
                                        coreset_warmup_epochs=warmup, crest_tau=tau,
                                        crest_random_subset_fraction=subset_fraction, **common)
        trainer = CoresetTrainer(model=make_convnet(seed), args=args, train_dataset=train, callbacks=[clock])
    trainer.train()
    return {"curve": clock.curve, "steps": trainer.state.global_step, "events": len(trainer.coreset_events),
            "checks": sum(e["checks"] for e in trainer.coreset_events)}


def first_time(curve, target):
    for t, acc, step in curve:
        if acc >= target:
            return t, step
    return None, None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-samples", type=int, default=20000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--full-epochs", type=int, default=10)
    p.add_argument("--crest-epochs", type=int, default=25)
    p.add_argument("--fraction", type=float, default=0.2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--tau", type=float, nargs="+", default=[0.05], help="one CREST run per value")
    p.add_argument("--subset-fraction", type=float, default=0.01, help="CREST r as a share of the training rows")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    data = hf_coreset.data.load_mnist1d(num_samples=a.num_samples)
    train, test = data["train"], data["test"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            full = run(train, test, seed=seed, epochs=a.full_epochs, schedule="full", fraction=1.0, warmup=0, tmp=tmp,
                       tau=0.0)
            runs = [("full data", full)]
            for tau in a.tau:
                runs.append((f"CREST tau={tau:g}", run(train, test, seed=seed, epochs=a.crest_epochs, schedule="crest",
                                                       fraction=a.fraction, warmup=a.warmup, tmp=tmp, tau=tau,
                                                       subset_fraction=a.subset_fraction)))
            target = full["curve"][-1][1] - 0.01
            for name, r in runs:
                t, step = first_time(r["curve"], target)
                rows.append({"seed": seed, "run": name, "target": target, "time": t, "step": step,
                             "final": r["curve"][-1][1], "total_time": r["curve"][-1][0], "steps": r["steps"],
                             "events": r["events"], "checks": r["checks"], "curve": r["curve"]})
    write(rows, a, command(sys.argv[:1] + (argv if argv is not None else sys.argv[1:])))


def write(rows, a, command) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    mach = machine()
    fmt = lambda v, f: "not reached" if v is None else f.format(v)  # noqa: E731
    lines = [
        "## CREST time-to-accuracy on MNIST-1D",
        "",
        f"Command: `{command}`  ",
        f"Date: {now()}; machine: {mach['cpu_count']} CPU cores "
        f"(shared), torch {mach['torch']} with {a.threads} thread(s), Python "
        f"{mach['python']}; git {git_revision()}.",
        "",
        f"MNIST-1D with {a.num_samples} generated rows (80% train, 20% test), the reference ConvNet, AdamW lr 1e-2 with "
        f"cosine decay over each run's own steps, global batch 128, both through `CoresetTrainer`. Full data: "
        f"{a.full_epochs} epochs. CREST: {a.warmup} warm-up epoch(s) on the full data, then {a.crest_epochs - a.warmup} "
        f"epochs of {a.fraction:g} x a full epoch's steps on weighted mini-batch coresets (m = 128, r = {a.subset_fraction:g} x the rows, "
        f"tau as named, h = 1, b = 5, T2 = 20, alpha = 0.1, quadratic model on all parameters). Target = the full-data "
        "run's final test accuracy minus 1 point; time = training wall time (evaluation excluded) at the first epoch "
        "end that reaches it.",
        "",
        "| seed | run | target | time to target (s) | steps to target | final accuracy | total time (s) | steps | "
        "re-selections | checks |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['run']} | {100 * r['target']:.1f}% | {fmt(r['time'], '{:.1f}')} | "
                     f"{fmt(r['step'], '{}')} | {100 * r['final']:.1f}% | {r['total_time']:.1f} | {r['steps']} | "
                     f"{r['events'] if r['run'] != 'full data' else '-'} | "
                     f"{r['checks'] if r['run'] != 'full data' else '-'} |")
    speed = []
    for seed in sorted({r["seed"] for r in rows}):
        f = next(r for r in rows if r["seed"] == seed and r["run"] == "full data")
        for c in rows:
            if c["seed"] == seed and c["run"] != "full data":
                ratio = f"{f['time'] / c['time']:.2f}x" if f["time"] and c["time"] else "target not reached"
                speed.append(f"seed {seed}, {c['run']}: {ratio}")
    lines += ["", "Speed-up to target (full-data time / CREST time): " + ("; ".join(speed) if speed else
                                                                          "CREST did not reach the target") + ".", ""]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for r in rows:
            t = [c[0] for c in r["curve"]]
            acc = [100 * c[1] for c in r["curve"]]
            ax.plot(t, acc, marker=".", label=f"{r['run']} (seed {r['seed']})")
        ax.axhline(100 * rows[0]["target"], color="gray", ls="--", lw=1, label="target")
        ax.set_xlabel("training wall time (s)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("MNIST-1D: CREST vs full data")
        ax.legend()
        fig.tight_layout()
        fig.savefig(OUT / "crest_time_to_accuracy.png", dpi=120)
        lines += ["![CREST vs full data](crest_time_to_accuracy.png)", ""]
    except ImportError:
        pass
    (OUT / "crest_time_to_accuracy.md").write_text("\n".join(lines))
    (OUT / "crest_time_to_accuracy.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
