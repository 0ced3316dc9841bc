"""`auto`'s validation step: pick a selection method on the user's own data, or fall back to random.

`select(ds, "auto", ...)` (with `validate` on, its default there) carves, for each validation seed, a
stratified validation slice from the train split it was given (the seeds' slices disjoint where the
classes allow, like folds), builds a few candidate selections of the other rows from the signals the
proxy already collected (random, kernel herding at three bandwidths, k-center, prototypes and the fixed
table's pick), trains a short model on each (a copy of the user's model as given, the proxy's optimizer
with cosine decay) and scores it on that seed's slice. A candidate replaces random only when its mean
margin over random exceeds both the seed noise (the standard deviation across seeds of a candidate's
per-seed margin, pooled over the candidates) and twice the paired standard error of the accuracy
difference over every row scored (the slices' own sampling noise, large on a slice of a few dozen rows).
The method picked then runs on the whole train split. Nothing of any test split is read.

The proxy trained on every train row, the slices included, so the candidates' signals have seen the
slices' rows; the short models that are scored never do.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from . import methods
from .budget import budget_for, kept_rows
from .signals import Checkpoint, Signals

# The candidates, besides the table's pick: random (the reference), kernel herding from coverage
# (narrow kernel) to density matching (wide kernel), k-center (pure coverage) and prototypes.
CANDIDATES = (
    ("random", {}),
    ("kernel-herding", {"bandwidth": 0.3}),
    ("kernel-herding", {"bandwidth": 1.0}),
    ("kernel-herding", {"bandwidth": 3.0}),
    ("kcenter", {}),
    ("prototypes", {}),
)
# Below these the slice cannot rank candidates (its standard error is many points): random, untrained.
MIN_SLICE_ROWS = 50
MIN_CANDIDATE_ROWS = 2
# A short model on a tiny subset takes at least this many steps, so that it trains at all.
MIN_STEPS = 100
SLICE_STREAM = 0x5A11CE  # the slice's draw never coincides with a method's own draws
Z = 2.0  # how many paired standard errors a margin must exceed


@dataclass
class Context:
    """What `select` hands to `auto` so that it can train candidates: the data, the model as given and the proxy."""

    dataset: object
    model: nn.Module
    proxy: object  # ProxyConfig
    seed: int
    label_column: str
    collate_fn: object = None
    head: str | None = None
    accelerator: object = None
    progress: bool = False
    timings: dict = field(default_factory=dict)


_CONTEXT: ContextVar[Context | None] = ContextVar("hf_coreset_auto_context", default=None)


@contextmanager
def context(ctx: Context):
    """Within this block, `auto` with `validate=True` trains its candidates on `ctx`'s data."""
    token = _CONTEXT.set(ctx)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current() -> Context | None:
    return _CONTEXT.get()


def stratified_slices(labels: np.ndarray, share: float, seed: int, count: int = 1) -> list[np.ndarray]:
    """`count` stratified slices (sorted rows), each a `share` of every class (round half up, at most all but
    one row of a class), disjoint while the class has rows enough (like folds), else drawn afresh."""
    rng = np.random.default_rng([seed, SLICE_STREAM])
    slices: list[list[np.ndarray]] = [[] for _ in range(count)]
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        m = min(math.floor(share * len(rows) + 0.5), len(rows) - 1)
        if m <= 0:
            continue
        order = rng.permutation(rows)
        for s in range(count):
            if (s + 1) * m > len(rows):
                order, start = rng.permutation(rows), 0
            else:
                start = s * m
            slices[s].append(order[start:start + m])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in slices]


def subset_signals(signals: Signals, rows: np.ndarray) -> Signals:
    """`signals` of `rows` only (arrays copied), in that order."""
    ckpts = {}
    for e, ck in signals.checkpoints.items():
        arrays = {f: None if getattr(ck, f) is None else np.asarray(getattr(ck, f))[rows]
                  for f in ("loss", "correct", "logits", "features")}
        ckpts[e] = Checkpoint(epoch=e, **arrays)
    return Signals(labels=signals.labels[rows], num_classes=signals.num_classes, checkpoints=ckpts, head=signals.head)


