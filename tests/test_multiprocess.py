"""Two Accelerate CPU processes give the same signals (to float tolerance) and selection as one."""

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
from hf_coreset.data.mnist1d import make_convnet

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_match_one(mnist1d_small, mnist1d_proxy, tmp_path):
    # 301 rows: the last training batch (45 of 64) is short and does not split evenly over two
    # processes; signal batches of 75 leave one row over, and five batches do not split evenly.
    mnist1d_small["train"].select(range(301)).save_to_disk(tmp_path / "ds")
    ds = datasets.load_from_disk(tmp_path / "ds")
    proxy = {**mnist1d_proxy, "batch_size": 64, "eval_batch_size": 75}
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
    np.testing.assert_array_equal(two.indices, one.indices)
    np.testing.assert_allclose(two.gains, one.gains, rtol=1e-4)

    # Same cache key from both runs, and the same per-row signals, placed by row index.
    (one_dir,) = (tmp_path / "one" / "signals").iterdir()
    (two_dir,) = (tmp_path / "two" / "signals").iterdir()
    assert one_dir.name == two_dir.name
    files = sorted(p.name for p in one_dir.glob("*.npy"))
    assert files == sorted(p.name for p in two_dir.glob("*.npy")) and "epoch0002.features.npy" in files
    for name in files:
        a, b = np.load(one_dir / name), np.load(two_dir / name)
        assert a.shape[0] == 301
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, err_msg=name)

    # A second method reads the two-process signals from the cache (no training, no signal pass)
    # and keeps the same rows as from the one-process signals.
    kw = dict(fraction=0.2, model=make_convnet(0), proxy=proxy, progress=False, epoch=2)
    el2n_two = hf_coreset.select(ds, "el2n", cache_dir=tmp_path / "two", **kw)
    el2n_one = hf_coreset.select(ds, "el2n", cache_dir=tmp_path / "one", **kw)
    assert el2n_two.timings["proxy_training"] == 0.0 and el2n_two.timings["signals"] == 0.0
    np.testing.assert_array_equal(el2n_two.indices, el2n_one.indices)
