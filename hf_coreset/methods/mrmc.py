"""MRMC, maximum reduction as maximum contribution (Chen et al., ICML 2025), and MRMC-R.

No official code exists (github.com/ssssss489/MRMC holds only a rebuttal README); this is a
first public implementation from the paper's description. Every choice below is ours and is
named in the docstrings.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from . import Keeps, register
from ._common import MethodOutput, check_real, groups
from .nfg import check_finite

LOSS_FLOOR = 1e-6  # losses are clamped here before the log fit (float32 CE of a confident row can be 0)
HEAD_L2 = 1e-3     # ridge penalty of MRMC-R's linear head (on standardised features)
HEAD_ITERS = 100   # L-BFGS iterations of that head


def _check(*, epochs, fit_from):
    message = (f"epochs={epochs!r}: MRMC fits a decay curve to the losses after proxy epochs 1..R and needs "
               "R >= 2 (the paper uses 20, 10 to 20 suffice).")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral):
        raise TypeError(message)
    if epochs < 2:
        raise ValueError(message)
    if fit_from not in (0, 1) or isinstance(fit_from, bool):
        raise ValueError(f"fit_from={fit_from!r}; pass 1 (fit the losses after epochs 1..R, default) or 0 (also the "
                         "untrained model's loss at epoch 0).")


def _check_r(*, epochs, rho, gamma, fit_from):
    _check(epochs=epochs, fit_from=fit_from)
    check_real(rho, "rho", "(0, 1]", ": the share of the budget picked by plain MRMC (paper: 0.3)")
    message = f"gamma={gamma!r} must be a finite number >= 0 (paper: about 2)."
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise TypeError(message)
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(message)


def _needs(options):
    return {e: frozenset({"loss"}) for e in range(int(options["fit_from"]), int(options["epochs"]) + 1)}


def _needs_r(options):
    needs = _needs(options)
    needs[max(needs)] = frozenset({"loss", "features"})  # the linear head reads the features at epoch R
    return needs


def fitted_drop(losses: np.ndarray, first_epoch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Fit l(r) = q w^(-r) to each row's losses at epochs r = first_epoch..R (rows of `losses`) and
    return the fitted drop from epoch 0 to epoch R, q (1 - w^(-R)), and a mask of rows whose fit
    failed (non-finite), which get the raw drop l(first) - l(R) instead.

    The fit is ordinary least squares of log(max(l, 1e-6)) on r, in closed form for all rows at
    once: log l = a + b r with a = log q and b = -log w, so the drop is exp(a) (1 - exp(b R)).
    """
    losses = np.asarray(losses, dtype=np.float64)  # (R, n)
    r = np.arange(first_epoch, first_epoch + losses.shape[0], dtype=np.float64)
    r_count = r[-1]
    y = np.log(np.maximum(losses, LOSS_FLOOR))
    rc = r - r.mean()
    with np.errstate(over="ignore", invalid="ignore"):
        b = (rc @ (y - y.mean(axis=0))) / (rc @ rc)
        a = y.mean(axis=0) - b * r.mean()
        drop = np.exp(a) * (1.0 - np.exp(b * r_count))
    failed = ~np.isfinite(drop)
    drop[failed] = losses[0, failed] - losses[-1, failed]
    return drop, failed


def mrmc_scores(signals, epochs: int, fit_from: int = 1) -> tuple[np.ndarray, dict]:
    """MRMC score of every row (fitted loss drop over proxy epochs `fit_from`..`epochs`) and fit statistics."""
    losses = []
    for e in range(fit_from, epochs + 1):
        loss = signals.at(e, "loss").loss
        check_finite("loss", loss, e)
        losses.append(loss)
    drop, failed = fitted_drop(np.stack(losses), fit_from)
    return drop, {"fit_failed": int(failed.sum()), "increasing": int((drop < 0).sum())}


