"""coverage, prototypes and schedule: checked against brute force on small signals, and end to end."""

from __future__ import annotations

import numpy as np
import pytest

import hf_coreset
from hf_coreset import methods
from hf_coreset.budget import make_budget
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.methods._common import MethodOutput
from hf_coreset.methods.el2n import el2n_scores
from hf_coreset.methods.prototypes import random_members
from hf_coreset.ops import kmeans, nearest_rows
from hf_coreset.signals import Checkpoint, Signals


def make_signals(n_per_class=100, classes=3, dim=6, seed=0, epoch=10):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    logits = rng.normal(size=(len(labels), classes)) * 3
    feats = rng.normal(size=(len(labels), dim)) + 4 * labels[:, None]
    ckpt = Checkpoint(epoch=epoch, logits=logits, features=feats, correct=logits.argmax(1) == labels)
    return Signals(labels=labels, num_classes=classes, checkpoints={epoch: ckpt})


def run(name, signals, fraction, seed=0, **options):
    spec = methods.get(name)
    budget = make_budget(signals.labels, fraction=fraction, num_classes=signals.num_classes)
    return spec.fn(signals, budget, rng=np.random.default_rng(seed), **spec.check_options(options)), budget


def test_coverage_budget_exact_and_strata_spread():
    sig = make_signals()
    out, budget = run("coverage", sig, 0.2, strata=5, cut=0.0)
    assert len(out.indices) == budget.total == 60 and len(np.unique(out.indices)) == 60
    np.testing.assert_array_equal(np.bincount(sig.labels[out.indices]), budget.per_class)
    el2n = el2n_scores(sig, 10)
    for c in range(3):  # every class: 20 picks over 5 equal-width bins of its score range, 4 per non-small bin
        rows = np.flatnonzero(sig.labels == c)
        edges = np.linspace(el2n[rows].min(), el2n[rows].max(), 6)
        bin_of = lambda r: np.clip(np.searchsorted(edges, el2n[r], side="right") - 1, 0, 4)  # noqa: E731
        sizes = np.bincount(bin_of(rows), minlength=5)
        got = np.bincount(bin_of(out.indices[sig.labels[out.indices] == c]), minlength=5)
        # brute force of the CCS rule: bins visited from the smallest, each min(size, left / bins left)
        expect, left, nonempty = np.zeros(5, int), 20, [b for b in np.argsort(sizes, kind="stable") if sizes[b]]
        for i, b in enumerate(nonempty):
            expect[b] = min(sizes[b], left // (len(nonempty) - i))
            left -= expect[b]
        np.testing.assert_array_equal(got, expect)


def test_coverage_cut_drops_the_kept_end():
    sig = make_signals()
    el2n = el2n_scores(sig, 10)
    out, _ = run("coverage", sig, 0.3, cut=0.25)
    for c in range(3):
        rows = np.flatnonzero(sig.labels == c)
        hardest = rows[np.argsort(-el2n[rows], kind="stable")[:25]]  # el2n keeps the highest: cut those
        assert not np.isin(out.indices, hardest).any()
    np.testing.assert_array_equal(out.scores, el2n)


def all_field_signals(epochs, n_per_class=40, classes=3, dim=6, seed=0):
    """Every signal field at every epoch in `epochs`, random but consistent (loss from the logits)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    checkpoints = {}
    for e in epochs:
        logits = rng.normal(size=(len(labels), classes)) * 3
        log_p = logits - logits.max(1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
        checkpoints[e] = Checkpoint(epoch=e, loss=-log_p[np.arange(len(labels)), labels], logits=logits,
                                    correct=logits.argmax(1) == labels,
                                    features=rng.normal(size=(len(labels), dim)) + 3 * labels[:, None])
    return Signals(labels=labels, num_classes=classes, checkpoints=checkpoints)


SCORING = [n for n in methods.available() if methods.get(n).keeps is not methods.Keeps.OTHER]


@pytest.mark.parametrize("name", SCORING)
def test_typed_keeps_is_the_end_each_method_keeps_and_coverage_cuts(name):
    """A method's typed `keeps` names the end of its own scores that its selection takes, and
    coverage over it cuts that end (moderate's version-1 scores were distances, the wrong order)."""
    spec = methods.get(name)
    sig = all_field_signals(sorted(spec.needs(spec.check_options({}))))
    out, _ = run(name, sig, 0.25)
    toward_kept = out.scores if spec.keeps is methods.Keeps.HIGHEST else -out.scores
    cover, _ = run("coverage", sig, 0.25, score=name, cut=0.25)
    for c in range(3):
        rows = np.flatnonzero(sig.labels == c)
        kept, dropped = np.intersect1d(rows, out.indices), np.setdiff1d(rows, out.indices)
        if name == "mrmc-r":  # its first rho share is taken by the MRMC score, not by its scores (phi)
            assert toward_kept[kept].mean() > toward_kept[dropped].mean()
        else:  # top-k of its scores at the typed end
            assert toward_kept[kept].min() >= toward_kept[dropped].max()
        cut = rows[np.argsort(-toward_kept[rows], kind="stable")[:10]]  # 25% of 40 rows at the kept end
        assert not np.isin(cover.indices, cut).any()


def test_coverage_orients_a_lowest_keeping_method(monkeypatch):
    def easiest(signals, budget, *, rng, epoch: int = 10):
        return MethodOutput(indices=np.zeros(0, dtype=np.int64), scores=el2n_scores(signals, epoch))

    spec = methods.MethodSpec(name="easiest_test", fn=easiest, needs=lambda o: {10: frozenset({"logits"})}, version=1,
                              summary="", paper="", signal="", cost="", keeps=methods.Keeps.LOWEST,
                              keeps_note="easiest first", defaults={"epoch": 10})
    methods._load_all()
    monkeypatch.setitem(methods._REGISTRY, "easiest_test", spec)
    sig = make_signals()
    el2n = el2n_scores(sig, 10)
    out, _ = run("coverage", sig, 0.3, score="easiest_test", cut=0.25)
    for c in range(3):
        rows = np.flatnonzero(sig.labels == c)
        easiest_rows = rows[np.argsort(el2n[rows], kind="stable")[:25]]  # its kept end is the lowest
        assert not np.isin(out.indices, easiest_rows).any()
    assert methods.get("coverage").needs({"score": "easiest_test", "score_options": None}) == {10: {"logits"}}


@pytest.mark.parametrize("options, match", [
    ({"cut": 1.0}, "cut=1.0"), ({"cut": -0.1}, "cut=-0.1"), ({"strata": 0}, "strata=0"),
    ({"score": "coverage"}, "stratify itself"), ({"score": "kcenter"}, "keeps greedy order, not one end"),
    ({"score": "nope"}, "Unknown coreset method"),
])
def test_coverage_bad_inputs(options, match):
    with pytest.raises(ValueError, match=match):
        run("coverage", make_signals(), 0.1, **options)


def test_coverage_bad_inner_option():
    with pytest.raises(TypeError, match="unknown option"):
        run("coverage", make_signals(), 0.1, score_options={"epochs": 3})


def test_kmeans_is_a_lloyd_fixed_point_against_brute_force():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(40, 3)) + 30 * i for i in range(4)])
    centres, assign = kmeans(x, 4, iters=50, rng=np.random.default_rng(0))
    full = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)  # explicit n x k matrix, test only
    np.testing.assert_array_equal(assign, full.argmin(1))
    for j in range(4):
        np.testing.assert_allclose(centres[j], x[assign == j].mean(0))
    assert sorted(np.bincount(assign)) == [40, 40, 40, 40]  # the four blobs are recovered
    picks = nearest_rows(x, centres)
    np.testing.assert_array_equal(picks, full.argmin(0))  # distinct blobs: the plain nearest rows
    assert sorted(picks // 40) == [0, 1, 2, 3]


def test_nearest_rows_are_distinct_when_centres_coincide():
    x = np.array([[0.0], [1.0], [5.0]])
    np.testing.assert_array_equal(nearest_rows(x, np.array([[0.1], [0.1], [0.2]])), [0, 1, 2])


def test_prototypes_one_row_per_blob_and_easy_pool():
    sig = make_signals(n_per_class=60, classes=2, dim=4)
    rng = np.random.default_rng(3)
    blob = np.tile(np.repeat(np.arange(3), 20), 2)
    sig.checkpoints[10].features = rng.normal(size=(120, 4)) * 0.1 + 10 * blob[:, None] + 50 * sig.labels[:, None]
    out, budget = run("prototypes", sig, 0.05, easy=1.0)  # 3 rows per class
    assert len(out.indices) == budget.total == 6
    for c in range(2):
        kept = out.indices[sig.labels[out.indices] == c]
        assert sorted(blob[kept]) == [0, 1, 2]
    el2n = el2n_scores(sig, 10)
    out, _ = run("prototypes", sig, 0.05, easy=0.25)
    for c in range(2):
        rows = np.flatnonzero(sig.labels == c)
        easy_rows = rows[np.argsort(el2n[rows], kind="stable")[:15]]
        assert np.isin(out.indices[sig.labels[out.indices] == c], easy_rows).all()
    with pytest.raises(ValueError, match="easy=0"):
        run("prototypes", sig, 0.05, easy=0)
    with pytest.raises(ValueError, match="keep='middle'"):
        run("prototypes", sig, 0.05, keep="middle")


def test_prototypes_keep_random_draws_one_member_of_each_blob():
    sig = make_signals(n_per_class=60, classes=2, dim=4)
    rng = np.random.default_rng(3)
    blob = np.tile(np.repeat(np.arange(3), 20), 2)
    sig.checkpoints[10].features = rng.normal(size=(120, 4)) * 0.1 + 10 * blob[:, None] + 50 * sig.labels[:, None]
    nearest, _ = run("prototypes", sig, 0.05, easy=1.0)
    drawn = {tuple(run("prototypes", sig, 0.05, seed=s, easy=1.0, keep="random")[0].indices) for s in range(5)}
    for indices in drawn:
        for c in range(2):
            assert sorted(blob[[i for i in indices if sig.labels[i] == c]]) == [0, 1, 2]
    assert len(drawn) > 1 and tuple(nearest.indices) not in drawn  # random members, not the nearest rows


def test_random_members_fill_an_empty_cluster_with_the_nearest_free_row():
    x = np.array([[0.0], [0.1], [5.0], [5.1]])
    assign = np.array([0, 0, 1, 1])
    picks = random_members(assign, np.array([[0.0], [5.0], [0.05]]), x, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 3 and set(picks[:2] // 2) == {0, 1} and picks[2] in (0, 1)


@pytest.mark.parametrize("fraction, end", [(0.1, "easy"), (0.3, "hard")])
def test_schedule_switches_at_the_fraction(fraction, end):
    sig = make_signals()
    el2n = el2n_scores(sig, 10)
    out, budget = run("schedule", sig, fraction, switch=0.2)
    assert out.info["schedule_end"] == end
    for c, k in enumerate(budget.per_class):
        rows = np.flatnonzero(sig.labels == c)
        ranked = rows[np.argsort(el2n[rows] if end == "easy" else -el2n[rows], kind="stable")]
        assert set(out.indices[sig.labels[out.indices] == c]) == set(ranked[:k])
    with pytest.raises(ValueError, match="switch=0"):
        run("schedule", sig, fraction, switch=0.0)


@pytest.mark.slow
def test_end_to_end_through_select(mnist1d_small):
    ds = mnist1d_small["train"]
    proxy = {"optimizer": "adam", "lr": 1e-2}
    common = dict(fraction=0.05, model=make_convnet(0), proxy=proxy, progress=False, seed=0)
    faithful = hf_coreset.select(ds, "el2n", epoch=2, **common)
    cov = hf_coreset.select(ds, "coverage", score_options={"epoch": 2}, **common)
    proto = hf_coreset.select(ds, "prototypes", epoch=2, **common)
    for sel in (faithful, cov, proto):
        assert len(sel.indices) == len(np.unique(sel.indices)) == 80
    np.testing.assert_allclose(cov.scores, faithful.scores)  # same scores, different rows
    assert set(cov.indices) != set(faithful.indices) and cov.fingerprint != faithful.fingerprint
    again = hf_coreset.select(ds, "prototypes", epoch=2, **common)
    np.testing.assert_array_equal(again.indices, proto.indices)
