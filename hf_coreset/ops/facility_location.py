"""Facility location by lazy greedy, with similarities computed in blocks.

Objective (CRAIG, Mirzasoleiman et al., ICML 2020): F(S) = sum_i max_{j in S} s_ij with
s_ij = c - ||x_i - x_j||, a non-negative similarity. Any c >= max_ij ||x_i - x_j|| gives the same
greedy sequence (once S is non-empty, F(S) = n c - sum_i min_j d_ij); we use c = 2 max_i ||x_i||,
which bounds every distance and needs no pass over all pairs.

Lazy greedy (Minoux 1978) keeps stale gains as upper bounds (F is submodular). Candidates are
re-evaluated B at a time in one matrix product; the best fresh gain is taken when it beats every
remaining bound, ties going to the lower row, exactly like naive greedy.

Runs where the kernel's rows are (`kernel.device`): similarities in float32 blocks of `block` rows
(a row's distance to itself set to exactly 0, see `sq_distances`), gains accumulated in float64
there; the heap of stale bounds lives on the host (one transfer of EVAL_BATCH gains per evaluation). CPU and GPU picks differ only where two candidates' gains are
within float32 rounding (the lower row wins each exact tie on both).
"""

from __future__ import annotations

import heapq

import numpy as np
import torch

from .pairwise import DEFAULT_BLOCK, blocks, sq_distances

EVAL_BATCH = 32  # candidates re-evaluated per matrix product


def facility_location(kernel, k: int, *, block: int = DEFAULT_BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy facility location on the rows of `kernel`.

    Args:
        kernel: a `FeatureKernel` or `GradientKernel` over n rows.
        k (`int`): number of rows to pick, 1 <= k <= n.

    Returns:
        `(picks, gains, weights)`: positions in pick order, the marginal gain of each pick
        (non-increasing), and each pick's cluster size (rows whose most similar pick it is).
    """
    n = kernel.n
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, {n}].")
    norms = kernel.sq_norms().double().float()
    c = 2.0 * float(norms.max().sqrt()) + 1e-6

    def similarity(rows, cols):
        return c - sq_distances(kernel, rows, cols, norms).sqrt_()

    # Initial gains: column sums of the similarity matrix, computed block by block.
    dev = kernel.device
    gains0 = torch.zeros(n, dtype=torch.float64, device=dev)
    for rb in blocks(n, block):
        for cb in blocks(n, block):
            gains0[cb] += similarity(rb, cb).sum(0, dtype=torch.float64)
    heap = [(-float(g), j) for j, g in enumerate(gains0.tolist())]
    heapq.heapify(heap)
    current = torch.zeros(n, dtype=torch.float64, device=dev)  # best similarity of each row to the picks so far
    picks, gains = [], []
    while len(picks) < k:
        batch = [heapq.heappop(heap) for _ in range(min(EVAL_BATCH, len(heap)))]
        cand = torch.tensor([j for _, j in batch], device=dev)
        fresh = torch.zeros(len(cand), dtype=torch.float64, device=dev)
        for rb in blocks(n, block):
            s = similarity(rb, cand).double()
            fresh += (s - current[rb, None]).clamp_(min=0).sum(0)
        order = sorted(zip((-fresh).tolist(), cand.tolist()))
        best = order[0]
        if not heap or best <= heap[0]:
            j = best[1]
            picks.append(j)
            gains.append(-best[0])
            current = torch.maximum(current, similarity(slice(0, n), torch.tensor([j], device=dev)).double()[:, 0])
            rest = order[1:]
        else:
            rest = order
        for item in rest:
            heapq.heappush(heap, item)
    picks_t = torch.tensor(picks, device=dev)
    weights = np.zeros(len(picks), dtype=np.float64)
    for rb in blocks(n, block):
        nearest = similarity(rb, picks_t).argmax(dim=1)
        weights += np.bincount(nearest.cpu().numpy(), minlength=len(picks))
    return np.asarray(picks, dtype=np.int64), np.asarray(gains), weights


def facility_gains(kernel, picks, *, block: int = DEFAULT_BLOCK, chunk: int = DEFAULT_BLOCK
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The marginal gain of each of `picks` in their order, and each pick's cluster size, under the
    objective of `facility_location` on all rows of `kernel` (same c = 2 max ||x||): the gains sum to
    F(picks). Blocked (block rows x chunk picks at a time, a running maximum carried across chunks),
    never n x n; used to compare solutions found on parts of the rows (the partitioned path).
    A pick's cluster is the rows whose most similar pick it is, ties to the earlier pick."""
    n = kernel.n
    norms = kernel.sq_norms().double().float()
    c = 2.0 * float(norms.max().sqrt()) + 1e-6
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
