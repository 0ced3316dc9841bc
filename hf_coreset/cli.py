"""The `hf-coreset` command line: methods, select, push, demo, cache (works under `accelerate launch`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .demo import DEFAULT_METHODS
from .demo import DEFAULT_SAMPLES as DEMO_SAMPLES
from .extras import MissingExtra
from .hub import HubError


class CLIError(Exception):
    """A user error found by the command line itself: printed as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (the usage is one `-h` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message.rstrip('.')}; see `{self.prog} -h`.\n")


def json_object(text: str) -> dict:
    """argparse type of --options/--proxy: a JSON object, refused with a sentence otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid JSON ({err}); pass an object such as "
                                         "'{\"epoch\": 5}' (quote it for the shell).") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is JSON {type(value).__name__}, not an object; pass "
                                         "'{\"name\": value, ...}'.")
    return value


def checked_number(convert, ok, rule: str):
    """An argparse type: `convert(text)` (int or float) for which `ok(value)` holds, else one sentence
    saying the value must be `rule`."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = float("nan")  # fails every `ok`
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}.")
        return value

    return parse


fraction_arg = checked_number(float, lambda v: 0 < v <= 1, "a number in (0, 1]; 0.1 keeps 10% of the rows")
positive_int = checked_number(int, lambda v: v >= 1, "a whole number >= 1")
days_arg = checked_number(float, lambda v: v > 0, "a number of days > 0; 7 clears entries unused for a week")


def check_output_dir(path: str) -> None:
    """Before any work: the --output folder can be created (it and its parents are not files)."""
    for p in (Path(path), *Path(path).parents):
        if p.exists():
            if not p.is_dir():
                raise CLIError(f"--output {path!r}: {str(p)!r} is a file, not a folder; pass a folder path "
                               "(created if missing).")
            return


def _cmd_methods(args) -> int:
    from . import methods

    width = max(map(len, methods.available()))
    for name in methods.available():
        spec = methods.get(name)
        opts = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()) or "-"
        print(f"{name:{width}s} {spec.summary}\n{'':{width}s} signal: {spec.signal}; keeps: {spec.keeps_text}; options: {opts}")
    print("\nepoch=None: the proxy's last epoch (10; with a transformers model, 0 for methods that read features "
          "only and 2 for the rest: see hf_coreset.ProxyConfig).")
    return 0


def load_dataset_arg(name: str, split: str):
    """A dataset from a `save_to_disk` folder, the built-in "mnist1d", or `datasets.load_dataset`."""
    import datasets

    if name == "mnist1d":
        from .data import load_mnist1d

        ds = load_mnist1d()
    elif Path(name).exists():
        ds = datasets.load_from_disk(name)
    else:
        try:
            ds = datasets.load_dataset(name)
        except (ConnectionError, FileNotFoundError) as err:  # offline, unreachable, or no such dataset
            raise CLIError(f"--dataset {name!r} is not 'mnist1d' or a save_to_disk folder, and loading it from the "
                           f"Hub failed ({str(err).splitlines()[0]}); check the name or path, or the network.") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise CLIError(f"split {split!r} not in the dataset (splits: {list(ds)}); pass --split.")
        ds = ds[split]
    return ds


def check_model_arg(name: str | None) -> None:
    """Before any work: --model is the built-in ConvNet or an existing folder."""
    if name not in (None, "mnist1d-convnet") and not Path(name).is_dir():
        raise CLIError(f"--model {name!r} is not a folder; pass 'mnist1d-convnet' or a local transformers model "
                       "folder (with config.json, the weights and the tokenizer).")


def load_model_arg(name: str | None, num_labels: int, seed: int):
    """The built-in "mnist1d-convnet" or a local transformers model folder."""
    if name is None:
        return None
    if name == "mnist1d-convnet":
        from .data.mnist1d import make_convnet

        return make_convnet(seed), None
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    # A head the folder lacks is initialised from the global generators: seed them first (this command is the
    # program, so global seeding is its to do), so that --seed gives the same model, and selection, every run.
    set_seed(seed)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=num_labels)
        return model, AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:  # a folder without a config, weights or tokenizer files
        raise CLIError(f"--model {name!r} is not a loadable transformers model folder "
                       f"({str(err).splitlines()[0]}).") from None


