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

Random schedule (``coreset_schedule="random"``)
    After the warm-up, every epoch trains on a fresh uniform draw of ``coreset_fraction`` of the rows
    (CREST's random baseline: the same number of steps as a coreset, no selection).

CREST schedule (``coreset_schedule="crest"``)
    After the warm-up, every step trains on a mini-batch coreset; see `hf_coreset.training.crest`.
    Checks and re-selections run after optimizer steps (on every process, identically); because the
    data loader prefetches one batch, a re-selection at step t takes effect from step t + 2, and
    that prefetched batch keeps the weights it was selected with.

How the changing dataset fits Trainer's loop (which sizes epochs once, before training): the phase
plan (`hf_coreset.training.plan`) fixes what every epoch does when the trainer is built, and the
sampler yields a fixed number of global batches per phase (a multiple of the gradient-accumulation
steps; the last batch wraps around the shuffled rows so every per-device batch is full).
`set_initial_training_values` returns the real step count, warm-up steps + coreset steps, so the LR
schedule spans exactly the steps taken, and ``state.epoch`` is corrected after every step. All ranks
draw the same order, from the library's one seed rule (`hf_coreset.signals.generator(seed, epoch)`,
the proxy's: warm-up epoch e visits the rows in proxy epoch e + 1's order); accelerate hands each
rank its share. The loss is the weighted sum of per-example cross-entropies divided by the
per-device share of the global batch, so 1 and N processes take the same steps. Resuming from a
checkpoint is not supported (the warm-up signals are not saved).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback

from ..api import build_selection, check_dataset, declared_classes
from ..fingerprint import model_fingerprint
from ..selection import CoresetSelection
from ..signals import (FIELDS, ROW_KEY, Checkpoint, SignalCollector, Signals, check_model, forward_input_names,
                       logits_of)
from .arguments import EVENTS_FILE, SELECTION_DIR, CoresetTrainingArguments, coreset_arguments
from .card import model_card_info
from .crest import Crest
from .plan import CoresetBatchSampler, make_plan

logger = logging.getLogger(__name__)


