"""hf-coreset: coreset selection for the Hugging Face stack.

    import hf_coreset
    sel = hf_coreset.select(ds, "kcenter", fraction=0.1, model=model, seed=0)
    pruned = ds.select_coreset("kcenter", fraction=0.1, model=model)   # attached on import
"""

from . import data, methods
from .api import attach, select, select_coreset
from .budget import Budget, make_budget
from .proxy import ProxyConfig
from .selection import CoresetSelection
from .signals import Signals
from .version import __version__

attach()

__all__ = ["Budget", "CoresetSelection", "CoresetTrainer", "CoresetTrainingArguments", "ProxyConfig", "Signals",
           "__version__", "attach", "data", "make_budget", "methods", "select", "select_coreset"]


def __getattr__(name):
    # The trainer imports transformers.Trainer (slow); load it on first use only.
    if name in ("CoresetTrainer", "CoresetTrainingArguments"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'hf_coreset' has no attribute {name!r}")
