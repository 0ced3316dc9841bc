"""The method registry. A method is a small function of Signals, registered by name.

Each module in this package registers its methods with :func:`register` when imported; the
registry imports them all on first use, so adding a method is adding a file.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from ._common import ExactLimit, MethodOutput  # noqa: F401  (MethodOutput: re-exported for method modules)

_REGISTRY: dict[str, "MethodSpec"] = {}
_LOADED = False
# The proxy epoch an unset `epoch` option means when no proxy says otherwise: `ProxyConfig().epochs`,
# the epoch every benchmark of the MNIST-1D ConvNet reads.
DEFAULT_EPOCH = 10


class Keeps(enum.Enum):
    """Which rows a method keeps, typed so that wrappers such as `coverage` never read it from prose."""

    HIGHEST = "highest"  # the top of its per-row `scores`
    LOWEST = "lowest"  # the bottom of its per-row `scores`
    OTHER = "other"  # greedy, stratified or random picks: not one end of a score


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Attributes:
        name (`str`): registry name.
        fn (`Callable`): ``fn(signals, budget, *, rng, **options) -> MethodOutput``.
        needs (`Callable`): ``needs(options) -> {proxy epoch: fields}``; empty when no model is needed.
        version (`int`): bumped whenever what the method selects changes.
        summary, paper, signal, cost (`str`): one line each, for `hf-coreset methods` and the README.
        keeps (`Keeps`): which end of its per-row scores the method keeps (or `Keeps.OTHER`).
        keeps_note (`str`): what it keeps, in words, for `hf-coreset methods` (never read by code).
        weighted (`bool`): whether the selection carries training weights.
        defaults (`dict`): the options (``fn``'s keyword-only arguments) and their defaults.
        check (`Callable`, *optional*): ``check(**options)`` raises `TypeError`/`ValueError` naming a bad
            option value; required when the method has options.
        distributable (`bool` or `Callable`): whether (``distributable(options)`` for which options) the
            method's per-class work may be split across processes (see :func:`run`): all of it goes
            through `groups`, each class's picks depend only on that class's rows, random draws are kept
            in step for skipped classes (`groups`' `skip`), and `info` does not depend on the classes run.
    """

    name: str
    fn: Callable
    needs: Callable
    version: int
    summary: str
    paper: str
    signal: str
    cost: str
    keeps: Keeps
    keeps_note: str = ""
    weighted: bool = False
    defaults: dict = field(default_factory=dict)
    check: Callable | None = None
    distributable: bool | Callable = False
    partition_limit: ExactLimit | None = None  # a `partition_size` method's limit: its partitioned classes are shared

    def distributes(self, options: dict) -> bool:
        """Whether a run with (checked) `options` may be split across processes."""
        return bool(self.distributable(options) if callable(self.distributable) else self.distributable)

    def check_options(self, options: dict, *, last_epoch: int = DEFAULT_EPOCH) -> dict:
        """Options merged over defaults and checked; unknown names raise `TypeError` listing the valid
        ones, and the method's `check` refuses bad values. `select`, `CoresetTrainer` and wrapping
        methods call it before any proxy training, so no bad value surfaces after the training.

        An `epoch` option left unset (None) becomes `last_epoch`, the proxy's last epoch (`select`
        passes `ProxyConfig.epochs`), here and in the `score_options` of a wrapper (`coverage`,
        `schedule`), so that `needs` and the recorded options always name a real epoch."""
        unknown = set(options) - set(self.defaults)
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise TypeError(f"Method {self.name!r} got unknown option(s) {sorted(unknown)}; its options are: {valid}.")
        merged = {**self.defaults, **options}
        if "epoch" in merged and merged["epoch"] is None:
            merged["epoch"] = last_epoch
        inner = merged.get("score_options")
        if "score_options" in merged and (inner is None or isinstance(inner, dict)) and isinstance(merged.get("score"), str) \
                and merged["score"] in _REGISTRY:
            if "epoch" in _REGISTRY[merged["score"]].defaults and (inner or {}).get("epoch") is None:
                merged["score_options"] = {**(inner or {}), "epoch": last_epoch}
        if self.check is not None:
            self.check(**merged)
        return merged

    @property
    def keeps_text(self) -> str:
        """`keeps` and `keeps_note` in words, e.g. "lowest scores (best summed rank)"."""
        if self.keeps is Keeps.OTHER:
            return self.keeps_note
        return f"{self.keeps.value} scores" + (f" ({self.keeps_note})" if self.keeps_note else "")

    @property
    def needs_model(self) -> bool:
        return bool(self.needs(self.check_options({})))


