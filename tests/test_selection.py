"""CoresetSelection: validation, save/load, apply, provenance, and the select / select_coreset flow."""

from __future__ import annotations

import doctest
import json
import re

import datasets
import numpy as np
import pytest

import hf_coreset
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.selection import CoresetSelection


def make(n=10, **kw):
    fields = dict(indices=[3, 1, 7], scores=np.linspace(0, 1, n), method="el2n", num_rows=n)
    fields.update(kw)
    return CoresetSelection(**fields)


@pytest.mark.parametrize("kw,match", [
    (dict(indices=[[1, 2]]), r"indices must be 1-D, got shape \(1, 2\)"),
    (dict(indices=[1, 1, 2]), "indices contain repeated rows"),
    (dict(indices=[1, 10]), r"indices must lie in \[0, 10\); got min 1, max 10"),
    (dict(indices=[-1, 2]), r"got min -1"),
    (dict(scores=np.zeros(9)), r"scores must have one value per source row \(10\), got shape \(9,\)"),
    (dict(weights=[1.0, 2.0]), r"weights must have one value per kept row \(3\), got shape \(2,\)"),
    (dict(gains=[1.0]), r"gains must have one value per kept row \(3\)"),
    (dict(weights=[1.0, -1.0, 2.0]), "weights must be finite, non-negative and not all zero"),
    (dict(weights=[0.0, 0.0, 0.0]), "not all zero"),
    (dict(weights=[1.0, np.nan, 1.0]), "must be finite"),
])
def test_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        make(**kw)


def test_basic_properties():
    sel = make(weights=[1.0, 2.0, 3.0])
    assert len(sel) == 3 and sel.fraction == pytest.approx(0.3)
    assert repr(sel) == "CoresetSelection(method='el2n', kept=3/10 (30.0%), weighted=True, seed=None)"
    assert sel.indices.dtype == np.int64 and sel.scores.dtype == np.float64
    assert sel.per_class_counts(np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])) == {1: 3}


def _real_selection(mnist1d_small, mnist1d_proxy):
    ds = mnist1d_small["train"]
    return ds, hf_coreset.select(ds, "craig", fraction=0.1, model=make_convnet(0), seed=0, proxy=mnist1d_proxy,
                                 progress=False, epoch=2)


def test_save_load_round_trip(mnist1d_small, mnist1d_proxy, tmp_path):
    ds, sel = _real_selection(mnist1d_small, mnist1d_proxy)
    assert sel.weights is not None and sel.gains is not None and np.isnan(sel.scores).all()
    path = sel.save(tmp_path / "sel")
    assert sorted(p.name for p in path.iterdir()) == ["indices.parquet", "scores.parquet", "selection.json"]
    loaded = CoresetSelection.load(path)
    for name in ("indices", "scores", "weights", "gains"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(sel, name))
    for name in ("method", "num_rows", "seed", "source_fingerprint", "label_column", "label_hash", "fingerprint",
                 "library_version", "timings"):
        assert getattr(loaded, name) == getattr(sel, name), name
    assert loaded.config == json.loads(json.dumps(sel.config))
    assert loaded.config["method_options"] == {"epoch": 2, "space": "gradient"}
    assert loaded.config["budget_total"] == 160 and loaded.config["proxy"]["lr"] == 0.01
    meta = json.loads((path / "selection.json").read_text())
    assert meta["format_version"] == 1 and meta["num_kept"] == 160 and meta["weighted"] is True
    # The loaded selection applies to the same data, also after a save_to_disk round trip.
    np.testing.assert_array_equal(loaded.apply(ds)["label"], ds.select(np.sort(sel.indices))["label"])
    # datasets gives a reloaded copy a new fingerprint: strict refuses it, check="content" compares rows and labels.
    ds.save_to_disk(tmp_path / "ds")
    reloaded = datasets.load_from_disk(tmp_path / "ds")
    with pytest.raises(ValueError, match="pass check='content'"):
        loaded.apply(reloaded)
    assert loaded.apply(reloaded, check="content")["x"] == ds.select(np.sort(sel.indices))["x"]
    # Saving again over the folder replaces it; no temporary folder stays behind.
    make(n=ds.num_rows, indices=[0, 1]).save(path)
    assert len(CoresetSelection.load(path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "sel"]


def test_save_leaves_nothing_when_it_fails(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        make().save(tmp_path / "sel")
    assert list(tmp_path.iterdir()) == []


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No selection.json in"):
        CoresetSelection.load(tmp_path)
    path = make().save(tmp_path / "sel")
    meta = json.loads((path / "selection.json").read_text())
    meta["format_version"] = 99
    (path / "selection.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="Selection format version 99 is not supported"):
        CoresetSelection.load(path)


def test_apply_keeps_ascending_or_pick_order(mnist1d_small):
    ds = mnist1d_small["train"]
    sel = hf_coreset.select(ds, "random", fraction=0.05, seed=1)
    rows = ds.select(np.sort(sel.indices))
    assert sel.apply(ds)["x"] == rows["x"]
    assert sel.apply(ds, keep_order=True)["x"] == ds.select(sel.indices)["x"]
    assert sel.apply(ds)._fingerprint != sel.apply(ds, keep_order=True)._fingerprint


def test_fingerprint_tracks_what_shapes_the_selection(mnist1d_small):
    ds = mnist1d_small["train"]
    base = hf_coreset.select(ds, "random", fraction=0.1, seed=0)
    assert hf_coreset.select(ds, "random", fraction=0.1, seed=0).fingerprint == base.fingerprint
    others = [hf_coreset.select(ds, "random", fraction=0.2, seed=0),
              hf_coreset.select(ds, "random", fraction=0.1, seed=1),
              hf_coreset.select(ds, "random", fraction=0.1, seed=0, per_class=False),
              hf_coreset.select(ds.select(range(1000)), "random", fraction=0.1, seed=0),
              hf_coreset.select(ds.add_column("y", ds["label"]), "random", fraction=0.1, seed=0, label_column="y")]
    assert len({base.fingerprint, *(o.fingerprint for o in others)}) == 6


def test_per_class_false_picks_globally(mnist1d_small):
    ds = mnist1d_small["train"]
    sel = hf_coreset.select(ds, "random", fraction=0.1, seed=0, per_class=False)
    assert len(sel) == 160 and sel.config["per_class"] is False


def test_select_coreset_on_dataset(mnist1d_small, mnist1d_proxy):
    ds = mnist1d_small["train"]
    pruned = ds.select_coreset("kcenter", fraction=0.1, model=make_convnet(0), proxy=mnist1d_proxy, progress=False,
                               epoch=2)
    assert isinstance(pruned, datasets.Dataset) and pruned.num_rows == 160
    pruned2, sel = ds.select_coreset("kcenter", fraction=0.1, model=make_convnet(0), proxy=mnist1d_proxy,
                                     progress=False, epoch=2, return_selection=True)
    assert isinstance(sel, CoresetSelection) and sel.method == "kcenter"
    assert pruned2["x"] == pruned["x"] == ds.select(np.sort(sel.indices))["x"]
    assert pruned2._fingerprint == pruned._fingerprint  # same selection -> same derived dataset id


def test_select_docstring_example_runs():
    """The Example in hf_coreset.select's docstring is run as written."""
    doc = hf_coreset.select.__doc__
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    test = doctest.DocTestParser().get_doctest(code, {}, "select", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 4
