"""CREST: coresets for stochastic gradient descent, re-selected while training (Yang, Kang and
Mirzasoleiman, ICML 2023).

CREST exists only inside training, so `CoresetTrainer` drives it (``coreset_schedule="crest"``);
this module holds the method itself:

1. From the pool of rows still in play, draw P disjoint random subsets V_p of r rows each
   (stratified by class with the library's budget rule).
2. From each V_p, pick a mini-batch coreset of m rows by facility location on the logit gradient
   e = p - y (a C-vector from one eval forward pass), per class, with the CRAIG objective
   sum_i max_{j in S} (c - ||e_i - e_j||) (`hf_coreset.ops.facility_location`). Each pick's weight
   is its cluster size (rows of V_p it is closest to), normalised to mean 1 within the coreset.
3. Fit a quadratic model of the loss on the union of the coresets (Eq. 6):
   F(delta) = L0 + g . delta + 1/2 delta^T diag(H) delta, with g the gradient and diag(H) the
   Hutchinson estimate of the Hessian diagonal (Eq. 7), both smoothed by exponential averages
   (Eqs. 8-9, AdaHessian-style sqrt of the averaged squares), kept across selections.
4. Train on mini-batch coresets drawn at random from the P. Every T1 steps, compare F(delta) with
   the loss on a fresh random sample V_r of r rows; when the relative error exceeds tau, select
   again (steps 1-3) and set T1 = h * ||H_0|| / ||H_t||, P = b * T1 (Algorithm 1).
5. Rows whose observed loss stayed below alpha over a window of T2 steps are dropped from the pool.

Departures from the official code (research/nfg_crest.md, section 2.7), each a fix:

- One backward pass per training step; the official code backpropagates twice without zeroing,
  so its SGD step uses 2g. Here a CREST step is exactly the plain step on the weighted batch.
- The user's optimizer, momentum and LR schedule are used as configured (the official code
  builds SGD without momentum).
- delta is the measured parameter change theta_t - theta_l since the selection, so it follows
  every LR decay, momentum and weight decay (the official tracker multiplies by an LR that stays
  at its peak after decays).
- The check uses a fresh random sample V_r, not a forward pass over the whole training set.
- No warm-up is needed (no LR-0 epoch, no division by zero); T1 and P are integers.
- Random subsets within one selection are disjoint, so no row sits in two coresets with two weights.
- Dropping follows the paper's prose (drop rows that *consistently* have loss < alpha) over
  windows of T2 training steps, never taking a class below its share of a random subset nor below
  `min_pool_fraction` of its rows (the official code's floor; the paper states none).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..budget import make_budget
from ..ops import FeatureKernel, facility_location, resolve_device
from ..signals import CREST_STREAM, generator, logit_grad, permutation

logger = logging.getLogger(__name__)


@dataclass
class CrestConfig:
    """CREST settings. `CoresetTrainingArguments.crest_config` builds it: each field but the sizes and the
    smoothing constants is the argument ``crest_<name>``, whose help text and default are the only ones.

    Args:
        tau, h, b, T2, alpha, drop_learned, min_pool_fraction, params: see `CoresetTrainingArguments`.
        random_subset_size (`int`): r, rows per random subset and per check sample.
        minibatch_size (`int`): m, rows per mini-batch coreset (the global training batch).
        beta1, beta2 (`float`): smoothing of the gradient and of the squared Hessian diagonal.
    """

    tau: float
    h: float
    b: float
    T2: int
    alpha: float
    random_subset_size: int
    minibatch_size: int
    drop_learned: bool
    min_pool_fraction: float
    params: str
    beta1: float = 0.9
    beta2: float = 0.999


def minibatch_coreset(logit_grad: np.ndarray, labels: np.ndarray, size: int, *,
                      device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One mini-batch coreset of a random subset: facility location on `logit_grad`, per class.

    Args:
        logit_grad (`np.ndarray` of shape (r, C)): p - y of the subset's rows.
        labels (`np.ndarray` of shape (r,)): their class ids.
        size (`int`): m, rows to pick (split over classes by `hf_coreset.make_budget`).
        device (`torch.device` or `str`, *optional*): where facility location runs (`None`: the
            Accelerate state's device, else the CPU; `hf_coreset.ops.default_device`).

    Returns:
        `(positions, weights)`: picked positions into the subset and their weights (cluster
        sizes within the class, scaled so that the weights have mean 1).

    Example:
        ```python
        >>> pos, w = minibatch_coreset(e, y, 32)
        >>> float(w.mean())
        1.0
        ```
    """
    budget = make_budget(labels, size=size)
    device = resolve_device(device)
    picked, weights = [], []
    for c, k in zip(budget.classes, budget.per_class):
        if k == 0:
            continue
        rows = np.flatnonzero(labels == c)
        pos, _, w = facility_location(FeatureKernel(logit_grad[rows], device=device), int(k))
        picked.append(rows[pos])
        weights.append(w)
    picked = np.concatenate(picked)
    weights = np.concatenate(weights)
    return picked, weights * (len(weights) / weights.sum())


