"""Signals: what one forward pass tells about every row, and its collection through Accelerate.

Per row and per checkpoint: the loss, whether the prediction is correct, the logits (so the
logit gradient p - y is one subtraction away), and the classifier's input features h, captured
by a forward pre-hook on the model's final ``nn.Linear``. Rows carry their dataset index
through the collator and are gathered with it, so one and N processes give the same arrays.

This module and ``proxy.py`` are the only ones that touch models, data loaders and Accelerate.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

ROW_KEY = "_coreset_row"
WEIGHT_KEY = "_coreset_weight"  # per-row loss weight of a training share (0 marks a padding row)
FIELDS = ("loss", "correct", "logits", "features")
CHEAP_FIELDS = frozenset({"loss", "correct", "logits"})  # n x C at most: always collected


@dataclass
class Checkpoint:
    """Signals of every row at one proxy epoch (0 = the model as given). Absent fields are None."""

    epoch: int
    loss: np.ndarray | None = None
    correct: np.ndarray | None = None
    logits: np.ndarray | None = None
    features: np.ndarray | None = None

    def probs(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def logit_grad(self, labels: np.ndarray) -> np.ndarray:
        """p - onehot(y): the gradient of cross-entropy with respect to the logits."""
        g = self.probs()
        g[np.arange(len(labels)), labels] -= 1.0
        return g


@dataclass
class Signals:
    """Per-row signals at one or more proxy checkpoints, indexed by dataset row.

    Attributes:
        labels (`np.ndarray` of int64): class id of every row.
        num_classes (`int`): number of classes (logit dimension).
        checkpoints (`dict[int, Checkpoint]`): by proxy epoch.
    """

    labels: np.ndarray
    num_classes: int
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return len(self.labels)

    @property
    def epochs(self) -> list[int]:
        return sorted(self.checkpoints)

    def at(self, epoch: int, *fields: str) -> Checkpoint:
        """The checkpoint at `epoch`, checked to hold `fields`."""
        if epoch not in self.checkpoints:
            raise KeyError(f"No signals at proxy epoch {epoch}; collected epochs: {self.epochs}.")
        ckpt = self.checkpoints[epoch]
        missing = [f for f in fields if getattr(ckpt, f) is None]
        if missing:
            raise KeyError(f"Signals at epoch {epoch} lack {missing}; the method's `needs` must ask for them.")
        return ckpt


# --------------------------------------------------------------------------- model plumbing
def find_head(model: nn.Module, name: str | None = None, num_classes: int | None = None) -> nn.Linear:
    """The classifier head: the module called `name`, else the last ``nn.Linear`` registered.

    With `num_classes` given, the automatic choice must have at least that many outputs (a plain
    int label column only bounds the number of classes from below).
    """
    if name is not None:
        modules = dict(model.named_modules())
        if name not in modules:
            linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            raise ValueError(f"head={name!r} is not a module of the model; its nn.Linear modules are {linear}.")
        head = modules[name]
        if not isinstance(head, nn.Linear):
            raise ValueError(f"head={name!r} is a {type(head).__name__}, not an nn.Linear; name the final nn.Linear layer.")
        return head
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear layer, so its classifier input features cannot be captured. "
            "Pass head='<module name>' naming the final nn.Linear, or use a method that needs no features "
            "(random, el2n, entropy, forgetting).")
    head = linear[-1]
    if num_classes is not None and head.out_features < num_classes:
        raise ValueError(
            f"The last nn.Linear of {type(model).__name__} has {head.out_features} outputs but the data has "
            f"{num_classes} classes; pass head='<module name>' naming the classifier layer.")
    return head


def forward_input_names(model: nn.Module, columns: list[str], label_column: str) -> list[str]:
    """Dataset columns to pass to ``model(**batch)``: those the forward signature names (as Trainer does)."""
    params = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    skip = {label_column, "label", "labels", "label_ids"}
    names = [c for c in columns if c in params and c not in skip]
    if not names and takes_any:
        # Only a bare **kwargs: pass every column. A named argument wins, as in Trainer: transformers 5
        # models take **kwargs too, and would otherwise get raw text columns.
        names = [c for c in columns if c not in skip]
    if not names:
        raise ValueError(
            f"No dataset column matches an argument of {type(model).__name__}.forward "
            f"({[p for p in params if p != 'self']}); dataset columns: {columns}. Rename a column "
            f"(ds.rename_column) to the argument the model expects.")
    return names


def logits_of(output) -> torch.Tensor:
    """The logits of a model output: a tensor, a ModelOutput / dict with `logits`, or a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) or hasattr(output, "logits"):
        logits = output["logits"] if isinstance(output, dict) else output.logits
        if logits is not None:
            return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"Cannot find logits in a model output of type {type(output).__name__}; "
                    "return a tensor of logits or an object with a `logits` field.")


