"""Comparing selections whose signals come from different float arithmetic (1 vs N processes).

Signals from the same weights agree to ~1e-7 whatever the batch split, so score-ranked selections
from them are equal except for rows whose scores tie to that tolerance. After training through DDP
the weights themselves differ (another summation order, amplified by Adam), so only an overlap and
a score tolerance can be promised.
"""

from __future__ import annotations

import numpy as np


def overlap(a, b) -> int:
    """Rows kept by both selections (indices are in rank order, so compare them as sets)."""
    return len(np.intersect1d(a.indices, b.indices))


def assert_same_up_to_ties(a, b, atol: float) -> None:
    """Scores equal to `atol`; a row kept by one selection only swaps with one whose score ties with it."""
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=atol)
    only_a, only_b = np.setdiff1d(a.indices, b.indices), np.setdiff1d(b.indices, a.indices)
    assert len(only_a) == len(only_b) and len(a) == len(b)
    for row in only_a:
        gap = np.abs(a.scores[only_b] - a.scores[row]).min()
        assert gap <= 2 * atol, f"row {row} is kept by one selection only, {gap:.3g} away from any swap partner"
