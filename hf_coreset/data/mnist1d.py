"""MNIST-1D (Greydanus, 2020), generated locally with the `mnist1d` package, and its reference ConvNet."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..extras import require

SEQ_LEN = 40
NUM_CLASSES = 10


def _generate(num_samples: int, seed: int) -> dict:
    (data,) = require("mnist1d.data", extra="demo", what="load_mnist1d")
    get_dataset_args, make_dataset = data.get_dataset_args, data.make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    # make_dataset seeds numpy's and Python's global RNGs; give the caller theirs back.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        return make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def load_mnist1d(num_samples: int = 50000, seed: int = 42, cache_dir: str | os.PathLike | None = None):
    """MNIST-1D as a `datasets.DatasetDict` with "train" (80%) and "test" (20%) splits (needs the demo extra).

    Generated with `mnist1d.data.make_dataset` (never its downloading `get_dataset`), so nothing
    is fetched. Columns: "x" (40 float32 values) and "label" (ClassLabel, 10 classes). The
    generated arrays are cached as .npz under the hf-coreset cache (`cache_dir=False` to skip).

    Args:
        num_samples (`int`, *optional*, defaults to `50000`): rows generated in total (40k/10k split).
        seed (`int`, *optional*, defaults to `42`): the generator's seed (the package default).

    Example:
        ```python
        >>> ds = load_mnist1d(num_samples=5000)
        >>> ds["train"].num_rows, ds["test"].num_rows
        (4000, 1000)
        ```
    """
    import datasets

    if num_samples < 20 or num_samples % NUM_CLASSES:
        raise ValueError(f"num_samples={num_samples} must be a multiple of {NUM_CLASSES} and at least 20.")
    arrays = None
    path = None
    if cache_dir is not False:
        from ..proxy import default_cache_dir

        path = Path(cache_dir or default_cache_dir()) / "mnist1d" / f"n{num_samples}_seed{seed}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
    if arrays is None:
        raw = _generate(num_samples, seed)
        arrays = {k: np.asarray(raw[k]) for k in ("x", "y", "x_test", "y_test")}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
    features = datasets.Features({
        "x": datasets.Sequence(datasets.Value("float32"), length=SEQ_LEN),
        "label": datasets.ClassLabel(names=[str(i) for i in range(NUM_CLASSES)]),
    })

    def split(x, y):
        return datasets.Dataset.from_dict({"x": x.astype(np.float32), "label": y.astype(np.int64)}, features=features)

    return datasets.DatasetDict(train=split(arrays["x"], arrays["y"]), test=split(arrays["x_test"], arrays["y_test"]))


class MNIST1DConvNet(nn.Module):
    """The reference ConvNet for MNIST-1D: Conv1d 1->32 (k5, s2), two Conv1d 32->32 (k3), Linear 640->10.

    `forward(x)` takes rows of 40 values (shape (B, 40)) and returns logits (B, 10); the final
    Linear's input (640 features) is what feature-based methods use.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, channels: int = 32):
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=2)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=1, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=1, padding=1)
        self.classifier = nn.Linear(channels * SEQ_LEN // 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.view(-1, 1, SEQ_LEN)
        h = torch.relu(self.conv1(h))
        h = torch.relu(self.conv2(h))
        h = torch.relu(self.conv3(h))
        return self.classifier(h.flatten(1))


def make_convnet(seed: int = 0) -> MNIST1DConvNet:
    """A freshly initialised ConvNet; the seed fixes its weights without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MNIST1DConvNet()
