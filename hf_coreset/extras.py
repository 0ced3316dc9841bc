"""Optional packages (the demo, metrics and plots extras): one clear error naming the extra to install."""

from __future__ import annotations

import importlib


class MissingExtra(ImportError):
    """An optional package is missing; the message names the extra that brings it."""


def require(*modules: str, extra: str, what: str) -> list:
    """Import `modules`, or raise `MissingExtra` saying that `what` needs `pip install 'hf-coreset[extra]'`."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as err:
        raise MissingExtra(f"{what} needs the {extra} extra: pip install 'hf-coreset[{extra}]'") from err
