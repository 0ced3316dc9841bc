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
    feats = signals.at(epoch, "features").features  # read in blocks: a memory map is never copied whole
    labels = signals.labels
    closeness = np.full(len(labels), np.nan)
    for c in np.unique(labels):  # the centre is class-conditional even when the budget is global
        members = np.flatnonzero(labels == c)
        d = centre_distances(feats, members)
        closeness[members] = np.abs(d - np.median(d))
    return MethodOutput(indices=keep_by_score(closeness, labels, budget, highest=False), scores=closeness)


def centre_distances(feats: np.ndarray, members: np.ndarray, *, block_bytes: int = 1 << 28) -> np.ndarray:
    """||x_i - median||, in float64, for the rows `members` of `feats`, the median taken coordinate-wise
    over them. Works on float64 blocks of at most about `block_bytes` (columns for the median, rows for
    the distances), so memory stays bounded however large the class (a float64 copy of a 1M-row class
    is 1 GB at 128 dims); each coordinate's median and each row's norm are the same arithmetic as on the
    whole float64 class at once, so the values are identical."""
    n, dim = len(members), feats.shape[1]
    rows_per = max(1, block_bytes // (8 * dim))
    cols_per = max(1, block_bytes // (8 * max(n, 1)))
    median = np.empty(dim)
    for c0 in range(0, dim, cols_per):
        cols = np.empty((n, min(cols_per, dim - c0)))
        for r0 in range(0, n, rows_per):
            cols[r0:r0 + rows_per] = feats[members[r0:r0 + rows_per], c0:c0 + cols_per]
        median[c0:c0 + cols_per] = np.median(cols, axis=0, overwrite_input=True)
    d = np.empty(n)
    for r0 in range(0, n, rows_per):
        x = feats[members[r0:r0 + rows_per]].astype(np.float64)
        d[r0:r0 + rows_per] = np.linalg.norm(x - median, axis=1)
    return d
