"""Every bad input gets a clear error (argument, value, what to pass instead) and leaves nothing half-written."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from torch import nn

import hf_coreset
from hf_coreset.data.mnist1d import make_convnet

BASELINES = ["ccs", "craig", "el2n", "entropy", "forgetting", "grand", "herding", "kcenter", "moderate", "random"]


class ConvOnly(nn.Module):
    """A classifier with no nn.Linear: a convolution over the whole row gives the 10 logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 10, 40)

    def forward(self, x):
        return self.conv(x.view(-1, 1, 40)).flatten(1)


def select(ds, method="el2n", cache=None, **kw):
    kw.setdefault("fraction", 0.1)
    if method != "random":
        kw.setdefault("model", make_convnet(0))
        kw.setdefault("epoch", 1)
    return hf_coreset.select(ds, method, cache_dir=cache, progress=False, **kw)


@pytest.mark.parametrize("fraction,match", [
    (0.0, r"fraction == 0.0, must be in \(0, 1\]; 0.1 keeps 10% of the rows"),
    (1.5, r"Did you mean fraction=0.015\?"),
    (10, r"fraction == 10.0, must be in \(0, 1\].*Did you mean fraction=0.1\?"),
    (-0.2, r"fraction == -0.2"),
])
def test_fraction_outside_unit_interval(ds, cache, fraction, match):
    with pytest.raises(ValueError, match=match):
        select(ds, fraction=fraction, cache=cache)


def test_budget_larger_than_dataset(ds, cache):
    with pytest.raises(ValueError, match=r"size == 201, but the dataset has 200 rows; pass a size in \[1, 200\]"):
        select(ds, fraction=None, size=201, cache=cache)


def test_empty_dataset(ds, cache):
    with pytest.raises(ValueError, match="The dataset is empty"):
        select(ds.select([]), cache=cache)


def test_missing_label_column(ds, cache):
    with pytest.raises(ValueError, match=r"label_column='target' is not a column of the dataset; its columns are "
                                         r"\['x', 'label'\]"):
        select(ds, label_column="target", cache=cache)


@pytest.mark.parametrize("values,match", [
    ([0.0, 1.0, 1.0, 0.0], r"must hold one integer class id per row \(got dtype float"),
    (["cat", "dog", "dog", "cat"], r"got dtype <U3.*ds.class_encode_column\('label'\)"),
    ([0, None, 1, 1], r"has 1 missing labels"),
    ([0, -1, 1, 1], r"negative class ids \(min -1\)"),
])
def test_non_integer_label_column(cache, values, match):
    bad = datasets.Dataset.from_dict({"x": [[0.0] * 40] * 4, "label": values})
    with pytest.raises(ValueError, match=match):
        select(bad, cache=cache)


def test_unknown_method_lists_the_known_ones(ds, cache):
    with pytest.raises(ValueError, match="Unknown coreset method 'nfgg'; known methods: ") as err:
        select(ds, method="nfgg", cache=cache)
    for name in BASELINES:
        assert name in str(err.value)


def test_unknown_method_option_lists_the_valid_ones(ds, cache):
    with pytest.raises(TypeError, match=r"Method 'kcenter' got unknown option\(s\) \['k'\]; its options are: "
                                        r"epoch, init"):
        select(ds, method="kcenter", k=3, cache=cache)


@pytest.mark.parametrize("method", ["kcenter", "grand", "craig"])
def test_model_without_final_linear_and_no_head(ds, cache, method):
    with pytest.raises(ValueError, match=r"ConvOnly has no nn.Linear layer.*Pass head='<module name>'"):
        select(ds, method=method, model=ConvOnly(), cache=cache)


def test_model_without_linear_is_fine_for_logit_methods(ds, tmp_path):
    sel = select(ds, method="el2n", model=ConvOnly(), cache=tmp_path)
    assert len(sel) == 20


def test_head_naming_a_wrong_module(ds, cache):
    with pytest.raises(ValueError, match=r"head='conv' is a Conv1d, not an nn.Linear"):
        select(ds, method="kcenter", model=ConvOnly(), head="conv", cache=cache)
    with pytest.raises(ValueError, match=r"head='fc' is not a module of the model; its nn.Linear modules are "
                                         r"\['classifier'\]"):
        select(ds, method="kcenter", head="fc", cache=cache)


def test_method_needing_a_model_without_one(ds, cache):
    with pytest.raises(ValueError, match=r"Method 'kcenter' needs a model.*pass model=<your classifier>"):
        hf_coreset.select(ds, "kcenter", fraction=0.1, cache_dir=cache)


def test_no_column_matches_forward(ds, cache):
    renamed = ds.rename_column("x", "signal")
    with pytest.raises(ValueError, match=r"No dataset column matches an argument of MNIST1DConvNet.forward \(\['x'\]\)"):
        select(renamed, cache=cache)


def test_nan_inputs_name_the_rows(ds, cache):
    bad = ds.map(lambda r, i: {"x": [float("nan")] * 40 if i == 7 else r["x"]}, with_indices=True)
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 0: dataset rows \[7\] have NaN/inf inputs"):
        select(bad, cache=cache, proxy={"batch_size": 200})
    with pytest.raises(FloatingPointError, match=r"Non-finite loss for 1 rows at proxy epoch 0 \(first rows \[7\]\)"):
        select(bad, cache=cache, epoch=0)


def test_divergence_says_lower_the_learning_rate(ds, tmp_path):
    cache = tmp_path / "keep"  # signals of epochs before the divergence are complete and stay valid
    with pytest.raises(FloatingPointError, match=r"Proxy training loss is (nan|inf) at epoch \d+, step \d+: the "
                                                 r"proxy diverged; lower the proxy learning rate \(now 10000.0\)"):
        select(ds, cache=cache, epoch=3, proxy={"optimizer": "sgd", "lr": 1e4, "batch_size": 50})
    files = [p.name for p in cache.rglob("*") if p.is_file()]
    assert not any("tmp" in name for name in files) and not any(name.endswith(".loss.npy") for name in files)


