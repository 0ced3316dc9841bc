"""`select` and `Dataset.select_coreset`: the one flow from a dataset to a CoresetSelection."""

from __future__ import annotations

import logging
import numbers
import time

import numpy as np

from . import methods
from .budget import make_budget
from .fingerprint import dataset_fingerprint, hash_parts, label_hash, model_fingerprint
from .proxy import ProxyConfig, run_proxy
from .selection import CoresetSelection
from .signals import Signals

logger = logging.getLogger(__name__)


def check_dataset(dataset, label_column: str) -> tuple[np.ndarray, int]:
    """Validate the dataset and its label column; return (labels as int64, number of classes)."""
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
    labels = np.asarray(dataset.with_format("numpy")[label_column])
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Column {label_column!r} must hold one integer class id per row (got dtype {labels.dtype}, "
                         f"shape {labels.shape}); encode labels first, e.g. ds.class_encode_column({label_column!r}).")
    if labels.min() < 0:
        raise ValueError(f"Column {label_column!r} has negative class ids (min {labels.min()}); class ids must be >= 0.")
    feature = dataset.features[label_column]
    num_classes = getattr(feature, "num_classes", None) or int(labels.max()) + 1
    return labels.astype(np.int64), int(num_classes)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer, not {seed!r}.")
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
            "random". It is not modified: a copy trains as the proxy.
        label_column (`str`, *optional*, defaults to `"label"`): integer class ids.
        seed (`int`, *optional*, defaults to `0`): seeds proxy training and any random choice.
        per_class (`bool`, *optional*, defaults to `True`): proportional per-class budgets
            (see `hf_coreset.budget`); False lets the method pick globally.
        proxy (`ProxyConfig` or `dict`, *optional*): how the proxy trains (optimizer, lr, batch).
        collate_fn (`Callable`, *optional*): collator for model inputs (default: transformers'
            `default_data_collator`); e.g. `DataCollatorWithPadding(tokenizer)`.
        head (`str`, *optional*): name of the final `nn.Linear`; found automatically if omitted.
        cache_dir (`str`, *optional*): signal cache (`False` turns it off).
        accelerator (`accelerate.Accelerator`, *optional*): defaults to a new one.
        progress (`bool`, *optional*, defaults to `True`): progress bars.
        **options: the method's own options (see `hf-coreset methods`).

    Returns:
        `CoresetSelection`

    Example:
        ```python
        >>> import hf_coreset
        >>> ds, _ = hf_coreset.data.load_mnist1d(num_samples=2000)["train"], None
        >>> sel = hf_coreset.select(ds, "random", fraction=0.1, seed=0)
        >>> len(sel)
        160
        ```

    Note:
        Under `accelerate launch`, every process must call it; all return the same selection.
    """
    spec = methods.get(method)
    options = spec.check_options(options)
    seed = _check_seed(seed)
    labels, num_classes = check_dataset(dataset, label_column)
    budget = make_budget(labels, fraction=fraction, size=size, per_class=per_class, num_classes=num_classes)
    proxy_cfg = ProxyConfig.coerce(proxy)
    needs = spec.needs(options)
    timings = {}
    if needs:
        if model is None:
            raise ValueError(f"Method {method!r} needs a model to score rows; pass model=<your classifier> "
                             f"(or use method='random').")
        signals, timings = run_proxy(model, dataset, labels, num_classes, needs, config=proxy_cfg, seed=seed,
                                     label_column=label_column, collate_fn=collate_fn, head=head,
                                     cache_dir=cache_dir, accelerator=accelerator, progress=progress)
    else:
        signals = Signals(labels=labels, num_classes=num_classes)
    t0 = time.perf_counter()
    out = spec.fn(signals, budget, rng=np.random.default_rng(seed), **options)
    timings["scoring"] = time.perf_counter() - t0
    scores = np.full(len(labels), np.nan) if out.scores is None else out.scores
    config = {"method_options": options, "fraction": fraction, "size": size, "per_class": per_class,
              "budget_total": budget.total, "budget_per_class": budget.per_class.tolist(), "method_version": spec.version,
              "label_column": label_column, **out.info}
    model_fp = None
    if needs:
        config["proxy"] = {**proxy_cfg.training_key(), "epochs": sorted(needs)}
        config["head"] = head
        model_fp = model_fingerprint(model)
        config["model_fingerprint"] = model_fp
        config["model_name"] = getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
    from . import __version__

    source_fp = dataset_fingerprint(dataset)
    return CoresetSelection(
        indices=out.indices, scores=scores, weights=out.weights, gains=out.gains, method=method,
        num_rows=len(labels), config=config, seed=seed, source_fingerprint=source_fp, label_column=label_column,
        label_hash=label_hash(dataset, label_column),
        fingerprint=hash_parts(source_fp, f"hf_coreset.{method}@{spec.version}", options, fraction, size, per_class,
                               model_fp, proxy_cfg.training_key() if needs else None, seed),
        library_version=__version__, timings=timings)


def select_coreset(dataset, method: str | None = None, *, fraction: float | None = None,
                   return_selection: bool = False, from_hub: str | None = None, revision: str | None = None,
                   token: str | None = None, **kwargs):
    """`Dataset.select_coreset`: select with `method` and return the kept rows as a Dataset.

    Takes the arguments of :func:`hf_coreset.select`. With `return_selection=True` it returns
    `(pruned_dataset, selection)`.

    Args:
        from_hub (`str`, *optional*): instead of selecting, load the selection pushed to this Hub
            dataset repo (see `CoresetSelection.push_to_hub`) and apply it; the dataset must be its
            source (row count, fingerprint and label hash; pass `check="content"` for the same data
            loaded another way).
        revision (`str`, *optional*): with `from_hub`, the branch, tag or commit to load.
        token (`str`, *optional*): with `from_hub`, a token for a private repo.

    Example:
        ```python
        >>> import hf_coreset  # attaches Dataset.select_coreset
        >>> pruned = ds.select_coreset("random", fraction=0.1, seed=0)
        >>> same = ds.select_coreset(from_hub="me/mnist1d-random-10pct")
        ```
    """
    if from_hub is not None:
        check = kwargs.pop("check", "strict")
        if method is not None or fraction is not None or kwargs:
            given = ([f"method={method!r}"] if method is not None else []) + (
                [f"fraction={fraction!r}"] if fraction is not None else []) + sorted(kwargs)
            raise TypeError(f"select_coreset(from_hub={from_hub!r}) applies a published selection and takes no "
                            f"selection settings; drop {', '.join(given)} (only revision, token, check and "
                            f"return_selection apply).")
        selection = CoresetSelection.from_hub(from_hub, revision=revision, token=token)
        pruned = selection.apply(dataset, check=check)
        return (pruned, selection) if return_selection else pruned
    if revision is not None or token is not None:
        raise TypeError("revision and token apply only with from_hub='user/repo'.")
    if method is None:
        raise TypeError("select_coreset needs a method, e.g. ds.select_coreset('kcenter', fraction=0.1, model=model); "
                        f"known methods: {', '.join(methods.available())}.")
    selection = select(dataset, method, fraction=fraction, **kwargs)
    pruned = selection.apply(dataset)
    return (pruned, selection) if return_selection else pruned


def attach() -> None:
    """Attach `select_coreset` to `datasets.Dataset` (done by `import hf_coreset`)."""
    import datasets

    datasets.Dataset.select_coreset = select_coreset
