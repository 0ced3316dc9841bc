"""NFG, noise-free loss gradients (Mohanty, Anudeep & Mopuri, TMLR 2025): the densest gradient directions."""

from __future__ import annotations

import dataclasses
import logging
import numbers

import numpy as np

from ..ops.device import default_device
from ..ops.nfg import NFG_BLOCK, NeighbourStats, radius_neighbour_counts
from . import Keeps, register
from ._common import (AUTO, ExactLimit, MethodOutput, check_bool, check_int, check_real, check_scalable_size, class_draw,
                      groups)

logger = logging.getLogger(__name__)

# The default ("auto"): exact counts up to LIMIT.threshold rows per class, from the time of one checkpoint's
# counts on 10 classes of 30,000 rows (benchmarks/results/scaling.md, row "nfg_counts | 300,000"), per class and
# times the default 10 checkpoints. Above it, half as many reference rows: R references cost n_c R pairs and
# exact counts n_c^2 / 2 (each pair once), so a class just above the threshold costs what one at it does.
LIMIT = ExactLimit(rows=30_000, seconds=174.0, size=0)
LIMIT = dataclasses.replace(LIMIT, size=LIMIT.threshold // 2)
_REFERENCE_KEY = 0x4EF6  # spawn-key tag of the reference draws


def check_finite(name: str, array: np.ndarray, epoch: int) -> None:
    """Raise `ValueError` naming the rows where `array` (a signal at `epoch`) is not finite."""
    bad = np.flatnonzero(~np.isfinite(np.asarray(array, dtype=np.float64).reshape(len(array), -1)).all(axis=1))
    if len(bad):
        raise ValueError(f"{name} at proxy epoch {epoch} is not finite for {len(bad)} rows (first: {bad[:10].tolist()}); "
                         "the proxy diverged or the model outputs NaN/inf. Lower the proxy learning rate "
                         "(proxy={'lr': ...}) or fix the model before selecting.")


def checkpoint_epochs(options: dict) -> list[int]:
    """The proxy epochs NFG scores at (options checked by `_check`): `checkpoints` if given, else 1..`epochs`."""
    if options.get("checkpoints") is not None:
        return sorted({int(e) for e in options["checkpoints"]})
    return list(range(1, int(options["epochs"]) + 1))


def _check(*, radius, epochs, checkpoints, bias, block, reference_size):
    check_real(radius, "radius", "(0, 2]", ": it is a cosine distance 1 - cos (0.2 = cosine above 0.8, NFG's default)")
    check_int(epochs, "epochs", 1, "a positive integer (NFG's default is 10)")
    if checkpoints is not None:
        message = f"checkpoints={checkpoints!r} must be a non-empty list of proxy epochs >= 0, e.g. [1, 2, 3]."
        if not isinstance(checkpoints, (list, tuple)) or \
                not all(isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in checkpoints):
            raise TypeError(message)
        if not checkpoints or min(checkpoints) < 0:
            raise ValueError(message)
    check_bool(bias, "bias")
    check_int(block, "block", 1, "a positive integer (rows per block, e.g. 2048)")
    check_scalable_size(reference_size, "reference_size", LIMIT, f"{LIMIT.size:,} sampled reference rows", 10_000)


def _needs(options):
    return {e: frozenset({"logits", "features"}) for e in checkpoint_epochs(options)}


def class_references(n: int, reference_size, *, rng: np.random.Generator, class_id: int, epoch: int
                     ) -> np.ndarray | None:
    """The reference rows (ascending positions in the class) of a class of `n` rows at checkpoint
    `epoch`, or None for all of them: a uniform sample without replacement of R =
    `LIMIT.size_for(reference_size, n)` rows when that is cheaper than exact counts (n > 2 R: n R pairs
    against n^2 / 2), drawn from the selection seed, the class and the checkpoint only (`class_draw`,
    `rng` not advanced). A new draw at each checkpoint, so that the sampling noise of the counts
    partly averages out in the rank sum instead of repeating at every checkpoint."""
    size = LIMIT.size_for(reference_size, n)
    if size is None or 2 * size >= n:
        return None
    return np.sort(class_draw(rng, _REFERENCE_KEY, class_id, epoch).choice(n, size, replace=False))


def density_ranks(counts: np.ndarray) -> np.ndarray:
    """Rank of each row by neighbour count within its group: 0 = most neighbours, ties to the lower row."""
    order = np.lexsort((np.arange(len(counts)), -counts))
    ranks = np.empty(len(counts), dtype=np.int64)
    ranks[order] = np.arange(len(counts))
    return ranks


@register("nfg", needs=_needs, check=_check, version=1,
          summary="Per class, rows whose last-layer gradient has the most same-class neighbours within a cosine radius.",
          paper="Mohanty, Anudeep & Mopuri, Noise-free Loss Gradients: A Surprisingly Effective Baseline for "
                "Coreset Selection, TMLR 2025",
          signal="last-layer gradient direction (p - y) h^T at proxy epochs 1..E",
          cost="E proxy epochs + O(n_c^2 (C + d)) per class and epoch, blocked; O(n_c R (C + d)) against "
               "R = 8,500 sampled reference rows above 17,000 rows per class", keeps=Keeps.LOWEST, keeps_note="best summed rank")
def nfg(signals, budget, *, rng, radius: float = 0.2, epochs: int = 10, checkpoints: list | None = None,
        bias: bool = False, block: int = NFG_BLOCK, reference_size: int | str | None = "auto") -> MethodOutput:
    """NFG: keep, per class, the rows whose loss gradient points where most of the class points.

    At each checkpoint t (the proxy after epochs 1..E), row i's neighbour count is the number of
    same-class rows j != i whose last-layer weight gradient g = (p - y) h^T satisfies
    1 - cos(g_i, g_j) < `radius`. Gradients are never formed: cos(g_i, g_j) = cos(p_i - y_i,
    p_j - y_j) cos(h_i, h_j), counted in blocks (`hf_coreset.ops.nfg`). Within each class rows are
    ranked by count at each checkpoint (0 = most neighbours, ties to the lower row); the score is
    the rank summed over checkpoints, divided by (class size x checkpoints) so that classes of
    different sizes compare in global mode. Keeps the lowest score (densest rows) per class; ties
    go to the lower row.

    Args:
        radius (`float`, *optional*, defaults to `0.2`): cosine-distance radius, in (0, 2].
        epochs (`int`, *optional*, defaults to `10`): checkpoints at proxy epochs 1..epochs.
        checkpoints (`list[int]`, *optional*): explicit proxy epochs instead of 1..epochs.
        bias (`bool`, *optional*, defaults to `False`): include the bias gradient p - y (appends 1 to h).
        block (`int`, *optional*, defaults to `2048`): rows per block of the pairwise kernel.
        reference_size (`int`, `"auto"` or `None`, *optional*, defaults to `"auto"`): R; in a class of
            more than 2 R rows (where it is cheaper than exact, which counts each pair once), each row
            counts its neighbours among R reference rows of the class (a uniform sample drawn from the
            seed, the class and the checkpoint only), at O(n_c R (C + d)) instead of
            O(n_c^2 (C + d) / 2). A sampled count estimates the exact one times R / n_c; only the
            within-class ranks are used, and how well they agree with the exact ones is measured in
            BENCHMARKS.md ("NFG counts against a sample of reference rows"). "auto": exact up to 17,000
            rows per class (about a minute of counts on one core for 10 checkpoints), 8,500 references
            above; None: exact on every class. The info records each class's references ("all": exact).

    Departures from the official code (ai23resch04001/Noise_free_gradient at 3449b51):
        - One radius. The official pipeline pre-filters at 0.8 and counts at the selection radius,
          so the effective radius is the smaller of two flags; here `radius` is the only one.
        - Closed-form cosine instead of torch.func per-sample gradients of all parameters; the
          counts are the same (tests check it), at O(n_c^2 (C + d)) instead of O(n_c^2 C d).
        - p - y in float64, its label entry as minus the other probabilities: a confident row keeps
          its direction instead of rounding to a zero vector (whose cosine would be undefined).
        - Ties broken by row index (the official code uses numpy's unstable argsort order).
        - The proxy is seeded; it trains with the library's proxy settings (Adam/AdamW or SGD at a
          constant rate; the official run is plain SGD lr 0.1, batch 32), and signals come from a
          clean eval-mode pass after each epoch, as in the official code.

    Example:
        ```python
        >>> sel = hf_coreset.select(ds, "nfg", fraction=0.1, model=model, radius=0.2, epochs=10)
        ```
    """
    epochs_used = checkpoint_epochs({"epochs": epochs, "checkpoints": checkpoints})
    labels = signals.labels
    rank_sum = np.zeros(len(labels), dtype=np.int64)
    stats = NeighbourStats()
    device = default_device()  # where, not what: the counts are the same up to float ties
    sampled = {}  # class -> its number of reference rows at each checkpoint, or "all" (for the info)
    for t in epochs_used:
        ckpt = signals.at(t, "logits", "features")
        check_finite("logits", ckpt.logits, t)
        check_finite("features", ckpt.features, t)
        e = ckpt.logit_grad(labels)
        h = ckpt.features.reshape(len(labels), -1)
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            refs = class_references(len(rows), reference_size, rng=rng, class_id=int(c), epoch=t)
            sampled[int(c)] = "all" if refs is None else len(refs)
            counts, s = radius_neighbour_counts(e[rows], h[rows], float(radius), bias=bias, block=int(block),
                                                references=refs, device=device)
            rank_sum[rows] += density_ranks(counts)
            stats += s
    class_size = np.bincount(labels)[labels]
    scores = rank_sum / (class_size * float(len(epochs_used)))
    picked = []
    for rows, k in groups(labels, budget):
        order = np.lexsort((rows, scores[rows]))
        picked.append(rows[order[:k]])
    logger.info("NFG: %.1f%% of same-class pairs decided by the logit-gradient prefilter.", 100 * stats.decided)
    info = {"nfg": {"checkpoints": epochs_used, "pairs": stats.pairs, "prefilter_decided": round(stats.decided, 6),
                    "feature_dots_per_pair": round(stats.dots_per_pair, 6)}}
    if reference_size is not None:
        info["nfg"]["references"] = {
            "reference_size": reference_size, **({"threshold": LIMIT.threshold} if reference_size == AUTO else {}),
            "classes": {str(c): r for c, r in sampled.items()}}
    return MethodOutput(indices=np.concatenate(picked), scores=scores, info=info)

