"""CREST: mini-batch coresets against brute force, Hutchinson, the training step, re-selection, dropping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hf_coreset
from hf_coreset.ops import FeatureKernel, facility_location, facility_location_batch
from hf_coreset.training.crest import PHASES, hutchinson_diag, minibatch_coreset, minibatch_coresets
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.signals import ROW_KEY


pytestmark = pytest.mark.usefixtures("one_thread")


def _brute_force_coreset(e: np.ndarray, labels: np.ndarray, size: int, follow: np.ndarray):
    """Naive greedy facility location with an explicit distance matrix, per class; cluster-size weights.

    Step t takes the row `follow` (another solver's picks, per class in greedy order) took there, and
    records how far its gain falls below the best gain of that step: 0 for an exact greedy. Rows can
    tie exactly (two that only cover each other), and float32 sums then break the tie either way.
    """
    budget = hf_coreset.make_budget(labels, size=size)
    weights, shortfall, start = [], [], 0
    for c, k in enumerate(budget.per_class):
        rows = np.flatnonzero(labels == c)
        x = e[rows].astype(np.float64)
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
        sim = d.max() + 1.0 - d  # any constant >= max distance gives the same greedy sequence
        best = np.zeros(len(rows))
        chosen = np.searchsorted(rows, follow[start:start + k])
        assert np.array_equal(rows[chosen], follow[start:start + k])  # picks within the class
        for t, j in enumerate(chosen):
            gains = np.maximum(sim - best[:, None], 0).sum(0)
            gains[chosen[:t]] = -np.inf
            shortfall.append(gains.max() - gains[j])
            best = np.maximum(best, sim[:, j])
        nearest = np.argmin(d[:, chosen], axis=1)
        weights.append(np.bincount(nearest, minlength=k).astype(float))
        start += k
    w = np.concatenate(weights)
    return w * len(w) / w.sum(), np.array(shortfall)


def test_minibatch_coreset_matches_brute_force():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 4)) * 2
    labels = rng.integers(0, 4, size=60)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    e = p.copy()
    e[np.arange(60), labels] -= 1.0  # p - y, as CREST uses
    picks, weights = minibatch_coreset(e.astype(np.float32), labels, 16)
    ref_weights, shortfall = _brute_force_coreset(e, labels, 16, follow=picks)
    # Every pick has the best gain of its step (gains here are 0.6 to 30; the closest non-tied runner-up
    # trails by 8e-3, and class 0's third step is an exact tie), and the weights are its cluster sizes.
    np.testing.assert_allclose(shortfall, 0, atol=1e-4)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-6)
    assert len(picks) == 16 and weights.mean() == pytest.approx(1.0)


def _greedy_gains(x: np.ndarray, picks: np.ndarray, step: int) -> np.ndarray:
    """Float64 gains of every row at greedy step `step` after `picks[:step]` (explicit distance matrix)."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    near = np.full(len(x), d.max() + 1.0)
    for j in picks[:step]:
        near = np.minimum(near, d[:, j])
    return np.maximum(near[:, None] - d, 0).sum(0)


def test_batched_facility_location_matches_the_per_problem_greedy():
    """All (subset x class) problems at once pick what `facility_location` picks on each alone, in the same
    order, with the same cluster sizes, up to an exact tie; problems of different sizes and budgets share a
    chunk (padding). Every batched pick is the exact float64 argmax (the lowest position on ties)."""
    rng = np.random.default_rng(1)
    points = [rng.normal(size=(n, 5)) for n in (7, 40, 23, 40, 1, 12, 30)]
    ks = [3, 11, 23, 1, 1, 5, 6]
    ties = 0
    for max_elements in (1 << 24, 2000):  # one chunk; several chunks
        solved = facility_location_batch(points, ks, max_elements=max_elements)
        for x, k, (picks, sizes) in zip(points, ks, solved):
            for t in range(k):
                gains = _greedy_gains(x, picks, t)
                gains[picks[:t]] = -np.inf
                assert picks[t] == np.flatnonzero(gains == gains.max())[0]
            ref_picks, _, ref_sizes = facility_location(FeatureKernel(x.astype(np.float32), device="cpu"), k)
            differ = np.flatnonzero(picks != ref_picks)
            if len(differ):  # only where two rows tie exactly (a pair that only covers each other)
                t = differ[0]
                gains = _greedy_gains(x, picks, t)
                assert gains[picks[t]] == gains[ref_picks[t]]
                ties += 1
            else:
                np.testing.assert_array_equal(sizes, ref_sizes)
    assert ties <= 2  # most problems agree pick for pick
    with pytest.raises(ValueError, match="must be in"):
        facility_location_batch([points[0]], [8])


def test_minibatch_coresets_of_many_subsets_equal_one_at_a_time():
    rng = np.random.default_rng(2)
    subsets = [(rng.normal(size=(50, 4)), rng.integers(0, 4, size=50)) for _ in range(5)]
    together = minibatch_coresets([e for e, _ in subsets], [y for _, y in subsets], 12)
    for (e, y), (picks, weights) in zip(subsets, together):
        alone = minibatch_coreset(e, y, 12)
        np.testing.assert_array_equal(picks, alone[0])
        np.testing.assert_array_equal(weights, alone[1])


def test_hutchinson_estimates_the_hessian_diagonal():
    torch.manual_seed(0)
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    w = torch.randn(3, 5, requires_grad=True)

    def loss_fn(weight):
        return torch.nn.functional.cross_entropy(x @ weight.T, y)

    exact = torch.autograd.functional.hessian(loss_fn, w).reshape(15, 15).diagonal()
    gen = torch.Generator().manual_seed(1)
    estimates = []
    for _ in range(3000):
        grad, diag = hutchinson_diag(loss_fn(w), [w], gen)
        estimates.append(diag)
    np.testing.assert_allclose(grad, torch.autograd.grad(loss_fn(w), w)[0].reshape(-1), rtol=1e-5)
    np.testing.assert_allclose(torch.stack(estimates).mean(0), exact, atol=0.15 * float(exact.abs().max()))


def _crest_args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), num_train_epochs=3, per_device_train_batch_size=32,
                learning_rate=5e-3, optim="adamw_torch", report_to="none", save_strategy="no", disable_tqdm=True,
                logging_steps=1000, coreset_fraction=0.25, coreset_warmup_epochs=1, coreset_schedule="crest",
                crest_random_subset_fraction=0.1, per_device_eval_batch_size=256, dataloader_pin_memory=False)
    base.update(kw)
    return hf_coreset.CoresetTrainingArguments(**base)


