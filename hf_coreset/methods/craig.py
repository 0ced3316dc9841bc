"""CRAIG: facility location on last-layer gradients, weighted by cluster size (Mirzasoleiman et al., ICML 2020)."""

from __future__ import annotations

import numpy as np

from ..ops import FeatureKernel, GradientKernel, default_device, facility_location
from . import Keeps, register
from ._common import MethodOutput, check_epoch, groups, last_epoch_needs


def _check(*, epoch, space):
    check_epoch(epoch)
    if space not in ("gradient", "features"):
        raise ValueError(f"space={space!r}; pass 'gradient' or 'features'.")


# 2: p - y from the one float64 logit gradient (signals.logit_grad), which moves a few near-tie picks.
@register("craig", needs=last_epoch_needs(("logits", "features")), check=_check, version=2, distributable=True,
          summary="Facility location on last-layer gradients; weights = cluster sizes.",
          paper="Mirzasoleiman et al., Coresets for Data-efficient Training of ML Models, ICML 2020",
          signal="last-layer gradient (p - y) h^T at proxy epoch", cost="proxy epochs + O(n_c^2 (C + d)) per class",
          keeps=Keeps.OTHER, keeps_note="greedy order", weighted=True)
def craig(signals, budget, *, rng, epoch: int | None = None, space: str = "gradient") -> MethodOutput:
    """Per class, greedy facility location F(S) = sum_i max_{j in S} (c - ||g_i - g_j||) over the
    last-layer gradients g = (p - y) h^T + bias (never formed: their inner products factor), or over
    the features h with `space="features"`. Each pick's weight is the number of class rows it is
    most similar to. `gains` are the marginal objective gains (non-increasing within a class)."""
    ckpt = signals.at(epoch, "logits", "features")
    e = ckpt.logit_grad(signals.labels)
    device = default_device()  # where, not what: the picks are the same up to float ties
    picked, gains, weights = [], [], []
    for rows, k in groups(signals.labels, budget):
        kernel = (GradientKernel(e[rows], ckpt.features[rows], device=device) if space == "gradient"
                  else FeatureKernel(ckpt.features[rows], device=device))
        p, g, w = facility_location(kernel, k)
        picked.append(rows[p])
        gains.append(g)
        weights.append(w)
    return MethodOutput(indices=np.concatenate(picked), gains=np.concatenate(gains), weights=np.concatenate(weights))
