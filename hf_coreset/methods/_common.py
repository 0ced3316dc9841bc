"""Helpers shared by methods: the output type, per-class grouping, ranking with stable ties."""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..budget import Budget, check_bool  # noqa: F401  (check_bool re-exported for method checks)


@dataclass
class MethodOutput:
    """What a method returns; `select` adds provenance and makes it a CoresetSelection."""

    indices: np.ndarray
    scores: np.ndarray | None = None
    weights: np.ndarray | None = None
    gains: np.ndarray | None = None
    info: dict = field(default_factory=dict)


# The budgeted classes this process runs when a selection is split across processes (None: all of
# them); set by `hf_coreset.methods.run` around a distributable method, read by `groups`.
_OWNED: ContextVar[frozenset | None] = ContextVar("hf_coreset_owned_classes", default=None)


@contextmanager
def only_classes(classes) -> Iterator[None]:
    """Within this block, `groups` yields only `classes` (in per-class mode)."""
    token = _OWNED.set(frozenset(int(c) for c in classes))
    try:
        yield
    finally:
        _OWNED.reset(token)


def groups(labels: np.ndarray, budget: Budget, *,
           skip: Callable[[np.ndarray, int], None] | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """(rows, k) per class with a non-zero budget, or one group of all rows in global mode.

    When the selection is split across processes (`hf_coreset.methods.run`), only this process's
    classes are yielded; `skip(rows, k)` is called for each of the others instead, so that a method
    whose per-class random draws depend only on the class's size can keep its generator where one
    process would have it.
    """
    if not budget.per_class_mode:
        yield np.arange(len(labels)), budget.total
        return
    owned = _OWNED.get()
    for c, k in zip(budget.classes, budget.per_class):
        if k > 0:
            if owned is None or int(c) in owned:
                yield np.flatnonzero(labels == c), int(k)
            elif skip is not None:
                skip(np.flatnonzero(labels == c), int(k))


def top_k(scores: np.ndarray, k: int, *, highest: bool = True, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Positions of the k best scores; ties go to the smaller `tiebreak` key (default: position)."""
    key2 = np.arange(len(scores)) if tiebreak is None else tiebreak
    primary = -scores if highest else scores
    return np.lexsort((key2, primary))[:k]


def keep_by_score(scores: np.ndarray, labels: np.ndarray, budget: Budget, *, highest: bool,
                  tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Per-class (or global) top-k rows by score, concatenated in rank order within each group."""
    picked = []
    for rows, k in groups(labels, budget):
        tb = None if tiebreak is None else tiebreak[rows]
        picked.append(rows[top_k(scores[rows], k, highest=highest, tiebreak=tb)])
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


# Option checks. A method's `check` (see `register`) runs them on its merged options before the
# proxy trains; each raises TypeError for a wrong type, ValueError for a wrong value, naming the option.

def check_epoch(value, name: str = "epoch", minimum: int = 0) -> int | None:
    """A proxy epoch option: an integer >= `minimum` (0 is the model as given), or None for the
    proxy's last epoch (resolved by `MethodSpec.check_options` before anything reads it)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r}; pass an integer proxy epoch >= {minimum}, e.g. {name}=10.")
    if value < minimum:
        raise ValueError(f"{name}={value!r}; pass an integer proxy epoch >= {minimum}, e.g. {name}=10.")
    return int(value)


def check_int(value, name: str, minimum: int, what: str) -> None:
    """An integer option >= `minimum`; `what` completes "must be ...", e.g. "a positive integer"."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be {what}.")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be {what}.")


def check_real(value, name: str, interval: str, why: str = "") -> None:
    """A real option in `interval`, written as in the messages: "(0, 1]", "[0, 1)", "(0, inf)"...
    (infinite and NaN values are never inside); `why` follows the range in the message."""
    lo, hi = (float(x) for x in interval[1:-1].split(","))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a number in {interval}{why}, not {type(value).__name__}.")
    v = float(value)
    above = lo < v if interval[0] == "(" else lo <= v
    below = v < hi if interval[-1] == ")" else v <= hi
    if not (math.isfinite(v) and above and below):
        raise ValueError(f"{name}={value!r} must be in {interval}{why}.")


def check_choice(value, name: str, choices: tuple) -> None:
    """One of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r}; pass one of {list(choices)}.")


def epoch_only(*, epoch) -> None:
    """The `check` of a method whose only option is its proxy `epoch`."""
    check_epoch(epoch)


def last_epoch_needs(fields: tuple[str, ...]):
    """A `needs` function: `fields` at the proxy epoch named by the method's (checked) `epoch` option."""

    def needs(options: dict) -> dict:
        return {int(options["epoch"]): frozenset(fields)}  # `check_options` replaced an unset epoch

    return needs


# The partitioned path of the greedy methods (kcenter, craig, kernel-herding): exact within a class of at
# most `partition_size` rows, and above it the exact method on seeded random parts of the class.
_PARTITION_KEY = 0x9A27  # spawn-key tag: partition draws never coincide with the method's own

# The default ("auto") of the scalable options (`partition_size`, NFG's `reference_size`): a method's exact
# algorithm on a class of at most its threshold of rows, its scalable path above it. The threshold is
# where one exact class costs about EXACT_SECONDS on one core, from one measurement per method.
EXACT_SECONDS = 60.0
AUTO = "auto"


@dataclass(frozen=True)
class ExactLimit:
    """Where a method's exact path stops being its default, from one measurement: an exact class of
    `rows` rows (10% kept, 512 dims, one core) took `seconds`. The exact costs grow as n_c^2 (k = 10% of
    n_c greedy picks of O(n_c d) each, or n_c x n_c pairs), so the threshold is rows x sqrt(EXACT_SECONDS /
    seconds), rounded down to two significant digits. `size` is what the scalable path runs with above the
    threshold (the partition size, NFG's reference rows)."""

    rows: int
    seconds: float
    size: int

    @property
    def threshold(self) -> int:
        rows = int(self.rows * math.sqrt(EXACT_SECONDS / self.seconds))
        unit = 10 ** max(0, len(str(rows)) - 2)
        return rows // unit * unit

    def size_for(self, option, n: int) -> int | None:
        """The size a class of `n` rows runs with under `option` (checked by `check_scalable_size`): None
        (exact) for None, and for "auto" up to the threshold; else the option's or the limit's size."""
        if isinstance(option, str) and option == AUTO:
            return None if n <= self.threshold else self.size
        return option


def check_scalable_size(value, name: str, limit: ExactLimit, above: str, example: int) -> None:
    """A scalable option: "auto" (exact up to the method's threshold, `above` beyond it), None (exact on
    every class) or an integer >= 2."""
    if isinstance(value, str) and value == AUTO:
        return
    if value is not None:
        check_int(value, name, 2, f"'auto' (exact up to {limit.threshold:,} rows per class, {above} above), "
                                   f"None (exact on every class) or an integer >= 2, e.g. {example}")


def check_partition_size(value, limit: ExactLimit) -> None:
    """`partition_size`: "auto", None (exact on every class) or an integer >= 2."""
    check_scalable_size(value, "partition_size", limit, f"parts of {limit.size:,}", limit.size)


def partition_count(n: int, k: int, partition_size: int | None) -> int:
    """Parts of a class of `n` rows with budget `k`: ceil(n / partition_size), at most k (so each part
    has at least one pick); 1 (exact) without a partition_size or when the class fits in one."""
    if partition_size is None or n <= partition_size:
        return 1
    return max(1, min(-(-n // partition_size), k))


def class_draw(rng: np.random.Generator, tag: int, class_id: int | None, *more: int) -> np.random.Generator:
    """A generator drawn from the selection seed (`rng`'s seed sequence, which is not advanced), `tag`,
    the class id and `more` (e.g. a checkpoint) only, so that what it draws does not depend on how
    classes are spread over processes."""
    seq = rng.bit_generator.seed_seq
    key = (0,) if class_id is None else (1, int(class_id))
    return np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, tag, *key, *more)))


def partition(n: int, k: int, partition_size: int | None, *, rng: np.random.Generator, class_id: int | None
              ) -> list[tuple[np.ndarray, int]]:
    """(positions in the class, budget) of each part of a class of `n` rows with budget `k`.

    `partition_size` is the class's size (`ExactLimit.size_for`: None is exact). A random split into
    `partition_count` parts whose sizes differ by at most one, drawn from the selection seed and the class
    id only (`class_draw`). Positions are ascending within a part. Budgets are proportional to part
    sizes by the library's one rounding rule (`budget_for`) and sum to k.
    """
    m = partition_count(n, k, partition_size)
    if m == 1:
        return [(np.arange(n), k)]
    draw = class_draw(rng, _PARTITION_KEY, class_id)
    parts = [np.sort(p) for p in np.array_split(draw.permutation(n), m)]
    part_of = np.repeat(np.arange(m), [len(p) for p in parts])
    from ..budget import budget_for

    return list(zip(parts, (int(b) for b in budget_for(part_of, k).per_class)))


def class_partition(rows: np.ndarray, k: int, option, limit: ExactLimit, *, rng: np.random.Generator,
                    labels: np.ndarray, budget: Budget) -> list[tuple[np.ndarray, int]]:
    """`partition` of one class from `groups` (its rows, its budget k) under a method's `partition_size`
    option and `limit`: the class's size by `ExactLimit.size_for`, its id when the budget is per class."""
    class_id = int(labels[rows[0]]) if budget.per_class_mode else None
    return partition(len(rows), k, limit.size_for(option, len(rows)), rng=rng, class_id=class_id)


def partition_info(labels: np.ndarray, budget: Budget, option, limit: ExactLimit) -> dict:
    """What the selection info records about the path each budgeted class took (whichever process ran
    it): {"partitioned": {"partition_size": option, "threshold": (with "auto"), "parts": {class: parts}}},
    1 part being the exact path; nothing with `option` None (exact on every class)."""
    if option is None:
        return {}
    head = {"partition_size": option, **({"threshold": limit.threshold} if option == AUTO else {})}
    if not budget.per_class_mode:
        n = len(labels)
        return {"partitioned": {**head, "parts": {"all": partition_count(n, budget.total, limit.size_for(option, n))}}}
    counts = np.bincount(np.searchsorted(budget.classes, labels), minlength=len(budget.classes))
    parts = {str(int(c)): partition_count(int(n), int(k), limit.size_for(option, int(n)))
             for c, n, k in zip(budget.classes, counts, budget.per_class) if k > 0}
    return {"partitioned": {**head, "parts": parts}}


# GreeDi's two rounds (Mirzasoleiman et al., NeurIPS 2013), shared by the partitioned herding methods
# (`_distribute.two_rounds`) and CRAIG. Round 1 runs the greedy on each part to ROUND1_OVERSAMPLE times its budget:
# its first k_p picks are the proportional solution (greedy is prefix-stable), the rest give round 2 a choice.
# Round 2 works on at most about ROUND2_ROWS candidates at once: when the parts' candidates number more, the parts
# are taken in consecutive groups (as even as possible), each group's round 2 picking its parts' share of the
# budget among their candidates. This bounds a round-2 pick's cost, and the kernel it keeps, whatever the budget:
# one round 2 over all 2k candidates costs O(k^2 d), which put 1M x 512 rows (k = 10,000 per class) at 28 minutes
# for kernel herding and 52 for CRAIG (benchmarks/results/million.md before the groups; 5 and 8 with them).
ROUND1_OVERSAMPLE = 2
ROUND2_ROWS = 4096


def round1_picks(part: np.ndarray, k: int) -> int:
    """How many candidates round 1 picks in a part with budget k."""
    return min(len(part), ROUND1_OVERSAMPLE * k)


def round2_groups(split: list[tuple[np.ndarray, int]]) -> list[list[int]]:
    """The parts (indices into `split`, `partition`'s output) whose round-1 candidates share a round 2."""
    candidates = sum(round1_picks(part, k) for part, k in split)
    count = min(len(split), -(-candidates // ROUND2_ROWS))
    return [list(g) for g in np.array_split(np.arange(len(split)), count)]
