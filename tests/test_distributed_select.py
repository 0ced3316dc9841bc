"""Selection split across processes: each process runs its classes, the gathered picks equal one process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hf_coreset
from hf_coreset import methods
from hf_coreset.methods._common import groups, only_classes
from hf_coreset.methods._distribute import assign_classes

ROOT = Path(__file__).resolve().parents[1]


def test_assign_classes_balanced_deterministic_each_class_once():
    costs = [5.0, 3.0, 3.0, 2.0, 2.0, 1.0, 0.0]
    owner = assign_classes(costs, 2)
    assert owner.tolist() == assign_classes(costs, 2).tolist() and owner.shape == (7,)
    assert set(owner.tolist()) == {0, 1}  # every class has one owner, both processes work
    loads = np.bincount(owner, weights=costs, minlength=2)
    assert loads.tolist() == [8.0, 8.0]  # 5+2+1 | 3+3+2: largest first onto the least loaded
    # Ten equal classes: five each; more processes than classes: one class each, the rest idle.
    assert np.bincount(assign_classes([1.0] * 10, 2)).tolist() == [5, 5]
    assert assign_classes([4.0, 9.0], 3).tolist() == [1, 0]
    # Greedy largest-first: the busiest process within 7/6 of a perfect split on 2 processes (Graham's bound).
    sizes = np.array([1200, 1000, 900, 800, 700, 650, 600, 500, 300, 100], dtype=float)
    loads = np.bincount(assign_classes(sizes, 2), weights=sizes)
    assert loads.max() <= 7 / 6 * sizes.sum() / 2 and loads.tolist() == [3450.0, 3300.0]


def test_groups_yields_owned_classes_and_skips_the_others():
    labels = np.array([0, 1, 2, 1, 0, 2, 2])
    budget = hf_coreset.make_budget(labels, size=3)
    skipped = []
    with only_classes([2]):
        got = [(rows.tolist(), k) for rows, k in groups(labels, budget, skip=lambda r, k: skipped.append(r.tolist()))]
    assert got == [([2, 5, 6], 1)] and skipped == [[0, 4], [1, 3]]
    assert len(list(groups(labels, budget))) == 3  # outside the block: every class


def test_run_in_one_process_is_the_method():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    ckpt = hf_coreset.signals.types.Checkpoint(epoch=1, features=rng.normal(size=(120, 4)).astype(np.float32))
    signals = hf_coreset.Signals(labels=labels, num_classes=3, checkpoints={1: ckpt})
    budget = hf_coreset.make_budget(labels, fraction=0.1)
    out = methods.run("kcenter", signals, budget, seed=0, epoch=1)
    alone = methods.get("kcenter").fn(signals, budget, rng=np.random.default_rng(0), epoch=1, init="mean")
    assert np.array_equal(out.indices, alone.indices) and np.array_equal(out.gains, alone.gains)
    assert [m for m in methods.available() if methods.get(m).distributes(methods.get(m).check_options({}))] == \
        ["craig", "herding", "kcenter", "kernel-herding"]


def _signals_arrays(path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    # small: 5 classes of unequal size, so the split is uneven; big: two classes above the 4096 anchors of
    # kernel herding, one of them skipped by the process that runs a later one.
    # huge: one class split into two parts of 4,200 rows, each above the anchors.
    for name, sizes, dim in (("small", [60, 130, 150, 40, 90], 6), ("big", [300, 4200, 4300, 200], 4),
                             ("huge", [8400, 100], 4)):
        labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)])
        labels = labels[rng.permutation(len(labels))]
        centres = rng.normal(size=(len(sizes), dim)) * 3
        arrays[f"{name}_labels"] = labels.astype(np.int64)
        arrays[f"{name}_features"] = (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32)
        arrays[f"{name}_logits"] = rng.normal(size=(len(labels), len(sizes))).astype(np.float32)
    np.savez(path, **arrays)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_split_classes_and_match_one(tmp_path):
    _signals_arrays(tmp_path / "signals.npz")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no",
           str(ROOT / "tests" / "select_two_process.py"), str(tmp_path / "signals.npz"), str(tmp_path / "out.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["processes"] == 2 and len(summary["cases"]) == 18
    assert sum(case[-1] for case in summary["cases"]) == 13  # the distributable cases were split
