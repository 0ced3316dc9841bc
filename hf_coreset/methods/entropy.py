"""Entropy (uncertainty sampling): the predictive entropy of the proxy (Coleman et al., ICLR 2020)."""

from __future__ import annotations

import numpy as np

from . import Keeps, register
from ._common import MethodOutput, keep_by_score, epoch_only, last_epoch_needs


@register("entropy", needs=last_epoch_needs(("logits",)), check=epoch_only, version=1,
          summary="Most uncertain rows: highest predictive entropy of the proxy.",
          paper="Coleman et al., Selection via Proxy, ICLR 2020", signal="logits at proxy epoch",
          cost="proxy epochs + 1 forward pass", keeps=Keeps.HIGHEST)
def entropy(signals, budget, *, rng, epoch: int | None = None) -> MethodOutput:
    """Score: H(p_i) = -sum_c p_ic log p_ic at proxy epoch `epoch`; keeps the highest per class.

    DeepCore scores sum p log p (the negative entropy) and keeps opposite ends depending on its
    `balance` flag; here the score is the entropy and the kept end is always the highest.
    """
    p = signals.at(epoch, "logits").probs()
    scores = -(p * np.log(np.clip(p, 1e-30, None))).sum(axis=1)
    return MethodOutput(indices=keep_by_score(scores, signals.labels, budget, highest=True), scores=scores)
