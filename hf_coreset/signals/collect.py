"""Collection: one eval-mode pass of a model over the rows, placed by row index through Accelerate.

This package and ``proxy.py`` are the only modules that touch models, data loaders and Accelerate.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .model import check_logits, forward_logits
from .rows import ROW_KEY
from .types import Checkpoint


@torch.no_grad()
def collect_checkpoint(model: nn.Module, loader, labels: torch.Tensor, *, epoch: int, fields: frozenset,
                       head: nn.Linear, accelerator, progress: bool = True) -> Checkpoint:
    """One eval-mode forward pass over `loader` (prepared by `accelerator`), placed by row index.

    Note:
        Every process must call it; each ends up with the full arrays.
    """
    from tqdm.auto import tqdm

    n = len(labels)
    captured = {}
    hook = None
    if "features" in fields:
        hook = head.register_forward_pre_hook(lambda mod, args: captured.__setitem__("h", args[0]))
    was_training = model.training
    model.eval()
    out: dict[str, np.ndarray] = {}
    filled = np.zeros(n, dtype=bool)
    try:
        bar = tqdm(loader, desc=f"signals @ epoch {epoch}", disable=not (progress and accelerator.is_main_process),
                   leave=False)
        for batch in bar:
            rows = batch.pop(ROW_KEY)
            logits = forward_logits(model, batch).float()
            y = labels[rows.cpu()].to(logits.device)
            check_logits(logits, y, head if "features" in fields else None)
            parts = {"row": rows}
            loss = nn.functional.cross_entropy(logits, y, reduction="none")
            if "loss" in fields:
                parts["loss"] = loss
            if "correct" in fields:
                parts["correct"] = (logits.argmax(dim=1) == y).to(torch.uint8)  # gloo gathers no bool
            if "logits" in fields:
                parts["logits"] = logits
            if "features" in fields:
                h = captured.pop("h")
                parts["features"] = h.reshape(h.shape[0], -1).float()
            parts = accelerator.gather_for_metrics(parts)
            idx = parts.pop("row").cpu().numpy()
            for key, value in parts.items():
                value = value.cpu().numpy()
                if key not in out:
                    dtype = np.bool_ if key == "correct" else np.float32
                    out[key] = np.zeros((n,) + value.shape[1:], dtype=dtype)
                out[key][idx] = value
            filled[idx] = True
    finally:
        if hook is not None:
            hook.remove()
        model.train(was_training)
    if not filled.all():
        missing = np.flatnonzero(~filled)
        raise RuntimeError(f"Signals at epoch {epoch} are missing {len(missing)} rows (first: {missing[:10].tolist()}); "
                           "the data loader did not visit every row once.")
    for key in ("loss", "logits", "features"):
        if key in out and not np.all(np.isfinite(out[key])):
            bad = np.flatnonzero(~np.isfinite(out[key].reshape(n, -1)).all(axis=1))
            hint = ("the model as given produces them: check those rows' inputs for NaN/inf values" if epoch == 0
                    else "the proxy diverged (or those rows' inputs hold NaN/inf): lower the proxy learning rate "
                         "with proxy={'lr': ...}")
            raise FloatingPointError(
                f"Non-finite {key} for {len(bad)} rows at proxy epoch {epoch} (first rows {bad[:10].tolist()}); "
                f"{hint}.")
    return Checkpoint(epoch=epoch, **out)
