"""Method options, per_class and label ids are checked before any proxy training, for every method."""

from __future__ import annotations

import math
import tracemalloc

import datasets
import numpy as np
import pytest

import hf_coreset
import hf_coreset.api
import hf_coreset.proxy
from hf_coreset import methods
from hf_coreset.budget import make_budget
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.signals import Checkpoint, Signals

# One or more bad values for every option of every registered method: (options, error, message).
# A method registered without an entry here fails test_every_option_of_every_method_has_a_bad_value.
BAD = {
    "auto": [({"epoch": -3}, ValueError, r"epoch=-3; pass an integer proxy epoch >= 0"),
             ({"validate": 1}, TypeError, r"validate=1; pass True"),
             ({"validation_seeds": 1}, ValueError, r"validation_seeds=1; pass an integer >= 2"),
             ({"validation_share": 0.0}, ValueError, r"validation_share=0.0; pass the share")],
    "random": [({"k": 3}, TypeError, r"Method 'random' got unknown option\(s\) \['k'\]")],
    "ccs": [({"score": "loss"}, ValueError, r"score='loss'; pass one of"),
            ({"epoch": -1}, ValueError, r"epoch=-1; pass an integer proxy epoch >= 0"),
            ({"strata": 0}, ValueError, r"strata=0 must be a positive integer"),
            ({"hard_cutoff": "x"}, TypeError, r"hard_cutoff='x' must be a number in \[0, 1\)")],
    "coverage": [({"cut": 2}, ValueError, r"cut=2 must be in \[0, 1\)"),
                 ({"score": "kcenter"}, ValueError, r"score='kcenter' keeps greedy order, not one end"),
                 ({"score_options": {"epoch": -1}}, ValueError, r"epoch=-1; pass an integer proxy epoch"),
                 ({"score_options": "epoch=3"}, TypeError, r"score_options='epoch=3' must be a dict"),
                 ({"strata": 2.5}, TypeError, r"strata=2.5 must be a positive integer")],
    "craig": [({"space": "logits"}, ValueError, r"space='logits'; pass 'gradient' or 'features'"),
              ({"epoch": 1.5}, TypeError, r"epoch=1.5; pass an integer proxy epoch"),
              ({"partition_size": 1}, ValueError, r"partition_size=1 must be 'auto' \(exact up to 17,000 rows per class, parts of 2,000 above\), None \(exact on every class\) or an integer >= 2, e\.g\. 2000\.")],
    "el2n": [({"epoch": "3"}, TypeError, r"epoch='3'; pass an integer proxy epoch")],
    "entropy": [({"epoch": -3}, ValueError, r"epoch=-3")],
    "fdmat": [({"lam": -1}, ValueError, r"lam=-1 must be a finite number > 0"),
              ({"beta": 0}, ValueError, r"beta=0 must be in \(0, 1\]"),
              ({"scoring": "sum"}, ValueError, r"scoring='sum'"),
              ({"max_iter": 0}, ValueError, r"max_iter=0 must be a positive integer"),
              ({"epoch": "last"}, TypeError, r"epoch='last'")],
    "forgetting": [({"epochs": 1}, ValueError, r"epochs=1; pass an integer proxy epoch >= 2")],
    "grand": [({"bias": "yes"}, TypeError, r"bias must be True or False, not str 'yes'"),
              ({"epoch": -1}, ValueError, r"epoch=-1")],
    "herding": [({"epoch": 2.0}, TypeError, r"epoch=2.0"),
                ({"partition_size": 1.5}, TypeError, r"partition_size=1.5 must be 'auto' \(exact up to 55,000 rows per class, parts of 2,000 above\), None \(exact on every class\)")],
    "kcenter": [({"init": "far"}, ValueError, r"init='far'; pass 'mean' or 'random'"),
                ({"epoch": -1}, ValueError, r"epoch=-1"),
                ({"partition_size": "50k"}, TypeError, r"partition_size='50k' must be 'auto' \(exact up to 50,000 rows per class, parts of 5,000 above\), None \(exact on every class\)")],
    "kernel-herding": [({"bandwidth": 0}, ValueError, r"bandwidth=0 must be a number > 0"),
                       ({"bandwidth": "wide"}, TypeError, r"bandwidth='wide' must be a number > 0"),
                       ({"epoch": -1}, ValueError, r"epoch=-1"),
                       ({"partition_size": 0}, ValueError, r"partition_size=0 must be 'auto' \(exact up to 38,000 rows per class, parts of 2,000 above\), None \(exact on every class\)")],
    "moderate": [({"epoch": True}, TypeError, r"epoch=True")],
    "mrmc": [({"epochs": 1}, ValueError, r"epochs=1: MRMC .* needs R >= 2"),
             ({"fit_from": 2}, ValueError, r"fit_from=2; pass 1")],
    "mrmc-r": [({"rho": 0}, ValueError, r"rho=0 must be in \(0, 1\]"),
               ({"gamma": -1}, ValueError, r"gamma=-1 must be a finite number >= 0"),
               ({"epochs": 1}, ValueError, r"R >= 2"),
               ({"fit_from": "1"}, ValueError, r"fit_from='1'")],
    "nfg": [({"radius": 5}, ValueError, r"radius=5 must be in \(0, 2\]"),
            ({"epochs": 0}, ValueError, r"epochs=0 must be a positive integer"),
            ({"checkpoints": []}, ValueError, r"checkpoints=\[\] must be a non-empty list of proxy epochs >= 0"),
            ({"checkpoints": [1.5]}, TypeError, r"checkpoints=\[1.5\] must be a non-empty list of proxy epochs"),
            ({"bias": 1}, TypeError, r"bias must be True or False, not int 1"),
            ({"block": 0}, ValueError, r"block=0 must be a positive integer"),
            ({"reference_size": "half"}, TypeError, r"reference_size='half' must be 'auto' \(exact up to 17,000 rows "
                                                     r"per class, 8,500 sampled reference rows above\)")],
    "prototypes": [({"easy": 2}, ValueError, r"easy=2 must be in \(0, 1\]"),
                   ({"partition_size": -3}, ValueError, r"partition_size=-3 must be 'auto' \(exact up to 16,000 rows per class, parts of 2,000 above\)"),
                   ({"iters": -1}, ValueError, r"iters=-1 must be a non-negative integer"),
                   ({"normalize": "no"}, TypeError, r"normalize must be True or False, not str 'no'"),
                   ({"keep": "middle"}, ValueError, r"keep='middle' must be 'nearest'"),
                   ({"epoch": "10"}, TypeError, r"epoch='10'")],
    "schedule": [({"switch": 5}, ValueError, r"switch=5 must be in \(0, 1\]"),
                 ({"score": "coverage"}, ValueError, r"score='coverage' is not a difficulty score"),
                 ({"score_options": {"epochs": 1}}, TypeError, r"Method 'el2n' got unknown option")],
}
CASES = [pytest.param(m, opts, err, match, id=f"{m}-{'-'.join(opts)}") for m, rows in BAD.items()
         for opts, err, match in rows]


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    return datasets.Dataset.from_dict({"x": rng.normal(size=(40, 40)).astype(np.float32).tolist(),
                                       "label": np.arange(40) % 4})


