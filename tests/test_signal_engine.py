"""The one signal engine (issue 12): one logit gradient, one seed rule, one batch sampler, one collector
that the proxy, the trainer and CREST share."""

from __future__ import annotations

import numpy as np
import pytest

from hf_coreset.signals import FIELDS, Checkpoint, logit_grad


def test_one_logit_gradient_keeps_confident_rows():
    """A confident row's p - y keeps its direction (its label entry is minus the other probabilities,
    in float64), for every caller: Checkpoint.logit_grad (EL2N, GraNd, CRAIG), NFG's kernel and CREST."""
    from hf_coreset.ops import nfg

    logits = np.array([[30.0, 0.0, -1.0], [0.0, 2.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 2])
    g = Checkpoint(epoch=0, logits=logits).logit_grad(labels)
    assert g.dtype == np.float64
    assert np.all(g[0] != 0) and g[0, 0] < 0  # float32 p_0 - 1 rounds to 0, and p_1, p_2 to ~1e-13
    np.testing.assert_allclose(g.sum(axis=1), 0, atol=1e-15)
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(g, p - np.eye(3)[labels], rtol=1e-12, atol=1e-15)
    assert np.array_equal(g, logit_grad(logits, labels)) and np.array_equal(g, nfg.logit_grad_f64(logits, labels))


# --------------------------------------------------------------------------- seed rule and sharding
def test_one_seed_rule_for_proxy_trainer_and_crest():
    """Proxy, trainer and CREST draw from `generator(seed, stream)`. The proxy's stream is pinned to what
    it always was (cached signals and stored benchmarks depend on it); the trainer's warm-up epoch e now
    visits the rows in the proxy's epoch-(e + 1) order (its old numpy stream [seed, epoch] is gone)."""
    import torch

    from hf_coreset import CoresetTrainingArguments
    from hf_coreset.training.crest import Crest
    from hf_coreset.proxy import _EpochBatchSampler
    from hf_coreset.signals import CREST_STREAM, generator
    from hf_coreset.trainer import CoresetBatchSampler

    n, seed = 64, 5
    for epoch in (0, 3):
        proxy = _EpochBatchSampler(n, 16, seed, start_epoch=epoch)
        proxy_order = [row for batch in proxy for row, _ in batch]
        assert proxy_order == torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch)).tolist()
        trainer = CoresetBatchSampler(n, per_device=8, world=2, grad_accum=1, seed=seed, warmup_epochs=5)
        trainer.set_epoch(epoch)
        assert [row for batch in trainer for row in batch] == proxy_order
    config = CoresetTrainingArguments(output_dir="unused").crest_config(minibatch_size=4, random_subset_size=8)
    crest = Crest(config, np.arange(40) % 4, seed, collector=None)
    assert crest.rng.initial_seed() == generator(seed, CREST_STREAM).initial_seed() == seed * 100003 + CREST_STREAM


def test_one_sharding_rule_keeps_every_row_once():
    """Every process's share of a global batch, concatenated, is the batch; the proxy weighs real rows
    num_processes / len(batch) and fills an empty share with a weight-0 row; the trainer's shares of a
    CREST mini-batch coreset differ by at most one row."""
    from hf_coreset.proxy import _EpochBatchSampler
    from hf_coreset.signals import shard

    for world in (1, 2, 3):
        one = list(_EpochBatchSampler(10, 4, seed=0))  # batches of 4, 4, 2
        shares = [list(_EpochBatchSampler(10, 4, seed=0, num_processes=world, process_index=p)) for p in range(world)]
        for b, batch in enumerate(one):
            rows = [row for p in range(world) for row, w in shares[p][b] if w > 0]
            assert rows == [row for row, _ in batch]
            assert all(w == world / len(batch) for p in range(world) for _, w in shares[p][b] if w > 0)
    # batch of 2 rows over 3 processes: the third process trains on a weight-0 copy of the first row
    assert [s[-1] for s in shares] == [[(one[-1][0][0], 1.5)], [(one[-1][1][0], 1.5)], [(one[-1][0][0], 0.0)]]
    assert [list(shard(list(range(5)), 3, p)) for p in range(3)] == [[0, 1], [2, 3], [4]]


# --------------------------------------------------------------------------- one collector
def _trainer(train, tmp_path, signals: str, schedule: str = "static"):
    """A CoresetTrainer whose learning rate is 0, so every warm-up step runs the weights of make_convnet(0)."""
    import hf_coreset
    from hf_coreset.data.mnist1d import make_convnet

    kw = dict(coreset_method="grand", coreset_method_options={"epoch": 1}) if schedule == "static" else dict(
        coreset_schedule="crest", crest_random_subset_fraction=0.25, crest_params="head")
    args = hf_coreset.CoresetTrainingArguments(
        output_dir=str(tmp_path / signals / schedule), num_train_epochs=2, coreset_warmup_epochs=1, learning_rate=0.0,
        per_device_train_batch_size=64, per_device_eval_batch_size=64, optim="adamw_torch", report_to="none",
        save_strategy="no", disable_tqdm=True, logging_steps=1000, dataloader_pin_memory=False,
        coreset_fraction=0.5, coreset_signals=signals, **kw)
    trainer = hf_coreset.CoresetTrainer(model=make_convnet(0), args=args, train_dataset=train)
    trainer.train()
    return trainer


