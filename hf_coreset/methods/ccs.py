"""Coverage-centric coreset selection, CCS (Zheng et al., ICLR 2023)."""

from __future__ import annotations

import numpy as np

from . import Keeps, register
from ._common import MethodOutput, check_epoch, check_int, check_real, groups
from .el2n import el2n_scores
from .forgetting import forgetting_scores
from .grand import grand_scores

DIFFICULTY = ("el2n", "grand", "forgetting")


def _check(*, score, epoch, strata, hard_cutoff):
    if not isinstance(score, str) or score not in DIFFICULTY:
        raise ValueError(f"score={score!r}; pass one of {list(DIFFICULTY)}.")
    check_epoch(epoch, minimum=1 if score == "forgetting" else 0)  # for forgetting, the epochs counted
    check_int(strata, "strata", 1, "a positive integer")
    check_real(hard_cutoff, "hard_cutoff", "[0, 1)")


def _needs(options):
    if options["score"] == "forgetting":
        return {e: frozenset({"correct"}) for e in range(1, options["epoch"] + 1)}
    fields = {"logits", "features"} if options["score"] == "grand" else {"logits"}
    return {options["epoch"]: frozenset(fields)}


def stratified_sample(scores: np.ndarray, k: int, *, strata: int, hard_cutoff: float,
                      rng: np.random.Generator) -> np.ndarray:
    """CCS sampling of k positions: drop the hardest `hard_cutoff` share (less if too few rows would
    remain), split the score range into `strata` equal-width bins, then visit bins from the
    smallest up, each taking min(size, budget left / bins left) random rows."""
    n = len(scores)
    order = np.lexsort((np.arange(n), -scores))  # hardest first
    cut = min(int(np.floor(hard_cutoff * n)), n - k)
    pool = np.sort(order[cut:])
    s = scores[pool]
    lo, hi = float(s.min()), float(s.max())
    edges = np.linspace(lo, hi, strata + 1)
    bins = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, strata - 1)
    members = [pool[bins == b] for b in range(strata)]
    members = sorted([m for m in members if len(m)], key=len)
    picked, left = [], k
    for i, m in enumerate(members):
        take = min(len(m), left // (len(members) - i))
        picked.append(rng.choice(m, size=take, replace=False))
        left -= take
    return np.concatenate(picked)


@register("ccs", needs=_needs, check=_check, version=1,
          summary="Stratified sampling over difficulty strata after cutting the hardest rows (coverage).",
          paper="Zheng et al., Coverage-centric Coreset Selection for High Pruning Rates, ICLR 2023",
          signal="a difficulty score (EL2N by default)", cost="that score's cost + O(n log n)", keeps=Keeps.OTHER, keeps_note="rows from all strata")
def ccs(signals, budget, *, rng, score: str = "el2n", epoch: int | None = None, strata: int = 50,
        hard_cutoff: float = 0.0) -> MethodOutput:
    """CCS over a difficulty score (`score`: "el2n", "grand" or "forgetting"; for forgetting, `epoch`
    is the number of epochs counted). Per class (the paper samples globally; global mode does too).
    `hard_cutoff` is the share of hardest rows removed first (the paper's beta; it tunes beta per
    pruning rate, 0 keeps every row eligible); `strata` is the number of equal-width bins (50)."""
    if score == "el2n":
        difficulty = el2n_scores(signals, epoch)
    elif score == "grand":
        difficulty = grand_scores(signals, epoch)
    else:
        difficulty = forgetting_scores(signals, epoch)
    picked = [rows[stratified_sample(difficulty[rows], k, strata=strata, hard_cutoff=hard_cutoff, rng=rng)]
              for rows, k in groups(signals.labels, budget)]
    return MethodOutput(indices=np.concatenate(picked), scores=difficulty)
