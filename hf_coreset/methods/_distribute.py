"""Splitting a selection's per-class work across the processes of `accelerate launch`.

Each process runs a distributable method on its own classes (`groups` yields only those) and the
outputs are gathered with `torch.distributed.all_gather_object`; picks are put back in class order,
so indices, gains, weights and scores equal those of one process (the same arithmetic per class).
A class on the partitioned path is shared instead: every process runs it, each taking its share of
the class's parts (`map_parts`), and process 0 reports it; so a dataset of few large classes (a
binary task, say) still spreads over every process. The herdings' GreeDi rounds (`two_rounds`) live
here for that reason: their first round is a `map_parts`.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

import numpy as np

from ._common import MethodOutput, only_classes, partition_count, round1_picks, round2_groups

# Whether `map_parts` shares a class's parts across the processes; set by `run_split` around a split run.
_SHARE_PARTS: ContextVar[bool] = ContextVar("hf_coreset_share_parts", default=False)


@contextmanager
def sharing_parts() -> Iterator[None]:
    token = _SHARE_PARTS.set(True)
    try:
        yield
    finally:
        _SHARE_PARTS.reset(token)


def map_parts(fn: Callable, split: list[tuple[np.ndarray, int]], *, skip: Callable | None = None) -> list:
    """`[fn(item) for item in split]` over a class's parts ((positions, budget) pairs, `_common.partition`).

    In a selection split across processes, a class of two or more parts is one every process runs
    (`run_split`): each process runs the parts `assign_classes` gives it by size x budget and the
    results are gathered, in part order. `skip(item)` is called for every other part, in order, so that
    draws from a shared generator stay where one process would have them. Every process of the group
    must call it on the same split.
    """
    size, rank = process_group() if _SHARE_PARTS.get() else (1, 0)
    if size == 1 or len(split) < 2:
        return [fn(item) for item in split]
    import torch.distributed as dist

    owner = assign_classes([len(part) * k for part, k in split], size)
    mine = {}
    for i, item in enumerate(split):
        if owner[i] == rank:
            mine[i] = fn(item)
        elif skip is not None:
            skip(item)
    gathered = [None] * size
    dist.all_gather_object(gathered, mine)
    return [gathered[owner[i]][i] for i in range(len(split))]


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
    per_class = np.asarray(budget.per_class)
    # Classes on the partitioned path are shared: every process runs them, splitting their parts.
    shared = np.zeros(len(rows), dtype=bool)
    if spec.partition_limit is not None:
        size_for = spec.partition_limit.size_for
        shared = np.array([k > 0 and partition_count(int(n), int(k), size_for(options["partition_size"], int(n))) > 1
                           for n, k in zip(rows, per_class)], dtype=bool)
    # Greedy per-class work grows with rows x picks (k-center, herding, facility location per pick).
    owner = assign_classes(np.where(budgeted & ~shared, rows * per_class, 0), size)
    owner[~budgeted | shared] = 0  # process 0 reports the shared classes and unbudgeted rows' scores
    mine = budget.classes[budgeted & ((owner == rank) | shared)]
    out = None
    if len(mine):  # process 0 always has the costliest class; a process may have none
        with only_classes(mine), sharing_parts():
            out = spec.fn(signals, budget, rng=rng, **options)
        if shared.any() and rank:  # a shared class's picks come from process 0 alone
            out = _without(out, shared[position[out.indices]])
    parts = [None] * size
    dist.all_gather_object(parts, out)
    return merge(parts, owner[position], position)


def _without(out: MethodOutput, drop: np.ndarray) -> MethodOutput:
    """`out` less the picks where `drop` (a mask over `out.indices`) holds."""
    def kept(a):
        return None if a is None else a[~drop]

    return MethodOutput(indices=out.indices[~drop], scores=out.scores, weights=kept(out.weights), gains=kept(out.gains),
                        info=out.info)


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


def two_rounds(greedy: Callable, x: np.ndarray, split: list[tuple[np.ndarray, int]], skip: Callable | None = None
               ) -> np.ndarray:
    """Positions in a class (its rows `x`) picked by GreeDi's two rounds (see `_common.ROUND1_OVERSAMPLE`)
    of a herding greedy `greedy(rows, k, target=, picked=)` (`ops.herding`, `ops.gaussian_herding`).
    Round 1 matches each part. Round 2 matches the whole class, one group after another, each group going
    on from the earlier groups' picks: one herding over all candidates in which the candidates open group
    by group. Independent groups would each leave their own discrepancy in the union (an MMD about
    sqrt(groups) times exact's, measured); going on from the earlier picks corrects it. Round 1 goes
    through `map_parts` (its parts shared across the processes of a split selection, `skip` called for
    the others'); round 2 runs on every process."""
    pools = map_parts(lambda item: item[0][greedy(x[item[0]], round1_picks(*item))], split, skip=skip)
    picked = np.zeros(0, dtype=np.int64)
    for group in round2_groups(split):
        pool = np.sort(np.concatenate([pools[i] for i in group]))
        budget = sum(split[i][1] for i in group)
        new = pool[greedy(x[pool], budget, target=x, picked=x[picked] if len(picked) else None)]
        picked = np.concatenate([picked, new])
    return picked
