"""`select` and `Dataset.select_coreset`: the one flow from a dataset to a CoresetSelection."""

from __future__ import annotations

import inspect
import logging
import numbers
import os
import time
from contextlib import nullcontext

import numpy as np

from . import auto_validation, methods
from .budget import check_bool, make_budget
from .fingerprint import column_values, dataset_fingerprint, hash_parts, label_hash, model_fingerprint
from .hub import HUB_ID
from .proxy import ProxyConfig, run_proxy
from .selection import CoresetSelection
from .signals import Signals
from .version import __version__

logger = logging.getLogger(__name__)


def check_dataset(dataset, label_column: str) -> tuple[np.ndarray, int]:
    """Validate the dataset and its label column; return (labels as int64, number of classes).

    The number of classes is the logit width the labels need: the ClassLabel's declared count, else
    the largest label id + 1. Budgets do not use it (see `declared_classes`): a stray id of 10**7
    costs a per-class entry only for the classes present.
    """
    import datasets

    if isinstance(dataset, (datasets.IterableDataset, datasets.IterableDatasetDict)):
        raise TypeError("An IterableDataset is not supported yet: selection needs random access to every row. "
                        "Load the data as a datasets.Dataset (streaming=False) or materialise it with "
                        "Dataset.from_generator.")
    if isinstance(dataset, datasets.DatasetDict):
        raise TypeError(f"Got a DatasetDict with splits {list(dataset)}; pass one split, e.g. ds['train'].")
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset, not {type(dataset).__name__}.")
    if dataset.num_rows == 0:
        raise ValueError("The dataset is empty: there is nothing to select from.")
    if label_column not in dataset.column_names:
        raise ValueError(f"label_column={label_column!r} is not a column of the dataset; its columns are "
                         f"{dataset.column_names}. Pass label_column='<name of the class id column>'.")
    labels = np.asarray(column_values(dataset, label_column))
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.floating) and np.isnan(labels).any():
        raise ValueError(f"Column {label_column!r} has {int(np.isnan(labels).sum())} missing labels (None); "
                         f"drop those rows first, e.g. ds.filter(lambda r: r[{label_column!r}] is not None).")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Column {label_column!r} must hold one integer class id per row (got dtype {labels.dtype}, "
                         f"shape {labels.shape}); encode labels first, e.g. ds.class_encode_column({label_column!r}).")
    if labels.min() < 0:
        raise ValueError(f"Column {label_column!r} has negative class ids (min {labels.min()}); class ids must be >= 0.")
    feature = dataset.features[label_column]
    num_classes = getattr(feature, "num_classes", None) or int(labels.max()) + 1
    return labels.astype(np.int64), int(num_classes)


def declared_classes(dataset, label_column: str) -> int | None:
    """The class count a ClassLabel column declares (absent classes then get a zero budget), else None."""
    return getattr(dataset.features[label_column], "num_classes", None)


MAX_SEED = 2**32 - 1


def hub_model_id(model) -> str | None:
    """The Hub id a transformers model was loaded from (``config._name_or_path``), or None when it was
    loaded from a local folder (an existing folder, or anything not shaped like ``name`` or ``user/name``):
    a selection and its cards name a model by Hub id or class, never by a path on the user's machine."""
    name = getattr(getattr(model, "config", None), "_name_or_path", None)
    if not isinstance(name, str) or not HUB_ID.fullmatch(name) or ".." in name or os.path.isdir(name):
        return None
    return name


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer, not {type(seed).__name__} {seed!r}.")
    if seed < 0:
        raise ValueError(f"seed == {seed}; pass a non-negative integer, e.g. seed=0.")
    if seed > MAX_SEED:  # torch generators take < 2**64, and the proxy's shuffles combine the seed with the epoch
        raise ValueError(f"seed == {seed} is too large; pass an integer in [0, 2**32 - 1].")
    return int(seed)


