"""The ten baseline methods: end to end on real data, and against brute-force references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hf_coreset
from hf_coreset.budget import make_budget
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.ops import (FeatureKernel, GradientKernel, facility_gains, facility_location, facility_objective,
                            gaussian_herding, herding, kcenter_greedy)
from hf_coreset.signals import Checkpoint, Signals

# forgetting first: it fills epochs 1 and 2 of the signal cache, which the others then reuse.
BASELINES = ["forgetting", "ccs", "craig", "el2n", "entropy", "grand", "herding", "kcenter", "moderate", "random"]
WEIGHTED = {"craig"}
SCORED = {"ccs", "el2n", "entropy", "forgetting", "grand", "moderate"}


def method_options(method: str, epoch: int = 2) -> dict:
    if method == "random":
        return {}
    if method == "forgetting":
        return {"epochs": epoch}
    return {"epoch": epoch}


def check_selection(sel, ds, labels, fraction):
    budget = make_budget(labels, fraction=fraction)
    assert len(sel) == budget.total
    assert len(np.unique(sel.indices)) == len(sel)
    assert sel.per_class_counts(labels) == {c: int(k) for c, k in enumerate(budget.per_class) if k}
    assert sel.scores.shape == (ds.num_rows,)
    assert sel.apply(ds).num_rows == len(sel)


# ----------------------------------------------------------------------------------- real data
@pytest.mark.parametrize("method", BASELINES)
def test_each_method_on_mnist1d(method, mnist1d_small, mnist1d_proxy):
    ds = mnist1d_small["train"]
    labels = np.asarray(ds["label"])
    sel = hf_coreset.select(ds, method, fraction=0.1, model=make_convnet(0), seed=0, proxy=mnist1d_proxy,
                            progress=False, **method_options(method))
    check_selection(sel, ds, labels, 0.1)
    assert sel.method == method and sel.seed == 0
    if method in SCORED:
        assert np.all(np.isfinite(sel.scores))
    if method in WEIGHTED:
        # CRAIG weights are cluster sizes: each class's rows are split among that class's picks.
        assert sel.weights.sum() == pytest.approx(ds.num_rows)
        assert np.all(sel.weights >= 1)
    # Same seed, same inputs -> the same rows (signals come from the cache the first call filled).
    again = hf_coreset.select(ds, method, fraction=0.1, model=make_convnet(0), seed=0, proxy=mnist1d_proxy,
                              progress=False, **method_options(method))
    np.testing.assert_array_equal(again.indices, sel.indices)
    assert again.fingerprint == sel.fingerprint


@pytest.mark.slow
@pytest.mark.parametrize("method", BASELINES)
def test_each_method_on_text_with_minilm(method, minilm_path, minilm_text):
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    ds, tokenizer = minilm_text
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the new classifier layer is drawn from the global RNG: fix it, locally
        model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    sel = hf_coreset.select(ds, method, fraction=0.25, model=model, seed=0, collate_fn=DataCollatorWithPadding(tokenizer),
                            proxy={"lr": 5e-5, "batch_size": 16, "eval_batch_size": 48}, progress=False,
                            **method_options(method))
    check_selection(sel, ds, np.asarray(ds["label"]), 0.25)
    if method in WEIGHTED:
        assert sel.weights.sum() == pytest.approx(ds.num_rows)


def test_same_seed_same_indices_after_fresh_training(mnist1d_small, mnist1d_proxy, tmp_path):
    """Two independent proxy trainings (separate caches) with one seed give the same selection."""
    ds = mnist1d_small["train"].select(range(400))
    runs = [hf_coreset.select(ds, "el2n", fraction=0.2, model=make_convnet(0), seed=3, proxy=mnist1d_proxy,
                              cache_dir=tmp_path / str(i), progress=False, epoch=1) for i in range(2)]
    # Exact: one process and thread count, so both trainings do the same float operations in the same order.
    np.testing.assert_array_equal(runs[0].indices, runs[1].indices)
    np.testing.assert_array_equal(runs[0].scores, runs[1].scores)
    other = hf_coreset.select(ds, "random", fraction=0.2, seed=4)
    assert not np.array_equal(np.sort(other.indices),
                              np.sort(hf_coreset.select(ds, "random", fraction=0.2, seed=3).indices))


# ------------------------------------------------------- GraNd / EL2N vs torch.func gradients
def per_sample_head_grads(model, x, y):
    """Per-row gradients of cross-entropy w.r.t. the final Linear's weight and bias, by torch.func."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    head = {k: params[k] for k in ("classifier.weight", "classifier.bias")}
    rest = {k: v for k, v in params.items() if k not in head}

    def loss(head_params, xi, yi):
        logits = functional_call(model, {**rest, **head_params}, (xi[None],))
        return torch.nn.functional.cross_entropy(logits, yi[None])

    g = vmap(grad(loss), in_dims=(None, 0, 0))(head, x, y)
    return g["classifier.weight"].flatten(1), g["classifier.bias"]


