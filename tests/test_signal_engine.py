"""The one signal engine (issue 12): one logit gradient, one seed rule, one batch sampler, one collector
that the proxy, the trainer and CREST share."""

from __future__ import annotations

import numpy as np

from hf_coreset.signals import Checkpoint, logit_grad


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

    from hf_coreset.crest import Crest, CrestConfig
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
    crest = Crest(CrestConfig(), np.arange(40) % 4, seed, logits_fn=None, batch_logits_fn=None, params_fn=None)
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
