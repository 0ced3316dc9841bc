"""The partitioned path of kcenter and craig: exact when one part holds the class, close to exact
above it (objectives by brute force on a small class), and a split that depends only on the seed
and the class."""

from __future__ import annotations

import numpy as np
import pytest

from hf_coreset import Signals, methods
from hf_coreset.budget import make_budget
from hf_coreset.methods._common import only_classes, partition
from hf_coreset.signals import Checkpoint


def _signals(sizes, dim, *, seed=0, blobs=20):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)])
    labels = labels[rng.permutation(len(labels))]
    centres = rng.normal(size=(blobs, dim)) * 3
    x = centres[rng.integers(blobs, size=len(labels))] + rng.normal(size=(len(labels), dim))
    ckpt = Checkpoint(epoch=1, features=x.astype(np.float32),
                      logits=rng.normal(size=(len(labels), len(sizes))).astype(np.float32))
    return Signals(labels=labels, num_classes=len(sizes), checkpoints={1: ckpt})


def _distances(x, picks):
    x = x.astype(np.float64)
    return np.sqrt(np.maximum(((x[:, None, :] - x[None, picks, :]) ** 2).sum(-1), 0))


CASES = [("kcenter", {"init": "mean"}), ("kcenter", {"init": "random"}),
         ("craig", {"space": "gradient"}), ("craig", {"space": "features"}), ("kernel-herding", {})]


@pytest.mark.parametrize("method,options", CASES)
def test_one_partition_holding_the_class_is_exact(method, options):
    signals = _signals([300, 500, 200], 6)
    budget = make_budget(signals.labels, fraction=0.1)
    exact = methods.run(method, signals, budget, seed=3, epoch=1, **options)
    for size in (500, 10_000):  # the largest class exactly fills one part; far more room
        part = methods.run(method, signals, budget, seed=3, epoch=1, partition_size=size, **options)
        np.testing.assert_array_equal(part.indices, exact.indices)
        if exact.gains is not None:
            np.testing.assert_array_equal(part.gains, exact.gains)
        if exact.weights is not None:
            np.testing.assert_array_equal(part.weights, exact.weights)
        assert part.info == exact.info == {}


def test_facility_location_partitioned_keeps_98_percent_of_the_objective():
    signals = _signals([3000], 16)
    budget = make_budget(signals.labels, fraction=0.1)
    x = signals.at(1, "features").features
    c = 2.0 * np.sqrt((x.astype(np.float64) ** 2).sum(1).max())

    def objective(picks):  # F(S) = sum_i max_{j in S} (c - d_ij), by brute force
        return float((c - _distances(x, picks)).max(1).sum())

    exact = methods.run("craig", signals, budget, epoch=1, space="features")
    part = methods.run("craig", signals, budget, epoch=1, space="features", partition_size=1000)
    assert part.info == {"partitioned": {"partition_size": 1000, "parts": {"0": 3}}}
    assert len(part.indices) == len(set(part.indices)) == 300
    assert objective(part.indices) / objective(exact.indices) >= 0.98
    # gains over the whole class; float32 distances (norms - 2 x.y) against float64 ones
    np.testing.assert_allclose(part.gains.sum(), objective(part.indices), rtol=1e-4)
    assert part.weights.sum() == 3000


def test_kcenter_partitioned_radius_within_10_percent():
    signals = _signals([3000], 16)
    budget = make_budget(signals.labels, fraction=0.1)
    x = signals.at(1, "features").features

    def radius(picks):
        return float(_distances(x, picks).min(1).max())

    exact = methods.run("kcenter", signals, budget, epoch=1)
    part = methods.run("kcenter", signals, budget, epoch=1, partition_size=1000)
    assert part.info == {"partitioned": {"partition_size": 1000, "parts": {"0": 3}}}
    assert len(part.indices) == len(set(part.indices)) == 300
    assert radius(part.indices) <= 1.1 * radius(exact.indices)


