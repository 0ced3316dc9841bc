"""Herding: greedy mean matching in the proxy's feature space (Welling, ICML 2009)."""

from __future__ import annotations

import numpy as np

from ..ops import gaussian_herding
from ..ops import herding as herding_greedy
from . import register
from ._common import MethodOutput, groups, last_epoch_needs


@register("herding", needs=last_epoch_needs(("features",)), version=1,
          summary="Greedy mean matching of classifier-input features, per class.",
          paper="Welling, Herding Dynamical Weights to Learn, ICML 2009", signal="classifier input at proxy epoch",
          cost="proxy epochs + 1 forward pass + O(k n d) (gaussian: + O(n_c^2 d) per class, blocked)", keeps="greedy order")
def herding(signals, budget, *, rng, epoch: int = 10, kernel: str = "linear", bandwidth: float = 1.0) -> MethodOutput:
    """Per class, pick the row that brings the mean of the picks closest to the class mean, until
    the budget is spent. Picks the nearest row (DeepCore's herding picks the farthest, a bug).

    `kernel="gaussian"` runs kernel herding with a Gaussian kernel instead (Chen, Welling & Smola,
    UAI 2010; `hf_coreset.ops.gaussian_herding`): greedy minimisation of the maximum mean
    discrepancy between the picks and the class, so the picks follow the class's whole feature
    distribution rather than only its mean. `bandwidth` scales the kernel width in units of the
    class's mean squared pairwise distance. Classes of more than 4096 rows estimate each row's mean
    kernel value on 4096 rows drawn with the selection seed, which keeps the cost O(n d) per class
    plus O(k n d) for the picks. The default, `"linear"`, is Welling's herding as above.
    """
    if kernel not in ("linear", "gaussian"):
        raise ValueError(f"kernel={kernel!r} must be 'linear' (Welling's herding, matching the class mean) "
                         "or 'gaussian' (kernel herding, matching the whole distribution).")
    if not (isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool) and bandwidth > 0):
        raise ValueError(f"bandwidth={bandwidth!r} must be a number > 0 (1.0 = the mean squared pairwise distance).")
    feats = signals.at(epoch, "features").features
    if kernel == "linear":
        picked = [rows[herding_greedy(feats[rows], k)] for rows, k in groups(signals.labels, budget)]
    else:
        picked = [rows[gaussian_herding(feats[rows], k, bandwidth=float(bandwidth), rng=rng)]
                  for rows, k in groups(signals.labels, budget)]
    return MethodOutput(indices=np.concatenate(picked))
