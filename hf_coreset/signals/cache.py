"""The signal cache: signals on disk, keyed on everything that changes them, plus the proxy state
that lets an interrupted run resume (deleted when the run completes, unless kept on request)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..fingerprint import (SourceUnavailable, callable_fingerprint, code_fingerprint, dataset_fingerprint, hash_parts,
                           model_fingerprint, rows_fingerprint)
from .rows import RowCollator, read_format

logger = logging.getLogger(__name__)

CACHE_ENV = "HF_CORESET_CACHE"
# Part of every signal cache key: bump it whenever the signals package or proxy.py changes what the
# signals of a given model, data and settings are, so that entries written by older code are not reused.
# 2: keys cover the model's and collator's code.
# 3: under N processes a proxy batch is shared by signals.rows.shard (shares differ by one row at most,
#    no weight-0 padding rows, which entered BatchNorm statistics); one process is unchanged.
# 4: keys read the input and label values and the format rows are read in (not datasets' fingerprint,
#    which the output format changes); with the default collator a numpy-formatted dataset is read as tensors,
#    with transformers' other collators a formatted one as Python values.
SIGNALS_VERSION = 4


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "hf_coreset"



def cache_root(cache_dir) -> tuple[Path, str]:
    """The cache folder `cache_dir` stands for, and where it came from (for error messages)."""
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a folder path, None (the default cache) or False (no cache), "
                        f"not {type(cache_dir).__name__} {cache_dir!r}.")
    if cache_dir:
        return Path(cache_dir), "cache_dir"
    return default_cache_dir(), f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else "the default cache folder"


_NDIM = {"loss": 1, "correct": 1, "logits": 2, "features": 2}


def _reason(error: Exception) -> str:
    """The first sentence of an error, short enough for a warning."""
    return f"{type(error).__name__}: " + (str(error).split(". ")[0].splitlines() or [""])[0][:200]


def _all_finite(path: Path, array: np.memmap, block_bytes: int = 64 << 20) -> bool:
    """Whether the memory-mapped `array` holds only finite values, read from `path` in blocks by plain file
    reads: mapping the whole file in would keep it resident in this process until the map is dropped."""
    buf = np.empty(max(1, block_bytes // array.itemsize), dtype=array.dtype)
    left = array.size
    with open(path, "rb") as f:
        f.seek(array.offset)
        while left:
            block = buf[:min(left, len(buf))]
            if f.readinto(block.view(np.uint8)) != block.nbytes or not np.isfinite(block).all():
                return False
            left -= len(block)
    return True


class SignalCache:
    """Signals on disk under ``<cache_dir>/signals/<key>/``: one .npy per (epoch, field), plus, while a
    run is in progress (or with ``ProxyConfig(keep_state=True)``), the proxy state at its last epoch so
    that an interrupted run resumes.

    A file that cannot be read or does not hold what the proxy writes (rows, shape, dtype, finite
    values) is reported, deleted (by the main process) and treated as missing, so it is recomputed.
    """

    def __init__(self, root: Path | None, meta: dict | None = None, *, num_rows: int | None = None,
                 main_process: bool = True):
        self.root = root
        self.meta = meta or {}
        self.num_rows = num_rows
        self.main_process = main_process

    def path(self, epoch: int, field: str) -> Path:
        return self.root / f"epoch{epoch:04d}.{field}.npy"

    def check_writable(self, folder: Path, origin: str) -> None:
        """Raise now, before any training, if the cache cannot be written under `folder`."""
        try:
            existing = self.root
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            if not existing.is_dir():
                raise NotADirectoryError(f"{existing} is a file, not a folder")
            tempfile.TemporaryFile(dir=existing).close()  # a real write: permissions, read-only mounts, quotas
        except OSError as e:
            raise ValueError(f"The signal cache folder {folder} ({origin}) cannot be written ({e}); pass "
                             "cache_dir=<a writable folder>, or cache_dir=False to turn the cache off.") from None

    def load(self, epoch: int, field: str) -> np.ndarray | None:
        """The cached array as a read-only memory map (rows are read from disk as methods index them),
        or None when it is absent or unusable."""
        if self.root is None or not self.path(epoch, field).is_file():
            return None
        path = self.path(epoch, field)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as e:  # truncated, empty, not a .npy file, or pickled objects
            return self._drop(path, _reason(e))
        kind = "bu" if field == "correct" else "f"
        if array.dtype.kind not in kind or array.ndim != _NDIM[field]:
            return self._drop(path, f"dtype {array.dtype} and shape {array.shape}, not what the proxy writes")
        if self.num_rows is not None and len(array) != self.num_rows:
            return self._drop(path, f"{len(array)} rows, but the dataset has {self.num_rows}")
        if field == "correct" and array.size and array.max() > 1:
            return self._drop(path, "values other than 0 and 1")
        if kind == "f" and not _all_finite(path, array):
            return self._drop(path, "NaN or inf values")
        return array

    def open(self, epoch: int, field: str) -> np.ndarray | None:
        """A file this run has just written, as a read-only memory map without `load`'s checks (its values
        were checked as they were collected); None when this process cannot read it (e.g. another machine's disk)."""
        try:
            return np.load(self.path(epoch, field), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None

    def _drop(self, path: Path, problem: str) -> None:
        logger.warning("The cached signal file %s is unusable (%s); it is deleted and its signals recomputed.",
                       path, problem)
        if self.main_process:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a read-only cache: the entry is still not used
                pass
        return None

    def touch(self) -> None:
        """Mark the entry as used now (meta.json's time, which `list_entries` reports as last used)."""
        if self.root is not None and self.main_process:
            try:
                os.utime(self.root / "meta.json")
            except OSError:  # no entry yet, or a read-only cache
                pass

    def _create(self) -> None:
        if not self.root.is_dir():  # created on the first write: a run that fails before leaves nothing
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "meta.json").write_text(json.dumps(self.meta, indent=2, default=repr))

    def save(self, epoch: int, field: str, array: np.ndarray) -> None:
        if self.root is None:
            return
        self._create()
        final = self.path(epoch, field)
        tmp = final.with_name(final.name + f".tmp{os.getpid()}.npy")
        np.save(tmp, array, allow_pickle=False)
        os.replace(tmp, final)  # atomic: a killed run never leaves a truncated file

    def _pending(self, epoch: int, field: str) -> Path:
        # beside the entry, not in it: a collection that fails (non-finite signals) leaves no entry behind
        return self.root.parent / f".{self.root.name}.{self.path(epoch, field).stem}.tmp{os.getpid()}.npy"

    def create(self, epoch: int, field: str, shape: tuple, dtype) -> np.ndarray | None:
        """A new .npy file for (epoch, field), memory-mapped for writing, that collection fills row by row
        (so the collecting process never holds the array); `commit` puts it in place, `discard` drops it.
        None without a cache folder."""
        if self.root is None:
            return None
        self.root.parent.mkdir(parents=True, exist_ok=True)
        return np.lib.format.open_memmap(self._pending(epoch, field), mode="w+", dtype=dtype, shape=shape)

    def commit(self, epoch: int, field: str, array: np.memmap) -> None:
        """Put a file from `create`, filled and checked, in the entry (atomically, like `save`)."""
        array.flush()
        self._create()
        os.replace(self._pending(epoch, field), self.path(epoch, field))

    def discard(self) -> None:
        """Delete this process's files from `create` that were not committed (a failed or unused collection)."""
        if self.root is not None and self.root.parent.is_dir():
            for path in self.root.parent.glob(f".{self.root.name}.*.tmp{os.getpid()}.npy"):
                path.unlink(missing_ok=True)

    def state_path(self) -> Path:
        return self.root / "proxy_state.pt"

    def save_state(self, epoch: int, model, optimizer, device: torch.device) -> None:
        if self.root is None:
            return
        self._create()
        tmp = self.state_path().with_suffix(f".tmp{os.getpid()}")
        state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": torch.get_rng_state()}
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        torch.save(state, tmp)
        os.replace(tmp, self.state_path())

    def drop_state(self) -> None:
        if self.root is not None:
            try:
                self.state_path().unlink(missing_ok=True)
            except OSError:  # a read-only cache: nothing was written to it either
                pass

    def load_state(self) -> dict | None:
        if self.root is None or not self.state_path().is_file():
            return None
        try:
            state = torch.load(self.state_path(), weights_only=True)
        except Exception as e:  # truncated or not a torch file
            return self._drop(self.state_path(), _reason(e))
        if not (isinstance(state, dict) and isinstance(state.get("epoch"), int)
                and {"model", "optimizer", "rng"} <= state.keys()):
            return self._drop(self.state_path(), "not a proxy state")
        return state



def signal_cache(folder: Path, model, dataset, num_rows, proxy_key: dict, seed, label_column, inputs, head_name,
                 collate_fn, accelerator) -> SignalCache:
    """The cache entry for everything that determines the signals: the data (the values of the input
    and label columns, and the format the rows are read in, not the output format), the model's weights
    and code, the collator's code and settings, the head, the proxy's training settings (`proxy_key`) and
    seed, the mixed precision, and the signal code (SIGNALS_VERSION, torch's version). No entry (a warning) when
    some code has no source file to key on."""
    from transformers import default_data_collator

    collate_fn = default_data_collator if collate_fn is None else collate_fn
    rows_collator = RowCollator(collate_fn)
    reading = {"format": read_format(dataset, tensors=rows_collator.is_default,
                                     plain=rows_collator.takes_any_format)}
    try:
        code = code_fingerprint(model)
        collator = callable_fingerprint(collate_fn)
        if reading["format"] == "custom":  # a transform is preprocessing: its code and settings count
            fmt = dataset.format
            reading.update(transform=callable_fingerprint(fmt["format_kwargs"].get("transform")),
                           columns=fmt["columns"], output_all_columns=fmt["output_all_columns"])
    except SourceUnavailable as e:
        logger.warning("%s, so the signal cache cannot tell it from an edited version: its signals are recomputed "
                       "and not cached. Define it in a .py file to use the cache (or pass cache_dir=False to "
                       "silence this).", e)
        return SignalCache(None)
    rows = rows_fingerprint(dataset, [*inputs, label_column])
    key = hash_parts(rows, reading, model_fingerprint(model), code, proxy_key, seed, label_column, inputs,
                     head_name, collator, str(accelerator.mixed_precision), SIGNALS_VERSION, torch.__version__)
    meta = {"dataset": dataset_fingerprint(dataset), "rows": rows, "num_rows": num_rows, "reading": reading,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}", "proxy": proxy_key, "seed": seed,
            "head": head_name, "inputs": inputs, "model_code": code, "collator": collator,
            "signals_version": SIGNALS_VERSION}
    return SignalCache(folder / "signals" / key, meta=meta, num_rows=num_rows,
                       main_process=accelerator.is_main_process)