class CoresetTrainer(Trainer, TrainerCallback):
    """A `transformers.Trainer` that trains on a coreset: selected after a warm-up on the full data
    (static), given (``coreset_selection=``), or re-selected during training (CREST).

    Args:
        model (`PreTrainedModel` or `nn.Module`): a classifier; called as ``model(**inputs)`` with
            the dataset columns its forward names, returning logits (or an output with `logits`).
        args (`CoresetTrainingArguments`, `TrainingArguments` or None): training and coreset settings. As
            in TRL, None means the defaults with ``output_dir="<model name>-coreset"``, and a plain
            `TrainingArguments` keeps its settings with the coreset settings' defaults; no default names
            a method, so both then need ``coreset_selection=`` (or fail, saying which settings to set).
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

    The trainer is its own callback (Trainer reports epoch and step ends to callbacks only): its
    ``on_*`` methods run the phases.
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean; Trainer divides by GA steps
    _tag_names = ["hf-coreset", "coreset"]

    def __init__(self, model=None, args: CoresetTrainingArguments | None = None, data_collator=None,
                 train_dataset=None, eval_dataset=None, processing_class=None, *,
                 coreset_selection: CoresetSelection | str | os.PathLike | None = None, **kwargs):
        if model is None:
            raise ValueError("CoresetTrainer needs model=<your classifier> (model_init is not supported).")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}; wrap your function in an "
                            "nn.Module whose forward takes the input columns as keyword arguments.")
        args = coreset_arguments(args, model)
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
            raise ValueError("CoresetTrainer has no coreset to train on: set coreset_method=<name> in "
                             "CoresetTrainingArguments (see `hf-coreset methods`; args=None and a plain "
                             "TrainingArguments name none), or coreset_schedule='crest', or pass "
                             "coreset_selection=<CoresetSelection or its folder>.")
        self._spec, self._options = args.coreset_method_and_options()
        self.plan = make_plan(args, self.coreset_labels, spec=self._spec, options=self._options,
                              selection=self.coreset_selection,
                              declared_classes=declared_classes(train_dataset, label_column))
        n = train_dataset.num_rows
        self._sampler = CoresetBatchSampler.for_plan(self.plan, n, args.per_device_train_batch_size, args.world_size,
                                                     args.gradient_accumulation_steps, self.coreset_seed)
        self._collector = SignalCollector(
            train_dataset, self._input_columns(), self.coreset_labels, accelerator=self.accelerator,
            collate_fn=self.data_collator, batch_size=args.per_device_eval_batch_size, stage="warm-up epoch",
            diverged="training diverged (or those rows' inputs hold NaN/inf): lower learning_rate")
        self.coreset_events: list[dict] = []
        self.crest: Crest | None = None
        # Per run (reset when training begins): the warm-up signals, the loss weights of the rows, the epoch
        # clock, what the selection records about the model as given.
        self._signals = Signals(labels=self.coreset_labels, num_classes=self.coreset_num_classes)
        self._row_weights = torch.ones(n)
        self._loss_norm = float(args.per_device_train_batch_size)
        self._completed = 0  # epochs completed
        self._epoch_step = 0  # optimizer steps into the current epoch
        self._timings = {"signals": 0.0}
        self._model_fp: str | None = None
        self._step_start: float | None = None
        self.add_callback(self)

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
        _, head = check_model(
            self.model, self.coreset_source, self.coreset_labels, self.coreset_num_classes,
            label_column=self.coreset_label_column, collate_fn=self.data_collator, head=args.coreset_head,
            wants_features=wants_features, trains=False, head_arg="coreset_head", collate_arg="data_collator")
        self._collector.head = head
        if self.plan.one_row is not None and any(
                isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
            setting, fix = self.plan.one_row
            raise ValueError(f"{setting} gives one-row training batches, which the BatchNorm layers of "
                             f"{type(self.model).__name__} cannot train on; raise it to at least {fix}.")

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

    # ------------------------------------------------------------------ data and steps
    def get_train_dataloader(self):
        args = self.args
        dataset = self._remove_unused_columns(self.train_dataset, description="training")
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=self._sampler, collate_fn=self.data_collator,
            num_workers=args.dataloader_num_workers, pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers)
        return self.accelerator.prepare(loader)

    def set_initial_training_values(self, args, dataloader):
        """The real plan: warm-up epochs of full-data steps, then coreset epochs of coreset steps."""
        ga = args.gradient_accumulation_steps
        per_epoch = [self._sampler.steps(e) for e in range(self.plan.epochs)]
        max_steps = sum(per_epoch) // ga
        longest = max(per_epoch)
        total_batch = self.get_total_train_batch_size(args)
        return (self.plan.epochs, longest // ga, self.coreset_source.num_rows, max_steps * total_batch, total_batch,
                longest, max_steps)

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

    # ------------------------------------------------------------------ phases (Trainer callback events)
    def on_train_begin(self, args, state, control, **kwargs):
        n = self.coreset_source.num_rows
        self._row_weights = torch.ones(n)
        self._loss_norm = float(args.per_device_train_batch_size)
        self._completed = 0
        self._signals = Signals(labels=self.coreset_labels, num_classes=self.coreset_num_classes,
                                head=self._collector.head)
        self._timings = {"signals": 0.0}
        self._model_fp = model_fingerprint(self.model) if self._spec is not None else None
        if 0 in self.plan.evaluated:
            self._collect_eval(0)
        self._start_recording(1)
        if self.plan.warmup_epochs == 0:
            self._enter_coreset_phase()

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._epoch_step = 0

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.crest is not None and self._step_start is not None:
            # CREST's overhead is reported as a share of this (forward, backward, optimizer step; no data loading).
            self.crest.timings["train_step"] += time.perf_counter() - self._step_start
        self._step_start = None
        self._epoch_step += 1
        length = self._sampler.steps(min(self._completed, self.plan.epochs - 1))
        state.epoch = self._completed + min(1.0, self._epoch_step * args.gradient_accumulation_steps / length)
        if self.crest is not None and self._completed >= self.plan.warmup_epochs:
            event = self.crest.after_step(self.model, state.global_step)
            if event is not None:
                self._apply_crest_weights()
                self._log_event(event)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._completed += 1
        state.epoch = float(self._completed)
        e = self._completed
        if self._collector.recording == e:
            self._merge(self._collector.stop_recording())
        self._start_recording(e + 1)
        if e in self.plan.evaluated:
            self._collect_eval(e)
        if e == self.plan.warmup_epochs:
            self._enter_coreset_phase()

    def on_train_end(self, args, state, control, **kwargs):
        if self.crest is None:
            return
        # CREST has no single subset: the last mini-batch coresets stand for it (card, push, provenance).
        self.coreset_selection = self._crest_selection()
        if self.is_world_process_zero() and self.args.output_dir:
            out = Path(self.args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / EVENTS_FILE).write_text(json.dumps(self.coreset_events, indent=2))
            self._save_selection(self.coreset_selection)

    # ------------------------------------------------------------------ warm-up signals
    def _start_recording(self, epoch: int) -> None:
        if self.plan.recorded.get(epoch):
            self._collector.start_recording(epoch, self.plan.recorded[epoch])

    def _collect_eval(self, epoch: int) -> None:
        t0 = time.perf_counter()
        self._merge(self._collector.checkpoint(self.model, epoch, self.plan.evaluated[epoch]))
        self._timings["signals"] += time.perf_counter() - t0

    def _merge(self, ckpt: Checkpoint) -> None:
        """Add the fields of `ckpt` to the warm-up signals at its epoch (recorded fields come first)."""
        have = self._signals.checkpoints.setdefault(ckpt.epoch, Checkpoint(epoch=ckpt.epoch))
        for f in FIELDS:
            if getattr(have, f) is None and getattr(ckpt, f) is not None:
                setattr(have, f, getattr(ckpt, f))

    # ------------------------------------------------------------------ static coreset
    def _enter_coreset_phase(self) -> None:
        args = self.args
        if args.coreset_schedule == "crest":
            self._start_crest()
            return
        if args.coreset_schedule == "random":
            self.log({"coreset_rows": float(self.plan.coreset_size), "coreset_weighted": 0.0})
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
            self.coreset_source, self._spec, self._signals, self.plan.budget, options=self._options,
            seed=self.coreset_seed, fraction=args.coreset_fraction, size=None, per_class=args.coreset_per_class,
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
        m, r = self.plan.crest_sizes
        self._collector.cache_rows()  # CREST's checks and selections read rows at every step: keep them as tensors
        self.crest = Crest(self.args.crest_config(minibatch_size=m, random_subset_size=r), self.coreset_labels,
                           self.coreset_seed, self._collector)
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

    def _crest_selection(self) -> CoresetSelection:
        """The final mini-batch coresets as a CoresetSelection (for provenance; CREST has no single subset)."""
        from ..version import __version__
        from ..fingerprint import dataset_fingerprint, hash_parts, label_hash

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

        from ..cards import render_model_card_section

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
    from ..hub import _is_local_path

    name = getattr(dataset.info, "dataset_name", None) or getattr(dataset, "builder_name", None)
    if not name or name in ("csv", "json", "pandas", "parquet", "text", "arrow", "generator", "imagefolder",
                            "audiofolder", "webdataset", "sql") or _is_local_path(name):
        return None
    return name
