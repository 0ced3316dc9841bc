"""Shared bits of the seed-method benchmarks: peak-memory measurement and writing a fragment."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def reset_peak() -> None:
    """Reset the process's peak resident memory (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mib() -> float:
    """Peak resident memory of this process since the last reset, in MiB (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text)
    print(text)
    return path


def in_fresh_process(target, args: tuple, timeout_s: float, env: dict | None = None) -> dict:
    """Run ``target(*args, queue)`` in a fresh spawned process (its own peak RSS and threads) and return
    ``{"status": "ok", **what it put on the queue}``, or a status saying why nothing came back. `env`
    holds variables the child must see when it starts (a BLAS reads its thread count at import)."""
    import multiprocessing as mp
    import os

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    saved = {v: os.environ.get(v) for v in (env or {})}
    os.environ.update(env or {})
    try:
        proc.start()
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
    try:
        out = queue.get(timeout=timeout_s)
    except Exception:  # queue.Empty: it outlived the timeout, or the child died
        out = None
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if out is None:
        return {"status": f"stopped after {timeout_s:.0f} s" if proc.exitcode in (None, -9) else
                f"failed (exit code {proc.exitcode})"}
    return {"status": "ok", **out}
