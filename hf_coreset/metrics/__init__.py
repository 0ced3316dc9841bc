"""`evaluate` metric modules shipped with hf-coreset, loaded from their local folders (offline).

`evaluate.load("accuracy")` would fetch the module from the Hugging Face Hub; these load with
`evaluate.load(<folder in this package>)`, which needs no network. They need the demo extra
(`pip install 'hf-coreset[demo]'`, for `evaluate`).
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..extras import require

METRICS = ("accuracy", "coreset_coverage")


def path(name: str) -> str:
    """Folder of the metric module `name` (pass it to `evaluate.load`)."""
    if name not in METRICS:
        raise ValueError(f"Unknown hf-coreset metric {name!r}; shipped metrics: {', '.join(METRICS)}.")
    return str(Path(__file__).parent / name)


@functools.lru_cache(maxsize=None)
def load(name: str):
    """The metric module `name` as an `evaluate.EvaluationModule`, loaded from this package.

    Args:
        name (`str`): "accuracy" or "coreset_coverage".

    Returns:
        `evaluate.EvaluationModule`

    Example:
        ```python
        >>> from hf_coreset import metrics
        >>> metrics.load("accuracy").compute(predictions=[1, 0], references=[1, 1])
        {'accuracy': 0.5}
        ```
    """
    (evaluate,) = require("evaluate", extra="demo", what="hf_coreset.metrics")
    return evaluate.load(path(name))
