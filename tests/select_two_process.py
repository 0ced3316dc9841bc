"""Run by tests/test_distributed_select.py under `accelerate launch --multi_gpu --num_processes 2` (CPU, gloo).

Usage: python select_two_process.py ARRAYS.npz OUTPUT.json
Builds fixed Signals from the saved arrays (no proxy, so nothing differs but the split), runs each case
through `hf_coreset.methods.run` split over the processes, and in the same process the method alone
(`spec.fn`, what one process runs); asserts that picks, gains, weights and scores are equal exactly,
and that a distributed method ran only part of the classes here. The main process writes a summary.
"""

import dataclasses
import importlib
import json
import sys

import torch

torch.set_num_threads(1)

import numpy as np  # noqa: E402
from accelerate import PartialState  # noqa: E402

import datasets  # noqa: E402
import hf_coreset  # noqa: E402
from hf_coreset import methods  # noqa: E402
from hf_coreset.api import build_selection  # noqa: E402
from hf_coreset.signals.types import Checkpoint  # noqa: E402

CASES = [  # (signals set, method, options, per_class, fraction)
    ("small", "kcenter", {"epoch": 1}, True, 0.1),
    ("small", "kcenter", {"epoch": 1, "init": "random"}, True, 0.1),
    ("small", "herding", {"epoch": 1}, True, 0.1),
    ("small", "kernel-herding", {"epoch": 1}, True, 0.1),
    ("small", "craig", {"epoch": 1}, True, 0.1),
    ("small", "craig", {"epoch": 1, "space": "features"}, True, 0.1),
    ("big", "kernel-herding", {"epoch": 1}, True, 0.01),  # classes above the 4096 anchors draw from the generator
    ("big", "kcenter", {"epoch": 1, "init": "random"}, True, 0.01),
    ("big", "kernel-herding", {"epoch": 1, "partition_size": 2000}, True, 0.01),  # two rounds, class anchors
    # partitioned classes (4,200 and 4,300 rows) are shared: each process runs some of their parts
    ("big", "kcenter", {"epoch": 1, "init": "random", "partition_size": 1000}, True, 0.01),
    ("big", "herding", {"epoch": 1, "partition_size": 1000}, True, 0.05),
    ("big", "craig", {"epoch": 1, "partition_size": 1000}, True, 0.01),
    ("huge", "kernel-herding", {"epoch": 1, "partition_size": 4200}, True, 0.01),  # parts above the 4096 anchors
    # not distributed: the same on every process, still equal to one process
    ("small", "kcenter", {"epoch": 1}, False, 0.1),
    ("small", "prototypes", {"epoch": 1, "iters": 3}, True, 0.1),
    ("small", "random", {}, True, 0.1),
    ("small", "coverage", {"score": "el2n", "score_options": {"epoch": 1}}, True, 0.1),
    ("small", "auto", {}, True, 0.1),
]


KERNELS = {"kcenter": "kcenter_greedy", "herding": "herding_greedy", "craig": "facility_location",
           "kernel-herding": "gaussian_herding"}  # each method module's greedy, called once per part or class


def signals_from(arrays, name):
    labels = arrays[f"{name}_labels"]
    ckpt = Checkpoint(epoch=1, logits=arrays[f"{name}_logits"], features=arrays[f"{name}_features"])
    return hf_coreset.Signals(labels=labels, num_classes=int(labels.max()) + 1, checkpoints={1: ckpt, 10: ckpt})  # auto reads epoch 10


def equal(a, b):
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b, equal_nan=True)
                                         and np.asarray(a).dtype == np.asarray(b).dtype)


def main(arrays_path: str, out_path: str) -> None:
    state = PartialState(cpu=True)
    assert state.num_processes == 2
    arrays = np.load(arrays_path)
    sets = {name: signals_from(arrays, name) for name in ("small", "big", "huge")}
    summary = {"processes": state.num_processes, "cases": []}
    for set_name, name, options, per_class, fraction in CASES:
        signals = sets[set_name]
        budget = hf_coreset.make_budget(signals.labels, fraction=fraction, per_class=per_class)
        spec = methods.get(name)
        ran = []  # the classes this process ran

        def spy(*args, _fn=spec.fn, **kwargs):
            out = _fn(*args, **kwargs)
            ran.extend(np.unique(signals.labels[out.indices]).tolist())
            return out

        shares = "partition_size" in options  # every such case has classes of two or more parts
        module = importlib.import_module(f"hf_coreset.methods.{spec.fn.__module__.rsplit('.', 1)[1]}")
        kernel = KERNELS.get(name)
        calls = {"n": 0}
        if kernel:  # count the part greedies this process runs
            original = getattr(module, kernel)

            def counted(*args, _original=original, **kwargs):
                calls["n"] += 1
                return _original(*args, **kwargs)

            setattr(module, kernel, counted)
        split = methods.run(dataclasses.replace(spec, fn=spy), signals, budget, seed=3, **options)
        split_calls, calls["n"] = calls["n"], 0
        alone = spec.fn(signals, budget, rng=np.random.default_rng(3), **spec.check_options(options))
        if kernel:
            setattr(module, kernel, original)
        if shares:  # fewer greedies here than one process runs: the shared classes' parts were split
            assert 0 < split_calls < calls["n"], (name, options, split_calls, calls["n"])
        for field in ("indices", "gains", "weights", "scores"):
            assert equal(getattr(split, field), getattr(alone, field)), (name, options, field)
        assert split.info == alone.info, (name, options)
        distributed = per_class and spec.distributes(spec.check_options(options))
        everything = sorted(np.unique(signals.labels[alone.indices]).tolist())
        if not shares:  # shared classes are run by every process; their split is counted above
            assert (sorted(ran) != everything) == distributed, (name, options, ran)  # split only where it may be
        summary["cases"].append([set_name, name, options, per_class, len(split.indices), distributed])

    # The same through build_selection (what `select` and CoresetTrainer run).
    signals = sets["small"]
    ds = datasets.Dataset.from_dict({"label": signals.labels})
    budget = hf_coreset.make_budget(signals.labels, fraction=0.1)
    sel = build_selection(ds, methods.get("kcenter"), signals, budget, options={"epoch": 1, "init": "mean"}, seed=0,
                          fraction=0.1, size=None, per_class=True, label_column="label", timings={})
    alone = methods.get("kcenter").fn(signals, budget, rng=np.random.default_rng(0), epoch=1, init="mean")
    assert np.array_equal(sel.indices, alone.indices) and np.array_equal(sel.gains, alone.gains)
    if state.is_main_process:
        with open(out_path, "w") as f:
            json.dump(summary, f)
    state.wait_for_everyone()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
