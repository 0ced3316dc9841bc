"""Accuracy as an `evaluate` metric module, shipped with hf-coreset so it loads from a local path.

`evaluate.load("accuracy")` fetches the module from the Hub; this one is loaded with
`hf_coreset.metrics.load("accuracy")` (that is, `evaluate.load(<path of this folder>)`) and works
offline.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Share of predictions equal to the reference label: sum_i w_i [p_i == r_i] / sum_i w_i."

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    sample_weight (`list[float]`, *optional*): one non-negative weight per row; defaults to 1.

Returns:
    accuracy (`float`): in [0, 1].

Example:
    >>> import hf_coreset.metrics
    >>> acc = hf_coreset.metrics.load("accuracy")
    >>> acc.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.6666666666666666}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, sample_weight=None):
        hit = np.asarray(predictions) == np.asarray(references)
        if hit.size == 0:
            raise ValueError("accuracy needs at least one prediction; got an empty list.")
        w = np.ones(hit.shape) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.shape != hit.shape or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"sample_weight must hold {hit.size} non-negative weights, not all zero "
                             f"(got shape {w.shape}).")
        return {"accuracy": float((w * hit).sum() / w.sum())}
