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


def last_epoch_needs(fields: tuple[str, ...]):
    """A `needs` function: `fields` at the proxy epoch named by the method's `epoch` option."""

    def needs(options: dict) -> dict:
        return {int(options["epoch"]): frozenset(fields)}

    return needs
