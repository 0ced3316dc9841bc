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
    assert loaded.config["method_options"] == {"epoch": 2, "space": "gradient", "partition_size": "auto"}
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


def test_select_coreset_spells_out_selects_parameters():
    """help() and IDEs show select's parameters on select_coreset, plus the Hub ones; nothing is hidden in **kwargs."""
    import inspect

    own = inspect.signature(hf_coreset.select_coreset).parameters
    for name, param in inspect.signature(hf_coreset.select).parameters.items():
        assert name in own and own[name].kind == param.kind, name
        if param.default is not inspect.Parameter.empty:
            assert own[name].default == param.default, name
    for name in ("from_hub", "revision", "token", "return_selection", "check", "timeout"):
        assert name in own, name
    assert [n for n, p in own.items() if p.kind is inspect.Parameter.VAR_KEYWORD] == ["options"]
    assert datasets.Dataset.select_coreset is hf_coreset.select_coreset


def test_dataset_dict_select_coreset_prunes_one_split(mnist1d_small):
    dd = mnist1d_small
    with pytest.raises(TypeError) as err:
        dd.select_coreset("random", fraction=0.1)
    assert str(err.value) == ("DatasetDict.select_coreset needs split=<the training split> to select from and prune "
                              "(splits: ['train', 'test']); the other splits are returned unchanged.")
    with pytest.raises(ValueError, match=r"split='valid' is not a split of the DatasetDict; pass one of \['train', 'test'\]"):
        dd.select_coreset("random", fraction=0.1, split="valid")
    pruned, sel = dd.select_coreset("random", fraction=0.1, split="train", seed=3, return_selection=True)
    assert isinstance(pruned, datasets.DatasetDict) and list(pruned) == ["train", "test"]
    assert pruned["test"] is dd["test"] and pruned["train"].num_rows == len(sel) == 160
    assert pruned["train"]["label"] == sel.apply(dd["train"])["label"]
    np.testing.assert_array_equal(sel.indices, hf_coreset.select(dd["train"], "random", fraction=0.1, seed=3).indices)


def test_untokenised_text_says_tokenize_first(tiny_bert, cache):
    """Raw text and a model that reads input_ids: one sentence saying how to tokenize, before any training."""
    from transformers import AutoModelForSequenceClassification

    folder, text = tiny_bert
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    with pytest.raises(ValueError) as err:
        text.select_coreset("el2n", fraction=0.25, model=model, cache_dir=cache, progress=False)
    assert str(err.value) == (
        "BertForSequenceClassification reads input_ids, but the dataset has only the text column(s) ['text']: tokenize "
        "first: ds.map(lambda b: tokenizer(b['text'], truncation=True), batched=True), and pass "
        "collate_fn=DataCollatorWithPadding(tokenizer).")


