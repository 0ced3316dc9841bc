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


def gaussian_herding(features: np.ndarray, k: int, *, bandwidth: float = 1.0, anchors: int = 4096,
                     rng: np.random.Generator | None = None, block: int = 2048) -> np.ndarray:
    """Kernel herding with a Gaussian kernel (Chen, Welling & Smola, UAI 2010), as greedy MMD
    minimisation: at step t pick the unpicked row i maximising mu_i - (1/t) sum_{s<t} k(x_i, x_s),
    mu_i = mean_j k(x_i, x_j), which is the row whose addition brings the maximum mean discrepancy
    between picks and all rows down the most (k(x, x) = 1 is constant). With the linear kernel
    this is `herding`; the Gaussian kernel matches every moment, so the picks spread over the
    distribution in proportion to its density instead of only matching its mean.

    k(x, y) = exp(-||x - y||^2 / (bandwidth * D)), D = the mean squared distance between two rows
    (2 * mean ||x_i - mean||^2, in closed form). Ties go to the lower row. mu is exact for up to
    `anchors` rows and otherwise the mean over `anchors` rows drawn by `rng` (an unbiased estimate),
    so it costs O(n min(n, anchors) d), computed in blocks of at most `block` anchors and 2^24
    kernel values (memory O(n d) plus about 128 MiB per temporary); each pick then costs O(n d).
    """
    if not bandwidth > 0:
        raise ValueError(f"bandwidth={bandwidth!r} must be > 0 (a multiple of the mean squared distance).")
    x = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float64))
    n = x.shape[0]
    centred = x - x.mean(0)
    sq = (centred * centred).sum(1)
    scale = bandwidth * max(2.0 * float(sq.mean()), 1e-12)

    def kernel_to(rows: torch.Tensor) -> torch.Tensor:  # (n, len(rows)) kernel values
        d = sq[:, None] + sq[rows][None, :] - 2.0 * (centred @ centred[rows].T)
        return torch.exp(-d.clamp_(min=0) / scale)

    if n <= anchors:
        reference = torch.arange(n)
    else:
        if rng is None:
            raise ValueError(f"{n} rows > anchors={anchors}: pass rng= to draw the anchor rows.")
        reference = torch.as_tensor(np.sort(rng.choice(n, anchors, replace=False)))
    mu = torch.zeros(n, dtype=torch.float64)
    block = max(1, min(block, (1 << 24) // max(n, 1)))  # a few (n, block) float64 temporaries of <= 128 MiB each
    for i in range(0, len(reference), block):
        mu += kernel_to(reference[i:i + block]).sum(1)
    mu /= len(reference)
    pulled = torch.zeros(n, dtype=torch.float64)  # sum of k(x_i, x_s) over picks s
    taken = torch.zeros(n, dtype=torch.bool)
    picks = []
    for t in range(1, k + 1):
        gain = mu - pulled / t
        gain[taken] = -float("inf")
        j = int(torch.argmax(gain))
        picks.append(j)
        taken[j] = True
        pulled += kernel_to(torch.tensor([j]))[:, 0]
    return np.asarray(picks, dtype=np.int64)
