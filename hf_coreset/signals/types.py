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


def logit_grad(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p - onehot(y), the gradient of cross-entropy with respect to the logits: the one copy every
    method, NFG's kernel and CREST use.

    Computed in float64, with the label entry taken as minus the sum of the other probabilities, so
    a confident row keeps its direction instead of rounding to an all-zero vector (p_y - 1 cancels).

    Args:
        logits (`np.ndarray` of shape (n, C)): logits of n rows.
        labels (`np.ndarray` of shape (n,)): their class ids.

    Returns:
        `np.ndarray` of shape (n, C), float64; each row sums to zero.

    Example:
        ```python
        >>> g = logit_grad(np.array([[40.0, 0.0]]), np.array([0]))  # p_0 - 1 is about -exp(-40), not 0
        >>> bool(g[0, 0] < 0 < g[0, 1])
        True
        ```
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    p[rows, labels] = 0.0
    p[rows, labels] = -p.sum(axis=1)
    return p


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
        """p - onehot(y), float64: see :func:`logit_grad`."""
        return logit_grad(self.logits, labels)


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
