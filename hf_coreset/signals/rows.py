"""Rows as the collector and the samplers see them: each carries its dataset index (and a training
weight) through the user's collator, so values can be placed by row on every process."""

from __future__ import annotations

import numpy as np
import torch

ROW_KEY = "_coreset_row"
WEIGHT_KEY = "_coreset_weight"  # per-row loss weight of a training share (0 marks a padding row)


def read_format(dataset, *, tensors: bool = False, plain: bool = False) -> str | None:
    """The format `RowDataset` reads `dataset`'s rows in (the signal cache keys on it, not on the
    output format): "custom" for a transform, "torch" with `tensors`, None (Python values) with
    `plain`, else the dataset's "numpy" or "torch" format, else None."""
    kind = dataset.format["type"]
    if kind == "custom":
        return kind
    if tensors or plain:
        return "torch" if tensors else None
    return kind if kind in ("numpy", "torch") else None


class RowDataset(torch.utils.data.Dataset):
    """A `datasets.Dataset` seen as rows of the given columns, each carrying its row index.

    Rows come in the dataset's "numpy" or "torch" format when it has one, else as Python values
    (Arrow, pandas or polars rows are not what a torch collator takes). A transform set with
    `with_transform` is the user's preprocessing and is applied. Items may be row ids or
    `(row id, weight)` pairs; a weight rides along under ``WEIGHT_KEY``. `tensors=True` reads any
    format but a transform as torch tensors, for transformers' `default_data_collator`, which builds
    the same batch from them as from Python lists or numpy rows without converting every value
    (about a third of the signal pass on MNIST-1D; benchmarks/results/cost.md); `plain=True` reads
    Python values, for transformers' other collators, which turn any row format into the same batch
    (padding goes through Python lists). Either way the output format does not change the signals.
    """

    def __init__(self, dataset, columns: list[str], *, tensors: bool = False, plain: bool = False):
        kind = read_format(dataset, tensors=tensors, plain=plain)
        if kind != "custom":
            # Reset the format's column list too: set_format(columns=[...]) may hide the inputs.
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
        # One of transformers' collator classes (not a subclass of the user's): it takes rows in any format.
        self.takes_any_format = type(self.collate_fn).__module__ == "transformers.data.data_collator"

    def __call__(self, features):
        # The rows are RowDataset's fresh dicts, so popping our keys is cheaper than copying each row.
        extra = {ROW_KEY: torch.tensor([f.pop(ROW_KEY) for f in features], dtype=torch.long)}
        if WEIGHT_KEY in features[0]:
            extra[WEIGHT_KEY] = torch.tensor([f.pop(WEIGHT_KEY) for f in features], dtype=torch.float32)
        if self.is_default and any(v is None for v in features[0].values()):
            # default_data_collator silently drops a key whose first value is None.
            raise ValueError(self._row_problem(features, extra[ROW_KEY].tolist()))
        try:
            batch = dict(self.collate_fn(features))
        except Exception as err:
            problem = self._row_problem(features, extra[ROW_KEY].tolist())
            if problem is None:
                raise
            raise ValueError(problem) from err
        batch.update(extra)
        return batch

    def _row_problem(self, features: list[dict], rows: list[int]) -> str | None:
        """None values or unequal shapes in one column of the batch, which a collator cannot stack."""
        for key in features[0]:
            values = [f.get(key) for f in features]
            none = [r for r, v in zip(rows, values) if v is None]
            if none:
                return (f"Column {key!r} has None in rows {none[:10]} of this batch; drop or fill those rows "
                        f"first, e.g. ds.filter(lambda r: r[{key!r}] is not None).")
            shapes = [tuple(v.shape) if hasattr(v, "shape") else (len(v),) if isinstance(v, (list, tuple)) else ()
                      for v in values]
            if len(set(shapes)) > 1:
                odd = [r for r, shape in zip(rows, shapes) if shape != shapes[0]]
                fix = ("pass collate_fn=DataCollatorWithPadding(tokenizer) or pad the column to one length"
                       if self.is_default else "your collate_fn must pad it, or pad the column to one length")
                return f"Column {key!r} has ragged shapes in rows {[rows[0]] + odd[:9]} of this batch; {fix}."
        return None


