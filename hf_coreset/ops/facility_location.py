"""Facility location by lazy greedy, with similarities computed in blocks; and, for many small problems
at once (CREST's subset x class problems), an exact greedy batched over problems (`facility_location_batch`).

Objective (CRAIG, Mirzasoleiman et al., ICML 2020): F(S) = sum_i max_{j in S} s_ij with
s_ij = c - ||x_i - x_j||, a non-negative similarity. Any c >= max_ij ||x_i - x_j|| gives the same
greedy sequence (once S is non-empty, F(S) = n c - sum_i min_j d_ij); we use c = 2 max_i ||x_i||,
which bounds every distance and needs no pass over all pairs.

Lazy greedy (Minoux 1978) keeps stale gains as upper bounds (F is submodular). Candidates are
re-evaluated a batch at a time; the best fresh gain is taken when it beats every remaining bound,
ties going to the lower row, exactly like naive greedy.

Where the n x n float32 similarity matrix fits in DENSE_MAX_BYTES (n <= 16,384; the per-class case
up to ~160k rows in 10 classes), it is computed once, block by block at matrix-product speed, and
kept: a re-evaluation reads candidates' columns. Above, each re-evaluation recomputes them with one
matrix product per row block (O(n) memory). The two give the same picks up to float32 ties.

Runs where the kernel's rows are (`kernel.device`): similarities in float32 blocks of `block` rows
(a row's distance to itself set to exactly 0, see `sq_distances`), gains accumulated in float64
there; the heap of stale bounds lives on the host (one transfer of a batch's gains per evaluation).
CPU and GPU picks differ only where two candidates' gains are within float32 rounding (the lower row
wins each exact tie on both).
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch

from .device import resolve_device
from .pairwise import DEFAULT_BLOCK, blocks, sq_distances

EVAL_BATCH = 32  # candidates re-evaluated per matrix product
DENSE_EVAL_BATCH = 8  # per read of the kept matrix: no product to fill, so fewer wasted re-evaluations
DENSE_MAX_BYTES = 1 << 30  # up to this, the n x n float32 similarity is computed once and kept (n <= 16,384)


class _BlockedColumns:
    """Similarity columns recomputed from the kernel on each use: O(n) memory, a matrix product per use."""

    batch = EVAL_BATCH

    def __init__(self, similarity, n: int, block: int, dev):
        self.similarity, self.n, self.block, self.dev = similarity, n, block, dev

    def initial_gains(self) -> torch.Tensor:
        """Column sums of the similarity matrix (F of each single row), block by block."""
        gains0 = torch.zeros(self.n, dtype=torch.float64, device=self.dev)
        for rb in blocks(self.n, self.block):
            for cb in blocks(self.n, self.block):
                gains0[cb] += self.similarity(rb, cb).sum(0, dtype=torch.float64)
        return gains0

    def fresh_gains(self, cand: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        fresh = torch.zeros(len(cand), dtype=torch.float64, device=self.dev)
        for rb in blocks(self.n, self.block):
            s = self.similarity(rb, cand).double()
            fresh += (s - current[rb, None]).clamp_(min=0).sum(0)
        return fresh

    def column(self, j: int) -> torch.Tensor:
        return self.similarity(slice(0, self.n), torch.tensor([j], device=self.dev)).double()[:, 0]

    def nearest(self, picks: torch.Tensor) -> torch.Tensor:
        """Each row's most similar pick (the first on ties)."""
        return torch.cat([self.similarity(rb, picks).argmax(dim=1) for rb in blocks(self.n, self.block)])


class _DenseColumns(_BlockedColumns):
    """The whole similarity matrix, computed once in the same blocks (so the same initial gains) and kept
    transposed: a candidate's column is a contiguous row, and re-evaluating gains reads memory instead of
    repeating a matrix product (apricot and submodlib work this way on a precomputed matrix)."""

    batch = DENSE_EVAL_BATCH

    def initial_gains(self) -> torch.Tensor:
        self.t = torch.empty((self.n, self.n), dtype=torch.float32, device=self.dev)  # t[j] = column j
        gains0 = torch.zeros(self.n, dtype=torch.float64, device=self.dev)
        for rb in blocks(self.n, self.block):
            for cb in blocks(self.n, self.block):
                s = self.similarity(rb, cb)
                gains0[cb] += s.sum(0, dtype=torch.float64)
                self.t[cb, rb] = s.T
        return gains0

    def fresh_gains(self, cand: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        return (self.t[cand].double() - current[None, :]).clamp_(min=0).sum(1)

    def column(self, j: int) -> torch.Tensor:
        return self.t[j].double()

    def nearest(self, picks: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.t[picks, rb].argmax(dim=0) for rb in blocks(self.n, self.block)])


