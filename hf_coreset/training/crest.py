"""CREST: coresets for stochastic gradient descent, re-selected while training (Yang, Kang and
Mirzasoleiman, ICML 2023).

CREST exists only inside training, so `CoresetTrainer` drives it (``coreset_schedule="crest"``);
this module holds the method itself:

1. From the pool of rows still in play, draw P disjoint random subsets V_p of r rows each
   (stratified by class with the library's budget rule).
2. From each V_p, pick a mini-batch coreset of m rows by facility location on the logit gradient
   e = p - y (a C-vector from one eval forward pass), per class, with the CRAIG objective
   sum_i max_{j in S} (c - ||e_i - e_j||) (that of `hf_coreset.ops.facility_location`). All P x C
   (subset, class) problems of a selection are solved at once (`hf_coreset.ops.facility_location_batch`: one
   batched float64 Gram matrix, an exact greedy vectorised over problems and candidates). Each
   pick's weight is its cluster size (rows of V_p it is closest to), normalised to mean 1 within
   the coreset.
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
- The check uses a fresh random sample V_r, not a forward pass over the whole training set. When it
  triggers a re-selection, that sample (stratified, r rows of the pool, forwarded at the same
  parameters) is the first of the P random subsets, so its forward pass is not repeated; the
  other P - 1 are drawn from the rest of the pool. The official code draws all P afresh.
- No warm-up is needed (no LR-0 epoch, no division by zero); T1 and P are integers.
- Random subsets within one selection are disjoint, so no row sits in two coresets with two weights.
- Facility location is the exact greedy in float64 (the official code runs lazy greedy per
  subset and class); the picks are the same except where two candidates' gains tie exactly.
- Dropping follows the paper's prose (drop rows that *consistently* have loss < alpha) over
  windows of T2 training steps, never taking a class below its share of a random subset nor below
  `min_pool_fraction` of its rows (the official code's floor; the paper states none).
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ..budget import make_budget
from ..ops import facility_location_batch
from ..signals import CREST_STREAM, generator, logit_grad, permutation

logger = logging.getLogger(__name__)

# Wall-time phases of `Crest.timings` (seconds); the trainer adds "train_step" (forward, backward and optimizer
# step of the CREST phase's steps, data loading excluded).
PHASES = ("selection_forward", "facility_location", "hessian", "check", "train_step")


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


def minibatch_coreset(logit_grad: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One mini-batch coreset of a random subset: facility location on `logit_grad`, per class.

    Args:
        logit_grad (`np.ndarray` of shape (r, C)): p - y of the subset's rows.
        labels (`np.ndarray` of shape (r,)): their class ids.
        size (`int`): m, rows to pick (split over classes by `hf_coreset.make_budget`).

    Returns:
        `(positions, weights)`: picked positions into the subset (class by class, ascending, each in pick
        order) and their weights (cluster sizes within the class, scaled so that the weights have mean 1).

    Example:
        ```python
        >>> pos, w = minibatch_coreset(e, y, 32)
        >>> float(w.mean())
        1.0
        ```
    """
    return minibatch_coresets([logit_grad], [labels], size)[0]


