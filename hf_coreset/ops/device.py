"""Where the pairwise kernels run.

Every kernel in `hf_coreset.ops` takes `device=`: a `torch.device` or a string ("cpu", "cuda",
"cuda:1"). `None` means :func:`default_device`: the device of the active Accelerate state (set up by
an `Accelerator` or `accelerate launch`), else the CPU. Methods resolve it once per selection and pass
it to every kernel; it is not a method option (the picks are the same on every device up to float
ties, see each kernel), so it never enters a selection's fingerprint.
"""

from __future__ import annotations

import numpy as np
import torch


def default_device() -> torch.device:
    """The active Accelerate state's device (one GPU per process under `accelerate launch`), else the
    CPU. Never creates an Accelerate state: without one, selection stays on the CPU."""
    try:
        from accelerate.state import PartialState
    except ImportError:
        return torch.device("cpu")
    if not PartialState._shared_state:  # no Accelerator / accelerate launch in this process
        return torch.device("cpu")
    return torch.device(PartialState().device)


def resolve_device(device: torch.device | str | None) -> torch.device:
    """`device` as a `torch.device` (`None` -> :func:`default_device`)."""
    if device is None:
        return default_device()
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device={device!r} must be a torch.device or a string such as 'cpu' or 'cuda'.")
    return torch.device(device)


def on_device(array, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`array` (numpy or torch) as a contiguous `dtype` tensor on `device` (no copy when it already is one)."""
    if isinstance(array, torch.Tensor):
        return array.to(device=device, dtype=dtype).contiguous()
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np_dtype)).to(device=device, dtype=dtype)
