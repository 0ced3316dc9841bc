"""The MNIST-1D training protocol used by the demo and the benchmarks.

Protocol (research/peer_measurements.md): the reference ConvNet trained on a subset with Adam,
lr 1e-2 with cosine decay to 0 over all steps, batch 128, 100 epochs over the subset (equal-epoch
protocol, as DeepCore), full data 30 epochs; the reported number is the final test accuracy (never
the best over epochs). `Protocol(budget="steps")` is the equal-step protocol of CCS, D2 and ELFS
instead: the subset trains for as many steps as the full-data run (a 10% subset sees 10x the
epochs), the cosine schedule spanning those steps. Weighted coresets train on the weighted mean loss (weights normalised to mean 1).
Accuracy goes through the `evaluate` module shipped in `hf_coreset/metrics/accuracy/`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .data.mnist1d import make_convnet


@dataclass(frozen=True)
class Protocol:
    """Training settings for one accuracy measurement.

    Args:
        epochs (`int`, defaults to 100): epochs over a subset under the equal-epoch budget.
        full_data_epochs (`int`, defaults to 30): epochs of the full-data reference.
        lr (`float`, defaults to 1e-2): Adam's peak learning rate (cosine decay to 0).
        batch_size (`int`, defaults to 128): rows per step.
        budget (`str`, defaults to `"epochs"`): `"epochs"` trains a subset for `epochs` epochs;
            `"steps"` trains it for as many steps as the full-data reference takes.
    """

    epochs: int = 100
    full_data_epochs: int = 30
    lr: float = 1e-2
    batch_size: int = 128
    budget: str = "epochs"

    def __post_init__(self):
        if self.budget not in ("epochs", "steps"):
            raise ValueError(f"budget={self.budget!r}; pass 'epochs' (equal epochs) or 'steps' (equal steps).")

    def steps(self, rows: int | None, full_rows: int) -> int:
        """Optimizer steps for a subset of `rows` rows (None = the full data) of a `full_rows`-row train split."""
        full = self.full_data_epochs * math.ceil(full_rows / self.batch_size)
        if rows is None or self.budget == "steps":
            return full
        return self.epochs * math.ceil(rows / self.batch_size)


def arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) tensors of an MNIST-1D split."""
    ds = dataset.with_format("numpy")
    return torch.as_tensor(np.asarray(ds["x"], dtype=np.float32)), torch.as_tensor(np.asarray(ds["label"]), dtype=torch.long)


def train_convnet(x: torch.Tensor, y: torch.Tensor, *, epochs: int | None = None, seed: int, lr: float = 1e-2,
                  batch_size: int = 128, weights: np.ndarray | None = None, progress: str | None = None,
                  steps: int | None = None, model: nn.Module | None = None) -> nn.Module:
    """Train a fresh ConvNet (initialised from `seed`; or `model`, a fresh model of another shape) with
    Adam and cosine decay to 0 for `epochs` epochs or `steps` steps (the last epoch cut short), the
    batch order drawn from `seed`; `progress` names the phase to show progress for (None: silent)."""
    from .signals.progress import Progress

    if (epochs is None) == (steps is None):
        raise ValueError("Pass exactly one of epochs= and steps= to train_convnet.")
    model = make_convnet(seed) if model is None else model
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(y)
    steps = steps if steps is not None else epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    w = None if weights is None else torch.as_tensor(weights / np.mean(weights), dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    model.train()
    done = 0
    with Progress(progress or "", steps, enabled=progress is not None) as bar:
        while done < steps:
            order = torch.randperm(n, generator=g)
            for i in range(0, n, batch_size):
                if done == steps:
                    break
                b = order[i:i + batch_size]
                loss = nn.functional.cross_entropy(model(x[b]), y[b], reduction="none")
                loss = (loss * w[b]).mean() if w is not None else loss.mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                done += 1
                bar.update(rows=len(b))
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Predicted class ids of `model` (in eval mode) on rows `x`."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]).numpy()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> float:
    """Test accuracy through the shipped `evaluate` module (`hf_coreset.metrics.load("accuracy")`)."""
    from . import metrics

    return metrics.load("accuracy").compute(predictions=predict(model, x, batch_size), references=y.numpy())["accuracy"]


def subset_accuracy(train, test, indices: np.ndarray | None, *, seed: int, protocol: Protocol = Protocol(),
                    weights: np.ndarray | None = None, progress: str | None = None) -> float:
    """Test accuracy of a ConvNet trained on `train` rows `indices` (None = all rows, full-data epochs);
    `progress` names the training phase to show progress for."""
    x, y = arrays(train)
    xt, yt = arrays(test)
    steps = protocol.steps(None if indices is None else len(indices), len(y))
    if indices is not None:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        x, y = x[idx], y[idx]
    model = train_convnet(x, y, steps=steps, seed=seed, lr=protocol.lr, batch_size=protocol.batch_size,
                          weights=weights, progress=progress)
    return accuracy(model, xt, yt)
