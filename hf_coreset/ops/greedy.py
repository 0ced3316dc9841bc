"""Greedy k-center and herding on feature rows: O(k n d) time, O(n d) memory."""

from __future__ import annotations

import numpy as np
import torch

from .device import on_device, resolve_device


def kcenter_greedy(features, k: int, *, first: int, device: torch.device | str | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center (Gonzalez 1985; Sener & Savarese 2018): repeatedly pick the row farthest
    from the picks so far. Ties go to the lower row (`torch.argmax` returns the first maximum).

    Runs on `device` (`None`: `hf_coreset.ops.device.default_device`) in float32, O(n d) memory:
    the running minimum squared distance stays on the device, and each new center costs one
    matrix-vector product (||x||^2 + ||c||^2 - 2 x.c, the same float32 expression on every device),
    with no host synchronisation inside the loop. CPU and GPU picks agree except where two rows'
    distances are within float32 rounding of each other (a tie the two BLAS libraries may break
    differently).

    Triangle-inequality pruning (skip rows x with d(c, a(x)) >= 2 d(x, a(x)), a(x) the nearest
    center) was measured and left out: on 512-dim data with 10% kept, 95% of rows still need the
    new distance (81% at 16 dims), so gathering the rest costs more than the product it saves.

    Returns:
        `(picks, radii)`: positions in pick order and each pick's distance to the earlier picks
        (the covering radius just before it was added; +inf for the first).
    """
    dev = resolve_device(device)
    x = on_device(features, dev)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, {n}].")
    if not 0 <= first < n:
        raise ValueError(f"first={first} must be a row in [0, {n}).")
    sq = (x * x).sum(1)
    picks = torch.empty(k, dtype=torch.int64, device=dev)
    radii = torch.empty(k, dtype=torch.float32, device=dev)
    min_d = torch.full((n,), float("inf"), device=dev)
    base = torch.empty_like(min_d)
    d = torch.empty_like(min_d)
    zero = torch.zeros(1, device=dev)
    j = torch.tensor([first], device=dev)
    radii[0] = float("inf")
    for t in range(k):
        if t:
            j = torch.argmax(min_d).view(1)  # first maximum -> lowest row on ties
            radii[t:t + 1] = min_d.index_select(0, j)
        picks[t:t + 1] = j
        # d = (sq + sq[j]) - 2 x.c, clamped: bit for bit the expression of the reference loop
        torch.add(sq, sq.index_select(0, j), out=base)
        torch.addmv(base, x, x.index_select(0, j)[0], alpha=-2.0, out=d)
        torch.clamp(d, min=zero, max=min_d, out=min_d)  # min(min_d, max(d, 0)) in one pass
        min_d.index_fill_(0, j, -1.0)  # picked rows stay below every distance
    radii = radii.clamp_(min=0).sqrt_().cpu().numpy().astype(np.float64)
    return picks.cpu().numpy(), radii


def herding(features, k: int, *, target=None, picked=None, dense: bool | None = None,
            device: torch.device | str | None = None) -> np.ndarray:
    """Kernel herding (Welling 2009; Chen et al. 2010) with the linear kernel: at step t pick the
    unpicked row that brings the mean of the picks closest to the mean of all rows, i.e.
    argmin_i || t * mu - S_{t-1} - x_i ||, S the sum of earlier picks. Ties go to the lower row.

    DeepCore's herding takes the argmax of that distance (the farthest row) and collapses on our
    benchmark; this is the nearest-row version the method describes.

    `target` (default: `features` themselves): the rows whose mean mu the picks match, when the
    candidates are only some of them (the second round of the partitioned path). `picked` (default: none):
    rows chosen before, from other candidates: the greedy goes on from them (S starts at their sum, t at
    their count), as one herding over all candidates whose earlier steps could only pick those rows.

    Runs on `device` (`None`: `hf_coreset.ops.device.default_device`) without host synchronisation
    inside the loop, in float64: the target t mu - S grows with t while the candidates' distances
    to it differ by little, and float32 flips picks there. The same float64 expression on every
    device, so CPU and GPU picks differ only on float64 ties.

    `dense` (`None`: when the n x n float64 Gram matrix takes at most `DENSE_MAX_BYTES`, n <= 4,096):
    compute X X^T once at matrix-product speed and read one row of it per pick, instead of a
    matrix-vector product over all rows per pick (memory-bound: O(n d) bytes read per pick). The
    distances are then sq_i - 2 t x_i.mu + 2 sum_s x_i.x_s, the same quantity summed in another order,
    so the picks are the same except on float64 near-ties.
    """
    dev = resolve_device(device)
    x = on_device(features, dev, torch.float64)
    mu = (x if target is None else on_device(target, dev, torch.float64)).mean(0)
    n = x.shape[0]
    sq = (x * x).sum(1)
    taken = torch.zeros(n, dtype=torch.bool, device=dev)
    picks = torch.empty(k, dtype=torch.int64, device=dev)
    before = 0 if picked is None else len(picked)
    total = torch.zeros_like(mu) if not before else on_device(picked, dev, torch.float64).sum(0)
    gram = _blocked_gram(lambda cols: x @ x[cols].T, n, dev) if _dense(n, dense) else None
    if gram is not None:
        to_mean = x @ mu
        pulled = x @ total if before else torch.zeros(n, dtype=torch.float64, device=dev)  # sum of x_i.x_s over picks s
    for t in range(before + 1, before + k + 1):
        if gram is None:
            d = sq - 2.0 * (x @ (t * mu - total))  # ||t mu - S - x_i||^2 minus a constant
        else:
            d = sq - 2.0 * (t * to_mean - pulled)  # the same, from the kept Gram matrix
        d.masked_fill_(taken, float("inf"))
        j = torch.argmin(d).view(1)  # first minimum -> lowest row on ties
        picks[t - before - 1:t - before] = j
        taken.index_fill_(0, j, True)
        if gram is None:
            total += x.index_select(0, j)[0]
        else:
            pulled += gram.index_select(0, j)[0]
    return picks.cpu().numpy()


# Up to this, the herding greedies keep the n x n float64 kernel (n <= 4,096) and read a row per pick: below
# it, filling the matrix costs less than k matrix-vector products once k >= n / 10 (measured at 2,000-8,000 rows).
DENSE_MAX_BYTES = 1 << 27
DENSE_BLOCK = 1024  # columns per product when filling it


def _dense(n: int, dense: bool | None) -> bool:
    return 8 * n * n <= DENSE_MAX_BYTES if dense is None else dense


def _blocked_gram(columns, n: int, dev, sums: torch.Tensor | None = None, block: int = DENSE_BLOCK) -> torch.Tensor:
    """The n x n float64 matrix whose row j is `columns(j)` (`columns(idx)`: an (n, len(idx)) block, e.g.
    kernel values to rows idx), filled a block of columns at a time; `sums`, if given, gets each block's
    row sums added (the mean kernel values, in the blocks they are summed in anyway)."""
    out = torch.empty((n, n), dtype=torch.float64, device=dev)
    for start in range(0, n, block):
        cols = torch.arange(start, min(start + block, n), device=dev)
        values = columns(cols)
        if sums is not None:
            sums += values.sum(1)
        out[start:start + len(cols)] = values.T
    return out


def gaussian_herding(features, k: int, *, bandwidth: float = 1.0, anchors: int = 4096,
                     rng: np.random.Generator | None = None, block: int = 2048,
                     device: torch.device | str | None = None, target=None, picked=None,
                     dense: bool | None = None) -> np.ndarray:
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

    `target` (default: `features` themselves): the rows whose distribution the picks match, when the
    candidates are only some of them (the second round of the partitioned path); mu_i is then the mean
    kernel value from candidate i to the target rows (or `anchors` of them) and D is the target's.
    `picked` (default: none): rows chosen before, from other candidates: the greedy goes on from them
    (each candidate's pull starts at its kernel values to them, t at their count), as one herding over all
    candidates whose earlier steps could only pick those rows (the second round in groups).

    `dense` (`None`: when the n x n float64 kernel takes at most `DENSE_MAX_BYTES`, n <= 4,096): compute
    the candidates' kernel matrix once, a block of columns per matrix product (when mu is exact, the same
    blocks that sum to it), and read one row of it per pick instead of a matrix-vector product over all
    rows per pick. The same values from another product shape, so the same picks except on float64
    near-ties.

    Runs on `device` (`None`: `hf_coreset.ops.device.default_device`) in float64 (the gains
    mu_i - pulled_i / t of close rows differ by less than float32 resolves), without host
    synchronisation inside the loop; CPU and GPU picks differ only on float64 ties.
    """
    if not bandwidth > 0:
        raise ValueError(f"bandwidth={bandwidth!r} must be > 0 (a multiple of the mean squared distance).")
    dev = resolve_device(device)
    x = on_device(features, dev, torch.float64)
    t = x if target is None else on_device(target, dev, torch.float64)
    n, n_target = x.shape[0], t.shape[0]
    mean = t.mean(0)
    centred = x - mean
    sq = (centred * centred).sum(1)
    centred_t = centred if target is None else t - mean
    sq_t = sq if target is None else (centred_t * centred_t).sum(1)
    scale = bandwidth * max(2.0 * float(sq_t.mean()), 1e-12)

    def kernel_to(rows: torch.Tensor, c=centred, s=sq) -> torch.Tensor:  # (n, len(rows)) kernel values
        d = sq[:, None] + s[rows][None, :] - 2.0 * (centred @ c[rows].T)
        return torch.exp(-d.clamp_(min=0) / scale)

    if n_target <= anchors:
        reference = torch.arange(n_target, device=dev)
    else:
        if rng is None:
            raise ValueError(f"{n_target} rows > anchors={anchors}: pass rng= to draw the anchor rows.")
        reference = torch.as_tensor(np.sort(rng.choice(n_target, anchors, replace=False)), device=dev)
    mu = torch.zeros(n, dtype=torch.float64, device=dev)
    block = max(1, min(block, (1 << 24) // max(n, 1)))  # a few (n, block) float64 temporaries of <= 128 MiB each
    gram = None
    if _dense(n, dense) and target is None and n <= anchors:  # the reference rows are the candidates
        gram = _blocked_gram(kernel_to, n, dev, sums=mu, block=block)
    else:
        for i in range(0, len(reference), block):
            mu += kernel_to(reference[i:i + block], centred_t, sq_t).sum(1)
        if _dense(n, dense):
            gram = _blocked_gram(kernel_to, n, dev, block=block)
    mu /= len(reference)
    pulled = torch.zeros(n, dtype=torch.float64, device=dev)  # sum of k(x_i, x_s) over picks s
    before = 0 if picked is None else len(picked)
    if before:
        p = on_device(picked, dev, torch.float64) - mean
        sq_p = (p * p).sum(1)
        for i in range(0, before, block):
            pulled += kernel_to(torch.arange(i, min(i + block, before), device=dev), p, sq_p).sum(1)
    taken = torch.zeros(n, dtype=torch.bool, device=dev)
    picks = torch.empty(k, dtype=torch.int64, device=dev)
    for t in range(before + 1, before + k + 1):
        gain = mu - pulled / t
        gain.masked_fill_(taken, -float("inf"))
        j = torch.argmax(gain).view(1)  # first maximum -> lowest row on ties
        picks[t - before - 1:t - before] = j
        taken.index_fill_(0, j, True)
        pulled += kernel_to(j)[:, 0] if gram is None else gram.index_select(0, j)[0]
    return picks.cpu().numpy()
