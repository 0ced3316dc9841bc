"""`auto`: the table row for each kept share runs, exactly as that method would."""

from __future__ import annotations

import numpy as np
import pytest

from hf_coreset import methods
from hf_coreset.budget import make_budget
from hf_coreset.methods.auto import TABLE, choice
from hf_coreset.signals import Checkpoint, Signals


def make_signals(n=1000, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n // classes)
    epochs = {e for _, m, o in TABLE for e in methods.get(m).needs(methods.get(m).check_options(dict(o)))} | {10}
    ckpts = {}
    for e in sorted(epochs):
        logits = rng.normal(size=(n, classes)) * 3
        ckpts[e] = Checkpoint(epoch=e, logits=logits, correct=logits.argmax(1) == labels,
                              features=rng.normal(size=(n, 5)) + labels[:, None])
    return Signals(labels=labels, num_classes=classes, checkpoints=ckpts)


def test_table_is_ordered_and_covers_every_fraction():
    bounds = [b for b, _, _ in TABLE]
    assert bounds == sorted(bounds) and bounds[-1] == 1.0
    for _, method, options in TABLE:
        methods.get(method).check_options(dict(options))  # every row names a real method and options


@pytest.mark.parametrize("row", range(len(TABLE)))
def test_auto_runs_the_row_for_the_fraction(row):
    lower = TABLE[row - 1][0] if row else 0.0
    fraction = (lower + TABLE[row][0]) / 2
    method, options = choice(fraction)
    assert (method, options) == (TABLE[row][1], {"epoch": 10, **TABLE[row][2]})  # the study's epoch
    sig = make_signals()
    budget = make_budget(sig.labels, fraction=fraction, num_classes=4)
    spec = methods.get(method)
    direct = spec.fn(sig, budget, rng=np.random.default_rng(7), **spec.check_options(dict(options)))
    via = methods.get("auto").fn(sig, budget, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(via.indices, direct.indices)
    assert via.info["auto_method"] == method and via.info["auto_options"] == options
    assert len(via.indices) == budget.total


def test_auto_needs_cover_every_row_and_take_only_an_epoch():
    auto = methods.get("auto")
    for epoch in (10, 0, 2):
        needs = auto.needs(auto.check_options({}, last_epoch=epoch))
        assert sorted(needs) == [epoch]  # every row reads the proxy's last epoch, nothing else trains
        for _, method, options in TABLE:
            spec = methods.get(method)
            for e, fields in spec.needs(spec.check_options({"epoch": epoch, **options})).items():
                assert fields <= needs[e]
    assert auto.check_options({"epoch": 3}, last_epoch=2)["epoch"] == 3  # a given epoch wins
    # Validating, the proxy also collects what every candidate reads, at the same single epoch.
    from hf_coreset.auto_validation import CANDIDATES
    needs = auto.needs(auto.check_options({"validate": True}, last_epoch=2))
    assert sorted(needs) == [2]
    for method, options in CANDIDATES:
        spec = methods.get(method)
        opts = {"epoch": 2, **options} if "epoch" in spec.defaults else dict(options)
        for e, fields in spec.needs(spec.check_options(opts)).items():
            assert fields <= needs[e]
    with pytest.raises(TypeError, match="unknown option"):
        auto.check_options({"easy": 0.9})
