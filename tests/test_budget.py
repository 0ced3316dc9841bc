"""The one rounding rule: fraction -> k -> per-class budgets (sum exactly k, every class >= 1, largest remainder)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from hf_coreset.budget import check_fraction, make_budget


def _labels(counts):
    return np.repeat(np.arange(len(counts)), counts)


def _best_allocation(counts, k):
    """Brute force: among all allocations with 1 <= a_c <= n_c summing to k, the one closest to the
    quotas (lexicographically smallest sorted |a_c - q_c|, i.e. no row could move to a class further
    below its quota). Only for tiny inputs."""
    n = sum(counts)
    quota = np.array([k * c / n for c in counts])
    best, best_key = None, None
    for alloc in itertools.product(*[range(1, c + 1) for c in counts]):
        if sum(alloc) != k:
            continue
        key = sorted(np.abs(np.array(alloc) - quota), reverse=True)
        if best_key is None or key < best_key:
            best, best_key = alloc, key
    return np.array(best)


def test_total_rounds_half_up_and_never_below_one():
    labels = _labels([10, 10])  # n = 20
    assert make_budget(labels, fraction=0.025).total == 2  # 0.5 rounds up to 1, but two classes keep one each
    assert make_budget(labels, fraction=0.075, per_class=False).total == 2  # 1.5 -> 2
    assert make_budget(labels, fraction=0.07, per_class=False).total == 1  # 1.4 -> 1
    assert make_budget(labels, fraction=0.001, per_class=False).total == 1
    assert make_budget(labels, fraction=1.0).per_class.tolist() == [10, 10]


@pytest.mark.parametrize("counts,k,expected", [
    ([98, 1, 1], 10, [8, 1, 1]),       # the one-row minimum overshoots: take back from the largest class
    ([46, 46, 8], 10, [5, 4, 1]),      # class 2 was lifted to 1 (quota 0.8); the extra row goes to class 0
    ([500, 450, 50], 18, [9, 8, 1]),   # largest remainders: 8.1 -> 8, 0.9 -> 1
    ([5, 0, 5], 3, [2, 1]),            # tie between equal remainders goes to the lower class id (1 has no rows)
    ([3, 3, 3], 9, [3, 3, 3]),
])
def test_per_class_examples(counts, k, expected):
    budget = make_budget(_labels(counts), size=k)
    assert budget.per_class.tolist() == expected
    assert budget.total == k


def test_budget_rule_on_random_class_sizes_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(150):
        counts = rng.integers(1, 9, size=rng.integers(2, 5)).tolist()
        n = sum(counts)
        k = int(rng.integers(len(counts), n + 1))
        budget = make_budget(_labels(counts), size=k)
        assert budget.total == k == budget.per_class.sum()
        assert np.all(budget.per_class >= 1) and np.all(budget.per_class <= counts)
        quota = np.array(counts) * k / n
        assert np.all(np.abs(budget.per_class - quota) < 1 + 1e-9)
        # No single row can move between classes and bring both closer to their quotas.
        ref = _best_allocation(counts, k)
        assert sorted(np.abs(budget.per_class - quota), reverse=True) == pytest.approx(
            sorted(np.abs(ref - quota), reverse=True)), (counts, k, budget.per_class, ref)


def test_fraction_budgets_sum_to_k_on_skewed_classes():
    rng = np.random.default_rng(1)
    for _ in range(200):
        counts = rng.integers(1, 400, size=rng.integers(2, 30))
        labels = _labels(counts)
        fraction = float(rng.uniform(0.01, 1.0))
        budget = make_budget(labels, fraction=fraction)
        k = max(1, math.floor(fraction * len(labels) + 0.5))
        assert budget.per_class.sum() == budget.total == max(k, len(counts))
        assert np.all(budget.per_class >= 1) and np.all(budget.per_class <= counts)


def test_fewer_rows_than_classes_keeps_one_per_class():
    budget = make_budget(_labels([1, 1, 1, 1]), size=2)
    assert budget.per_class.tolist() == [1, 1, 1, 1] and budget.total == 4


def test_global_mode_keeps_k_regardless_of_class():
    budget = make_budget(_labels([90, 10]), fraction=0.1, per_class=False)
    assert budget.total == 10 and not budget.per_class_mode


def test_missing_class_ids_get_zero():
    labels = np.array([0, 0, 2, 2, 2, 2])
    budget = make_budget(labels, size=3, num_classes=4)
    assert budget.per_class.tolist() == [1, 0, 2, 0]


@pytest.mark.parametrize("value,err,match", [
    (0.0, ValueError, r"fraction == 0.0, must be in \(0, 1\]"),
    (1.5, ValueError, "Did you mean fraction=0.015"),
    (-0.1, ValueError, "must be in"),
    (float("nan"), ValueError, "must be in"),
    (True, TypeError, "not bool"),
    ("0.1", TypeError, "not str"),
])
def test_check_fraction_errors(value, err, match):
    with pytest.raises(err, match=match):
        check_fraction(value)


def test_size_errors():
    labels = _labels([5, 5])
    with pytest.raises(ValueError, match=r"size == 11, but the dataset has 10 rows; pass a size in \[1, 10\]"):
        make_budget(labels, size=11)
    with pytest.raises(ValueError, match="size == 0"):
        make_budget(labels, size=0)
    with pytest.raises(TypeError, match="size must be an integer"):
        make_budget(labels, size=2.0)
    with pytest.raises(ValueError, match="exactly one of fraction"):
        make_budget(labels, fraction=0.1, size=2)
    with pytest.raises(ValueError, match="exactly one of fraction"):
        make_budget(labels)
    with pytest.raises(ValueError, match="empty"):
        make_budget(np.zeros(0, dtype=np.int64), fraction=0.5)
