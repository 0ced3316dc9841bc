"""`auto` v3: the method is chosen on a slice of the user's train split, random unless a candidate beats the noise."""

from __future__ import annotations

import numpy as np
import pytest

import hf_coreset
from hf_coreset import auto_validation, methods
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.methods.auto import choice


@pytest.fixture
def train(mnist1d_small):
    return mnist1d_small["train"]  # 1,600 rows: a 160-row slice


@pytest.fixture
def proxy(mnist1d_proxy):
    return {**mnist1d_proxy, "epochs": 2}


def run(ds, proxy, **kw):
    kw = {"fraction": 0.1, "seed": 0, "progress": False, **kw}
    return hf_coreset.select(ds, "auto", model=make_convnet(0), proxy=proxy, **kw)


def test_record_is_complete_and_deterministic(train, proxy, one_thread, tmp_path):
    sel = run(train, proxy, cache_dir=tmp_path / "a")
    assert sel.config["method_options"]["validate"] is True  # the default under select
    rec = sel.config["auto_validation"]
    assert rec["slice_rows"] + rec["train_rows"] == train.num_rows and rec["seeds"] == 2
    names = [c["name"] for c in rec["candidates"]]
    assert names[0] == "random" and {"kernel-herding(bandwidth=0.3)", "kernel-herding(bandwidth=1.0)",
                                     "kernel-herding(bandwidth=3.0)", "kcenter"} <= set(names)
    assert any(n.startswith("prototypes") for n in names)
    table_method, _ = choice(0.1, 2)
    assert any(c["method"] == table_method for c in rec["candidates"])  # the table's pick is a candidate
    for c in rec["candidates"]:
        assert len(c["accuracy"]) == 2 and c["mean"] == pytest.approx(np.mean(c["accuracy"]), abs=1e-6)
        assert c["margin"] == pytest.approx(c["mean"] - rec["candidates"][0]["mean"], abs=2e-6)
        assert c["threshold"] >= max(rec["seed_std"], 2 * c["paired_se"]) - 1e-6
        assert c["mmd"] is not None and c["coverage"] is not None  # the no-training criteria, on proxy features
    assert rec["seed_std"] >= 0 and rec["seconds"] > 0 and rec["proxy_seconds"] > 0 and rec["cost_ratio"] > 0
    picked = [c for c in rec["candidates"] if c["name"] == rec["choice"]]
    assert picked and (rec["choice"] == "random") == (not picked[0]["beats_random"])
    assert sel.config["auto_method"] == picked[0]["method"]
    assert sel.timings["auto_validation"] == pytest.approx(rec["seconds"], abs=1e-3)
    # Same seed, same everything but the clock (the second run reads the cached signals: no cost ratio).
    again = run(train, proxy, cache_dir=tmp_path / "a")
    np.testing.assert_array_equal(again.indices, sel.indices)
    assert again.fingerprint == sel.fingerprint
    strip = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "proxy_seconds", "cost_ratio")}  # noqa: E731
    assert strip(again.config["auto_validation"]) == strip(rec) and again.config["auto_validation"]["cost_ratio"] is None

    card = hf_coreset.hub.dataset_card(sel, train, "me/auto")
    assert "### How `auto` chose" in card and "| `kcenter` |" in card and f"Choice: **{rec['choice']}**" in card


def test_falls_back_to_random_when_nothing_beats_the_noise(train, proxy, one_thread, tmp_path):
    """Labels shuffled: no selection can teach anything, so no margin is real and random is kept."""
    labels = np.random.default_rng(0).permutation(np.asarray(train["label"]))
    noisy = train.remove_columns("label").add_column("label", labels.tolist())
    sel = run(noisy, proxy, cache_dir=tmp_path / "c")
    rec = sel.config["auto_validation"]
    assert rec["choice"] == "random" and not any(c["beats_random"] for c in rec["candidates"])
    assert sel.config["auto_method"] == "random"
    plain = hf_coreset.select(noisy, "random", fraction=0.1, seed=0, progress=False)
    np.testing.assert_array_equal(sel.indices, plain.indices)  # exactly what random keeps


