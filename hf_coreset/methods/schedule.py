"""A difficulty schedule by fraction: easy rows when little is kept, hard rows when much is kept."""

from __future__ import annotations

import numpy as np

from . import Keeps, register
from ._common import MethodOutput, check_real, keep_by_score
from .coverage import check_score, inner_needs, scored


def _check(*, score, score_options, switch):
    if score in ("schedule", "coverage"):
        raise ValueError(f"score={score!r} is not a difficulty score; pass e.g. 'el2n', 'grand' or 'forgetting'.")
    check_score(score, score_options)
    check_real(switch, "switch", "(0, 1]", ": the kept share from which hard rows are kept")


@register("schedule", needs=inner_needs, check=_check, version=1,
          summary="Easiest rows below the switch fraction, hardest rows at or above it (Sorscher et al.).",
          paper="Sorscher et al., Beyond neural scaling laws: beating power law scaling via data pruning, NeurIPS 2022",
          signal="the difficulty scores of the method named by `score`", cost="that method's cost",
          keeps=Keeps.OTHER,
          keeps_note="lowest difficulty below `switch`, highest at or above it")
def schedule(signals, budget, *, rng, score: str = "el2n", score_options: dict | None = None,
             switch: float = 0.2) -> MethodOutput:
    """Sorscher et al. (2022) show that the best rows to keep depend on how many are kept: with
    little data keep the easy (prototypical) rows, with much data keep the hard ones. Here the
    kept share f = budget / rows decides: f < `switch` keeps the lowest difficulty per class,
    f >= `switch` the highest. Difficulty is the score of the registered method `score`, whose
    kept end must be its hardest rows (el2n, grand, forgetting, entropy). The default switch, 0.2,
    lies between the fractions where difficulty methods lose to random and those where they win
    (BENCHMARKS.md, "Where a method loses to random"). On the MNIST-1D validation split the easy
    end loses to random at small fractions too (benchmarks/results/tuning_small_fractions.md): the
    easiest rows are near-duplicates. Easy *and* diverse rows do better: `prototypes` with `easy < 1`.

    Args:
        score (`str`, *optional*, defaults to `"el2n"`): the difficulty method.
        score_options (`dict`, *optional*): its options.
        switch (`float`, *optional*, defaults to `0.2`): kept share at which hard rows replace easy ones, in (0, 1].

    Returns:
        `MethodOutput` with the difficulty scores; `info["schedule_end"]` is "easy" or "hard".

    Example:
        ```python
        >>> sel = hf_coreset.select(ds, "schedule", fraction=0.3, model=model)  # hardest 30%
        ```
    """
    scores, keeps = scored(signals, budget, rng=rng, score=score, score_options=score_options)
    hardness = scores if keeps is Keeps.HIGHEST else -scores
    hard = budget.total / signals.num_rows >= switch
    tiebreak = rng.permutation(len(scores))
    indices = keep_by_score(hardness, signals.labels, budget, highest=hard, tiebreak=tiebreak)
    return MethodOutput(indices=indices, scores=scores, info={"schedule_end": "hard" if hard else "easy"})
