"""k-center greedy in the proxy's feature space (Sener & Savarese, ICLR 2018)."""

from __future__ import annotations

import numpy as np

from ..ops import default_device, kcenter_greedy
from . import Keeps, register
from ._common import MethodOutput, check_epoch, groups, last_epoch_needs


def _check(*, epoch, init):
    check_epoch(epoch)
    if init not in ("mean", "random"):
        raise ValueError(f"init={init!r}; pass 'mean' or 'random'.")


@register("kcenter", needs=last_epoch_needs(("features",)), check=_check, version=1, distributable=True,
          summary="Greedy k-center: each pick is the row farthest from the picks so far, per class.",
          paper="Sener & Savarese, Active Learning for CNNs: A Core-Set Approach, ICLR 2018",
          signal="classifier input at proxy epoch", cost="proxy epochs + 1 forward pass + O(k n d)",
          keeps=Keeps.OTHER, keeps_note="greedy order")
def kcenter(signals, budget, *, rng, epoch: int | None = None, init: str = "mean") -> MethodOutput:
    """Greedy k-center on classifier-input features, per class. The first pick is the row nearest
    the class mean (`init="mean"`, deterministic) or a seeded random row (`init="random"`).
    `gains` holds each pick's distance to the earlier picks (the covering radius it closed).
    Runs on the Accelerate state's device when there is one (`hf_coreset.ops.default_device`)."""
    feats = signals.at(epoch, "features").features
    device = default_device()  # where, not what: the picks are the same up to float ties
    picked, radii = [], []
    # Split across processes, a skipped class still draws its random first pick, as one process would.
    skip = (lambda rows, k: rng.integers(len(rows))) if init == "random" else None
    for rows, k in groups(signals.labels, budget, skip=skip):
        x = feats[rows]
        if init == "mean":
            first = int(np.argmin(((x - x.mean(0)) ** 2).sum(1)))
        else:
            first = int(rng.integers(len(rows)))
        picks, r = kcenter_greedy(x, k, first=first, device=device)
        picked.append(rows[picks])
        radii.append(r)
    return MethodOutput(indices=np.concatenate(picked), gains=np.concatenate(radii))
