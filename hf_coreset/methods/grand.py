"""GraNd: the norm of the last-layer loss gradient (Paul et al., NeurIPS 2021), in closed form."""

from __future__ import annotations

import numpy as np

from . import Keeps, register
from ._common import MethodOutput, check_bool, check_epoch, keep_by_score, last_epoch_needs


def grand_scores(signals, epoch: int, bias: bool = True) -> np.ndarray:
    """||g_i|| for g_i = (p_i - y_i) h_i^T (+ bias): ||p_i - y_i|| * sqrt(||h_i||^2 + [bias])."""
    ckpt = signals.at(epoch, "logits", "features")
    e = np.linalg.norm(ckpt.logit_grad(signals.labels), axis=1)
    h2 = np.square(ckpt.features.astype(np.float64)).sum(axis=1)
    return e * np.sqrt(h2 + (1.0 if bias else 0.0))


def _check(*, epoch, bias):
    check_epoch(epoch)
    check_bool(bias, "bias")


@register("grand", needs=last_epoch_needs(("logits", "features")), check=_check, version=1,
          summary="Largest last-layer gradient norm early in training (hard rows).",
          paper="Paul et al., Deep Learning on a Data Diet, NeurIPS 2021",
          signal="logits + classifier input at proxy epoch", cost="proxy epochs + 1 forward pass", keeps=Keeps.HIGHEST)
def grand(signals, budget, *, rng, epoch: int | None = None, bias: bool = True) -> MethodOutput:
    """Score: the norm of the final Linear layer's per-row cross-entropy gradient (weight, plus bias
    when `bias`), ||p - y|| sqrt(||h||^2 + 1), without a per-row backward pass; keeps the highest.

    The paper's GraNd uses the full-network gradient at initialisation over 10 seeds; DeepCore and
    most reimplementations use this last-layer form.
    """
    scores = grand_scores(signals, epoch, bias)
    return MethodOutput(indices=keep_by_score(scores, signals.labels, budget, highest=True), scores=scores)