class RowDataset(torch.utils.data.Dataset):
    """A `datasets.Dataset` seen as rows of the given columns, each carrying its row index.

    Rows come in the dataset's "numpy" or "torch" format when it has one, else as Python values
    (Arrow, pandas or polars rows are not what a torch collator takes). A transform set with
    `with_transform` is the user's preprocessing and is applied. Items may be row ids or
    `(row id, weight)` pairs; a weight rides along under ``WEIGHT_KEY``. `tensors=True` reads a
    format-less dataset as torch tensors, for transformers' `default_data_collator`, which builds
    the same batch from them as from Python lists without converting every value (about a third
    of the signal pass on MNIST-1D; benchmarks/results/cost.md).
    """

    def __init__(self, dataset, columns: list[str], *, tensors: bool = False):
        kind = dataset.format["type"]
        if kind != "custom":
            # Reset the format's column list too: set_format(columns=[...]) may hide the inputs.
            kind = kind if kind in ("numpy", "torch") else ("torch" if tensors else None)
            dataset = dataset.with_format(kind).select_columns(columns)
        self.dataset = dataset
        self.columns = columns

    def __len__(self):
        return self.dataset.num_rows

    def __getitem__(self, i):
        return self.__getitems__([i])[0]

    def __getitems__(self, items):
        rows = [int(item[0]) if isinstance(item, tuple) else int(item) for item in items]
        batch = self.dataset[rows]
        out = []
        for j, (item, row) in enumerate(zip(items, rows)):
            features = {c: batch[c][j] for c in self.columns}
            features[ROW_KEY] = row
            if isinstance(item, tuple):
                features[WEIGHT_KEY] = float(item[1])
            out.append(features)
        return out


class RowCollator:
    """Wraps a collator so that the row index (and a training weight) ride along as tensors."""

    def __init__(self, collate_fn=None):
        from transformers import default_data_collator

        self.collate_fn = default_data_collator if collate_fn is None else collate_fn
        self.is_default = self.collate_fn is default_data_collator

    def __call__(self, features):
        # The rows are RowDataset's fresh dicts, so popping our keys is cheaper than copying each row.
        extra = {ROW_KEY: torch.tensor([f.pop(ROW_KEY) for f in features], dtype=torch.long)}
        if WEIGHT_KEY in features[0]:
            extra[WEIGHT_KEY] = torch.tensor([f.pop(WEIGHT_KEY) for f in features], dtype=torch.float32)
        batch = dict(self.collate_fn(features))
        batch.update(extra)
        return batch


def row_views(dataset, columns: list[str], collate_fn=None) -> tuple[RowDataset, RowCollator]:
    """The row dataset and its collator for `collate_fn` (None = transformers' default one); with the
    default collator a format-less dataset is read as tensors (`RowDataset(tensors=True)`)."""
    collator = RowCollator(collate_fn)
    return RowDataset(dataset, columns, tensors=collator.is_default), collator