@pytest.mark.usefixtures("one_thread")
def test_proxy_trainer_and_crest_give_the_same_signals(mnist1d_small, tmp_path):
    """Same weights, same rows -> identical arrays, whichever path collects them: the proxy's eval pass, the
    trainer's warm-up eval pass and mini-batch recording (learning rate 0: the weights never move), and the
    eval-mode logits CREST reads (rows in any order, placed by row index). Every path forwards batches of 64
    rows: a row's float32 logits can differ in the last bit between batch sizes (BLAS kernels), not between
    batches of one size."""
    from hf_coreset.data.mnist1d import make_convnet
    from hf_coreset.proxy import ProxyConfig, run_proxy

    train = mnist1d_small["train"].select(range(256))
    labels = np.asarray(train["label"])
    signals, _ = run_proxy(make_convnet(0), train, labels, 10, {0: frozenset(FIELDS)},
                           config=ProxyConfig(eval_batch_size=64), seed=0, label_column="label", cache_dir=False,
                           progress=False)
    proxy = signals.at(0, *FIELDS)

    recorded = _trainer(train, tmp_path, "minibatch")  # loss, correct, logits from shuffled training batches
    evaluated = _trainer(train, tmp_path, "eval")  # every field from one eval pass after the warm-up
    for trainer in (recorded, evaluated):
        got = trainer._signals.at(1, *FIELDS)
        for f in FIELDS:
            assert getattr(got, f).dtype == getattr(proxy, f).dtype
            np.testing.assert_array_equal(getattr(got, f), getattr(proxy, f), err_msg=f)

    crest = _trainer(train, tmp_path, "minibatch", schedule="crest")
    assert crest.crest.collector is crest._collector  # CREST reads its logits through the trainer's collector
    rows = np.random.default_rng(0).permutation(len(labels))[:192]
    np.testing.assert_array_equal(crest._collector.logits(crest.model, rows), proxy.logits[rows])


_TWO_PROCESS_SCRIPT = '''
import sys
import datasets, numpy as np, torch
from accelerate import Accelerator
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.signals import FIELDS, SignalCollector, shard

ds = datasets.load_from_disk(sys.argv[1])
labels = np.asarray(ds["label"])
acc = Accelerator()
collector = SignalCollector(ds, ["x"], labels, accelerator=acc, batch_size=16, head="classifier")
model = make_convnet(0).eval()
ckpt = collector.checkpoint(model, 0, FIELDS)
rows = np.random.default_rng(0).permutation(len(labels))[:37]  # 37 rows: shares of 19 and 18
logits = collector.logits(model, rows)
collector.start_recording(1, {"loss", "correct", "logits"})
order = np.resize(np.random.default_rng(1).permutation(len(labels)), 120)  # wraps around, as the trainer's
for batch in np.split(order, 6):  # full global batches of 20: every process records its share of 10
    mine = torch.as_tensor(shard(batch, acc.num_processes, acc.process_index))
    with torch.no_grad():
        out = model(collector.batch(mine)["x"]).float()
    collector.record(mine, out, torch.as_tensor(labels[mine.numpy()]))
recorded = collector.stop_recording()
if acc.is_main_process:
    np.savez(sys.argv[2], rows=rows, logits=logits, **{f"eval_{f}": getattr(ckpt, f) for f in FIELDS},
             **{f"rec_{f}": getattr(recorded, f) for f in ("loss", "correct", "logits")})
acc.wait_for_everyone()
if torch.distributed.is_initialized():  # leave the group: gloo threads torn down at exit can abort a rank
    torch.distributed.destroy_process_group()
'''


@pytest.mark.slow
@pytest.mark.multiprocess
def test_collector_two_processes_match_one(mnist1d_small, tmp_path):
    """The collector's eval pass, mini-batch recording and logits(rows) under two gloo processes place every
    row where one process does (uneven shares included); values agree to float tolerance (each process
    forwards other batches, so the last bits may differ)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    mnist1d_small["train"].select(range(101)).save_to_disk(tmp_path / "ds")
    script = tmp_path / "collect.py"
    script.write_text(_TWO_PROCESS_SCRIPT)
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "ds"), str(tmp_path / "one.npz")], env=env,
                   check=True, timeout=300)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no",
           str(script), str(tmp_path / "ds"), str(tmp_path / "two.npz")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "ACCELERATE_DEBUG_MODE": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(one.files) == sorted(two.files)
    for key in one.files:
        assert one[key].shape == two[key].shape and one[key].dtype == two[key].dtype, key
        if key.endswith("correct") or key == "rows":
            np.testing.assert_array_equal(two[key], one[key], err_msg=key)
        else:
            np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_signal_package_imports_run_one_way():
    """No import circle inside hf_coreset/signals (function-level imports included), and the package
    imports nothing of the library but `fingerprint` (for the cache key): the proxy, the trainer, CREST
    and the methods build on it, never the reverse."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "hf_coreset" / "signals"
    edges = {}
    for path in package.glob("*.py"):
        edges[path.stem] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                edges[path.stem].add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.level == 2:
                assert node.module == "fingerprint", f"signals/{path.name} imports hf_coreset.{node.module}"
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("hf_coreset"):
                raise AssertionError(f"signals/{path.name} imports {node.module}")

    def visit(module, stack):
        assert module not in stack, f"import circle: {' -> '.join(stack + [module])}"
        for dep in edges.get(module, ()):
            if dep != "__init__":
                visit(dep, stack + [module])

    assert all("__init__" not in deps for name, deps in edges.items() if name != "__init__")
    for module in edges:
        visit(module, [])
