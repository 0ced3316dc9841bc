"""Forgetting events (Toneva et al., ICLR 2019) counted over the proxy's epochs."""

from __future__ import annotations

import numpy as np

from . import Keeps, register
from ._common import MethodOutput, check_epoch, keep_by_score


def forgetting_scores(signals, epochs: int) -> np.ndarray:
    """Forgetting events over epochs 1..`epochs`; rows never classified correctly score `epochs`."""
    correct = np.stack([signals.at(e, "correct").correct for e in range(1, epochs + 1)])  # (E, n)
    events = (correct[:-1] & ~correct[1:]).sum(axis=0).astype(np.float64)
    never = ~correct.any(axis=0)
    events[never] = float(epochs)  # above any possible count (at most epochs // 2)
    return events


def _check(*, epochs):
    check_epoch(epochs, name="epochs", minimum=2)  # a transition needs two epochs


def _needs(options):
    return {e: frozenset({"correct"}) for e in range(1, options["epochs"] + 1)}


@register("forgetting", needs=_needs, check=_check,
          version=1, summary="Rows forgotten most often during early training (never-learned rows first).",
          paper="Toneva et al., An Empirical Study of Example Forgetting, ICLR 2019",
          signal="correctness after each proxy epoch", cost="proxy epochs + 1 forward pass per epoch",
          keeps=Keeps.HIGHEST)
def forgetting(signals, budget, *, rng, epochs: int = 10) -> MethodOutput:
    """Score: number of correct -> incorrect transitions between consecutive proxy epochs, from a
    clean eval pass after each epoch (the paper counts on training mini-batches); rows never
    learned get `epochs`, above any count. Keeps the highest; the many ties (unforgettable rows)
    are broken by a seeded random order, not by row position.
    """
    scores = forgetting_scores(signals, epochs)
    tiebreak = rng.permutation(len(scores))
    return MethodOutput(indices=keep_by_score(scores, signals.labels, budget, highest=True, tiebreak=tiebreak),
                        scores=scores)
