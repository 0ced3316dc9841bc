"""Stable ids for datasets, label columns, models and selections.

The only place that reads the private ``Dataset._fingerprint``.
"""

from __future__ import annotations

import json

import numpy as np
import xxhash


def dataset_fingerprint(dataset) -> str:
    """The `datasets` fingerprint of `dataset` (what `Dataset.map`/`select` chain their caches on)."""
    return dataset._fingerprint


def column_values(dataset, column: str) -> np.ndarray:
    """All values of one column as a numpy array, read in one Arrow slice (not row by row)."""
    return dataset.with_format("numpy", columns=[column])[:][column]


def label_hash(dataset, label_column: str) -> str:
    """xxhash64 of a label column's values as int64, so that a reloaded copy of the data matches."""
    labels = np.asarray(column_values(dataset, label_column)).astype(np.int64, copy=False)
    return xxhash.xxh64(np.ascontiguousarray(labels).tobytes()).hexdigest()


def model_fingerprint(model) -> str:
    """Hash of a model's class, structure, config, weight bytes and frozen parameters (never its ``id()``).

    The structure (``repr``) carries settings that are not weights, such as dropout rates; the
    frozen parameter names decide what the proxy trains.
    """
    h = xxhash.xxh64()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    h.update(repr(model).encode())
    h.update(",".join(n for n, p in model.named_parameters() if not p.requires_grad).encode())
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        h.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(__import__("torch").uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def hash_parts(*parts) -> str:
    """xxhash64 of JSON-serialised parts (dict keys sorted)."""
    h = xxhash.xxh64()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=repr).encode())
        h.update(b"\x00")
    return h.hexdigest()
