"""Signals out of core: cached signals reach the methods as read-only memory maps, and every method
selects from them exactly what it selects from the same arrays in memory."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import hf_coreset
from hf_coreset import methods
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.signals.types import FIELDS, Checkpoint, Signals


def _arrays(n=240, classes=4, dim=6, epochs=20, seed=0):
    """Every field at epochs 0..`epochs` (enough for every method's defaults), with clustered features."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.int64)
    centres = rng.normal(size=(classes, dim)) * 3
    out = {}
    for e in range(epochs + 1):
        out[e] = {"loss": rng.exponential(size=n).astype(np.float32),
                  "correct": rng.random(n) < 0.3 + 0.03 * e,
                  "logits": rng.normal(size=(n, classes)).astype(np.float32),
                  "features": (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32)}
    return labels, classes, out


def _signals(labels, classes, arrays, folder=None) -> Signals:
    """In memory, or (with `folder`) saved as .npy files and loaded back as read-only memory maps."""
    signals = Signals(labels=labels, num_classes=classes)
    for e, fields in arrays.items():
        if folder is not None:
            loaded = {}
            for f, a in fields.items():
                np.save(folder / f"{e}.{f}.npy", a)
                loaded[f] = np.load(folder / f"{e}.{f}.npy", mmap_mode="r")
            fields = loaded
        signals.checkpoints[e] = Checkpoint(epoch=e, **fields)
    return signals


def _same(a, b, name):
    for attr in ("indices", "scores", "weights", "gains"):
        x, y = getattr(a, attr, None), getattr(b, attr, None)
        assert (x is None) == (y is None), (name, attr)
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"{name}.{attr}")


@pytest.mark.parametrize("name", methods.available())
def test_memory_mapped_signals_select_what_in_memory_ones_do(name, tmp_path):
    labels, classes, arrays = _arrays()
    in_memory = _signals(labels, classes, arrays)
    mapped = _signals(labels, classes, arrays, folder=tmp_path)
    assert isinstance(mapped.checkpoints[10].features, np.memmap) and not mapped.checkpoints[10].features.flags.writeable
    spec = methods.get(name)
    options = spec.check_options({})
    budget = hf_coreset.make_budget(labels, fraction=0.2)
    want = spec.fn(in_memory, budget, rng=np.random.default_rng(0), **options)
    got = spec.fn(mapped, budget, rng=np.random.default_rng(0), **options)  # a write into a signal raises here
    _same(want, got, name)


def test_select_hands_cached_signals_as_memory_maps_fresh_or_reused(ds, tmp_path, monkeypatch):
    """The first run (signals collected) and the second (read from the cache) hand the method memory maps
    of the cache files, and both select exactly what a run without a cache does."""
    seen = []
    spec = methods.get("moderate")

    def capture(signals, budget, **kw):
        seen.append({f: type(getattr(signals.checkpoints[1], f)) for f in FIELDS
                     if getattr(signals.checkpoints[1], f) is not None})
        return spec.fn(signals, budget, **kw)

    monkeypatch.setitem(methods._REGISTRY, "moderate", dataclasses.replace(spec, fn=capture))
    kw = dict(fraction=0.2, epoch=1, model=make_convnet(0), progress=False,
              proxy={"optimizer": "adam", "lr": 1e-2, "batch_size": 50})
    plain = hf_coreset.select(ds, "moderate", cache_dir=False, **kw)
    assert seen.pop() == {f: np.ndarray for f in FIELDS}
    for _ in ("collected", "cached"):
        out = hf_coreset.select(ds, "moderate", cache_dir=tmp_path, **kw)
        assert seen.pop() == {f: np.memmap for f in FIELDS}
        assert np.array_equal(out.indices, plain.indices) and np.array_equal(out.scores, plain.scores)


def test_cache_finds_a_nan_in_the_last_block_and_serves_a_read_only_map(tmp_path):
    """The finiteness check reads the file in blocks; a NaN in the last one still drops the file."""
    from hf_coreset.signals.cache import SignalCache, _all_finite

    cache = SignalCache(tmp_path, num_rows=1000)
    good = np.random.default_rng(0).normal(size=(1000, 7)).astype(np.float32)
    cache.save(3, "features", good)
    loaded = cache.load(3, "features")
    assert isinstance(loaded, np.memmap) and not loaded.flags.writeable and np.array_equal(loaded, good)
    bad = good.copy()
    bad[-1, -1] = np.nan
    cache.save(3, "features", bad)
    assert not _all_finite(cache.path(3, "features"), np.load(cache.path(3, "features"), mmap_mode="r"), block_bytes=100)
    assert cache.load(3, "features") is None and not cache.path(3, "features").exists()


def test_moderate_reads_a_class_in_blocks_with_the_values_of_the_whole_class(tmp_path):
    """Blocks of a few rows and columns (a 1M-row class would be a 1 GB float64 copy) give exactly the
    distances to the coordinate-wise median computed on the whole class in float64, from a memory map too."""
    from hf_coreset.methods.moderate import centre_distances

    rng = np.random.default_rng(0)
    feats = (rng.normal(size=(700, 37)) * 3).astype(np.float32)
    np.save(tmp_path / "f.npy", feats)
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    members = np.sort(rng.choice(700, 501, replace=False))
    x = feats[members].astype(np.float64)
    want = np.linalg.norm(x - np.median(x, axis=0), axis=1)
    for block_bytes in (1 << 28, 8 * 37 * 5, 8 * 501 * 3, 1):  # one block; 5-row blocks; 3-column blocks; 1 x 1
        np.testing.assert_array_equal(centre_distances(feats, members, block_bytes=block_bytes), want)
        np.testing.assert_array_equal(centre_distances(mapped, members, block_bytes=block_bytes), want)


def test_collection_writes_vector_signals_straight_into_the_cache_files(ds, tmp_path, monkeypatch):
    """With a cache, the proxy's logits and features are filled row by row in memory-mapped cache files (its
    memory does not grow with rows x dims), hold what a run without a cache collects, and leave no temporary file."""
    from hf_coreset.signals.cache import SignalCache

    created = []
    original = SignalCache.create

    def spy(self, epoch, field, shape, dtype):
        array = original(self, epoch, field, shape, dtype)
        created.append((epoch, field, type(array)))
        return array

    monkeypatch.setattr(SignalCache, "create", spy)
    kw = dict(fraction=0.2, epoch=1, model=make_convnet(0), progress=False,
              proxy={"optimizer": "adam", "lr": 1e-2, "batch_size": 50})
    mapped = hf_coreset.select(ds, "kcenter", cache_dir=tmp_path, **kw)
    assert sorted(created) == [(1, "features", np.memmap), (1, "logits", np.memmap)]
    plain = hf_coreset.select(ds, "kcenter", cache_dir=False, **kw)
    np.testing.assert_array_equal(mapped.indices, plain.indices)
    np.testing.assert_array_equal(mapped.gains, plain.gains)
    files = sorted(p.name for p in (tmp_path / "signals").rglob("*") if p.is_file())
    assert "epoch0001.features.npy" in files and not any("tmp" in f for f in files), files
