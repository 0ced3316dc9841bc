"""The model as the signal engine sees it: its input columns, its logits, its classifier head, and
every check on the model and its inputs that can fail, run before any training."""

from __future__ import annotations

import inspect

import numpy as np
import torch
from torch import nn

from .rows import ROW_KEY, RowCollator, RowDataset, row_views


def find_head(model: nn.Module, name: str | None = None, num_classes: int | None = None, *,
              probe: tuple[dict, torch.Tensor] | None = None, arg: str = "head") -> nn.Linear:
    """The classifier head: the module called `name`, else the last ``nn.Linear`` registered.

    With `num_classes` given, the automatic choice must have at least that many outputs (a plain
    int label column only bounds the number of classes from below). When several ``nn.Linear``
    layers have that final width, the one whose output is the logits of `probe` (2-d outputs by
    module name, logits) is the head; without a unique one the choice is refused as ambiguous.
    Messages call `name` by `arg`, the caller's name for it.
    """
    if name is not None:
        modules = dict(model.named_modules())
        if name not in modules:
            linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            raise ValueError(f"{arg}={name!r} is not a module of the model; its nn.Linear modules are {linear}.")
        head = modules[name]
        if not isinstance(head, nn.Linear):
            raise ValueError(f"{arg}={name!r} is a {type(head).__name__}, not an nn.Linear; name the final "
                             "nn.Linear layer.")
        return head
    linear = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    if not linear:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear layer, so its classifier input features cannot be captured. "
            f"Pass {arg}='<module name>' naming the final nn.Linear, or use a method that needs no features "
            "(random, el2n, entropy, forgetting).")
    head = list(linear.values())[-1]
    if num_classes is not None and head.out_features < num_classes:
        raise ValueError(
            f"The last nn.Linear of {type(model).__name__} has {head.out_features} outputs but the data has "
            f"{num_classes} classes; pass {arg}='<module name>' naming the classifier layer.")
    same = [n for n, m in linear.items() if m.out_features == head.out_features]
    if len(same) > 1:
        # Registration order is not call order: the head is the layer whose output is the logits.
        outputs, logits = probe if probe is not None else ({}, None)
        hits = [n for n in same
                if n in outputs and outputs[n].shape == logits.shape and torch.equal(outputs[n], logits)]
        if len(hits) != 1:
            raise ValueError(
                f"{type(model).__name__} has {len(same)} nn.Linear layers with {head.out_features} outputs ({same}) "
                f"and none of them alone gives the logits, so the classifier is ambiguous; pass {arg}='<module name>' "
                "naming the layer whose inputs are the features.")
        head = linear[hits[0]]
    return head


def forward_input_names(model: nn.Module, columns: list[str], label_column: str) -> list[str]:
    """Dataset columns to pass to ``model(**batch)``: those the forward signature names (as Trainer does)."""
    params = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    skip = {label_column, "label", "labels", "label_ids"}
    names = [c for c in columns if c in params and c not in skip]
    if not names and takes_any:
        # Only a bare **kwargs: pass every column. A named argument wins, as in Trainer: transformers 5
        # models take **kwargs too, and would otherwise get raw text columns.
        names = [c for c in columns if c not in skip]
    if not names:
        raise ValueError(
            f"No dataset column matches an argument of {type(model).__name__}.forward "
            f"({[p for p in params if p != 'self']}); dataset columns: {columns}. Rename a column "
            f"(ds.rename_column) to the argument the model expects.")
    return names


def logits_of(output) -> torch.Tensor:
    """The logits of a model output: a tensor, a ModelOutput / dict with `logits`, or a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) or hasattr(output, "logits"):
        logits = output.get("logits") if isinstance(output, dict) else output.logits
        if isinstance(logits, torch.Tensor):
            return logits
        keys = f" (keys: {list(output)})" if isinstance(output, dict) else ""
        raise TypeError(f"The model returned a {type(output).__name__} without `logits`{keys}; return the logits, "
                        "e.g. from a model with a classification head (AutoModelForSequenceClassification).")
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        if output[0].ndim == 0:
            raise TypeError("The model returned a tuple whose first element is a scalar (a loss?); return the "
                            "logits, or an object with a `logits` field.")
        return output[0]
    raise TypeError(f"Cannot find logits in a model output of type {type(output).__name__}; "
                    "return a tensor of logits or an object with a `logits` field.")


def forward_logits(model, batch: dict) -> torch.Tensor:
    """The model's logits on `batch`. Floating inputs are cast to the model's floating dtype first, as
    transformers pipelines do, so that a float64 or bfloat16 model takes float32 columns."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is not None:
        batch = {k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                 for k, v in batch.items()}
    return logits_of(model(**batch))