_SIGNAL_FILE = re.compile(r"epoch(\d{4})\.(\w+)\.npy")


@dataclass
class CacheEntry:
    """One signal cache entry, as `hf-coreset cache ls` shows it."""

    key: str
    path: Path
    size: int  # bytes, every file of the entry
    last_used: float  # seconds since the epoch: the latest write or read (meta.json's time)
    epochs: dict[int, list[str]] = field(default_factory=dict)  # epoch -> cached fields
    has_state: bool = False  # a proxy state: a run in progress, interrupted, or kept on request
    model_class: str | None = None
    dataset: str | None = None  # datasets' fingerprint when the entry was written
    num_rows: int | None = None
    signals_version: int | None = None

    @property
    def stale(self) -> bool:
        """Written by other signal code: its key can no longer be computed, so it is never read again."""
        return self.signals_version != SIGNALS_VERSION


def list_entries(cache_dir=None) -> list[CacheEntry]:
    """The entries under ``<cache_dir>/signals`` (None: the default cache), least recently used first."""
    folder = cache_root(cache_dir)[0] / "signals"
    out = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not path.is_dir():
            continue
        files = [p for p in path.iterdir() if p.is_file()]
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        entry = CacheEntry(key=path.name, path=path, size=sum(p.stat().st_size for p in files),
                           last_used=max([p.stat().st_mtime for p in files if p.name == "meta.json"]
                                         or [p.stat().st_mtime for p in files] or [path.stat().st_mtime]),
                           has_state=(path / "proxy_state.pt").is_file(), model_class=meta.get("model_class"),
                           dataset=meta.get("dataset"), num_rows=meta.get("num_rows"),
                           signals_version=meta.get("signals_version"))
        for p in files:
            match = _SIGNAL_FILE.fullmatch(p.name)
            if match:
                entry.epochs.setdefault(int(match[1]), []).append(match[2])
        entry.epochs = {e: sorted(fs) for e, fs in sorted(entry.epochs.items())}
        out.append(entry)
    return sorted(out, key=lambda e: e.last_used)


def remove_entries(entries) -> int:
    """Delete these entries' folders; returns the bytes freed."""
    freed = 0
    for entry in entries:
        shutil.rmtree(entry.path, ignore_errors=True)
        freed += entry.size
    return freed


def format_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