def test_fresh_head_from_an_unseeded_state_warns_once(tiny_bert, monkeypatch, caplog, tmp_path):
    """from_pretrained drew a new head from an unseeded generator: select says to call set_seed first, once."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed

    from hf_coreset import api

    folder, text = tiny_bert
    tok = AutoTokenizer.from_pretrained(folder)
    ds = text.map(lambda b: tok(b["text"], truncation=True), batched=True)
    kw = dict(fraction=0.25, epoch=1, progress=False, collate_fn=DataCollatorWithPadding(tok), cache_dir=tmp_path,
              proxy={"lr": 1e-3, "batch_size": 32})
    monkeypatch.setattr(api, "_warned_fresh", False)
    torch.seed()  # the state of a fresh process: a random 64-bit seed
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    with caplog.at_level("WARNING", logger="hf_coreset.api"):
        hf_coreset.select(ds, "el2n", model=model, **kw)
        hf_coreset.select(ds, "el2n", model=model, **kw)
    warned = [r.getMessage() for r in caplog.records if "freshly initialised" in r.getMessage()]
    assert len(warned) == 1, warned
    assert warned[0].startswith("BertForSequenceClassification has 2 freshly initialised parameter(s) "
                                "(classifier.weight, classifier.bias)") and "transformers.set_seed(0)" in warned[0]
    # Seeded first, as the README shows: no warning.
    caplog.clear()
    monkeypatch.setattr(api, "_warned_fresh", False)
    set_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    with caplog.at_level("WARNING", logger="hf_coreset.api"):
        hf_coreset.select(ds, "el2n", model=model, **kw)
    assert not [r for r in caplog.records if "freshly initialised" in r.getMessage()]


def test_select_docstring_example_runs():
    """The Example in hf_coreset.select's docstring is run as written."""
    doc = hf_coreset.select.__doc__
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    test = doctest.DocTestParser().get_doctest(code, {}, "select", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 4


# ---------------------------------------------------------------- save is atomic
def _saved(tmp_path, **kw):
    """A selection saved at tmp_path / "sel", and the selection itself."""
    sel = make(**kw)
    return sel.save(tmp_path / "sel"), sel


def _assert_intact(path, sel):
    loaded = CoresetSelection.load(path)
    np.testing.assert_array_equal(loaded.indices, sel.indices)
    np.testing.assert_array_equal(loaded.scores, sel.scores)
    assert sorted(p.name for p in path.parent.iterdir()) == ["sel"]  # no temp or backup folder left


@pytest.mark.parametrize("step,error", [("backup", OSError), ("swap", KeyboardInterrupt)])
def test_overwrite_interrupted_at_a_rename_keeps_the_old_selection(tmp_path, monkeypatch, step, error):
    """A rename that fails (or is interrupted) while swapping in the new folder leaves the old one."""
    import os

    path, old = _saved(tmp_path)
    real = os.replace

    def flaky(src, dst, *args, **kwargs):
        # "backup": moving the old folder aside fails; "swap": moving the new one into place fails.
        if (step == "backup" and ".sel.old-" in str(dst)) or (step == "swap" and ".sel.tmp-" in str(src)):
            raise error("interrupted")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(error, match="interrupted"):
        make(indices=[0, 2, 4, 6], scores=np.arange(10.0)).save(path)
    monkeypatch.undo()
    _assert_intact(path, old)


@pytest.mark.parametrize("target", ["json", "parquet"])
def test_overwrite_failing_while_writing_keeps_the_old_selection(tmp_path, monkeypatch, target):
    import pyarrow.parquet as pq

    path, old = _saved(tmp_path)
    if target == "json":
        def broken_dumps(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(json, "dumps", broken_dumps)
    else:
        calls = []

        def broken(table, where, *args, **kwargs):  # the second file fails, after the first is written
            calls.append(where)
            if len(calls) == 2:
                raise OSError("disk full")
            return real(table, where, *args, **kwargs)

        real = pq.write_table
        monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        make(indices=[0, 2, 4, 6]).save(path)
    monkeypatch.undo()
    _assert_intact(path, old)


def test_save_refuses_to_replace_what_is_not_a_selection(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    with pytest.raises(ValueError, match=r"notes.txt is an existing file, not a folder; pass a folder path"):
        make().save(afile)
    assert afile.read_text() == "keep me"
    user = tmp_path / "work"
    user.mkdir()
    (user / "train.py").write_text("print(1)")
    (user / "selection.json").write_text("{}")
    with pytest.raises(ValueError, match=r"does not look like a saved selection: it holds \['train.py'\]"):
        make().save(user)
    assert sorted(p.name for p in user.iterdir()) == ["selection.json", "train.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "work"]
    # An empty folder, or one holding only some of a selection's files, is replaced.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(CoresetSelection.load(make().save(empty))) == 3
    (empty / "scores.parquet").unlink()
    assert len(CoresetSelection.load(make(indices=[5]).save(empty))) == 1


# ------------------------------------------------------- damaged selection files
def _rewrite_indices(path, **columns):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path / "indices.parquet")


def _rewrite_scores(path, scores):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"score": scores}), path / "scores.parquet")


def _edit_meta(path, **changes):
    meta = json.loads((path / "selection.json").read_text())
    meta.update(changes)
    (path / "selection.json").write_text(json.dumps(meta))


