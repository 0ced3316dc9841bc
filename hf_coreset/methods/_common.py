"""Helpers shared by methods: the output type, per-class grouping, ranking with stable ties."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..budget import Budget


@dataclass
class MethodOutput:
    """What a method returns; `select` adds provenance and makes it a CoresetSelection."""

    indices: np.ndarray
    scores: np.ndarray | None = None
    weights: np.ndarray | None = None
    gains: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def groups(labels: np.ndarray, budget: Budget) -> Iterator[tuple[np.ndarray, int]]:
    """(rows, k) per class with a non-zero budget, or one group of all rows in global mode."""
    if not budget.per_class_mode:
        yield np.arange(len(labels)), budget.total
        return
    for c, k in enumerate(budget.per_class):
        if k > 0:
            yield np.flatnonzero(labels == c), int(k)


def top_k(scores: np.ndarray, k: int, *, highest: bool = True, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Positions of the k best scores; ties go to the smaller `tiebreak` key (default: position)."""
    key2 = np.arange(len(scores)) if tiebreak is None else tiebreak
    primary = -scores if highest else scores
    return np.lexsort((key2, primary))[:k]


def keep_by_score(scores: np.ndarray, labels: np.ndarray, budget: Budget, *, highest: bool,
                  tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Per-class (or global) top-k rows by score, concatenated in rank order within each group."""
    picked = []
    for rows, k in groups(labels, budget):
        tb = None if tiebreak is None else tiebreak[rows]
        picked.append(rows[top_k(scores[rows], k, highest=highest, tiebreak=tb)])
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def check_epoch(value, name: str = "epoch", minimum: int = 0) -> int:
    """A proxy epoch option: an integer >= `minimum` (0 is the model as given)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r}; pass an integer proxy epoch >= {minimum}, e.g. {name}=10.")
    return int(value)


def last_epoch_needs(fields: tuple[str, ...], check=None):
    """A `needs` function: `fields` at the proxy epoch named by the method's `epoch` option.

    `check(**options)`, if given, validates the other options first: `select` calls `needs` before
    the proxy trains, so a bad value fails at once instead of after training.
    """

    def needs(options: dict) -> dict:
        if check is not None:
            check(**options)
        return {check_epoch(options["epoch"]): frozenset(fields)}

    return needs