def _cmd_select(args) -> int:
    from . import select
    from .api import _check_seed, check_dataset

    check_output_dir(args.output)
    _check_seed(args.seed)  # before it seeds the model's initialisation
    check_model_arg(args.model)
    ds = load_dataset_arg(args.dataset, args.split)
    _, num_classes = check_dataset(ds, args.label_column)
    options = args.options or {}
    proxy = args.proxy
    model, collate_fn = None, None
    source = ds
    loaded = load_model_arg(args.model, num_classes, args.seed)
    if loaded is not None:
        model, tokenizer = loaded
        if tokenizer is not None:
            from transformers import DataCollatorWithPadding

            if args.text_column not in ds.column_names:
                raise SystemExit(f"error: --text-column {args.text_column!r} is not a column ({ds.column_names}).")
            ds = ds.map(lambda b: tokenizer(b[args.text_column], truncation=True, max_length=args.max_length),
                        batched=True)
            collate_fn = DataCollatorWithPadding(tokenizer)
    sel = select(ds, args.method, fraction=args.fraction, model=model, label_column=args.label_column, seed=args.seed,
                 proxy=proxy, collate_fn=collate_fn, cache_dir=args.cache_dir, **options)
    if ds is not source:  # tokenized here: the selection belongs to the dataset as the user has it
        import dataclasses

        from .fingerprint import dataset_fingerprint

        sel = dataclasses.replace(sel, source_fingerprint=dataset_fingerprint(source))
    from accelerate import PartialState

    if PartialState().is_main_process:
        sel.save(args.output)
        print(f"{sel} -> {args.output}")
    return 0


def _cmd_push(args) -> int:
    from .selection import CoresetSelection

    sel = CoresetSelection.load(args.selection)
    ds = load_dataset_arg(args.dataset, args.split)
    # The token comes from HF_TOKEN or `hf auth login` only: a --token flag would leak into shell history.
    info = sel.push_to_hub(args.repo_id, dataset=ds, private=args.private, revision=args.revision,
                           commit_message=args.commit_message, check=args.check,
                           source_dataset=args.source_dataset or (None if Path(args.dataset).exists() else args.dataset),
                           source_revision=args.source_revision, overwrite=args.overwrite)
    print(f"{sel} -> {args.repo_id} at commit {info.oid}")
    return 0


def _cmd_demo(args) -> int:
    from . import methods as registry
    from .demo import run_demo

    methods = args.methods.split(",") if args.methods else DEFAULT_METHODS
    for name in methods:
        registry.get(name)  # an unknown name fails now, not after the full-data training
    run_demo(fraction=args.fraction, methods=methods, seed=args.seed, num_samples=args.num_samples,
             epochs=args.epochs, full_data_epochs=args.full_data_epochs)
    return 0


