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

from . import hub
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
        self._check_dataset_type(dataset)
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

    def _check_dataset_type(self, dataset) -> None:
        """A `TypeError` that says what to pass unless `dataset` is a `datasets.Dataset`."""
        import datasets

        if isinstance(dataset, (datasets.IterableDataset, datasets.IterableDatasetDict)):
            raise TypeError(f"apply needs a datasets.Dataset with random access to its rows, not an "
                            f"{type(dataset).__name__}; load the data without streaming (streaming=False).")
        if isinstance(dataset, datasets.DatasetDict):
            splits = list(dataset)
            by_fp = [s for s in splits if dataset_fingerprint(dataset[s]) == self.source_fingerprint]
            by_rows = [s for s in splits if dataset[s].num_rows == self.num_rows]
            if by_fp:
                why = "its fingerprint matches the selection's source"
            elif by_rows:
                why = f"the only split with {self.num_rows} rows" if len(by_rows) == 1 else \
                    f"one of {by_rows}, the splits with {self.num_rows} rows"
            else:
                why = f"no split has the source's {self.num_rows} rows"
            name = (by_fp or by_rows or splits or ["train"])[0]
            raise TypeError(f"apply needs one split, not a DatasetDict (splits: {splits}); pass the split the "
                            f"selection was made from, e.g. selection.apply(ds[{name!r}]) ({why}).")
        if not isinstance(dataset, datasets.Dataset):
            raise TypeError(f"apply needs a datasets.Dataset, not {type(dataset).__name__}; pass the dataset "
                            f"the selection was made from.")

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

        The files are written to a sibling temporary folder that then replaces `directory` by
        renames, so `directory` holds the complete old selection until the complete new one is in
        place; on any error the old one stays and no temporary folder is left. A folder holding
        anything but a selection's files, or a file, is never replaced (`ValueError`).
        """
        target = check_save_target(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling(target, "tmp")
        tmp.mkdir()
        try:
            (tmp / META_FILE).write_text(json.dumps(self.metadata(), indent=2, sort_keys=True))
            pq.write_table(self.index_table(), tmp / INDICES_FILE)
            pq.write_table(pa.table({"score": pa.array(self.scores, pa.float64())}), tmp / SCORES_FILE)
            if target.exists():
                _swap_in(tmp, target)
            else:
                os.replace(tmp, target)
        except BaseException:
            _rmtree(tmp)
            raise
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "CoresetSelection":
        """Read a selection written by :meth:`save` (or pushed to the Hub).

        Every file is checked; a missing, damaged or edited one raises `FileNotFoundError` or
        `ValueError` naming it.
        """
        directory = Path(directory)
        if not directory.is_dir():
            target = Path(os.path.abspath(directory))
            backups = sorted(target.parent.glob(f".{target.name}.old-*/{META_FILE}"))  # see _swap_in
            hint = (f"; an interrupted save left the previous selection in {backups[-1].parent}: rename "
                    f"{backups[-1].parent} to {target} to use it" if backups else "")
            raise FileNotFoundError(f"No selection folder at {directory}{hint}.")
        if not (directory / META_FILE).is_file():
            raise FileNotFoundError(f"No {META_FILE} in {directory}; is it a folder written by CoresetSelection.save?")
        return cls.from_files(directory / META_FILE, directory / INDICES_FILE, directory / SCORES_FILE)

    @classmethod
    def from_files(cls, meta_path: str | os.PathLike, indices_path: str | os.PathLike,
                   scores_path: str | os.PathLike) -> "CoresetSelection":
        """Read and check the three files of a selection (as written by :meth:`save`), wherever they are."""
        paths = {META_FILE: Path(meta_path), INDICES_FILE: Path(indices_path), SCORES_FILE: Path(scores_path)}
        for path in paths.values():
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing, so the selection is incomplete; {_FIX}.")
        try:
            meta = json.loads(paths[META_FILE].read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
            raise _damaged(paths[META_FILE], f"not valid JSON: {err}") from err
        tables = {}
        for name in (INDICES_FILE, SCORES_FILE):
            try:
                tables[name] = pq.read_table(paths[name])
            except (pa.ArrowException, OSError) as err:
                raise _damaged(paths[name], f"not a readable parquet file: {err}") from err
        return cls.from_parts(meta, tables[INDICES_FILE], tables[SCORES_FILE], paths=paths)

    @classmethod
    def from_parts(cls, meta: dict, index_table: pa.Table, score_table: pa.Table, *,
                   paths: dict[str, Path] | None = None) -> "CoresetSelection":
        """Build a selection from parsed `selection.json` and its two tables, checking each.

        `paths` maps each file name to where it was read from, for the error messages.
        """
        paths = {name: Path(name) for name in (META_FILE, INDICES_FILE, SCORES_FILE)} | dict(paths or {})
        if not isinstance(meta, dict):
            raise _damaged(paths[META_FILE], f"it holds a {type(meta).__name__}, not a JSON object")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"Selection format version {version} is not supported by this hf-coreset "
                             f"(it reads version {FORMAT_VERSION}); upgrade hf-coreset.")
        fields = _check_meta(meta, paths[META_FILE])
        arrays = _check_index_table(index_table, paths[INDICES_FILE], meta, paths[META_FILE].name)
        scores = _column(score_table, "score", pa.types.is_floating, "scores must be floats", paths[SCORES_FILE])
        if len(scores) != fields["num_rows"]:
            raise _damaged(paths[SCORES_FILE], f"it has {len(scores)} rows, but {paths[META_FILE].name} records "
                                               f"num_rows={fields['num_rows']}")
        try:
            return cls(scores=scores, **arrays, **fields)
        except ValueError as err:  # e.g. negative weights: the index file carries them
            raise _damaged(paths[INDICES_FILE], str(err).rstrip(".")) from err

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
        return hub.push_to_hub(self, repo_id, dataset=dataset, private=private, token=token, revision=revision,
                               commit_message=commit_message, **kwargs)

    @classmethod
    def from_hub(cls, repo_id: str, revision: str | None = None, token: str | None = None,
                 timeout: float | None = None) -> "CoresetSelection":
        """Load a selection pushed with :meth:`push_to_hub` (without downloading the kept rows).

        Its three files come from one commit (the revision is resolved first) and get the same checks as
        :meth:`load`. With ``HF_HUB_OFFLINE=1`` they come from the local Hugging Face cache (a selection
        loaded once online), without any request.

        Args:
            repo_id (`str`): the dataset repo, ``"user/name"``.
            revision (`str`, *optional*): branch, tag or commit sha; defaults to ``main``.
            token (`str`, *optional*): needed for a private repo; defaults to ``HF_TOKEN`` or the login.
            timeout (`float`, *optional*): seconds each request may wait for the Hub; defaults to
                ``HF_CORESET_HUB_TIMEOUT`` or 60.

        Returns:
            `CoresetSelection`

        Example:
            ```python
            >>> pruned = CoresetSelection.from_hub("me/mnist1d-kcenter-10pct").apply(ds)
            ```
        """
        paths = hub.download_selection(repo_id, (META_FILE, INDICES_FILE, SCORES_FILE), revision=revision,
                                       token=token, timeout=timeout)
        return cls.from_files(paths[META_FILE], paths[INDICES_FILE], paths[SCORES_FILE])

    def plot(self, path: str | os.PathLike | None = None, *, dataset=None):
        """A figure of what was kept: the score histogram of kept vs dropped rows, and rows per class.

        The left panel needs finite scores (score methods, e.g. EL2N; not "random"); the right panel needs
        the labels: from `dataset` if given, else the per-class counts the selection recorded
        (``config["class_rows"]`` and ``config["class_kept"]``). A panel without its data says so.

        Args:
            path (`str` or `os.PathLike`, *optional*): also save the figure there as a PNG.
            dataset (`datasets.Dataset`, *optional*): the source, for the per-class counts (its row
                count is checked).

        Returns:
            `matplotlib.figure.Figure` with two axes (needs the plots extra: ``pip install 'hf-coreset[plots]'``).

        Example:
            ```python
            >>> fig = sel.plot("selection.png")
            >>> len(fig.axes)
            2
            ```
        """
        from .extras import require

        _, figure = require("matplotlib", "matplotlib.figure", extra="plots", what="CoresetSelection.plot")
        fig = figure.Figure(figsize=(10, 3.6), layout="constrained")
        hist, bars = fig.subplots(1, 2)
        kept = np.zeros(self.num_rows, dtype=bool)
        kept[self.indices] = True
        finite = np.isfinite(self.scores)
        if finite.any():
            edges = np.histogram_bin_edges(self.scores[finite], bins=40)
            hist.hist(self.scores[finite & ~kept], bins=edges, color="0.7", label=f"dropped ({int((finite & ~kept).sum())})")
            hist.hist(self.scores[finite & kept], bins=edges, color="C0", alpha=0.8, label=f"kept ({int((finite & kept).sum())})")
            hist.set_xlabel(f"{self.method} score")
            hist.set_ylabel("rows")
            hist.legend()
        else:
            hist.text(0.5, 0.5, f"{self.method} gives no per-row scores", ha="center", va="center",
                      transform=hist.transAxes)
            hist.set_axis_off()
        classes, totals, kept_per_class = self._class_counts(dataset)
        if classes is not None:
            x = np.arange(len(classes))
            bars.bar(x, totals, color="0.7", label="all rows")
            bars.bar(x, kept_per_class, color="C0", label="kept")
            bars.set_xticks(x, [str(c) for c in classes] if len(classes) <= 30 else [""] * len(classes))
            bars.set_xlabel(f"class ({self.label_column})")
            bars.set_ylabel("rows")
            bars.legend()
        else:
            bars.text(0.5, 0.5, "per-class counts unknown:\npass plot(dataset=source)", ha="center", va="center",
                      transform=bars.transAxes)
            bars.set_axis_off()
        fig.suptitle(f"{self.method}: {len(self)} of {self.num_rows} rows kept ({self.fraction:.1%})")
        if path is not None:
            fig.savefig(path, format="png", dpi=100)
        return fig

    def _class_counts(self, dataset):
        """(class ids, rows per class, kept per class) from `dataset` or the recorded config; Nones if unknown."""
        if dataset is not None:
            self.check_source(dataset, check="none")
            if self.label_column is None or self.label_column not in dataset.column_names:
                raise ValueError(f"The dataset has no label column {self.label_column!r} (columns: "
                                 f"{dataset.column_names}); pass the selection's source dataset.")
            from .fingerprint import column_values

            labels = np.asarray(column_values(dataset, self.label_column), dtype=np.int64)
            classes, totals = np.unique(labels, return_counts=True)  # not bincount: ids may be huge
            kept = np.unique(labels[self.indices], return_counts=True)
            kept = dict(zip(*kept))
            return classes, totals, np.array([kept.get(c, 0) for c in classes])
        cfg = self.config or {}
        if all(isinstance(cfg.get(k), list) for k in ("budget_classes", "class_rows", "class_kept")):
            return np.asarray(cfg["budget_classes"]), np.asarray(cfg["class_rows"]), np.asarray(cfg["class_kept"])
        return None, None, None

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


_FIX = "save the selection again or download it again"


def _damaged(path: Path, problem: str) -> ValueError:
    return ValueError(f"Selection file {path} is damaged or was edited ({problem}); {_FIX}.")


def _check_meta(meta: dict, path: Path) -> dict[str, Any]:
    """The constructor's fields from `selection.json`, each checked for its type."""
    def bad(key, expected):
        value = meta.get(key)
        return _damaged(path, f"{key} must be {expected}, not {type(value).__name__} {value!r}")

    def is_int(value):
        return isinstance(value, int) and not isinstance(value, bool)

    if not isinstance(meta.get("method"), str) or not meta["method"]:
        raise bad("method", "a string")
    if not is_int(meta.get("num_rows")) or meta["num_rows"] < 1:
        raise bad("num_rows", "a positive integer")
    if not is_int(meta.get("num_kept")) or meta["num_kept"] < 0:
        raise bad("num_kept", "a non-negative integer")
    if not isinstance(meta.get("weighted", False), bool):
        raise bad("weighted", "true or false")
    if meta.get("seed") is not None and not is_int(meta["seed"]):
        raise bad("seed", "an integer or null")
    for key in ("config", "timings"):
        if not isinstance(meta.get(key) or {}, dict):
            raise bad(key, "a JSON object")
    for key in ("source_fingerprint", "label_column", "label_hash", "fingerprint", "library_version"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise bad(key, "a string or null")
    fields = {k: meta.get(k) for k in ("method", "num_rows", "seed", "source_fingerprint", "label_column",
                                        "label_hash", "fingerprint", "library_version")}
    fields["config"] = meta.get("config") or {}
    fields["timings"] = meta.get("timings") or {}
    return fields


def _column(table: pa.Table, name: str, type_ok, expected: str, path: Path) -> np.ndarray:
    if name not in table.column_names:
        raise _damaged(path, f"it has no {name!r} column (columns: {table.column_names})")
    column = table.column(name)
    if not type_ok(column.type):
        raise _damaged(path, f"column {name!r} has type {column.type}; {expected}")
    if column.null_count and name == "index":
        raise _damaged(path, f"column 'index' has {column.null_count} missing row ids")
    return column.to_numpy(zero_copy_only=False)


def _check_index_table(table: pa.Table, path: Path, meta: dict, meta_name: str) -> dict[str, np.ndarray | None]:
    """indices, weights and gains from `indices.parquet`, checked against `selection.json`."""
    indices = _column(table, "index", pa.types.is_integer, "row ids must be integers", path)
    num_rows, num_kept = meta["num_rows"], meta["num_kept"]
    if len(indices) != num_kept:
        raise _damaged(path, f"it has {len(indices)} rows, but {meta_name} records num_kept={num_kept}")
    if len(indices) and (indices.min() < 0 or indices.max() >= num_rows):
        raise _damaged(path, f"row ids must lie in [0, {num_rows}) (num_rows in {meta_name}); "
                             f"got min {indices.min()}, max {indices.max()}")
    ids, counts = np.unique(indices, return_counts=True)
    if len(ids) != len(indices):
        raise _damaged(path, f"row {ids[counts > 1][0]} appears {counts.max()} times; each row is kept at most once")
    out = {"indices": indices}
    for key, name in (("weights", "weight"), ("gains", "gain")):
        out[key] = (_column(table, name, pa.types.is_floating, f"{key} must be floats", path)
                    if name in table.column_names else None)
    if meta.get("weighted", out["weights"] is not None) != (out["weights"] is not None):
        raise _damaged(path, f"{meta_name} says weighted={meta['weighted']} but there is "
                             f"{'no' if out['weights'] is None else 'a'} 'weight' column")
    return out


def check_save_target(directory: str | os.PathLike) -> Path:
    """Refuse a `directory` that :meth:`CoresetSelection.save` must not replace; return it as an absolute path.

    A file, or a folder holding anything but a selection's files, raises `ValueError`. Call it
    before the work that produces a selection, so a bad output path fails early.
    """
    target = Path(os.path.abspath(directory))
    if target.is_file() or (target.exists() and not target.is_dir()):
        raise ValueError(f"{target} is an existing file, not a folder; pass a folder path for the selection "
                         f"(save writes {META_FILE}, {INDICES_FILE} and {SCORES_FILE} into it).")
    if target.is_dir():
        others = sorted(p.name for p in target.iterdir() if p.name not in (META_FILE, INDICES_FILE, SCORES_FILE))
        if others:
            raise ValueError(f"{target} does not look like a saved selection: it holds {others[:5]}"
                             f"{' and more' if len(others) > 5 else ''}, which save would delete; pass a new or "
                             f"empty folder, or remove those files first.")
    return target


def _sibling(target: Path, kind: str) -> Path:
    """A fresh hidden name next to `target` (same filesystem, so renames between them are atomic)."""
    import secrets

    return target.with_name(f".{target.name}.{kind}-{secrets.token_hex(4)}")


def _swap_in(tmp: Path, target: Path) -> None:
    """Replace the folder `target` by the folder `tmp`; `target` keeps the old folder until the new one is in.

    A folder cannot be renamed over a non-empty one, so the old one is first renamed aside; if the
    second rename fails it is renamed back. Only a hard kill between the two renames can leave
    `target` missing, and then the old selection is complete under the backup name (load says so).
    """
    backup = _sibling(target, "old")
    os.replace(target, backup)
    try:
        os.replace(tmp, target)
    except BaseException as err:
        try:
            os.replace(backup, target)
        except OSError:
            raise OSError(f"Saving to {target} failed ({err!r}) and the previous selection could not be moved "
                          f"back; it is complete in {backup}: rename it to {target}.") from err
        raise
    _rmtree(backup)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
