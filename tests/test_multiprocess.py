"""Two Accelerate CPU processes against one: the same signals from the same weights, close selections after training.

What 1 and N processes promise (README, "Guarantees"): signals collected from the same weights are
placed by row and agree to 1e-6. Proxy training through DDP averages gradients in another float
order, so after training the signals agree to a tolerance and selections overlap, not bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

import hf_coreset
from agreement import assert_same_up_to_ties, overlap
from hf_coreset.data.mnist1d import make_convnet

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_match_one(mnist1d_small, mnist1d_proxy, tmp_path):
    # 301 rows: the last training batch (45 of 64) is short and does not split evenly over two
    # processes; signal batches of 75 leave one row over, and five batches do not split evenly.
    mnist1d_small["train"].select(range(301)).save_to_disk(tmp_path / "ds")
    ds = datasets.load_from_disk(tmp_path / "ds")
    # keep_state: the 2-process proxy's state is rescored below.
    proxy = {**mnist1d_proxy, "batch_size": 64, "eval_batch_size": 75, "keep_state": True}
    one = hf_coreset.select(ds, "kcenter", fraction=0.1, model=make_convnet(0), proxy=proxy, progress=False,
                            cache_dir=tmp_path / "one", epoch=2)

    # The CLI under `accelerate launch`. On a machine without GPUs, `--cpu` makes accelerate launch a
    # single process; the torchrun path (`--multi_gpu`) with ACCELERATE_USE_CPU=1 runs two gloo processes.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACCELERATE_USE_CPU": "1", "ACCELERATE_DEBUG_MODE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "hf_coreset.cli", "select", "--dataset", str(tmp_path / "ds"), "--method", "kcenter",
           "--fraction", "0.1", "--output", str(tmp_path / "two_sel"), "--model", "mnist1d-convnet",
           "--options", '{"epoch": 2}', "--proxy", json.dumps(proxy), "--cache-dir", str(tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("CoresetSelection(") == 1  # only the main process writes and reports
    two = hf_coreset.CoresetSelection.load(tmp_path / "two_sel")

    # Same cache key from both runs, the same files, every signal placed by row index.
    (one_dir,) = (tmp_path / "one" / "signals").iterdir()
    (two_dir,) = (tmp_path / "two" / "signals").iterdir()
    assert one_dir.name == two_dir.name
    files = sorted(p.name for p in one_dir.glob("*.npy"))
    assert files == sorted(p.name for p in two_dir.glob("*.npy")) and "epoch0002.features.npy" in files

    # Same weights, 1 vs 2 processes: the 2-process proxy's saved state (epoch 2), rescored here in one
    # process without training, gives the signals the two processes collected from it, to 1e-6
    # (measured: up to 2.4e-7 apart, from batches of other sizes), and el2n keeps the same rows up to ties.
    reload = tmp_path / "reload" / "signals" / two_dir.name
    shutil.copytree(two_dir, reload)
    for p in reload.glob("*.npy"):
        p.unlink()
    kw = dict(model=make_convnet(0), proxy=proxy, progress=False, epoch=2)
    rescored = hf_coreset.select(ds, "kcenter", fraction=0.1, cache_dir=tmp_path / "reload", **kw)
    assert rescored.timings["proxy_training"] == 0.0 and sorted(p.name for p in reload.glob("*.npy")) == files
    for name in files:
        a, b = np.load(two_dir / name), np.load(reload / name)
        assert a.shape[0] == 301
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6, err_msg=name)
    el2n_two = hf_coreset.select(ds, "el2n", fraction=0.2, cache_dir=tmp_path / "two", **kw)
    assert el2n_two.timings["proxy_training"] == 0.0 and el2n_two.timings["signals"] == 0.0  # read from the cache
    assert_same_up_to_ties(hf_coreset.select(ds, "el2n", fraction=0.2, cache_dir=tmp_path / "reload", **kw), el2n_two,
                           atol=1e-6)

    # After two epochs of training on 1 vs 2 processes the weights differ in float order, which Adam
    # amplifies. Measured here: signals within 4e-6, the same 30 kcenter and 60 el2n rows; but the
    # trainer's AdamW run drifts to 5e-3 within an epoch (tests/test_trainer.py), so the bounds are wide:
    # signals within 5%, correctness flips on <= 2% of rows, >= 80% of kcenter's greedy picks (one changed
    # pick changes the later ones) and >= 90% of el2n's rows kept by both.
    for name in files:
        a, b = np.load(one_dir / name), np.load(two_dir / name)
        assert a.shape[0] == 301
        if a.dtype == bool:
            assert np.mean(a != b) <= 0.02, name
        else:
            np.testing.assert_allclose(b, a, rtol=0.05, atol=0.05, err_msg=name)
    assert overlap(one, two) >= 0.8 * len(one)
    el2n_one = hf_coreset.select(ds, "el2n", fraction=0.2, cache_dir=tmp_path / "one", **kw)
    assert overlap(el2n_one, el2n_two) >= 0.9 * len(el2n_one)
    np.testing.assert_allclose(el2n_one.scores, el2n_two.scores, rtol=0, atol=0.05)
