"""The trainer's names where they always were; they live in `hf_coreset.training`."""

from .training import CoresetBatchSampler, CoresetTrainer, CoresetTrainingArguments
from .training.card import model_card_info

__all__ = ["CoresetBatchSampler", "CoresetTrainer", "CoresetTrainingArguments", "model_card_info"]