def select(dataset, method: str, *, fraction: float | None = None, size: int | None = None, model=None,
           label_column: str = "label", seed: int = 0, per_class: bool = True, proxy=None, collate_fn=None,
           head: str | None = None, cache_dir=None, accelerator=None, progress: bool = True,
           **options) -> CoresetSelection:
    """Select a coreset of `dataset` with `method`.

    Args:
        dataset (`datasets.Dataset`): the rows to choose from.
        method (`str`): a registered method (`hf_coreset.methods.available()`).
        fraction (`float`, *optional*): kept share of the rows, in (0, 1]. Or give `size`.
        size (`int`, *optional*): kept number of rows.
        model (`torch.nn.Module`, *optional*): your classifier; required by every method but
            "random". It is not modified: a copy trains as the proxy. A float64 or bfloat16 model
            gets floating inputs cast to its dtype; signals are computed in float32.
        label_column (`str`, *optional*, defaults to `"label"`): integer class ids.
        seed (`int`, *optional*, defaults to `0`): seeds proxy training and any random choice; in [0, 2**32 - 1].
        per_class (`bool`, *optional*, defaults to `True`): proportional per-class budgets
            (see `hf_coreset.budget`); False lets the method pick globally.
        proxy (`ProxyConfig`, `dict` or `str`, *optional*): how the proxy trains. Unset: the
            fine-tuning recipe (`ProxyConfig.finetune()`: AdamW, lr 5e-5, 50 warm-up steps, 2 epochs)
            for a `transformers.PreTrainedModel`, else `ProxyConfig()` (AdamW, lr 1e-3, 10 epochs);
            "finetune" / "scratch" name a recipe; a dict overrides settings of the one picked.
            A method's `epoch` option left unset reads the proxy's last epoch (`ProxyConfig.epochs`),
            or, with the fine-tuning recipe, epoch 0 (the model as given, no training) when the method
            reads features only (`ProxyConfig.features_epoch`).
        collate_fn (`Callable`, *optional*): collator for model inputs (default: transformers'
            `default_data_collator`); e.g. `DataCollatorWithPadding(tokenizer)`.
        head (`str`, *optional*): name of the final `nn.Linear`; found automatically if omitted (the
            layer whose output is the logits; refused as ambiguous when that is not unique).
            `config["head"]` records the one used.
        cache_dir (`str`, *optional*): signal cache (`False` turns it off).
        accelerator (`accelerate.Accelerator`, *optional*): defaults to a new one.
        progress (`bool`, *optional*, defaults to `True`): progress bars.
        **options: the method's own options (see `hf-coreset methods`).

    Returns:
        `CoresetSelection`

    Example:
        ```python
        >>> import hf_coreset
        >>> from hf_coreset.data.mnist1d import load_mnist1d, make_convnet
        >>> ds = load_mnist1d(num_samples=2000)["train"]  # 1,600 rows, columns "x" and "label"
        >>> sel = hf_coreset.select(ds, "el2n", fraction=0.1, model=make_convnet(0), epoch=2,
        ...                         proxy={"optimizer": "adam", "lr": 1e-2}, progress=False)
        >>> len(sel), sel.config["budget_per_class"][:3]
        (160, [16, 17, 16])
        >>> sel.apply(ds).num_rows  # the kept rows as a datasets.Dataset
        160
        ```

    Note:
        Under `accelerate launch`, every process must call it; all return the same selection.
    """
    spec = methods.get(method)
    proxy_cfg = ProxyConfig.coerce(proxy, model)
    options = spec.check_options(options, last_epoch=proxy_cfg.last_epoch(spec, options))  # an unset epoch
    if spec.name == "auto" and options["validate"] is None:
        options["validate"] = True  # here the data and the model are at hand: auto chooses on them
    seed = _check_seed(seed)
    per_class = check_bool(per_class, "per_class")
    labels, num_classes = check_dataset(dataset, label_column)
    budget = make_budget(labels, fraction=fraction, size=size, per_class=per_class,
                         num_classes=declared_classes(dataset, label_column))
    needs = spec.needs(options)
    timings = {}
    if needs:
        if model is None:
            raise ValueError(f"Method {method!r} needs a model to score rows; pass model=<your classifier> "
                             f"(or use method='random').")
        check_tokenized(model, dataset, label_column)
        warn_fresh_weights(model)
        signals, timings = run_proxy(model, dataset, labels, num_classes, needs, config=proxy_cfg, seed=seed,
                                     label_column=label_column, collate_fn=collate_fn, head=head,
                                     cache_dir=cache_dir, accelerator=accelerator, progress=progress)
    else:
        signals = Signals(labels=labels, num_classes=num_classes)
    model_fp = model_fingerprint(model) if needs else None
    proxy_key = proxy_cfg.record(needs) if needs else None
    validating = auto_validation.context(auto_validation.Context(
        dataset=dataset, model=model, proxy=proxy_cfg, seed=seed, label_column=label_column, collate_fn=collate_fn,
        head=head, accelerator=accelerator, progress=progress, timings=timings)) if needs else nullcontext()
    with validating:
        return build_selection(dataset, spec, signals, budget, options=options, seed=seed, fraction=fraction,
                               size=size, per_class=per_class, label_column=label_column, timings=timings,
                               proxy_key=proxy_key, model=model if needs else None, model_fp=model_fp,
                               head=signals.head, fingerprint_key=proxy_cfg.training_key() if needs else None)


