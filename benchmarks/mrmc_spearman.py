"""MRMC on MNIST-1D: how strongly does the fitted loss drop rank like "low loss at epoch R"?

    python benchmarks/mrmc_spearman.py --num-samples 12500

The proxy (the reference ConvNet, Adam lr 1e-2, batch 128) trains R = 20 epochs on the MNIST-1D
train split; per-row losses come from the eval pass after each epoch (MRMC's default). We
report the Spearman correlation between the MRMC score (fitted drop q (1 - w^-R)) and minus the
loss at epoch R, for R = 10 and 20, fitting from epoch 1 (the default) or from epoch 0 (the
untrained model's loss included, `fit_from=0`), the correlation with the raw drop l(first) - l(R),
and the overlap of the top-10% sets. Writes benchmarks/results/mrmc_spearman.md. With the same `--cache-dir` as
seed_cost.py the proxy run is shared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where `benchmarks` is a package
from benchmarks import provenance  # noqa: E402
from benchmarks.seed_utils import write  # noqa: E402

PROXY = {"optimizer": "adam", "lr": 1e-2, "batch_size": 128}


def main() -> None:
    from scipy.stats import spearmanr

    import hf_coreset
    from hf_coreset.data import load_mnist1d
    from hf_coreset.data.mnist1d import make_convnet
    from hf_coreset.methods.mrmc import mrmc_scores

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=12500, help="MNIST-1D rows generated (80%% train)")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    header = provenance.header()
    cache = args.cache_dir or tempfile.mkdtemp(prefix="mrmc_spearman_")
    train = load_mnist1d(num_samples=args.num_samples)["train"]
    lines = ["## MRMC: rank correlation with low loss at epoch R (MNIST-1D)", "", header,
             f"MNIST-1D train split of {train.num_rows} rows, proxy {PROXY}, losses from the eval pass after each "
             "epoch. rho: Spearman correlation over all rows; overlap: share of MRMC's top 10% (global) that is also "
             "among the 10% lowest-loss rows at epoch R.", "",
             "| R | fit from epoch | rho(MRMC score, -loss at R) | rho(MRMC score, raw drop) | top-10% overlap with lowest loss at R | rows with a rising fitted loss | fit failures |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r, first in ((10, 1), (20, 1), (10, 0), (20, 0)):
        sel = hf_coreset.select(train, "mrmc", fraction=0.1, model=make_convnet(0), seed=0, proxy=PROXY,
                                cache_dir=cache, progress=False, epochs=r, fit_from=first)
        # the signals are cached now; read them back through the same path the method used
        from hf_coreset.api import check_dataset
        from hf_coreset.proxy import ProxyConfig, run_proxy

        labels, k = check_dataset(train, "label")
        signals, _ = run_proxy(make_convnet(0), train, labels, k, {e: frozenset({"loss"}) for e in range(first, r + 1)},
                               config=ProxyConfig(**PROXY), seed=0, label_column="label", cache_dir=cache,
                               progress=False)
        score, fit = mrmc_scores(signals, r, first)
        np.testing.assert_allclose(score, sel.scores)
        loss_r = signals.at(r, "loss").loss.astype(np.float64)
        raw = signals.at(first, "loss").loss - loss_r
        rho_low = spearmanr(score, -loss_r).statistic
        rho_raw = spearmanr(score, raw).statistic
        k10 = len(sel)
        low = set(np.argsort(loss_r, kind="stable")[:k10].tolist())
        overlap = len(low & set(sel.indices.tolist())) / k10
        lines.append(f"| {r} | {first} | {rho_low:.3f} | {rho_raw:.3f} | {100 * overlap:.1f}% | {fit['increasing']} | {fit['fit_failed']} |")
    lines.append("")
    write("mrmc_spearman.md", "\n".join(lines))


if __name__ == "__main__":
    main()