def candidates(table_pick: tuple[str, dict], epoch: int) -> list[tuple[str, str, dict]]:
    """(label, method, checked options) of every candidate, the table's pick added unless it is already one
    (same method and options once defaults are filled in); labels name the options set here."""
    out, seen = [], set()
    for method, options in (*CANDIDATES, table_pick):
        spec = methods.get(method)
        opts = {k: v for k, v in options.items() if k != "epoch"}
        if "epoch" in spec.defaults:
            opts = {"epoch": epoch, **opts}
        checked = spec.check_options(opts, last_epoch=epoch)
        key = (method, repr(sorted(checked.items())))
        if key in seen:
            continue
        seen.add(key)
        extra = ", ".join(f"{k}={v}" for k, v in opts.items() if k != "epoch")
        out.append((f"{method}({extra})" if extra else method, method, checked))
    return out


def candidate_needs(epoch: int) -> dict:
    """{proxy epoch: fields} that the fixed candidates read at `epoch`."""
    merged: dict = {}
    for method, opts in CANDIDATES:
        spec = methods.get(method)
        options = spec.check_options({"epoch": epoch, **opts} if "epoch" in spec.defaults else dict(opts))
        for e, fields in spec.needs(options).items():
            merged[e] = merged.get(e, frozenset()) | fields
    return merged


