"""EL2N: the L2 norm of the error vector p - y (Paul et al., NeurIPS 2021)."""

from __future__ import annotations

import numpy as np

from . import Keeps, register
from ._common import MethodOutput, keep_by_score, epoch_only, last_epoch_needs


def el2n_scores(signals, epoch: int) -> np.ndarray:
    """||softmax(z_i) - onehot(y_i)||_2 at proxy epoch `epoch`."""
    ckpt = signals.at(epoch, "logits")
    return np.linalg.norm(ckpt.logit_grad(signals.labels), axis=1)


@register("el2n", needs=last_epoch_needs(("logits",)), check=epoch_only, version=1,
          summary="Largest error norm ||p - y|| early in training (hard rows).",
          paper="Paul et al., Deep Learning on a Data Diet, NeurIPS 2021", signal="logits at proxy epoch",
          cost="proxy epochs + 1 forward pass", keeps=Keeps.HIGHEST)
def el2n(signals, budget, *, rng, epoch: int | None = None) -> MethodOutput:
    """Score: ||p_i - y_i||_2 at proxy epoch `epoch`; keeps the highest (hardest) per class.

    The paper averages over 10 proxy seeds at epoch 20 of 200; we use one proxy (the shared
    cache) at `epoch`. Ties go to the lower row.
    """
    scores = el2n_scores(signals, epoch)
    return MethodOutput(indices=keep_by_score(scores, signals.labels, budget, highest=True), scores=scores)
