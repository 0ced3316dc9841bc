"""Collection: the one way signals leave a model, for the proxy, the trainer's warm-up and CREST.

Every path computes a row's signals from its logits with the same arithmetic (:func:`row_signals`),
gathers them across processes together with the row index, places them by row, and refuses missing
rows and non-finite values. This package and ``proxy.py`` are the only modules that touch models,
data loaders and Accelerate.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .model import check_logits, forward_logits
from .progress import Progress
from .rows import ROW_KEY, row_views, shard
from .types import Checkpoint

PROXY_HINT = ("the proxy diverged (or those rows' inputs hold NaN/inf): lower the proxy learning rate with "
              "proxy={'lr': ...}")


def row_signals(logits: torch.Tensor, y: torch.Tensor, fields) -> dict[str, torch.Tensor]:
    """The cheap signals of a batch from its float32 logits: per-row loss, correctness, logits."""
    parts = {}
    if "loss" in fields:
        parts["loss"] = nn.functional.cross_entropy(logits, y, reduction="none")
    if "correct" in fields:
        parts["correct"] = (logits.argmax(dim=1) == y).to(torch.uint8)  # gloo gathers no bool
    if "logits" in fields:
        parts["logits"] = logits
    return parts


class _ByRow:
    """Arrays of `n` rows filled by row index from gathered parts, checked complete and finite at the end.

    `allocate(key, shape, dtype)`, when given, makes the array of a per-row vector field (logits,
    features): a memory-mapped file that the rows are written into as they arrive (the signal cache),
    so that the collecting process never holds the n x d array; None from it, or no `allocate`, means
    an array in memory."""

    CHECK_ROWS = 1 << 14  # rows per block of the finiteness check (no n x d temporary)

    def __init__(self, n: int, allocate=None):
        self.n = n
        self.allocate = allocate
        self.out: dict[str, np.ndarray] = {}
        self.filled = np.zeros(n, dtype=bool)

    def place(self, idx: np.ndarray, parts: dict) -> None:
        for key, value in parts.items():
            value = value.cpu().numpy()
            if key not in self.out:
                dtype = np.bool_ if key == "correct" else np.float32
                shape = (self.n,) + value.shape[1:]
                mapped = self.allocate(key, shape, dtype) if self.allocate is not None and len(shape) > 1 else None
                self.out[key] = np.zeros(shape, dtype=dtype) if mapped is None else mapped
            self.out[key][idx] = value
        self.filled[idx] = True

    def done(self, where: str, hint: str) -> dict[str, np.ndarray]:
        if not self.filled.all():
            missing = np.flatnonzero(~self.filled)
            raise RuntimeError(f"Signals at {where} are missing {len(missing)} rows (first: {missing[:10].tolist()}); "
                               "the data loader did not visit every row once.")
        for key in ("loss", "logits", "features"):
            if key not in self.out:
                continue
            rows = self.out[key].reshape(self.n, -1)
            bad = np.concatenate([start + np.flatnonzero(~np.isfinite(rows[start:start + self.CHECK_ROWS]).all(axis=1))
                                  for start in range(0, self.n, self.CHECK_ROWS)] or [np.zeros(0, dtype=np.int64)])
            if len(bad):
                raise FloatingPointError(
                    f"Non-finite {key} for {len(bad)} rows at {where} (first rows {bad[:10].tolist()}); {hint}.")
        return self.out


def _hint(epoch: int, diverged: str) -> str:
    if epoch == 0:
        return "the model as given produces them: check those rows' inputs for NaN/inf values"
    return diverged


@torch.no_grad()
def collect_checkpoint(model: nn.Module, loader, labels: torch.Tensor, *, epoch: int, fields: frozenset,
                       head: nn.Linear | None, accelerator, progress: bool = True, stage: str = "proxy epoch",
                       diverged: str = PROXY_HINT, allocate=None) -> Checkpoint:
    """One eval-mode forward pass over `loader` (prepared by `accelerator`), placed by row index.

    Args:
        stage (`str`, *optional*): what `epoch` counts, in error messages ("proxy epoch", "warm-up epoch").
        diverged (`str`, *optional*): what to do when a trained model gives non-finite signals.
        allocate (`Callable`, *optional*): `allocate(field, shape, dtype)` gives the array a per-row vector
            field (logits, features) is written into, e.g. a memory-mapped cache file; None (or no
            `allocate`): an array in memory.

    Note:
        Every process must call it; each ends up with the full arrays.
    """
    captured = {}
    hook = None
    if "features" in fields:
        hook = head.register_forward_pre_hook(lambda mod, args: captured.__setitem__("h", args[0]))
    was_training = model.training
    model.eval()
    out = _ByRow(len(labels), allocate)
    try:
        bar = Progress(f"signals @ {stage} {epoch}", len(labels), unit="rows", leave=False,
                       enabled=progress and accelerator.is_main_process)
        for batch in loader:
            rows = batch.pop(ROW_KEY)
            logits = forward_logits(model, batch).float()
            y = labels[rows.cpu()].to(logits.device)
            check_logits(logits, y, head if "features" in fields else None)
            parts = {"row": rows, **row_signals(logits, y, fields)}
            if "features" in fields:
                h = captured.pop("h")
                parts["features"] = h.reshape(h.shape[0], -1).float()
            parts = accelerator.gather_for_metrics(parts)
            placed = parts.pop("row").cpu().numpy()
            out.place(placed, parts)
            bar.update(len(placed))
        bar.close()
    finally:
        if hook is not None:
            hook.remove()
        model.train(was_training)
    return Checkpoint(epoch=epoch, **out.done(f"{stage} {epoch}", _hint(epoch, diverged)))


class SignalCollector:
    """The signals of one dataset's rows under any model: eval passes, mini-batch recording and
    eval-mode logits of chosen rows, all placed by row index and checked for finiteness.

    The proxy scores its checkpoints with :meth:`checkpoint`; `CoresetTrainer` records its warm-up
    mini-batches with :meth:`start_recording` / :meth:`record` / :meth:`stop_recording` and scores the
    rest with :meth:`checkpoint`; CREST reads :meth:`logits` and :meth:`batch_logits`. The same
    weights on the same rows give the same arrays on every path (same batches, same arithmetic).

    Args:
        dataset (`datasets.Dataset`): the rows.
        columns (`list[str]`): the model's input columns.
        labels (`np.ndarray`): class id of every row.
        accelerator (`accelerate.Accelerator`): gathers across processes and places batches on its device.
        collate_fn (`Callable`, *optional*): the user's collator (transformers' default one when None).
        batch_size (`int`, *optional*, defaults to `512`): rows per eval forward pass, per process.
        head (`str`, *optional*): module name of the classifier head (for features and head parameters).
        stage (`str`, *optional*, defaults to `"proxy epoch"`): what an epoch is, in error messages.
        diverged (`str`, *optional*): what to do when a trained model gives non-finite signals.

    Note:
        Every process must call every method with the same arguments; all end with the same arrays.
    """

    def __init__(self, dataset, columns: list[str], labels: np.ndarray, *, accelerator, collate_fn=None,
                 batch_size: int = 512, head: str | None = None, stage: str = "proxy epoch",
                 diverged: str = PROXY_HINT):
        self.rows, self.collator = row_views(dataset, columns, collate_fn)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.accelerator, self.batch_size, self.head = accelerator, batch_size, head
        self.stage, self.diverged = stage, diverged
        self._loader = None
        self._recording: tuple[int, frozenset, _ByRow] | None = None
        self._row_cache_limit = 0  # bytes; 0: read rows from the dataset on every call (see `cache_rows`)
        self._row_cache: dict | None = None

    @property
    def num_rows(self) -> int:
        return len(self.labels)

    def head_module(self, model: nn.Module) -> nn.Linear | None:
        """The classifier head of `model` (None when no head was resolved)."""
        return None if self.head is None else dict(model.named_modules())[self.head]

    # ------------------------------------------------------------------ eval pass
    def checkpoint(self, model: nn.Module, epoch: int, fields, *, progress: bool = False, allocate=None) -> Checkpoint:
        """One eval-mode pass of `model` over every row: the `fields` (see `FIELDS`) at `epoch`; `allocate`:
        see :func:`collect_checkpoint`."""
        if self._loader is None:  # prepared once: Accelerate keeps every loader it prepares
            self._loader = self.accelerator.prepare(torch.utils.data.DataLoader(
                self.rows, batch_size=self.batch_size, shuffle=False, collate_fn=self.collator))
        fields = frozenset(fields)
        return collect_checkpoint(model, self._loader, self.labels, epoch=epoch, fields=fields,
                                  head=self.head_module(model) if "features" in fields else None,
                                  accelerator=self.accelerator, progress=progress, stage=self.stage,
                                  diverged=self.diverged, allocate=allocate)

    # ------------------------------------------------------------------ rows
    def cache_rows(self, limit_bytes: int = 256 * 2**20) -> None:
        """Let :meth:`batch` read rows from one collated copy of every row, kept in memory, when it fits in
        `limit_bytes`. Only with transformers' default collator and no dataset transform (it stacks rows as
        they are, so indexing the stacked copy gives the very batch collating the rows would); otherwise
        rows are read from the dataset as before. CREST reads a few hundred rows at every step, where
        reading them from Arrow costs about as much as their forward pass."""
        self._row_cache_limit = int(limit_bytes)

    def _cached_rows(self) -> dict | None:
        """The collated copy of every row (built on first use), or None when it is not allowed or too big."""
        if self._row_cache is not None:
            return self._row_cache or None
        self._row_cache = {}
        if not self._row_cache_limit or not self.collator.is_default or self.rows.dataset.format["type"] == "custom":
            return None
        n, chunk = self.num_rows, 4096
        parts = []
        for start in range(0, n, chunk):
            batch = self.collator(self.rows.__getitems__(list(range(start, min(n, start + chunk)))))
            batch.pop(ROW_KEY)
            if not all(isinstance(v, torch.Tensor) for v in batch.values()):
                return None
            if start == 0:
                row_bytes = sum(v[:1].numel() * v.element_size() for v in batch.values())
                if row_bytes * n > self._row_cache_limit:
                    return None
            elif {k: (v.dtype, v.shape[1:]) for k, v in batch.items()} != \
                    {k: (v.dtype, v.shape[1:]) for k, v in parts[0].items()}:
                return None  # ragged across chunks: not one stackable copy
            parts.append(batch)
        self._row_cache = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return self._row_cache

    def batch(self, rows) -> dict:
        """The collated batch of `rows` (row ids) on the accelerator's device, without the row index."""
        from accelerate.utils import send_to_device

        cached = self._cached_rows()
        if cached is not None:
            index = torch.as_tensor(np.asarray(rows, dtype=np.int64))
            return send_to_device({k: v[index] for k, v in cached.items()}, self.accelerator.device)
        batch = self.collator(self.rows.__getitems__([int(r) for r in rows]))
        batch.pop(ROW_KEY)
        return send_to_device(batch, self.accelerator.device)

    def batch_logits(self, model: nn.Module, rows) -> torch.Tensor:
        """Logits of `rows` with autograd, on this process alone (CREST's quadratic model)."""
        return forward_logits(model, self.batch(rows))

    @torch.no_grad()
    def logits(self, model: nn.Module, rows) -> np.ndarray:
        """Eval-mode float32 logits of `rows` (distinct row ids), one row per id in their order.

        The rows are shared out by the sharding rule, forwarded in batches of `batch_size`, gathered with
        their ids and placed by id, and checked for finiteness.
        """
        rows = np.asarray(rows, dtype=np.int64)
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        mine = shard(rows, world, rank)
        was_training = model.training
        model.eval()
        try:
            local = [forward_logits(model, self.batch(mine[i:i + self.batch_size])).float()
                     for i in range(0, len(mine), self.batch_size)]
        finally:
            model.train(was_training)
        # Shares differ by one row at most: pad to the longest (id -1, dropped below), so that every
        # process gathers one shape.
        per = -(-len(rows) // world)
        ids = torch.full((per,), -1, dtype=torch.long, device=self.accelerator.device)
        ids[:len(mine)] = torch.as_tensor(mine, device=ids.device)
        width = local[0].shape[1] if local else int(self.labels.max()) + 1
        values = torch.zeros((per, width), device=ids.device)
        if local:
            values[:len(mine)] = torch.cat(local)
        parts = self.accelerator.gather({"row": ids, "logits": values})
        ids, values = parts["row"].cpu().numpy(), parts["logits"]
        keep = ids >= 0
        position = np.full(self.num_rows, -1)
        position[rows] = np.arange(len(rows))
        out = _ByRow(len(rows))
        out.place(position[ids[keep]], {"logits": values[torch.as_tensor(keep, device=values.device)]})
        return out.done(f"{len(rows)} CREST rows", self.diverged)["logits"]

    # ------------------------------------------------------------------ training mini-batches
    def start_recording(self, epoch: int, fields) -> None:
        """Record the cheap `fields` of every training mini-batch until :meth:`stop_recording`."""
        self._recording = (epoch, frozenset(fields), _ByRow(self.num_rows))

    @property
    def recording(self) -> int | None:
        """The epoch being recorded, or None."""
        return None if self._recording is None else self._recording[0]

    @torch.no_grad()
    def record(self, rows: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one training mini-batch: this process's `rows` (ids), their float32 logits and labels.
        Every process must call it (the per-device batches are full, so nothing is padding)."""
        _, fields, out = self._recording
        parts = self.accelerator.gather({"row": rows, **row_signals(logits.detach(), labels, fields)})
        out.place(parts.pop("row").cpu().numpy(), parts)

    def stop_recording(self) -> Checkpoint:
        """The recorded signals, as a checkpoint at the recorded epoch; a later row overwrites an earlier one."""
        epoch, _, out = self._recording
        self._recording = None
        return Checkpoint(epoch=epoch, **out.done(f"{self.stage} {epoch}", _hint(epoch, self.diverged)))
