"""k-center greedy in the proxy's feature space (Sener & Savarese, ICLR 2018)."""

from __future__ import annotations

import numpy as np

from ..ops import default_device, kcenter_greedy
from . import Keeps, register
from ._common import (MethodOutput, ExactLimit, check_epoch, check_partition_size, groups, last_epoch_needs,
                      class_partition, partition_info)
from ._distribute import map_parts

# The default ("auto"): exact up to LIMIT.threshold rows per class, from the exact time of a 30,000-row class
# (benchmarks/results/partitioned.md at revision 8a2ccc6, rows "30,000 | kcenter", column "exact s"); above it
# parts of 5,000, of the two partition sizes measured there the faster and the closer to exact's radius at 30,000
# rows. A quieter re-run at b8bd837 measured 7.8 s there; the threshold stays on the slower run (lower: exact
# stays within a minute on a busier core).
LIMIT = ExactLimit(rows=30_000, seconds=21.35, size=5_000)


def _check(*, epoch, init, partition_size):
    check_epoch(epoch)
    check_partition_size(partition_size, LIMIT)
    if init not in ("mean", "random"):
        raise ValueError(f"init={init!r}; pass 'mean' or 'random'.")


@register("kcenter", needs=last_epoch_needs(("features",)), check=_check, version=1, distributable=True, partition_limit=LIMIT,
          summary="Greedy k-center: each pick is the row farthest from the picks so far, per class.",
          paper="Sener & Savarese, Active Learning for CNNs: A Core-Set Approach, ICLR 2018",
          signal="classifier input at proxy epoch", cost="proxy epochs + 1 forward pass + O(k n d); O(k P d) in parts of P = 5,000 above 50,000 rows per class",
          keeps=Keeps.OTHER, keeps_note="greedy order")
def kcenter(signals, budget, *, rng, epoch: int | None = None, init: str = "mean",
            partition_size: int | str | None = "auto") -> MethodOutput:
    """Greedy k-center on classifier-input features, per class. The first pick is the row nearest
    the class mean (`init="mean"`, deterministic) or a seeded random row (`init="random"`).
    `gains` holds each pick's distance to the earlier picks (the covering radius it closed).
    Runs on the Accelerate state's device when there is one (`hf_coreset.ops.default_device`).

    `partition_size` (default "auto": exact on a class of at most 50,000 rows, parts of 5,000 above;
    None: exact on every class; an integer P: parts of at most P): a class of more rows is split by a seeded
    random split (`_common.partition`: from the seed and the class only) into ceil(n_c / partition_size)
    parts with budgets proportional to their sizes, and greedy k-center runs on each part; the picks
    are the parts' picks, part by part, and `gains` are radii within each part. A class that fits in
    one part runs exact. Each part starts at the row nearest its mean, except that with
    `init="random"` the class's random row starts its own part. The info records each class's parts
    (1: exact)."""
    feats = signals.at(epoch, "features").features
    device = default_device()  # where, not what: the picks are the same up to float ties
    picked, radii = [], []
    # Split across processes, a skipped class still draws its random first pick, as one process would.
    skip = (lambda rows, k: rng.integers(len(rows))) if init == "random" else None
    for rows, k in groups(signals.labels, budget, skip=skip):
        drawn = int(rng.integers(len(rows))) if init == "random" else -1  # one draw per class, as skip

        def run_part(item, rows=rows, drawn=drawn):
            part, kp = item
            x = feats[rows[part]]
            at = np.flatnonzero(part == drawn)
            first = int(at[0]) if len(at) else int(np.argmin(((x - x.mean(0)) ** 2).sum(1)))
            picks, r = kcenter_greedy(x, kp, first=first, device=device)
            return rows[part[picks]], r

        split = class_partition(rows, k, partition_size, LIMIT, rng=rng, labels=signals.labels, budget=budget)
        for picks, r in map_parts(run_part, split):
            picked.append(picks)
            radii.append(r)
    return MethodOutput(indices=np.concatenate(picked), gains=np.concatenate(radii),
                        info=partition_info(signals.labels, budget, partition_size, LIMIT))
