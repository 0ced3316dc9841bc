"""`auto`: the selection the benchmark favours at the requested fraction, from a fixed table."""

from __future__ import annotations

import copy

from . import DEFAULT_EPOCH, Keeps, get, register
from ._common import epoch_only

# (largest kept share, method, options), in increasing order; the first row whose bound is >= the
# kept share applies. Chosen from the validation study benchmarks/results/auto_validation.md
# (MNIST-1D, 32k/8k split of the train split, 5 seeds each re-drawing proxy, selection and training;
# the test split was not used); its margins are in BENCHMARKS.md ("Validation study `auto_validation`").
# The rule: at each measured fraction, the candidate with the highest mean margin over random among
# those whose paired t statistic exceeds 2.8 (p < 0.05 at n = 5); random where none does.
# Changing a row changes what `auto` selects: bump the version in `register` below.
TABLE = (
    # 1%: prototypes of the easiest 90% (kernel herding the runner-up).
    (0.025, "prototypes", {"easy": 0.9}),
    # 5% and 10%: kernel herding (prototypes fell to random there).
    (0.2, "kernel-herding", {"bandwidth": 1.0}),
    # 30%: the hardest rows by entropy; difficulty loses to random below 10%.
    (1.0, "entropy", {}),
)
# Only 1%, 5%, 10% and 30% were measured, every row at proxy epoch 10 (auto's `epoch` on the
# MNIST-1D ConvNet); the bounds between them are rounded midpoints.


def choice(fraction: float, epoch: int = DEFAULT_EPOCH) -> tuple[str, dict]:
    """(method, options) that `auto` uses for a kept share `fraction` in (0, 1], reading proxy epoch `epoch`."""
    for bound, method, options in TABLE:
        if fraction <= bound:
            return method, {"epoch": epoch, **copy.deepcopy(options)}
    return TABLE[-1][1], {"epoch": epoch, **copy.deepcopy(TABLE[-1][2])}


def _needs(options: dict) -> dict:
    # `needs` sees options, not the budget, so the proxy collects what every table row may use.
    epoch = options.get("epoch")
    epoch = DEFAULT_EPOCH if epoch is None else epoch
    merged: dict = {}
    for _, method, opts in TABLE:
        spec = get(method)
        for e, fields in spec.needs(spec.check_options({"epoch": epoch, **opts})).items():
            merged[e] = merged.get(e, frozenset()) | fields
    return merged


def _table_doc() -> str:
    return "; ".join(f"<= {b:g}: {m} {o or ''}".strip() for b, m, o in TABLE)


@register("auto", needs=_needs, version=2,
          summary="The benchmark's pick for the requested fraction (see the README table): " + _table_doc() + ".",
          paper="-", signal="those of the picked method", cost="those of the picked method",
          keeps=Keeps.OTHER, keeps_note="the picked method's rows", check=epoch_only)
def auto(signals, budget, *, rng, epoch: int | None = None):
    """Run the method that the validation study favours at the kept share f = budget / rows.

    The choice is a fixed table (`hf_coreset.methods.auto.TABLE`), not a search at run time, so a
    selection is reproducible from its config: `info["auto_method"]` and `info["auto_options"]`
    name what ran. It was decided on a validation split (never the test split) as the best
    candidate per fraction, falling back to "random" where nothing beat random.

    Args:
        epoch (`int`, *optional*): the proxy epoch every picked method reads; unset, the proxy's last
            epoch (10 with the default proxy, as in the study; `CoresetTrainer` sets its warm-up).

    Returns:
        the picked method's `MethodOutput`.

    Example:
        ```python
        >>> sel = hf_coreset.select(ds, "auto", fraction=0.01, model=model)
        >>> sel.config["auto_method"]
        'prototypes'
        ```
    """
    method, options = choice(budget.total / signals.num_rows, DEFAULT_EPOCH if epoch is None else epoch)
    spec = get(method)
    out = spec.fn(signals, budget, rng=rng, **spec.check_options(options))
    out.info = {**out.info, "auto_method": method, "auto_options": options, "auto_method_version": spec.version}
    return out
