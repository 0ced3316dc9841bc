"""Where a benchmark number comes from: git revision, date, machine, command.

The one provenance helper of every script in benchmarks/; the revision is that of the checkout
holding this file (the repository the benchmark runs from), whatever the current directory.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = ("hf_coreset", "benchmarks/*.py")  # what a number depends on; results and caches are not code


def git_revision() -> str:
    """Short commit of the checkout running the benchmark, "+dirty" if its code has local changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *CODE], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    import torch

    return {"cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(terse=True),
            "arch": platform.processor() or platform.machine(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def command(argv: list[str] | None = None) -> str:
    """This run's command line as typed from the repository root, e.g. `python benchmarks/seed_cost.py --seed 1`."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0]).resolve()
    if script.name == "__main__.py":  # `python -m package`
        head = ["-m", ".".join(script.parent.relative_to(REPO).parts)] if script.is_relative_to(REPO) else [argv[0]]
    else:
        head = [os.path.relpath(script, REPO) if script.is_relative_to(REPO) else argv[0]]
    return " ".join(shlex.quote(a) for a in ["python", *head, *argv[1:]])


def header() -> str:
    """Markdown lines for a fragment: command, date, machine, torch, git revision."""
    m = machine()
    return (f"- command: `{command()}`\n"
            f"- date: {now()}\n"
            f"- machine: {m['cpu_count']} CPU cores ({m['arch']}), torch {m['torch']}, {m['threads']} torch threads, "
            f"load average {m['loadavg_1m']:.1f} at start (the machine is shared, so times are rough)\n"
            f"- git revision: {git_revision()}\n")
