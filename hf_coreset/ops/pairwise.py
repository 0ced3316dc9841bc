"""Inner products between rows, computed block by block with matrix products.

`GradientKernel` gives inner products of last-layer cross-entropy gradients without forming
them: for g_i = (p_i - y_i) h_i^T (plus the bias gradient p_i - y_i when `bias`),
<g_i, g_j> = <e_i, e_j> * (<h_i, h_j> + bias), with e = p - y.

Both hold their rows in float32 on `device` (`None`: `hf_coreset.ops.device.default_device`); the
solvers built on them put their own vectors on `kernel.device` and work on blocks of rows, so the
largest temporary is block x block (or block x candidates), never n x n.
"""

from __future__ import annotations

import numpy as np
import torch

from .device import on_device, resolve_device

DEFAULT_BLOCK = 2048


class FeatureKernel:
    """Inner products of feature rows: K(a, b) = X_a X_b^T."""

    def __init__(self, features, *, device: torch.device | str | None = None):
        self.device = resolve_device(device)
        self.x = on_device(features, self.device)
        self.n = self.x.shape[0]

    def sq_norms(self) -> torch.Tensor:
        return (self.x * self.x).sum(dim=1)

    def dot(self, a: slice | torch.Tensor, b: slice | torch.Tensor) -> torch.Tensor:
        return self.x[a] @ self.x[b].T

    def row(self, i: int) -> torch.Tensor:
        return self.x[i]


class GradientKernel:
    """Inner products of last-layer gradients g_i = (p_i - y_i) h_i^T (+ bias), never formed."""

    def __init__(self, logit_grad, features, *, bias: bool = True, device: torch.device | str | None = None):
        self.device = resolve_device(device)
        self.e = on_device(logit_grad, self.device)  # p - y arrives in float64; its inner products need only float32
        self.h = on_device(features, self.device)
        self.bias = 1.0 if bias else 0.0
        self.n = self.e.shape[0]

    def sq_norms(self) -> torch.Tensor:
        return (self.e * self.e).sum(1) * ((self.h * self.h).sum(1) + self.bias)

    def dot(self, a, b) -> torch.Tensor:
        return (self.e[a] @ self.e[b].T) * (self.h[a] @ self.h[b].T + self.bias)


def sq_distances(kernel, a, b, norms: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows a and b of a kernel, clamped at 0, and exactly 0
    between a row and itself: in float32, ||x||^2 + ||x||^2 - 2 x.x leaves up to ~||x||^2 * 1e-7, i.e.
    ~||x|| * 3e-4 after a square root, enough to reorder near-equal facility-location gains."""
    na = norms[a]
    nb = norms[b]
    d = (na[:, None] + nb[None, :] - 2.0 * kernel.dot(a, b)).clamp_(min=0.0)
    return _zero_self_pairs(d, a, b, kernel.n)


def _zero_self_pairs(d: torch.Tensor, a, b, n: int) -> torch.Tensor:
    """Set d[i, j] = 0 where row a[i] is row b[j]: one diagonal when a and b are slices, O(len(b)) when a
    is a slice (every caller's candidates and picks), no host sync either way."""
    if not isinstance(a, slice):
        cols = torch.arange(n, device=d.device)[b] if isinstance(b, slice) else b
        return d.masked_fill_(a[:, None] == cols[None, :], 0.0)
    start, stop, _ = a.indices(n)
    if isinstance(b, slice):
        b_start, b_stop, _ = b.indices(n)
        if max(start, b_start) < min(stop, b_stop):  # the shared rows lie on one diagonal of d
            d.diagonal(start - b_start).zero_()
        return d
    if stop <= start or not len(b):
        return d
    at = b - start  # the row of d holding each column's own entry, where that row is in a
    hit = (at >= 0) & (at < stop - start)
    at.clamp_(0, stop - start - 1)  # a dummy row for the others, left unchanged below
    j = torch.arange(len(b), device=d.device)
    d[at, j] = torch.where(hit, torch.zeros((), dtype=d.dtype, device=d.device), d[at, j])
    return d


def blocks(n: int, size: int = DEFAULT_BLOCK):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