def row_views(dataset, columns: list[str], collate_fn=None) -> tuple[RowDataset, RowCollator]:
    """The row dataset and its collator for `collate_fn` (None = transformers' default one); with the
    default collator rows are read as tensors, with transformers' other collators as Python values."""
    collator = RowCollator(collate_fn)
    return RowDataset(dataset, columns, tensors=collator.is_default, plain=collator.takes_any_format), collator


# --------------------------------------------------------------------------- order and sharding
CREST_STREAM = 0xC4E57  # CREST's stream (subsets, check samples, probes, draws), apart from the epochs' streams


def generator(seed: int, stream: int = 0) -> torch.Generator:
    """The one seed -> generator rule: stream `stream` of `seed`, the same on every process.

    Epoch e of a training run (proxy epoch e + 1, trainer epoch e) shuffles with stream e; CREST
    draws from ``CREST_STREAM``. The rule is the proxy's since its first version, so the proxy's
    trajectories, and the signals cached from them, stay what they were.

    Example:
        ```python
        >>> g = generator(seed=0, stream=1)  # epoch 1 of a run seeded 0, on every process
        >>> order = torch.randperm(10, generator=g)
        ```
    """
    return torch.Generator().manual_seed(int(seed) * 100003 + int(stream))


def permutation(n: int, g: torch.Generator) -> np.ndarray:
    """A random order of range(n) drawn from `g` (int64)."""
    return torch.randperm(n, generator=g).numpy()


def shard(batch, num_processes: int, process_index: int):
    """Process `process_index`'s contiguous share of a global batch: shares differ by at most one row,
    the first ``len(batch) % num_processes`` processes taking the longer ones (as ``np.array_split``)."""
    q, r = divmod(len(batch), num_processes)
    start = process_index * q + min(process_index, r)
    return batch[start:start + q + (process_index < r)]


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Global batches of row ids, the same on every process, each cut into per-process shares by :func:`shard`.

    Epoch e draws from ``generator(seed, e)``; a subclass says what the global batches of an epoch are
    (:meth:`global_batches`, :meth:`num_batches`). With `process_index` given, it yields that process's
    share of each batch (a loader that nobody shards again); with None, every process's share in turn,
    for Accelerate's ``BatchSamplerShard`` to hand the p-th of every `num_processes` to process p. With
    `weighted`, items are ``(row, weight)`` pairs for :class:`RowDataset`: a real row weighs
    num_processes / len(batch), so the weighted loss sums, averaged over processes by DDP, give the mean
    loss of the global batch and 1 and N processes take the same steps; a share left empty (a batch
    with fewer rows than processes) holds the batch's first row at weight 0.
    """

    def __init__(self, seed: int, *, num_processes: int = 1, process_index: int | None = None,
                 weighted: bool = False, epoch: int = 0):
        self.seed, self.num_processes, self.process_index = seed, num_processes, process_index
        self.weighted, self.epoch = weighted, epoch

    def global_batches(self, epoch: int, g: torch.Generator):
        """The global batches (sequences of row ids) of `epoch`, drawing randomness from `g` only."""
        raise NotImplementedError

    def num_batches(self, epoch: int) -> int:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches(self.epoch) * (self.num_processes if self.process_index is None else 1)

    def __iter__(self):
        world = self.num_processes
        ranks = range(world) if self.process_index is None else [self.process_index]
        for batch in self.global_batches(self.epoch, generator(self.seed, self.epoch)):
            for p in ranks:
                mine = [int(row) for row in shard(batch, world, p)]
                if not self.weighted:
                    yield mine
                else:
                    weight = world / len(batch)
                    yield [(row, weight) for row in mine] or [(int(batch[0]), 0.0)]