def _plural(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def _entry_line(entry) -> str:
    import time

    from .signals.cache import format_size

    model = (entry.model_class or "?").rsplit(".", 1)[-1]
    rows = f"{entry.num_rows} rows" if entry.num_rows is not None else "? rows"
    epochs = "; ".join(f"epoch {e}: {','.join(fs)}" for e, fs in entry.epochs.items()) or "no signals"
    extra = ("  +proxy state" if entry.has_state else "") + ("  stale (older hf-coreset)" if entry.stale else "")
    return (f"{entry.key}  {model}  {rows} (dataset {(entry.dataset or '?')[:16]})  {epochs}  "
            f"{format_size(entry.size)}  last used {time.strftime('%Y-%m-%d %H:%M', time.localtime(entry.last_used))}"
            + extra)


def _cmd_cache(args) -> int:
    import time

    from .signals.cache import cache_root, format_size, list_entries, remove_entries

    folder = cache_root(args.cache_dir)[0] / "signals"
    entries = list_entries(args.cache_dir)
    if args.action == "ls":
        for entry in entries:
            print(_entry_line(entry))
        print(f"{_plural(len(entries))}, {format_size(sum(e.size for e in entries))} in {folder}")
        return 0
    if args.all + bool(args.keys) + (args.older_than is not None) != 1:
        raise CLIError("say what to clear: --all, --older-than DAYS, or the keys that `hf-coreset cache ls` shows "
                       "(one of the three).")
    if args.all:
        chosen = entries
    elif args.older_than is not None:
        chosen = [e for e in entries if e.last_used < time.time() - args.older_than * 86400]
    else:
        chosen = []
        for key in args.keys:  # all checked before anything is removed
            found = [e for e in entries if e.key.startswith(key)]
            if len(found) != 1:
                raise CLIError(f"cache key {key!r} {'is ambiguous' if found else 'is not'} in {folder}; "
                               "`hf-coreset cache ls` lists the keys.")
            chosen += found
    freed = remove_entries(chosen)
    left = [e for e in entries if e not in chosen]
    print(f"removed {_plural(len(chosen))}, {format_size(freed)}; {_plural(len(left))} "
          f"({format_size(sum(e.size for e in left))}) left in {folder}")
    return 0


def _cmd_benchmark_moved(args) -> int:
    print(f"error: `hf-coreset benchmark` moved out of the package: from a checkout of the repository, run "
          f"`python -m benchmarks {' '.join(args.rest) or 'quality|cost|scaling'}` (see BENCHMARKS.md).", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="hf-coreset", description="Coreset selection for Hugging Face datasets.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("methods", help="list the registered methods and their options")
    p.set_defaults(func=_cmd_methods)

    p = sub.add_parser("select", help="select a coreset and save it (selection.json + parquet)")
    p.add_argument("--dataset", required=True, help="'mnist1d', a save_to_disk folder, or a Hub dataset name")
    p.add_argument("--split", default="train", help="split of a DatasetDict (default: train)")
    p.add_argument("--method", required=True, help="a method from `hf-coreset methods`")
    p.add_argument("--fraction", type=float, required=True, help="kept share of the rows, in (0, 1]")
    p.add_argument("--output", required=True, help="folder to write the selection to")
    p.add_argument("--model", default=None, help="'mnist1d-convnet' or a local transformers model folder")
    p.add_argument("--text-column", default="text", help="text column to tokenize for a transformers model")
    p.add_argument("--max-length", type=int, default=128, help="tokenizer truncation length")
    p.add_argument("--label-column", default="label")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the selection, and a transformers model's new head (set before it loads)")
    p.add_argument("--options", type=json_object, default=None, help='method options as JSON, e.g. \'{"epoch": 5}\'')
    p.add_argument("--proxy", type=json_object, default=None,
                   help='proxy training as JSON, e.g. \'{"lr": 0.01, "optimizer": "adam"}\'')
    p.add_argument("--cache-dir", default=None, help="signal cache folder")
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("push", help="publish a saved selection, its kept rows and a dataset card to the Hub")
    p.add_argument("--selection", required=True, help="folder written by `hf-coreset select` / CoresetSelection.save")
    p.add_argument("--dataset", required=True, help="the source: 'mnist1d', a save_to_disk folder, or a Hub dataset name")
    p.add_argument("--split", default="train", help="split of a DatasetDict (default: train)")
    p.add_argument("--repo-id", required=True, help="Hub dataset repo to push to, 'user/name'")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace README.md, data/ and selection/ files in the repo that hf-coreset did not write")
    p.add_argument("--commit-message", default=None)
    p.add_argument("--check", default="strict", choices=["strict", "content", "none"],
                   help="how to check the dataset is the selection's source (default: strict)")
    p.add_argument("--source-dataset", default=None, help="Hub id of the source for the card (default: --dataset)")
    p.add_argument("--source-revision", default=None, help="revision of the source, for the card")
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser("demo", help="MNIST-1D: select 10%%, train on each subset, compare with random and full data")
    p.add_argument("--fraction", type=fraction_arg, default=0.1)
    p.add_argument("--methods", default=None, help=f"comma-separated methods (default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-samples", type=positive_int, default=DEMO_SAMPLES,
                   help=f"MNIST-1D rows generated (80%% train; default {DEMO_SAMPLES}, the benchmarks use 50000)")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs on each subset (default 100)")
    p.add_argument("--full-data-epochs", type=positive_int, default=None, help="epochs on the full data (default 30)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("cache", help="list or clear the signal cache")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("ls", help="one line per entry (key, model, rows, epochs and fields, size, last used) "
                                      "and the total")
    q.add_argument("--cache-dir", default=None, help="signal cache folder (default: $HF_CORESET_CACHE or "
                                                     "$HF_HOME/hf_coreset)")
    q.set_defaults(func=_cmd_cache)
    q = actions.add_parser("clear", help="delete entries: --all, --older-than DAYS, or KEY...")
    q.add_argument("keys", nargs="*", metavar="KEY", help="entry keys (or unique prefixes) from `hf-coreset cache ls`")
    q.add_argument("--all", action="store_true", help="every entry")
    q.add_argument("--older-than", type=days_arg, default=None, metavar="DAYS", help="entries not used for DAYS days")
    q.add_argument("--cache-dir", default=None, help="signal cache folder (default: $HF_CORESET_CACHE or "
                                                     "$HF_HOME/hf_coreset)")
    q.set_defaults(func=_cmd_cache)

    # The benchmarks left the package for the repository's benchmarks/ folder; the old command says where.
    p = sub.add_parser("benchmark", help="moved: `python -m benchmarks` in a repository checkout", add_help=False,
                       prefix_chars="\0")  # every word, --help too, is an argument
    p.add_argument("rest", nargs="*")
    p.set_defaults(func=_cmd_benchmark_moved)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, FileNotFoundError, HubError, MissingExtra) as err:  # user errors: no traceback
        print(f"hf-coreset: error: {err}", file=sys.stderr)
        return 2
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under `accelerate launch`, leave the process group before exiting: gloo's threads torn down at
    interpreter exit can abort a process ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
