"""Entropic optimal transport between rows and a few targets (class centroids), with POT.

The plan is kept in the log domain: with POT's log-domain Sinkhorn the plan is
P_ik = exp(log_u_i - M_ik / eps + log_v_k), so log P is exact even where P underflows (large
lambda = 1 / eps), and the problem is n x K (K targets), never n x n.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class TransportPlan:
    """Solution of an entropic OT problem in log form.

    Attributes:
        log_plan (`np.ndarray` of shape (n, K)): log P_ik.
        iterations (`int`): Sinkhorn iterations run.
        marginal_error (`float`): POT's last marginal violation.
        converged (`bool`): whether it fell below the tolerance.
    """

    log_plan: np.ndarray
    iterations: int
    marginal_error: float
    converged: bool

    def plan(self) -> np.ndarray:
        return np.exp(self.log_plan)


def sinkhorn_log(a: np.ndarray, b: np.ndarray, cost: np.ndarray, lam: float, *, max_iter: int = 10000,
                 tol: float = 1e-9) -> TransportPlan:
    """Entropic OT min_P <P, M> - H(P) / lam with row masses `a` and column masses `b` (equal totals).

    Args:
        a (`np.ndarray` of shape (n,)): row masses (> 0).
        b (`np.ndarray` of shape (K,)): column masses (> 0), summing to `a.sum()`.
        cost (`np.ndarray` of shape (n, K)): cost matrix M.
        lam (`float`): inverse entropic regularisation (POT's reg = 1 / lam).
        max_iter (`int`, *optional*, defaults to `10000`), tol (`float`, *optional*, defaults to
            `1e-9`): Sinkhorn stopping rule, on masses normalised to sum 1.

    Returns:
        `TransportPlan` (log P scaled back to the given masses).
    """
    import ot

    total = float(a.sum())
    if not np.isclose(total, float(b.sum()), rtol=1e-9):
        raise ValueError(f"Row and column masses must have equal totals, got {total} and {float(b.sum())}.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, log = ot.sinkhorn(a / total, b / total, cost, 1.0 / lam, method="sinkhorn_log", numItermax=max_iter,
                             stopThr=tol, log=True)
    err = float(log["err"][-1]) if len(log["err"]) else 0.0
    converged = err <= tol and not any("converge" in str(w.message) for w in caught)
    if not converged:
        logger.warning("Sinkhorn stopped after %d iterations with marginal error %.2e (tolerance %.0e); "
                       "lower lam or raise max_iter.", log["niter"], err, tol)
    log_plan = log["log_u"][:, None] - cost * lam + log["log_v"][None, :] + np.log(total)
    return TransportPlan(log_plan=log_plan, iterations=int(log["niter"]), marginal_error=err, converged=converged)
