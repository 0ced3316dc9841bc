"""Class-conditional prototypes: per-class k-means in the proxy's feature space, one row per centre."""

from __future__ import annotations

import numpy as np
import torch

from ..ops import default_device, kmeans, nearest_rows
from . import Keeps, register
from ._common import (MethodOutput, ExactLimit, check_bool, check_epoch, check_int, check_partition_size, check_real,
                      class_partition, groups, last_epoch_needs, partition_info)
from .el2n import el2n_scores

# The default ("auto"): exact k-means up to LIMIT.threshold clustered rows per class, from the exact time of a
# 30,000-row class (benchmarks/results/partitioned.md at revision f77e845, rows "30,000 | 10% | prototypes", column
# "exact s"; on a machine running two other benchmarks); above it parts of 2,000 rows, of the two sizes measured
# there the faster and the closer to exact's k-medoid objective.
LIMIT = ExactLimit(rows=30_000, seconds=190.22, size=2_000)


def random_members(assign: np.ndarray, centres: np.ndarray, x: np.ndarray, rng: np.random.Generator,
                   device: torch.device | str | None = None) -> np.ndarray:
    """One distinct row per cluster, drawn uniformly from its members; a cluster left empty takes
    the nearest row not drawn yet (so exactly one row per centre, as `nearest_rows` gives)."""
    out = np.full(len(centres), -1, dtype=np.int64)
    order = np.argsort(assign, kind="stable")
    counts = np.bincount(assign, minlength=len(centres))
    starts = np.cumsum(counts) - counts
    for j in np.flatnonzero(counts):
        out[j] = order[starts[j] + int(rng.integers(counts[j]))]
    empty = np.flatnonzero(out < 0)
    if len(empty):
        out[empty] = nearest_rows(x, centres[empty], exclude=out[out >= 0], device=device)
    return out


def _check(*, epoch, easy, iters, normalize, keep, partition_size):
    check_epoch(epoch)
    check_partition_size(partition_size, LIMIT)
    check_real(easy, "easy", "(0, 1]", ": the share of easiest rows clustered (1.0 = all)")
    check_int(iters, "iters", 0, "a non-negative integer")
    check_bool(normalize, "normalize")
    if keep not in ("nearest", "random"):
        raise ValueError(f"keep={keep!r} must be 'nearest' (the row nearest each centre) or 'random' "
                         "(a random member of each cluster).")


@register("prototypes", needs=last_epoch_needs(("features", "logits")), check=_check, version=1,
          summary="Per-class k-means on proxy features with the class budget as k; keeps the row nearest each centre.",
          paper="k-medoid-style prototypes; cf. Sorscher et al., Beyond neural scaling laws, NeurIPS 2022",
          signal="classifier input (and EL2N for `easy`) at proxy epoch",
          cost="proxy epochs + 1 forward pass + O(iters n k d); O(iters P k d) per class in parts of P = 2,000 above "
               "16,000 clustered rows per class", keeps=Keeps.OTHER,
          keeps_note="one row per centre (the nearest, or a random member)")