def forward_logits(model, batch: dict) -> torch.Tensor:
    return logits_of(model(**batch))


def check_logits(logits: torch.Tensor, y: torch.Tensor, head: nn.Linear | None) -> None:
    """Logits must be (batch, classes), cover every label, and come out of the captured head."""
    if logits.ndim != 2 or (len(y) and logits.shape[1] <= int(y.max())):
        raise ValueError(f"The model returns logits of shape {tuple(logits.shape)}, but the labels go up to "
                         f"{int(y.max())}; it must return (batch, number of classes), e.g. num_labels=<classes>.")
    if head is not None and head.out_features != logits.shape[1]:
        raise ValueError(f"The nn.Linear taken as the classifier has {head.out_features} outputs but the model "
                         f"returns {logits.shape[1]} logits; pass head='<module name>' naming the final layer.")


# --------------------------------------------------------------------------- collection
@torch.no_grad()
def collect_checkpoint(model: nn.Module, loader, labels: torch.Tensor, *, epoch: int, fields: frozenset,
                       head: nn.Linear, accelerator, progress: bool = True) -> Checkpoint:
    """One eval-mode forward pass over `loader` (prepared by `accelerator`), placed by row index.

    Note:
        Every process must call it; each ends up with the full arrays.
    """
    from tqdm.auto import tqdm

    n = len(labels)
    captured = {}
    hook = None
    if "features" in fields:
        hook = head.register_forward_pre_hook(lambda mod, args: captured.__setitem__("h", args[0]))
    was_training = model.training
    model.eval()
    out: dict[str, np.ndarray] = {}
    filled = np.zeros(n, dtype=bool)
    try:
        bar = tqdm(loader, desc=f"signals @ epoch {epoch}", disable=not (progress and accelerator.is_main_process),
                   leave=False)
        for batch in bar:
            rows = batch.pop(ROW_KEY)
            logits = forward_logits(model, batch).float()
            y = labels[rows.cpu()].to(logits.device)
            check_logits(logits, y, head if "features" in fields else None)
            parts = {"row": rows}
            loss = nn.functional.cross_entropy(logits, y, reduction="none")
            if "loss" in fields:
                parts["loss"] = loss
            if "correct" in fields:
                parts["correct"] = (logits.argmax(dim=1) == y).to(torch.uint8)  # gloo gathers no bool
            if "logits" in fields:
                parts["logits"] = logits
            if "features" in fields:
                h = captured.pop("h")
                parts["features"] = h.reshape(h.shape[0], -1).float()
            parts = accelerator.gather_for_metrics(parts)
            idx = parts.pop("row").cpu().numpy()
            for key, value in parts.items():
                value = value.cpu().numpy()
                if key not in out:
                    dtype = np.bool_ if key == "correct" else np.float32
                    out[key] = np.zeros((n,) + value.shape[1:], dtype=dtype)
                out[key][idx] = value
            filled[idx] = True
    finally:
        if hook is not None:
            hook.remove()
        model.train(was_training)
    if not filled.all():
        missing = np.flatnonzero(~filled)
        raise RuntimeError(f"Signals at epoch {epoch} are missing {len(missing)} rows (first: {missing[:10].tolist()}); "
                           "the data loader did not visit every row once.")
    for key in ("loss", "logits", "features"):
        if key in out and not np.all(np.isfinite(out[key])):
            bad = np.flatnonzero(~np.isfinite(out[key].reshape(n, -1)).all(axis=1))
            hint = ("the model as given produces them: check those rows' inputs for NaN/inf values" if epoch == 0
                    else "the proxy diverged (or those rows' inputs hold NaN/inf): lower the proxy learning rate "
                         "with proxy={'lr': ...}")
            raise FloatingPointError(
                f"Non-finite {key} for {len(bad)} rows at proxy epoch {epoch} (first rows {bad[:10].tolist()}); "
                f"{hint}.")
    return Checkpoint(epoch=epoch, **out)
