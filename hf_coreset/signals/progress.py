"""Progress of long work, one bar per phase (a proxy epoch, a signal pass, a training run).

On a terminal or in a notebook: a `tqdm.auto` bar with ETA and throughput. Elsewhere (logs, CI,
a redirected stderr), where bars come out garbled: a plain line at each tenth of the phase (at most
one every `quiet` seconds, so short phases stay short), at least one every `every` seconds, and one
when the phase ends, e.g. ``proxy epoch 3/10: step 120/313, 450 rows/s, eta 1m10s``.
"""

from __future__ import annotations

import sys
import time


def _in_notebook() -> bool:
    from tqdm.auto import tqdm

    return any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Progress of one phase of `total` units (steps or rows).

    Args:
        desc (`str`): the phase, e.g. "proxy epoch 3/10".
        total (`int`): units in the phase.
        unit (`str`, *optional*, defaults to `"step"`): what a unit is ("step", "row").
        enabled (`bool`, *optional*, defaults to `True`): False shows nothing (other processes, `progress=False`).
        file (*optional*): the stream; stderr (read when the phase starts) by default.
        every (`float`, *optional*, defaults to `30`): seconds between plain lines at most.
        quiet (`float`, *optional*, defaults to `5`): seconds between plain lines at least (but the last).
        leave (`bool`, *optional*, defaults to `True`): keep a terminal bar once the phase ends.
    """

    def __init__(self, desc: str, total: int, *, unit: str = "step", enabled: bool = True, file=None,
                 every: float = 30.0, quiet: float = 5.0, leave: bool = True, clock=time.monotonic):
        self.desc, self.total, self.unit, self.clock = desc, total, unit, clock
        self.every, self.quiet = every, quiet
        self.file = sys.stderr if file is None else file
        self.enabled = enabled
        self.n = self.rows = 0
        self.postfix = ""
        self.bar = None
        self.start = self.last = clock()
        self.next_n = max(1, total // 10)
        if enabled and (_isatty(self.file) or _in_notebook()):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.file, leave=leave, dynamic_ncols=True)

    def update(self, n: int = 1, *, rows: int | None = None, **postfix) -> None:
        """`n` more units done (`rows` of data in them, for the throughput); `postfix` such as loss=0.5."""
        if not self.enabled:
            return
        self.n += n
        self.rows += n if rows is None else rows
        if postfix:
            self.postfix = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in postfix.items())
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
            return
        now = self.clock()
        tenth = self.n >= self.next_n
        while self.next_n <= self.n:
            self.next_n += max(1, self.total // 10)
        if self.n < self.total and ((tenth and now - self.last >= self.quiet) or now - self.last >= self.every):
            self._line(now)

    def _line(self, now: float, done: bool = False) -> None:
        self.last = now
        elapsed = now - self.start
        took = f" in {_duration(elapsed)}" if done else ""
        rate = f", {self.rows / elapsed:.0f} rows/s" if elapsed > 0 else ""
        eta = f", eta {_duration(elapsed * (self.total - self.n) / self.n)}" if self.n and not done else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.unit} {self.n}/{self.total}{took}{rate}{eta}{extra}", file=self.file, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            self._line(self.clock(), done=True)
        self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        elif self.bar is not None:
            self.bar.close()  # an error: no "done" line


def _isatty(file) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