def check_tokenized(model, dataset, label_column: str) -> None:
    """Refuse raw text for a model that reads token ids, before any training: say how to tokenize."""
    import datasets

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return
    if "input_ids" not in params or {"input_ids", "inputs_embeds"} & set(dataset.column_names):
        return
    text = [name for name, f in dataset.features.items() if name != label_column
            and isinstance(f, datasets.Value) and f.dtype in ("string", "large_string")]
    if text:
        raise ValueError(f"{type(model).__name__} reads input_ids, but the dataset has only the text column(s) {text}: "
                         f"tokenize first: ds.map(lambda b: tokenizer(b[{text[0]!r}], truncation=True), batched=True), "
                         f"and pass collate_fn=DataCollatorWithPadding(tokenizer).")


_warned_fresh = False


def warn_fresh_weights(model) -> None:
    """Warn (once per process) when `from_pretrained` gave `model` freshly initialised weights (e.g. a new
    classification head) and torch's global generator was never seeded: those weights come from an
    unseeded random state, so two runs score rows with different models.

    Detection: transformers 5 marks every tensor it loaded with ``_is_hf_initialized``; a model with some
    marked and some unmarked parameters has fresh ones. Seeding is read from ``torch.initial_seed()``:
    unseeded, it is a random 64-bit number; ``set_seed(s)`` makes it ``s`` (seeds below 2**32 are seen).
    Older transformers do not mark loaded tensors, and then nothing is said.
    """
    global _warned_fresh
    import torch

    if _warned_fresh or torch.initial_seed() <= MAX_SEED:
        return
    params = list(model.named_parameters())
    loaded = [getattr(p, "_is_hf_initialized", False) is True for _, p in params]
    if not any(loaded) or all(loaded):
        return
    fresh = [name for (name, _), was in zip(params, loaded) if not was]
    _warned_fresh = True
    logger.warning("%s has %d freshly initialised parameter(s) (%s) drawn from an unseeded random state, so the "
                   "selection differs from run to run; call transformers.set_seed(0) before from_pretrained to make it "
                   "reproducible (select's seed does not cover the model's initialisation).", type(model).__name__,
                   len(fresh), ", ".join(fresh[:4]) + (", ..." if len(fresh) > 4 else ""))


