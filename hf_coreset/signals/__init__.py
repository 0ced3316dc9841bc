"""The one signal engine: what a forward pass tells about every row, collected one way.

- `types`: `Signals` and `Checkpoint`, plain numpy containers that methods read, and the one
  float64-safe logit gradient p - y.
- `rows`: rows carrying their dataset index through the user's collator; the one seed -> generator
  rule and the one global batch sampler with its sharding rule.
- `model`: the model's inputs, logits and classifier head, and the checks run before training.
- `collect`: the one collector (eval passes, mini-batch recording, logits of chosen rows), placed
  by row index through Accelerate and checked for finiteness.
- `cache`: signals on disk, keyed on everything that changes them.

Imports run one way: types and rows import nothing of the package; model imports rows; collect
imports types, rows and model; cache imports neither. Only this package and ``proxy.py`` touch
models, data loaders and Accelerate.
"""

from .cache import CACHE_ENV, SIGNALS_VERSION, SignalCache, cache_root, default_cache_dir, signal_cache
from .collect import SignalCollector, collect_checkpoint, row_signals
from .model import (check_logits, check_model, check_rows, find_head, forward_input_names, forward_logits,
                    logits_of)
from .rows import (CREST_STREAM, ROW_KEY, WEIGHT_KEY, GlobalBatchSampler, RowCollator, RowDataset, generator,
                   permutation, row_views, shard)
from .types import CHEAP_FIELDS, FIELDS, Checkpoint, Signals, logit_grad

__all__ = [
    "CACHE_ENV", "CHEAP_FIELDS", "CREST_STREAM", "FIELDS", "ROW_KEY", "SIGNALS_VERSION", "WEIGHT_KEY", "Checkpoint",
    "GlobalBatchSampler", "RowCollator", "RowDataset", "SignalCache", "SignalCollector", "Signals", "cache_root",
    "check_logits", "check_model", "check_rows", "collect_checkpoint", "default_cache_dir", "find_head",
    "forward_input_names", "forward_logits", "generator", "logit_grad", "logits_of", "permutation", "row_signals",
    "row_views", "shard", "signal_cache",
]
