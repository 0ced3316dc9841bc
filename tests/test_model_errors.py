"""Models and rows the proxy cannot use are refused before it trains, with one sentence that names the fix;
dtypes and batch shapes it can handle are handled."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from torch import nn

import hf_coreset
from hf_coreset import proxy
from hf_coreset.proxy import ProxyConfig, _EpochBatchSampler, run_proxy
from hf_coreset.signals import ROW_KEY, RowCollator


class MLP(nn.Module):
    """40 -> 16 -> 10, optionally with BatchNorm; `wrap` turns the logits into another kind of output."""

    def __init__(self, bn: bool = False, wrap=None):
        super().__init__()
        self.body = nn.Linear(40, 16)
        self.bn = nn.BatchNorm1d(16) if bn else nn.Identity()
        self.head = nn.Linear(16, 10)
        self.wrap = wrap

    def forward(self, x):
        logits = self.head(torch.relu(self.bn(self.body(x))))
        return logits if self.wrap is None else self.wrap(logits)


class TwoHeads(nn.Module):
    """Two final-width layers, neither of which alone gives the logits: the head is ambiguous."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(40, 10)
        self.b = nn.Linear(40, 10)

    def forward(self, x):
        return (self.a(x) + self.b(x)) / 2


class AuxAfterHead(nn.Module):
    """An auxiliary layer of the logits' width registered after the head (and not called)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(40, 16)
        self.head = nn.Linear(16, 10)
        self.aux = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


class Stacked(nn.Module):
    """A Sequential whose hidden width equals the number of classes."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(40, 10), nn.ReLU(), nn.Linear(10, 10))

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def no_training(monkeypatch):
    """Proxy training (and the signal passes it runs) fails the test if it starts: the error must come first."""

    def fail(*args, **kwargs):
        raise AssertionError("proxy training started before the error")

    monkeypatch.setattr(proxy, "_train_and_collect", fail)


def select(ds, model, method="el2n", cache=None, **kw):
    kw.setdefault("fraction", 0.1)
    kw.setdefault("epoch", 1)
    kw.setdefault("proxy", {"batch_size": 50})
    return hf_coreset.select(ds, method, model=model, cache_dir=cache, progress=False, **kw)


# --------------------------------------------------------------------------- model outputs
@pytest.mark.parametrize("wrap,match", [
    (lambda z: {"scores": z}, r"returned a dict without `logits` \(keys: \['scores'\]\); return the logits"),
    (lambda z: __import__("transformers").modeling_outputs.BaseModelOutput(last_hidden_state=z),
     r"returned a BaseModelOutput without `logits` \(keys: \['last_hidden_state'\]\)"),
    (lambda z: __import__("transformers").modeling_outputs.SequenceClassifierOutput(loss=z.sum()),
     r"returned a SequenceClassifierOutput without `logits` \(keys: \['loss'\]\)"),
    (lambda z: (z.logsumexp(1).mean(), z),
     r"returned a tuple whose first element is a scalar \(a loss\?\); return the logits, or an object with "
     r"a `logits` field"),
])
def test_output_without_logits(ds, cache, no_training, wrap, match):
    with pytest.raises(TypeError, match=match):
        select(ds, MLP(wrap=wrap), cache=cache)


def test_transformers_model_without_a_classification_head(cache, no_training):
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    rng = np.random.default_rng(0)
    text = datasets.Dataset.from_dict({"input_ids": rng.integers(1, 50, (40, 8)).tolist(), "label": [0, 1] * 20})
    with pytest.raises(TypeError, match=r"returned a BaseModelOutputWithPoolingAndCrossAttentions without `logits`.*"
                                        r"AutoModelForSequenceClassification"):
        select(text, BertModel(config), cache=cache)


def test_plain_function_as_model(ds, cache, no_training):
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, not function; wrap your function in an "
                                        r"nn.Module"):
        select(ds, lambda x: x, cache=cache)


# --------------------------------------------------------------------------- parameters and dtypes
def test_frozen_model_is_refused_before_training(ds, cache, no_training):
    frozen = MLP().requires_grad_(False)
    with pytest.raises(ValueError, match=r"Every parameter of MLP is frozen \(requires_grad=False\), so the proxy "
                                         r"cannot train; unfreeze .* or ask for epoch=0"):
        select(ds, frozen, cache=cache)


def test_frozen_model_at_epoch_0_and_a_partly_frozen_one_work(ds, tmp_path):
    assert len(select(ds, MLP().requires_grad_(False), epoch=0, cache=tmp_path)) == 20
    partly = MLP()
    partly.body.requires_grad_(False)
    assert len(select(ds, partly, cache=tmp_path)) == 20


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-5), (torch.bfloat16, 0.1)])
def test_float64_and_bfloat16_models_take_float32_columns(ds, dtype, atol):
    """Floating inputs are cast to the model's dtype (as transformers pipelines do); scores stay float32."""
    torch.manual_seed(0)
    model = MLP()
    labels = np.asarray(ds["label"])
    kw = dict(config=ProxyConfig(batch_size=50), seed=0, label_column="label", cache_dir=False, progress=False)
    ref, _ = run_proxy(model, ds, labels, 10, {0: frozenset({"features"})}, **kw)
    got, _ = run_proxy(model.to(dtype), ds, labels, 10, {0: frozenset({"features"}), 1: frozenset()}, **kw)
    assert got.at(0, "loss").loss.dtype == np.float32
    np.testing.assert_allclose(got.at(0).loss, ref.at(0).loss, atol=atol)
    assert np.isfinite(got.at(1).loss).all()


