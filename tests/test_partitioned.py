"""The partitioned path of kcenter, craig, kernel herding and herding: exact when one part holds the class,
close to exact above it (objectives by brute force on a small class), a split that depends only on
the seed and the class, and the default ("auto"): exact up to each method's threshold, partitioned above."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from hf_coreset import Signals, methods
from hf_coreset.budget import make_budget
from hf_coreset.methods import _common
from hf_coreset.methods._common import ExactLimit, only_classes, partition, round2_groups
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
         ("craig", {"space": "gradient"}), ("craig", {"space": "features"}), ("kernel-herding", {}), ("herding", {}),
         ("prototypes", {"easy": 1.0})]  # every row clustered: the threshold applies to the class's size
DISTRIBUTABLE = [case for case in CASES if case[0] != "prototypes"]  # its k-means draws go class after class


@pytest.mark.parametrize("method,options", CASES)
def test_one_partition_holding_the_class_is_exact(method, options):
    signals = _signals([300, 500, 200], 6)
    budget = make_budget(signals.labels, fraction=0.1)
    exact = methods.run(method, signals, budget, seed=3, epoch=1, partition_size=None, **options)
    assert exact.info == {}
    # the largest class exactly fills one part; far more room; the default, far below every threshold
    for size in (500, 10_000, "auto"):
        part = methods.run(method, signals, budget, seed=3, epoch=1, partition_size=size, **options)
        np.testing.assert_array_equal(part.indices, exact.indices)
        if exact.gains is not None:
            np.testing.assert_array_equal(part.gains, exact.gains)
        if exact.weights is not None:
            np.testing.assert_array_equal(part.weights, exact.weights)
        threshold = {"threshold": _module(method).LIMIT.threshold} if size == "auto" else {}
        assert part.info == {"partitioned": {"partition_size": size, **threshold, "parts": {"0": 1, "1": 1, "2": 1}}}
    default = methods.run(method, signals, budget, seed=3, epoch=1, **options)
    assert default.info == part.info  # the default is "auto"
    np.testing.assert_array_equal(default.indices, exact.indices)


def _module(method):
    return importlib.import_module(f"hf_coreset.methods.{method.replace('-', '_')}")


@pytest.mark.parametrize("method,options", CASES)
def test_default_is_exact_up_to_the_threshold_and_partitioned_above(method, options, monkeypatch):
    """With the threshold patched to 1,000 rows: the 1,300-row class takes the partitioned path with the
    method's partition size, exactly as an explicit partition_size; the others run exact."""
    monkeypatch.setattr(_module(method), "LIMIT", ExactLimit(rows=1000, seconds=60.0, size=400))
    signals = _signals([900, 1300, 700], 6)
    budget = make_budget(signals.labels, fraction=0.1)
    auto = methods.run(method, signals, budget, seed=5, epoch=1, **options)
    assert auto.info == {"partitioned": {"partition_size": "auto", "threshold": 1000, "parts": {"0": 1, "1": 4, "2": 1}}}
    split = methods.run(method, signals, budget, seed=5, epoch=1, partition_size=400, **options)
    exact = methods.run(method, signals, budget, seed=5, epoch=1, partition_size=None, **options)
    big = signals.labels[auto.indices] == 1
    if method == "prototypes":  # its k-means draws go class after class: only the class before the big one compares
        first = signals.labels[auto.indices] == 0
        np.testing.assert_array_equal(auto.indices[first], exact.indices[signals.labels[exact.indices] == 0])
    else:
        np.testing.assert_array_equal(auto.indices[big], split.indices[signals.labels[split.indices] == 1])
        np.testing.assert_array_equal(auto.indices[~big], exact.indices[signals.labels[exact.indices] != 1])
    assert not np.array_equal(auto.indices[big], exact.indices[signals.labels[exact.indices] == 1])


def test_threshold_follows_the_measured_cost():
    """An exact class costing 60 s at the measured size puts the threshold there; 4x the time halves it."""
    assert ExactLimit(rows=30_000, seconds=60.0, size=2).threshold == 30_000
    assert ExactLimit(rows=30_000, seconds=240.0, size=2).threshold == 15_000
    assert ExactLimit(rows=30_000, seconds=61.0, size=2).threshold == 29_000  # two significant digits, rounded down
    limit = ExactLimit(rows=30_000, seconds=240.0, size=2_000)
    assert [limit.size_for("auto", n) for n in (15_000, 15_001)] == [None, 2_000]
    assert limit.size_for(None, 10**6) is None and limit.size_for(500, 100) == 500


