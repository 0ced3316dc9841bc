"""The phase plan of a `CoresetTrainer` run, fixed when the trainer is built, and its batch sampler.

Epochs ``0 .. warmup_epochs - 1`` train on the full data; the rest on the coreset: the static one
(selected at the end of the warm-up, or given), CREST's mini-batch coresets, or a fresh uniform draw
of the rows each epoch (``coreset_schedule="random"``). Trainer sizes its
epochs once, before training, so every phase has a fixed number of global batches, a multiple of
the gradient-accumulation steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..budget import Budget, budget_for, kept_rows
from ..signals import CHEAP_FIELDS, GlobalBatchSampler, permutation


@dataclass(frozen=True)
class PhasePlan:
    """What every epoch of a run does.

    Attributes:
        epochs (`int`): all epochs.
        warmup_epochs (`int`): the first epochs, on the full data.
        recorded (`dict[int, frozenset]`): warm-up epoch e -> the cheap fields recorded from its training
            mini-batches (``coreset_signals="minibatch"``).
        evaluated (`dict[int, frozenset]`): epoch e -> the fields of one eval pass at its end (0: before
            the first step).
        coreset_size (`int`): rows of a coreset epoch (static), or rows a CREST epoch trains on.
        budget (`Budget`, *optional*): the per-class budget when the trainer selects the static coreset.
        crest_sizes (`tuple[int, int]`, *optional*): CREST's (m, r): rows per mini-batch coreset (the global
            batch) and per random subset.
        random_rows (`bool`): each coreset epoch draws `coreset_size` rows uniformly afresh (no selection).
        one_row (`tuple[str, int]`, *optional*): (the setting, the smallest value that fixes it) when some
            per-device training batch has one row, which BatchNorm cannot train on. The sampler's batches are
            otherwise full (the last one wraps around), so only settings give one-row batches.
    """

    epochs: int
    warmup_epochs: int
    recorded: dict
    evaluated: dict
    coreset_size: int
    budget: Budget | None = None
    crest_sizes: tuple[int, int] | None = None
    random_rows: bool = False
    one_row: tuple[str, int] | None = None


def make_plan(args, labels: np.ndarray, *, spec, options: dict, selection=None,
              declared_classes: int | None = None) -> PhasePlan:
    """The plan for `args` (`CoresetTrainingArguments`) on rows with `labels`.

    Raises `ValueError` for CREST sizes that cannot work (a mini-batch coreset smaller than the number of
    processes, or random subsets smaller than a mini-batch coreset).
    """
    n, world, warmup = len(labels), args.world_size, args.coreset_warmup_epochs
    recorded, evaluated = {}, {}
    if spec is not None:
        for e, fields in spec.needs(options).items():
            cheap = fields & CHEAP_FIELDS if args.coreset_signals == "minibatch" and e >= 1 else frozenset()
            if cheap:
                recorded[e] = cheap
            if fields - cheap:
                evaluated[e] = (fields - cheap) | CHEAP_FIELDS
    one_row = ("per_device_train_batch_size=1", 2) if args.per_device_train_batch_size == 1 else None
    common = dict(epochs=int(args.num_train_epochs), warmup_epochs=warmup, recorded=recorded, evaluated=evaluated)
    # The fraction was checked by the arguments: the budget rule applies to it as is, once.
    kept = kept_rows(args.coreset_fraction, n)
    if args.coreset_schedule == "crest":
        m = args.crest_minibatch_size or args.per_device_train_batch_size * world
        r = max(1, math.floor(args.crest_random_subset_fraction * n + 0.5))
        if m < world:
            raise ValueError(f"crest_minibatch_size={m} is smaller than the {world} processes; raise it.")
        if r < m:
            raise ValueError(f"crest_random_subset_fraction={args.crest_random_subset_fraction} gives random "
                             f"subsets of {r} rows, fewer than crest_minibatch_size={m}; raise the fraction to at "
                             f"least {m / n:.4g} or lower the mini-batch size.")
        if m // world == 1:  # shares of a global batch differ by one row at most: some process gets one row
            one_row = (f"crest_minibatch_size={m} over {world} process(es)", 2 * world)
        return PhasePlan(**common, coreset_size=budget_for(labels, kept).total, crest_sizes=(m, r), one_row=one_row)
    if args.coreset_schedule == "random":  # uniform, not stratified: CREST's random baseline
        return PhasePlan(**common, coreset_size=kept, random_rows=True, one_row=one_row)
    if selection is not None:
        return PhasePlan(**common, coreset_size=len(selection), one_row=one_row)
    budget = budget_for(labels, kept, per_class=args.coreset_per_class, num_classes=declared_classes)
    return PhasePlan(**common, coreset_size=budget.total, budget=budget, one_row=one_row)


class CoresetBatchSampler(GlobalBatchSampler):
    """Per-device batches of row ids; the phase (warm-up, coreset, crest) follows the epoch.

    A `GlobalBatchSampler` with the library's seed and sharding rules: every process iterates the same
    global batches (epoch e draws from ``generator(seed, e)``, as the proxy's) and yields every
    process's share in turn; Accelerate's `BatchSamplerShard` gives process i the i-th of them.

    Args:
        num_rows (`int`): rows of the training set.
        per_device (`int`): per-device batch size of the full-data and static-coreset phases.
        world (`int`): number of processes.
        grad_accum (`int`): gradient-accumulation steps (phase lengths are multiples of it).
        seed (`int`): order seed.
        warmup_epochs (`int`): epochs on the full data.
        coreset_size (`int`, *optional*): rows of a static coreset epoch; defaults to the rows of
            `coreset_rows` once set.
    """

    def __init__(self, num_rows: int, per_device: int, world: int, grad_accum: int, seed: int, warmup_epochs: int,
                 coreset_size: int | None = None):
        super().__init__(seed, num_processes=world)
        self.num_rows, self.per_device, self.world = num_rows, per_device, world
        self.grad_accum, self.warmup_epochs = grad_accum, warmup_epochs
        self.coreset_size = coreset_size
        self.coreset_rows: np.ndarray | None = None  # the static coreset, once selected
        self.crest = None  # the `Crest` that draws the CREST phase's batches, once it started
        self.crest_steps = 0
        self.random_rows = False  # coreset epochs draw coreset_size rows uniformly afresh

    @classmethod
    def for_plan(cls, plan: PhasePlan, num_rows: int, per_device: int, world: int, grad_accum: int,
                 seed: int) -> CoresetBatchSampler:
        sampler = cls(num_rows, per_device, world, grad_accum, seed, plan.warmup_epochs, plan.coreset_size)
        if plan.crest_sizes is not None:
            sampler.crest_steps = sampler.global_steps(plan.coreset_size, plan.crest_sizes[0])
        sampler.random_rows = plan.random_rows
        return sampler

    def global_steps(self, rows: int, batch: int) -> int:
        steps = math.ceil(rows / batch)
        return math.ceil(steps / self.grad_accum) * self.grad_accum

    def steps(self, epoch: int) -> int:
        """Global batches of `epoch`."""
        if epoch < self.warmup_epochs:
            return self.global_steps(self.num_rows, self.per_device * self.world)
        if self.crest_steps:
            return self.crest_steps
        size = len(self.coreset_rows) if self.coreset_size is None else self.coreset_size
        return self.global_steps(size, self.per_device * self.world)

    num_batches = steps

    def global_batches(self, epoch: int, g):
        steps = self.steps(epoch)
        if epoch >= self.warmup_epochs and self.crest is not None:
            for _ in range(steps):
                yield self.crest.draw(g)[0]
            return
        batch = self.per_device * self.world
        if epoch >= self.warmup_epochs and self.random_rows:
            # The first coreset_size rows of a random order: a fresh uniform draw, already shuffled.
            order = np.resize(permutation(self.num_rows, g)[:self.coreset_size], steps * batch)
        else:
            rows = np.arange(self.num_rows) if epoch < self.warmup_epochs else np.sort(self.coreset_rows)
            order = np.resize(rows[permutation(len(rows), g)], steps * batch)  # wraps around: every batch is full
        for s in range(steps):
            yield order[s * batch:(s + 1) * batch]