def quadratic_value(loss0: float, grad: torch.Tensor, hess_diag: torch.Tensor, delta: torch.Tensor) -> float:
    """F(delta) = loss0 + grad . delta + 1/2 sum(hess_diag * delta^2) (Eq. 6 with a diagonal Hessian)."""
    return float(loss0 + grad.double().dot(delta.double()) + 0.5 * (hess_diag.double() * delta.double() ** 2).sum())


def hutchinson_diag(loss: torch.Tensor, params: list, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of `loss` and one Hutchinson estimate z * (H z) of its Hessian diagonal (Eq. 7).

    z has independent Rademacher (+-1) entries, so E[z * Hz] = diag(H). One backward with
    `create_graph=True` and one Hessian-vector product.

    Returns:
        `(grad, diag_estimate)`, both flat float32 CPU tensors over `params`.
    """
    grads = torch.autograd.grad(loss, params, create_graph=True)
    probes = [(torch.randint(0, 2, p.shape, generator=generator) * 2 - 1).to(p.device, p.dtype) for p in params]
    hz = torch.autograd.grad(grads, params, grad_outputs=probes)
    return _flat(grads).detach().float().cpu(), (_flat(probes) * _flat(hz)).detach().float().cpu()


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@dataclass
class CrestEvent:
    """One (re-)selection: the step, the relative error that triggered it (None for the first),
    the new P and T1, rows dropped from the pool since the last selection, and the pool size."""

    step: int
    rel_error: float | None
    P: int
    T1: int
    dropped: int
    pool: int
    checks: int


@dataclass
class Crest:
    """The CREST state machine. `CoresetTrainer` calls :meth:`select` once when the CREST phase
    starts, :meth:`after_step` after every optimizer step, and :meth:`draw` from its sampler.

    Args:
        config (`CrestConfig`): settings.
        labels (`np.ndarray`): class id of every row of the training set.
        seed (`int`): seeds subsets, samples, Rademacher probes (identically on every process).
        collector (`hf_coreset.signals.SignalCollector`): the training set's signal collector: eval-mode
            logits of chosen rows (placed by row, finite-checked; every process gets the same array),
            logits with autograd for the quadratic model, and the classifier head (``params="head"``).
    """

    config: CrestConfig
    labels: np.ndarray
    seed: int
    collector: object
    events: list = field(default_factory=list)

    def __post_init__(self):
        n = len(self.labels)
        self.rng = generator(self.seed, CREST_STREAM)  # a torch.Generator, identical on every process
        self.pool = np.arange(n)
        self.coresets: list[tuple[np.ndarray, np.ndarray]] = []
        self.P = max(1, math.ceil(self.config.b))
        self.T1 = 1
        self.next_check = None
        self.h0_norm = None
        self.checks = 0
        self.dropped_since = 0
        self.window_start = 0
        self.window_max = np.full(n, np.nan)
        self.ema_g = self.ema_h = None
        self.ema_t = 0
        self.theta0 = self.g_hat = self.h_hat = None
        self.loss0 = None
        self.last_rel_error = None
        # Dropping never takes a class below its share of a random subset nor below min_pool_fraction of its
        # rows; one entry per class present, ascending.
        subset = make_budget(self.labels, size=min(n, self.config.random_subset_size))
        self.floor_classes = subset.classes
        kept = make_budget(self.labels, fraction=self.config.min_pool_fraction)
        self.floor = np.maximum(subset.per_class, kept.per_class)

    # ----------------------------------------------------------------- helpers
    def _params(self, model) -> list:
        """The parameters the quadratic model covers: all trainable ones, or the classifier head's."""
        module = self.collector.head_module(model) if self.config.params == "head" else model
        return [p for p in module.parameters() if p.requires_grad]

    def _losses(self, model, rows: np.ndarray) -> np.ndarray:
        """Eval-mode cross-entropy of `rows`, recorded for the drop-learned rule."""
        return self._record_losses(rows, self.collector.logits(model, rows))

    def _record_losses(self, rows: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Cross-entropy of `rows` from their logits (float64), recorded for the drop-learned rule."""
        z = torch.as_tensor(logits, dtype=torch.float64)
        loss = (torch.logsumexp(z, 1) - z[torch.arange(len(rows)), torch.as_tensor(self.labels[rows])]).numpy()
        self.window_max[rows] = np.fmax(self.window_max[rows], loss)
        return loss

    def _sample(self, size: int) -> np.ndarray:
        """`size` rows of the pool, stratified by class (budget rule), in ascending order."""
        labels = self.labels[self.pool]
        budget = make_budget(labels, size=size, num_classes=int(self.labels.max()) + 1)
        out = []
        for c, k in zip(budget.classes, budget.per_class):
            if k > 0:
                rows = self.pool[labels == c]
                out.append(rows[permutation(len(rows), self.rng)[:int(k)]])
        return np.sort(np.concatenate(out))

    @property
    def coreset_size(self) -> int:
        return len(self.coresets[0][0])

    def _max_P(self) -> int:
        return max(1, len(self.pool) // self.config.random_subset_size)

    # ----------------------------------------------------------------- selection
    def select(self, model, step: int, rel_error: float | None = None) -> CrestEvent:
        """Draw P disjoint random subsets, pick a mini-batch coreset from each, refit the quadratic model."""
        cfg = self.config
        dropped = self._drop_learned(step)
        P = min(self.P, self._max_P())
        union = self._sample(P * cfg.random_subset_size)
        union = union[permutation(len(union), self.rng)]
        subsets = np.array_split(union, P)
        rows_all = np.sort(union)
        logits = self.collector.logits(model, rows_all)
        self._record_losses(rows_all, logits)
        e = logit_grad(logits, self.labels[rows_all])
        where = {int(r): i for i, r in enumerate(rows_all)}
        coresets = []
        for sub in subsets:
            pos = np.fromiter((where[int(r)] for r in sub), dtype=np.int64, count=len(sub))
            picks, weights = minibatch_coreset(e[pos], self.labels[sub], cfg.minibatch_size)
            coresets.append((sub[picks], weights))
        self.coresets = coresets
        self._fit_quadratic(model)
        h_norm = float(self.h_hat.norm())
        if self.h0_norm is None:
            self.h0_norm = h_norm
        else:
            self.T1 = max(1, math.ceil(cfg.h * self.h0_norm / max(h_norm, 1e-12)))
            self.P = max(1, math.ceil(cfg.b * self.T1))
        self.next_check = step + self.T1
        event = CrestEvent(step=step, rel_error=rel_error, P=len(coresets), T1=self.T1, dropped=dropped + self.dropped_since,
                           pool=len(self.pool), checks=self.checks)
        self.dropped_since = 0
        self.checks = 0
        self.events.append(event)
        logger.info("CREST selection at step %d: rel_error=%s P=%d T1=%d dropped=%d pool=%d", step, rel_error,
                    event.P, self.T1, event.dropped, event.pool)
        return event

    def _fit_quadratic(self, model) -> None:
        """Gradient and Hutchinson Hessian diagonal on each coreset, smoothed (Eqs. 7-9)."""
        cfg = self.config
        params = self._params(model)
        was_training = model.training
        model.eval()  # no dropout: the model of the loss must be deterministic
        total = 0.0
        try:
            for rows, weights in self.coresets:
                logits = self.collector.batch_logits(model, rows).float()
                y = torch.as_tensor(self.labels[rows], device=logits.device)
                w = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
                loss = (w * torch.nn.functional.cross_entropy(logits, y, reduction="none")).mean()
                g, d = hutchinson_diag(loss, params, self.rng)
                if self.ema_g is None:
                    self.ema_g = torch.zeros_like(g)
                    self.ema_h = torch.zeros_like(d)
                self.ema_g.mul_(cfg.beta1).add_(g, alpha=1 - cfg.beta1)
                self.ema_h.mul_(cfg.beta2).add_(d * d, alpha=1 - cfg.beta2)
                self.ema_t += 1
                total += float(loss.detach())
        finally:
            model.train(was_training)
        self.g_hat = self.ema_g / (1 - cfg.beta1 ** self.ema_t)
        self.h_hat = (self.ema_h / (1 - cfg.beta2 ** self.ema_t)).sqrt()
        self.loss0 = total / len(self.coresets)
        self.theta0 = _flat([p.detach() for p in params]).float().cpu().clone()

    # ----------------------------------------------------------------- training-time
    def relative_error(self, model) -> float:
        """|F(delta) - L_r| / L_r on a fresh random sample V_r (Eq. 10)."""
        rows = self._sample(self.config.random_subset_size)
        true = float(self._losses(model, rows).mean())
        delta = _flat([p.detach() for p in self._params(model)]).float().cpu() - self.theta0
        approx = quadratic_value(self.loss0, self.g_hat, self.h_hat, delta)
        return abs(approx - true) / max(true, 1e-12)

    def after_step(self, model, step: int) -> CrestEvent | None:
        """Check the quadratic model when due; re-select when its relative error exceeds tau."""
        if self.next_check is None or step < self.next_check:
            return None
        self.checks += 1
        rho = self.relative_error(model)
        self.last_rel_error = rho
        if rho > self.config.tau:
            return self.select(model, step, rel_error=rho)
        self.next_check = step + self.T1
        self.dropped_since += self._drop_learned(step)
        return None

    def draw(self, g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A mini-batch coreset drawn at random (from `g`, the sampler's epoch stream) from the current P:
        (rows, weights)."""
        if not self.coresets:
            raise RuntimeError("CREST has no coresets yet: select() must run before training on them.")
        return self.coresets[int(torch.randint(len(self.coresets), (1,), generator=g))]

    def _drop_learned(self, step: int) -> int:
        """At the end of each T2-step window, drop pool rows whose every observed loss was < alpha."""
        cfg = self.config
        if not cfg.drop_learned or step - self.window_start < cfg.T2:
            return 0
        pool_labels = self.labels[self.pool]
        seen = self.window_max[self.pool]
        learned = ~np.isnan(seen) & (seen < cfg.alpha)
        keep = np.ones(len(self.pool), dtype=bool)
        for c in np.unique(pool_labels):
            in_c = np.flatnonzero(pool_labels == c)
            cand = in_c[learned[in_c]]
            allowed = max(0, len(in_c) - int(self.floor[np.searchsorted(self.floor_classes, c)]))
            if allowed and len(cand):
                cand = cand[np.argsort(seen[cand], kind="stable")][:allowed]
                keep[cand] = False
        dropped = int((~keep).sum())
        self.pool = self.pool[keep]
        self.window_start = step
        self.window_max[:] = np.nan
        return dropped
