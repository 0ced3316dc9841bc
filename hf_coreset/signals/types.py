"""Signals: what one forward pass tells about every row, at one or more proxy checkpoints.

Per row and per checkpoint: the loss, whether the prediction is correct, the logits (so the
logit gradient p - y is one subtraction away), and the classifier's input features h. Plain
numpy containers: methods read them and never touch models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FIELDS = ("loss", "correct", "logits", "features")
CHEAP_FIELDS = frozenset({"loss", "correct", "logits"})  # n x C at most: always collected


@dataclass
class Checkpoint:
    """Signals of every row at one proxy epoch (0 = the model as given). Absent fields are None."""

    epoch: int
    loss: np.ndarray | None = None
    correct: np.ndarray | None = None
    logits: np.ndarray | None = None
    features: np.ndarray | None = None

    def probs(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def logit_grad(self, labels: np.ndarray) -> np.ndarray:
        """p - onehot(y): the gradient of cross-entropy with respect to the logits."""
        g = self.probs()
        g[np.arange(len(labels)), labels] -= 1.0
        return g


@dataclass
class Signals:
    """Per-row signals at one or more proxy checkpoints, indexed by dataset row.

    Attributes:
        labels (`np.ndarray` of int64): class id of every row.
        num_classes (`int`): number of classes (logit dimension).
        checkpoints (`dict[int, Checkpoint]`): by proxy epoch.
        head (`str`, *optional*): module name of the classifier head used (None when none was).
    """

    labels: np.ndarray
    num_classes: int
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    head: str | None = None

    @property
    def num_rows(self) -> int:
        return len(self.labels)

    @property
    def epochs(self) -> list[int]:
        return sorted(self.checkpoints)

    def at(self, epoch: int, *fields: str) -> Checkpoint:
        """The checkpoint at `epoch`, checked to hold `fields`."""
        if epoch not in self.checkpoints:
            raise KeyError(f"No signals at proxy epoch {epoch}; collected epochs: {self.epochs}.")
        ckpt = self.checkpoints[epoch]
        missing = [f for f in fields if getattr(ckpt, f) is None]
        if missing:
            raise KeyError(f"Signals at epoch {epoch} lack {missing}; the method's `needs` must ask for them.")
        return ckpt
