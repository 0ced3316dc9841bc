"""The MNIST-1D training protocol used by the demo and the benchmarks.

Protocol (research/peer_measurements.md): the reference ConvNet trained on a subset with Adam,
lr 1e-2 with cosine decay to 0 over all steps, batch 128, 100 epochs over the subset (equal-epoch
protocol), full data 30 epochs; the reported number is the final test accuracy (never the best
over epochs). Weighted coresets train on the weighted mean loss (weights normalised to mean 1).
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
    """Training settings for one accuracy measurement."""

    epochs: int = 100
    full_data_epochs: int = 30
    lr: float = 1e-2
    batch_size: int = 128


def arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) tensors of an MNIST-1D split."""
    ds = dataset.with_format("numpy")
    return torch.as_tensor(np.asarray(ds["x"], dtype=np.float32)), torch.as_tensor(np.asarray(ds["label"]), dtype=torch.long)


def train_convnet(x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int, lr: float = 1e-2, batch_size: int = 128,
                  weights: np.ndarray | None = None, progress: str | None = None) -> nn.Module:
    """Train a fresh ConvNet (initialised from `seed`) with Adam and cosine decay to 0; `progress`
    names the phase to show progress for (None: silent)."""
    from .signals.progress import Progress

    model = make_convnet(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(y)
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    w = None if weights is None else torch.as_tensor(weights / np.mean(weights), dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    model.train()
    with Progress(progress or "", steps, enabled=progress is not None) as bar:
        for _ in range(epochs):
            order = torch.randperm(n, generator=g)
            for i in range(0, n, batch_size):
                b = order[i:i + batch_size]
                loss = nn.functional.cross_entropy(model(x[b]), y[b], reduction="none")
                loss = (loss * w[b]).mean() if w is not None else loss.mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
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
    epochs = protocol.full_data_epochs
    if indices is not None:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        x, y = x[idx], y[idx]
        epochs = protocol.epochs
    model = train_convnet(x, y, epochs=epochs, seed=seed, lr=protocol.lr, batch_size=protocol.batch_size,
                          weights=weights, progress=progress)
    return accuracy(model, xt, yt)