@pytest.mark.parametrize("value,error", [("Auto", TypeError), (1, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_partition_size_is_one_sentence(value, error):
    signals = _signals([50], 3)
    with pytest.raises(error, match=r"^partition_size=.* must be 'auto' \(exact up to 50,000 rows per class, parts "
                                    r"of 5,000 above\), None \(exact on every class\) or an integer >= 2, e\.g\. 5000\.$"):
        methods.run("kcenter", signals, make_budget(signals.labels, fraction=0.1), epoch=1, partition_size=value)


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


@pytest.mark.parametrize("method,options", DISTRIBUTABLE)
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


def _gram(x):
    x = x.astype(np.float64)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / d2.mean())  # bandwidth 1 in units of the mean squared pairwise distance


def _mmd(gram, picks):
    return float(np.sqrt(gram[np.ix_(picks, picks)].mean() - 2 * gram[picks].mean() + gram.mean()))


def test_round2_groups_bound_the_candidates_of_one_second_round(monkeypatch):
    monkeypatch.setattr(_common, "ROUND2_ROWS", 300)
    split = partition(3000, 300, 500, rng=np.random.default_rng(0), class_id=0)  # 6 parts, 100 candidates each
    assert round2_groups(split) == [[0, 1, 2], [3, 4, 5]]
    assert round2_groups(split[:3]) == [[0, 1, 2]]  # 300 candidates: one group
    monkeypatch.setattr(_common, "ROUND2_ROWS", 1)
    assert round2_groups(split) == [[i] for i in range(6)]  # never more groups than parts


@pytest.mark.parametrize("method,options", [("kernel-herding", {}), ("herding", {}), ("craig", {"space": "features"})])
def test_second_round_in_groups_stays_close_to_exact(method, options, monkeypatch):
    """6 parts whose 600 candidates exceed a patched ROUND2_ROWS of 300: round 2 runs on two groups of three
    parts, each picking its parts' share. Each method's objective, by brute force, against one round 2 over
    all candidates (what grouping costs), exact and random."""
    signals = _signals([3000], 16)
    budget = make_budget(signals.labels, fraction=0.1)
    x = signals.at(1, "features").features.astype(np.float64)
    exact = methods.run(method, signals, budget, epoch=1, **options).indices
    one_group = methods.run(method, signals, budget, epoch=1, partition_size=500, **options)
    monkeypatch.setattr(_common, "ROUND2_ROWS", 300)
    grouped = methods.run(method, signals, budget, epoch=1, partition_size=500, **options)
    assert grouped.info == {"partitioned": {"partition_size": 500, "parts": {"0": 6}}}
    picks = grouped.indices
    assert len(picks) == len(set(picks)) == 300
    if method != "craig":  # craig keeps the parts' proportional picks (A) in both groups here, as in one
        assert not np.array_equal(picks, one_group.indices)
    # each group's picks come from its own parts, in its parts' share of the budget
    split = partition(3000, 300, 500, rng=np.random.default_rng(0), class_id=0)
    halves = [np.concatenate([split[i][0] for i in g]) for g in round2_groups(split)]
    assert [np.isin(picks, h).sum() for h in halves] == [sum(split[i][1] for i in g) for g in round2_groups(split)]
    random = np.random.default_rng(0).choice(3000, 300, replace=False)
    if method == "kernel-herding":
        gram = _gram(x)
        mmd = {name: _mmd(gram, p) for name, p in (("grouped", picks), ("one", one_group.indices), ("exact", exact))}
        assert mmd["grouped"] <= 1.1 * mmd["one"] and mmd["grouped"] <= 1.3 * mmd["exact"]
        assert mmd["grouped"] < 0.2 * _mmd(gram, random)
    elif method == "herding":
        def gap(p):  # distance between the picks' mean and the class's
            return float(np.linalg.norm(x[p].mean(0) - x.mean(0)))
        assert gap(picks) <= 1.3 * gap(one_group.indices) and gap(picks) <= 2 * gap(exact)
        assert gap(picks) < 0.2 * gap(random)
    else:
        c = 2.0 * np.sqrt((x ** 2).sum(1).max())

        def objective(p):
            return float((c - _distances(x, p)).max(1).sum())
        assert objective(picks) / objective(exact) >= 0.98
        np.testing.assert_allclose(grouped.gains.sum(), objective(picks), rtol=1e-4)  # over the whole class
        np.testing.assert_allclose(one_group.gains.sum(), objective(one_group.indices), rtol=1e-4)
        assert grouped.weights.sum() == 3000


def test_grouped_kernel_herding_draws_the_same_anchors_whichever_classes_a_process_runs(monkeypatch):
    """Each round-2 group above the 4096 anchors draws them; a process that skips the class draws them too."""
    monkeypatch.setattr(_common, "ROUND2_ROWS", 100)
    signals = _signals([9000, 5000], 3, blobs=5)
    budget = make_budget(signals.labels, fraction=0.01)
    split = partition(9000, 90, 2250, rng=np.random.default_rng(5), class_id=0)
    assert [sum(len(split[i][0]) for i in g) for g in round2_groups(split)] == [4500, 4500]  # both above 4096
    whole = methods.run("kernel-herding", signals, budget, seed=5, epoch=1, partition_size=2250)
    with only_classes([1]):
        out = methods.run("kernel-herding", signals, budget, seed=5, epoch=1, partition_size=2250)
    np.testing.assert_array_equal(out.indices, whole.indices[signals.labels[whole.indices] == 1])


def test_prototypes_partitioned_stays_close_to_exact():
    """The k-medoid objective (each clustered row's distance to its nearest pick), by brute force: the
    partitioned k-means within 10% of exact's, and below a random subset's (unit noise in 16 dims keeps every
    row far from any other: about 5% below, as exact's)."""
    signals = _signals([3000], 16)
    budget = make_budget(signals.labels, fraction=0.1)
    x = signals.at(1, "features").features

    def cost(picks):
        return float(_distances(x, picks).min(1).sum())

    exact = methods.run("prototypes", signals, budget, epoch=1, easy=1.0)
    part = methods.run("prototypes", signals, budget, epoch=1, easy=1.0, partition_size=1000)
    assert part.info == {"partitioned": {"partition_size": 1000, "parts": {"0": 3}}}
    assert len(part.indices) == len(set(part.indices)) == 300 and part.gains.sum() == 3000  # cluster sizes
    assert cost(part.indices) <= 1.1 * cost(exact.indices)
    assert cost(part.indices) < cost(np.random.default_rng(0).choice(3000, 300, replace=False))
    easy = methods.run("prototypes", signals, budget, epoch=1, partition_size=1000)  # 2,700 clustered rows
    assert easy.info == {"partitioned": {"partition_size": 1000, "parts": {"0": 3}}} and easy.gains.sum() == 2700
