"""Greedy k-center and herding on feature rows: O(k n d) time, O(n d) memory."""

from __future__ import annotations

import numpy as np
import torch


def kcenter_greedy(features: np.ndarray, k: int, *, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center (Gonzalez 1985; Sener & Savarese 2018): repeatedly pick the row farthest
    from the picks so far. Ties go to the lower row.

    Returns:
        `(picks, radii)`: positions in pick order and each pick's distance to the earlier picks
        (the covering radius just before it was added; +inf for the first).
    """
    x = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32))
    n = x.shape[0]
    sq = (x * x).sum(1)
    picks = [first]
    radii = [float("inf")]
    min_d = (sq + sq[first] - 2.0 * (x @ x[first])).clamp_(min=0)
    min_d[first] = -1.0
    for _ in range(1, k):
        j = int(torch.argmax(min_d))  # first maximum -> lowest row on ties
        radii.append(float(min_d[j].clamp(min=0).sqrt()))
        picks.append(j)
        min_d = torch.minimum(min_d, (sq + sq[j] - 2.0 * (x @ x[j])).clamp_(min=0))
        min_d[torch.tensor(picks)] = -1.0
    return np.asarray(picks, dtype=np.int64), np.asarray(radii)


def herding(features: np.ndarray, k: int) -> np.ndarray:
    """Kernel herding (Welling 2009; Chen et al. 2010) with the linear kernel: at step t pick the
    unpicked row that brings the mean of the picks closest to the mean of all rows, i.e.
    argmin_i || t * mu - S_{t-1} - x_i ||, S the sum of earlier picks. Ties go to the lower row.

    DeepCore's herding takes the argmax of that distance (the farthest row) and collapses on our
    benchmark; this is the nearest-row version the method describes.
    """
    x = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float64))
    mu = x.mean(0)
    sq = (x * x).sum(1)
    total = torch.zeros_like(mu)
    taken = torch.zeros(x.shape[0], dtype=torch.bool)
    picks = []
    for t in range(1, k + 1):
        target = t * mu - total
        d = sq - 2.0 * (x @ target)  # ||target - x_i||^2 minus a constant
        d[taken] = float("inf")
        j = int(torch.argmin(d))
        picks.append(j)
        taken[j] = True
        total += x[j]
    return np.asarray(picks, dtype=np.int64)