def test_split_depends_only_on_the_seed_and_the_class():
    rng = np.random.default_rng(7)
    parts = partition(2500, 77, 1000, rng=rng, class_id=4)
    assert rng.integers(1 << 30) == np.random.default_rng(7).integers(1 << 30)  # the method's rng is not advanced
    again = partition(2500, 77, 1000, rng=np.random.default_rng(7), class_id=4)
    assert all(np.array_equal(a, b) and ka == kb for (a, ka), (b, kb) in zip(parts, again))
    assert [len(p) for p, _ in parts] == [834, 833, 833] and [k for _, k in parts] == [26, 26, 25]
    np.testing.assert_array_equal(np.sort(np.concatenate([p for p, _ in parts])), np.arange(2500))
    other = partition(2500, 77, 1000, rng=np.random.default_rng(7), class_id=5)
    assert not np.array_equal(parts[0][0], other[0][0])
    assert len(partition(2500, 2, 1000, rng=rng, class_id=4)) == 2  # never more parts than picks


@pytest.mark.parametrize("method,options", CASES)
def test_partitioned_picks_do_not_depend_on_which_classes_a_process_runs(method, options):
    signals = _signals([900, 1300, 700], 6)
    budget = make_budget(signals.labels, fraction=0.1)
    whole = methods.run(method, signals, budget, seed=5, epoch=1, partition_size=400, **options)
    assert whole.info == {"partitioned": {"partition_size": 400, "parts": {"0": 3, "1": 4, "2": 2}}}
    for mine in ([1], [0, 2]):  # the classes one of two processes would own
        with only_classes(mine):
            out = methods.run(method, signals, budget, seed=5, epoch=1, partition_size=400, **options)
        keep = np.isin(signals.labels[whole.indices], mine)
        np.testing.assert_array_equal(out.indices, whole.indices[keep])
        if whole.gains is not None:
            np.testing.assert_array_equal(out.gains, whole.gains[keep])
        assert out.info == whole.info  # recorded for every class, whichever process ran it


def test_kernel_herding_partitioned_mmd_within_10_percent():
    """MMD between picks and class under the method's Gaussian kernel, by brute force; the partitioned
    picks also beat a random subset of the same size by far (herding's point)."""
    signals = _signals([3000], 16)
    budget = make_budget(signals.labels, fraction=0.1)
    x = signals.at(1, "features").features.astype(np.float64)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    gram = np.exp(-d2 / d2.mean())  # bandwidth 1 in units of the mean squared pairwise distance

    def mmd(picks):
        return float(np.sqrt(gram[np.ix_(picks, picks)].mean() - 2 * gram[picks].mean() + gram.mean()))

    exact = methods.run("kernel-herding", signals, budget, epoch=1)
    part = methods.run("kernel-herding", signals, budget, epoch=1, partition_size=1000)
    assert part.info == {"partitioned": {"partition_size": 1000, "parts": {"0": 3}}}
    assert len(part.indices) == len(set(part.indices)) == 300
    assert mmd(part.indices) <= 1.1 * mmd(exact.indices)
    assert mmd(part.indices) < 0.5 * mmd(np.random.default_rng(0).choice(3000, 300, replace=False))


def test_partitioned_kernel_herding_draws_the_same_anchors_whichever_classes_a_process_runs():
    """Parts above the 4096 anchors and the class's second round draw from the selection's generator;
    a process that skips the class still makes those draws, so the next class's picks do not change."""
    signals = _signals([9000, 5000], 3, blobs=5)
    budget = make_budget(signals.labels, fraction=0.01)
    whole = methods.run("kernel-herding", signals, budget, seed=5, epoch=1, partition_size=4500)
    assert whole.info == {"partitioned": {"partition_size": 4500, "parts": {"0": 2, "1": 2}}}
    with only_classes([1]):
        out = methods.run("kernel-herding", signals, budget, seed=5, epoch=1, partition_size=4500)
    np.testing.assert_array_equal(out.indices, whole.indices[signals.labels[whole.indices] == 1])
