"""Herding (Welling, ICML 2009): greedy mean matching of classifier-input features, per class."""

from __future__ import annotations

import functools

import numpy as np

from ..ops import default_device, herding as herding_greedy
from . import Keeps, register
from ._common import (MethodOutput, ExactLimit, check_epoch, check_partition_size, class_partition, groups,
                      last_epoch_needs, partition_info)
from ._distribute import two_rounds

# The default ("auto"): exact up to LIMIT.threshold rows per class, from the exact time of a 30,000-row class
# (benchmarks/results/partitioned.md at revision f90fd2e, rows "30,000 | 10% | herding", column "exact s"); above
# it parts of 2,000, as kernel herding (the faster of the two sizes measured there, at the same mean gap).
LIMIT = ExactLimit(rows=30_000, seconds=17.57, size=2_000)


def _check(*, epoch, partition_size):
    check_epoch(epoch)
    check_partition_size(partition_size, LIMIT)


@register("herding", needs=last_epoch_needs(("features",)), check=_check, version=1, distributable=True, partition_limit=LIMIT,
          summary="Greedy mean matching of classifier-input features, per class.",
          paper="Welling, Herding Dynamical Weights to Learn, ICML 2009", signal="classifier input at proxy epoch",
          cost="proxy epochs + 1 forward pass + O(k n d); O(k P d) per class in parts of P = 2,000 above "
               "55,000 rows per class", keeps=Keeps.OTHER, keeps_note="greedy order")
def herding(signals, budget, *, rng, epoch: int | None = None, partition_size: int | str | None = "auto"
            ) -> MethodOutput:
    """Per class, pick the row that brings the mean of the picks closest to the class mean, until
    the budget is spent (`hf_coreset.ops.herding`). Picks the nearest row (DeepCore's herding picks the
    farthest, a bug).

    `partition_size` (default "auto": exact on a class of at most 55,000 rows, parts of 2,000 above; None:
    exact on every class; an integer P: parts of at most P): a class of more rows takes the two rounds of
    `kernel-herding`'s partitioned path (`_distribute.two_rounds`) with the linear kernel: 2 k_p candidates per
    seeded random part matching the part's mean, then the class's k among them matching the class's mean
    (when they number more than about 4,096, a group of parts at a time, each going on from the earlier
    groups' picks). Each pick costs O(partition_size d) or less instead of O(n_c d). The info records each
    class's parts (1: exact).
    """
    feats = signals.at(epoch, "features").features
    # where, not what: the picks are the same up to float ties
    herd = functools.partial(herding_greedy, device=default_device())
    picked = []
    for rows, k in groups(signals.labels, budget):
        split = class_partition(rows, k, partition_size, LIMIT, rng=rng, labels=signals.labels, budget=budget)
        picked.append(rows[herd(feats[rows], k) if len(split) == 1 else two_rounds(herd, feats[rows], split)])
    return MethodOutput(indices=np.concatenate(picked),
                        info=partition_info(signals.labels, budget, partition_size, LIMIT))
