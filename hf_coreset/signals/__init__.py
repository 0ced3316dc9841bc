"""The one signal engine: what a forward pass tells about every row, collected one way.

- `types`: `Signals` and `Checkpoint`, plain numpy containers that methods read.
- `rows`: rows carrying their dataset index through the user's collator; the one seed -> generator
  rule and the one global batch sampler with its sharding rule.
- `model`: the model's inputs, logits and classifier head, and the checks run before training.
- `collect`: eval passes placed by row index through Accelerate, checked for finiteness.
- `cache`: signals on disk, keyed on everything that changes them.

Only this package and ``proxy.py`` touch models, data loaders and Accelerate.
"""

from .cache import CACHE_ENV, SIGNALS_VERSION, SignalCache, cache_root, default_cache_dir, signal_cache
from .collect import collect_checkpoint
from .model import (check_logits, check_model, check_rows, find_head, forward_input_names, forward_logits,
                    logits_of)
from .rows import (CREST_STREAM, ROW_KEY, WEIGHT_KEY, GlobalBatchSampler, RowCollator, RowDataset, generator, permutation,
                   row_views, shard)
from .types import CHEAP_FIELDS, FIELDS, Checkpoint, Signals, logit_grad

__all__ = ["CACHE_ENV", "CHEAP_FIELDS", "CREST_STREAM", "FIELDS", "ROW_KEY", "SIGNALS_VERSION", "WEIGHT_KEY", "Checkpoint",
           "GlobalBatchSampler", "RowCollator", "RowDataset", "SignalCache", "Signals", "cache_root", "check_logits", "check_model",
           "check_rows", "collect_checkpoint", "default_cache_dir", "find_head", "forward_input_names",
           "forward_logits", "generator", "logit_grad", "logits_of", "permutation", "row_views", "shard",
           "signal_cache"]
