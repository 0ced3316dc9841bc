"""Kernel herding with a Gaussian kernel: greedy MMD matching of each class's feature distribution."""

from __future__ import annotations

import functools
import inspect
import math
import numbers

import numpy as np

from ..ops import default_device, gaussian_herding
from . import Keeps, register
from ._common import (MethodOutput, ExactLimit, check_epoch, check_partition_size, groups, last_epoch_needs,
                      class_partition, partition_info, round2_groups)
from ._distribute import two_rounds

# The default ("auto"): exact up to LIMIT.threshold rows per class, from the exact time of a 30,000-row class
# (benchmarks/results/partitioned.md at revision 8a2ccc6, rows "30,000 | kernel-herding", column "exact s");
# above it parts of 2,000, of the two partition sizes measured there the faster and the closer to exact's MMD at
# 30,000 rows. A quieter re-run at b8bd837 measured 23.6 s there; the threshold stays on the slower run (lower:
# exact stays within a minute on a busier core).
LIMIT = ExactLimit(rows=30_000, seconds=37.37, size=2_000)

# Rows above which `gaussian_herding` draws its anchor rows from the selection's generator.
ANCHORS = inspect.signature(gaussian_herding).parameters["anchors"].default


def _check(*, epoch, bandwidth, partition_size):
    check_epoch(epoch)
    check_partition_size(partition_size, LIMIT)
    message = (f"bandwidth={bandwidth!r} must be a number > 0, in units of the class's mean squared pairwise "
               "distance (1.0 is the default).")
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, numbers.Real):
        raise TypeError(message)
    if not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(message)


@register("kernel-herding", needs=last_epoch_needs(("features",)), check=_check, version=1, distributable=True,
          partition_limit=LIMIT,
          summary="Greedy MMD matching of each class's feature distribution with a Gaussian kernel (kernel herding).",
          paper="Chen, Welling & Smola, Super-Samples from Kernel Herding, UAI 2010",
          signal="classifier input at proxy epoch",
          cost="proxy epochs + 1 forward pass + O(n min(n_c, 4096) d + k n d), blocked; O(k P d) per class "
               "in parts of P = 2,000 above 38,000 rows per class", keeps=Keeps.OTHER, keeps_note="greedy order")
def kernel_herding(signals, budget, *, rng, epoch: int | None = None, bandwidth: float = 1.0,
                   partition_size: int | str | None = "auto") -> MethodOutput:
    """Per class, kernel herding on the classifier-input features at proxy epoch `epoch`: each pick is
    the row whose addition most reduces the maximum mean discrepancy between the picks and the class
    under k(x, y) = exp(-||x - y||^2 / (bandwidth * D)), D the class's mean squared pairwise distance
    (`hf_coreset.ops.gaussian_herding`).

    `herding` (Welling's, the linear kernel) matches only the class mean, so its picks crowd around
    it; the Gaussian kernel matches every moment, so the picks spread over the class in proportion to
    its density, like a random sample but with a discrepancy that shrinks as 1/k instead of
    1/sqrt(k). How it compares with random on MNIST-1D: BENCHMARKS.md ("Validation study
    `auto_validation`"). Classes of more than 4096 rows estimate each row's mean kernel value on
    4096 rows drawn with the selection seed.

    `partition_size` (default "auto": exact on a class of at most 38,000 rows, parts of 2,000 above; None:
    exact on every class; an integer P: parts of at most P): a class of more rows is split by a seeded
    random split (`_common.partition`: from the seed and the class only) into ceil(n_c / partition_size)
    parts with budgets k_p proportional to their sizes, in GreeDi's two rounds (Mirzasoleiman et al.,
    NeurIPS 2013; `_distribute.two_rounds`): kernel herding picks 2 k_p candidates in each part (matching the
    part), then kernel herding over the candidates picks the class's k, matching the whole class (mean
    kernel values to its anchors, the class's bandwidth). When the candidates number more than about 4,096
    (`_common.ROUND2_ROWS`: k above ~2,000), round 2 runs on consecutive groups of parts, each picking its
    parts' share among their candidates, matching the class and going on from the earlier groups' picks
    (`ops.gaussian_herding(picked=)`), so that a pick's cost does not grow with k. A first-round pick
    costs O(partition_size d) instead of O(n_c d), and a round-2 pick O(4,096) once the group's kernel is
    built. Round 2 is what keeps the union's MMD close to exact's: each part matched
    alone with its k_p picks leaves the sampling noise of the parts in the union. A class that fits in one
    part runs exact. The MMD of partitioned picks against exact's: BENCHMARKS.md ("Partitioned
    k-center, facility location, kernel herding, herding and prototypes against exact"). The info
    records each class's parts (1: exact).

    Args:
        epoch (`int`, *optional*): proxy epoch of the features; unset, the proxy's last epoch
            (`ProxyConfig.epochs`: 10, or the fine-tuning recipe's for a pretrained transformer).
        bandwidth (`float`, *optional*, defaults to `1.0`): kernel width in units of the class's mean
            squared pairwise distance; chosen over 0.3 and 3.0 on the MNIST-1D validation split at
            5% and 10% (benchmarks/results/auto_validation.md).
        partition_size (`int`, `"auto"` or `None`, *optional*, defaults to `"auto"`): above this many rows
            a class is herded in seeded random parts (see above); "auto": exact up to 38,000 rows per
            class, parts of 2,000 above; None: exact on every class.

    Returns:
        `MethodOutput` with the picks of each class in greedy order.

    Example:
        ```python
        >>> sel = hf_coreset.select(ds, "kernel-herding", fraction=0.05, model=model, proxy={"lr": 1e-2})
        ```
    """
    feats = signals.at(epoch, "features").features

    def parts(rows, k):
        return class_partition(rows, k, partition_size, LIMIT, rng=rng, labels=signals.labels, budget=budget)

    def skip_part(item):  # a part another process herds still draws its anchors here, as one process would
        if len(item[0]) > ANCHORS:
            rng.choice(len(item[0]), ANCHORS, replace=False)

    def skip(rows, k):  # a class another process herds still draws its anchors here, as one process would
        split = parts(rows, k)
        for item in split:
            skip_part(item)
        if len(split) > 1 and len(rows) > ANCHORS:  # each round-2 group matches the class
            for _ in round2_groups(split):
                rng.choice(len(rows), ANCHORS, replace=False)

    device = default_device()  # where, not what: the picks are the same up to float ties
    herd = functools.partial(gaussian_herding, bandwidth=float(bandwidth), rng=rng, device=device)
    picked = []
    for rows, k in groups(signals.labels, budget, skip=skip):
        split = parts(rows, k)
        picked.append(rows[herd(feats[rows], k) if len(split) == 1
                           else two_rounds(herd, feats[rows], split, skip_part)])
    return MethodOutput(indices=np.concatenate(picked), info=partition_info(signals.labels, budget, partition_size, LIMIT))