def build_selection(dataset, spec, signals: Signals, budget, *, options: dict, seed: int, fraction, size, per_class: bool,
                    label_column: str, timings: dict, proxy_key: dict | None = None, model=None,
                    model_fp: str | None = None, head: str | None = None, fingerprint_key=None) -> CoresetSelection:
    """Run `spec` on collected `signals` and wrap its output with provenance as a `CoresetSelection`.

    The shared last step of :func:`select` and of `CoresetTrainer` (whose warm-up is the proxy).

    Args:
        dataset (`datasets.Dataset`): the source rows (for its fingerprint and label hash).
        spec (`MethodSpec`): the method, from `hf_coreset.methods.get`.
        signals (`Signals`): what `spec.needs(options)` asked for.
        budget (`Budget`): from `hf_coreset.make_budget`.
        options (`dict`): the method's checked options.
        proxy_key (`dict`, *optional*): how the signals were produced (stored as `config["proxy"]`).
        model, model_fp, head: the scored model (as given, before training), its fingerprint, its head name.
        fingerprint_key: what else identifies the training that produced the signals.

    Returns:
        `CoresetSelection`
    """
    t0 = time.perf_counter()
    out = methods.run(spec, signals, budget, seed=seed, **options)  # split across processes where it can be
    timings["scoring"] = time.perf_counter() - t0
    scores = np.full(signals.num_rows, np.nan) if out.scores is None else out.scores
    config = {"method_options": options, "fraction": fraction, "size": size, "per_class": per_class,
              "budget_total": budget.total, "budget_per_class": budget.per_class.tolist(),
              "budget_classes": budget.classes.tolist(), "method_version": spec.version,
              "label_column": label_column, **out.info}
    # Rows and kept rows per budget class, so that a selection can be plotted without its dataset. Counted by
    # np.unique, not bincount: a label id of 10**7 must not cost an array of 10**7 entries.
    counts = dict(zip(*np.unique(signals.labels, return_counts=True)))
    kept = dict(zip(*np.unique(signals.labels[out.indices], return_counts=True)))
    config["class_rows"] = [int(counts.get(c, 0)) for c in budget.classes]
    config["class_kept"] = [int(kept.get(c, 0)) for c in budget.classes]
    if getattr(dataset, "split", None) is not None:
        config["split"] = str(dataset.split)
    if proxy_key is not None:
        config["proxy"] = proxy_key
        config["head"] = head
        config["model_fingerprint"] = model_fp
        config["model_name"] = hub_model_id(model) or type(model).__name__
        config["model_class"] = type(model).__name__

    source_fp = dataset_fingerprint(dataset)
    return CoresetSelection(
        indices=out.indices, scores=scores, weights=out.weights, gains=out.gains, method=spec.name,
        num_rows=signals.num_rows, config=config, seed=seed, source_fingerprint=source_fp, label_column=label_column,
        label_hash=label_hash(dataset, label_column),
        fingerprint=hash_parts(source_fp, f"hf_coreset.{spec.name}@{spec.version}", options, fraction, size, per_class,
                               label_column, model_fp, fingerprint_key, head if proxy_key is not None else None, seed),
        library_version=__version__, timings=timings)