def test_iterable_dataset_is_not_supported_yet(ds, cache):
    with pytest.raises(TypeError, match="An IterableDataset is not supported yet"):
        select(ds.to_iterable_dataset(), cache=cache)


def test_dataset_dict_asks_for_a_split(mnist1d_small, cache):
    with pytest.raises(TypeError, match=r"Got a DatasetDict with splits \['train', 'test'\]; pass one split"):
        select(mnist1d_small, cache=cache)
    with pytest.raises(TypeError, match="dataset must be a datasets.Dataset, not dict"):
        select({"x": [1]}, cache=cache)


@pytest.mark.parametrize("seed,err", [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)])
def test_bad_seed(ds, cache, seed, err):
    with pytest.raises(err, match="seed"):
        select(ds, method="random", seed=seed, cache=cache)


def test_bad_proxy_settings(ds, cache):
    with pytest.raises(ValueError, match="proxy batch_size=0 must be a positive integer"):
        select(ds, proxy={"batch_size": 0}, cache=cache)
    with pytest.raises(ValueError, match="proxy='fast'; pass 'finetune', 'scratch', a dict of settings or a ProxyConfig"):
        select(ds, proxy="fast", cache=cache)
    with pytest.raises(TypeError, match="proxy must be a ProxyConfig, a dict, 'finetune', 'scratch' or None, not list"):
        select(ds, proxy=["lr", 1e-3], cache=cache)
    with pytest.raises(ValueError, match="proxy warmup_steps=-1 must be an integer >= 0"):
        select(ds, proxy={"warmup_steps": -1}, cache=cache)


def test_apply_refuses_another_dataset(ds, tmp_path):
    sel = select(ds, method="random")
    with pytest.raises(ValueError, match=r"made from a dataset of 200 rows .* but the dataset given has 199 rows"):
        sel.apply(ds.select(range(199)))
    relabelled = ds.map(lambda r: {"label": (r["label"] + 1) % 10})
    with pytest.raises(ValueError, match=r"The dataset's 'label' column \(hash \w+\) differs from the source's"):
        sel.apply(relabelled)
    same_data = ds.map(lambda r: r)  # same rows, new fingerprint
    with pytest.raises(ValueError, match=r"fingerprint \w+ differs from the selection's source fingerprint.*"
                                         r"pass check='content'"):
        sel.apply(same_data)
    assert sel.apply(same_data, check="content").num_rows == len(sel)
    with pytest.raises(ValueError, match=r"check='loose'; pass 'strict', 'content' or 'none'"):
        sel.apply(ds, check="loose")
    assert sel.apply(relabelled, check="none").num_rows == len(sel)


def test_select_coreset_without_method(ds):
    with pytest.raises(TypeError, match="select_coreset needs a method.*known methods: .*kcenter"):
        ds.select_coreset(fraction=0.1)


def test_selection_leaves_the_caller_rng_alone(ds):
    """Selections draw from their own generators: the global torch and numpy streams are untouched."""
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    select(ds, method="random")
    select(ds, method="el2n", epoch=1)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()


class FiveWay(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(40, 5)

    def forward(self, x):
        return self.head(x)


def test_model_with_too_few_outputs(ds, cache):
    with pytest.raises(ValueError, match="The last nn.Linear of FiveWay has 5 outputs but the data has 10 classes"):
        select(ds, method="kcenter", model=FiveWay(), cache=cache)
    with pytest.raises(ValueError, match=r"logits of shape \(\d+, 5\), but the labels go up to 9"):
        select(ds, method="el2n", model=FiveWay(), cache=cache)


def test_plain_int_labels_missing_the_top_class_are_fine(ds, tmp_path):
    """A plain int column only bounds the class count from below: a 10-way model fits 9 seen classes."""
    nine = ds.filter(lambda r: r["label"] != 9).cast_column("label", datasets.Value("int64"))
    sel = select(nine, method="kcenter", cache=tmp_path)
    assert sel.per_class_counts(np.asarray(nine["label"])).keys() == set(range(9))


@pytest.mark.parametrize("method,options,match", [  # every option of every method: tests/test_method_options.py
    ("kcenter", {"init": "far"}, r"init='far'; pass 'mean' or 'random'"),
    ("craig", {"space": "logits"}, r"space='logits'; pass 'gradient' or 'features'"),
    ("ccs", {"score": "loss"}, r"score='loss'; pass one of \['el2n', 'grand', 'forgetting'\]"),
    ("ccs", {"strata": 0}, r"strata=0 must be a positive integer"),
    ("ccs", {"hard_cutoff": 1.0}, r"hard_cutoff=1.0 must be in \[0, 1\)"),
    ("forgetting", {"epochs": 1, "epoch": None}, r"epochs=1; pass an integer proxy epoch >= 2"),
    ("el2n", {"epoch": -1}, r"epoch=-1; pass an integer proxy epoch >= 0"),
    ("grand", {"epoch": "3"}, r"epoch='3'; pass an integer proxy epoch"),
])
def test_bad_option_values_fail_before_training(ds, cache, method, options, match):
    options = {k: v for k, v in {"epoch": 1, **options}.items() if v is not None}
    with pytest.raises(TypeError if options.get("epoch") == "3" else ValueError, match=match):
        hf_coreset.select(ds, method, fraction=0.1, model=make_convnet(0), cache_dir=cache, progress=False, **options)
