"""Lloyd's k-means and the rows nearest its centres, with squared distances in row blocks (memory
O(BLOCK k), never n x n) on the selection's device.

On the CPU the distances are numpy float64 products; on any other device the same float64 expressions
in torch. The CPU keeps numpy because another BLAS's rounding moves near-tied assignments: the torch
loop on the CPU kept 7 and 37 other rows of the 4,000 of MNIST-1D's 5% and 10% prototypes selections,
and the quality grid's prototypes cells were trained on numpy's picks. A GPU's picks equal the CPU's up
to such ties (a row whose two nearest centres are equally far to ~1e-13).
"""

from __future__ import annotations

import numpy as np
import torch

from .device import on_device, resolve_device

BLOCK = 4096  # rows per distance block


def _on_host(device: torch.device) -> bool:
    """Whether distances are numpy products (the CPU) rather than torch ones (any other device)."""
    return device.type == "cpu"


class _SquaredDistances:
    """Squared Euclidean distances from fixed float64 rows to a set of centres, a block of rows at a time."""

    def __init__(self, x: np.ndarray, device: torch.device):
        self.n = len(x)
        self.host = _on_host(device)
        self.x = x if self.host else on_device(x, device, torch.float64)
        self.xn = (self.x ** 2).sum(1)

    def _block(self, lo: int, centres, cn):
        x, xn = self.x[lo:lo + BLOCK], self.xn[lo:lo + BLOCK, None]
        if self.host:
            return np.maximum(xn - 2.0 * x @ centres.T + cn[None, :], 0.0)
        return (xn - 2.0 * x @ centres.T + cn[None, :]).clamp_(min=0.0)

    def _centres(self, centres: np.ndarray):
        c = centres if self.host else on_device(centres, self.x.device, torch.float64)
        return c, (c ** 2).sum(1)

    def matrix(self, centres: np.ndarray) -> np.ndarray:
        """All distances, (n, k) float64 on the host."""
        c, cn = self._centres(centres)
        out = np.empty((self.n, len(centres)))
        for lo in range(0, self.n, BLOCK):
            block = self._block(lo, c, cn)
            out[lo:lo + BLOCK] = block if self.host else block.cpu().numpy()
        return out

    def nearest(self, centres: np.ndarray) -> np.ndarray:
        """Each row's nearest centre (the first on ties), without the (n, k) matrix."""
        if not self.n:
            return np.zeros(0, dtype=np.int64)
        c, cn = self._centres(centres)
        blocks = [self._block(lo, c, cn).argmin(1) for lo in range(0, self.n, BLOCK)]
        return np.concatenate(blocks) if self.host else torch.cat(blocks).cpu().numpy()


def kmeans(x: np.ndarray, k: int, *, iters: int, rng: np.random.Generator,
           device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on float64 rows `x` with k-means++ seeding from `rng`; returns (centres (k, d),
    assignment (n,)). At most `iters` Lloyd steps, stopping when no assignment changes. A centre left
    without rows keeps its position (it still names a row in `nearest_rows`). The seeding's draws and
    the centre means are numpy on the host; the O(n k d) distances run on `device` (module docstring)."""
    dist = _SquaredDistances(x, resolve_device(device))
    first = int(rng.integers(len(x)))
    centres = [x[first]]
    d2 = dist.matrix(x[first][None])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        j = int(rng.choice(len(x), p=d2 / total)) if total > 0 else int(rng.integers(len(x)))
        centres.append(x[j])
        d2 = np.minimum(d2, dist.matrix(x[j][None])[:, 0])
    centres = np.stack(centres)
    assign = dist.nearest(centres)
    for _ in range(iters):
        # cluster sums by one sorted pass (np.add.at is ~100x slower on wide rows)
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=k)
        full = counts > 0
        starts = (np.cumsum(counts) - counts)[full]
        centres[full] = np.add.reduceat(x[order], starts, axis=0) / counts[full, None]
        new = dist.nearest(centres)
        if np.array_equal(new, assign):
            break
        assign = new
    return centres, assign


def nearest_rows(x: np.ndarray, centres: np.ndarray, exclude: np.ndarray | None = None,
                 device: torch.device | str | None = None) -> np.ndarray:
    """One distinct row per centre: centres in order take their nearest row not taken yet (rows in
    `exclude` count as taken; ties: the lower row). Distances on `device`, the choice on the host."""
    d = _SquaredDistances(x, resolve_device(device)).matrix(centres)
    if exclude is not None:
        d[exclude] = np.inf
    out = np.empty(len(centres), dtype=np.int64)
    for j in range(len(centres)):
        out[j] = int(np.argmin(d[:, j]))
        d[out[j], :] = np.inf  # taken rows are no longer candidates
    return out
