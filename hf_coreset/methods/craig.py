"""CRAIG: facility location on last-layer gradients, weighted by cluster size (Mirzasoleiman et al., ICML 2020)."""

from __future__ import annotations

import numpy as np

from ..ops import FeatureKernel, GradientKernel, default_device, facility_gains, facility_location, facility_objective
from . import Keeps, register
from ._common import (MethodOutput, ExactLimit, check_epoch, check_partition_size, groups, last_epoch_needs,
                      class_partition, partition_info, round1_picks, round2_groups)
from ._distribute import map_parts

# The default ("auto"): exact up to LIMIT.threshold rows per class, from the exact time of a 30,000-row class
# (benchmarks/results/partitioned.md at revision 8a2ccc6, rows "30,000 | craig", column "exact s"); above it
# parts of 2,000, of the two partition sizes measured there the faster at 30,000 rows (both well above the 0.98
# F-ratio target). A quieter re-run at b8bd837 measured 116.6 s there; the threshold stays on the slower run
# (lower: exact stays within a minute on a busier core).
LIMIT = ExactLimit(rows=30_000, seconds=169.95, size=2_000)


def _check(*, epoch, space, partition_size):
    check_epoch(epoch)
    check_partition_size(partition_size, LIMIT)
    if space not in ("gradient", "features"):
        raise ValueError(f"space={space!r}; pass 'gradient' or 'features'.")


# 2: p - y from the one float64 logit gradient (signals.logit_grad), which moves a few near-tie picks.
@register("craig", needs=last_epoch_needs(("logits", "features")), check=_check, version=2, distributable=True,
          partition_limit=LIMIT,
          summary="Facility location on last-layer gradients; weights = cluster sizes.",
          paper="Mirzasoleiman et al., Coresets for Data-efficient Training of ML Models, ICML 2020",
          signal="last-layer gradient (p - y) h^T at proxy epoch", cost="proxy epochs + O(n_c^2 (C + d)) per class; O(n_c (P + k) (C + d)) in parts of "
               "P = 2,000 above 17,000 rows per class",
          keeps=Keeps.OTHER, keeps_note="greedy order", weighted=True)
def craig(signals, budget, *, rng, epoch: int | None = None, space: str = "gradient",
          partition_size: int | str | None = "auto") -> MethodOutput:
    """Per class, greedy facility location F(S) = sum_i max_{j in S} (c - ||g_i - g_j||) over the
    last-layer gradients g = (p - y) h^T + bias (never formed: their inner products factor), or over
    the features h with `space="features"`. Each pick's weight is the number of class rows it is
    most similar to. `gains` are the marginal objective gains (non-increasing within a class).

    `partition_size` (default "auto": exact on a class of at most 17,000 rows, parts of 2,000 above; None:
    exact on every class; an integer P: parts of at most P): a class of more rows takes GreeDi's two
    rounds (Mirzasoleiman et al., NeurIPS 2013) on a seeded random split (`_common.partition`: from
    the seed and the class only) into ceil(n_c / partition_size) parts with budgets k_p proportional
    to their sizes. Round 1 runs greedy on each part to `_common.ROUND1_OVERSAMPLE` k_p picks; the parts'
    first k_p picks form solution A. Round 2 runs greedy on the union of all round-1 picks for k_c
    picks: solution B. The one with the larger objective on the whole class (blocked,
    `ops.facility_objective`; A on ties) is kept, its weights and gains (in its pick order, not
    necessarily non-increasing) counted over the whole class. When the round-1 picks number more than
    about 4,096 (`_common.ROUND2_ROWS`: k_c above ~2,000), round 2 runs on consecutive groups of parts
    instead, each choosing between its A and B on its own rows for its parts' share of the budget, so
    that round 2's cost does not grow as k_c^2. A class that fits in one part runs
    exact. The info records each class's parts (1: exact)."""
    ckpt = signals.at(epoch, "logits", "features")
    e = ckpt.logit_grad(signals.labels)
    device = default_device()  # where, not what: the picks are the same up to float ties
    picked, gains, weights = [], [], []

    def kernel(rows):
        return (GradientKernel(e[rows], ckpt.features[rows], device=device) if space == "gradient"
                else FeatureKernel(ckpt.features[rows], device=device))

    for rows, k in groups(signals.labels, budget):
        parts = class_partition(rows, k, partition_size, LIMIT, rng=rng, labels=signals.labels, budget=budget)
        if len(parts) == 1:
            p, g, w = facility_location(kernel(rows), k)
        else:
            p, g, w = _greedi(kernel, rows, k, parts)
        picked.append(rows[p])
        gains.append(g)
        weights.append(w)
    return MethodOutput(indices=np.concatenate(picked), gains=np.concatenate(gains), weights=np.concatenate(weights),
                        info=partition_info(signals.labels, budget, partition_size, LIMIT))


def _greedi(kernel, rows, k, parts):
    """(positions in the class, gains, weights): per round-2 group, GreeDi's better solution (see `craig`)."""
    pools = map_parts(lambda item: item[0][facility_location(kernel(rows[item[0]]), round1_picks(*item))[0]], parts)
    chosen = []
    for group in round2_groups(parts):
        a = np.concatenate([pools[i][:parts[i][1]] for i in group])
        pool = np.sort(np.concatenate([pools[i] for i in group]))
        b = pool[facility_location(kernel(rows[pool]), sum(parts[i][1] for i in group))[0]]
        target = np.sort(np.concatenate([parts[i][0] for i in group]))  # the group's rows: the class for one group
        covered = kernel(rows[target])
        value_a, value_b = (facility_objective(covered, np.searchsorted(target, p)) for p in (a, b))
        chosen.append(b if value_b > value_a else a)
    picks = np.concatenate(chosen)
    return (picks, *facility_gains(kernel(rows), picks))  # gains and weights over the whole class
