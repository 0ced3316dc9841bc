"""Fraction -> per-class budgets. The one rounding rule of the library lives here.

Rule (per-class, the default):
  1. total k = max(1, floor(fraction * n + 0.5))  (round half up).
  2. class c has the quota q_c = k * n_c / n and gets floor(q_c) rows, at least 1 (every class
     with rows keeps one), at most n_c.
  3. while fewer than k rows are assigned, one more goes to the class furthest below its quota
     (largest q_c - alloc_c: the largest remainder, for a class not lifted to its one row);
     ties go to the lower class id. While more than k are assigned (the one-row minimum can
     overshoot), one is taken back from the class furthest above its quota among those with two
     or more; ties go to the higher class id.
  So the per-class budgets sum to exactly k, except when k is smaller than the number of
  classes, where the one-row minimum makes the total the number of classes.

Global mode (``per_class=False``) keeps k rows regardless of class.

Classes are the distinct label ids present (or 0..num_classes-1 when a class count is declared), so a
label id of 10**7 costs one entry, not 10**7.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np


def check_fraction(value, *, name: str = "fraction") -> float:
    """Validate a kept fraction in (0, 1] and return it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in (0, 1], not {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        hint = f" Did you mean {name}={value / 100:g}?" if 1 < value <= 100 else ""
        raise ValueError(f"{name} == {value}, must be in (0, 1]; 0.1 keeps 10% of the rows.{hint}")
    return value


def check_bool(value, name: str) -> bool:
    """Validate a True/False setting (numpy booleans included); `TypeError` naming it otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__} {value!r}.")
    return bool(value)


@dataclass(frozen=True)
class Budget:
    """How many rows to keep, in total and per class.

    Attributes:
        total (`int`): rows to keep.
        per_class (`np.ndarray`): rows to keep for each class of `classes`.
        per_class_mode (`bool`): whether methods must respect ``per_class`` (True) or may pick
            ``total`` rows globally (False).
        classes (`np.ndarray`, *optional*): the label id of each entry of ``per_class``, ascending;
            defaults to 0..len(per_class)-1.
    """

    total: int
    per_class: np.ndarray
    per_class_mode: bool = True
    classes: np.ndarray | None = None

    def __post_init__(self):
        if self.classes is None:
            object.__setattr__(self, "classes", np.arange(len(self.per_class)))


def make_budget(labels: np.ndarray, *, fraction: float | None = None, size: int | None = None,
                per_class: bool = True, num_classes: int | None = None) -> Budget:
    """Turn a fraction (or an absolute row count) into a :class:`Budget`.

    Args:
        labels (`np.ndarray`): integer class id of every row.
        fraction (`float`, *optional*): kept share of the rows, in (0, 1].
        size (`int`, *optional*): kept number of rows, in [1, n]. Pass exactly one of the two.
        per_class (`bool`, *optional*, defaults to `True`): proportional per-class budgets.
        num_classes (`int`, *optional*): a declared class count: every id in 0..num_classes-1 gets an
            entry (0 for a class without rows). By default only the label ids present get one.

    Returns:
        `Budget`
    """
    per_class = check_bool(per_class, "per_class")
    n = len(labels)
    if n == 0:
        raise ValueError("The dataset is empty: there is nothing to select from.")
    if (fraction is None) == (size is None):
        raise ValueError("Pass exactly one of fraction= (a share in (0, 1]) or size= (a number of rows).")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"size must be an integer number of rows, not {type(size).__name__}.")
        if not 1 <= size <= n:
            raise ValueError(f"size == {size}, but the dataset has {n} rows; pass a size in [1, {n}].")
        total = int(size)
    else:
        total = kept_rows(check_fraction(fraction), n)
    return budget_for(labels, total, per_class=per_class, num_classes=num_classes)


def kept_rows(fraction: float, num_rows: int) -> int:
    """Step 1 of the rule: the rows a checked `fraction` of `num_rows` keeps (round half up, at least 1)."""
    return max(1, math.floor(fraction * num_rows + 0.5))


def budget_for(labels: np.ndarray, total: int, *, per_class: bool = True, num_classes: int | None = None) -> Budget:
    """Steps 2-3 of the rule: the :class:`Budget` of `total` rows, for a `total` in [1, len(labels)] that the
    caller has checked (`make_budget` does, for a fraction or a size given by a user)."""
    n = len(labels)
    if num_classes is not None:
        if labels.max() >= num_classes:
            raise ValueError(f"num_classes == {num_classes}, but the labels go up to {labels.max()}; pass the "
                             "declared class count, or leave num_classes unset to budget the labels present.")
        classes, counts = np.arange(num_classes), np.bincount(labels, minlength=num_classes)
    else:  # dense class ids: never an array as long as the largest label id
        classes, counts = np.unique(labels, return_counts=True)
    if not per_class:
        return Budget(total=total, per_class=np.minimum(counts, total), per_class_mode=False, classes=classes)
    quota = total * counts / n
    alloc = np.minimum(np.maximum(np.floor(quota), counts > 0), counts).astype(np.int64)
    ids = np.arange(len(counts))
    # Each loop runs at most once per class: floor(q_c) and the one-row minimum are within one of q_c.
    while alloc.sum() < total:
        below = np.where(alloc < counts, quota - alloc, -np.inf)
        alloc[np.lexsort((ids, -below))[0]] += 1  # furthest below quota, then the lower id
    while alloc.sum() > total and np.any(alloc > 1):
        above = np.where(alloc > 1, alloc - quota, -np.inf)
        alloc[np.lexsort((-ids, -above))[0]] -= 1  # furthest above quota, then the higher id
    return Budget(total=int(alloc.sum()), per_class=alloc, per_class_mode=True, classes=classes)