def _norms_and_offset(kernel) -> tuple[torch.Tensor, float]:
    """The rows' squared norms and the objective's c = 2 max ||x|| (+ 1e-6), which bounds every distance
    (see the module docstring); the one c of `facility_location`, `facility_gains` and `facility_objective`."""
    norms = kernel.sq_norms().double().float()
    return norms, 2.0 * float(norms.max().sqrt()) + 1e-6


def facility_location(kernel, k: int, *, block: int = DEFAULT_BLOCK, dense: bool | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy facility location on the rows of `kernel`.

    Args:
        kernel: a `FeatureKernel` or `GradientKernel` over n rows.
        k (`int`): number of rows to pick, 1 <= k <= n.
        dense (`bool`, *optional*): keep the n x n float32 similarity matrix (computed once) instead of
            recomputing candidates' columns; `None`: when it takes at most `DENSE_MAX_BYTES`. Both give
            the same picks except where two gains are within float32 rounding.

    Returns:
        `(picks, gains, weights)`: positions in pick order, the marginal gain of each pick
        (non-increasing), and each pick's cluster size (rows whose most similar pick it is).
    """
    n = kernel.n
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, {n}].")
    norms, c = _norms_and_offset(kernel)

    def similarity(rows, cols):
        return c - sq_distances(kernel, rows, cols, norms).sqrt_()

    dev = kernel.device
    if dense is None:
        dense = 4 * n * n <= DENSE_MAX_BYTES
    columns = (_DenseColumns if dense else _BlockedColumns)(similarity, n, block, dev)
    heap = [(-float(g), j) for j, g in enumerate(columns.initial_gains().tolist())]
    heapq.heapify(heap)
    current = torch.zeros(n, dtype=torch.float64, device=dev)  # best similarity of each row to the picks so far
    picks, gains = [], []
    while len(picks) < k:
        batch = [heapq.heappop(heap) for _ in range(min(columns.batch, len(heap)))]
        cand = torch.tensor([j for _, j in batch], device=dev)
        fresh = columns.fresh_gains(cand, current)
        order = sorted(zip((-fresh).tolist(), cand.tolist()))
        best = order[0]
        if not heap or best <= heap[0]:
            j = best[1]
            picks.append(j)
            gains.append(-best[0])
            current = torch.maximum(current, columns.column(j))
            rest = order[1:]
        else:
            rest = order
        for item in rest:
            heapq.heappush(heap, item)
    nearest = columns.nearest(torch.tensor(picks, device=dev))
    weights = np.bincount(nearest.cpu().numpy(), minlength=len(picks)).astype(np.float64)
    return np.asarray(picks, dtype=np.int64), np.asarray(gains), weights


def facility_gains(kernel, picks, *, block: int = DEFAULT_BLOCK, chunk: int = DEFAULT_BLOCK
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The marginal gain of each of `picks` in their order, and each pick's cluster size, under the
    objective of `facility_location` on all rows of `kernel` (same c = 2 max ||x||): the gains sum to
    F(picks). Blocked (block rows x chunk picks at a time, a running maximum carried across chunks),
    never n x n; used to compare solutions found on parts of the rows (the partitioned path).
    A pick's cluster is the rows whose most similar pick it is, ties to the earlier pick."""
    n = kernel.n
    norms, c = _norms_and_offset(kernel)
    dev = kernel.device
    picks_t = torch.as_tensor(np.asarray(picks, dtype=np.int64), device=dev)
    gains = torch.zeros(len(picks_t), dtype=torch.float64, device=dev)
    weights = np.zeros(len(picks_t), dtype=np.float64)
    for rb in blocks(n, block):
        best = torch.zeros(rb.stop - rb.start, dtype=torch.float64, device=dev)  # similarities are >= 0
        owner = torch.zeros(rb.stop - rb.start, dtype=torch.int64, device=dev)
        for cb in blocks(len(picks_t), chunk):
            s = (c - sq_distances(kernel, rb, picks_t[cb], norms).sqrt_()).double()
            run = torch.cummax(torch.cat([best[:, None], s], 1), dim=1).values
            gains[cb] += (run[:, 1:] - run[:, :-1]).sum(0)
            top, arg = s.max(1)  # first maximum: the earlier pick on ties
            better = top > best
            owner = torch.where(better, arg + cb.start, owner)
            best = run[:, -1]
        weights += np.bincount(owner.cpu().numpy(), minlength=len(picks_t))
    return gains.cpu().numpy(), weights


def facility_objective(kernel, picks, *, block: int = DEFAULT_BLOCK, chunk: int = DEFAULT_BLOCK) -> float:
    """F(picks) = sum_i max_{j in picks} s_ij on all rows of `kernel`, under the objective of
    `facility_location` (same c = 2 max ||x||): what `facility_gains` sums to, without the per-pick
    running maximum (a third of its cost), to compare solutions (the partitioned path)."""
    norms, c = _norms_and_offset(kernel)
    picks_t = torch.as_tensor(np.asarray(picks, dtype=np.int64), device=kernel.device)
    total = 0.0
    for rb in blocks(kernel.n, block):
        best = torch.zeros(rb.stop - rb.start, dtype=torch.float32, device=kernel.device)  # similarities are >= 0
        for cb in blocks(len(picks_t), chunk):
            torch.maximum(best, (c - sq_distances(kernel, rb, picks_t[cb], norms).sqrt_()).amax(1), out=best)
        total += float(best.sum(dtype=torch.float64))
    return total


def facility_location_batch(points: list[np.ndarray], ks: list[int], *, max_elements: int = 1 << 24,
                            device: torch.device | str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Greedy facility location on many small problems at once (CREST's random subset x class problems).

    Problem b picks ``ks[b]`` of the rows of ``points[b]`` with the objective of
    `hf_coreset.ops.facility_location` (CRAIG's sum_i max_{j in S} (c - ||x_i - x_j||), c = 2 max ||x||):
    the problems are padded to one size and stacked, their float64 distances come from one batched Gram
    matrix, and every greedy step scores every candidate of every problem in one vectorised reduction
    (the exact greedy, where `facility_location` is the lazy one; both take the first row on exact ties).
    Problems are taken in chunks of at most `max_elements` distance entries, so memory stays bounded.
    Runs on `device` (`None`: `hf_coreset.ops.device.default_device`), in float64 there; the same
    expression on every device, so picks differ only on float64 ties.

    Returns:
        One `(picks, cluster_sizes)` per problem: positions into ``points[b]`` in pick order, and how many of
        its rows have each pick as their nearest (the earlier pick on ties).
    """
    if len(points) != len(ks):
        raise ValueError(f"{len(points)} problems but {len(ks)} budgets; pass one budget per problem.")
    for x, k in zip(points, ks):
        if not 1 <= int(k) <= len(x):
            raise ValueError(f"k={k} must be in [1, {len(x)}] (the rows of its problem).")
    dev = resolve_device(device)
    order = sorted(range(len(points)), key=lambda b: len(points[b]))  # similar sizes share a chunk: less padding
    out: list = [None] * len(points)
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop + 1 - start) * len(points[order[stop]]) ** 2 <= max_elements:
            stop += 1
        chunk = order[start:stop]
        for b, result in zip(chunk, _greedy_chunk([points[b] for b in chunk], [int(ks[b]) for b in chunk], dev)):
            out[b] = result
        start = stop
    return out


def _greedy_chunk(points: list[np.ndarray], ks: list[int], dev: torch.device) -> list[tuple[np.ndarray, np.ndarray]]:
    """`facility_location_batch` on one chunk of problems, padded to its largest."""
    B, N = len(points), max(len(x) for x in points)
    x = torch.zeros((B, N, points[0].shape[1]), dtype=torch.float64, device=dev)
    valid = torch.zeros((B, N), dtype=torch.bool, device=dev)
    for b, p in enumerate(points):
        x[b, :len(p)] = torch.as_tensor(p, dtype=torch.float64, device=dev)
        valid[b, :len(p)] = True
    gram = x @ x.transpose(1, 2)
    sq = gram.diagonal(dim1=1, dim2=2)
    dist = (sq[:, :, None] + sq[:, None, :] - 2.0 * gram).clamp_(min=0.0).sqrt_()
    # With c = 2 max ||x|| + 1e-6 >= every distance, the gain of j is sum_i max(near_i - d_ij, 0), where
    # near_i is row i's distance to its nearest pick (c before the first pick): the similarity form
    # c - d minus the similarity covered so far. Padding rows cover nothing (near = 0).
    c = 2.0 * sq.amax(1).sqrt() + 1e-6
    near = torch.where(valid, c[:, None], torch.zeros((), dtype=torch.float64, device=dev))
    k = torch.as_tensor(ks, device=dev)
    picks = torch.zeros((B, max(ks)), dtype=torch.long, device=dev)
    blocked = ~valid
    rows = torch.arange(B, device=dev)
    for t in range(max(ks)):
        gains = (near[:, :, None] - dist).clamp_(min=0.0).sum(1)
        gains.masked_fill_(blocked, -math.inf)
        j = gains.argmax(1)  # the first maximum: the lowest position on exact ties
        active = t < k
        picks[:, t] = j
        near = torch.where(active[:, None], torch.minimum(near, dist[rows, :, j]), near)
        blocked[rows[active], j[active]] = True
    out = []
    for b, p in enumerate(points):
        chosen = picks[b, :ks[b]]
        nearest = dist[b, :len(p)][:, chosen].argmin(1)  # the first minimum: the earlier pick on ties
        out.append((chosen.cpu().numpy().astype(np.int64),
                    np.bincount(nearest.cpu().numpy(), minlength=ks[b]).astype(np.float64)))
    return out