@pytest.fixture
def no_proxy(monkeypatch):
    """Any proxy training fails the test: options must be refused before it."""
    def trained(*args, **kwargs):
        raise AssertionError("the proxy trained before the options were checked")

    monkeypatch.setattr(hf_coreset.proxy, "_train_and_collect", trained)
    monkeypatch.setattr(hf_coreset.proxy, "run_proxy", trained)
    monkeypatch.setattr(hf_coreset.api, "run_proxy", trained)


def test_every_option_of_every_method_has_a_bad_value():
    assert set(BAD) == set(methods.available())
    for name, rows in BAD.items():
        covered = {k for opts, _, _ in rows for k in opts}
        defaults = set(methods.get(name).defaults)
        assert covered == defaults or (not defaults and rows), (name, defaults - covered)


@pytest.mark.parametrize("name", methods.available())
def test_defaults_pass_their_own_check(name):
    spec = methods.get(name)
    # An unset epoch (None, also in a wrapper's score_options) is the proxy's last epoch; nothing else changes.
    resolved = {**spec.defaults}
    if resolved.get("epoch", 0) is None:
        resolved["epoch"] = 7
    if "score_options" in resolved and "epoch" in methods.get(resolved["score"]).defaults:
        resolved["score_options"] = {"epoch": 7}
    assert spec.check_options({}, last_epoch=7) == resolved
    assert spec.check is not None or not spec.defaults


