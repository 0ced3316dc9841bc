"""Stable ids for datasets, label columns, models, code and selections.

The only place that reads the private ``Dataset._fingerprint``.
"""

from __future__ import annotations

import functools
import inspect
import json
import weakref

import numpy as np
import xxhash


def dataset_fingerprint(dataset) -> str:
    """The `datasets` fingerprint of `dataset` (what `Dataset.map`/`select` chain their caches on)."""
    return dataset._fingerprint


_ROWS_WINDOW = 8192
_rows_memo: dict = {}  # (datasets fingerprint, columns) -> rows_fingerprint, for repeated calls on big data


def rows_fingerprint(dataset, columns) -> str:
    """xxhash64 of the Arrow types and values of `columns`, row by row in the dataset's order.

    Unlike `dataset_fingerprint`, it does not change with the output format (`with_format`,
    `set_format`) or with how the rows were reached (`select`, a reload, a `map` that writes the same
    values); a transform is not applied. Windows of rows are made contiguous before hashing, so the
    Arrow chunk layout does not count.
    """
    columns = list(dict.fromkeys(columns))
    memo = (dataset._fingerprint, tuple(columns))
    if memo in _rows_memo:
        return _rows_memo[memo]
    table = dataset.with_format("arrow", columns=columns)
    h = xxhash.xxh64()
    h.update(repr([(c, str(dataset.data.schema.field(c).type)) for c in columns]).encode())
    for start in range(0, dataset.num_rows, _ROWS_WINDOW):
        for batch in table[start:start + _ROWS_WINDOW].combine_chunks().to_batches():
            h.update(batch.serialize())
    if len(_rows_memo) > 64:
        _rows_memo.clear()
    _rows_memo[memo] = h.hexdigest()
    return _rows_memo[memo]


def column_values(dataset, column: str) -> np.ndarray:
    """All values of one column as a numpy array, read in one Arrow slice (not row by row)."""
    return dataset.with_format("numpy", columns=[column])[:][column]


def label_hash(dataset, label_column: str) -> str:
    """xxhash64 of a label column's values as int64, so that a reloaded copy of the data matches."""
    labels = np.asarray(column_values(dataset, label_column)).astype(np.int64, copy=False)
    return xxhash.xxh64(np.ascontiguousarray(labels).tobytes()).hexdigest()


def model_fingerprint(model) -> str:
    """Hash of a model's class, structure, config, weight bytes and frozen parameters (never its ``id()``).

    The structure (``repr``) carries settings that are not weights, such as dropout rates; the
    frozen parameter names decide what the proxy trains.
    """
    h = xxhash.xxh64()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    h.update(repr(model).encode())
    h.update(",".join(n for n, p in model.named_parameters() if not p.requires_grad).encode())
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        h.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(__import__("torch").uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def hash_parts(*parts) -> str:
    """xxhash64 of JSON-serialised parts (dict keys sorted)."""
    h = xxhash.xxh64()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=repr).encode())
        h.update(b"\x00")
    return h.hexdigest()


class SourceUnavailable(Exception):
    """A class or function has no source file (typed into a REPL, or made with exec), so its code
    cannot be fingerprinted."""


_sources = weakref.WeakKeyDictionary()  # class or function -> its source, read once per process


def _source(obj) -> str:
    """The source of a Python class or function; the qualified name alone for one written in C."""
    name = f"{obj.__module__}.{obj.__qualname__}"
    try:
        return _sources[obj]
    except (KeyError, TypeError):  # TypeError: not weak-referenceable (a builtin)
        pass
    try:
        text = f"{name}\n{inspect.getsource(obj)}"
    except (OSError, TypeError):
        python_made = inspect.isfunction(obj) or (
            inspect.isclass(obj) and any(inspect.isfunction(v) for v in vars(obj).values()))
        if python_made:
            raise SourceUnavailable(f"{name} has no source file (defined in a REPL or with exec?)") from None
        return name  # a builtin: its code comes with the installed package
    _sources[obj] = text
    return text


def code_fingerprint(model, *, digest: bool = True) -> str:
    """Hash of the source of every class the model's modules are made of, with their base classes
    (so an inherited `forward` counts), sorted by qualified name.

    Raises:
        `SourceUnavailable`: a class has no source file; its code cannot be told apart from an edit.
    """
    classes = {c for m in model.modules() for c in type(m).__mro__ if c is not object}
    text = "\n".join(_source(c) for c in sorted(classes, key=lambda c: f"{c.__module__}.{c.__qualname__}"))
    return xxhash.xxh64(text.encode()).hexdigest() if digest else text


def callable_fingerprint(fn, *, digest: bool = True) -> str | None:
    """Hash of a collator's identity, code and settings: a function's source with the values it
    closes over, its defaults and the plain constants it reads from its module; a
    `functools.partial`'s function and arguments; a callable object's class source (with its bases)
    and its attributes (a tokenizer by its repr: name, vocabulary size, padding side, special tokens).

    Raises:
        `SourceUnavailable`: the function or class has no source file.
    """
    if fn is None:
        return None
    text = _describe(fn)
    if not (inspect.isroutine(fn) or inspect.isclass(fn) or isinstance(fn, functools.partial)):
        # A collator object: __call__'s code lives in its class or a base class.
        text = "\n".join([_bases_source(type(fn)), text])
    return xxhash.xxh64(text.encode()).hexdigest() if digest else text


def _bases_source(cls) -> str:
    return "\n".join(_source(c) for c in cls.__mro__ if c is not object)


_PLAIN = (bool, int, float, str, bytes, type(None))


def _describe(value, depth: int = 0) -> str:
    """A text that changes when `value` would behave differently, free of memory addresses."""
    if isinstance(value, _PLAIN):
        return repr(value)
    if depth > 3:  # deep object graphs: their type is enough
        return type(value).__qualname__
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return f"{type(value).__name__}[" + ", ".join(_describe(v, depth + 1) for v in items) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: repr(kv[0]))
        return "{" + ", ".join(f"{k!r}: {_describe(v, depth + 1)}" for k, v in items) + "}"
    if isinstance(value, functools.partial):
        return f"partial({_describe([value.func, value.args, value.keywords], depth + 1)})"
    if inspect.ismethod(value):
        return f"{_describe(value.__func__, depth + 1)} of {_describe(value.__self__, depth + 1)}"
    if inspect.isfunction(value):
        cells = []
        for cell in value.__closure__ or ():
            try:
                cells.append(cell.cell_contents)
            except ValueError:  # a cell not filled yet
                cells.append(None)
        constants = {n: value.__globals__[n] for n in value.__code__.co_names
                     if isinstance(value.__globals__.get(n), _PLAIN)}
        extra = [c for c in cells if c is not value], value.__defaults__, value.__kwdefaults__, constants
        return f"{_source(value)}\n{_describe(extra, depth + 1)}"
    if inspect.isclass(value) or inspect.isbuiltin(value):
        return _source(value)
    text = repr(value)
    if " at 0x" not in text:  # a repr that shows the state (tokenizers, dataclasses, tensors)
        return text
    # The default repr shows only the address: describe the object by its class and its attributes.
    return f"{_source(type(value))} {_describe(getattr(value, '__dict__', {}), depth + 1)}"
