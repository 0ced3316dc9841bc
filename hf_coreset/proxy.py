"""Early-phase proxy training that collects Signals at chosen epochs, with a resumable cache.

A copy of the user's model trains on the full data through Accelerate with a constant learning
rate (the early phase of NFG, FDMat, MRMC and DeepCore's proxies), after an optional linear warm-up
over a fixed number of steps. After each requested epoch, one eval-mode forward pass records the
signals the methods asked for. Because the schedule depends only on the step count, never on the
run's length, the first E epochs of a longer run equal a run of E epochs, so one cache entry serves
methods that need different numbers of epochs.
"""

from __future__ import annotations

import copy
import functools
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


# The fine-tuning recipe for a pretrained transformer (`ProxyConfig.finetune`): a transformer's usual
# learning rate and batch, a short warm-up of a FIXED number of steps (a warm-up measured in a share
# of the run would make epoch E of a 2-epoch run differ from epoch E of a 3-epoch run, which the
# cache relies on), and a short run. Methods that read features only read epoch 0, the pretrained
# model as given (one forward pass, no training): on a real text set with MiniLM that held the
# quality of kernel herding and herding and lifted k-center well above its fine-tuned proxy
# (BENCHMARKS.md, "Epoch 0 (no proxy training) against the trained proxy"); a new head's
# predictions mean nothing before training, so methods that read logits, losses or correctness
# fine-tune first.
FINETUNE = {"optimizer": "adamw", "lr": 5e-5, "weight_decay": 0.01, "batch_size": 32, "warmup_steps": 50, "epochs": 2,
            "features_epoch": 0}
RECIPES = ("scratch", "finetune")


