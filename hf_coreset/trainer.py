"""CoresetTrainer: a `transformers.Trainer` that trains on a coreset, chosen during its own warm-up
(static) or re-chosen while it trains (CREST).

Static schedule (``coreset_schedule="static"``)
    The first ``coreset_warmup_epochs`` epochs train on the full data; that warm-up *is* the
    proxy of `hf_coreset.select`. The signals the method needs (``spec.needs(options)``) are
    collected on the way: the cheap ones (loss, correct, logits) from the training mini-batches
    of the e-th warm-up pass, as a side effect of the per-example loss computed in
    :meth:`CoresetTrainer.compute_loss`; features (and epoch 0, the model as given) from one
    eval-mode pass at the end of that epoch. The method selects once, the selection is saved in
    ``output_dir/_coreset_selection`` (the leading underscore keeps it out of ``push_to_hub``'s upload
    of ``output_dir``: a selection goes to its own dataset repo, ``coreset_selection_repo``), and the
    remaining epochs train on the kept rows, with their weights for weighted methods (CRAIG). Or pass
    ``coreset_selection=`` to train on a given one.

CREST schedule (``coreset_schedule="crest"``)
    After the warm-up, every step trains on a mini-batch coreset; see `hf_coreset.crest`. Checks
    and re-selections run after optimizer steps (on every process, identically); because the
    data loader prefetches one batch, a re-selection at step t takes effect from step t + 2, and
    that prefetched batch keeps the weights it was selected with.

How the changing dataset fits Trainer's loop (which sizes epochs once, before training): the
sampler knows its phase from the epoch number and yields a fixed number of global batches per
phase (a multiple of the gradient-accumulation steps; the last batch wraps around the shuffled
rows so every per-device batch is full). `set_initial_training_values` returns the real
step count, warm-up steps + coreset steps, so the LR schedule spans exactly the steps taken, and
``state.epoch`` is corrected after every step. All ranks draw the same order, from the
library's one seed rule (`hf_coreset.signals.generator(seed, epoch)`, the proxy's: warm-up epoch
e visits the rows in proxy epoch e + 1's order); accelerate hands each rank its share. The loss is
the weighted sum of per-example cross-entropies divided by the per-device share of the global
batch, so 1 and N processes take the same steps. Resuming from a checkpoint is not supported (the phase plan is not saved).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from . import methods
from .api import build_selection, check_dataset, declared_classes
from .budget import check_bool, check_fraction, make_budget
from .crest import Crest, CrestConfig
from .fingerprint import model_fingerprint
from .selection import CoresetSelection
from .signals import (CHEAP_FIELDS, FIELDS, ROW_KEY, Checkpoint, GlobalBatchSampler, SignalCollector, Signals,
                      check_model, forward_input_names, logits_of, permutation)

logger = logging.getLogger(__name__)

SCHEDULES = ("static", "crest")
SIGNAL_SOURCES = ("minibatch", "eval")
CREST_PARAMS = ("all", "head")
# Under output_dir; Trainer.push_to_hub uploads output_dir but skips names starting with "_", so the selection's
# parquet files never land in the model repo (push_to_hub pushes them to coreset_selection_repo instead).
SELECTION_DIR = "_coreset_selection"
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
EVENTS_FILE = "coreset_events.json"


@dataclass
class CoresetTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the coreset settings (fields prefixed `coreset_` and `crest_`).

    Coreset settings:
        coreset_method (`str`, *optional*): registered method for the static schedule (e.g. "el2n",
            "craig", "nfg"); see `hf-coreset methods`.
        coreset_method_options (`dict` or JSON `str`, *optional*): the method's options. An `epoch`
            or `epochs` option left unset defaults to `coreset_warmup_epochs`.
        coreset_fraction (`float`, *optional*, defaults to `0.1`): kept share of the rows (static), or
            the share of a full epoch's rows trained per epoch (CREST).
        coreset_warmup_epochs (`int`, *optional*, defaults to `1`): epochs on the full data first.
        coreset_schedule (`str`, *optional*, defaults to `"static"`): "static" or "crest".
        coreset_seed (`int`, *optional*): seeds the selection and the samplers; defaults to `seed`.
        coreset_cache_dir (`str`, *optional*): also keep each selection under
            `<dir>/selections/<fingerprint>/` for reuse with `coreset_selection=`.
        coreset_signals (`str`, *optional*, defaults to `"minibatch"`): where cheap signals come from.
        coreset_label_column, coreset_head, coreset_per_class, coreset_selection_repo: see help.
        crest_tau, crest_h, crest_b, crest_T2, crest_alpha, crest_random_subset_fraction,
        crest_minibatch_size, crest_drop_learned, crest_params: CREST (see `hf_coreset.crest`).

    Example:
        ```python
        >>> args = CoresetTrainingArguments(output_dir="out", coreset_method="el2n", coreset_fraction=0.3,
        ...                                 coreset_warmup_epochs=2, num_train_epochs=10)
        ```
    """

    coreset_method: str | None = field(default=None, metadata={
        "help": "Registered coreset method for the static schedule (e.g. 'el2n', 'kcenter', 'craig', 'nfg'); "
                "list them with `hf-coreset methods`. Not used by the 'crest' schedule."})
    coreset_method_options: dict | str | None = field(default=None, metadata={
        "help": "Options of the method, as a dict or a JSON string (e.g. '{\"epoch\": 2}'). An 'epoch' or 'epochs' "
                "option left unset defaults to coreset_warmup_epochs."})
    coreset_fraction: float = field(default=0.1, metadata={
        "help": "Kept share of the training rows, in (0, 1]: 0.1 keeps 10%%. For 'crest', the share of a full "
                "epoch's rows trained in each epoch after the warm-up."})
    coreset_warmup_epochs: int = field(default=1, metadata={
        "help": "Epochs trained on the full data before the coreset takes over; they are the proxy that scores "
                "the rows. 0 is allowed for 'crest', or with a given selection."})
    coreset_schedule: str = field(default="static", metadata={
        "help": "'static': select once after the warm-up, then train on the kept rows. 'crest': mini-batch coresets "
                "re-selected during training (Yang et al., ICML 2023)."})
    coreset_seed: int | None = field(default=None, metadata={
        "help": "Seed of the selection and of the data order; defaults to `seed`."})
    coreset_cache_dir: str | None = field(default=None, metadata={
        "help": "Folder where each selection is also saved, as <dir>/selections/<fingerprint>/, to train later runs "
                "on it with CoresetTrainer(coreset_selection=...). The selection is always saved in "
                "<output_dir>/_coreset_selection."})
    coreset_signals: str = field(default="minibatch", metadata={
        "help": "'minibatch': loss, correctness and logits of warm-up epoch e come from its training mini-batches "
                "(no extra pass); features and epoch 0 need one eval pass. 'eval': one eval-mode pass after each "
                "needed epoch, as hf_coreset.select's proxy does."})
    coreset_label_column: str | None = field(default=None, metadata={
        "help": "Integer class-id column of the training set; defaults to 'label', else 'labels'."})
    coreset_head: str | None = field(default=None, metadata={
        "help": "Name of the model's final nn.Linear (for feature signals and crest_params='head'); found "
                "automatically if unset (the layer whose output is the logits). The selection records the one used "
                "in config['head']."})
    coreset_per_class: bool = field(default=True, metadata={
        "help": "Proportional per-class budgets (the library's rounding rule); False lets the method pick globally."})
    coreset_selection_repo: str | None = field(default=None, metadata={
        "help": "Hub dataset repo, 'user/name' (e.g. 'me/mnist1d-el2n-10pct'), that CoresetTrainer.push_to_hub pushes "
                "the selection to (never into the model repo); the model card links it."})
    crest_tau: float = field(default=0.05, metadata={
        "help": "CREST: relative error of the quadratic loss model on a fresh random sample above which the "
                "mini-batch coresets are re-selected (paper: 0.05 CIFAR-10, 0.01 CIFAR-100)."})
    crest_h: float = field(default=1.0, metadata={
        "help": "CREST: T1 = ceil(h * ||H_0|| / ||H_t||) steps between checks of the quadratic model."})
    crest_b: float = field(default=5.0, metadata={
        "help": "CREST: P = ceil(b * T1) mini-batch coresets per selection (and initially ceil(b))."})
    crest_T2: int = field(default=20, metadata={
        "help": "CREST: window in training steps over which a row whose loss stays below crest_alpha is dropped."})
    crest_alpha: float = field(default=0.1, metadata={
        "help": "CREST: loss below which a row counts as learned."})
    crest_random_subset_fraction: float = field(default=0.01, metadata={
        "help": "CREST: r as a share of the training rows: the size of each random subset and of each check "
                "sample (paper: 0.01). Must give at least crest_minibatch_size rows."})
    crest_minibatch_size: int | None = field(default=None, metadata={
        "help": "CREST: m, rows of a mini-batch coreset = the global training batch in the CREST phase; defaults "
                "to per_device_train_batch_size * number of processes."})
    crest_drop_learned: bool = field(default=True, metadata={
        "help": "CREST: drop learned rows (loss < crest_alpha over crest_T2 steps) from the pool."})
    crest_min_pool_fraction: float = field(default=0.8, metadata={
        "help": "CREST: dropping learned rows never takes a class below this share of its rows (the official "
                "code keeps 80%% of CIFAR)."})
    crest_params: str = field(default="all", metadata={
        "help": "CREST: parameters of the quadratic loss model: 'all' trainable ones (paper, small networks) or "
                "the classifier 'head' (paper, large networks)."})

    _VALID_DICT_FIELDS = TrainingArguments._VALID_DICT_FIELDS + ["coreset_method_options"]

    def __post_init__(self):
        if isinstance(self.coreset_method_options, str):
            try:
                self.coreset_method_options = json.loads(self.coreset_method_options)
            except json.JSONDecodeError as err:
                raise ValueError(f"coreset_method_options={self.coreset_method_options!r} is not valid JSON ({err}); "
                                 "pass e.g. '{\"epoch\": 2}'.") from None
        if self.coreset_method_options is not None and not isinstance(self.coreset_method_options, dict):
            raise TypeError(f"coreset_method_options must be a dict or a JSON object string, not "
                            f"{type(self.coreset_method_options).__name__}.")
        super().__post_init__()
        if self.coreset_schedule not in SCHEDULES:
            raise ValueError(f"coreset_schedule={self.coreset_schedule!r}; pick one of {list(SCHEDULES)}.")
        if self.coreset_signals not in SIGNAL_SOURCES:
            raise ValueError(f"coreset_signals={self.coreset_signals!r}; pick one of {list(SIGNAL_SOURCES)}.")
        if self.crest_params not in CREST_PARAMS:
            raise ValueError(f"crest_params={self.crest_params!r}; pick one of {list(CREST_PARAMS)}.")
        check_fraction(self.coreset_fraction, name="coreset_fraction")
        check_bool(self.coreset_per_class, "coreset_per_class")
        check_fraction(self.crest_random_subset_fraction, name="crest_random_subset_fraction")
        check_fraction(self.crest_min_pool_fraction, name="crest_min_pool_fraction")
        _check_int(self.coreset_warmup_epochs, "coreset_warmup_epochs", 0)
        _check_int(self.crest_T2, "crest_T2", 1)
        if self.coreset_seed is not None:
            _check_int(self.coreset_seed, "coreset_seed", 0)
        repo = self.coreset_selection_repo
        if repo is not None and (not isinstance(repo, str) or not REPO_ID.fullmatch(repo) or ".." in repo
                                 or "--" in repo or repo.endswith(".git")):
            raise ValueError(f"coreset_selection_repo={repo!r} is not a Hub dataset repo id; pass 'user/name', "
                             "e.g. 'me/mnist1d-el2n-10pct' (letters, digits, '-', '_' and '.').")
        if self.crest_minibatch_size is not None:
            _check_int(self.crest_minibatch_size, "crest_minibatch_size", 1)
        for name in ("crest_tau", "crest_h", "crest_b", "crest_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}={value!r} must be a finite number >= 0.")
        if self.crest_b <= 0 or self.crest_h <= 0:
            raise ValueError(f"crest_b={self.crest_b} and crest_h={self.crest_h} must be > 0 (P and T1 must be >= 1).")
        if self.coreset_method is not None and self.coreset_schedule == "crest":
            raise ValueError(f"coreset_method={self.coreset_method!r} is for the static schedule; with "
                             "coreset_schedule='crest' leave coreset_method unset.")
        if self.coreset_method is not None:
            methods.get(self.coreset_method)  # raises listing the known methods
        if self.max_steps > 0:
            raise ValueError(f"max_steps={self.max_steps}: CoresetTrainer plans its steps from epochs (warm-up epochs "
                             "on the full data, then coreset epochs); set num_train_epochs and leave max_steps=-1.")
        if float(self.num_train_epochs) != int(self.num_train_epochs):
            raise ValueError(f"num_train_epochs={self.num_train_epochs} must be a whole number of epochs here.")
        if self.coreset_warmup_epochs >= int(self.num_train_epochs) and self.coreset_schedule == "static" \
                and self.coreset_method is not None:
            raise ValueError(f"coreset_warmup_epochs={self.coreset_warmup_epochs} leaves no epoch for the coreset "
                             f"(num_train_epochs={self.num_train_epochs}); lower it or raise num_train_epochs.")