# --------------------------------------------------------------------------- batches
def test_batchnorm_never_trains_on_a_one_row_batch(ds, tmp_path):
    """200 rows in batches of 199 would leave one row, which BatchNorm cannot train on: it joins the batch before."""
    sel = select(ds, MLP(bn=True), proxy={"batch_size": 199}, cache=tmp_path)
    assert len(sel) == 20


@pytest.mark.parametrize("n,batch_size,sizes", [(201, 50, [50, 50, 50, 51]), (200, 50, [50] * 4), (1, 8, [1]),
                                                (9, 8, [9]), (10, 8, [8, 2])])
def test_sampler_merges_a_one_row_last_batch(n, batch_size, sizes):
    sampler = _EpochBatchSampler(n, batch_size, seed=0)
    batches = list(sampler)
    assert [len(b) for b in batches] == sizes and len(sampler) == len(sizes)
    assert sorted(row for b in batches for row, _ in b) == list(range(n))
    assert all(w == pytest.approx(1 / len(b)) for b in batches for _, w in b)


@pytest.mark.parametrize("edit,match", [
    (lambda r, i: {"x": None if i == 150 else r["x"]},
     r"Column 'x' has None values in 1 rows \(first: \[150\]\); drop or fill them"),
    (lambda r, i: {"x": r["x"][:30] if i in (120, 150) else r["x"]},
     r"Column 'x' has ragged lengths \(30 to 40; rows \[120, 150\] differ from row 0\).*pass "
     r"collate_fn=DataCollatorWithPadding\(tokenizer\) or pad the column"),
    (lambda r, i: {"x": [None] + r["x"][1:] if i == 150 else r["x"]},
     r"Column 'x' has None inside the values of 1 rows \(first: \[150\]\)"),
])
def test_rows_with_none_or_ragged_lengths_without_a_collator(ds, cache, no_training, edit, match):
    bad = ds.map(edit, with_indices=True)
    with pytest.raises(ValueError, match=match):
        select(bad, MLP(), cache=cache)


def test_rows_outside_the_selected_view_do_not_count(ds, tmp_path):
    """A bad row that a `select` of the dataset leaves out is no reason to refuse."""
    bad = ds.map(lambda r, i: {"x": None if i == 150 else r["x"]}, with_indices=True)
    assert len(select(bad.select(range(150)), MLP(), cache=tmp_path)) == 15


def test_row_collator_names_none_and_ragged_rows():
    """Rows that reach the collator (e.g. from a with_transform) are diagnosed by column and row."""
    default = RowCollator()
    with pytest.raises(ValueError, match=r"Column 'x' has ragged shapes in rows \[0, 7\] of this batch.*"
                                         r"DataCollatorWithPadding"):
        default([{"x": torch.zeros(4), ROW_KEY: 0}, {"x": torch.zeros(3), ROW_KEY: 7}])
    with pytest.raises(ValueError, match=r"Column 'x' has None in rows \[3\]"):  # default_data_collator drops it
        default([{"x": None, ROW_KEY: 3}, {"x": torch.zeros(4), ROW_KEY: 7}])
    own = RowCollator(lambda rows: {"x": torch.tensor([r["x"] for r in rows])})
    with pytest.raises(ValueError, match=r"Column 'x' has None in rows \[7\]"):
        own([{"x": [1.0], ROW_KEY: 0}, {"x": None, ROW_KEY: 7}])


# --------------------------------------------------------------------------- the head
def test_ambiguous_head_is_refused_and_named_one_works(ds, cache, no_training):
    with pytest.raises(ValueError, match=r"TwoHeads has 2 nn.Linear layers with 10 outputs \(\['a', 'b'\]\).*"
                                         r"pass head='<module name>'"):
        select(ds, TwoHeads(), method="kcenter", cache=cache)


def test_named_head_is_recorded(ds, tmp_path):
    sel = select(ds, TwoHeads(), method="kcenter", head="b", cache=tmp_path)
    assert sel.config["head"] == "b"


@pytest.mark.parametrize("model,head", [(AuxAfterHead, "head"), (Stacked, "net.2")])
def test_final_width_layers_settled_by_the_logits(ds, tmp_path, model, head):
    """The layer whose output is the logits is the head, whatever the registration order; the config records it."""
    sel = select(ds, model(), method="kcenter", cache=tmp_path)
    assert sel.config["head"] == head


def test_automatic_head_is_recorded(ds, tmp_path):
    from hf_coreset.data.mnist1d import make_convnet

    assert select(ds, make_convnet(0), method="kcenter", cache=tmp_path).config["head"] == "classifier"