class StepSpy(hf_coreset.CoresetTrainer):
    """Records each training batch with the parameters it was computed at and its row weights."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            rows = inputs[ROW_KEY]
            self.batches.append((rows.clone(), self._row_weights[rows].clone(), inputs["x"].clone(),
                                 inputs["labels"].clone(), {k: v.detach().clone() for k, v in model.state_dict().items()}))
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def test_crest_step_equals_plain_sgd_step(mnist1d_small, tmp_path):
    """One CREST step is one plain SGD step on the weighted mini-batch coreset (no doubled gradient)."""
    train = mnist1d_small["train"].select(range(640))
    lr = 0.1
    trainer = StepSpy(model=make_convnet(0), train_dataset=train, args=_crest_args(
        tmp_path, coreset_warmup_epochs=0, num_train_epochs=1, optim="sgd", learning_rate=lr,
        lr_scheduler_type="constant", max_grad_norm=0.0, weight_decay=0.0, crest_tau=1e9))
    trainer.batches = []
    trainer.train()
    rows, weights, x, y, before = trainer.batches[0]
    after = trainer.batches[1][4]
    assert len(trainer.coreset_events) == 1  # tau = 1e9: the first coresets stay
    coresets = {tuple(r.tolist()): w for r, w in trainer.crest.coresets}
    # The batch is one of the mini-batch coresets, trained with its facility-location weights.
    np.testing.assert_allclose(weights.numpy(), coresets[tuple(rows.tolist())], rtol=1e-6)
    assert len(rows) == trainer.crest.coreset_size and weights.std() > 0
    model = make_convnet(0)
    model.load_state_dict(before)
    loss = (weights * torch.nn.functional.cross_entropy(model(x), y, reduction="none")).mean()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for (name, p), g in zip(model.named_parameters(), grads):
        torch.testing.assert_close(after[name], p.detach() - lr * g, rtol=1e-5, atol=1e-6)


def test_crest_reselection_triggers_and_records(mnist1d_small, tmp_path):
    train = mnist1d_small["train"].select(range(640))
    trainer = hf_coreset.CoresetTrainer(model=make_convnet(0), train_dataset=train,
                                        args=_crest_args(tmp_path, crest_tau=0.0, crest_drop_learned=False))
    trainer.train()
    events = trainer.coreset_events
    crest = trainer.crest
    assert len(events) >= 3 and events[0]["rel_error"] is None and events[0]["step"] == 20  # after 1 warm-up epoch
    max_p = len(crest.pool) // crest.config.random_subset_size
    for prev, ev in zip(events, events[1:]):
        assert ev["rel_error"] > 0.0  # tau = 0: every check that runs re-selects
        assert isinstance(ev["P"], int) and isinstance(ev["T1"], int) and ev["T1"] >= 1
        assert ev["step"] == prev["step"] + prev["T1"]  # the check ran exactly T1 steps after the last selection
        assert ev["P"] == min(math.ceil(5.0 * prev["T1"]), max_p)  # P chosen at the previous selection
    for rows, w in crest.coresets:
        assert len(rows) == 32 and w.mean() == pytest.approx(1.0) and (w > 0).all()
    all_rows = np.concatenate([r for r, _ in crest.coresets])
    assert len(np.unique(all_rows)) == len(all_rows)  # disjoint random subsets: one weight per row
    logged = [h for h in trainer.state.log_history if "crest_P" in h]
    assert len(logged) == len(events) and "crest_rel_error" in logged[1]
    saved = (tmp_path / "out" / "coreset_events.json").read_text()
    assert '"rel_error"' in saved
    # After training, coreset_selection is the final CREST selection (the rows of the last mini-batch coresets).
    sel = trainer.coreset_selection
    assert sel is not None and sel.method == "crest" and set(sel.indices.tolist()) == set(all_rows.tolist())
    np.testing.assert_array_equal(hf_coreset.CoresetSelection.load(tmp_path / "out" / "_coreset_selection").indices,
                                  sel.indices)
    trainer.create_model_card()
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"selected {len(events)} time(s)" in card and f"| selection fingerprint | `{sel.fingerprint}` |" in card

    calm = hf_coreset.CoresetTrainer(model=make_convnet(0), train_dataset=train,
                                     args=_crest_args(tmp_path / "calm", crest_tau=1e9, coreset_warmup_epochs=0))
    calm.train()
    assert len(calm.coreset_events) == 1 and calm.state.global_step == calm.state.max_steps == 3 * 5


def test_crest_drops_learned_rows(mnist1d_small, tmp_path):
    train = mnist1d_small["train"].select(range(640))
    trainer = hf_coreset.CoresetTrainer(model=make_convnet(0), train_dataset=train, args=_crest_args(
        tmp_path, crest_alpha=100.0, crest_T2=1, crest_tau=0.0, crest_min_pool_fraction=0.3))  # all rows "learned"
    trainer.train()
    dropped = sum(ev["dropped"] for ev in trainer.coreset_events)
    crest = trainer.crest
    assert dropped > 0 and len(crest.pool) == 640 - dropped
    floor = np.maximum(hf_coreset.make_budget(crest.labels, size=crest.config.random_subset_size).per_class,
                       hf_coreset.make_budget(crest.labels, fraction=0.3).per_class)
    counts = np.bincount(crest.labels[crest.pool], minlength=10)
    assert (counts >= floor).all()  # never below a class's share of a random subset nor 30% of its rows
    assert (counts == floor).any()  # the floor binds: without it more rows would have gone
    kept = set(crest.pool.tolist())
    assert all(set(r.tolist()) <= kept for r, _ in crest.coresets)


def test_crest_reuses_the_check_sample_and_times_its_phases(mnist1d_small, tmp_path):
    """A re-selection takes the check sample that triggered it (already forwarded) as its first random subset,
    so it forwards only the other P - 1; every phase of `Crest.timings` is measured."""
    train = mnist1d_small["train"].select(range(640))
    trainer = hf_coreset.CoresetTrainer(model=make_convnet(0), train_dataset=train,
                                        args=_crest_args(tmp_path, crest_tau=0.0, crest_drop_learned=False))
    forwarded = []
    collector = trainer._collector
    plain = collector.logits

    def spy(model, rows):
        forwarded.append(np.asarray(rows).copy())
        return plain(model, rows)

    collector.logits = spy
    trainer.train()
    crest = trainer.crest
    r = crest.config.random_subset_size
    events = trainer.coreset_events
    # First selection: P subsets in one forward; then each check (r rows) and, when it re-selects, P - 1 more.
    sizes = [len(f) for f in forwarded]
    assert sizes[0] == events[0]["P"] * r
    expected = [events[0]["P"] * r]
    for ev in events[1:]:
        expected += [r] + ([(ev["P"] - 1) * r] if ev["P"] > 1 else [])
    assert sizes == expected
    check_rows = set(forwarded[-1 - (events[-1]["P"] > 1)].tolist())
    assert set(crest.coresets[0][0].tolist()) <= check_rows  # the last check sample is the first subset
    assert set(PHASES) == set(crest.timings) and all(crest.timings[p] > 0 for p in PHASES)


def test_random_schedule_draws_a_fresh_uniform_subset_each_epoch(mnist1d_small, tmp_path):
    """coreset_schedule="random" (CREST's random baseline): after the warm-up, each epoch trains on
    coreset_fraction of the rows drawn uniformly afresh (not class-balanced), as many steps as that share."""
    train = mnist1d_small["train"].select(range(640))
    trainer = StepSpy(model=make_convnet(0), train_dataset=train, args=_crest_args(
        tmp_path, coreset_schedule="random", num_train_epochs=4, coreset_fraction=0.25))
    trainer.batches = []
    trainer.train()
    assert trainer.state.global_step == 20 + 3 * 5  # one full epoch of 20 steps, then 3 x ceil(160 / 32)
    rows = [b[0].numpy() for b in trainer.batches]
    epochs = [np.concatenate(rows[20 + 5 * e:25 + 5 * e]) for e in range(3)]
    draws = [set(e.tolist()) for e in epochs]
    assert all(len(e) == 160 == len(d) for e, d in zip(epochs, draws))  # 160 distinct rows per epoch
    assert draws[0] != draws[1] != draws[2]  # drawn afresh
    assert all(float(b[1].max()) == float(b[1].min()) == 1.0 for b in trainer.batches)  # unweighted
    labels = np.asarray(train["label"])
    counts = [np.bincount(labels[e], minlength=10) for e in epochs]
    assert any((c != counts[0]).any() for c in counts[1:])  # not stratified: class counts vary
    assert trainer.crest is None and trainer.coreset_selection is None
    trainer.create_model_card()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "fresh uniform random" in card and "| schedule | random |" in card


def test_collector_row_cache_gives_the_same_batches(mnist1d_small, minilm_text):
    """CREST's row cache (default collator, fixed shapes): the very batch reading the rows gives; refused when it
    would not fit, and never used with a padding collator."""
    from accelerate import Accelerator
    from transformers import DataCollatorWithPadding

    from hf_coreset.signals import SignalCollector

    train = mnist1d_small["train"]
    labels = np.asarray(train["label"])
    rows = np.array([5, 0, 1599, 42, 42 + 1])
    plain = SignalCollector(train, ["x"], labels, accelerator=Accelerator(cpu=True))
    cached = SignalCollector(train, ["x"], labels, accelerator=Accelerator(cpu=True))
    cached.cache_rows()
    a, b = plain.batch(rows), cached.batch(rows)
    assert a.keys() == b.keys() and cached._row_cache
    for k in a:
        assert torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype
    small = SignalCollector(train, ["x"], labels, accelerator=Accelerator(cpu=True))
    small.cache_rows(limit_bytes=1000)  # 1,600 rows x 40 float32 do not fit
    assert torch.equal(small.batch(rows)["x"], a["x"]) and small._row_cache == {}
    ds, tok = minilm_text
    text = SignalCollector(ds, ["input_ids", "attention_mask"], np.asarray(ds["label"]),
                           accelerator=Accelerator(cpu=True), collate_fn=DataCollatorWithPadding(tok))
    text.cache_rows()
    assert text.batch([0, 2])["input_ids"].shape[0] == 2 and text._row_cache == {}