@pytest.mark.parametrize("method,options,err,match", CASES)
def test_bad_option_refused_before_the_proxy(tiny, tmp_path, no_proxy, method, options, err, match):
    with pytest.raises(err, match=match):
        hf_coreset.select(tiny, method, fraction=0.25, model=make_convnet(0), cache_dir=tmp_path / "cache",
                          progress=False, **options)
    assert not (tmp_path / "cache").exists()


def test_register_refuses_options_without_a_check():
    def fn(signals, budget, *, rng, width: int = 3):
        raise AssertionError

    with pytest.raises(TypeError, match=r"Method 'no_check_test' has options \['width'\]; register it with check="):
        methods.register("no_check_test", needs=lambda o: {}, version=1, summary="", paper="", signal="", cost="",
                         keeps=methods.Keeps.HIGHEST)(fn)
    with pytest.raises(TypeError, match=r"check of method 'no_check_test' must accept its options \['width'\]"):
        methods.register("no_check_test", needs=lambda o: {}, version=1, summary="", paper="", signal="", cost="",
                         keeps=methods.Keeps.HIGHEST, check=lambda *, epoch: None)(fn)
    with pytest.raises(TypeError, match="keeps must be a Keeps member"):  # typed, never prose
        methods.register("no_check_test", needs=lambda o: {}, version=1, summary="", paper="", signal="", cost="",
                         keeps="highest", check=lambda *, width: None)(fn)
    assert "no_check_test" not in methods.available()


def test_trainer_checks_options_at_construction(tiny, tmp_path, no_proxy):
    args = hf_coreset.CoresetTrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=3, coreset_method="nfg", coreset_warmup_epochs=2,
        coreset_method_options={"radius": 5}, report_to="none", save_strategy="no")
    with pytest.raises(ValueError, match=r"radius=5 must be in \(0, 2\]"):
        hf_coreset.CoresetTrainer(model=make_convnet(0), args=args, train_dataset=tiny)


def test_cli_checks_options_before_training(tiny, tmp_path, no_proxy, capsys):
    from hf_coreset.cli import main

    tiny.save_to_disk(str(tmp_path / "ds"))
    rc = main(["select", "--dataset", str(tmp_path / "ds"), "--method", "fdmat", "--fraction", "0.25",
               "--output", str(tmp_path / "sel"), "--model", "mnist1d-convnet", "--options", '{"lam": -1}'])
    assert rc == 2 and "lam=-1 must be a finite number > 0" in capsys.readouterr().err
    assert not (tmp_path / "sel").exists()


# --------------------------------------------------------------------------- per_class
@pytest.mark.parametrize("value", ["no", 1, None, "False"])
def test_per_class_must_be_a_bool(tiny, tmp_path, no_proxy, value):
    with pytest.raises(TypeError, match=r"per_class must be True or False, not"):
        hf_coreset.select(tiny, "el2n", fraction=0.25, model=make_convnet(0), per_class=value,
                          cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(TypeError, match=r"per_class must be True or False"):
        make_budget(np.arange(8) % 2, fraction=0.5, per_class=value)
    assert make_budget(np.arange(8) % 2, fraction=0.5, per_class=np.bool_(False)).total == 4


def test_trainer_per_class_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match=r"coreset_per_class must be True or False, not str 'no'"):
        hf_coreset.CoresetTrainingArguments(output_dir=str(tmp_path), coreset_method="random", coreset_per_class="no",
                                            report_to="none")


