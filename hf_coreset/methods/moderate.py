"""Moderate coreset: rows at a moderate distance from their class centre (Xia et al., ICLR 2023)."""

from __future__ import annotations

import numpy as np

from . import Keeps, register
from ._common import MethodOutput, keep_by_score, epoch_only, last_epoch_needs


@register("moderate", needs=last_epoch_needs(("features",)), check=epoch_only, version=1,
          summary="Rows whose distance to the class median is closest to the median distance.",
          paper="Xia et al., Moderate Coreset, ICLR 2023", signal="classifier input at proxy epoch",
          cost="proxy epochs + 1 forward pass", keeps=Keeps.LOWEST, keeps_note="|d - median d|")
def moderate(signals, budget, *, rng, epoch: int | None = None) -> MethodOutput:
    """With d_i = ||h_i - median_c||, the distance of a row's features to its class's coordinate-wise
    median, the score is |d_i - median of d within the class|; keeps the lowest (the most moderate rows).

    The scores are that closeness, not d itself, so that wrappers reading the typed `keeps` (coverage,
    schedule) order rows the way this method does (version 1 returned d, and coverage then cut the
    most central rows instead of the least moderate ones)."""
    feats = signals.at(epoch, "features").features  # cast per class: a memory map is read one class at a time
    labels = signals.labels
    closeness = np.full(len(labels), np.nan)
    for c in np.unique(labels):  # the centre is class-conditional even when the budget is global
        members = np.flatnonzero(labels == c)
        x = feats[members].astype(np.float64)
        d = np.linalg.norm(x - np.median(x, axis=0), axis=1)
        closeness[members] = np.abs(d - np.median(d))
    return MethodOutput(indices=keep_by_score(closeness, labels, budget, highest=False), scores=closeness)
