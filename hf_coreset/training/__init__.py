"""Training on a coreset with `transformers.Trainer`.

    arguments.py  CoresetTrainingArguments: the coreset and CREST settings, each default and help once
    plan.py       the phase plan (warm-up, coreset or CREST epochs and their steps) and the batch sampler
    trainer.py    CoresetTrainer: Trainer hooks only
    crest.py      CREST, the adaptive method, reading signals through the trainer's SignalCollector
    card.py       what the model card says about the coreset (a plain dict for hf_coreset.cards)
"""

from .arguments import CoresetTrainingArguments
from .crest import Crest, CrestConfig
from .plan import CoresetBatchSampler, PhasePlan
from .trainer import CoresetTrainer

__all__ = ["CoresetBatchSampler", "CoresetTrainer", "CoresetTrainingArguments", "Crest", "CrestConfig", "PhasePlan"]
