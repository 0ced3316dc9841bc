"""Early-phase proxy training that collects Signals at chosen epochs, with a resumable cache.

A copy of the user's model trains on the full data through Accelerate with a constant learning
rate (the early phase of NFG, FDMat, MRMC and DeepCore's proxies). After each requested epoch,
one eval-mode forward pass records the signals the methods asked for. Because the learning rate
is constant, the first E epochs of a longer run equal a run of E epochs, so one cache entry
serves methods that need different numbers of epochs.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .signals import (CHEAP_FIELDS, FIELDS, ROW_KEY, WEIGHT_KEY, Checkpoint, Signals, check_logits, check_model,
                      GlobalBatchSampler, SignalCollector, forward_logits, permutation)
from .signals.progress import Progress
from .signals.cache import (CACHE_ENV, SIGNALS_VERSION, SignalCache, cache_root,  # noqa: F401 (re-exported)
                            default_cache_dir, signal_cache)

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "adam", "sgd")


@dataclass
class ProxyConfig:
    """How the proxy (a copy of your model) trains during the early phase.

    Args:
        optimizer (`str`, *optional*, defaults to `"adamw"`): one of "adamw", "adam", "sgd".
        lr (`float`, *optional*, defaults to `1e-3`): constant learning rate. Use about 5e-5 for a
            pretrained transformer and 1e-2 for the MNIST-1D ConvNet.
        weight_decay (`float`, *optional*, defaults to `0.0`): weight decay.
        momentum (`float`, *optional*, defaults to `0.9`): momentum in [0, 1), for "sgd" only.
        batch_size (`int`, *optional*, defaults to `128`): global training batch size (split across
            processes, so 1 and N processes take the same steps).
        eval_batch_size (`int`, *optional*, defaults to `512`): batch size of the signal passes (per
            process with the default Accelerator; it does not change the signals).
        keep_state (`bool`, *optional*, defaults to `False`): keep the proxy's model and optimizer state
            in the cache entry after the run. The state is saved after every epoch while training, so an
            interrupted run resumes, and deleted when the run ends unless this is set; with it, a later
            run that needs a new field or more epochs continues from there instead of training again
            (it costs about three times the model's size on disk).

    Numbers are stored as plain `float` / `int` (a numpy scalar gives the same cache key as a Python one).
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 128
    eval_batch_size: int = 512
    keep_state: bool = False

    def __post_init__(self):
        if not isinstance(self.keep_state, (bool, np.bool_)):
            raise TypeError(f"proxy keep_state={self.keep_state!r} must be True or False.")
        self.keep_state = bool(self.keep_state)
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            error = ValueError if isinstance(self.optimizer, str) else TypeError
            raise error(f"proxy optimizer={self.optimizer!r}; pick one of {list(OPTIMIZERS)}.")
        self.lr = _real("lr", self.lr, "a positive number", lambda v: v > 0)
        self.weight_decay = _real("weight_decay", self.weight_decay, "a number >= 0", lambda v: v >= 0)
        self.momentum = _real("momentum", self.momentum, "a number in [0, 1)", lambda v: 0 <= v < 1)
        for name in ("batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"proxy {name}={value!r} must be a positive integer.")
            if value <= 0:
                raise ValueError(f"proxy {name}={value!r} must be a positive integer.")
            setattr(self, name, int(value))

    @classmethod
    def coerce(cls, value) -> "ProxyConfig":
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise TypeError(f"Unknown proxy settings {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}.")
            return cls(**value)
        raise TypeError(f"proxy must be a ProxyConfig, a dict or None, not {type(value).__name__}.")

    def training_key(self) -> dict:
        """Settings that change the training trajectory (not how long it runs, eval batching or what is kept)."""
        d = asdict(self)
        d.pop("eval_batch_size")
        d.pop("keep_state")
        if self.optimizer != "sgd":
            d.pop("momentum")
        return d


def _real(name: str, value, what: str, ok) -> float:
    """`value` as a float, refused (naming the setting) unless it is a finite real number that is `ok`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"proxy {name}={value!r} must be {what}.")
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"proxy {name}={value!r} must be {what}.")
    return float(value)


class _EpochBatchSampler(GlobalBatchSampler):
    """This process's share of the proxy's shuffled global batches, as `(row, weight)` pairs.

    One epoch is one pass over the rows in the order of ``generator(seed, epoch)``, cut into batches
    of `batch_size`; a last batch of one row joins the one before (BatchNorm cannot train on one row).
    Sharding and weights are `GlobalBatchSampler`'s, so 1 and N processes take the same steps.
    (Accelerate's own sharding pads a short last batch with repeated rows that count in the loss,
    which changes that step.)
    """

    def __init__(self, n: int, batch_size: int, seed: int, *, start_epoch: int = 0, num_processes: int = 1,
                 process_index: int = 0):
        super().__init__(seed, num_processes=num_processes, process_index=process_index, weighted=True,
                         epoch=start_epoch)
        self.n, self.batch_size = n, batch_size

    def _starts(self) -> list[int]:
        starts = list(range(0, self.n, self.batch_size))
        if len(starts) > 1 and self.n - starts[-1] == 1:
            starts.pop()  # a last batch of one row joins the one before: BatchNorm cannot train on one row
        return starts

    def global_batches(self, epoch: int, g: torch.Generator):
        order = permutation(self.n, g)
        starts = self._starts()
        for start, stop in zip(starts, starts[1:] + [self.n]):
            yield order[start:stop]

    def num_batches(self, epoch: int) -> int:
        return len(self._starts())


def _make_optimizer(model: nn.Module, cfg: ProxyConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def run_proxy(model: nn.Module, dataset, labels: np.ndarray, num_classes: int, needs: dict[int, frozenset], *,
              config: ProxyConfig, seed: int, label_column: str, collate_fn=None, head: str | None = None,
              cache_dir=None, accelerator=None, progress: bool = True) -> tuple[Signals, dict]:
    """Train a copy of `model` and return the Signals at the epochs in `needs`, with step timings.

    Args:
        needs (`dict[int, frozenset[str]]`): proxy epoch -> signal fields wanted there (epoch 0 is
            the model as given).
        cache_dir (`str`, `Path`, `False` or `None`): where signals are cached; `None` uses
            ``$HF_CORESET_CACHE`` or ``$HF_HOME/hf_coreset``; `False` turns the cache off.

    Note:
        Every process must call it; all end with the same Signals.
    """
    from accelerate import Accelerator

    if accelerator is None:
        # Any Accelerator works: training batches are sharded by _EpochBatchSampler, and signal
        # passes are placed by row index, so neither depends on how Accelerate splits batches.
        accelerator = Accelerator()
    bad = {f for fs in needs.values() for f in fs} - set(FIELDS)
    if bad:
        raise ValueError(f"Unknown signal fields {sorted(bad)}; known: {list(FIELDS)}.")
    bad = [e for e in needs if isinstance(e, bool) or not isinstance(e, int) or e < 0]
    if bad:
        raise ValueError(f"Proxy epochs must be integers >= 0 (0 = the model as given); got {bad}. "
                         "Check the method's epoch option.")
    needs = {int(e): frozenset(fs) | CHEAP_FIELDS for e, fs in needs.items()}
    wants_features = any("features" in fs for fs in needs.values())
    inputs, head_name = check_model(model, dataset, labels, num_classes, label_column=label_column,
                                    collate_fn=collate_fn, head=head, wants_features=wants_features,
                                    trains=any(e > 0 for e in needs))
    timings = {"proxy_training": 0.0, "signals": 0.0}

    cache = SignalCache(None)
    if cache_dir is not False:
        folder, origin = cache_root(cache_dir)
        cache = signal_cache(folder, model, dataset, len(labels), config.training_key(), seed, label_column, inputs,
                             head_name, collate_fn, accelerator)

    cached = {(e, f): cache.load(e, f) for e, fs in needs.items() for f in fs}
    cache.touch()  # last used, for `hf-coreset cache ls` and `clear --older-than`
    missing = {e: {f for f in fs if cached[(e, f)] is None} for e, fs in needs.items()}
    missing = {e: fs for e, fs in missing.items() if fs}
    if missing and cache.root is not None:  # a full hit writes nothing (a read-only cache serves it)
        cache.check_writable(folder, origin)
    accelerator.wait_for_everyone()  # every process has read the cache before the main one writes to it
    collected = {}
    if missing:
        collected = _train_and_collect(model, dataset, labels, missing, last_epoch=max(missing), config=config,
                                       seed=seed, inputs=inputs, collate_fn=collate_fn, head_name=head_name,
                                       cache=cache, accelerator=accelerator, progress=progress, timings=timings)
    accelerator.wait_for_everyone()
    if missing and not config.keep_state and accelerator.is_main_process:
        cache.drop_state()  # the run is complete: signals only, unless asked to keep the state
    signals = Signals(labels=labels, num_classes=num_classes, head=head_name)
    for e, fs in sorted(needs.items()):
        arrays = {f: collected[(e, f)] if (e, f) in collected else cached[(e, f)] for f in fs}
        if "correct" in arrays:
            arrays["correct"] = arrays["correct"].astype(bool)
        signals.checkpoints[e] = Checkpoint(epoch=e, **arrays)
    return signals, timings


def _train_and_collect(model, dataset, labels, missing, *, last_epoch, config, seed, inputs, collate_fn, head_name,
                       cache: SignalCache, accelerator, progress, timings) -> dict:
    """Train from scratch (or the cached state) and return {(epoch, field): array} for `missing`."""
    collected = {}

    def store(epoch, ckpt, fields):
        for f in fields:
            value = getattr(ckpt, f)
            if f == "correct":
                value = value.astype(np.uint8)
            collected[(epoch, f)] = value
            if accelerator.is_main_process:
                cache.save(epoch, f, value)

    from accelerate.utils import send_to_device

    collector = SignalCollector(dataset, inputs, labels, accelerator=accelerator, collate_fn=collate_fn,
                                batch_size=config.eval_batch_size, head=head_name)
    device = accelerator.device
    cuda = [device] if device.type == "cuda" else []

    proxy = copy.deepcopy(model).to(device)
    proxy.train()
    optimizer = _make_optimizer(proxy, config) if last_epoch > 0 else None  # a frozen model still scores epoch 0
    start = 0
    state = cache.load_state()
    first_missing = min(missing)
    if state is not None and 0 < state["epoch"] <= first_missing:
        proxy.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"]
        logger.info("Resuming proxy training from epoch %d (cached state).", start)

    def score(epoch, net):
        t0 = time.perf_counter()
        fields = frozenset(missing[epoch]) | CHEAP_FIELDS
        with torch.random.fork_rng(devices=cuda):  # a signal pass leaves the training RNG stream as it was
            ckpt = collector.checkpoint(net, epoch, fields, progress=progress)
        store(epoch, ckpt, missing[epoch])
        timings["signals"] += time.perf_counter() - t0

    with torch.random.fork_rng(devices=cuda):  # dropout draws from a seeded stream; the caller's RNG is untouched
        torch.manual_seed(seed)
        if start:
            torch.set_rng_state(state["rng"])
            if cuda and "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
        if 0 in missing:
            score(0, proxy)
        if start in missing and start > 0:  # the cached state is the model at the end of that epoch
            score(start, proxy)
        if last_epoch == start:
            return collected
        sampler = _EpochBatchSampler(len(labels), config.batch_size, seed, start_epoch=start,
                                     num_processes=accelerator.num_processes, process_index=accelerator.process_index)
        # Not prepared by Accelerate: the sampler already gives each process its share of every batch.
        train_loader = torch.utils.data.DataLoader(collector.rows, batch_sampler=sampler, collate_fn=collector.collator)
        net, optimizer = accelerator.prepare(proxy, optimizer)
        labels_dev = collector.labels.to(device)
        for epoch in range(start + 1, last_epoch + 1):
            t0 = time.perf_counter()
            sampler.set_epoch(epoch - 1)  # proxy epoch e shuffles with stream e - 1
            net.train()
            bar = Progress(f"proxy epoch {epoch}/{last_epoch}", sampler.num_batches(epoch - 1),
                           enabled=progress and accelerator.is_main_process)
            for step, batch in enumerate(train_loader):
                batch = send_to_device(batch, device)
                idx = batch.pop(ROW_KEY)
                weight = batch.pop(WEIGHT_KEY)
                logits = forward_logits(net, batch).float()
                check_logits(logits, labels_dev[idx], None)
                per_row = nn.functional.cross_entropy(logits, labels_dev[idx], reduction="none")
                loss = (per_row * weight).sum()
                # The global batch's mean loss, on every process, so that all of them stop together.
                batch_loss = float(accelerator.reduce(loss.detach(), reduction="sum")) / accelerator.num_processes
                if not math.isfinite(batch_loss):
                    raise FloatingPointError(_nonfinite_loss_message(batch, idx, batch_loss, epoch=epoch, step=step,
                                                                     lr=config.lr))
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                bar.update(rows=len(idx) * accelerator.num_processes, loss=batch_loss)
            bar.close()
            timings["proxy_training"] += time.perf_counter() - t0
            if epoch in missing:
                score(epoch, accelerator.unwrap_model(net))
            if accelerator.is_main_process:  # every epoch, so that an interrupted run resumes from the last one
                cache.save_state(epoch, accelerator.unwrap_model(net), optimizer, device)
    return collected


def _nonfinite_loss_message(batch: dict, rows: torch.Tensor, loss: float, *, epoch: int, step: int, lr: float) -> str:
    """Why the training loss is NaN/inf: bad input rows (named), a broken model, or divergence."""
    where = f"Proxy training loss is {loss} at epoch {epoch}, step {step}"
    bad = set()
    for value in batch.values():
        if torch.is_tensor(value) and value.is_floating_point():
            finite = torch.isfinite(value.reshape(len(value), -1)).all(dim=1).cpu()
            bad.update(rows.cpu()[~finite].tolist())
    if bad:
        return (f"{where}: dataset rows {sorted(bad)[:10]} have NaN/inf inputs (this process's share of the "
                "batch); fix or drop them, e.g. with ds.filter.")
    if epoch == 1 and step == 0:
        return f"{where}, before any update: the model gives non-finite outputs; check its initialisation."
    return f"{where}: the proxy diverged; lower the proxy learning rate (now {lr}) with proxy={{'lr': ...}}."
