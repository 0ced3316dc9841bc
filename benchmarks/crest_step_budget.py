"""CREST at its own protocol: a fixed budget of training steps (a share of the full run's steps), on MNIST-1D.

For each budget (10%, 20%, 30% of the full run's steps) and seed, four runs through `CoresetTrainer`, all
with the same optimizer, schedule shape and epochs:

- CREST (``coreset_schedule="crest"``, no warm-up): every step on a weighted mini-batch coreset;
- random mini-batches (``coreset_schedule="random"``): a fresh uniform draw of the budget's share of the
  rows every epoch, CREST's own random baseline (its ``--train_frac``);
- a fixed class-balanced random subset (``hf_coreset.select(..., "random")``), trained every epoch;
- full data (once per seed: the reference for the step count and the wall time).

Each epoch of a budget run has budget x a full epoch's steps, so every budget run takes budget x the
full run's steps. Reported: final test accuracy (mean +- std over seeds), CREST's paired margins over
the two random baselines, and training wall time including every selection, Hessian and check cost,
as a ratio to the full-data run's wall time measured in the same invocation (evaluation excluded).
Writes benchmarks/results/crest_step_budget.md and .json.

    python benchmarks/crest_step_budget.py [--num-samples 50000] [--epochs 15] [--seeds 0 1 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository root, where `benchmarks` is a package

import hf_coreset  # noqa: E402
from benchmarks.provenance import command, git_revision, machine, now  # noqa: E402
from hf_coreset import CoresetTrainer, CoresetTrainingArguments  # noqa: E402
from hf_coreset.data.mnist1d import make_convnet  # noqa: E402
from hf_coreset.evaluation import accuracy, arrays  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
RUNS = ("CREST", "random per epoch", "fixed random subset")


def run(train, test, *, kind: str, budget: float, seed: int, epochs: int, lr: float, tmp: str) -> dict:
    """One training run; returns final test accuracy, steps, training wall time and CREST's records."""
    common = dict(output_dir=str(Path(tmp) / f"{kind}-{budget}-{seed}"), num_train_epochs=epochs,
                  per_device_train_batch_size=128, learning_rate=lr, optim="sgd", optim_args="momentum=0.9",
                  weight_decay=5e-4, lr_scheduler_type="cosine", report_to="none", save_strategy="no",
                  disable_tqdm=True, logging_steps=10**6, seed=seed, dataloader_pin_memory=False,
                  per_device_eval_batch_size=1024, coreset_warmup_epochs=0)
    model = make_convnet(seed)
    if kind == "CREST":
        trainer = CoresetTrainer(model=model, train_dataset=train, args=CoresetTrainingArguments(
            coreset_schedule="crest", coreset_fraction=budget, **common))
    elif kind == "random per epoch":
        trainer = CoresetTrainer(model=model, train_dataset=train, args=CoresetTrainingArguments(
            coreset_schedule="random", coreset_fraction=budget, **common))
    else:  # the fixed subset, or the full data (budget 1)
        sel = hf_coreset.select(train, "random", fraction=budget, seed=seed)
        trainer = CoresetTrainer(model=model, train_dataset=train, coreset_selection=sel,
                                 args=CoresetTrainingArguments(**common))
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    x, y = arrays(test)
    model.eval()
    out = {"kind": kind, "budget": budget, "seed": seed, "accuracy": accuracy(model, x, y), "wall": wall, "cpu": cpu,
           "steps": trainer.state.global_step}
    if trainer.crest is not None:
        out.update(events=len(trainer.coreset_events), checks=sum(e["checks"] for e in trainer.coreset_events),
                   timings=dict(trainer.crest.timings))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-samples", type=int, default=50000, help="MNIST-1D rows generated (80%% train, 20%% test)")
    p.add_argument("--epochs", type=int, default=15, help="epochs of every run (the full run's length)")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--partial", help="where each run is logged as it ends (default: "
                   "benchmarks/results/crest_step_budget.partial.jsonl); give seeds run in parallel their own")
    p.add_argument("--from-jsonl", nargs="+", help="write the fragment from the runs a measuring invocation logged so far "
                   "(benchmarks/results/crest_step_budget.partial.jsonl), whole seeds only")
    p.add_argument("--note", default="", help="closing note, printed after the table")
    p.add_argument("--run-command", help="with --from-jsonl: the measuring invocations' commands (markdown)")
    p.add_argument("--revision", help="with --from-jsonl: the revision the measuring invocation ran")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cmd = command(sys.argv[:1] + (argv if argv is not None else sys.argv[1:]))
    revision = git_revision()  # the code that runs: taken now, not when the fragment is written
    if a.from_jsonl:
        rows = [json.loads(line) for f in a.from_jsonl for line in Path(f).read_text().splitlines() if line.strip()]
        per_seed = 1 + len(RUNS) * len(a.budgets)
        done = [s for s in dict.fromkeys(r["seed"] for r in rows) if sum(r["seed"] == s for r in rows) == per_seed]
        a.seeds = done
        n_train = int(round(0.8 * a.num_samples))
        shown = cmd.split(" --from-jsonl ")[0] + " --from-jsonl " + " ".join(a.from_jsonl)
        write([r for r in rows if r["seed"] in done], a, f"{a.run_command}; this fragment written from their logs "
              f"(seeds {', '.join(map(str, done))}) by `{shown}`", n_train, a.revision or "unknown")
        return
    data = hf_coreset.data.load_mnist1d(num_samples=a.num_samples)
    train, test = data["train"], data["test"]
    rows = []
    partial = Path(a.partial) if a.partial else OUT / "crest_step_budget.partial.jsonl"
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, partial.open("w") as log:
        for seed in a.seeds:
            todo = [("full data", 1.0)] + [(k, b) for b in a.budgets for k in RUNS]
            for kind, budget in todo:
                r = run(train, test, kind=kind, budget=budget, seed=seed, epochs=a.epochs, lr=a.lr, tmp=tmp)
                rows.append(r)
                log.write(json.dumps(r) + "\n")
                log.flush()
                print(f"seed {seed} {kind} {budget:g}: {100 * r['accuracy']:.2f}% in {r['wall']:.1f} s "
                      f"({r['cpu']:.1f} s CPU) "
                      f"({r['steps']} steps)", flush=True)
    write(rows, a, cmd, len(train), revision)
    partial.unlink()


