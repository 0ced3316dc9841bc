"""The method registry. A method is a small function of Signals, registered by name.

Each module in this package registers its methods with :func:`register` when imported; the
registry imports them all on first use, so adding a method is adding a file.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from ._common import MethodOutput  # noqa: F401  (re-exported for method modules)

_REGISTRY: dict[str, "MethodSpec"] = {}
_LOADED = False


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Attributes:
        name (`str`): registry name.
        fn (`Callable`): ``fn(signals, budget, *, rng, **options) -> MethodOutput``.
        needs (`Callable`): ``needs(options) -> {proxy epoch: fields}``; empty when no model is needed.
        version (`int`): bumped whenever what the method selects changes.
        summary, paper, signal, cost (`str`): one line each, for `hf-coreset methods` and the README.
        keeps (`str`): which end of the scores is kept.
        weighted (`bool`): whether the selection carries training weights.
    """

    name: str
    fn: Callable
    needs: Callable
    version: int
    summary: str
    paper: str
    signal: str
    cost: str
    keeps: str
    weighted: bool = False
    defaults: dict = field(default_factory=dict)

    def check_options(self, options: dict) -> dict:
        """Options merged over defaults; unknown names raise `TypeError` listing the valid ones."""
        unknown = set(options) - set(self.defaults)
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise TypeError(f"Method {self.name!r} got unknown option(s) {sorted(unknown)}; its options are: {valid}.")
        return {**self.defaults, **options}

    @property
    def needs_model(self) -> bool:
        return bool(self.needs(dict(self.defaults)))


def register(name: str, *, needs: Callable, version: int, summary: str, paper: str, signal: str, cost: str,
             keeps: str, weighted: bool = False):
    """Decorator registering ``fn`` under ``name``; its keyword-only arguments (with defaults) are its options."""

    def wrap(fn):
        params = inspect.signature(fn).parameters
        defaults = {k: p.default for k, p in params.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY and k != "rng"}
        if name in _REGISTRY:
            raise ValueError(f"Method {name!r} is registered twice.")
        _REGISTRY[name] = MethodSpec(name=name, fn=fn, needs=needs, version=version, summary=summary, paper=paper,
                                     signal=signal, cost=cost, keeps=keeps, weighted=weighted, defaults=defaults)
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


def get(name: str) -> MethodSpec:
    """The method registered as `name`; a `ValueError` lists the known names otherwise."""
    _load_all()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"Unknown coreset method {name!r}; known methods: {', '.join(available())}.")
    return _REGISTRY[name]