def select_coreset(dataset, method: str | None = None, *, fraction: float | None = None, size: int | None = None,
                   model=None, label_column: str = "label", seed: int = 0, per_class: bool = True, proxy=None,
                   collate_fn=None, head: str | None = None, cache_dir=None, accelerator=None, progress: bool = True,
                   return_selection: bool = False, from_hub: str | None = None, revision: str | None = None,
                   token: str | None = None, check: str = "strict", timeout: float | None = None, **options):
    """`Dataset.select_coreset`: select with `method` and return the kept rows as a Dataset.

    Args:
        dataset (`datasets.Dataset`): the rows to choose from.
        method, fraction, size, model, label_column, seed, per_class, proxy, collate_fn, head, cache_dir,
            accelerator, progress, **options: as for :func:`hf_coreset.select`.
        return_selection (`bool`, *optional*, defaults to `False`): return `(pruned_dataset, selection)`.
        from_hub (`str`, *optional*): instead of selecting, load the selection pushed to this Hub
            dataset repo (see `CoresetSelection.push_to_hub`) and apply it; the dataset must be its
            source (row count, fingerprint and label hash; pass `check="content"` for the same data
            loaded another way).
        revision (`str`, *optional*): with `from_hub`, the branch, tag or commit to load.
        token (`str`, *optional*): with `from_hub`, a token for a private repo.
        check (`str`, *optional*, defaults to `"strict"`): with `from_hub`, how to check the source
            (`"strict"`, `"content"` or `"none"`, see `CoresetSelection.check_source`).
        timeout (`float`, *optional*): with `from_hub`, seconds each Hub request may wait (default 60).

    Returns:
        `datasets.Dataset` (the kept rows, in source order), or `(Dataset, CoresetSelection)`.

    Example:
        ```python
        >>> import hf_coreset  # attaches Dataset.select_coreset and DatasetDict.select_coreset
        >>> pruned = ds.select_coreset("random", fraction=0.1, seed=0)
        >>> same = ds.select_coreset(from_hub="me/mnist1d-random-10pct")
        ```
    """
    settings = dict(fraction=fraction, size=size, model=model, label_column=label_column, seed=seed,
                    per_class=per_class, proxy=proxy, collate_fn=collate_fn, head=head, cache_dir=cache_dir,
                    accelerator=accelerator, progress=progress)
    if from_hub is not None:
        defaults = {name: p.default for name, p in inspect.signature(select).parameters.items()}
        given = ([f"method={method!r}"] if method is not None else []) + sorted(
            name for name, value in settings.items()
            if value is not defaults[name] and not (isinstance(value, (str, int)) and value == defaults[name])
        ) + sorted(options)
        if given:
            raise TypeError(f"select_coreset(from_hub={from_hub!r}) applies a published selection and takes no "
                            f"selection settings; drop {', '.join(given)} (only revision, token, timeout, check "
                            f"and return_selection apply).")
        selection = CoresetSelection.from_hub(from_hub, revision=revision, token=token, timeout=timeout)
        pruned = selection.apply(dataset, check=check)
        return (pruned, selection) if return_selection else pruned
    if revision is not None or token is not None or timeout is not None or check != "strict":
        raise TypeError("revision, token, timeout and check apply only with from_hub='user/repo'.")
    if method is None:
        raise TypeError("select_coreset needs a method, e.g. ds.select_coreset('kcenter', fraction=0.1, model=model); "
                        f"known methods: {', '.join(methods.available())}.")
    selection = select(dataset, method, **settings, **options)
    pruned = selection.apply(dataset)
    return (pruned, selection) if return_selection else pruned


def select_coreset_split(dataset_dict, method: str | None = None, *, split: str | None = None,
                         return_selection: bool = False, **kwargs):
    """`DatasetDict.select_coreset`: prune one split (the training split), leave the others as they are.

    A coreset is chosen from the rows a model trains on, so one named split is selected from, never
    every split.

    Args:
        dataset_dict (`datasets.DatasetDict`): the splits.
        method (`str`, *optional*): as for :func:`select_coreset`.
        split (`str`): the split to select from and prune, e.g. ``"train"``.
        return_selection (`bool`, *optional*, defaults to `False`): return `(DatasetDict, CoresetSelection)`.
        **kwargs: every other argument of :func:`select_coreset` (fraction, model, from_hub, ...).

    Returns:
        `datasets.DatasetDict`: the same splits, `split` holding the kept rows only.

    Example:
        ```python
        >>> pruned = dd.select_coreset("el2n", split="train", fraction=0.1, model=model)
        >>> pruned["test"] is dd["test"]
        True
        ```
    """
    import datasets

    splits = list(dataset_dict)
    if split is None:
        raise TypeError(f"DatasetDict.select_coreset needs split=<the training split> to select from and prune "
                        f"(splits: {splits}); the other splits are returned unchanged.")
    if split not in dataset_dict:
        raise ValueError(f"split={split!r} is not a split of the DatasetDict; pass one of {splits}.")
    pruned, selection = select_coreset(dataset_dict[split], method, return_selection=True, **kwargs)
    out = datasets.DatasetDict({name: pruned if name == split else ds for name, ds in dataset_dict.items()})
    return (out, selection) if return_selection else out


def attach() -> None:
    """Attach `select_coreset` to `datasets.Dataset` and `datasets.DatasetDict` (done by `import hf_coreset`)."""
    import datasets

    datasets.Dataset.select_coreset = select_coreset
    datasets.DatasetDict.select_coreset = select_coreset_split
