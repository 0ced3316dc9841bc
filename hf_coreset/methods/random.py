"""Random: a uniform sample of each class's budget (or of the whole set in global mode)."""

from __future__ import annotations

import numpy as np

from . import Keeps, register
from ._common import MethodOutput, groups


@register("random", needs=lambda options: {}, version=1, summary="Uniform random rows, class-balanced by default.",
          paper="-", signal="none (labels only)", cost="O(n); no model", keeps=Keeps.OTHER, keeps_note="random rows")
def random_selection(signals, budget, *, rng: np.random.Generator) -> MethodOutput:
    """Uniform random sample without replacement, per class with the per-class budget."""
    picked = [rng.choice(rows, size=k, replace=False) for rows, k in groups(signals.labels, budget)]
    return MethodOutput(indices=np.concatenate(picked).astype(np.int64))