def check_logits(logits: torch.Tensor, y: torch.Tensor, head: nn.Linear | None, arg: str = "head") -> None:
    """Logits must be (batch, classes), cover every label, and come out of the captured head."""
    if logits.ndim != 2 or (len(y) and logits.shape[1] <= int(y.max())):
        raise ValueError(f"The model returns logits of shape {tuple(logits.shape)}, but the labels go up to "
                         f"{int(y.max())}; it must return (batch, number of classes), e.g. num_labels=<classes>.")
    if head is not None and head.out_features != logits.shape[1]:
        raise ValueError(f"The nn.Linear taken as the classifier has {head.out_features} outputs but the model "
                         f"returns {logits.shape[1]} logits; pass {arg}='<module name>' naming the final layer.")


def check_model(model, dataset, labels: np.ndarray, num_classes: int, *, label_column: str, collate_fn=None,
                head: str | None = None, wants_features: bool = True,
                trains: bool = True, head_arg: str = "head",
                collate_arg: str = "collate_fn") -> tuple[list[str], str | None]:
    """Everything about the model and its inputs that can fail, checked before the proxy trains.

    The model must be an ``nn.Module`` with something to train (when `trains`); its input columns
    must hold no None and (with the default collator) one length per column; one eval-mode forward
    pass on two rows must give (batch, classes) logits; and the head must be unambiguous (when
    `wants_features`; else a head that cannot be found is None). Messages name `head` and
    `collate_fn` as `head_arg` and `collate_arg` (CoresetTrainer's settings differ).

    Returns:
        `tuple[list[str], str | None]`: the input columns and the head's module name.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}; wrap your function in an "
                        "nn.Module whose forward takes the input columns as keyword arguments.")
    if trains and not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"Every parameter of {type(model).__name__} is frozen (requires_grad=False), so the proxy "
                         "cannot train; unfreeze the layers it should train (e.g. model.requires_grad_(True)) or ask "
                         "for epoch=0 (the model as given).")
    inputs = forward_input_names(model, dataset.column_names, label_column)
    rows, collator = row_views(dataset, inputs, collate_fn)
    if collator.is_default and dataset.format["type"] != "custom":  # a transform may fix what Arrow holds
        check_rows(dataset, inputs, collate_arg)
    logits, outputs = _probe(model, rows, collator)
    try:
        head_module = find_head(model, head, num_classes, probe=(outputs, logits), arg=head_arg)
    except ValueError:
        if head is not None or wants_features:
            raise
        head_module = None  # logits-only methods work with any classifier
    check_logits(logits.float(), torch.as_tensor(labels), head_module if wants_features else None, head_arg)
    head_name = None if head_module is None else next(n for n, m in model.named_modules() if m is head_module)
    return inputs, head_name


def _probe(model: nn.Module, rows: RowDataset, collator: RowCollator) -> tuple[torch.Tensor, dict]:
    """Logits of one eval-mode forward pass on the first two rows, and every nn.Linear's 2-d output by name."""
    from accelerate.utils import send_to_device

    batch = collator(rows.__getitems__(list(range(min(2, len(rows))))))
    batch.pop(ROW_KEY)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    outputs = {}

    def keep(name):
        def hook(module, args, out):
            if isinstance(out, torch.Tensor) and out.ndim == 2:  # logit-shaped: keeps the probe's memory small
                outputs[name] = out
        return hook

    hooks = [m.register_forward_hook(keep(n)) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            logits = forward_logits(model, send_to_device(batch, device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return logits, outputs


def check_rows(dataset, columns: list[str], collate_arg: str = "collate_fn") -> None:
    """Refuse None values and ragged list lengths in `columns`, found in Arrow before any batch is built:
    the default collator stacks rows and would fail on them deep inside, maybe mid-training."""
    for column in columns:
        if _column_problem(dataset.data.column(column)) is None:  # the whole backing table, read without a copy
            continue
        # Only the rows in view count (a select may have left the bad ones out); this copy is the rare case.
        found = _column_problem(dataset.with_format("arrow", columns=[column])[:][column])
        if found is None:
            continue
        kind, rows = found
        if kind == "ragged":
            raise ValueError(f"Column {column!r} has ragged lengths ({rows}), which the default collator cannot "
                             f"stack; pass {collate_arg}=DataCollatorWithPadding(tokenizer) or pad the column to one "
                             "length.")
        raise ValueError(f"Column {column!r} has {kind} {len(rows)} rows (first: {rows[:10].tolist()}); drop or "
                         f"fill them first, e.g. ds.filter(lambda r: r[{column!r}] is not None).")


def _column_problem(col) -> tuple[str, object] | None:
    """("None values in" | "None inside the values of", row ids) or ("ragged", description) for an Arrow column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        return "None values in", np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        return None
    if pc.list_flatten(col).null_count:
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        parents = pc.list_parent_indices(arr).to_numpy()
        inner_null = pc.is_null(pc.list_flatten(arr)).to_numpy(zero_copy_only=False)
        return "None inside the values of", np.unique(parents[inner_null])
    lengths = pc.list_value_length(col).to_numpy()
    if lengths.min() == lengths.max():
        return None
    odd = np.flatnonzero(lengths != lengths[0])
    return "ragged", f"{lengths.min()} to {lengths.max()}; rows {odd[:10].tolist()} differ from row 0"