def test_too_small_a_slice_is_random_without_training(train, proxy, one_thread, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("no candidate should train")

    monkeypatch.setattr(auto_validation, "_train", refuse)
    sel = run(train.select(range(300)), proxy, cache_dir=tmp_path / "s")  # a 30-row slice
    rec = sel.config["auto_validation"]
    assert rec["choice"] == "random" and "too small" in rec["reason"] and rec["candidates"] == []
    assert sel.config["auto_method"] == "random"


def test_slices_are_stratified_and_never_trained_on(train, proxy, one_thread, tmp_path, monkeypatch):
    labels = np.asarray(train["label"])
    slices = auto_validation.stratified_slices(labels, 0.1, 0, 2)
    assert not np.isin(slices[0], slices[1]).any()  # one slice per seed, disjoint (folds)
    for val in slices:
        for c in np.unique(labels):
            n = int((labels == c).sum())
            assert int((labels[val] == c).sum()) == int(np.floor(0.1 * n + 0.5))
    trained, scored = [], []
    real_train = auto_validation._train
    from hf_coreset.signals.collect import SignalCollector

    real_logits = SignalCollector.logits

    def spy(model, collector, rows, labels_, **kw):
        trained.append(np.asarray(rows))
        return real_train(model, collector, rows, labels_, **kw)

    def spy_logits(self, model, rows):
        scored.append(np.asarray(rows))
        return real_logits(self, model, rows)

    monkeypatch.setattr(auto_validation, "_train", spy)
    monkeypatch.setattr(SignalCollector, "logits", spy_logits)
    sel = run(train, proxy, cache_dir=tmp_path / "t", validation_seeds=2)
    rec = sel.config["auto_validation"]
    n_cands = len(rec["candidates"])
    assert len(trained) == len(scored) == 2 * n_cands and rec["scored_rows"] == 2 * rec["slice_rows"]
    for i, (rows, val) in enumerate(zip(trained, scored)):
        np.testing.assert_array_equal(val, slices[i // n_cands])  # each seed scores its own slice only ...
        assert not np.isin(rows, val).any()  # ... which its candidates never train on
        assert len(rows) == round(0.1 * (train.num_rows - len(val)))


def test_validate_false_is_the_fixed_table(train, proxy, one_thread, tmp_path):
    sel = run(train, proxy, cache_dir=tmp_path / "f", validate=False)
    method, options = choice(0.1, 2)
    assert "auto_validation" not in sel.config and sel.config["auto_method"] == method
    direct = hf_coreset.select(train, method, fraction=0.1, seed=0, model=make_convnet(0), proxy=proxy,
                               progress=False, cache_dir=tmp_path / "f", **options)
    np.testing.assert_array_equal(sel.indices, direct.indices)


@pytest.mark.parametrize("options, error, match", [
    ({"validation_seeds": 1}, ValueError, "validation_seeds=1; pass an integer >= 2"),
    ({"validate": "yes"}, TypeError, "validate='yes'; pass True"),
    ({"validation_share": 0.7}, ValueError, r"validation_share=0.7; pass the share"),
])
def test_bad_options_are_refused_before_the_proxy(ds, cache, options, error, match):
    with pytest.raises(error, match=match):
        hf_coreset.select(ds, "auto", fraction=0.1, model=make_convnet(0), cache_dir=cache, progress=False, **options)


def test_validate_needs_select_and_the_trainer_keeps_the_table(tmp_path):
    signals = hf_coreset.Signals(labels=np.repeat(np.arange(2), 10), num_classes=2)
    budget = hf_coreset.make_budget(signals.labels, fraction=0.5)
    with pytest.raises(ValueError, match="only hf_coreset.select provides"):
        methods.run("auto", signals, budget, validate=True)
    args = hf_coreset.CoresetTrainingArguments(output_dir=str(tmp_path), coreset_method="auto", coreset_fraction=0.1,
                                               report_to="none", coreset_method_options={"validate": True})
    with pytest.raises(ValueError, match="CoresetTrainer runs auto from its fixed table"):
        args.coreset_method_and_options()
    plain = hf_coreset.CoresetTrainingArguments(output_dir=str(tmp_path), coreset_method="auto", coreset_fraction=0.1,
                                                report_to="none")
    assert plain.coreset_method_and_options()[1]["validate"] is False


def test_no_training_criteria_are_zero_for_the_slice_itself():
    rng = np.random.default_rng(0)
    held = rng.normal(size=(40, 5))
    mmd, cover = auto_validation.criteria(held, held)
    assert mmd == pytest.approx(0.0, abs=1e-12) and cover == pytest.approx(0.0, abs=1e-6)
    far_mmd, far_cover = auto_validation.criteria(held[:4] + 10.0, held)
    near_mmd, near_cover = auto_validation.criteria(held[::10], held)
    assert far_mmd > near_mmd > 0 and far_cover > near_cover > 0


def test_the_tables_pick_is_not_a_second_copy_of_a_candidate():
    """At 1% the table picks prototypes with easy=0.9, the default: the same candidate, trained once."""
    for fraction in (0.01, 0.1, 0.3):
        cands = auto_validation.candidates(choice(fraction, 10), 10)
        keys = [(m, repr(sorted(o.items()))) for _, m, o in cands]
        assert len(keys) == len(set(keys))
        assert choice(fraction, 10)[0] in {m for _, m, _ in cands}
