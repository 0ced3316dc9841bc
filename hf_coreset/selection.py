"""CoresetSelection: the result of a selection, its provenance, and save / load / apply."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .fingerprint import dataset_fingerprint, label_hash

FORMAT_VERSION = 1
META_FILE = "selection.json"
INDICES_FILE = "indices.parquet"
SCORES_FILE = "scores.parquet"


@dataclass
class CoresetSelection:
    """Rows chosen from a dataset, with the scores behind the choice and where it came from.

    Attributes:
        indices (`np.ndarray` of int64): row ids into the source dataset, in pick order.
        scores (`np.ndarray` of float64): one value per source row; NaN where the method has none.
            Each method's docstring says which end it keeps.
        weights (`np.ndarray`, *optional*): one training weight per kept row (CRAIG, CREST), or None.
        gains (`np.ndarray`, *optional*): marginal objective gain of each pick for greedy methods.
        method (`str`): registry name of the method.
        config (`dict`): every setting that shaped the selection (method options, budget, proxy).
        seed (`int`): the seed the selection was made with.
        num_rows (`int`): rows in the source dataset.
        source_fingerprint (`str`): `datasets` fingerprint of the source dataset.
        label_column (`str`) and label_hash (`str`): the label column and a hash of its values,
            used by :meth:`apply` to recognise the source.
        fingerprint (`str`): an id of this selection: same inputs give the same id.
        library_version (`str`): hf-coreset version that made it.
        timings (`dict`): wall seconds of each step (proxy training, signals, scoring).
    """

    indices: np.ndarray
    scores: np.ndarray
    method: str
    num_rows: int
    weights: np.ndarray | None = None
    gains: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    source_fingerprint: str | None = None
    label_column: str | None = None
    label_hash: str | None = None
    fingerprint: str | None = None
    library_version: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.indices.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {self.indices.shape}.")
        if len(np.unique(self.indices)) != len(self.indices):
            raise ValueError("indices contain repeated rows; a selection keeps each row at most once.")
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= self.num_rows):
            raise ValueError(f"indices must lie in [0, {self.num_rows}); got min {self.indices.min()}, max {self.indices.max()}.")
        if self.scores.shape != (self.num_rows,):
            raise ValueError(f"scores must have one value per source row ({self.num_rows}), got shape {self.scores.shape}.")
        for name in ("weights", "gains"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape != self.indices.shape:
                raise ValueError(f"{name} must have one value per kept row ({len(self.indices)}), got shape {value.shape}.")
            setattr(self, name, value)
        if self.weights is not None:
            if not np.all(np.isfinite(self.weights)) or np.any(self.weights < 0) or not np.any(self.weights > 0):
                raise ValueError("weights must be finite, non-negative and not all zero.")

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return (f"CoresetSelection(method={self.method!r}, kept={len(self)}/{self.num_rows} "
                f"({len(self) / max(self.num_rows, 1):.1%}), weighted={self.weights is not None}, seed={self.seed})")

    @property
    def fraction(self) -> float:
        return len(self) / self.num_rows

    # ------------------------------------------------------------------ apply
    def check_source(self, dataset, *, check: str = "strict") -> None:
        """Raise `ValueError` unless `dataset` is the dataset this selection was made from.

        Args:
            check (`str`, *optional*, defaults to `"strict"`): `"strict"` compares row count, label
                hash and the `datasets` fingerprint; `"content"` compares row count and label hash
                only (use it for the same data loaded another way, whose fingerprint differs);
                `"none"` compares the row count only.
        """
        if check not in ("strict", "content", "none"):
            raise ValueError(f"check={check!r}; pass 'strict', 'content' or 'none'.")
        if dataset.num_rows != self.num_rows:
            raise ValueError(
                f"This selection was made from a dataset of {self.num_rows} rows (fingerprint "
                f"{self.source_fingerprint}), but the dataset given has {dataset.num_rows} rows "
                f"(fingerprint {dataset_fingerprint(dataset)}). Apply it to its source dataset.")
        if check == "none":
            return
        if self.label_column is not None and self.label_hash is not None:
            if self.label_column not in dataset.column_names:
                raise ValueError(f"The selection's label column {self.label_column!r} is not in the dataset "
                                 f"(columns: {dataset.column_names}); it cannot be checked against its source.")
            found = label_hash(dataset, self.label_column)
            if found != self.label_hash:
                raise ValueError(
                    f"The dataset's {self.label_column!r} column (hash {found}) differs from the source's "
                    f"(hash {self.label_hash}, fingerprint {self.source_fingerprint}); this is not the "
                    f"dataset the selection was made from.")
        if check == "strict" and self.source_fingerprint is not None:
            found = dataset_fingerprint(dataset)
            if found != self.source_fingerprint:
                raise ValueError(
                    f"The dataset's fingerprint {found} differs from the selection's source fingerprint "
                    f"{self.source_fingerprint}. If it is the same data loaded another way, pass "
                    f"check='content' to compare row count and labels instead.")

    def apply(self, dataset, *, check: str = "strict", keep_order: bool = False):
        """Return the kept rows of `dataset` as a `datasets.Dataset`.

        Args:
            dataset (`datasets.Dataset`): the source dataset (checked, see :meth:`check_source`).
            check (`str`, *optional*, defaults to `"strict"`): how strictly to check the source.
            keep_order (`bool`, *optional*, defaults to `False`): keep rows in pick order instead of
                ascending row order (ascending keeps Arrow reads contiguous).

        Returns:
            `datasets.Dataset` with ``len(self)`` rows.

        Example:
            ```python
            >>> pruned = sel.apply(ds)
            >>> len(pruned) == len(sel)
            True
            ```
        """
        self.check_source(dataset, check=check)
        rows = self.indices if keep_order else np.sort(self.indices)
        new_fp = None
        if self.fingerprint is not None:
            new_fp = self.fingerprint[:16] + ("o" if keep_order else "s")
        return dataset.select(rows, new_fingerprint=new_fp)

    # ------------------------------------------------------------- save/load
    def metadata(self) -> dict[str, Any]:
        meta = {k: v for k, v in asdict(self).items() if k not in ("indices", "scores", "weights", "gains")}
        meta["format_version"] = FORMAT_VERSION
        meta["num_kept"] = len(self)
        meta["weighted"] = self.weights is not None
        return _jsonable(meta)

    def index_table(self) -> pa.Table:
        cols = {"index": pa.array(self.indices, pa.int64())}
        if self.weights is not None:
            cols["weight"] = pa.array(self.weights, pa.float64())
        if self.gains is not None:
            cols["gain"] = pa.array(self.gains, pa.float64())
        return pa.table(cols)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the selection to `directory` as `selection.json` + two parquet files (no pickle).

        The write goes to a temporary folder that is renamed into place, so an interrupted save
        never leaves a half-written selection behind.
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
        if tmp.exists():
            _rmtree(tmp)
        tmp.mkdir()
        try:
            (tmp / META_FILE).write_text(json.dumps(self.metadata(), indent=2, sort_keys=True))
            pq.write_table(self.index_table(), tmp / INDICES_FILE)
            pq.write_table(pa.table({"score": pa.array(self.scores, pa.float64())}), tmp / SCORES_FILE)
            if directory.exists():
                for name in (META_FILE, INDICES_FILE, SCORES_FILE):
                    (directory / name).unlink(missing_ok=True)
                for name in (META_FILE, INDICES_FILE, SCORES_FILE):
                    os.replace(tmp / name, directory / name)
                _rmtree(tmp)
            else:
                os.replace(tmp, directory)
        except BaseException:
            _rmtree(tmp)
            raise
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "CoresetSelection":
        """Read a selection written by :meth:`save` (or pushed to the Hub)."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"No {META_FILE} in {directory}; is it a folder written by CoresetSelection.save?")
        meta = json.loads(meta_path.read_text())
        return cls.from_parts(meta, pq.read_table(directory / INDICES_FILE), pq.read_table(directory / SCORES_FILE))

    @classmethod
    def from_parts(cls, meta: dict, index_table: pa.Table, score_table: pa.Table) -> "CoresetSelection":
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"Selection format version {version} is not supported by this hf-coreset "
                             f"(it reads version {FORMAT_VERSION}); upgrade hf-coreset.")
        cols = index_table.column_names
        fields = {k: meta.get(k) for k in ("method", "num_rows", "config", "seed", "source_fingerprint",
                                            "label_column", "label_hash", "fingerprint", "library_version", "timings")}
        fields["config"] = fields["config"] or {}
        fields["timings"] = fields["timings"] or {}
        return cls(
            indices=index_table.column("index").to_numpy(),
            scores=score_table.column("score").to_numpy(zero_copy_only=False),
            weights=index_table.column("weight").to_numpy() if "weight" in cols else None,
            gains=index_table.column("gain").to_numpy() if "gain" in cols else None,
            **fields,
        )

    # ------------------------------------------------------------------- Hub
    def push_to_hub(self, repo_id: str, *, dataset, private: bool = False, token: str | None = None,
                    revision: str | None = None, commit_message: str | None = None, **kwargs):
        """Publish the kept rows, this selection and a dataset card to a Hub dataset repo, in one commit.

        See :func:`hf_coreset.hub.push_to_hub` for every argument (`check`, `overwrite`, `timeout`, ...).

        Returns:
            `huggingface_hub.CommitInfo`

        Example:
            ```python
            >>> sel.push_to_hub("me/mnist1d-kcenter-10pct", dataset=ds)
            ```
        """
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, dataset=dataset, private=private, token=token, revision=revision,
                           commit_message=commit_message, **kwargs)

    @classmethod
    def from_hub(cls, repo_id: str, revision: str | None = None, token: str | None = None,
                 timeout: float | None = None) -> "CoresetSelection":
        """Load a selection pushed with :meth:`push_to_hub` (without downloading the kept rows).

        See :func:`hf_coreset.hub.from_hub`.

        Example:
            ```python
            >>> pruned = CoresetSelection.from_hub("me/mnist1d-kcenter-10pct").apply(ds)
            ```
        """
        from .hub import from_hub

        return from_hub(repo_id, revision=revision, token=token, timeout=timeout)

    def per_class_counts(self, labels: np.ndarray) -> dict[int, int]:
        """Kept rows per class id, given the source's labels."""
        kept = np.asarray(labels)[self.indices]
        ids, counts = np.unique(kept, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
