"""Rows as the collector and the samplers see them: each carries its dataset index (and a training
weight) through the user's collator, so values can be placed by row on every process."""

from __future__ import annotations

import torch

ROW_KEY = "_coreset_row"
WEIGHT_KEY = "_coreset_weight"  # per-row loss weight of a training share (0 marks a padding row)


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
    default collator a format-less dataset is read as tensors (`RowDataset(tensors=True)`)."""
    collator = RowCollator(collate_fn)
    return RowDataset(dataset, columns, tensors=collator.is_default), collator
