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
