"""Herding: greedy mean matching in the proxy's feature space (Welling, ICML 2009)."""

from __future__ import annotations

import numpy as np

from ..ops import default_device, herding as herding_greedy
from . import Keeps, register
from ._common import MethodOutput, groups, epoch_only, last_epoch_needs


@register("herding", needs=last_epoch_needs(("features",)), check=epoch_only, version=1, distributable=True,
          summary="Greedy mean matching of classifier-input features, per class.",
          paper="Welling, Herding Dynamical Weights to Learn, ICML 2009", signal="classifier input at proxy epoch",
          cost="proxy epochs + 1 forward pass + O(k n d)", keeps=Keeps.OTHER, keeps_note="greedy order")
def herding(signals, budget, *, rng, epoch: int | None = None) -> MethodOutput:
    """Per class, pick the row that brings the mean of the picks closest to the class mean, until
    the budget is spent. Picks the nearest row (DeepCore's herding picks the farthest, a bug)."""
    feats = signals.at(epoch, "features").features
    device = default_device()  # where, not what: the picks are the same up to float ties
    picked = [rows[herding_greedy(feats[rows], k, device=device)] for rows, k in groups(signals.labels, budget)]
    return MethodOutput(indices=np.concatenate(picked))