def _train(model: nn.Module, collector, rows: np.ndarray, labels: torch.Tensor, *, proxy, steps: int, seed: int):
    """A copy of `model` trained on `rows` for `steps` steps: the proxy's optimizer, its peak rate decayed
    by a cosine to 0 (after the proxy's warm-up, cut to a tenth of the run at most)."""
    from .proxy import _make_optimizer
    from .signals import forward_logits

    device = collector.accelerator.device
    net = copy.deepcopy(model).to(device)
    net.train()
    optimizer = _make_optimizer(net, replace(proxy, warmup_steps=0))
    warm = min(proxy.warmup_steps, steps // 10)

    def rate(s):
        ramp = min(1.0, (s + 1) / warm) if warm else 1.0
        return ramp * 0.5 * (1 + math.cos(math.pi * s / steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    g = torch.Generator().manual_seed(seed)
    batch_size = min(proxy.batch_size, len(rows))
    done = 0
    while done < steps:
        order = rows[torch.randperm(len(rows), generator=g).numpy()]
        starts = list(range(0, len(order), batch_size))
        if len(starts) > 1 and len(order) - starts[-1] == 1:
            starts.pop()  # a last batch of one row joins the one before (BatchNorm)
        for start, stop in zip(starts, starts[1:] + [len(order)]):
            if done == steps:
                break
            b = order[start:stop]
            logits = forward_logits(net, collector.batch(b)).float()
            loss = nn.functional.cross_entropy(logits, labels[torch.as_tensor(b)].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            done += 1
    return net


def _sq_distances(x: np.ndarray, y: np.ndarray, block: int = 1024):
    """Squared distances from the rows of `x` to those of `y`, one (block, len(y)) slab at a time: never a
    len(x) x len(y) matrix (a slice of 10k rows against a 30% subset would be gigabytes)."""
    yy = (y * y).sum(1)
    for start in range(0, len(x), block):
        xb = x[start:start + block]
        yield np.maximum((xb * xb).sum(1)[:, None] + yy[None, :] - 2 * xb @ y.T, 0.0)


def criteria(picked: np.ndarray, held_out: np.ndarray) -> tuple[float, float]:
    """(MMD^2, coverage) of a candidate's rows against the held-out slice, in proxy feature space; lower is
    closer. MMD under exp(-||x - y||^2 / D), D the slice's mean squared pairwise distance (kernel herding's
    bandwidth 1); coverage: the mean distance from a slice row to its nearest picked row, over sqrt(D)."""
    a = np.asarray(picked, dtype=np.float64)
    b = np.asarray(held_out, dtype=np.float64)
    centred = b - b.mean(0)
    d = max(2.0 * float((centred * centred).sum(1).mean()), 1e-12)  # the mean over all pairs, in closed form

    def mean_kernel(x, y):
        return sum(float(np.exp(-slab / d).sum()) for slab in _sq_distances(x, y)) / (len(x) * len(y))

    mmd = mean_kernel(a, a) + mean_kernel(b, b) - 2 * mean_kernel(a, b)
    nearest = np.concatenate([slab.min(1) for slab in _sq_distances(b, a)])
    return float(mmd), float(np.sqrt(nearest).mean() / math.sqrt(d))


def _noise(acc: np.ndarray, correct: np.ndarray) -> tuple[float, np.ndarray]:
    """(pooled seed std of the margins over random, paired standard error of each candidate's difference to random
    over the rows scored). `acc` is (candidates, seeds), `correct` (candidates, seeds, slice rows: each
    seed's own slice), random first."""
    # The seeds' slices differ in difficulty, which moves every candidate alike: the noise on a margin is
    # the spread across seeds of the per-seed margins (paired on the seed), pooled over the candidates.
    seed_std = float(np.sqrt(np.mean(np.var(acc[1:] - acc[0], axis=1, ddof=1))))
    diff = (correct - correct[0]).reshape(len(correct), -1)  # per scored row of every seed's slice
    se = diff.std(axis=1, ddof=1) / math.sqrt(diff.shape[1])
    return seed_std, se


def validate(signals: Signals, budget, *, table_pick: tuple[str, dict], epoch: int, seeds: int, share: float,
             ctx: Context) -> tuple[str, dict, dict]:
    """(method, options, record): the candidate that beats random on the slice by more than the noise, else
    random; `record` holds every candidate's scores, the noise, the choice and the cost."""
    from .signals import check_model
    from .signals.collect import SignalCollector

    t0 = time.perf_counter()
    labels = signals.labels
    fraction = budget.total / signals.num_rows
    # One slice per validation seed, disjoint where the classes allow (folds): the slices' sampling noise
    # shrinks with the rows scored in all, and each seed's candidates are built from the rest.
    slices = stratified_slices(labels, share, ctx.seed, seeds)
    rest = [np.setdiff1d(np.arange(signals.num_rows), val) for val in slices]
    cands = candidates(table_pick, epoch)
    record = {"version": 1, "slice_share": share, "slice_rows": int(len(slices[0])),
              "train_rows": int(len(rest[0])), "seeds": seeds, "scored_rows": int(len(np.unique(np.concatenate(slices)))),
              "z": Z, "candidates": [], "choice": "random", "reason": None}
    k = kept_rows(fraction, len(rest[0]))
    if len(slices[0]) < MIN_SLICE_ROWS or k < MIN_CANDIDATE_ROWS:
        record["reason"] = (f"slice of {len(slices[0])} rows, candidates of {k} rows: too small to tell candidates "
                            f"apart (needs >= {MIN_SLICE_ROWS} and >= {MIN_CANDIDATE_ROWS}); random")
        return "random", {}, _finish(record, t0, ctx)

    accelerator = ctx.accelerator
    if accelerator is None:
        from accelerate import Accelerator
        accelerator = Accelerator()
    inputs, head = check_model(ctx.model, ctx.dataset, labels, signals.num_classes, label_column=ctx.label_column,
                               collate_fn=ctx.collate_fn, head=ctx.head, wants_features=False, trains=True)
    collector = SignalCollector(ctx.dataset, inputs, labels, accelerator=accelerator, collate_fn=ctx.collate_fn,
                                batch_size=ctx.proxy.eval_batch_size, head=head)
    y = torch.as_tensor(labels, dtype=torch.long)
    steps = max(MIN_STEPS, max(ctx.proxy.epochs, 1) * math.ceil(k / ctx.proxy.batch_size))
    record["steps"] = steps
    acc = np.zeros((len(cands), seeds))
    correct = np.zeros((len(cands), seeds, len(slices[0])))
    # No-training criteria, recorded beside the validation scores to see whether they predict them.
    mmd, cover = np.full((len(cands), seeds), np.nan), np.full((len(cands), seeds), np.nan)
    ckpt = signals.checkpoints.get(epoch)
    feats = None if ckpt is None or ckpt.features is None else ckpt.features
    cuda = [accelerator.device] if accelerator.device.type == "cuda" else []
    for s, (val, train) in enumerate(zip(slices, rest)):
        sub = subset_signals(signals, train)
        sub_budget = budget_for(sub.labels, kept_rows(fraction, len(train)), per_class=budget.per_class_mode)
        seed_s = int(np.random.default_rng([ctx.seed, s]).integers(2**31))
        for i, (_, method, options) in enumerate(cands):
            spec = methods.get(method)
            out = spec.fn(sub, sub_budget, rng=np.random.default_rng([ctx.seed, s, i]), **options)
            with torch.random.fork_rng(devices=cuda):  # dropout draws from a seeded stream; the caller's is untouched
                torch.manual_seed(seed_s)
                net = _train(ctx.model, collector, train[out.indices], y, proxy=ctx.proxy, steps=steps, seed=seed_s)
            hit = collector.logits(net, val).argmax(1) == labels[val]
            correct[i, s] = hit
            acc[i, s] = hit.mean()
            if feats is not None:
                mmd[i, s], cover[i, s] = criteria(feats[train[out.indices]], feats[val])
    seed_std, se = _noise(acc, correct)
    margins = acc.mean(axis=1) - acc[0].mean()
    threshold = np.maximum(seed_std, Z * se)
    for i, (name, method, options) in enumerate(cands):
        record["candidates"].append({
            "name": name, "method": method, "options": options, "accuracy": acc[i].round(6).tolist(),
            "mean": round(float(acc[i].mean()), 6), "std": round(float(acc[i].std(ddof=1)), 6),
            "margin": round(float(margins[i]), 6), "paired_se": round(float(se[i]), 6),
            "threshold": round(float(threshold[i]), 6),
            "beats_random": bool(i > 0 and margins[i] > threshold[i]),
            "mmd": None if np.isnan(mmd[i]).any() else round(float(mmd[i].mean()), 6),
            "coverage": None if np.isnan(cover[i]).any() else round(float(cover[i].mean()), 6)})
    record["seed_std"] = round(seed_std, 6)
    winners = [i for i in range(1, len(cands)) if margins[i] > threshold[i]]
    if winners:
        best = max(winners, key=lambda i: (margins[i], -i))
        record["choice"] = cands[best][0]
        record["reason"] = (f"{cands[best][0]} beat random by {100 * margins[best]:.2f} points, more than the noise "
                            f"({100 * threshold[best]:.2f}: seed std {100 * seed_std:.2f}, {Z:g} x paired SE "
                            f"{100 * se[best]:.2f})")
        method, options = cands[best][1], cands[best][2]
    else:
        record["reason"] = "no candidate beat random by more than the noise (seed std and paired SE on the slice)"
        method, options = "random", {}
    return method, options, _finish(record, t0, ctx)


def _finish(record: dict, t0: float, ctx: Context) -> dict:
    seconds = time.perf_counter() - t0
    proxy = ctx.timings.get("proxy_training", 0.0) + ctx.timings.get("signals", 0.0)
    ctx.timings["auto_validation"] = seconds
    record["seconds"] = round(seconds, 3)
    record["proxy_seconds"] = round(proxy, 3)
    # Cached signals cost no proxy time in this run: then there is no ratio to give.
    record["cost_ratio"] = round(seconds / proxy, 3) if proxy > 0 else None
    return record