@pytest.mark.parametrize("epoch", [0, 1])
def test_grand_and_el2n_match_torch_func_per_sample_gradients(epoch, mnist1d_small, mnist1d_proxy, tmp_path):
    ds = mnist1d_small["train"].select(range(300))
    model = make_convnet(1)
    # keep_state: the test reads the proxy's weights at that epoch from the cache.
    kw = dict(fraction=0.2, model=model, seed=0, proxy={**mnist1d_proxy, "keep_state": True}, cache_dir=tmp_path,
              progress=False, epoch=epoch)
    grand = hf_coreset.select(ds, "grand", **kw)
    el2n = hf_coreset.select(ds, "el2n", **kw)
    proxy = make_convnet(1)
    if epoch > 0:  # the proxy's weights at that epoch, as the cache kept them for resuming
        (state_file,) = Path(tmp_path).glob("signals/*/proxy_state.pt")
        state = torch.load(state_file, weights_only=True)
        assert state["epoch"] == epoch
        proxy.load_state_dict(state["model"])
    proxy.eval()
    x = torch.tensor(np.asarray(ds["x"]), dtype=torch.float32)
    y = torch.tensor(np.asarray(ds["label"]))
    gw, gb = per_sample_head_grads(proxy, x, y)
    expected_grand = torch.sqrt((gw ** 2).sum(1) + (gb ** 2).sum(1)).numpy()
    expected_el2n = gb.norm(dim=1).numpy()  # the bias gradient is p - y
    np.testing.assert_allclose(grand.scores, expected_grand, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(el2n.scores, expected_el2n, rtol=1e-4, atol=1e-6)
    # Kept: the highest scores of each class.
    labels = y.numpy()
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        kept = np.intersect1d(grand.indices, rows)
        threshold = np.sort(expected_grand[rows])[::-1][len(kept) - 1]
        assert np.all(expected_grand[kept] >= threshold - 1e-6)


# --------------------------------------------------------------- brute-force greedy references
# The library computes in float32 (or float64 in another order), so its picks can equal a reference's
# only where each step's winner leads the runner-up by more than float error (~1e-6 relative): the
# references assert that margin (measured: >= 1.9e-4 on these data), instead of trusting the data.
CLEAR_LEAD = 1e-5


def naive_kcenter(x, k, first):
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    picks, radii = [first], [np.inf]
    mind = d[first].copy()
    mind[first] = -1
    for _ in range(1, k):
        j = int(np.argmax(mind))
        assert mind[j] - np.partition(mind, -2)[-2] > CLEAR_LEAD * mind[j], "near-tie: picks may differ"
        radii.append(mind[j])
        picks.append(j)
        mind = np.minimum(mind, d[j])
        mind[picks] = -1
    return np.array(picks), np.array(radii)


def naive_facility_location(points, k, follow=None):
    """Greedy max of F(S) = sum_i max_{j in S} (c - d_ij) with the full distance matrix.

    With `follow` (another solver's picks), step t takes follow[t] instead of its own argmax and
    also returns how far that pick's gain falls below the best gain at that step (0 for an exact
    greedy; pairs of rows can tie exactly, so picks are compared through their gains).
    """
    d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    s = d.max() + 1.0 - d
    current = np.zeros(len(points))
    picks, gains, shortfall = [], [], []
    for t in range(k):
        g = np.maximum(s - current[:, None], 0).sum(0)
        g[picks] = -np.inf
        j = int(np.argmax(g)) if follow is None else int(follow[t])
        assert follow is not None or g[j] - np.partition(g, -2)[-2] > CLEAR_LEAD * g[j], "near-tie: picks may differ"
        shortfall.append(g.max() - g[j])
        picks.append(j)
        gains.append(g[j])
        current = np.maximum(current, s[:, j])
    weights = np.bincount(np.argmax(s[:, picks], axis=1), minlength=k)
    return np.array(picks), np.array(gains), weights, np.array(shortfall)


def assert_greedy_facility_location(points, picks, gains, weights):
    _, ref_gains, ref_weights, shortfall = naive_facility_location(points, len(picks), follow=picks)
    assert len(np.unique(picks)) == len(picks)
    # Each pick has the largest marginal gain given the picks before it.
    np.testing.assert_allclose(shortfall, 0, atol=1e-4 * ref_gains[1])
    # Gains after the first do not depend on the similarity offset c.
    np.testing.assert_allclose(gains[1:], ref_gains[1:], rtol=1e-3, atol=1e-4 * ref_gains[1])
    assert np.all(np.diff(gains) <= 1e-6 * gains[0])  # greedy gains of a submodular F never increase
    np.testing.assert_array_equal(weights, ref_weights)  # cluster sizes
    assert weights.sum() == len(points)


def naive_herding(x, k):
    mu = x.mean(0)
    total = np.zeros_like(mu)
    picks = []
    for t in range(1, k + 1):
        d = np.linalg.norm(t * mu - total - x, axis=1)
        d[picks] = np.inf
        j = int(np.argmin(d))
        assert np.partition(d, 1)[1] - d[j] > CLEAR_LEAD * d[j], "near-tie: picks may differ"
        picks.append(j)
        total += x[j]
    return np.array(picks)


def explicit_gradients(logit_grad, features):
    """Last-layer gradients (p - y) h^T, flattened, with the bias gradient p - y appended."""
    return np.concatenate([(logit_grad[:, :, None] * features[:, None, :]).reshape(len(features), -1), logit_grad], 1)


@pytest.mark.parametrize("n,d,k", [(50, 3, 7), (200, 16, 30)])
def test_kcenter_greedy_matches_naive(n, d, k):
    x = np.random.default_rng(n).normal(size=(n, d))
    picks, radii = kcenter_greedy(x, k, first=5)
    ref_picks, ref_radii = naive_kcenter(x, k, first=5)
    np.testing.assert_array_equal(picks, ref_picks)
    np.testing.assert_allclose(radii[1:], ref_radii[1:], rtol=1e-4)
    assert np.all(np.diff(radii[1:]) <= 1e-6)  # covering radius only shrinks


@pytest.mark.parametrize("dense", [False, True])  # similarity columns recomputed, or the matrix kept
@pytest.mark.parametrize("n,d,k", [(60, 4, 8), (180, 12, 25)])
def test_facility_location_matches_naive(n, d, k, dense):
    x = np.random.default_rng(d).normal(size=(n, d)).astype(np.float32)
    picks, gains, weights = facility_location(FeatureKernel(x), k, block=64, dense=dense)  # several blocks
    assert_greedy_facility_location(x.astype(np.float64), picks, gains, weights)
    np.testing.assert_array_equal(picks, naive_facility_location(x.astype(np.float64), k)[0])  # no near-ties here


def test_facility_objective_is_the_sum_of_the_gains():
    x = np.random.default_rng(2).normal(size=(300, 5)).astype(np.float32)
    picks = np.random.default_rng(3).choice(300, 40, replace=False)
    kernel = FeatureKernel(x)
    gains, _ = facility_gains(kernel, picks, block=64, chunk=16)
    c = 2.0 * np.sqrt((x.astype(np.float64) ** 2).sum(1).max())
    brute = (c - np.sqrt(((x[:, None, :].astype(np.float64) - x[None, picks, :]) ** 2).sum(-1))).max(1).sum()
    np.testing.assert_allclose(facility_objective(kernel, picks, block=64, chunk=16), gains.sum(), rtol=1e-12)
    np.testing.assert_allclose(facility_objective(kernel, picks), brute, rtol=1e-5)  # float32 distances


def test_gradient_kernel_facility_location_matches_explicit_gradients():
    rng = np.random.default_rng(0)
    n, c, h = 80, 4, 6
    logits = rng.normal(size=(n, c))
    labels = rng.integers(0, c, n)
    feats = rng.normal(size=(n, h)).astype(np.float32)
    e = Checkpoint(epoch=0, logits=logits).logit_grad(labels).astype(np.float32)
    g = explicit_gradients(e.astype(np.float64), feats.astype(np.float64))
    kernel = GradientKernel(e, feats)
    np.testing.assert_allclose(kernel.sq_norms().numpy(), (g ** 2).sum(1), rtol=1e-4)
    np.testing.assert_allclose(kernel.dot(slice(0, n), slice(0, n)).numpy(), g @ g.T, rtol=1e-4, atol=1e-4)
    for dense in (False, True):
        picks, gains, weights = facility_location(kernel, 12, block=32, dense=dense)
        assert_greedy_facility_location(g, picks, gains, weights)


def test_facility_location_dense_and_blocked_agree():
    """Keeping the similarity matrix changes where columns come from, not the greedy: same picks and
    cluster sizes on data without near-ties, gains equal to float32 rounding; the default keeps it here."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((20, 24)) * 2
    x = (rng.standard_normal((700, 24)) + centres[rng.integers(20, size=700)]).astype(np.float32)
    kernel = FeatureKernel(x, device="cpu")
    blocked = facility_location(kernel, 90, block=128, dense=False)
    dense = facility_location(kernel, 90, block=128, dense=True)
    default = facility_location(kernel, 90, block=128)
    for out in (dense, default):
        np.testing.assert_array_equal(out[0], blocked[0])
        np.testing.assert_allclose(out[1], blocked[1], rtol=1e-6, atol=1e-4)  # columns of other GEMMs (float32)
        np.testing.assert_array_equal(out[2], blocked[2])


@pytest.mark.parametrize("dense", [False, True])  # a matrix-vector product per pick, or the Gram matrix kept
@pytest.mark.parametrize("n,d,k", [(50, 3, 10), (150, 8, 40)])
def test_herding_matches_naive(n, d, k, dense):
    x = np.random.default_rng(k).normal(size=(n, d))
    np.testing.assert_array_equal(herding(x, k, dense=dense), naive_herding(x, k))  # naive asserts no near-ties


@pytest.mark.parametrize("greedy", [herding, gaussian_herding])
@pytest.mark.parametrize("dense", [False, True])
def test_herding_goes_on_from_earlier_picks(greedy, dense):
    """Herding the rows left after a run's first 12 picks, matching all rows and going on from those picks,
    gives the run's next 18 picks: the second round in groups is one herding whose candidates open in turn.
    The pull of the earlier picks is summed in another order than the run's, so equal up to float64 ties
    (none on this data)."""
    x = np.random.default_rng(3).normal(size=(200, 6)) * np.arange(1, 7)
    run = greedy(x, 30, dense=dense)
    rest = np.setdiff1d(np.arange(200), run[:12])
    later = greedy(x[rest], 18, target=x, picked=x[run[:12]], dense=dense)
    np.testing.assert_array_equal(rest[later], run[12:])


def mmd2(x, picks, scale):
    """Squared MMD between the rows `picks` and all rows, from the explicit Gaussian kernel matrix."""
    kmat = np.exp(-((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) / scale)  # n x n: test only
    w = np.zeros(len(x))
    np.add.at(w, picks, 1.0 / len(picks))
    u = w - 1.0 / len(x)
    return float(u @ kmat @ u)


@pytest.mark.parametrize("n,d,k,bandwidth", [(40, 3, 6, 1.0), (120, 8, 20, 0.3)])
def test_gaussian_herding_is_greedy_mmd_against_brute_force(n, d, k, bandwidth):
    x = np.random.default_rng(n).normal(size=(n, d)) * np.arange(1, d + 1)
    scale = bandwidth * ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1).mean()  # mean squared pairwise distance
    picks = gaussian_herding(x, k, bandwidth=bandwidth, block=16)  # several blocks
    assert len(set(picks.tolist())) == k
    np.testing.assert_array_equal(gaussian_herding(x, k, bandwidth=bandwidth, block=16, dense=False), picks)
    for t in range(k):  # each pick is the unpicked row whose addition gives the smallest MMD
        trial = [mmd2(x, list(picks[:t]) + [i], scale) if i not in picks[:t] else np.inf for i in range(n)]
        assert trial[picks[t]] <= min(trial) + 1e-9
    rng = np.random.default_rng(0)
    random_mmd = np.mean([mmd2(x, rng.choice(n, k, replace=False), scale) for _ in range(20)])
    assert mmd2(x, picks, scale) < random_mmd
    # with fewer anchors than rows, mu is estimated on a random subset: still a better-than-random MMD
    approx = gaussian_herding(x, k, bandwidth=bandwidth, anchors=n // 2, rng=np.random.default_rng(1))
    assert len(set(approx.tolist())) == k and mmd2(x, approx, scale) < random_mmd
    with pytest.raises(ValueError, match="pass rng="):
        gaussian_herding(x, k, anchors=n // 2)


def synthetic_signals(n=120, num_classes=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    ckpt = Checkpoint(epoch=2, logits=rng.normal(size=(n, num_classes)).astype(np.float32),
                      features=rng.normal(size=(n, dim)).astype(np.float32))
    return Signals(labels=labels, num_classes=num_classes, checkpoints={2: ckpt})


def test_kcenter_craig_herding_methods_run_the_references_per_class():
    """The method wrappers: per class, the same picks as the naive references on that class's rows."""
    signals = synthetic_signals()
    labels, ckpt = signals.labels, signals.checkpoints[2]
    budget = make_budget(labels, fraction=0.2)
    spec = hf_coreset.methods.get
    km = spec("kcenter").fn(signals, budget, rng=np.random.default_rng(0), epoch=2)
    cr = spec("craig").fn(signals, budget, rng=np.random.default_rng(0), epoch=2)
    he = spec("herding").fn(signals, budget, rng=np.random.default_rng(0), epoch=2)
    e = ckpt.logit_grad(labels)
    start = 0
    for c, k in enumerate(budget.per_class):
        rows = np.flatnonzero(labels == c)
        x = ckpt.features[rows].astype(np.float64)
        first = int(np.argmin(((x - x.mean(0)) ** 2).sum(1)))
        np.testing.assert_array_equal(km.indices[start:start + k], rows[naive_kcenter(x, k, first)[0]])
        picked = np.searchsorted(rows, cr.indices[start:start + k])
        assert np.array_equal(rows[picked], cr.indices[start:start + k])  # CRAIG picks within the class
        assert_greedy_facility_location(explicit_gradients(e[rows], x), picked, cr.gains[start:start + k],
                                        cr.weights[start:start + k])
        np.testing.assert_array_equal(he.indices[start:start + k], rows[naive_herding(x, k)])
        start += k


def test_score_methods_match_their_formulas():
    signals = synthetic_signals()
    labels, ckpt = signals.labels, signals.checkpoints[2]
    budget = make_budget(labels, fraction=0.25)
    p = np.exp(ckpt.logits - ckpt.logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(3)[labels]
    get = hf_coreset.methods.get
    rng = np.random.default_rng(0)
    el2n = get("el2n").fn(signals, budget, rng=rng, epoch=2)
    np.testing.assert_allclose(el2n.scores, np.linalg.norm(p - onehot, axis=1), rtol=1e-5)
    ent = get("entropy").fn(signals, budget, rng=rng, epoch=2)
    np.testing.assert_allclose(ent.scores, -(p * np.log(p)).sum(1), rtol=1e-5)
    mod = get("moderate").fn(signals, budget, rng=rng, epoch=2)
    for c in range(3):
        rows = np.flatnonzero(labels == c)
        f = ckpt.features[rows].astype(np.float64)
        dist = np.linalg.norm(f - np.median(f, axis=0), axis=1)
        gap = np.abs(dist - np.median(dist))  # the score: how far a row's distance is from the moderate one
        np.testing.assert_allclose(mod.scores[rows], gap, rtol=1e-6, atol=1e-12)
        kept = np.isin(rows, mod.indices)
        assert gap[kept].max() <= np.sort(gap)[kept.sum() - 1] + 1e-9
    for out in (el2n, ent):  # keeps the highest of each class
        for c in range(3):
            rows = np.flatnonzero(labels == c)
            kept = np.intersect1d(out.indices, rows)
            assert out.scores[kept].min() >= np.sort(out.scores[rows])[::-1][len(kept) - 1]


def test_forgetting_counts_transitions():
    correct = np.array([[1, 1, 0, 0, 1],   # epoch 1
                        [0, 1, 0, 1, 1],   # epoch 2
                        [1, 1, 0, 0, 1],   # epoch 3
                        [0, 1, 0, 1, 1]],  # epoch 4
                       dtype=bool)
    labels = np.zeros(5, dtype=np.int64)
    signals = Signals(labels=labels, num_classes=1,
                      checkpoints={e + 1: Checkpoint(epoch=e + 1, correct=correct[e]) for e in range(4)})
    out = hf_coreset.methods.get("forgetting").fn(signals, make_budget(labels, size=2), rng=np.random.default_rng(0),
                                                  epochs=4)
    # row 0: forgotten twice; row 2: never learned (scores 4, above any count); row 3: forgotten once.
    np.testing.assert_array_equal(out.scores, [2, 0, 4, 1, 0])
    np.testing.assert_array_equal(out.indices, [2, 0])


def test_ccs_samples_across_strata():
    rng = np.random.default_rng(0)
    n = 400
    labels = np.zeros(n, dtype=np.int64)
    logits = np.stack([np.linspace(-4, 4, n), np.zeros(n)], 1).astype(np.float32)
    signals = Signals(labels=labels, num_classes=2, checkpoints={2: Checkpoint(epoch=2, logits=logits)})
    out = hf_coreset.methods.get("ccs").fn(signals, make_budget(labels, size=40), rng=rng, epoch=2, strata=4,
                                           hard_cutoff=0.1)
    assert len(out.indices) == 40 and len(np.unique(out.indices)) == 40
    scores = out.scores
    hardest = np.argsort(-scores, kind="stable")[:40]
    assert not np.intersect1d(out.indices, hardest).size  # the hardest 10% are cut
    pool = np.setdiff1d(np.arange(n), hardest)
    edges = np.linspace(scores[pool].min(), scores[pool].max(), 5)

    def stratum(rows):
        return np.clip(np.searchsorted(edges, scores[rows], side="right") - 1, 0, 3)

    sizes = np.bincount(stratum(pool), minlength=4)
    taken = np.bincount(stratum(out.indices), minlength=4)
    # Smallest strata first, each taking min(its size, budget left / strata left >= 40 / 4).
    assert np.all(taken >= np.minimum(sizes, 10)), (sizes, taken)


def test_ccs_stratified_sample_always_fills_the_budget():
    from hf_coreset.methods.ccs import stratified_sample

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(5, 120))
        scores = rng.lognormal(sigma=float(rng.uniform(0.1, 3)), size=n)  # skewed: uneven strata
        k = int(rng.integers(1, n + 1))
        picks = stratified_sample(scores, k, strata=int(rng.integers(1, 12)), hard_cutoff=float(rng.uniform(0, 0.9)),
                                  rng=rng)
        assert len(picks) == k and len(np.unique(picks)) == k and picks.min() >= 0 and picks.max() < n


@pytest.mark.parametrize("bandwidth,err", [(0, ValueError), (-1.0, ValueError), (True, TypeError), ("wide", TypeError)])
def test_kernel_herding_bad_bandwidth(bandwidth, err):
    spec = hf_coreset.methods.get("kernel-herding")
    with pytest.raises(err, match="bandwidth="):
        spec.check_options({"bandwidth": bandwidth})  # what select and CoresetTrainer run before any proxy training


def test_kernel_herding_runs_the_reference_per_class():
    signals = synthetic_signals()
    labels, feats = signals.labels, signals.checkpoints[2].features
    budget = make_budget(labels, fraction=0.2)
    out = hf_coreset.methods.get("kernel-herding").fn(signals, budget, rng=np.random.default_rng(0), epoch=2)
    start = 0
    for c in range(3):
        rows = np.flatnonzero(labels == c)
        k = int(budget.per_class[c])
        np.testing.assert_array_equal(out.indices[start:start + k], rows[gaussian_herding(feats[rows], k)])
        start += k


def test_facility_location_self_distance_is_exactly_zero():
    """In float32, ||x||^2 + ||x||^2 - 2 x.x leaves a self-distance of up to ~||x|| * 3e-4 after the square
    root, which cut each candidate's gain by a different amount and reordered late greedy steps (measured on
    these rows: 3 of 80 picks below the float64 best by up to 5e-4 of their gain). The kernel sets it to 0:
    every pick is then the float64 greedy's best."""
    from hf_coreset.ops.pairwise import sq_distances

    rng = np.random.default_rng(0)  # a mixture of Gaussian blobs in 128 dims, ||x|| ~ 20
    centres = rng.standard_normal((50, 128)) * 1.5
    x = (rng.standard_normal((400, 128)) + centres[rng.integers(50, size=400)]).astype(np.float32)
    kernel = FeatureKernel(x, device="cpu")
    norms = kernel.sq_norms()
    cols = torch.tensor([0, 7, 7, 64, 399])
    assert torch.all(sq_distances(kernel, slice(0, 400), cols, norms)[cols, torch.arange(5)] == 0)
    assert torch.all(sq_distances(kernel, cols, cols, norms).diagonal() == 0)
    for dense in (False, True):
        picks, gains, weights = facility_location(kernel, 80, block=128, dense=dense)
        assert_greedy_facility_location(x.astype(np.float64), picks, gains, weights)
        _, ref_gains, _, shortfall = naive_facility_location(x.astype(np.float64), 80, follow=picks)
        assert np.all(shortfall <= 1e-9 * ref_gains)
