"""The signal cache keys on what determines the signals (weights, code, collator, settings), never
serves a corrupt entry, and a bad cache folder or proxy setting is refused before any training."""

from __future__ import annotations

import importlib.util
import logging
import sys

import numpy as np
import pytest
import torch
from transformers import default_data_collator

import hf_coreset
from hf_coreset import proxy as proxy_module
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.fingerprint import callable_fingerprint, code_fingerprint
from hf_coreset.proxy import ProxyConfig

NET_SOURCE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(40, 10)

    def forward(self, x):
        return self.head(x)
'''


def select(ds, cache_dir, method="el2n", **kw):
    kw.setdefault("model", make_convnet(0))
    kw.setdefault("proxy", {"optimizer": "adam", "lr": 1e-2, "batch_size": 50})
    return hf_coreset.select(ds, method, fraction=0.2, epoch=1, cache_dir=cache_dir, progress=False, **kw)


def entries(cache_dir):
    return sorted(p.name for p in (cache_dir / "signals").iterdir()) if (cache_dir / "signals").exists() else []


def import_module_file(path, name="hf_coreset_test_netmod"):
    """Import (or re-import, after an edit) the module file at `path`, as a user's edited script would be."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # inspect finds a class's file through sys.modules
    spec.loader.exec_module(module)
    return module


def seeded(cls):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return cls()


@pytest.fixture
def netmod(tmp_path):
    path = tmp_path / "netmod" / "netmod.py"
    path.parent.mkdir()
    path.write_text(NET_SOURCE)
    yield path
    sys.modules.pop("hf_coreset_test_netmod", None)


# ------------------------------------------------------------------------------ what the key covers
def test_edited_forward_gets_a_new_cache_entry(ds, tmp_path, netmod):
    """Same class name, repr and weights, another forward: the signals are recomputed, not served stale."""
    cache = tmp_path / "cache"
    before = seeded(import_module_file(netmod).Net)
    first = select(ds, cache, model=before)
    assert first.timings["proxy_training"] > 0
    netmod.write_text(NET_SOURCE.replace("return self.head(x)", "return self.head(torch.tanh(3 * x))"))
    after = seeded(import_module_file(netmod).Net)
    assert repr(after) == repr(before)
    assert all(torch.equal(a, b) for a, b in zip(after.state_dict().values(), before.state_dict().values()))
    second = select(ds, cache, model=after)
    assert second.timings["proxy_training"] > 0
    assert len(entries(cache)) == 2
    assert not np.array_equal(first.scores, second.scores)
    np.testing.assert_array_equal(second.scores, select(ds, False, model=seeded(type(after))).scores)
    # The same code again (a fresh instance of the edited class): a cache hit, no training, no signal pass.
    again = select(ds, cache, model=seeded(type(after)))
    assert again.timings["proxy_training"] == 0.0 and again.timings["signals"] == 0.0
    np.testing.assert_array_equal(again.scores, second.scores)


def collate_plain(rows):
    return default_data_collator(rows)


def collate_scaled(rows):
    batch = default_data_collator(rows)
    batch["x"] = batch["x"] * 3
    return batch


def _scaled(batch):
    return {"x": [[2 * v for v in row] for row in batch["x"]], "label": batch["label"]}


def test_output_format_does_not_change_the_cache_key(ds, tmp_path):
    """The key reads the rows' values, not datasets' fingerprint (which with_format changes); a
    transform is preprocessing, so it does change the key."""
    first = select(ds, tmp_path, method="kcenter")
    assert first.timings["proxy_training"] > 0
    for formatted in (ds.with_format("torch"), ds.with_format("numpy"), ds.with_format("numpy").with_format(None)):
        again = select(formatted, tmp_path, method="kcenter")
        assert again.timings["proxy_training"] == again.timings["signals"] == 0.0  # a full hit: no training, no pass
        np.testing.assert_array_equal(again.indices, first.indices)
    assert len(entries(tmp_path)) == 1
    select(ds.with_transform(_scaled), tmp_path, method="kcenter")
    select(ds.select(range(1, 200)), tmp_path, method="kcenter")
    shuffled = ds.shuffle(seed=0)  # the same rows in another order: other signals by row
    select(shuffled, tmp_path, method="kcenter")
    assert len(entries(tmp_path)) == 4


def test_output_format_does_not_change_the_key_with_a_padding_collator(minilm_path, minilm_text, tmp_path):
    """transformers' collators take rows in any format, so rows are read as Python values whatever the
    output format: ds.with_format("torch") is a cache hit with the same signals."""
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    text, tokenizer = minilm_text
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    kw = dict(model=model, collate_fn=DataCollatorWithPadding(tokenizer), proxy={"lr": 5e-5, "batch_size": 16})
    first = select(text, tmp_path, method="kcenter", **kw)
    assert first.timings["proxy_training"] > 0
    for fmt in ("torch", "numpy"):
        again = select(text.with_format(fmt), tmp_path, method="kcenter", **kw)
        assert again.timings["proxy_training"] == again.timings["signals"] == 0.0
        np.testing.assert_array_equal(again.indices, first.indices)
        uncached = select(text.with_format(fmt), False, method="kcenter", **kw)  # the signals themselves agree
        np.testing.assert_array_equal(uncached.scores, first.scores)
    assert len(entries(tmp_path)) == 1


def test_plain_function_collators_key_by_their_code(ds, tmp_path):
    cache = tmp_path / "cache"
    first = select(ds, cache, collate_fn=collate_plain)
    second = select(ds, cache, collate_fn=collate_scaled)
    assert second.timings["proxy_training"] > 0
    assert len(entries(cache)) == 2
    assert not np.array_equal(first.scores, second.scores)
    again = select(ds, cache, collate_fn=collate_scaled)
    assert again.timings["proxy_training"] == 0.0 and again.timings["signals"] == 0.0


def _scaled_by(factor):
    def collate(rows):
        batch = default_data_collator(rows)
        batch["x"] = batch["x"] * factor
        return batch
    return collate


def test_callable_fingerprint_sees_code_closures_and_settings(minilm_text):
    from transformers import DataCollatorWithPadding

    _, tokenizer = minilm_text
    assert callable_fingerprint(collate_plain) == callable_fingerprint(collate_plain)
    assert callable_fingerprint(collate_plain) != callable_fingerprint(collate_scaled)
    # Same code, other captured value: another collator.
    assert callable_fingerprint(_scaled_by(2)) == callable_fingerprint(_scaled_by(2))
    assert callable_fingerprint(_scaled_by(2)) != callable_fingerprint(_scaled_by(3))
    # A collator object: its class's code and its settings (no memory addresses, so stable across runs).
    longest = callable_fingerprint(DataCollatorWithPadding(tokenizer))
    assert longest == callable_fingerprint(DataCollatorWithPadding(tokenizer))
    assert longest != callable_fingerprint(DataCollatorWithPadding(tokenizer, padding="max_length", max_length=32))
    assert "0x" not in callable_fingerprint(DataCollatorWithPadding(tokenizer), digest=False)


def test_code_fingerprint_covers_every_module_class_and_its_bases(netmod):
    net = import_module_file(netmod).Net()
    assert code_fingerprint(net) == code_fingerprint(import_module_file(netmod).Net())
    text = code_fingerprint(net, digest=False)
    assert "def forward(self, x):\n        return self.head(x)" in text  # Net
    assert "class Linear(Module):" in text and "class Module:" in text  # its submodule and the base class


EXEC_SOURCE = NET_SOURCE.replace("class Net(", "class ReplNet(")  # the same model, defined with no source file


def test_model_without_source_is_never_served_from_the_cache(ds, tmp_path, caplog):
    """A class typed into a REPL (here: exec) has no source to key on: warn, and recompute every time."""
    namespace = {"__name__": "repl"}
    exec(EXEC_SOURCE, namespace)
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="hf_coreset"):
        first = select(ds, cache, model=seeded(namespace["ReplNet"]))
        second = select(ds, cache, model=seeded(namespace["ReplNet"]))
    assert first.timings["proxy_training"] > 0 and second.timings["proxy_training"] > 0
    assert "ReplNet" in caplog.text and "source" in caplog.text
    np.testing.assert_array_equal(first.indices, second.indices)
    assert entries(cache) == []  # an entry nothing could ever reuse is not written


def test_collator_without_source_is_never_served_from_the_cache(ds, tmp_path, caplog):
    namespace = {"default_data_collator": default_data_collator}
    exec("def collate(rows):\n    return default_data_collator(rows)\n", namespace)
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="hf_coreset"):
        select(ds, cache, collate_fn=namespace["collate"])
        again = select(ds, cache, collate_fn=namespace["collate"])
    assert again.timings["proxy_training"] > 0
    assert "collate" in caplog.text and entries(cache) == []


# ------------------------------------------------------------------------------- corrupt entries
def _truncate(path):
    path.write_bytes(path.read_bytes()[:-7])


def _empty(path):
    path.write_bytes(b"")


def _garbage(path):
    path.write_bytes(b"this is not a numpy file" * 10)


def _short(path):
    np.save(path, np.load(path)[:-1])


def _nan(path):
    array = np.load(path)
    array.reshape(len(array), -1)[3, 0] = np.nan
    np.save(path, array)


def _object(path):
    np.save(path, np.array([{"a": 1}] * 200, dtype=object), allow_pickle=True)


CORRUPTIONS = [
    ("epoch0001.loss.npy", _truncate), ("epoch0001.logits.npy", _empty), ("epoch0001.features.npy", _garbage),
    ("epoch0001.correct.npy", _short), ("epoch0001.features.npy", _short), ("epoch0001.logits.npy", _nan),
    ("epoch0001.loss.npy", _nan), ("epoch0001.features.npy", _nan), ("epoch0001.loss.npy", _object),
    ("proxy_state.pt", _truncate), ("proxy_state.pt", _garbage),
]


@pytest.mark.parametrize("name,corrupt", CORRUPTIONS, ids=[f"{n}-{c.__name__[1:]}" for n, c in CORRUPTIONS])
def test_corrupt_entry_is_dropped_and_recomputed(ds, tmp_path, caplog, name, corrupt):
    cache = tmp_path / "cache"
    kept = {"proxy": {"optimizer": "adam", "lr": 1e-2, "batch_size": 50, "keep_state": True}}
    if name == "proxy_state.pt":
        select(ds, cache, method="el2n", **kept)  # the state is only read when a field is missing: kcenter's features
    else:
        select(ds, cache, method="kcenter", **kept)
    (root,) = (cache / "signals").iterdir()
    corrupt(root / name)
    with caplog.at_level(logging.WARNING, logger="hf_coreset"):
        again = select(ds, cache, method="kcenter", **kept)
    assert name in caplog.text and "recomput" in caplog.text
    fresh = select(ds, False, method="kcenter")
    np.testing.assert_array_equal(again.indices, fresh.indices)
    np.testing.assert_array_equal(again.scores, fresh.scores)
    if name.endswith(".npy"):  # rewritten with the recomputed values
        assert np.isfinite(np.load(root / name)).all() and len(np.load(root / name)) == ds.num_rows
    else:
        assert torch.load(root / name, weights_only=True)["epoch"] == 1


# ------------------------------------------------------------------------------- bad cache folder
@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("proxy training started before the cache folder was checked")
    monkeypatch.setattr(proxy_module, "_train_and_collect", fail)


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_unwritable_cache_dir_fails_before_training(ds, tmp_path, no_training, where):
    file = tmp_path / "file.txt"
    file.write_text("not a folder")
    bad = file if where == "file" else file / "sub"
    with pytest.raises(ValueError, match=rf"{bad}.*cannot be written.*cache_dir=<a writable folder>.*cache_dir=False"):
        select(ds, bad)
    assert file.read_text() == "not a folder"


def test_unwritable_cache_from_the_environment_names_the_variable(ds, tmp_path, no_training, monkeypatch):
    file = tmp_path / "file.txt"
    file.write_text("")
    monkeypatch.setenv("HF_CORESET_CACHE", str(file / "sub"))
    with pytest.raises(ValueError, match=r"HF_CORESET_CACHE"):
        select(ds, None)


@pytest.mark.parametrize("value", [True, 3, ["cache"]])
def test_cache_dir_of_the_wrong_type(ds, no_training, value):
    with pytest.raises(TypeError, match=r"cache_dir must be a folder path, None .* or False"):
        select(ds, value)


# ------------------------------------------------------------------------------- proxy settings, seed
@pytest.mark.parametrize("setting,value,err,match", [
    ("batch_size", 2.5, TypeError, r"proxy batch_size=2.5 must be a positive integer"),
    ("batch_size", True, TypeError, r"proxy batch_size=True must be a positive integer"),
    ("batch_size", 0, ValueError, r"proxy batch_size=0 must be a positive integer"),
    ("eval_batch_size", "64", TypeError, r"proxy eval_batch_size='64' must be a positive integer"),
    ("weight_decay", "x", TypeError, r"proxy weight_decay='x' must be a number >= 0"),
    ("weight_decay", -0.1, ValueError, r"proxy weight_decay=-0.1 must be a number >= 0"),
    ("weight_decay", float("nan"), ValueError, r"proxy weight_decay=nan must be a number >= 0"),
    ("lr", "0.1", TypeError, r"proxy lr='0.1' must be a positive number"),
    ("lr", True, TypeError, r"proxy lr=True must be a positive number"),
    ("lr", float("inf"), ValueError, r"proxy lr=inf must be a positive number"),
    ("optimizer", 3, TypeError, r"proxy optimizer=3; pick one of \['adamw', 'adam', 'sgd'\]"),
    ("optimizer", "lion", ValueError, r"proxy optimizer='lion'; pick one of \['adamw', 'adam', 'sgd'\]"),
    ("momentum", -1, ValueError, r"proxy momentum=-1 must be a number in \[0, 1\)"),
    ("momentum", False, TypeError, r"proxy momentum=False must be a number in \[0, 1\)"),
    ("momentum", None, TypeError, r"proxy momentum=None must be a number in \[0, 1\)"),
    ("keep_state", "yes", TypeError, r"proxy keep_state='yes' must be True or False"),
])
def test_bad_proxy_setting_is_refused(ds, tmp_path, no_training, setting, value, err, match):
    with pytest.raises(err, match=match):
        ProxyConfig(**{setting: value})
    with pytest.raises(err, match=match):
        select(ds, tmp_path, proxy={setting: value})


def test_proxy_settings_are_stored_as_plain_numbers():
    cfg = ProxyConfig(lr=np.float32(0.5), batch_size=np.int64(64), weight_decay=0, momentum=np.float64(0.5),
                      keep_state=True)  # keeping the state does not change the signals: not in the key
    assert cfg.training_key() == {"optimizer": "adamw", "lr": 0.5, "weight_decay": 0.0, "batch_size": 64}
    assert type(cfg.lr) is float and type(cfg.batch_size) is int and type(cfg.weight_decay) is float


@pytest.mark.parametrize("seed", [2**32, 2**70])
def test_seed_too_large(ds, seed):
    with pytest.raises(ValueError, match=rf"seed == {seed} is too large; pass an integer in \[0, 2\*\*32 - 1\]"):
        hf_coreset.select(ds, "random", fraction=0.1, seed=seed)


def test_largest_seed_works(ds, tmp_path):
    sel = select(ds, tmp_path, seed=2**32 - 1)
    assert len(sel) == 40


# ------------------------------------------------------------------------------ listing and clearing
def test_list_entries_describes_each_entry(ds, tmp_path):
    import os
    import time

    from hf_coreset.signals.cache import SIGNALS_VERSION, list_entries, remove_entries

    t0 = time.time()
    select(ds, tmp_path, method="kcenter")  # epoch 1: features and the cheap fields
    kept = {"optimizer": "adam", "lr": 1e-2, "batch_size": 50, "keep_state": True}
    select(ds, tmp_path, method="el2n", seed=1, proxy=kept)
    entries_ = list_entries(tmp_path)
    assert len(entries_) == 2 and {e.key for e in entries_} == set(entries(tmp_path))
    by_state = {e.has_state: e for e in entries_}
    plain, stateful = by_state[False], by_state[True]
    assert plain.model_class == "hf_coreset.data.mnist1d.MNIST1DConvNet" and plain.num_rows == 200
    assert plain.epochs == {1: ["correct", "features", "logits", "loss"]}
    assert stateful.epochs == {1: ["correct", "logits", "loss"]}
    assert plain.size == sum(p.stat().st_size for p in plain.path.iterdir())
    assert stateful.size > (stateful.path / "proxy_state.pt").stat().st_size > 0
    assert plain.last_used >= t0 - 1 and not plain.stale and plain.signals_version == SIGNALS_VERSION
    # Reading an entry counts as using it.
    os.utime(plain.path / "meta.json", (t0 - 86400 * 5, t0 - 86400 * 5))
    assert {e.key: e for e in list_entries(tmp_path)}[plain.key].last_used < t0 - 86400 * 4
    select(ds, tmp_path, method="kcenter")
    assert {e.key: e for e in list_entries(tmp_path)}[plain.key].last_used >= t0 - 1
    assert remove_entries([plain]) == plain.size
    assert [e.key for e in list_entries(tmp_path)] == [stateful.key]
    assert list_entries(tmp_path / "nothing here") == []