def prototypes(signals, budget, *, rng, epoch: int | None = None, easy: float = 0.9, iters: int = 20,
               normalize: bool = False, keep: str = "nearest", partition_size: int | str | None = "auto"
               ) -> MethodOutput:
    """Class-conditional prototypes: for each class with budget k, k-means (k-means++ seeding from
    the selection seed, `iters` Lloyd steps, distances in row blocks on the Accelerate state's device,
    else the CPU: `hf_coreset.ops.kmeans`) on the classifier-input features at proxy epoch `epoch`,
    then the distinct row nearest each centre.

    With `easy < 1` only the `easy` share of each class with the lowest EL2N (the easiest rows at
    the same epoch) is clustered: representative and easy rows, the regime Sorscher et al. find
    best when little data is kept. `normalize=True` clusters unit-norm features (cosine geometry).

    `partition_size` (default "auto": exact on a class of at most 16,000 clustered rows, parts of 2,000
    above; None: exact on every class; an integer P: parts of at most P): the clustered rows of a larger
    class are split by a seeded random split (`_common.partition`: from the seed and the class only) into
    ceil(rows / P) parts with budgets k_p proportional to their sizes, and each part runs its own k-means
    with k_p centres. Lloyd's iterations then cost O(P k_p d) per part instead of O(n_c k d) per class
    (in all, O(iters P k d) instead of O(iters n_c k d)), at a measured cost in the k-medoid objective
    (BENCHMARKS.md, "Partitioned k-center, facility location, kernel herding, herding and prototypes
    against exact"). A class that fits in one part runs exact. The info records each class's parts
    (1: exact).

    Args:
        epoch (`int`, *optional*): proxy epoch of the features; unset, the proxy's last epoch
            (`ProxyConfig.epochs`: 10, or the fine-tuning recipe's for a pretrained transformer); chosen over the
            untrained model (0) and epochs 1 and 3 on the MNIST-1D validation split
            (benchmarks/results/tuning_small_fractions.md).
        easy (`float`, *optional*, defaults to `0.9`): share of each class (easiest first) that is
            clustered, in (0, 1]; never fewer rows than the class budget. 0.9 (drop the hardest
            tenth, mostly ambiguous rows) was chosen over 1.0 and 0.5 on the MNIST-1D validation
            split (benchmarks/results/tuning_small_fractions.md).
        iters (`int`, *optional*, defaults to `20`): at most this many Lloyd iterations.
        normalize (`bool`, *optional*, defaults to `False`): cluster L2-normalised features.
        keep (`str`, *optional*, defaults to `"nearest"`): which row of each cluster is kept:
            `"nearest"` the row nearest its centre (a prototype), `"random"` a uniformly random
            member (cluster-stratified sampling: one draw per cluster, so the subset covers every
            cluster yet keeps the within-cluster variety that nearest rows lose at larger budgets).
        partition_size (`int`, `"auto"` or `None`, *optional*, defaults to `"auto"`): above this many
            clustered rows a class is clustered in seeded random parts (see above); "auto": exact up to
            16,000 rows per class, parts of 2,000 above; None: exact on every class.

    Returns:
        `MethodOutput` with `gains` = the size of each kept row's cluster, and `scores` = EL2N.

    Example:
        ```python
        >>> sel = hf_coreset.select(ds, "prototypes", fraction=0.01, model=model, proxy={"lr": 1e-2})
        ```
    """
    feats = signals.at(epoch, "features").features

    def clustered_features(rows):  # float64 rows of one part at a time, never all n x d (4 GB at 1M x 512)
        x = feats[rows].astype(np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if normalize else x

    difficulty = el2n_scores(signals, epoch)
    device = default_device()  # where, not what: the picks are the same up to float ties (hf_coreset.ops.clustering)
    picked, sizes, clustered = [], [], np.zeros(len(signals.labels), dtype=bool)
    for rows, k in groups(signals.labels, budget):
        m = max(k, int(np.ceil(easy * len(rows))))
        pool = rows[np.lexsort((rows, difficulty[rows]))[:m]] if m < len(rows) else rows
        clustered[pool] = True
        for part, kp in class_partition(pool, k, partition_size, LIMIT, rng=rng, labels=signals.labels, budget=budget):
            sub = pool[part]
            x = clustered_features(sub)
            centres, assign = kmeans(x, kp, iters=iters, rng=rng, device=device)
            picked.append(sub[nearest_rows(x, centres, device=device) if keep == "nearest"
                              else random_members(assign, centres, x, rng, device)])
            sizes.append(np.bincount(assign, minlength=kp))
    # the path each class took, counted on its clustered rows (what the threshold applies to)
    info = partition_info(signals.labels[clustered], budget, partition_size, LIMIT)
    return MethodOutput(indices=np.concatenate(picked), scores=difficulty,
                        gains=np.concatenate(sizes).astype(np.float64), info=info)