# --------------------------------------------------------------------------- huge label ids
def test_huge_label_ids_budget_the_present_classes_without_per_id_arrays():
    labels = np.array([0, 10 ** 7, 5, 10 ** 7] * 250)  # 1,000 rows, 3 classes, ids up to 10 million
    ds = datasets.Dataset.from_dict({"x": np.zeros((1000, 2), dtype=np.float32).tolist(), "label": labels})
    tracemalloc.start()
    try:
        sel = hf_coreset.select(ds, "random", fraction=0.1, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MiB"  # one int64 per id would be 80 MiB
    assert sel.config["budget_classes"] == [0, 5, 10 ** 7]
    assert sel.config["budget_per_class"] == [25, 25, 50]
    assert sel.per_class_counts(labels) == {0: 25, 5: 25, 10 ** 7: 50}
    budget = make_budget(labels, fraction=0.1, per_class=False)
    assert budget.classes.tolist() == [0, 5, 10 ** 7] and budget.total == 100


def test_declared_class_count_keeps_absent_classes():
    ds = datasets.Dataset.from_dict({"x": [[0.0]] * 6, "label": [0, 0, 2, 2, 2, 2]},
                                    features=datasets.Features({"x": datasets.Sequence(datasets.Value("float32")),
                                                                "label": datasets.ClassLabel(num_classes=4)}))
    sel = hf_coreset.select(ds, "random", size=3, progress=False)
    assert sel.config["budget_classes"] == [0, 1, 2, 3] and sel.config["budget_per_class"] == [1, 0, 2, 0]


# --------------------------------------------------------------------------- mrmc honours per_class
def _loss_signals(n=200, classes=4, epochs=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    q = rng.uniform(0.5, 3.0, n) * (1 + labels)  # class 3 drops the most: a global top-k takes mostly class 3
    w = rng.uniform(1.05, 2.0, n)
    ckpts = {e: Checkpoint(epoch=e, loss=(q * w ** -float(e)).astype(np.float32)) for e in range(1, epochs + 1)}
    ckpts[epochs].features = rng.normal(size=(n, 6)).astype(np.float32)
    return Signals(labels=labels, num_classes=classes, checkpoints=ckpts)


@pytest.mark.parametrize("name", ["mrmc", "mrmc-r"])
def test_mrmc_honours_per_class(name):
    signals = _loss_signals()
    spec = methods.get(name)
    options = spec.check_options({"epochs": 5})
    per_class = make_budget(signals.labels, fraction=0.2, num_classes=4)
    out = spec.fn(signals, per_class, rng=np.random.default_rng(0), **options)
    np.testing.assert_array_equal(np.bincount(signals.labels[out.indices], minlength=4), per_class.per_class)
    global_ = make_budget(signals.labels, fraction=0.2, per_class=False, num_classes=4)
    out = spec.fn(signals, global_, rng=np.random.default_rng(0), **options)
    assert len(out.indices) == global_.total
    assert np.bincount(signals.labels[out.indices], minlength=4)[3] > per_class.per_class[3]  # the paper's global rule
    if name == "mrmc":
        np.testing.assert_array_equal(np.sort(out.indices), np.sort(np.argsort(-out.scores, kind="stable")[:40]))


def test_mrmc_per_class_through_select(tiny, tmp_path):
    sel = hf_coreset.select(tiny, "mrmc", fraction=0.5, model=make_convnet(0), epochs=2, cache_dir=tmp_path,
                            progress=False, proxy={"batch_size": 20})
    assert sel.config["per_class"] is True
    labels = np.asarray(tiny["label"])
    assert sel.per_class_counts(labels) == dict(zip(sel.config["budget_classes"], sel.config["budget_per_class"]))
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['stratified'\]"):
        hf_coreset.select(tiny, "mrmc", fraction=0.5, model=make_convnet(0), stratified=True, progress=False)
    assert math.isclose(len(sel) / len(labels), 0.5)