def _check_int(value, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}.")


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
    """

    def __init__(self, num_rows: int, per_device: int, world: int, grad_accum: int, seed: int, warmup_epochs: int):
        super().__init__(seed, num_processes=world)
        self.num_rows, self.per_device, self.world = num_rows, per_device, world
        self.grad_accum, self.warmup_epochs = grad_accum, warmup_epochs
        self.coreset_rows: np.ndarray | None = None
        self.crest: Crest | None = None
        self.crest_steps = 0

    def global_steps(self, rows: int, batch: int) -> int:
        steps = math.ceil(rows / batch)
        return math.ceil(steps / self.grad_accum) * self.grad_accum

    def steps(self, epoch: int) -> int:
        """Global batches of `epoch`."""
        if epoch < self.warmup_epochs:
            return self.global_steps(self.num_rows, self.per_device * self.world)
        if self.crest_steps:
            return self.crest_steps
        return self.global_steps(len(self.coreset_rows), self.per_device * self.world)

    num_batches = steps

    def global_batches(self, epoch: int, g):
        steps = self.steps(epoch)
        if epoch >= self.warmup_epochs and self.crest is not None:
            for _ in range(steps):
                yield self.crest.draw(g)[0]
            return
        rows = np.arange(self.num_rows) if epoch < self.warmup_epochs else np.sort(self.coreset_rows)
        batch = self.per_device * self.world
        order = np.resize(rows[permutation(len(rows), g)], steps * batch)  # wraps around: every batch is full
        for s in range(steps):
            yield order[s * batch:(s + 1) * batch]


class _CoresetCallback(TrainerCallback):
    """Routes Trainer events to the CoresetTrainer (selection at epoch boundaries, CREST per step)."""

    def __init__(self, trainer: "CoresetTrainer"):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._on_train_begin()

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.trainer._epoch_step = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._on_step_end()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer._on_epoch_end()

    def on_train_end(self, args, state, control, **kwargs):
        self.trainer._on_train_end()


class CoresetTrainer(Trainer):
    """A `transformers.Trainer` that trains on a coreset: selected after a warm-up on the full data
    (static), given (``coreset_selection=``), or re-selected during training (CREST).

    Args:
        model (`PreTrainedModel` or `nn.Module`): a classifier; called as ``model(**inputs)`` with
            the dataset columns its forward names, returning logits (or an output with `logits`).
        args (`CoresetTrainingArguments`): training and coreset settings.
        data_collator, eval_dataset, processing_class, **kwargs: as for `transformers.Trainer`.
        train_dataset (`datasets.Dataset`): training rows with an integer label column.
        coreset_selection (`CoresetSelection` or `str`, *optional*): train a fresh model on this
            selection (or the folder it was saved to) instead of selecting; with
            ``coreset_warmup_epochs=0`` only its rows are ever seen.

    The loss is the (weighted) cross-entropy computed here from the logits, so the model's own
    loss is never used; labels come from the batch's "labels" key.

    Example:
        ```python
        >>> from hf_coreset import CoresetTrainer, CoresetTrainingArguments
        >>> args = CoresetTrainingArguments(output_dir="out", coreset_method="el2n", coreset_fraction=0.2,
        ...                                 coreset_warmup_epochs=1, num_train_epochs=5, report_to="none")
        >>> trainer = CoresetTrainer(model=model, args=args, train_dataset=ds)
        >>> trainer.train()
        >>> trainer.coreset_selection.indices[:5]
        ```
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean; Trainer divides by GA steps
    _tag_names = ["hf-coreset", "coreset"]

    def __init__(self, model=None, args: CoresetTrainingArguments | None = None, data_collator=None,
                 train_dataset=None, eval_dataset=None, processing_class=None, *,
                 coreset_selection: CoresetSelection | str | os.PathLike | None = None, **kwargs):
        if args is None:
            raise ValueError("CoresetTrainer needs args=CoresetTrainingArguments(output_dir=..., coreset_method=..., ...).")
        if not isinstance(args, CoresetTrainingArguments):
            raise TypeError(f"args must be a CoresetTrainingArguments, not {type(args).__name__}; build one with the "
                            "same settings plus coreset_method/coreset_fraction/coreset_warmup_epochs.")
        if model is None:
            raise ValueError("CoresetTrainer needs model=<your classifier> (model_init is not supported).")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}; wrap your function in an "
                            "nn.Module whose forward takes the input columns as keyword arguments.")
        if train_dataset is None:
            raise ValueError("CoresetTrainer needs train_dataset=<datasets.Dataset> to select from.")
        label_column = args.coreset_label_column
        if label_column is None:
            label_column = "labels" if "label" not in train_dataset.column_names and \
                "labels" in train_dataset.column_names else "label"
        self.coreset_labels, self.coreset_num_classes = check_dataset(train_dataset, label_column)
        self.coreset_label_column = label_column
        if ROW_KEY in train_dataset.column_names:
            raise ValueError(f"The training set already has a column {ROW_KEY!r}; rename it.")
        self.coreset_source = train_dataset
        indexed = train_dataset.add_column(ROW_KEY, np.arange(train_dataset.num_rows, dtype=np.int64))
        super().__init__(model=model, args=args, data_collator=data_collator, train_dataset=indexed,
                         eval_dataset=eval_dataset, processing_class=processing_class, **kwargs)
        self.model_accepts_loss_kwargs = False  # the model never sees labels or num_items_in_batch
        if not self.label_names:
            self.label_names = ["labels"]  # plain nn.Modules: let evaluation find the labels
        self.coreset_seed = args.seed if args.coreset_seed is None else args.coreset_seed
        self.coreset_selection = self._check_given_selection(coreset_selection)
        if self.coreset_selection is None and args.coreset_schedule == "static" and args.coreset_method is None:
            raise ValueError("Pass coreset_method=<name> in CoresetTrainingArguments (static schedule), "
                             "coreset_schedule='crest', or CoresetTrainer(coreset_selection=<CoresetSelection>).")
        self.coreset_events: list[dict] = []
        self.crest: Crest | None = None
        self._spec = methods.get(args.coreset_method) if args.coreset_method else None
        self._options = self._method_options()
        self._head_name = None
        self._epoch_step = 0
        self._row_weights = None
        self._collector: SignalCollector | None = None  # built when training starts (it needs the accelerator)
        self.add_callback(_CoresetCallback(self))

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """As `Trainer.train`, after `select`'s model checks (one eval-mode probe forward pass on two rows);
        resuming is refused (the warm-up signals and phase plan are not checkpointed)."""
        if resume_from_checkpoint not in (None, False):
            raise ValueError(f"resume_from_checkpoint={resume_from_checkpoint!r}: CoresetTrainer cannot resume yet (its "
                             "warm-up signals and coreset phase are not checkpointed). Train from the start, or train "
                             "a fresh model on the saved selection with coreset_selection=<output_dir>/_coreset_selection.")
        self._check_model()
        return super().train(None, *args, **kwargs)

    # ------------------------------------------------------------------ setup
    def _check_given_selection(self, selection):
        if selection is None:
            return None
        if isinstance(selection, (str, os.PathLike)):
            selection = CoresetSelection.load(selection)
        if not isinstance(selection, CoresetSelection):
            raise TypeError(f"coreset_selection must be a CoresetSelection or a folder it was saved to, not "
                            f"{type(selection).__name__}.")
        if self.args.coreset_schedule != "static" or self.args.coreset_method is not None:
            raise ValueError("coreset_selection= trains on a given selection: use coreset_schedule='static' and leave "
                             "coreset_method unset.")
        selection.check_source(self.coreset_source, check="content")
        return selection

    def _check_model(self) -> None:
        """`select`'s model checks (one probe forward pass) before any training step; resolves the head."""
        args = self.args
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ValueError(f"Every parameter of {type(self.model).__name__} is frozen (requires_grad=False), so "
                             "CoresetTrainer has nothing to train; unfreeze the layers it should train (e.g. "
                             "model.requires_grad_(True)).")
        needs = self._spec.needs(self._options) if self._spec is not None else {}
        wants_features = any("features" in fs for fs in needs.values()) or (
            args.coreset_schedule == "crest" and args.crest_params == "head")
        _, self._head_name = check_model(
            self.model, self.coreset_source, self.coreset_labels, self.coreset_num_classes,
            label_column=self.coreset_label_column, collate_fn=self.data_collator, head=args.coreset_head,
            wants_features=wants_features, trains=False, head_arg="coreset_head", collate_arg="data_collator")

    def _method_options(self) -> dict:
        if self._spec is None:
            return {}
        options = dict(self.args.coreset_method_options or {})
        for key in ("epoch", "epochs"):  # the warm-up is the proxy: score at its end unless told otherwise
            if key in self._spec.defaults and key not in options:
                options[key] = self.args.coreset_warmup_epochs
        options = self._spec.check_options(options)
        needs = self._spec.needs(options)
        if needs and max(needs) > self.args.coreset_warmup_epochs:
            raise ValueError(
                f"Method {self._spec.name!r} with options {options} needs signals at warm-up epochs {sorted(needs)}, "
                f"but coreset_warmup_epochs={self.args.coreset_warmup_epochs}; raise the warm-up or lower the "
                "method's epoch option(s).")
        return options

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if ROW_KEY not in self._signature_columns:
            self._signature_columns.append(ROW_KEY)  # the row index survives remove_unused_columns

    def _input_columns(self) -> list[str]:
        """The columns the model receives in training (Trainer's signature columns), for eval passes."""
        if self.args.remove_unused_columns:
            self._set_signature_columns_if_needed()
            skip = {ROW_KEY, self.coreset_label_column, "label", "labels", "label_ids", *self.label_names}
            names = [c for c in self.coreset_source.column_names if c in self._signature_columns and c not in skip]
            if names:
                return names
        return forward_input_names(self.model, self.coreset_source.column_names, self.coreset_label_column)

    # ------------------------------------------------------------------ data
    def get_train_dataloader(self):
        args = self.args
        n = self.coreset_source.num_rows
        world = args.world_size
        warmup = args.coreset_warmup_epochs
        sampler = CoresetBatchSampler(n, args.per_device_train_batch_size, world, args.gradient_accumulation_steps,
                                      self.coreset_seed, warmup)
        if args.coreset_schedule == "crest":
            m = args.crest_minibatch_size or args.per_device_train_batch_size * world
            r = max(1, math.floor(args.crest_random_subset_fraction * n + 0.5))
            if m < world:
                raise ValueError(f"crest_minibatch_size={m} is smaller than the {world} processes; raise it.")
            if r < m:
                raise ValueError(f"crest_random_subset_fraction={args.crest_random_subset_fraction} gives random "
                                 f"subsets of {r} rows, fewer than crest_minibatch_size={m}; raise the fraction to at "
                                 f"least {m / n:.4g} or lower the mini-batch size.")
            kept = make_budget(self.coreset_labels, fraction=args.coreset_fraction).total
            sampler.crest_steps = sampler.global_steps(kept, m)
            self._crest_size = (m, r)
            if m // world == 1:  # np.array_split gives some process a one-row share
                self._check_batch_rows(f"crest_minibatch_size={m} over {world} process(es)", 2 * world)
        elif self.coreset_selection is not None:
            sampler.coreset_rows = self.coreset_selection.indices
        else:
            self._budget = make_budget(self.coreset_labels, fraction=args.coreset_fraction,
                                       per_class=args.coreset_per_class,
                                       num_classes=declared_classes(self.coreset_source, self.coreset_label_column))
            sampler.coreset_rows = np.zeros(self._budget.total, dtype=np.int64)  # a placeholder of the right size
        if args.per_device_train_batch_size == 1:
            self._check_batch_rows("per_device_train_batch_size=1", 2)
        self._sampler = sampler
        self._plan = {"warmup_epochs": warmup, "epochs": int(args.num_train_epochs)}
        dataset = self._remove_unused_columns(self.train_dataset, description="training")
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, collate_fn=self.data_collator, num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory, persistent_workers=args.dataloader_persistent_workers)
        return self.accelerator.prepare(loader)

    def set_initial_training_values(self, args, dataloader):
        """The real plan: warm-up epochs of full-data steps, then coreset epochs of coreset steps."""
        s = self._sampler
        ga = args.gradient_accumulation_steps
        epochs = self._plan["epochs"]
        per_epoch = [s.steps(e) for e in range(epochs)]
        max_steps = sum(per_epoch) // ga
        longest = max(per_epoch)
        self._epoch_lengths = per_epoch
        total_batch = self.get_total_train_batch_size(args)
        return (epochs, longest // ga, self.coreset_source.num_rows, max_steps * total_batch, total_batch,
                longest, max_steps)

    def _check_batch_rows(self, setting: str, fix: int) -> None:
        # The sampler's batches are otherwise full (the last one wraps around), so only settings give one-row
        # batches, which BatchNorm cannot train on.
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
            raise ValueError(f"{setting} gives one-row training batches, which the BatchNorm layers of "
                             f"{type(self.model).__name__} cannot train on; raise it to at least {fix}.")

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Weighted cross-entropy from the logits; records warm-up signals by row as a side effect.

        Training: sum_i w_i * CE_i divided by this process's share of the global batch (the mean
        for full per-device batches); weights are 1 except on weighted coresets (mean 1 over the
        coreset). Evaluation: the plain mean.
        """
        inputs = dict(inputs)
        rows = inputs.pop(ROW_KEY, None)
        labels = None
        for key in ("labels", "label", "label_ids"):
            if key in inputs:
                labels = inputs.pop(key)
                break
        if labels is None:
            raise ValueError(f"No labels in the batch (keys: {sorted(inputs)}); the training set needs an integer "
                             "'label' or 'labels' column.")
        outputs = model(**inputs)
        logits = logits_of(outputs).float()
        per_example = nn.functional.cross_entropy(logits, labels, reduction="none")
        if model.training and rows is not None:
            weights = self._row_weights[rows.cpu()].to(per_example.device)
            loss = (weights * per_example).sum() / self._loss_norm
            if self._collector.recording is not None:
                self._collector.record(rows, logits, labels)
        else:
            loss = per_example.mean()
        if return_outputs:
            return loss, (outputs if isinstance(outputs, dict) else {"logits": logits})
        return loss

    # ------------------------------------------------------------------ phases
    def _on_train_begin(self) -> None:
        args = self.args
        n = self.coreset_source.num_rows
        self._row_weights = torch.ones(n)
        self._loss_norm = float(args.per_device_train_batch_size)
        self._completed = 0
        self._signals = Signals(labels=self.coreset_labels, num_classes=self.coreset_num_classes, head=self._head_name)
        self._collector = SignalCollector(
            self.coreset_source, self._input_columns(), self.coreset_labels, accelerator=self.accelerator,
            collate_fn=self.data_collator, batch_size=args.per_device_eval_batch_size, head=self._head_name,
            stage="warm-up epoch",
            diverged="training diverged (or those rows' inputs hold NaN/inf): lower learning_rate")
        self._timings = {"signals": 0.0}
        self._model_fp = model_fingerprint(self.model) if self._spec is not None else None
        self._mb_fields, self._eval_fields = {}, {}
        if self._spec is not None:
            for e, fields in self._spec.needs(self._options).items():
                cheap = fields & CHEAP_FIELDS if args.coreset_signals == "minibatch" and e >= 1 else frozenset()
                if cheap:
                    self._mb_fields[e] = cheap
                if fields - cheap:
                    self._eval_fields[e] = (fields - cheap) | CHEAP_FIELDS
        if 0 in self._eval_fields:
            self._collect_eval(0)
        self._start_recording(1)
        if self._plan["warmup_epochs"] == 0:
            self._enter_coreset_phase()

    def _start_recording(self, epoch: int) -> None:
        if self._mb_fields.get(epoch):
            self._collector.start_recording(epoch, self._mb_fields[epoch])

    def _on_step_end(self) -> None:
        self._epoch_step += 1
        length = self._epoch_lengths[min(self._completed, len(self._epoch_lengths) - 1)]
        self.state.epoch = self._completed + min(1.0, self._epoch_step * self.args.gradient_accumulation_steps / length)
        if self.crest is not None and self._completed >= self._plan["warmup_epochs"]:
            event = self.crest.after_step(self.model, self.state.global_step)
            if event is not None:
                self._apply_crest_weights()
                self._log_event(event)

    def _on_epoch_end(self) -> None:
        self._completed += 1
        self.state.epoch = float(self._completed)
        e = self._completed
        if self._collector.recording == e:
            self._merge(self._collector.stop_recording())
        self._start_recording(e + 1)
        if e in self._eval_fields:
            self._collect_eval(e)
        if e == self._plan["warmup_epochs"]:
            self._enter_coreset_phase()

    def _collect_eval(self, epoch: int) -> None:
        import time

        t0 = time.perf_counter()
        self._merge(self._collector.checkpoint(self.model, epoch, self._eval_fields[epoch]))
        self._timings["signals"] += time.perf_counter() - t0

    def _merge(self, ckpt: Checkpoint) -> None:
        """Add the fields of `ckpt` to the warm-up signals at its epoch (recorded fields come first)."""
        have = self._signals.checkpoints.setdefault(ckpt.epoch, Checkpoint(epoch=ckpt.epoch))
        for f in FIELDS:
            if getattr(have, f) is None and getattr(ckpt, f) is not None:
                setattr(have, f, getattr(ckpt, f))

    def _enter_coreset_phase(self) -> None:
        args = self.args
        if args.coreset_schedule == "crest":
            self._start_crest()
            return
        if self.coreset_selection is None:
            self.coreset_selection = self._select()
        sel = self.coreset_selection
        self._sampler.coreset_rows = sel.indices
        if sel.weights is not None:
            self._row_weights[torch.as_tensor(sel.indices)] = torch.as_tensor(sel.weights / sel.weights.mean(),
                                                                                dtype=torch.float32)
        self._save_selection(sel)
        self.log({"coreset_rows": float(len(sel)), "coreset_weighted": float(sel.weights is not None)})

    def _select(self) -> CoresetSelection:
        args = self.args
        proxy_key = {"trainer": "CoresetTrainer", "optim": str(args.optim), "learning_rate": args.learning_rate,
                     "warmup_epochs": args.coreset_warmup_epochs, "signals": args.coreset_signals,
                     "epochs": sorted(self._spec.needs(self._options))}
        return build_selection(
            self.coreset_source, self._spec, self._signals, self._budget, options=self._options, seed=self.coreset_seed,
            fraction=args.coreset_fraction, size=None, per_class=args.coreset_per_class,
            label_column=self.coreset_label_column, timings=self._timings,
            proxy_key=proxy_key if self._spec.needs(self._options) else None, model=self.model, model_fp=self._model_fp,
            head=self._signals.head, fingerprint_key=proxy_key)

    def _save_selection(self, sel: CoresetSelection) -> None:
        if not self.is_world_process_zero():
            return
        if self.args.output_dir:
            sel.save(Path(self.args.output_dir) / SELECTION_DIR)
        if self.args.coreset_cache_dir and sel.fingerprint:
            sel.save(Path(self.args.coreset_cache_dir) / "selections" / sel.fingerprint)

    # ------------------------------------------------------------------ CREST
    def _start_crest(self) -> None:
        args = self.args
        m, r = self._crest_size
        cfg = CrestConfig(tau=args.crest_tau, h=args.crest_h, b=args.crest_b, T2=args.crest_T2, alpha=args.crest_alpha,
                          random_subset_size=r, minibatch_size=m, drop_learned=args.crest_drop_learned,
                          min_pool_fraction=args.crest_min_pool_fraction,
                          params=args.crest_params)
        self.crest = Crest(cfg, self.coreset_labels, self.coreset_seed, self._collector)
        self._sampler.crest = self.crest
        event = self.crest.select(self.model, self.state.global_step)
        self._loss_norm = self.crest.coreset_size / self.args.world_size
        self._apply_crest_weights()
        self._log_event(event)

    def _apply_crest_weights(self) -> None:
        # Rows of earlier coresets keep their weights: a batch drawn (prefetched) before a re-selection
        # still trains with the weights it was selected with.
        for rows, weights in self.crest.coresets:
            self._row_weights[torch.as_tensor(rows)] = torch.as_tensor(weights, dtype=torch.float32)

    def _log_event(self, event) -> None:
        record = asdict(event)
        self.coreset_events.append(record)
        logs = {f"crest_{k}": float(v) for k, v in record.items() if v is not None and k != "step"}
        self.log(logs)

    def _on_train_end(self) -> None:
        if self.crest is None:
            return
        # CREST has no single subset: the last mini-batch coresets stand for it (card, push, provenance).
        self.coreset_selection = self._crest_selection()
        if self.is_world_process_zero() and self.args.output_dir:
            out = Path(self.args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / EVENTS_FILE).write_text(json.dumps(self.coreset_events, indent=2))
            self._save_selection(self.coreset_selection)

    def _crest_selection(self) -> CoresetSelection:
        """The final mini-batch coresets as a CoresetSelection (for provenance; CREST has no single subset)."""
        from .version import __version__
        from .fingerprint import dataset_fingerprint, hash_parts, label_hash

        rows = np.concatenate([r for r, _ in self.crest.coresets])
        weights = np.concatenate([w for _, w in self.crest.coresets])
        n = self.coreset_source.num_rows
        config = {"schedule": "crest", **asdict(self.crest.config), "fraction": self.args.coreset_fraction,
                  "warmup_epochs": self.args.coreset_warmup_epochs, "events": len(self.coreset_events)}
        src = dataset_fingerprint(self.coreset_source)
        return CoresetSelection(indices=rows, scores=np.full(n, np.nan), weights=weights, method="crest", num_rows=n,
                                config=config, seed=self.coreset_seed, source_fingerprint=src,
                                label_column=self.coreset_label_column,
                                label_hash=label_hash(self.coreset_source, self.coreset_label_column),
                                fingerprint=hash_parts(src, "hf_coreset.crest", config, self.coreset_seed,
                                                       self.state.global_step),
                                library_version=__version__)

    # ------------------------------------------------------------------ card
    def create_model_card(self, *args, **kwargs) -> None:
        """Trainer's model card plus a "Coreset training" section (model_cards/model_card_section.md).

        The card's YAML carries the tags ``hf-coreset`` and ``coreset`` (also added to a transformers model
        with ``model.add_model_tags``, so its own ``push_to_hub`` keeps them), ``datasets:`` (the source when
        it has a Hub name, and ``coreset_selection_repo``) and a ``coreset:`` mapping (method, schedule,
        fraction, rows kept, seed, selection fingerprint and repo). The training set is named by its
        ``info.dataset_name`` or builder, or not at all: never "None", never a local path.
        """
        if not self.is_world_process_zero() or not self.args.output_dir:
            return
        from huggingface_hub import ModelCard, ModelCardData

        from .cards import render_model_card_section

        path = Path(self.args.output_dir) / "README.md"
        if hasattr(self.model, "add_model_tags"):  # transformers' PreTrainedModel
            self.model.add_model_tags(self._tag_names)
        tags = kwargs.pop("tags", None)
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        tags += [t for t in [*(getattr(self.model, "model_tags", None) or []), *self._tag_names] if t not in tags]
        name = _dataset_name(self.coreset_source)
        if hasattr(self.model, "config"):
            # Trainer names the data by its builder, which is None for an in-memory Dataset ("the None dataset").
            kwargs.setdefault("dataset_tags", [name] if name else [])
            kwargs.setdefault("dataset_args", [None] if name else [])
            kwargs.setdefault("dataset", [name] if name else [])
            super().create_model_card(*args, tags=tags, **kwargs)
            card = ModelCard.load(path)
            card.text = card.text.replace(" on an unknown dataset.", ".")
        else:  # Trainer's summary reads model.config; a plain nn.Module gets a title only
            title = kwargs.get("model_name") or Path(self.args.output_dir).name
            card = ModelCard(f"---\n{ModelCardData(tags=tags).to_yaml()}\n---\n\n# {title}\n\nA "
                             f"`{type(self.model).__name__}` trained with hf-coreset"
                             f"{f' on {name}' if name else ''}.\n")
        info = model_card_info(self)
        repo = info["selection_repo"]
        datasets = list(card.data.datasets or [])
        datasets += [d for d in ([name] if name and "/" in name else []) + ([repo] if repo else []) if d not in datasets]
        card.data.datasets = datasets or None
        card.data.coreset = {k: v for k, v in {
            "method": info["method"], "schedule": info["schedule"], "fraction": info["fraction"],
            "warmup_epochs": info["warmup_epochs"], "num_kept": info["kept"], "num_rows": info["num_rows"],
            "weighted": info["weighted"], "seed": info["seed"], "selection_fingerprint": info["fingerprint"],
            "selection_repo": repo}.items() if v is not None}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(card).rstrip() + "\n\n" + render_model_card_section(info), encoding="utf-8")

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None, **kwargs):
        """`Trainer.push_to_hub`, after pushing the selection to its own dataset repo.

        With ``coreset_selection_repo`` set, the selection (kept rows, indices, scores, dataset card; see
        `CoresetSelection.push_to_hub`) goes to that dataset repo first, and the model card links it. The
        model repo never gets the selection's files: they live in ``output_dir/_coreset_selection``, which
        Trainer's upload skips.
        """
        repo = self.args.coreset_selection_repo
        if repo and self.coreset_selection is not None and self.is_world_process_zero():
            self.coreset_selection.push_to_hub(
                repo, dataset=self.coreset_source, token=token if token is not None else self.args.hub_token,
                private=self.args.hub_private_repo if private is None else private, check="content",
                commit_message=f"hf-coreset: the coreset {self.hub_model_id or 'a model'} was trained on")
        return super().push_to_hub(commit_message=commit_message, blocking=blocking, token=token, revision=revision,
                                   private=private, **kwargs)


def _dataset_name(dataset) -> str | None:
    """The training set's name for the card: ``info.dataset_name``, else its builder unless that is a generic
    file loader ("csv", "parquet", ...); None for an in-memory or local dataset."""
    from .hub import _is_local_path

    name = getattr(dataset.info, "dataset_name", None) or getattr(dataset, "builder_name", None)
    if not name or name in ("csv", "json", "pandas", "parquet", "text", "arrow", "generator", "imagefolder",
                            "audiofolder", "webdataset", "sql") or _is_local_path(name):
        return None
    return name


def model_card_info(trainer: CoresetTrainer) -> dict:
    """What the model card's "Coreset training" section shows about the coreset a trainer used
    (rendered by :func:`hf_coreset.cards.render_model_card_section`)."""
    from huggingface_hub import constants

    from .version import __version__

    args = trainer.args
    sel = trainer.coreset_selection
    repo = args.coreset_selection_repo
    schedule = args.coreset_schedule
    if schedule == "crest":
        method = "crest"
    elif sel is not None:
        method = sel.method
    else:
        method = args.coreset_method
    return {
        "method": method, "schedule": schedule, "fraction": args.coreset_fraction,
        "warmup_epochs": trainer._plan["warmup_epochs"] if hasattr(trainer, "_plan") else args.coreset_warmup_epochs,
        "epochs": int(args.num_train_epochs), "seed": trainer.coreset_seed,
        "kept": len(sel) if sel is not None and schedule == "static" else None,
        "num_rows": trainer.coreset_source.num_rows, "weighted": sel is not None and sel.weights is not None,
        "options": trainer._options, "fingerprint": sel.fingerprint if sel is not None else None,
        "selection_repo": repo, "selection_url": f"{constants.ENDPOINT}/datasets/{repo}" if repo else None,
        "events": trainer.coreset_events, "crest": asdict(trainer.crest.config) if trainer.crest else None,
        "selection_dir": SELECTION_DIR, "version": __version__,
    }
