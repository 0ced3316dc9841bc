"""The `hf-coreset` command line: methods, select on saved data, and errors (exit code and message)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

import hf_coreset
from hf_coreset.cli import main
from hf_coreset.data.mnist1d import make_convnet

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ["ccs", "craig", "el2n", "entropy", "forgetting", "grand", "herding", "kcenter", "moderate", "random"]


@pytest.fixture
def saved(mnist1d_small, tmp_path):
    path = tmp_path / "mnist1d"
    mnist1d_small["train"].select(range(400)).save_to_disk(path)
    return path


def test_methods_lists_every_baseline_with_options(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in BASELINES:
        assert f"\n{name:12s} " in "\n" + out, name
    assert "options: epoch=None, init='mean'" in out  # kcenter's options and defaults
    assert "epoch=None: the proxy's last epoch (10;" in out


def test_select_on_saved_dataset_with_builtin_model(saved, tmp_path, capsys, mnist1d_proxy):
    out_dir = tmp_path / "sel"
    rc = main(["select", "--dataset", str(saved), "--method", "kcenter", "--fraction", "0.1", "--output", str(out_dir),
               "--model", "mnist1d-convnet", "--options", '{"epoch": 1}', "--proxy", json.dumps(mnist1d_proxy),
               "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    assert "CoresetSelection(method='kcenter', kept=40/400" in capsys.readouterr().out
    sel = hf_coreset.CoresetSelection.load(out_dir)
    ds = datasets.load_from_disk(saved)
    assert sel.apply(ds).num_rows == 40  # strict check: the same folder loads with the same fingerprint
    ref = hf_coreset.select(ds, "kcenter", fraction=0.1, model=make_convnet(0), proxy=mnist1d_proxy, progress=False,
                            cache_dir=False, epoch=1)
    np.testing.assert_array_equal(sel.indices, ref.indices)  # exact: same process, same float arithmetic


def test_select_with_a_transformers_model_folder(minilm_path, minilm_text, tmp_path, capsys):
    ds, _ = minilm_text
    raw = ds.select_columns(["text", "label"])
    raw.save_to_disk(tmp_path / "text")
    out_dir = tmp_path / "sel"
    rc = main(["select", "--dataset", str(tmp_path / "text"), "--method", "el2n", "--fraction", "0.25",
               "--output", str(out_dir), "--model", minilm_path, "--options", '{"epoch": 0}',
               "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0, capsys.readouterr().err
    sel = hf_coreset.CoresetSelection.load(out_dir)
    assert len(sel) == 12 and sel.config["model_name"] == "BertForSequenceClassification"  # never the folder's path
    assert minilm_path not in (out_dir / "selection.json").read_text()
    # The selection is of the dataset as given (the CLI tokenizes it internally).
    assert sel.apply(datasets.load_from_disk(tmp_path / "text")).num_rows == 12


def test_seed_makes_a_new_head_reproducible(tiny_bert, tmp_path, capsys):
    """--seed seeds before the model loads: BertForSequenceClassification from a saved BertModel (no head weights)
    gets the same new head in two runs, so two selects keep the same rows."""
    import torch

    folder, text = tiny_bert
    text.save_to_disk(tmp_path / "text")
    runs = []
    for run in ("a", "b"):
        torch.seed()  # whatever state the process is in, --seed decides the head
        rc = main(["select", "--dataset", str(tmp_path / "text"), "--method", "el2n", "--fraction", "0.25",
                   "--output", str(tmp_path / run), "--model", folder, "--seed", "0", "--options", '{"epoch": 1}',
                   "--proxy", '{"lr": 0.001, "batch_size": 16}', "--cache-dir", str(tmp_path / f"cache_{run}")])
        assert rc == 0, capsys.readouterr().err
        runs.append(hf_coreset.CoresetSelection.load(tmp_path / run))
    a, b = runs
    assert a.config["model_fingerprint"] == b.config["model_fingerprint"]  # the same initial weights, head included
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)  # exact: same process, same float arithmetic


def test_bad_method_exits_2_with_message(saved, tmp_path):
    """Run as a real process: exit status and stderr, and no output folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out_dir = tmp_path / "sel"
    proc = subprocess.run([sys.executable, "-m", "hf_coreset.cli", "select", "--dataset", str(saved), "--method",
                           "kcentre", "--fraction", "0.1", "--output", str(out_dir)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "error: Unknown coreset method 'kcentre'; known methods: " in proc.stderr
    assert "kcenter" in proc.stderr and "Traceback" not in proc.stderr
    assert not out_dir.exists()


@pytest.mark.parametrize("args,message", [
    (["--fraction", "10"], "error: fraction == 10.0, must be in (0, 1]"),
    (["--fraction", "0.1", "--options", '{"k": 1}'], "error: Method 'kcenter' got unknown option(s) ['k']"),
    (["--fraction", "0.1", "--label-column", "y"], "error: label_column='y' is not a column"),
])
def test_select_errors_in_process(saved, tmp_path, capsys, args, message):
    rc = main(["select", "--dataset", str(saved), "--method", "kcenter", "--output", str(tmp_path / "sel"),
               "--model", "mnist1d-convnet", *args])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "sel").exists()


def run_cli(args, capsys):
    """`main(args)` in this process: (exit status, stderr); argparse refusals exit through SystemExit."""
    try:
        rc = main(args)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def test_missing_split(saved, tmp_path, capsys):
    datasets.DatasetDict(train=datasets.load_from_disk(saved)).save_to_disk(tmp_path / "dd")
    rc, err = run_cli(["select", "--dataset", str(tmp_path / "dd"), "--split", "validation", "--method", "random",
                       "--fraction", "0.1", "--output", str(tmp_path / "sel")], capsys)
    assert rc == 2 and "error: split 'validation' not in the dataset (splits: ['train']); pass --split." in err


SELECT = ["select", "--dataset", "{ds}", "--method", "el2n", "--fraction", "0.1", "--output", "{tmp}/sel"]


@pytest.mark.parametrize("args, message", [
    (SELECT + ["--model", "{tmp}/no-model"], "--model '{tmp}/no-model' is not a folder; pass 'mnist1d-convnet' or"),
    (SELECT + ["--model", "{ds}"], "--model '{ds}' is not a loadable transformers model folder"),
    (SELECT[:-1] + ["{tmp}/a-file"], "--output '{tmp}/a-file': '{tmp}/a-file' is a file, not a folder"),
    (SELECT[:-1] + ["{tmp}/a-file/sel"], "'{tmp}/a-file' is a file, not a folder; pass a folder path"),
    (SELECT + ["--options", "{epoch: 1}"], "argument --options: '{epoch: 1}' is not valid JSON ("),
    (SELECT + ["--options", "[1]"], "argument --options: '[1]' is JSON list, not an object"),
    (SELECT + ["--proxy", "0.01"], "argument --proxy: '0.01' is JSON float, not an object"),
    (["demo", "--fraction", "0"], "argument --fraction: '0' must be a number in (0, 1]; 0.1 keeps 10% of the rows"),
    (["demo", "--methods", "el2n,kcentre"], "error: Unknown coreset method 'kcentre'"),
])
def test_bad_arguments_exit_2_in_one_line_before_any_work(saved, tmp_path, capsys, monkeypatch, args, message):
    def reached(*args, **kwargs):
        raise AssertionError("the bad argument should have been refused before this")

    monkeypatch.setattr(hf_coreset, "select", reached)  # proxy training starts inside select
    monkeypatch.setattr("hf_coreset.demo.run_demo", reached)
    (tmp_path / "a-file").write_text("not a folder")
    def fill(text):
        return text.replace("{ds}", str(saved)).replace("{tmp}", str(tmp_path))

    rc, err = run_cli([fill(a) for a in args], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and "error: " in err and fill(message) in err, err  # one line, no traceback
    assert not (tmp_path / "sel").exists()


@pytest.mark.parametrize("args, message", [
    (["scaling", "--sizes", "-5"], "argument --sizes: '-5' must be comma-separated row counts >= 1"),
    (["scaling", "--sizes", "100", "--kernels", "kcenter,nope"], "Unknown kernel(s) ['nope'] in --kernels"),
])
def test_bad_benchmark_arguments_exit_2_in_one_line(capsys, monkeypatch, args, message):
    from benchmarks import cli as bench_cli

    def reached(*args, **kwargs):
        raise AssertionError("the bad argument should have been refused before this")

    monkeypatch.setattr("benchmarks.scaling.run_scaling", reached)
    try:
        rc = bench_cli.main(args)
    except SystemExit as err:  # argparse refuses at parse time
        rc = err.code
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "error: " in err and message in err, err


def test_unknown_dataset_offline_exits_2(tmp_path):
    """A real process with the Hub switched off: the name is neither built in, nor a folder, nor reachable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "hf_coreset.cli", "select", "--dataset", "no-such-user/no-such-data",
                           "--method", "random", "--fraction", "0.1", "--output", str(tmp_path / "sel")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("hf-coreset: error: --dataset 'no-such-user/no-such-data' is not 'mnist1d' or a "
                                  "save_to_disk folder, and loading it from the Hub failed (")
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "sel").exists()


def test_cache_ls_and_clear(mnist1d_small, tmp_path, capsys, mnist1d_proxy):
    import os
    import time

    ds = mnist1d_small["train"].select(range(120))
    cache = tmp_path / "cache"
    for seed in (0, 1, 2):
        hf_coreset.select(ds, "el2n", fraction=0.2, model=make_convnet(0), seed=seed, proxy=mnist1d_proxy,
                          cache_dir=cache, progress=False, epoch=1)
    keys = sorted(p.name for p in (cache / "signals").iterdir())
    assert main(["cache", "ls", "--cache-dir", str(cache)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and sorted(line.split()[0] for line in lines[:3]) == keys
    assert all("MNIST1DConvNet" in line and "120 rows" in line and "epoch 1: correct,logits,loss" in line
               for line in lines[:3])
    assert lines[3].startswith(f"3 entries, ") and str(cache / "signals") in lines[3]

    # An unknown key is refused before anything is removed.
    assert main(["cache", "clear", "--cache-dir", str(cache), keys[0], "0123456789abcdef"]) == 2
    assert "0123456789abcdef" in capsys.readouterr().err and len(list((cache / "signals").iterdir())) == 3
    assert main(["cache", "clear", "--cache-dir", str(cache), keys[0]]) == 0
    assert capsys.readouterr().out.startswith("removed 1 entry")
    old = time.time() - 10 * 86400
    os.utime(cache / "signals" / keys[1] / "meta.json", (old, old))
    for f in (cache / "signals" / keys[1]).iterdir():
        os.utime(f, (old, old))
    assert main(["cache", "clear", "--cache-dir", str(cache), "--older-than", "7"]) == 0
    assert sorted(p.name for p in (cache / "signals").iterdir()) == [keys[2]]
    assert main(["cache", "clear", "--cache-dir", str(cache), "--all"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out and list((cache / "signals").iterdir()) == []
    assert main(["cache", "ls", "--cache-dir", str(cache)]) == 0
    assert capsys.readouterr().out.startswith("0 entries")
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 2  # says what to clear
    assert "--all" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cache", "clear", "--older-than", "-1"])
    assert "must be a number of days > 0" in capsys.readouterr().err
