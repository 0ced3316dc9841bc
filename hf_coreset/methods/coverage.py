"""Coverage for any score: CCS-style stratified sampling over the strata of any registered score.

Difficulty and typicality scores keep one end of their ranking, which at small fractions leaves
most of the data's range uncovered, and on MNIST-1D such methods lose to random there (BENCHMARKS.md,
"Where a method loses to random"). Zheng et al. (ICLR 2023) fix this for one difficulty score by
spreading the budget over score strata; this module does it for every method that returns
per-row `scores` and keeps their "highest" or "lowest" end, so "nfg with coverage", "el2n with
coverage" and the rest are one call, while each method's own name stays its faithful version.
"""

from __future__ import annotations

import numpy as np

from . import Keeps, get, register
from ._common import MethodOutput, check_int, check_real, groups
from .ccs import stratified_sample

def check_score(score, score_options) -> None:
    """`score` names a method that keeps one end of per-row scores, and `score_options` are valid for it."""
    spec = get(score)
    if spec.keeps is Keeps.OTHER:
        from . import available

        usable = [n for n in available() if get(n).keeps is not Keeps.OTHER]
        raise ValueError(f"score={score!r} keeps {spec.keeps_text}, not one end of a per-row "
                         f"score; pass one of {usable}.")
    if score_options is not None and not isinstance(score_options, dict):
        raise TypeError(f"score_options={score_options!r} must be a dict of {score!r}'s options (or None), "
                        "e.g. {'epoch': 5}.")
    spec.check_options(dict(score_options or {}))


def scored(signals, budget, *, rng, score: str, score_options: dict | None) -> tuple[np.ndarray, Keeps]:
    """Run the registered method `score` (checked by `check_score`); return (its per-row scores, the end it keeps)."""
    spec = get(score)
    out = spec.fn(signals, budget, rng=rng, **spec.check_options(dict(score_options or {})))
    scores = None if out.scores is None else np.asarray(out.scores, dtype=np.float64)
    if scores is None or scores.shape != (signals.num_rows,) or not np.isfinite(scores).all():
        raise ValueError(f"Method {score!r} did not return one finite score per row; it cannot be stratified.")
    return scores, spec.keeps


def inner_needs(options: dict) -> dict:
    """`needs` of a wrapper: those of the method named by its `score` option, with `score_options`."""
    spec = get(options["score"])
    return spec.needs(spec.check_options(dict(options["score_options"] or {})))


def _check(*, score, score_options, strata, cut):
    if score == "coverage":
        raise ValueError("score='coverage' would stratify itself; pass the name of a scoring method, e.g. 'el2n'.")
    check_score(score, score_options)
    check_int(strata, "strata", 1, "a positive integer (the CCS paper uses 50)")
    check_real(cut, "cut", "[0, 1)", ": the share of rows dropped at the kept end (0.1 = 10%)")


@register("coverage", needs=inner_needs, check=_check, version=1,
          summary="Any per-row score made coverage-aware: budget spread over its strata after a cut at its kept end.",
          paper="Zheng et al., Coverage-centric Coreset Selection for High Pruning Rates, ICLR 2023 (generalised)",
          signal="the scores of the method named by `score`", cost="that method's cost + O(n log n)",
          keeps=Keeps.OTHER, keeps_note="rows from all strata")
def coverage(signals, budget, *, rng, score: str = "el2n", score_options: dict | None = None, strata: int = 50,
             cut: float = 0.3) -> MethodOutput:
    """Coverage-aware selection over the scores of any registered method.

    The method named by `score` runs with `score_options`; its per-row scores are oriented so that
    the end it keeps comes first. Per class (or globally), the `cut` share of rows at that end is
    dropped (CCS's hard cut for a difficulty score such as EL2N, whose kept end is its hardest
    rows), the remaining score range is split into `strata` equal-width bins, and the budget is
    spread over the bins from the smallest up, each taking min(size, budget left / bins left)
    random rows (`ccs.stratified_sample`). The faithful method stays available under its own name.

    Defaults: `strata=50` is the CCS paper's. `cut=0.3` was chosen on the MNIST-1D validation split
    (benchmarks/results/tuning_small_fractions.md) among 0, 0.1 and 0.3 for EL2N at 1% and
    5%: without a cut the smallest strata, which are taken whole first, are the hardest tail and
    the selection loses to random at 1%. The paper tunes its cut per pruning
    rate; for a score whose kept end is its easiest rows (typicality, density), pass `cut=0.0`
    unless you mean to drop the most typical rows.

    Args:
        score (`str`, *optional*, defaults to `"el2n"`): a registered method that keeps the
            "highest" or "lowest" of its per-row `scores` (el2n, grand, forgetting, entropy, ...).
        score_options (`dict`, *optional*): that method's options, e.g. `{"epoch": 5}`.
        strata (`int`, *optional*, defaults to `50`): number of equal-width score bins.
        cut (`float`, *optional*, defaults to `0.3`): share of rows dropped at the kept end, in [0, 1).

    Returns:
        `MethodOutput` with the scores of `score` (unoriented, as that method returns them).

    Example:
        ```python
        >>> sel = hf_coreset.select(ds, "coverage", score="forgetting", cut=0.1, fraction=0.05, model=model)
        ```
    """
    scores, keeps = scored(signals, budget, rng=rng, score=score, score_options=score_options)
    oriented = scores if keeps is Keeps.HIGHEST else -scores
    picked = [rows[stratified_sample(oriented[rows], k, strata=strata, hard_cutoff=cut, rng=rng)]
              for rows, k in groups(signals.labels, budget)]
    return MethodOutput(indices=np.concatenate(picked).astype(np.int64), scores=scores,
                        info={"coverage_of": score})
