"""`auto`: a selection method chosen on the user's own data (validation), or from a fixed table."""

from __future__ import annotations

import copy
import math
import numbers

from . import DEFAULT_EPOCH, Keeps, get, register
from ._common import check_epoch

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
    # `needs` sees options, not the budget, so the proxy collects what every table row (and, when
    # validating, every candidate) may use.
    from ..auto_validation import candidate_needs

    epoch = options.get("epoch")
    epoch = DEFAULT_EPOCH if epoch is None else epoch
    merged: dict = dict(candidate_needs(epoch)) if options.get("validate") else {}
    for _, method, opts in TABLE:
        spec = get(method)
        for e, fields in spec.needs(spec.check_options({"epoch": epoch, **opts})).items():
            merged[e] = merged.get(e, frozenset()) | fields
    return merged


def _table_doc() -> str:
    return "; ".join(f"<= {b:g}: {m} {o or ''}".strip() for b, m, o in TABLE)


def _check(*, epoch, validate, validation_seeds, validation_share) -> None:
    check_epoch(epoch)
    if validate is not None and not isinstance(validate, bool):
        raise TypeError(f"validate={validate!r}; pass True (choose on your data), False (the fixed table) or None.")
    if isinstance(validation_seeds, bool) or not isinstance(validation_seeds, numbers.Integral) or validation_seeds < 2:
        raise ValueError(f"validation_seeds={validation_seeds!r}; pass an integer >= 2 (the seed noise needs two "
                         "seeds at least), e.g. validation_seeds=2.")
    if isinstance(validation_share, bool) or not isinstance(validation_share, numbers.Real) \
            or not (math.isfinite(validation_share) and 0 < validation_share <= 0.5):
        raise ValueError(f"validation_share={validation_share!r}; pass the share of each class held out for "
                         "validation, in (0, 0.5], e.g. validation_share=0.1.")


@register("auto", needs=_needs, version=3,
          summary="Chosen on your data: candidates (random, kernel herding at 3 bandwidths, k-center, prototypes, "
                  "the table's pick) trained briefly and scored on a slice of the train split; random unless one "
                  "beats it by more than the noise. validate=False: the fixed table " + _table_doc() + ".",
          paper="-", signal="those of the candidates (proxy features and logits)",
          cost="proxy epochs + candidates x validation_seeds short trainings (recorded)",
          keeps=Keeps.OTHER, keeps_note="the picked method's rows", check=_check)
def auto(signals, budget, *, rng, epoch: int | None = None, validate: bool | None = None, validation_seeds: int = 2,
         validation_share: float = 0.1):
    """Run the method that does best on your data at this budget, or the fixed table's pick.

    With `validate` (the default under `hf_coreset.select`), for each validation seed a stratified
    `validation_share` of each class of the train split is held out (the seeds' slices disjoint where the
    classes allow); candidate selections of the rest (random, kernel herding at bandwidths 0.3, 1 and 3, k-center, prototypes and the table's pick) are built from the signals the
    proxy collected, a copy of the model as given trains on each (the proxy's optimizer, cosine decay,
    the proxy's epochs and at least 100 steps) for each of `validation_seeds` seeds, and the one with
    the best validation accuracy is picked if its margin over random exceeds both the seed std of the
    per-seed margins (pooled) and twice the paired standard error of the difference over the rows
    scored; else random. The pick then runs on the whole train split. `info["auto_validation"]`
    records every candidate's scores (and two no-training criteria, MMD and coverage), the noise, the
    choice and the cost (seconds, and as a ratio to the proxy's); see `hf_coreset.auto_validation`.

    Without it (`validate=False`; `CoresetTrainer` and direct `methods.run` calls, where no data and
    model are at hand, leave None as False), the choice is a fixed table
    (`hf_coreset.methods.auto.TABLE`) decided on a validation split of MNIST-1D.

    Either way `info["auto_method"]` and `info["auto_options"]` name what ran.

    Args:
        epoch (`int`, *optional*): the proxy epoch every candidate reads; unset, the proxy's last
            epoch (10 with the default proxy; `CoresetTrainer` sets its warm-up).
        validate (`bool`, *optional*): choose on your data (True) or by the table (False); None:
            True under `hf_coreset.select`, False elsewhere.
        validation_seeds (`int`, *optional*, defaults to `2`): seeds per candidate (>= 2: the seed noise
            needs two); each draws its own slice, the random candidate and the short training's batch order.
        validation_share (`float`, *optional*, defaults to `0.1`): share of each class held out per seed, in (0, 0.5].

    Returns:
        the picked method's `MethodOutput`.

    Example:
        ```python
        >>> sel = hf_coreset.select(ds, "auto", fraction=0.01, model=model)
        >>> sel.config["auto_method"], sel.config["auto_validation"]["choice"]
        ('kernel-herding', 'kernel-herding(bandwidth=3.0)')
        ```
    """
    from .. import auto_validation

    epoch = DEFAULT_EPOCH if epoch is None else epoch
    table = choice(budget.total / signals.num_rows, epoch)
    ctx = auto_validation.current()
    record = None
    if validate:
        if ctx is None:
            raise ValueError("auto with validate=True trains candidates on your data, which only "
                             "hf_coreset.select provides; call hf_coreset.select(ds, 'auto', model=...) or pass "
                             "validate=False for the fixed table.")
        method, options, record = auto_validation.validate(signals, budget, table_pick=table, epoch=epoch,
                                                           seeds=validation_seeds, share=validation_share, ctx=ctx)
    else:
        method, options = table
    spec = get(method)
    out = spec.fn(signals, budget, rng=rng, **spec.check_options(options))
    out.info = {**out.info, "auto_method": method, "auto_options": options, "auto_method_version": spec.version}
    if record is not None:
        out.info["auto_validation"] = record
    return out
