"""Radius-neighbour counts of last-layer gradient directions, blocked, without forming a gradient.

For cross-entropy and a final ``nn.Linear``, the per-row weight gradient is g_i = e_i h_i^T with
e_i = p_i - y_i (C values) and h_i the layer's input (d values). Then

    cos(g_i, g_j) = cos(e_i, e_j) * cos(h_i, h_j)

(the bias gradient, when included, appends a constant 1 to h). Row i's neighbours are the rows
j != i with cosine distance 1 - cos(g_i, g_j) < radius.

The counter works on blocks of B rows against blocks of B rows, upper block triangle only, with
diagonal blocks symmetrised (a pair is decided once, so the relation is symmetric even in
float32): memory O(n (C + d) + B^2). Because
|cos(h_i, h_j)| <= 1, a pair whose C-dimensional cosine |cos(e_i, e_j)| does not exceed
|1 - radius| is decided by that cosine alone (not a neighbour when radius <= 1, a neighbour when
radius > 1); only the remaining pairs need the d-dimensional cosine. When most rows and columns of a block
have an undecided pair, the block's d-dimensional product is computed whole (one matrix product
beats gathers); otherwise only the sub-block of rows and columns with an undecided pair is.

With `references` (the scalable path of NFG), every row is counted against R reference rows only,
in blocks of rows against blocks of references (the rectangular form, the same prefilter): O(n R)
pairs instead of n^2 / 2, each decided from the row's side, a reference never its own neighbour.

Measured (`python benchmarks/seed_cost.py`, benchmarks/results/seed_cost.md): on MNIST-1D (10k
rows, ConvNet proxy, radius 0.2, 10 checkpoints) the logit cosine decides 37% of same-class pairs,
but the decided pairs are scattered over every row and column, so no d-dimensional work is
skipped there (every block takes the dense path); on 100k synthetic rows it decides 24%. Same-class
logit gradients are similar by construction (their label entries share a sign and carry at
least half the squared norm), which keeps the prefilter weak at radius 0.2; it pays off for small radii.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..signals.types import logit_grad as logit_grad_f64  # noqa: F401 (the old name, kept for callers)
from .device import resolve_device

NFG_BLOCK = 2048
DENSE_SHARE = 0.5  # above this share of a block left undecided, the full block product is used


@dataclass
class NeighbourStats:
    """Work done by :func:`radius_neighbour_counts` (to measure the prefilter).

    Attributes:
        pairs (`int`): pairs considered: unordered i < j, or (row, reference) with references.
        undecided (`int`): pairs the C-dimensional cosine could not decide.
        feature_dots (`int`): d-dimensional dot products computed (sub-blocks, so >= undecided).
    """

    pairs: int = 0
    undecided: int = 0
    feature_dots: int = 0

    def __iadd__(self, other: "NeighbourStats") -> "NeighbourStats":
        self.pairs += other.pairs
        self.undecided += other.undecided
        self.feature_dots += other.feature_dots
        return self

    @property
    def decided(self) -> float:
        """Share of pairs the C-dimensional cosine decided alone (the prefilter's exact skip rate)."""
        return 1.0 - self.undecided / self.pairs if self.pairs else 0.0

    @property
    def dots_per_pair(self) -> float:
        """d-dimensional dot products computed per pair (1 is the dense upper triangle; diagonal
        blocks are computed whole, so a dense run is slightly above 1)."""
        return self.feature_dots / self.pairs if self.pairs else 0.0


def unit_rows(x: np.ndarray, dtype=torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """Rows scaled to unit L2 norm in float64 (on the host, before the cast); all-zero rows stay zero (cosine 0)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return torch.as_tensor(np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)).to(device=device, dtype=dtype)


def radius_neighbour_counts(logit_grad: np.ndarray, features: np.ndarray, radius: float, *, bias: bool = False,
                            references: np.ndarray | None = None, block: int = NFG_BLOCK, dtype=torch.float32,
                            device: torch.device | str | None = None) -> tuple[np.ndarray, NeighbourStats]:
    """Count, for each row, the other rows whose last-layer gradient lies within cosine distance `radius`.

    Args:
        logit_grad (`np.ndarray` of shape (n, C)): p - y of each row (see `hf_coreset.signals.logit_grad`).
        features (`np.ndarray` of shape (n, d)): input of the final Linear layer.
        radius (`float`): cosine-distance radius in (0, 2]; a pair counts when 1 - cos < radius.
        bias (`bool`, *optional*, defaults to `False`): include the bias gradient (appends 1 to h).
        references (`np.ndarray` of int, *optional*): ascending distinct row positions; each row then
            counts only the reference rows other than itself, in O(n R) pairs instead of O(n^2) (the
            rectangular form: every row against the R references, blocked the same way, each pair
            decided from the row's side). None, or every row, is the square case (the upper block
            triangle, each pair decided once, so the counts are symmetric).
        block (`int`, *optional*, defaults to `2048`): rows per block; memory grows as block^2.
        dtype (`torch.dtype`, *optional*, defaults to `torch.float32`): compute type (float64 for
            exact checks).
        device (`torch.device` or `str`, *optional*): where the blocks are computed (`None`:
            `hf_coreset.ops.device.default_device`). The unit rows are made in float64 on the host,
            then cast; CPU and GPU counts differ only for pairs whose cosine is within `dtype`
            rounding of 1 - radius.

    Returns:
        `(counts, stats)`: int64 neighbour count per row (self excluded) and a :class:`NeighbourStats`.

    Example:
        ```python
        >>> counts, stats = radius_neighbour_counts(e, h, 0.2)
        >>> stats.decided  # share of pairs the C-dimensional prefilter decided alone
        ```
    """
    if not (0.0 < radius <= 2.0):
        raise ValueError(f"radius={radius} must be in (0, 2]: it is a cosine distance 1 - cos; 0.2 is NFG's default.")
    n = len(logit_grad)
    if references is not None:
        references = np.asarray(references)
        if references.ndim != 1 or not np.issubdtype(references.dtype, np.integer) or \
                (len(references) and (references[0] < 0 or references[-1] >= n or np.any(np.diff(references) <= 0))):
            raise ValueError(f"references must be ascending distinct row positions in [0, {n}) (1-D integers), "
                             "e.g. np.sort(rng.choice(n, 1000, replace=False)).")
        if len(references) == n:
            references = None  # every row: the square case, same arithmetic as no references
    h = np.asarray(features, dtype=np.float64)
    if bias:
        h = np.concatenate([h, np.ones((len(h), 1))], axis=1)
    dev = resolve_device(device)
    e = unit_rows(logit_grad, dtype, dev)
    h = unit_rows(h, dtype, dev)
    threshold = 1.0 - radius  # neighbour iff cos_e * cos_h > threshold
    if references is None:
        counts, stats = _square_counts(e, h, threshold, block)
    else:
        counts, stats = _rectangular_counts(e, h, torch.as_tensor(references, device=dev), threshold, block)
    return counts.cpu().numpy(), stats


def _block_hits(e_r, h_r, e_c, h_c, threshold: float, symmetric: bool):
    """(hit, undecided, feature dots) of the rows of one block against its columns; `symmetric` for a
    diagonal block of the square case (both cosines symmetrised, so a pair is decided the same way from
    both sides)."""
    bound = abs(threshold)
    cos_e = e_r @ e_c.T
    if symmetric:
        cos_e = (cos_e + cos_e.T) * 0.5
    undecided = cos_e.abs() > bound
    rows = undecided.any(1).nonzero().squeeze(1)
    cols = undecided.any(0).nonzero().squeeze(1)
    if len(rows) * len(cols) > DENSE_SHARE * cos_e.numel():
        # most rows and columns have an undecided pair: one full product beats gathers
        cos_g = (h_r @ h_c.T).mul_(cos_e)
        dots = cos_e.numel()
    else:
        cos_g = torch.zeros_like(cos_e)  # decided pairs: |cos_g| <= bound, on the right side below
        if len(rows):
            sub = (h_r[rows] @ h_c[cols].T).mul_(cos_e[rows][:, cols])
            cos_g[rows[:, None], cols[None, :]] = sub
        dots = len(rows) * len(cols)
    if symmetric:
        cos_g = (cos_g + cos_g.T) * 0.5
    hit = cos_g > threshold
    if threshold < 0:  # radius > 1: every pair the logit cosine decided is a neighbour
        hit |= ~undecided
    return hit, undecided, dots


def _square_counts(e: torch.Tensor, h: torch.Tensor, threshold: float, block: int):
    """Every row against every other: upper block triangle, diagonal blocks symmetrised."""
    n = e.shape[0]
    counts = torch.zeros(n, dtype=torch.int64, device=e.device)
    stats = NeighbourStats()
    for r0 in range(0, n, block):
        rb = slice(r0, min(r0 + block, n))
        for c0 in range(r0, n, block):
            cb = slice(c0, min(c0 + block, n))
            diagonal = c0 == r0
            hit, undecided, dots = _block_hits(e[rb], h[rb], e[cb], h[cb], threshold, diagonal)
            if diagonal:
                hit.fill_diagonal_(False)
                size = rb.stop - r0
                pairs = size * (size - 1) // 2
                open_pairs = (int(torch.count_nonzero(undecided)) - int(torch.count_nonzero(undecided.diagonal()))) // 2
            else:
                counts[cb] += torch.count_nonzero(hit, dim=0)
                pairs = hit.numel()
                open_pairs = int(torch.count_nonzero(undecided))
            counts[rb] += torch.count_nonzero(hit, dim=1)
            stats += NeighbourStats(pairs, open_pairs, dots)
    return counts, stats


def _rectangular_counts(e: torch.Tensor, h: torch.Tensor, references: torch.Tensor, threshold: float, block: int):
    """Every row against the reference rows (ascending positions), a row's own reference entry excluded."""
    n = e.shape[0]
    e_ref, h_ref = e[references], h[references]
    counts = torch.zeros(n, dtype=torch.int64, device=e.device)
    stats = NeighbourStats()
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        for c0 in range(0, len(references), block):
            c1 = min(c0 + block, len(references))
            hit, undecided, dots = _block_hits(e[r0:r1], h[r0:r1], e_ref[c0:c1], h_ref[c0:c1], threshold, False)
            own = references[c0:c1]
            cols = ((own >= r0) & (own < r1)).nonzero().squeeze(1)  # references that are rows of this block
            if len(cols):
                self_rows = own[cols] - r0
                open_self = int(torch.count_nonzero(undecided[self_rows, cols]))
                hit[self_rows, cols] = False
            else:
                open_self = 0
            counts[r0:r1] += torch.count_nonzero(hit, dim=1)
            stats += NeighbourStats(hit.numel() - len(cols), int(torch.count_nonzero(undecided)) - open_self, dots)
    return counts, stats