def minibatch_coresets(logit_grads: list[np.ndarray], labels: list[np.ndarray], size: int, *,
                       device: torch.device | str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """`minibatch_coreset` of every random subset of a selection, all (subset x class) problems solved together
    by `facility_location_batch` on `device` (the model's, in the trainer)."""
    problems, budgets, owners = [], [], []
    for s, (e, y) in enumerate(zip(logit_grads, labels)):
        budget = make_budget(y, size=size)
        for c, k in zip(budget.classes, budget.per_class):
            if k > 0:
                rows = np.flatnonzero(y == c)
                problems.append(e[rows])
                budgets.append(int(k))
                owners.append((s, rows))
    solved = facility_location_batch(problems, budgets, device=device)
    picked = [[] for _ in logit_grads]
    sizes = [[] for _ in logit_grads]
    for (s, rows), (pos, w) in zip(owners, solved):
        picked[s].append(rows[pos])
        sizes[s].append(w)
    out = []
    for p, w in zip(picked, sizes):
        w = np.concatenate(w)
        out.append((np.concatenate(p), w * (len(w) / w.sum())))
    return out


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

    Attributes:
        timings (`dict[str, float]`): wall seconds per phase (`PHASES`): the selections' eval forward passes,
            facility location, the quadratic model's gradient and Hutchinson Hessian, the loss checks, and
            (added by `CoresetTrainer`) the CREST phase's training steps, so overhead can be read as a share
            of training-step time.
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
        self.timings = dict.fromkeys(PHASES, 0.0)
        self._by_class: list | None = None  # the pool's rows per class, until the pool changes
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

    @contextmanager
    def _timed(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] += time.perf_counter() - t0

    def _record_losses(self, rows: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Cross-entropy of `rows` from their logits (float64), recorded for the drop-learned rule."""
        z = torch.as_tensor(logits, dtype=torch.float64)
        loss = (torch.logsumexp(z, 1) - z[torch.arange(len(rows)), torch.as_tensor(self.labels[rows])]).numpy()
        self.window_max[rows] = np.fmax(self.window_max[rows], loss)
        return loss

    def _pool_by_class(self) -> list[tuple[int, np.ndarray]]:
        """(class, its pool rows ascending) for every class in the pool; cached until rows are dropped."""
        if self._by_class is None:
            labels = self.labels[self.pool]
            self._by_class = [(int(c), self.pool[labels == c]) for c in np.unique(labels)]
        return self._by_class

    def _sample(self, size: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """`size` rows of the pool (less `exclude`), stratified by class (budget rule), in ascending order."""
        groups = self._pool_by_class()
        if exclude is not None and len(exclude):
            groups = [(c, rows[~np.isin(rows, exclude, assume_unique=True)]) for c, rows in groups]
        labels = np.concatenate([np.full(len(rows), c) for c, rows in groups])
        budget = make_budget(labels, size=size, num_classes=int(self.labels.max()) + 1)
        per_class = dict(zip(budget.classes.tolist(), budget.per_class.tolist()))
        out = []
        for c, rows in groups:
            k = int(per_class.get(c, 0))
            if k > 0:
                out.append(rows[permutation(len(rows), self.rng)[:k]])
        return np.sort(np.concatenate(out))

    @property
    def coreset_size(self) -> int:
        return len(self.coresets[0][0])

    def _max_P(self) -> int:
        return max(1, len(self.pool) // self.config.random_subset_size)

    # ----------------------------------------------------------------- selection
    def select(self, model, step: int, rel_error: float | None = None,
               checked: tuple[np.ndarray, np.ndarray] | None = None) -> CrestEvent:
        """Draw P disjoint random subsets, pick a mini-batch coreset from each, refit the quadratic model.

        `checked` is the check sample that triggered this selection, with its eval-mode logits at the same
        parameters: it serves as the first random subset (a stratified random sample of r pool rows, like the
        others), so its forward pass is not repeated; the other P - 1 are drawn from the rest of the pool.
        """
        cfg = self.config
        dropped = self._drop_learned(step)
        P = min(self.P, self._max_P())
        with self._timed("selection_forward"):
            if checked is not None and not np.isin(checked[0], self.pool).all():
                checked = None  # rows of the check sample were just dropped from the pool: draw afresh
            first = [] if checked is None else [checked[0]]
            fresh = P - len(first)
            drawn = self._sample(fresh * cfg.random_subset_size, exclude=None if checked is None else checked[0]) \
                if fresh else np.zeros(0, dtype=np.int64)
            drawn = drawn[permutation(len(drawn), self.rng)]
            subsets = first + (np.array_split(drawn, fresh) if fresh else [])
            rows_all, logits = np.sort(drawn), None
            if fresh:
                logits = self.collector.logits(model, rows_all)
                self._record_losses(rows_all, logits)
            if checked is not None:
                rows_all = np.concatenate([rows_all, checked[0]])
                logits = checked[1] if logits is None else np.concatenate([logits, checked[1]])
            e = logit_grad(logits, self.labels[rows_all])
            position = np.full(len(self.labels), -1)
            position[rows_all] = np.arange(len(rows_all))
        with self._timed("facility_location"):
            solved = minibatch_coresets([e[position[sub]] for sub in subsets], [self.labels[sub] for sub in subsets],
                                        cfg.minibatch_size, device=next(model.parameters()).device)
        coresets = [(sub[picks], weights) for sub, (picks, weights) in zip(subsets, solved)]
        self.coresets = coresets
        with self._timed("hessian"):
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
        return self._check(model)[0]

    def _check(self, model) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
        """The relative error, and the check sample with its eval-mode logits (for reuse by a selection)."""
        rows = self._sample(self.config.random_subset_size)
        logits = self.collector.logits(model, rows)
        true = float(self._record_losses(rows, logits).mean())
        delta = _flat([p.detach() for p in self._params(model)]).float().cpu() - self.theta0
        approx = quadratic_value(self.loss0, self.g_hat, self.h_hat, delta)
        return abs(approx - true) / max(true, 1e-12), (rows, logits)

    def after_step(self, model, step: int) -> CrestEvent | None:
        """Check the quadratic model when due; re-select when its relative error exceeds tau."""
        if self.next_check is None or step < self.next_check:
            return None
        self.checks += 1
        with self._timed("check"):
            rho, checked = self._check(model)
        self.last_rel_error = rho
        if rho > self.config.tau:
            return self.select(model, step, rel_error=rho, checked=checked)
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
        self._by_class = None
        self.window_start = step
        self.window_max[:] = np.nan
        return dropped
