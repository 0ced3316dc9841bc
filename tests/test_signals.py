"""Signal collection: how models are called, collators, dataset formats, the signal cache and resuming."""

from __future__ import annotations

import logging
import os

import datasets
import numpy as np
import pytest
import torch
from torch import nn

import hf_coreset
from hf_coreset.api import check_dataset
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.proxy import ProxyConfig, run_proxy


class TwoInputNet(nn.Module):
    """A plain module whose forward names two columns; the dataset has others it must not get."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(40, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x, mask):
        return self.head(torch.tanh(self.body(x * mask)))


class DropoutMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(40, 32), nn.ReLU(), nn.Dropout(0.3))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.body(x))


def seeded(cls, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls()


class CountingCollator:
    """A collator that counts its calls and can stop a run part way (as a crash or Ctrl-C would)."""

    def __init__(self, fail_at=None):
        from transformers import default_data_collator

        self.inner, self.calls, self.fail_at = default_data_collator, 0, fail_at

    def __call__(self, features):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return self.inner(features)


def signals_of(model, ds, needs, **kw):
    labels, num_classes = check_dataset(ds, "label")
    kw.setdefault("config", ProxyConfig(optimizer="adam", lr=1e-2, batch_size=50))
    kw.setdefault("cache_dir", False)
    signals, timings = run_proxy(model, ds, labels, num_classes, needs, seed=0, label_column="label",
                                 progress=False, **kw)
    return signals, timings


# ------------------------------------------------------------------------- how models are called
def test_plain_module_gets_the_columns_its_forward_names(mnist1d_small):
    base = mnist1d_small["train"].select(range(64))
    rng = np.random.default_rng(0)
    ds = base.add_column("mask", rng.integers(0, 2, (64, 40)).astype(np.float32).tolist())
    ds = ds.add_column("note", ["not a model input"] * 64)  # would break the collator if passed
    model = seeded(TwoInputNet)
    signals, _ = signals_of(model, ds, {0: frozenset({"features"})})
    ckpt = signals.at(0, "logits", "features", "loss", "correct")
    x = torch.tensor(np.asarray(ds["x"]), dtype=torch.float32)
    mask = torch.tensor(np.asarray(ds["mask"]), dtype=torch.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ckpt.logits, model(x, mask).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ckpt.features, torch.tanh(model.body(x * mask)).numpy(), rtol=1e-5, atol=1e-6)
    y = np.asarray(ds["label"])
    ref_loss = nn.functional.cross_entropy(torch.tensor(ckpt.logits), torch.tensor(y), reduction="none").numpy()
    np.testing.assert_allclose(ckpt.loss, ref_loss, rtol=1e-5)
    np.testing.assert_array_equal(ckpt.correct, ckpt.logits.argmax(1) == y)


def test_minilm_with_padding_collator_matches_direct_forward(minilm_path, minilm_text):
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    ds, tokenizer = minilm_text
    ds = ds.select(range(12))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2).eval()
    assert len(set(map(len, ds["input_ids"]))) > 1  # ragged: the default collator could not stack these
    collator = DataCollatorWithPadding(tokenizer)
    calls = []

    class Recording(DataCollatorWithPadding):
        def __call__(self, features):
            calls.append(len(features))
            return super().__call__(features)

    signals, _ = signals_of(model, ds, {0: frozenset({"features"})},
                            collate_fn=Recording(tokenizer), config=ProxyConfig(eval_batch_size=5))
    assert calls == [2, 5, 5, 2]  # the user's collator built the probe's two rows, then every batch
    ckpt = signals.at(0, "logits", "features")
    assert ckpt.features.shape == (12, 384)  # MiniLM's hidden size: the classifier's input
    with torch.no_grad():
        for i in range(12):
            row = collator([{k: ds[i][k] for k in ("input_ids", "attention_mask", "token_type_ids")}])
            out = model(**row)
            pooled = model.bert(**row).pooler_output
            np.testing.assert_allclose(ckpt.logits[i], out.logits[0].numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(ckpt.features[i], pooled[0].numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fmt", ["numpy", "torch", "pandas", "arrow", "torch-label-only"])
def test_dataset_formats_give_the_same_signals(fmt, mnist1d_small):
    ds = mnist1d_small["train"].select(range(50))
    model = make_convnet(0)
    ref, _ = signals_of(model, ds, {0: frozenset({"features"})})
    if fmt == "torch-label-only":
        formatted = ds.with_format("torch", columns=["label"])  # hides the model's input column
    else:
        formatted = ds.with_format(fmt)
    got, _ = signals_of(model, formatted, {0: frozenset({"features"})})
    np.testing.assert_array_equal(got.at(0).logits, ref.at(0).logits)
    np.testing.assert_array_equal(got.at(0).features, ref.at(0).features)


def test_check_dataset_classlabel_and_plain_int_columns(mnist1d_small):
    ds = mnist1d_small["train"]
    labels, num_classes = check_dataset(ds, "label")
    assert num_classes == 10 and labels.dtype == np.int64
    few = datasets.Dataset.from_dict({"x": [[0.0]] * 4, "label": [0, 2, 1, 2]})
    assert check_dataset(few, "label")[1] == 3  # plain ints: max + 1
    as_classes = few.cast_column("label", datasets.ClassLabel(names=list("abcde")))
    labels, num_classes = check_dataset(as_classes, "label")
    assert num_classes == 5 and labels.tolist() == [0, 2, 1, 2]  # ClassLabel: its names count
    shuffled = ds.shuffle(seed=1).select(range(30))  # an indices mapping: rows come in mapped order
    np.testing.assert_array_equal(check_dataset(shuffled, "label")[0], np.asarray(ds["label"])[
        np.asarray(ds.shuffle(seed=1)._indices.column(0))[:30]])


# ------------------------------------------------------------------------------- signal cache
def test_completed_run_caches_signals_only(mnist1d_small, mnist1d_proxy, tmp_path):
    """The proxy state (model and optimizer) is dropped once a run has all its epochs: a later run that
    needs a new field at that epoch trains again, from scratch, to the same signals."""
    ds = mnist1d_small["train"].select(range(300))
    kw = dict(model=make_convnet(2), proxy=mnist1d_proxy, cache_dir=tmp_path, progress=False, epoch=2)
    first = hf_coreset.select(ds, "el2n", fraction=0.1, **kw)
    assert first.timings["proxy_training"] > 0
    (root,) = (tmp_path / "signals").iterdir()
    assert sorted(p.name for p in root.iterdir()) == ["epoch0002.correct.npy", "epoch0002.logits.npy",
                                                      "epoch0002.loss.npy", "meta.json"]
    second = hf_coreset.select(ds, "kcenter", fraction=0.3, **kw)
    assert second.timings["proxy_training"] > 0 and not (root / "proxy_state.pt").exists()
    uncached = hf_coreset.select(ds, "kcenter", fraction=0.3, **{**kw, "cache_dir": False})
    np.testing.assert_array_equal(uncached.indices, second.indices)


def test_second_selection_reuses_cached_signals(mnist1d_small, mnist1d_proxy, tmp_path):
    ds = mnist1d_small["train"].select(range(300))
    kw = dict(model=make_convnet(2), proxy={**mnist1d_proxy, "keep_state": True}, cache_dir=tmp_path,
              progress=False, epoch=2)
    first = hf_coreset.select(ds, "el2n", fraction=0.1, **kw)
    assert first.timings["proxy_training"] > 0
    (root,) = (tmp_path / "signals").iterdir()
    names = sorted(p.name for p in root.iterdir())
    assert names == ["epoch0002.correct.npy", "epoch0002.logits.npy", "epoch0002.loss.npy", "meta.json",
                     "proxy_state.pt"]  # kept on request
    stamps = {p.name: p.stat().st_mtime_ns for p in root.iterdir() if p.suffix == ".npy"}
    # Another method and fraction: features are new, but come from the cached epoch-2 state, no training.
    second = hf_coreset.select(ds, "kcenter", fraction=0.3, **kw)
    assert second.timings["proxy_training"] == 0.0 and second.timings["signals"] > 0
    assert (root / "epoch0002.features.npy").is_file()
    # A third needs nothing new: no training and no signal pass; the cached files are untouched.
    third = hf_coreset.select(ds, "entropy", fraction=0.5, **kw)
    assert third.timings["proxy_training"] == 0.0 and third.timings["signals"] == 0.0
    assert {n: (root / n).stat().st_mtime_ns for n in stamps} == stamps
    # Same signals as an uncached run.
    uncached = hf_coreset.select(ds, "kcenter", fraction=0.3, **{**kw, "cache_dir": False})
    np.testing.assert_array_equal(uncached.indices, second.indices)


def test_cache_key_changes_with_what_changes_training(mnist1d_small, mnist1d_proxy, tmp_path):
    ds = mnist1d_small["train"].select(range(100))
    kw = dict(proxy=mnist1d_proxy, cache_dir=tmp_path, progress=False, epoch=0)
    hf_coreset.select(ds, "el2n", fraction=0.5, model=make_convnet(0), **kw)
    hf_coreset.select(ds, "el2n", fraction=0.2, model=make_convnet(0), **kw)  # same key
    assert len(list((tmp_path / "signals").iterdir())) == 1
    frozen = make_convnet(0)
    frozen.conv1.requires_grad_(False)  # same weights, different training
    hf_coreset.select(ds, "el2n", fraction=0.5, model=frozen, **kw)
    hf_coreset.select(ds, "el2n", fraction=0.5, model=make_convnet(0), seed=1, **kw)
    hf_coreset.select(ds.select(range(99)), "el2n", fraction=0.5, model=make_convnet(0), **kw)
    assert len(list((tmp_path / "signals").iterdir())) == 4


def test_no_cache_writes_nothing(mnist1d_small, mnist1d_proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_CORESET_CACHE", str(tmp_path))
    ds = mnist1d_small["train"].select(range(100))
    sel = hf_coreset.select(ds, "kcenter", fraction=0.2, model=make_convnet(0), proxy=mnist1d_proxy,
                            cache_dir=False, progress=False, epoch=1)
    assert len(sel) == 20 and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------- resuming
def _needs(*epochs):
    return {e: frozenset({"features"}) for e in epochs}


def test_interrupted_run_resumes_from_cached_state(mnist1d_small, tmp_path, caplog):
    """A dropout model, so resuming must also restore the random stream to match."""
    ds = mnist1d_small["train"].select(range(200))  # 4 training batches of 50, 1 signal batch of 512
    batches_per_epoch = 4
    reference, _ = signals_of(seeded(DropoutMLP), ds, _needs(1, 2, 3), cache_dir=tmp_path / "ref",
                              collate_fn=CountingCollator())

    # 1) Ask for epochs {1, 2} (no features at 2), then for {1, 2, 3} with features. With the state kept
    #    (keep_state=True), the epoch-2 state gives epoch 2's features and epoch 3 continues from it;
    #    without it (the default), the completed run left signals only and the longer one starts over.
    for keep, calls in ((True, 1 + 1 + batches_per_epoch + 1),  # the probe, a signal pass at 2, one epoch, one at 3
                        (False, 1 + 3 * batches_per_epoch + 2)):  # the probe, three epochs, passes at 2 and 3
        partial = tmp_path / f"partial-{keep}"
        config = ProxyConfig(optimizer="adam", lr=1e-2, batch_size=50, keep_state=keep)
        signals_of(seeded(DropoutMLP), ds, {1: frozenset({"features"}), 2: frozenset()}, cache_dir=partial,
                   collate_fn=CountingCollator(), config=config)
        (root,) = (partial / "signals").iterdir()
        assert (root / "proxy_state.pt").is_file() == keep
        collator = CountingCollator()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hf_coreset.proxy"):
            resumed, timings = signals_of(seeded(DropoutMLP), ds, _needs(1, 2, 3), cache_dir=partial,
                                          collate_fn=collator, config=config)
        assert ("Resuming proxy training from epoch 2" in caplog.text) == keep
        assert collator.calls == calls
        assert (root / "proxy_state.pt").is_file() == keep
        for epoch in (1, 2, 3):
            for field in ("loss", "logits", "features"):
                np.testing.assert_array_equal(getattr(resumed.at(epoch), field), getattr(reference.at(epoch), field))

    # 2) A run stopped in the middle of epoch 3 (after epoch 2's signals and state were written).
    crashed = tmp_path / "crashed"
    stop_at = 1 + 2 * (batches_per_epoch + 1) + 2  # the second training batch of epoch 3 (after the probe)
    with pytest.raises(KeyboardInterrupt):
        signals_of(seeded(DropoutMLP), ds, _needs(1, 2, 3), cache_dir=crashed, collate_fn=CountingCollator(stop_at))
    (root,) = (crashed / "signals").iterdir()
    assert not any("tmp" in p.name for p in root.iterdir())  # nothing half-written
    assert not (root / "epoch0003.loss.npy").exists()
    assert torch.load(root / "proxy_state.pt", weights_only=True)["epoch"] == 2  # left for the next run
    collator = CountingCollator(stop_at)  # the collator's settings are part of the cache key; this run stops sooner
    again, _ = signals_of(seeded(DropoutMLP), ds, _needs(1, 2, 3), cache_dir=crashed, collate_fn=collator)
    assert collator.calls == 1 + batches_per_epoch + 1
    assert not (root / "proxy_state.pt").exists()  # the run completed: signals only
    np.testing.assert_array_equal(again.at(3).features, reference.at(3).features)


def test_signals_accessors():
    ckpt = hf_coreset.signals.Checkpoint(epoch=1, logits=np.array([[2.0, 0.0], [0.0, 0.0]]))
    p = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
    np.testing.assert_allclose(ckpt.logit_grad(np.array([1, 0])), [[p[0], p[1] - 1], [-0.5, 0.5]])
    signals = hf_coreset.Signals(labels=np.array([1, 0]), num_classes=2, checkpoints={1: ckpt})
    with pytest.raises(KeyError, match=r"No signals at proxy epoch 3; collected epochs: \[1\]"):
        signals.at(3)
    with pytest.raises(KeyError, match=r"lack \['features'\]"):
        signals.at(1, "logits", "features")


def test_proxy_config_validation():
    with pytest.raises(ValueError, match=r"optimizer='lion'; pick one of \['adamw', 'adam', 'sgd'\]"):
        ProxyConfig(optimizer="lion")
    with pytest.raises(ValueError, match="proxy lr=0 must be a positive number"):
        ProxyConfig(lr=0)
    with pytest.raises(TypeError, match=r"Unknown proxy settings \['learning_rate'\]"):
        ProxyConfig.coerce({"learning_rate": 0.1})
    assert ProxyConfig.coerce({"lr": 0.1}).lr == 0.1
    assert os.environ["HF_CORESET_CACHE"]  # the session fixture isolates the cache


def test_a_user_accelerator_gives_the_same_signals(mnist1d_small):
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    ds = mnist1d_small["train"].select(range(150))
    default, _ = signals_of(make_convnet(0), ds, _needs(1))
    split = Accelerator(dataloader_config=DataLoaderConfiguration(split_batches=True))
    given, _ = signals_of(make_convnet(0), ds, _needs(1), accelerator=split)
    np.testing.assert_array_equal(given.at(1).features, default.at(1).features)


def test_tensor_rows_collate_to_the_same_batch_as_python_rows(mnist1d_small):
    from hf_coreset.signals import ROW_KEY, RowCollator, RowDataset

    ds = mnist1d_small["train"].select(range(20))
    collate = RowCollator()
    as_lists = collate(RowDataset(ds, ["x"]).__getitems__(list(range(7, 20))))
    as_tensors = collate(RowDataset(ds, ["x"], tensors=True).__getitems__(list(range(7, 20))))
    assert as_lists.keys() == as_tensors.keys() == {"x", ROW_KEY}
    for key in as_lists:
        assert as_lists[key].dtype == as_tensors[key].dtype
        torch.testing.assert_close(as_lists[key], as_tensors[key], rtol=0, atol=0)
    # row_views reads tensors exactly when the collator is transformers' default one, given or not
    from transformers import DefaultDataCollator, default_data_collator

    from hf_coreset.signals import row_views

    for collate_fn, kind in ((None, "torch"), (default_data_collator, "torch"), (DefaultDataCollator(), None)):
        rows, collator = row_views(ds, ["x"], collate_fn)
        assert rows.dataset.format["type"] == kind and collator.is_default == (kind == "torch")