@dataclass
class ProxyConfig:
    """How the proxy (a copy of your model) trains during the early phase.

    Two recipes: `ProxyConfig()` ("scratch", the defaults below, made for a small network trained from
    random weights such as the MNIST-1D ConvNet) and `ProxyConfig.finetune()` (for a pretrained
    transformer: AdamW, lr 5e-5, weight decay 0.01, batch 32, 50 warm-up steps, 2 epochs, and epoch 0,
    no training, for methods that read features only). `select`
    picks the fine-tuning recipe when the model is a `transformers.PreTrainedModel`, else "scratch";
    `proxy="finetune"` / `proxy="scratch"` names one, and a dict overrides settings of the picked one.

    Args:
        optimizer (`str`, *optional*, defaults to `"adamw"`): one of "adamw", "adam", "sgd".
        lr (`float`, *optional*, defaults to `1e-3`): learning rate after the warm-up (constant).
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
        warmup_steps (`int`, *optional*, defaults to `0`): optimizer steps over which the learning rate
            rises linearly to `lr` (step s uses lr * s / warmup_steps); a fixed count, so a longer run
            starts exactly as a shorter one.
        epochs (`int`, *optional*, defaults to `10`): the proxy's length: the epoch that a method's
            `epoch` option means when left unset (None). It does not change the training itself.
        features_epoch (`int`, *optional*): the epoch an unset `epoch` means for a method that reads
            features only (kcenter, herding, kernel-herding, fdmat, moderate); None: `epochs`. The
            fine-tuning recipe sets 0: a pretrained model's features need no training.
        recipe (`str`, *optional*, defaults to `"scratch"`): the recipe these settings started from
            (recorded in the selection's config; it does not change the training itself).

    Numbers are stored as plain `float` / `int` (a numpy scalar gives the same cache key as a Python one).
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 128
    eval_batch_size: int = 512
    keep_state: bool = False
    warmup_steps: int = 0
    epochs: int = 10
    features_epoch: int | None = None
    recipe: str = "scratch"

    def __post_init__(self):
        if not isinstance(self.keep_state, (bool, np.bool_)):
            raise TypeError(f"proxy keep_state={self.keep_state!r} must be True or False.")
        self.keep_state = bool(self.keep_state)
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            error = ValueError if isinstance(self.optimizer, str) else TypeError
            raise error(f"proxy optimizer={self.optimizer!r}; pick one of {list(OPTIMIZERS)}.")
        if not isinstance(self.recipe, str) or self.recipe not in RECIPES:
            error = ValueError if isinstance(self.recipe, str) else TypeError
            raise error(f"proxy recipe={self.recipe!r}; pick one of {list(RECIPES)}.")
        self.lr = _real("lr", self.lr, "a positive number", lambda v: v > 0)
        self.weight_decay = _real("weight_decay", self.weight_decay, "a number >= 0", lambda v: v >= 0)
        self.momentum = _real("momentum", self.momentum, "a number in [0, 1)", lambda v: 0 <= v < 1)
        for name, minimum in (("batch_size", 1), ("eval_batch_size", 1), ("warmup_steps", 0), ("epochs", 0)):
            value = getattr(self, name)
            what = "a positive integer" if minimum else "an integer >= 0"
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"proxy {name}={value!r} must be {what}.")
            if value < minimum:
                raise ValueError(f"proxy {name}={value!r} must be {what}.")
            setattr(self, name, int(value))
        if self.features_epoch is not None:
            value = self.features_epoch
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"proxy features_epoch={value!r} must be an integer >= 0 or None.")
            if value < 0:
                raise ValueError(f"proxy features_epoch={value!r} must be an integer >= 0 or None.")
            self.features_epoch = int(value)

    def last_epoch(self, spec, options: dict) -> int:
        """The epoch that an unset `epoch` option of method `spec` (with `options`) means under this proxy:
        `features_epoch` when the method would read features only there, else `epochs`. `select` resolves
        it before `needs`, so that the proxy trains only as long as some signal requires."""
        if self.features_epoch is None:
            return self.epochs
        probe = spec.needs(spec.check_options(options, last_epoch=self.features_epoch))
        if probe and all(fields <= {"features"} for fields in probe.values()):
            return self.features_epoch
        return self.epochs

    @classmethod
    def finetune(cls, **overrides) -> "ProxyConfig":
        """The fine-tuning recipe for a pretrained transformer (see `FINETUNE`), with `overrides`."""
        return cls(**{**FINETUNE, "recipe": "finetune", **overrides})

    @classmethod
    def coerce(cls, value, model=None) -> "ProxyConfig":
        """`value` as a ProxyConfig: None picks the recipe from `model` (fine-tuning for a
        `transformers.PreTrainedModel`, else "scratch"); "finetune" / "scratch" name one; a dict
        overrides settings of the recipe None would pick (or of the one its "recipe" names)."""
        if isinstance(value, cls):
            return value
        if value is not None and not isinstance(value, (str, dict)):
            raise TypeError(f"proxy must be a ProxyConfig, a dict, 'finetune', 'scratch' or None, "
                            f"not {type(value).__name__}.")
        if isinstance(value, str):
            if value not in RECIPES:
                raise ValueError(f"proxy={value!r}; pass 'finetune', 'scratch', a dict of settings or a ProxyConfig.")
            value = {"recipe": value}
        value = dict(value or {})
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"Unknown proxy settings {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}.")
        recipe = value.pop("recipe", "finetune" if is_pretrained(model) else "scratch")
        if recipe == "finetune":
            return cls.finetune(**value)
        return cls(**value, recipe=recipe)

    def training_key(self) -> dict:
        """Settings that change the training trajectory (not how long it runs, eval batching or what is kept)."""
        d = asdict(self)
        for name in ("eval_batch_size", "keep_state", "epochs", "features_epoch", "recipe"):
            d.pop(name)
        if self.optimizer != "sgd":
            d.pop("momentum")
        if not self.warmup_steps:
            d.pop("warmup_steps")  # no warm-up: the key (and cache entries) of the constant-rate proxy as before
        return d

    def record(self, epochs) -> dict:
        """What a selection's config stores as "proxy": the training settings, the recipe, the warm-up
        and the epochs whose signals were read."""
        return {**self.training_key(), "warmup_steps": self.warmup_steps, "recipe": self.recipe,
                "epochs": sorted(epochs)}


def is_pretrained(model) -> bool:
    """Whether `model` is a `transformers.PreTrainedModel` (without importing transformers for other models)."""
    import sys

    transformers = sys.modules.get("transformers")
    return transformers is not None and isinstance(model, transformers.PreTrainedModel)


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
        optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        optimizer = cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.warmup_steps:
        optimizer.register_step_pre_hook(_warmup(cfg.lr, cfg.warmup_steps))
    return optimizer


def _warmup(lr: float, steps: int):
    """An optimizer step pre-hook: step s (from 1) runs at lr * min(1, s / steps). The count lives in
    the param groups, so it is saved and restored with the optimizer's state (a resumed run goes on)."""

    def hook(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            group["warmup_step"] = group.get("warmup_step", 0) + 1
            group["lr"] = lr * min(1.0, group["warmup_step"] / steps)

    return hook


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
    for key in collected:  # one code path: fresh signals, too, are read from the cache files, as memory maps
        opened = cache.open(*key) if cache.root is not None else None
        if opened is not None:
            collected[key] = opened
    signals = Signals(labels=labels, num_classes=num_classes, head=head_name)
    for e, fs in sorted(needs.items()):
        arrays = {f: collected[(e, f)] if (e, f) in collected else cached[(e, f)] for f in fs}
        if "correct" in arrays:
            arrays["correct"] = arrays["correct"].view(bool)  # 0/1 bytes (checked): a view keeps the memory map
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
            if isinstance(value, np.memmap):  # written into its cache file as it was collected
                cache.commit(epoch, f, value)
            elif accelerator.is_main_process:
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
        # The main process writes the per-row vectors (logits, features) straight into their cache files, so
        # its memory does not grow with the rows x dims of the signals; the others keep them in memory.
        allocate = functools.partial(cache.create, epoch) if accelerator.is_main_process else None
        try:
            with torch.random.fork_rng(devices=cuda):  # a signal pass leaves the training RNG stream as it was
                ckpt = collector.checkpoint(net, epoch, fields, progress=progress, allocate=allocate)
            store(epoch, ckpt, missing[epoch])
        finally:
            cache.discard()  # files of fields collected but already cached, or of a failed pass
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
