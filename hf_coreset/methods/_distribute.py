"""Splitting a selection's per-class work across the processes of `accelerate launch`.

Each process runs a distributable method on its own classes (`groups` yields only those) and the
outputs are gathered with `torch.distributed.all_gather_object`; picks are put back in class order,
so indices, gains, weights and scores equal those of one process (the same arithmetic per class).
"""

from __future__ import annotations

import numpy as np

from ._common import MethodOutput, only_classes


def assign_classes(costs, num_processes: int) -> np.ndarray:
    """Owner process of each class: the costliest class first (ties: the earlier class) onto the
    least-loaded process (ties: the lower process). Deterministic, so every process computes the same."""
    costs = np.asarray(costs, dtype=np.float64)
    owner = np.empty(len(costs), dtype=np.int64)
    load = np.zeros(num_processes)
    for i in np.lexsort((np.arange(len(costs)), -costs)):
        p = int(np.argmin(load))
        owner[i] = p
        load[p] += costs[i]
    return owner


def process_group() -> tuple[int, int]:
    """(number of processes, this process's rank) of the torch.distributed group, (1, 0) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def run_split(spec, signals, budget, *, seed: int, options: dict) -> MethodOutput:
    """`spec.fn` on this process's classes, gathered (see `hf_coreset.methods.run`)."""
    rng = np.random.default_rng(seed)
    size, rank = process_group()
    budgeted = np.asarray(budget.per_class) > 0
    if size == 1 or not budget.per_class_mode or not budgeted.any() or not spec.distributes(options):
        return spec.fn(signals, budget, rng=rng, **options)
    import torch.distributed as dist

    labels = signals.labels
    position = np.searchsorted(budget.classes, labels)  # each row's class entry in the budget
    rows = np.bincount(position, minlength=len(budget.classes))
    # Greedy per-class work grows with rows x picks (k-center, herding, facility location per pick).
    owner = assign_classes(np.where(budgeted, rows * np.asarray(budget.per_class), 0), size)
    owner[~budgeted] = 0  # unbudgeted classes have no picks; their scores (if any) come from process 0
    mine = budget.classes[budgeted & (owner == rank)]
    out = None
    if len(mine):  # process 0 always has the costliest class; a process may have none
        with only_classes(mine):
            out = spec.fn(signals, budget, rng=rng, **options)
    parts = [None] * size
    dist.all_gather_object(parts, out)
    return merge(parts, owner[position], position)


def merge(parts: list, row_owner: np.ndarray, position: np.ndarray) -> MethodOutput:
    """One output from the processes' `parts` (None where a process ran no class): picks in class order
    (within a class, in the order its owner picked them), each row's score from its class's owner,
    `info` from process 0."""
    ran = [p for p in parts if p is not None]
    first = parts[0]
    indices = np.concatenate([p.indices for p in ran])
    order = np.argsort(position[indices], kind="stable")

    def picks(name):
        if getattr(first, name) is None:
            return None
        return np.concatenate([getattr(p, name) for p in ran])[order]

    scores = first.scores
    if scores is not None:
        scores = np.array(scores, copy=True)
        for r, p in enumerate(parts):
            if r and p is not None:
                scores[row_owner == r] = p.scores[row_owner == r]
    return MethodOutput(indices=indices[order], scores=scores, weights=picks("weights"), gains=picks("gains"),
                        info=first.info)