def _top(scores: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The k rows with the highest scores, ties to the lower row."""
    return rows[np.lexsort((rows, -scores[rows]))[:k]]


# Version 2: the budget's per_class is honoured (per-class top-k by default; version 1 ranked
# globally whatever per_class said, and had a `stratified` option for per-class quotas).
@register("mrmc", needs=_needs, check=_check, version=2,
          summary="Rows with the largest fitted loss drop over the first R proxy epochs (per class; "
                  "per_class=False: the paper's global top-k).",
          paper="Chen et al., Efficient Core-set Selection for Deep Learning Through Squared Loss Minimization, "
                "ICML 2025", signal="per-row loss after proxy epochs 1..R", cost="R proxy epochs + O(n R)",
          keeps=Keeps.HIGHEST)
def mrmc(signals, budget, *, rng, epochs: int = 20, fit_from: int = 1) -> MethodOutput:
    """MRMC: keep the rows whose loss fell the most during early training.

    Each row's loss is recorded in a clean eval-mode pass after each of the proxy's first R
    epochs; l(r) ~ q w^(-r) is fitted by log-linear least squares (losses clamped at 1e-6) and the
    score is the fitted drop q (1 - w^(-R)) (the paper's Delta l). Rows whose fit is not finite
    get the raw drop l(1) - l(R); their number is `config["mrmc"]["fit_failed"]`. Keeps the
    highest scores within each class's budget, as every method of the library does by default;
    `select(..., per_class=False)` is the paper's rule, a global top-k, which can skew the classes
    (the paper enforces no label balance). Ties go to the lower row.

    Args:
        epochs (`int`, *optional*, defaults to `20`): R, the number of proxy epochs (>= 2).
        fit_from (`int`, *optional*, defaults to `1`): first epoch of the fit; 0 adds the loss of
            the untrained proxy (one more eval pass).

    Choices (no official code exists):
        - Losses come from the eval pass after each epoch, not from the training mini-batches:
          the proxy's signal cache stores one clean pass per epoch (shared with NFG, FDMat and
          the baselines), and mini-batch losses mix parameters from across the epoch and depend
          on the batch order and the number of processes.
        - Log-linear fit (closed form, vectorised) rather than per-row nonlinear least squares; it
          weights relative rather than absolute errors.
        - Epoch 0 (the untrained model) is not part of the fit; q extrapolates to it.

    On MNIST-1D this score is negatively rank-correlated with "low loss at epoch R", and few of
    MRMC's top 10% are among the 10% lowest-loss rows (BENCHMARKS.md, "MRMC: rank correlation with
    low loss at epoch R"; `PYTHONPATH=. python benchmarks/mrmc_spearman.py --num-samples 12500`).
    So on this data MRMC does not reduce to "keep the easy rows" (the concern in the paper's
    constant-initial-loss reading): in log space, rows learned
    in the first epoch sit on a flat tail and get a small fitted drop, while rows learned slowly
    over the R epochs get the largest. A fit in loss space would weight the first epochs more and
    move the score towards l(0) - l(R), i.e. towards low loss at R (not measured here).

    Example:
        ```python
        >>> sel = hf_coreset.select(ds, "mrmc", fraction=0.3, model=model, epochs=20)
        ```
    """
    scores, fit = mrmc_scores(signals, int(epochs), int(fit_from))
    picked = [_top(scores, rows, k) for rows, k in groups(signals.labels, budget)]
    return MethodOutput(indices=np.concatenate(picked), scores=scores, info={"mrmc": fit})


def head_likelihood(features: np.ndarray, labels: np.ndarray, train_rows: np.ndarray, num_classes: int) -> np.ndarray:
    """exp(-CE) of every row under a linear softmax head fitted on `train_rows` only.

    Features are standardised with the mean and std of the training rows; the head (weights and
    bias, zero-initialised) minimises mean CE + 1e-3 ||W||^2 with 100 L-BFGS steps in float64, so
    the result is deterministic.
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float64).reshape(len(labels), -1))
    xt = x[torch.as_tensor(train_rows)]
    mu, sd = xt.mean(0), xt.std(0, unbiased=False).clamp_min(1e-6)
    x = (x - mu) / sd
    y = torch.as_tensor(labels, dtype=torch.long)
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=HEAD_ITERS, line_search_fn="strong_wolfe")
    rows = torch.as_tensor(train_rows)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x[rows] @ w + b, y[rows]) + HEAD_L2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy(x @ w + b, y, reduction="none")
    return torch.exp(-ce).numpy()


@register("mrmc-r", needs=_needs_r, check=_check_r, version=2,  # 2: per_class honoured, as mrmc
          summary="MRMC for rho of the budget, then rows the MRMC rows' linear head explains worst (diversity).",
          paper="Chen et al., Efficient Core-set Selection for Deep Learning Through Squared Loss Minimization, "
                "ICML 2025", signal="per-row loss after proxy epochs 1..R + features at R",
          cost="R proxy epochs + a linear head on rho k rows", keeps=Keeps.HIGHEST)
def mrmc_r(signals, budget, *, rng, epochs: int = 20, rho: float = 0.3, gamma: float = 2.0,
           fit_from: int = 1) -> MethodOutput:
    """MRMC-R: MRMC with the paper's balance regulariser.

    1. C' = the ceil(rho k) rows with the highest MRMC score (see `mrmc`).
    2. A linear softmax head is fitted on the proxy's features at epoch R of C' only (see
       :func:`head_likelihood`).
    3. Every other row z gets phi(z) = phi_MRMC(z) / ln(C) - gamma exp(-CE(z; head)), and the
       remaining k - |C'| rows are the highest phi. Dividing the fitted drop by ln(C), the loss of
       a uniform prediction (where training starts), puts both terms on [0, 1] for a loss that
       falls from ln(C) to 0, whatever the number of classes; the paper states no normalisation.

    `indices` list C' first (by MRMC score), then the fill (by phi); `scores` are phi for every
    row. Both steps work within each class's budget by default; `per_class=False` runs them over
    the whole set, as the paper.

    Args:
        epochs (`int`, *optional*, defaults to `20`): R (>= 2).
        rho (`float`, *optional*, defaults to `0.3`): share of the budget taken by plain MRMC, in (0, 1].
        gamma (`float`, *optional*, defaults to `2.0`): weight of the regulariser, >= 0.
        fit_from (`int`, *optional*, defaults to `1`): first epoch of the fit (see `mrmc`).

    Example:
        ```python
        >>> sel = hf_coreset.select(ds, "mrmc-r", fraction=0.3, model=model, rho=0.3, gamma=2.0)
        ```
    """
    epochs = int(epochs)
    base, fit = mrmc_scores(signals, epochs, int(fit_from))
    feats = signals.at(epochs, "features").features
    check_finite("features", feats, epochs)
    group_list = list(groups(signals.labels, budget))
    first = [_top(base, rows, math.ceil(rho * k)) for rows, k in group_list]
    core = np.concatenate(first)
    likelihood = head_likelihood(feats, signals.labels, core, signals.num_classes)
    scores = base / math.log(max(signals.num_classes, 2)) - gamma * likelihood
    taken = np.zeros(len(scores), dtype=bool)
    taken[core] = True
    picked = list(first)
    for (rows, k), c in zip(group_list, first):
        rest = rows[~taken[rows]]
        picked.append(_top(scores, rest, k - len(c)))
    return MethodOutput(indices=np.concatenate(picked), scores=scores,
                        info={"mrmc": {**fit, "core_rows": int(len(core)),
                                       "normalisation": "phi_MRMC / ln(C) - gamma * exp(-CE_head)"}})
