"""NFG's scalable path: neighbour counts against a reference set (the rectangular form of the kernel)
and the `reference_size` option (exact up to a threshold, a seeded sample of references above it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_coreset import Signals, methods
from hf_coreset.budget import make_budget
from hf_coreset.methods import nfg as nfg_module
from hf_coreset.methods._common import ExactLimit
from hf_coreset.ops.nfg import radius_neighbour_counts
from hf_coreset.signals import Checkpoint


def _brute_force(e, h, radius, references):
    """Counts by the definition, in float64: 1 - cos(g_i, g_j) < radius over references j != i."""
    g = np.einsum("nc,nd->ncd", e, h).reshape(len(e), -1)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    near = (1.0 - g @ g[references].T) < radius
    near[references, np.arange(len(references))] = False  # a row is not its own neighbour
    return near.sum(1)


@pytest.mark.parametrize("radius", [0.3, 1.4])
def test_rectangular_counts_equal_brute_force(radius):
    rng = np.random.default_rng(0)
    e, h = rng.normal(size=(70, 4)), rng.normal(size=(70, 5)) + 0.5
    references = np.sort(rng.choice(70, 23, replace=False))
    counts, stats = radius_neighbour_counts(e, h, radius, references=references, block=16, dtype=torch.float64)
    np.testing.assert_array_equal(counts, _brute_force(e, h, radius, references))
    assert stats.pairs == 70 * 23 - 23  # every (row, reference) pair but the references' own
    # references that are no row of the set counted: nothing to exclude, every row against them
    outside, _ = radius_neighbour_counts(e, h, radius, references=np.arange(50, 70), block=16, dtype=torch.float64)
    np.testing.assert_array_equal(outside[:50], _brute_force(e[:50], h[:50], radius, np.arange(0)) +
                                  ((1.0 - _cos(e, h)[:50, 50:]) < radius).sum(1))


def _cos(e, h):
    g = np.einsum("nc,nd->ncd", e, h).reshape(len(e), -1)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g @ g.T


def test_every_row_as_reference_is_the_square_case_exactly():
    rng = np.random.default_rng(1)
    e, h = rng.normal(size=(300, 10)), rng.normal(size=(300, 32)) + 1.0
    square, s1 = radius_neighbour_counts(e, h, 0.2, block=64)
    every, s2 = radius_neighbour_counts(e, h, 0.2, block=64, references=np.arange(300))
    np.testing.assert_array_equal(every, square)
    assert s1 == s2


@pytest.mark.parametrize("references", [np.array([3, 1]), np.array([0, 0, 2]), np.array([-1, 4]), np.array([5, 300]),
                                        np.array([[1, 2]]), np.array([0.0, 1.0])])
def test_bad_references_are_one_sentence(references):
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match=r"^references must be ascending distinct row positions in \[0, 300\)"):
        radius_neighbour_counts(rng.normal(size=(300, 3)), rng.normal(size=(300, 4)), 0.2, references=references)


def _signals(sizes, *, seed=0, epochs=2):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)])[rng.permutation(sum(sizes))]
    centres = rng.normal(size=(8, 12)) * 2
    checkpoints = {}
    for t in range(1, epochs + 1):
        h = centres[rng.integers(8, size=len(labels))] + rng.normal(size=(len(labels), 12))
        logits = rng.normal(size=(len(labels), len(sizes))) + 2.0 * np.eye(len(sizes))[labels]
        checkpoints[t] = Checkpoint(epoch=t, features=h.astype(np.float32), logits=logits.astype(np.float32))
    return Signals(labels=labels, num_classes=len(sizes), checkpoints=checkpoints)


def test_reference_size_at_least_the_class_is_exact():
    signals = _signals([300, 500, 200])
    budget = make_budget(signals.labels, fraction=0.1)
    exact = methods.run("nfg", signals, budget, epochs=2, radius=0.5, reference_size=None)
    assert "references" not in exact.info["nfg"]
    # half the largest class (sampling would cost what exact does); far more; the default, far below its threshold
    for size in (250, 10**6, "auto"):
        out = methods.run("nfg", signals, budget, epochs=2, radius=0.5, reference_size=size)
        np.testing.assert_array_equal(out.indices, exact.indices)
        np.testing.assert_array_equal(out.scores, exact.scores)
        assert out.info["nfg"]["references"]["classes"] == {"0": "all", "1": "all", "2": "all"}
    assert out.info["nfg"]["references"]["threshold"] == nfg_module.LIMIT.threshold


def test_sampled_references_are_deterministic_and_rank_by_the_rectangular_counts():
    signals = _signals([300, 500, 200], epochs=1)
    budget = make_budget(signals.labels, fraction=0.1)
    out = methods.run("nfg", signals, budget, seed=4, epochs=1, radius=0.5, reference_size=120)
    # classes of more than 2 x 120 rows sample; the 200-row class counts exactly (cheaper)
    assert out.info["nfg"]["references"] == {"reference_size": 120, "classes": {"0": 120, "1": 120, "2": "all"}}
    again = methods.run("nfg", signals, budget, seed=4, epochs=1, radius=0.5, reference_size=120)
    np.testing.assert_array_equal(out.indices, again.indices)
    np.testing.assert_array_equal(out.scores, again.scores)
    other = methods.run("nfg", signals, budget, seed=5, epochs=1, radius=0.5, reference_size=120)
    assert not np.array_equal(out.scores, other.scores)  # another seed, other references
    # the scores are the within-class ranks of the counts against the class's drawn references
    ckpt = signals.at(1, "logits", "features")
    e = ckpt.logit_grad(signals.labels)
    rows = np.flatnonzero(signals.labels == 1)
    refs = nfg_module.class_references(len(rows), 120, rng=np.random.default_rng(4), class_id=1, epoch=1)
    assert len(refs) == 120 and np.all(np.diff(refs) > 0)
    # a new draw at each checkpoint and for each class, from the seed only (the method's generator is not advanced)
    rng = np.random.default_rng(4)
    draws = [nfg_module.class_references(len(rows), 120, rng=rng, class_id=c, epoch=t) for c, t in ((1, 1), (1, 2), (0, 1))]
    np.testing.assert_array_equal(draws[0], refs)
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[0], draws[2])
    assert rng.integers(1 << 30) == np.random.default_rng(4).integers(1 << 30)
    counts, _ = radius_neighbour_counts(e[rows], ckpt.features[rows], 0.5, references=refs)
    np.testing.assert_array_equal(out.scores[rows] * len(rows), nfg_module.density_ranks(counts))


def test_default_samples_above_the_threshold(monkeypatch):
    """With the threshold patched to 400 rows (200 references), the 500-row class counts against 200
    sampled references, exactly as reference_size=200; the others count exactly."""
    monkeypatch.setattr(nfg_module, "LIMIT", ExactLimit(rows=400, seconds=60.0, size=200))
    signals = _signals([300, 500, 200])
    budget = make_budget(signals.labels, fraction=0.1)
    auto = methods.run("nfg", signals, budget, seed=2, epochs=2, radius=0.5)
    assert auto.info["nfg"]["references"] == {"reference_size": "auto", "threshold": 400,
                                              "classes": {"0": "all", "1": 200, "2": "all"}}
    sampled = methods.run("nfg", signals, budget, seed=2, epochs=2, radius=0.5, reference_size=200)
    np.testing.assert_array_equal(auto.indices, sampled.indices)
    np.testing.assert_array_equal(auto.scores, sampled.scores)
    exact = methods.run("nfg", signals, budget, seed=2, epochs=2, radius=0.5, reference_size=None)
    small = signals.labels != 1
    np.testing.assert_array_equal(auto.scores[small], exact.scores[small])
    assert not np.array_equal(auto.scores[~small], exact.scores[~small])


@pytest.mark.parametrize("value,error", [("all", TypeError), (1, ValueError), (100.0, TypeError)])
def test_bad_reference_size_is_one_sentence(value, error):
    signals = _signals([50, 50])
    with pytest.raises(error, match=r"^reference_size=.* must be 'auto' \(exact up to 17,000 rows per class, 8,500 "
                                    r"sampled reference rows above\), None \(exact on every class\) or an integer >= 2, "
                                    r"e\.g\. 10000\.$"):
        methods.run("nfg", signals, make_budget(signals.labels, fraction=0.1), epochs=2, reference_size=value)