def _mean_std(values) -> str:
    values = [100 * v for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def write(rows: list[dict], a, cmd: str, n_train: int, revision: str) -> None:
    mach = machine()
    full = {r["seed"]: r for r in rows if r["kind"] == "full data"}
    cell = {(r["kind"], r["budget"], r["seed"]): r for r in rows}
    seeds = sorted(full)
    full_steps = full[seeds[0]]["steps"]
    lines = [
        "## CREST at a fixed step budget on MNIST-1D",
        "",
        f"Command: {cmd if cmd.startswith('`') else f'`{cmd}`'}  ",
        f"Date: {now()}; machine: {mach['cpu_count']} CPU cores (shared), torch {mach['torch']} with {a.threads} "
        f"thread(s), Python {mach['python']}; git {revision}.",
        "",
        f"Protocol (CREST's own, its `--train_frac`): MNIST-1D, {n_train} training rows, the reference ConvNet, SGD "
        f"momentum 0.9, lr {a.lr:g}, weight decay 5e-4, cosine decay over each run's own steps, batch 128, "
        f"{a.epochs} epochs for every run. The full-data run takes {full_steps} steps; a budget of b gives every "
        "epoch b x a full epoch's steps, so each budget run takes b x the full run's steps. CREST: "
        "`coreset_schedule=\"crest\"` with the defaults (tau 0.05, h 1, b 5, T2 20, alpha 0.1, r = 1% of the rows, "
        "m = 128, quadratic model on all parameters), no warm-up. Random per epoch: `coreset_schedule=\"random\"`, a "
        "fresh uniform draw of b x the rows every epoch (CREST's random baseline). Fixed subset: one class-balanced "
        "random subset of b x the rows (`hf_coreset.select(train, \"random\")`), trained every epoch. Test accuracy "
        f"after the last step on the {a.num_samples - n_train}-row test split, mean ± std over seeds "
        f"{', '.join(map(str, seeds))}. Wall time: `trainer.train()` including every CREST selection, Hessian and "
        "check (evaluation excluded), as a ratio to the full-data run of the same seed in this invocation; in brackets the "
        "same ratio of the process's CPU time (one thread), which other jobs on the shared machine do not inflate.",
        "",
        f"Full data: {_mean_std([full[s]['accuracy'] for s in seeds])}% test accuracy, "
        f"{statistics.mean(full[s]['wall'] for s in seeds):.1f} s of training "
        f"({statistics.mean(full[s]['cpu'] for s in seeds):.1f} s CPU).",
        "",
        "| budget (steps) | CREST | random per epoch | fixed random subset | CREST − random per epoch | "
        "CREST − fixed | wall / full: CREST | random per epoch | fixed | CREST re-selections, checks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary = []
    for b in a.budgets:
        acc = {k: [cell[(k, b, s)]["accuracy"] for s in seeds] for k in RUNS}
        ratio = {k: statistics.mean(cell[(k, b, s)]["wall"] / full[s]["wall"] for s in seeds) for k in RUNS}
        cpu = {k: statistics.mean(cell[(k, b, s)]["cpu"] / full[s]["cpu"] for s in seeds) for k in RUNS}
        m_rand = [c - r for c, r in zip(acc["CREST"], acc["random per epoch"])]
        m_fixed = [c - r for c, r in zip(acc["CREST"], acc["fixed random subset"])]
        steps = cell[("CREST", b, seeds[0])]["steps"]
        ev = statistics.mean(cell[("CREST", b, s)]["events"] for s in seeds)
        ck = statistics.mean(cell[("CREST", b, s)]["checks"] for s in seeds)
        lines.append(f"| {b:.0%} ({steps}) | {_mean_std(acc['CREST'])} | {_mean_std(acc['random per epoch'])} | "
                     f"{_mean_std(acc['fixed random subset'])} | {_mean_std(m_rand)} | {_mean_std(m_fixed)} | "
                     f"{ratio['CREST']:.2f}x ({cpu['CREST']:.2f}x) | {ratio['random per epoch']:.2f}x "
                     f"({cpu['random per epoch']:.2f}x) | {ratio['fixed random subset']:.2f}x ({cpu['fixed random subset']:.2f}x) | "
                     f"{ev:.0f}, {ck:.0f} |")
        tim = [cell[("CREST", b, s)]["timings"] for s in seeds]
        share = {k: statistics.mean(t[k] for t in tim) for k in tim[0]}
        summary.append((b, m_rand, cpu, share))
    lines += ["", "Per seed, CREST − random per epoch (points): " + "; ".join(
        f"{b:.0%}: " + ", ".join(f"{100 * m:+.2f}" for m in m_rand) for b, m_rand, _, _ in summary) + ".", ""]
    lines += ["CPU time of CREST over random per epoch at the same budget (mean of the per-seed ratios to full data): "
              + "; ".join(f"{b:.0%}: {c['CREST'] / c['random per epoch']:.1f}x" for b, _, c, _ in summary) + ".", ""]
    lines += ["CREST's wall time by phase (mean over seeds, seconds; `Crest.timings`): " + "; ".join(
        f"{b:.0%}: " + ", ".join(f"{k} {v:.1f}" for k, v in share.items()) for b, _, _, share in summary) + ".", ""]
    if a.note:
        lines += [a.note, ""]
    (OUT / "crest_step_budget.md").write_text("\n".join(lines))
    (OUT / "crest_step_budget.json").write_text(json.dumps({"command": cmd, "date": now(), "machine": mach,
                                                            "revision": revision, "runs": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
