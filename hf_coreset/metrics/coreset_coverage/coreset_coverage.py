"""How well a coreset covers the full set: per-class coverage and a feature-distribution distance.

An `evaluate` metric module shipped with hf-coreset; load it with
`hf_coreset.metrics.load("coreset_coverage")`. One input row per row of the full set.
"""

import datasets
import evaluate
import numpy as np
from scipy import linalg

_DESCRIPTION = """
Per class c (rows R_c, kept rows S_c = R_c and selected):
  share_c     = |S_c| / |R_c|                                (how much of the class is kept)
  nn_dist_c   = mean over i in R_c of min_{j in S_c} ||x_i - x_j||   (facility-location cost; 0 is perfect)
  radius_c    = max over i in R_c of min_{j in S_c} ||x_i - x_j||    (k-center covering radius)
A class with no kept row gets nn_dist_c = radius_c = inf.
Overall:
  class_tv        = 1/2 sum_c | |S_c|/|S| - |R_c|/|R| |      (class balance, total variation)
  mean_nn_dist    = mean over all rows of their class's nearest-kept distance
  frechet         = ||mu_S - mu_R||^2 + tr(C_S + C_R - 2 (C_S C_R)^(1/2))  (Gaussian fits of kept vs all rows)
Distances are computed in blocks of rows; no n x n matrix is formed.
"""

_KWARGS_DESCRIPTION = """
Args:
    features (`list[list[float]]`): one feature vector per row of the full set (e.g. the raw
        inputs or a model's penultimate features).
    labels (`list[int]`): class id of each row.
    selected (`list[bool]`): whether each row is in the coreset.
    block (`int`, *optional*, defaults to `4096`): rows per distance block.

Returns:
    `dict` with per_class_share, per_class_nn_dist, per_class_radius (lists, one per class id
    present), class_tv, mean_nn_dist, frechet.

Example:
    >>> import hf_coreset.metrics
    >>> cov = hf_coreset.metrics.load("coreset_coverage")
    >>> r = cov.compute(features=[[0.0], [1.0], [5.0], [6.0]], labels=[0, 0, 1, 1], selected=[1, 0, 0, 1])
    >>> r["per_class_nn_dist"], r["class_tv"]
    ([0.5, 0.5], 0.0)
"""


def _nearest_sq(x, kept, block):
    """min_j ||x_i - kept_j||^2 for every row i, block by block."""
    kn = (kept * kept).sum(1)
    out = np.empty(len(x))
    for s in range(0, len(x), block):
        xb = x[s:s + block]
        d = (xb * xb).sum(1)[:, None] + kn[None, :] - 2.0 * xb @ kept.T
        out[s:s + block] = np.maximum(d.min(1), 0.0)
    return out


def _frechet(a, b):
    mu = a.mean(0) - b.mean(0)
    ca = np.atleast_2d(np.cov(a, rowvar=False)) if len(a) > 1 else np.zeros((a.shape[1],) * 2)
    cb = np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(ca @ cb)
    root = root.real  # sqrtm of a product of PSD matrices is real up to round-off
    return float(mu @ mu + np.trace(ca) + np.trace(cb) - 2.0 * np.trace(root))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CoresetCoverage(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"features": datasets.Sequence(datasets.Value("float64")),
                                        "labels": datasets.Value("int64"),
                                        "selected": datasets.Value("bool")}),
        )

    def _compute(self, features, labels, selected, block=4096):
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels, dtype=np.int64)
        s = np.asarray(selected, dtype=bool)
        if x.ndim != 2 or len(x) != len(y) or len(y) != len(s):
            raise ValueError(f"features (shape {x.shape}), labels ({len(y)}) and selected ({len(s)}) must give "
                             "one feature vector, label and flag per row.")
        if not s.any():
            raise ValueError("selected has no True entry: the coreset is empty.")
        classes = np.unique(y)
        share, nn, radius = [], [], []
        dist = np.full(len(y), np.inf)
        for c in classes:
            rows = y == c
            kept = x[rows & s]
            share.append(float((rows & s).sum() / rows.sum()))
            if len(kept):
                dist[rows] = np.sqrt(_nearest_sq(x[rows], kept, block))
            nn.append(float(dist[rows].mean()))
            radius.append(float(dist[rows].max()))
        full_p = np.array([(y == c).mean() for c in classes])
        kept_p = np.array([(y[s] == c).mean() for c in classes])
        return {"per_class_share": share, "per_class_nn_dist": nn, "per_class_radius": radius,
                "class_tv": float(0.5 * np.abs(kept_p - full_p).sum()), "mean_nn_dist": float(dist.mean()),
                "frechet": _frechet(x[s], x)}