DAMAGE = {
    "invalid json": (lambda p: (p / "selection.json").write_text('{"method": "el2n", "num_r'),
                     "selection.json", "not valid JSON"),
    "json not an object": (lambda p: (p / "selection.json").write_text("[1, 2]"),
                           "selection.json", "holds a list, not a JSON object"),
    "num_rows a string": (lambda p: _edit_meta(p, num_rows="10"), "selection.json",
                          "num_rows must be a positive integer, not str '10'"),
    "num_kept missing": (lambda p: _edit_meta(p, num_kept=None), "selection.json",
                         "num_kept must be a non-negative integer, not NoneType None"),
    "method not a string": (lambda p: _edit_meta(p, method=3), "selection.json", "method must be a string, not int 3"),
    "config a list": (lambda p: _edit_meta(p, config=[1]), "selection.json", "config must be a JSON object"),
    "seed a float": (lambda p: _edit_meta(p, seed=1.5), "selection.json", "seed must be an integer or null"),
    "weighted without weights": (lambda p: _edit_meta(p, weighted=True), "indices.parquet",
                                 "selection.json says weighted=True but there is no 'weight' column"),
    "float indices": (lambda p: _rewrite_indices(p, index=[3.0, 1.0, 7.0]), "indices.parquet",
                      "column 'index' has type double; row ids must be integers"),
    "no index column": (lambda p: _rewrite_indices(p, row=[3, 1, 7]), "indices.parquet", "has no 'index' column"),
    "index out of range": (lambda p: _rewrite_indices(p, index=[3, 1, 10]), "indices.parquet",
                           r"row ids must lie in \[0, 10\) \(num_rows in selection.json\); got min 1, max 10"),
    "negative index": (lambda p: _rewrite_indices(p, index=[3, -1, 7]), "indices.parquet", "got min -1"),
    "duplicated index": (lambda p: _rewrite_indices(p, index=[3, 1, 3]), "indices.parquet", "row 3 appears 2 times"),
    "null index": (lambda p: _rewrite_indices(p, index=[3, None, 7]), "indices.parquet", "1 missing row ids"),
    "negative weight": (lambda p: (_rewrite_indices(p, index=[3, 1, 7], weight=[1.0, -1.0, 2.0]),
                                   _edit_meta(p, weighted=True)), "indices.parquet",
                        "weights must be finite, non-negative and not all zero"),
    "fewer rows than num_kept": (lambda p: _rewrite_indices(p, index=[3, 1]), "indices.parquet",
                                 "2 rows, but selection.json records num_kept=3"),
    "garbage parquet": (lambda p: (p / "indices.parquet").write_bytes(b"PAR1 not really"), "indices.parquet",
                        "not a readable parquet file"),
    "short scores": (lambda p: _rewrite_scores(p, [0.5] * 9), "scores.parquet",
                     "9 rows, but selection.json records num_rows=10"),
    "string scores": (lambda p: _rewrite_scores(p, ["a"] * 10), "scores.parquet",
                      "column 'score' has type string; scores must be floats"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_selection_files_name_the_file_and_the_fix(tmp_path, damage):
    corrupt, name, problem = DAMAGE[damage]
    path, _ = _saved(tmp_path)
    corrupt(path)
    with pytest.raises(ValueError, match=problem) as info:
        CoresetSelection.load(path)
    message = str(info.value)
    assert str(path / name) in message and "save the selection again or download it again" in message


@pytest.mark.parametrize("name", ["indices.parquet", "scores.parquet"])
def test_missing_selection_file_names_it(tmp_path, name):
    path, _ = _saved(tmp_path)
    (path / name).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{path / name} is missing")
                       + ".*save the selection again or download it again"):
        CoresetSelection.load(path)


def test_load_of_a_missing_folder_points_at_an_interrupted_save(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"No selection folder at {tmp_path / 'sel'}")):
        CoresetSelection.load(tmp_path / "sel")
    # A hard kill between moving the old folder aside and moving the new one in leaves the old one there.
    path, old = _saved(tmp_path)
    path.rename(tmp_path / ".sel.old-1234abcd")
    with pytest.raises(FileNotFoundError, match=re.escape(f"rename {tmp_path / '.sel.old-1234abcd'} to {path}")):
        CoresetSelection.load(path)


# ------------------------------------------------------------ apply: wrong types
def test_apply_to_a_dataset_dict_names_the_split(mnist1d_small):
    sel = hf_coreset.select(mnist1d_small["train"], "random", fraction=0.05, seed=1)
    with pytest.raises(TypeError, match=re.escape(
            "apply needs one split, not a DatasetDict (splits: ['train', 'test']); pass the split the selection "
            "was made from, e.g. selection.apply(ds['train']) (its fingerprint matches the selection's source).")):
        sel.apply(mnist1d_small)
    # A copy with other fingerprints: the split with the right number of rows is named.
    copy = datasets.DatasetDict({"a": mnist1d_small["test"], "b": mnist1d_small["train"].flatten_indices()})
    with pytest.raises(TypeError, match=re.escape("selection.apply(ds['b']) (the only split with 1600 rows)")):
        sel.apply(copy)
    copy = datasets.DatasetDict({"a": mnist1d_small["test"]})
    with pytest.raises(TypeError, match=re.escape("selection.apply(ds['a']) (no split has the source's 1600 rows)")):
        sel.apply(copy)


def test_apply_to_an_iterable_dataset_asks_for_random_access(mnist1d_small):
    sel = hf_coreset.select(mnist1d_small["train"], "random", fraction=0.05, seed=1)
    streamed = mnist1d_small["train"].to_iterable_dataset()
    with pytest.raises(TypeError, match=re.escape(
            "apply needs a datasets.Dataset with random access to its rows, not an IterableDataset; "
            "load the data without streaming")):
        sel.apply(streamed)
    with pytest.raises(TypeError, match="not an IterableDatasetDict"):
        sel.apply(datasets.IterableDatasetDict({"train": streamed}))
    with pytest.raises(TypeError, match="apply needs a datasets.Dataset, not list"):
        sel.apply([1, 2, 3])