def register(name: str, *, needs: Callable, version: int, summary: str, paper: str, signal: str, cost: str,
             keeps: Keeps, keeps_note: str = "", weighted: bool = False, check: Callable | None = None,
             distributable: bool | Callable = False, partition_limit: ExactLimit | None = None):
    """Decorator registering ``fn`` under ``name``; its keyword-only arguments (with defaults) are its options.

    ``check(**options)`` validates all of them (merged over the defaults) and is required when there
    are any; ``needs`` may then assume checked options. A distributable method with a `partition_size`
    option passes its ``partition_limit``: its classes of two or more parts are then shared by the
    processes of a split selection (`_distribute.run_split`), which requires it to run their parts
    through `_distribute.map_parts`.
    """

    def wrap(fn):
        params = inspect.signature(fn).parameters
        defaults = {k: p.default for k, p in params.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY and k != "rng"}
        if name in _REGISTRY:
            raise ValueError(f"Method {name!r} is registered twice.")
        if not isinstance(keeps, Keeps):
            raise TypeError(f"Method {name!r}: keeps must be a Keeps member, not {keeps!r}.")
        if defaults and check is None:
            raise TypeError(f"Method {name!r} has options {sorted(defaults)}; register it with check=<a function "
                            "of those options that raises on a bad value>.")
        if check is not None:
            try:
                inspect.signature(check).bind(**defaults)
            except TypeError:
                raise TypeError(f"The check of method {name!r} must accept its options {sorted(defaults)} "
                                "as keywords.") from None
        _REGISTRY[name] = MethodSpec(name=name, fn=fn, needs=needs, version=version, summary=summary, paper=paper,
                                     signal=signal, cost=cost, keeps=keeps, keeps_note=keeps_note, weighted=weighted, defaults=defaults,
                                     check=check, distributable=distributable, partition_limit=partition_limit)
        return fn

    return wrap


def _load_all() -> None:
    global _LOADED
    if not _LOADED:
        for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{__name__}.{mod.name}")
        _LOADED = True


def available() -> list[str]:
    """Names of all registered methods, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def run(method, signals, budget, *, seed: int = 0, **options) -> MethodOutput:
    """Run `method` (a name or a `MethodSpec`) on `signals` with `budget`; the selection step of `select`.

    Under `accelerate launch` (a torch.distributed process group of N > 1 processes), a distributable
    method in per-class mode runs only this process's classes (`_distribute.assign_classes`), and a class
    on its partitioned path on every process, each running its share of the parts (`_distribute.map_parts`);
    the outputs are gathered, so every process returns what one process computes alone. Other methods run
    whole on every process. Every process of the group must call it.

    Example:
        ```python
        >>> out = hf_coreset.methods.run("kcenter", signals, hf_coreset.make_budget(signals.labels, fraction=0.1), epoch=0)
        ```
    """
    from ._distribute import run_split

    spec = method if isinstance(method, MethodSpec) else get(method)
    options = spec.check_options(options)
    return run_split(spec, signals, budget, seed=seed, options=options)


def get(name: str) -> MethodSpec:
    """The method registered as `name`; a `ValueError` lists the known names otherwise."""
    _load_all()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"Unknown coreset method {name!r}; known methods: {', '.join(available())}.")
    return _REGISTRY[name]
