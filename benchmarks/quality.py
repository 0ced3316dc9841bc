"""The quality benchmark: every method against random and full data on MNIST-1D.

This is the runner behind `python -m benchmarks quality` (from the repository root). The grid is
(method, fraction, training seed). One proxy (selection seed 0) trains once for all methods, epoch by
epoch, with its training and signal passes timed per epoch; each method then selects once per
fraction from the cached signals, and its selection cost is the proxy training up to the last epoch
it needs, plus the signal passes it reads, plus its own scoring. A fresh ConvNet then trains on the
kept rows per training seed (see `evaluation.Protocol`).

Finished work is appended to a JSON-lines file, one record per line:
- ``{"kind": "selection", ...}``: a method's selection at one fraction, its timings (proxy training,
  signals, scoring) and its coverage (`hf_coreset.metrics`' "coreset_coverage" on the raw inputs);
- ``{"kind": "train", ...}``: one trained model's final test accuracy (through the shipped
  "accuracy" metric) and training time.
Each record carries its setup (data size, protocol, proxy, method version and options), the git
revision, the date and the machine. A rerun skips every cell whose record exists for the same setup,
so an interrupted grid resumes where it stopped; `quality_report` rebuilds the tables from the file.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hf_coreset.evaluation import Protocol
from . import provenance
from .provenance import git_revision, machine, now

logger = logging.getLogger(__name__)

FULL = "full data"
DEFAULT_FRACTIONS = (0.01, 0.05, 0.10, 0.30)
DEFAULT_SEEDS = (0, 1, 2)
# The proxy of the demo and of research/peer_measurements.md: the ConvNet with Adam at 1e-2.
PROXY = {"optimizer": "adam", "lr": 1e-2, "batch_size": 128}
HARD_EPOCH = 10  # the methods' default proxy epoch: where the report measures how "hard" kept rows are


@dataclass
class QualityConfig:
    """One quality grid.

    Args:
        methods (`tuple[str]`, *optional*): methods to run; defaults to every registered method.
        fractions (`tuple[float]`, *optional*, defaults to `(0.01, 0.05, 0.1, 0.3)`): kept shares.
        seeds (`tuple[int]`, *optional*, defaults to `(0, 1, 2)`): training seeds (model init and batch order).
        selection_seed (`int`, *optional*, defaults to `0`): seed of every selection and its proxy.
        num_samples (`int`, *optional*, defaults to `50000`): MNIST-1D rows generated (80% train, 20% test).
        protocol (`Protocol`, *optional*): training settings (100 epochs on a subset, 30 on the full data).
        proxy (`dict`, *optional*): proxy settings passed to `hf_coreset.select` (Adam, lr 1e-2, batch 128).
        method_options (`dict`, *optional*): method name -> options passed to `select` (default: none).
        workers (`int`, *optional*, defaults to `2`): training processes, one torch thread each; 1 trains
            in this process with torch's default threads.
        cache_dir (`str`, *optional*, defaults to `"benchmarks/cache"`): data, signal and selection cache.
        results (`str`, *optional*, defaults to `"benchmarks/results/quality_cells.jsonl"`): the cells file.
        threads (`int`, *optional*): torch threads of this process (proxy, selections; training too when
            `workers=1`); torch's default if not given. On a loaded machine 1 is much faster than 2.
        keep_signals (`bool`, *optional*, defaults to `False`): keep the proxy's signal cache once every
            selection is made (it takes about 100 MB per feature checkpoint at 40k rows).
        redo (`tuple[str]`, *optional*): methods whose selections and training cells are made again at
            this revision even though stored ones exist ("full data" for the reference); the new
            records supersede the old ones in the report, which stay in the cells file as history.
    """

    methods: tuple[str, ...] | None = None
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    selection_seed: int = 0
    num_samples: int = 50000
    protocol: Protocol = field(default_factory=Protocol)
    proxy: dict = field(default_factory=lambda: dict(PROXY))
    method_options: dict = field(default_factory=dict)
    workers: int = 2
    cache_dir: str = "benchmarks/cache"
    results: str = "benchmarks/results/quality_cells.jsonl"
    keep_signals: bool = False
    threads: int | None = None
    redo: tuple[str, ...] = ()

    def __post_init__(self):
        for f in self.fractions:
            if not 0 < f < 1:
                raise ValueError(f"fractions must lie in (0, 1), got {f}; the full data is always included.")
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}; pass 1 or more.")

    @classmethod
    def quick(cls, **overrides) -> "QualityConfig":
        """A smoke run: 10,000 rows, fractions 5% and 10%, seed 0, results under benchmarks/runs/quick/."""
        base = dict(num_samples=10000, fractions=(0.05, 0.10), seeds=(0,),
                    results="benchmarks/runs/quick/quality_cells.jsonl")
        return cls(**{**base, **overrides})

    def setup(self) -> dict:
        """What every cell of this grid shares; a cell is reused only under the same setup."""
        protocol = asdict(self.protocol)
        if protocol["budget"] == "epochs":  # cells recorded before the equal-step protocol existed carry no budget
            del protocol["budget"]
        return {**self.selection_setup(), "protocol": protocol}

    def selection_setup(self) -> dict:
        """What a selection depends on: both training protocols train on the same selections."""
        return {"dataset": "mnist1d", "num_samples": self.num_samples, "proxy": self.proxy,
                "selection_seed": self.selection_seed}


class Cells:
    """The append-only JSON-lines record of finished cells."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records = []
        if self.path.is_file():
            with self.path.open() as f:
                self.records = [json.loads(line) for line in f if line.strip()]

    @staticmethod
    def key(rec: dict) -> str:
        # "selection": a training cell is keyed by the hash of the rows it trained on (before the hash, the
        # selection's fingerprint), so a re-made selection never reuses the accuracy of the one it replaced
        fields = ("kind", "method", "version", "options", "fraction", "seed", "setup", "selection")
        return json.dumps({k: rec.get(k) for k in fields}, sort_keys=True)

    def find(self, **fields) -> dict | None:
        key = self.key(fields)
        return next((r for r in reversed(self.records) if self.key(r) == key), None)

    def add(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:  # one line per write: a killed run loses at most the cell in flight
            f.write(json.dumps(record, sort_keys=True) + "\n")
        self.records.append(record)


# ---------------------------------------------------------------- training cells (run in workers)

_DATA: dict = {}


def init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _data(num_samples: int, cache_dir: str):
    if num_samples not in _DATA:
        from hf_coreset.data import load_mnist1d
        from hf_coreset.evaluation import arrays

        ds = load_mnist1d(num_samples=num_samples, cache_dir=Path(cache_dir) / "data")
        _DATA[num_samples] = (arrays(ds["train"]), arrays(ds["test"]))
    return _DATA[num_samples]


def train_cell(task: dict) -> dict:
    """Train a ConvNet on the rows `task["indices"]` (None = all) and return test predictions.

    Args:
        task (`dict`): num_samples, cache_dir, seed, indices, weights, protocol (a dict of `Protocol`).

    Returns:
        `dict` with "predictions" (test-set class ids), "references" and "train_s".
    """
    import torch

    from hf_coreset.evaluation import predict, train_convnet

    (x, y), (xt, yt) = _data(task["num_samples"], task["cache_dir"])
    protocol = Protocol(**task["protocol"])
    steps = protocol.steps(None if task["indices"] is None else len(task["indices"]), len(y))
    if task["indices"] is not None:
        idx = torch.tensor(np.asarray(task["indices"], dtype=np.int64))  # a copy: loaded indices are read-only
        x, y = x[idx], y[idx]
    t0 = time.perf_counter()
    model = train_convnet(x, y, steps=steps, seed=task["seed"], lr=protocol.lr, batch_size=protocol.batch_size,
                          weights=task["weights"])
    train_s = time.perf_counter() - t0
    return {"predictions": predict(model, xt), "references": yt.numpy(), "train_s": train_s}


# ---------------------------------------------------------------- the grid


def selection_dir(cfg: QualityConfig, method: str, version: int, fraction: float) -> Path:
    from hf_coreset.fingerprint import hash_parts

    tag = hash_parts(cfg.selection_setup(), cfg.method_options.get(method, {}))[:10]
    return Path(cfg.cache_dir) / "selections" / f"{method}-v{version}-f{fraction:g}-{tag}"


def rows_hash(sel) -> str:
    """Hash of the kept rows and their weights. The fingerprint names a selection's inputs; the same
    inputs on another CPU can keep other rows (the proxy's float arithmetic differs), so a comparison
    of two grids checks this too."""
    import xxhash

    h = xxhash.xxh64(np.asarray(sel.indices, dtype=np.int64).tobytes())
    if sel.weights is not None:
        h.update(np.asarray(sel.weights, dtype=np.float64).tobytes())
    return h.hexdigest()


def same_rows(a: dict, b: dict) -> bool | None:
    """Whether two selection records kept the same rows: by their rows hash when both have one, else by
    their coverage statistics (a function of the rows; agreeing to 1e-9 across machines); None if unknown."""
    if a.get("rows") and b.get("rows"):
        return a["rows"] == b["rows"]
    ca, cb = a.get("coverage"), b.get("coverage")
    if not (ca and cb):
        return None
    return all(np.allclose(ca[k], cb[k], rtol=1e-9, atol=0) for k in ca if k in cb)


def _coverage(train, indices: np.ndarray) -> dict:
    from hf_coreset import metrics

    x = np.asarray(train.with_format("numpy")["x"], dtype=np.float64)
    selected = np.zeros(len(x), dtype=bool)
    selected[indices] = True
    return metrics.load("coreset_coverage").compute(features=x, labels=train["label"], selected=selected)


def run_quality(cfg: QualityConfig, *, log: Callable[[str], None] = logger.info, command: str | None = None) -> Cells:
    """Run (or resume) the quality grid of `cfg`; return the cells file's records.

    The proxy and the selections come first (one process), then training cells ordered so
    the most informative finish first: every method at seed 0 over all fractions (with the full
    data and random), then seed 1, then seed 2.

    Example:
        ```python
        >>> from benchmarks.quality import QualityConfig, run_quality
        >>> cells = run_quality(QualityConfig.quick(methods=("random", "el2n")))
        ```
    """
    import hf_coreset
    from hf_coreset import methods as registry
    from hf_coreset.data import load_mnist1d
    from hf_coreset.data.mnist1d import make_convnet
    from hf_coreset.api import check_dataset
    from hf_coreset.metrics import load as load_metric
    from hf_coreset.proxy import ProxyConfig, run_proxy

    import torch

    command = command or provenance.command()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    names = tuple(cfg.methods) if cfg.methods else tuple(registry.available())
    specs = {m: registry.get(m) for m in names}
    cells = Cells(cfg.results)
    setup = cfg.setup()
    rev, mach = git_revision(), machine()
    data = load_mnist1d(num_samples=cfg.num_samples, cache_dir=Path(cfg.cache_dir) / "data")
    train = data["train"]
    stamp = {"git": rev, "command": command}

    # 1. One proxy for every method. It trains epoch by epoch through the signal cache (the cached
    #    state resumes the same trajectory), so each epoch's training and signal pass are timed apart;
    #    a method's proxy cost is then the training up to its last epoch plus the passes it reads.
    needs = {m: specs[m].needs(specs[m].check_options(cfg.method_options.get(m, {}))) for m in names}
    union: dict[int, frozenset] = {}
    for nd in needs.values():
        for e, fs in nd.items():
            union[e] = union.get(e, frozenset()) | frozenset(fs)
    signal_dir = Path(cfg.cache_dir) / "proxy"

    def sel_key(m, f):
        return dict(kind="selection", method=m, version=specs[m].version, options=cfg.method_options.get(m, {}),
                    fraction=f, seed=None, setup=setup)

    # A selection saved under the same selection setup is reused, whichever training protocol made it.
    pending = [(m, f) for m in names for f in cfg.fractions
               if m in cfg.redo or not (selection_dir(cfg, m, specs[m].version, f) / "selection.json").is_file()]
    proxy_needed = any(needs[m] for m, _ in pending)
    # keep_state: each call resumes from the last epoch's cached state (the cache drops it otherwise,
    # and every epoch would train from scratch again, its recorded cost cumulative).
    proxy_config = ProxyConfig.coerce({**cfg.proxy, "keep_state": True})
    if proxy_needed:
        labels, num_classes = check_dataset(train, "label")
        for e in sorted(union):
            key = dict(kind="proxy", method=None, version=None, options=sorted(union[e]), fraction=None, seed=e,
                       setup=setup)
            _, timings = run_proxy(make_convnet(cfg.selection_seed), train, labels, num_classes, {e: union[e]},
                                   config=proxy_config, seed=cfg.selection_seed,
                                   label_column="label", cache_dir=signal_dir, progress=False)
            # recorded whenever it ran (not served from the cache), so new selections carry this run's cost
            if timings["signals"] > 0:
                cells.add({**key, "timings": {k: round(v, 3) for k, v in timings.items()}, "date": now(),
                           "machine": machine(), **stamp})
                log(f"proxy epoch {e}: training {timings['proxy_training']:.1f} s, signals "
                    f"({', '.join(sorted(union[e]))}) {timings['signals']:.1f} s")
    @functools.cache
    def hard():
        """(epoch, rows the proxy misclassifies there): its last default-length epoch, what "hard" keeps.
        Asked for when a selection record is written, saved selections too (the proxy trains again if
        its signal cache is gone)."""
        if not union:
            return None
        epoch = max([e for e in union if e <= HARD_EPOCH] or union)
        signals, _ = run_proxy(make_convnet(cfg.selection_seed), train, *check_dataset(train, "label"),
                               {epoch: frozenset({"correct"})}, config=proxy_config, seed=cfg.selection_seed,
                               label_column="label", cache_dir=signal_dir, progress=False)
        return epoch, ~signals.at(epoch, "correct").correct
    proxy_t = {e: rec["timings"] for e in union
               if (rec := cells.find(kind="proxy", method=None, version=None, options=sorted(union[e]), fraction=None,
                                     seed=e, setup=setup))}

    selections, rows_of = {}, {}  # the saved selection of each (method, fraction), and its kept-rows hash
    for m in names:
        options = cfg.method_options.get(m, {})
        for f in cfg.fractions:
            key = sel_key(m, f)
            folder = selection_dir(cfg, m, specs[m].version, f)
            rec = cells.find(**key)
            reused = m not in cfg.redo and (folder / "selection.json").is_file()
            if reused:
                sel = hf_coreset.CoresetSelection.load(folder)
            else:
                t0 = time.perf_counter()
                sel = hf_coreset.select(train, m, fraction=f, model=make_convnet(cfg.selection_seed),
                                        seed=cfg.selection_seed, proxy=cfg.proxy, cache_dir=signal_dir, progress=False,
                                        **options)
                wall = time.perf_counter() - t0
                if folder.exists():
                    shutil.rmtree(folder)
                sel.save(folder)
            selections[m, f] = sel
            rows_of[m, f] = rows = rows_hash(sel)
            # A record per kept-rows hash: the same inputs (fingerprint) can keep other rows on another CPU.
            if rec is not None and rec.get("rows") == rows and m not in cfg.redo:
                continue
            last = max(needs[m] or [0])
            if not reused:
                timings = {"proxy_training": sum(t["proxy_training"] for e, t in proxy_t.items() if e <= last),
                           "signals": sum(proxy_t[e]["signals"] for e in needs[m] if e in proxy_t),
                           "scoring": sel.timings["scoring"]}
                timings = {k: round(v, 3) for k, v in timings.items()}
                log(f"selected {m} at {f:.0%}: {len(sel)} rows; " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
            else:  # saved by an earlier run or the other protocol's grid: the cost of the same inputs, if recorded
                timings = rec["timings"] if rec is not None and rec["fingerprint"] == sel.fingerprint else None
            cells.add({**key, "kept": len(sel), "proxy_epochs": last, "fingerprint": sel.fingerprint, "rows": rows,
                       **({"auto_method": sel.config["auto_method"]} if "auto_method" in sel.config else {}),
                       "timings": timings, **({"reused": str(folder)} if reused else {"select_call_s": round(wall, 3)}),
                       "coverage": _coverage(train, sel.indices),
                       "proxy_wrong": None if (h := hard()) is None else {"epoch": h[0],
                                                                          "share": float(h[1][sel.indices].mean())},
                       "date": now(), "machine": machine(), **stamp})
    if not cfg.keep_signals and signal_dir.exists():
        shutil.rmtree(signal_dir)

    # 2. Training cells: seed-major, so a cut-off grid still has every method at seed 0.
    todo = []
    for seed in cfg.seeds:
        for m in (FULL,) + names:
            for f in (1.0,) if m == FULL else cfg.fractions:
                version = 0 if m == FULL else specs[m].version
                options = {} if m == FULL else cfg.method_options.get(m, {})
                sel = None if m == FULL else selections[m, f]
                key = dict(kind="train", method=m, version=version, options=options, fraction=f, seed=seed, setup=setup,
                           selection=None if sel is None else rows_of[m, f])
                if m in cfg.redo or cells.find(**key) is None:
                    todo.append((key, {"num_samples": cfg.num_samples, "cache_dir": str(cfg.cache_dir), "seed": seed,
                                       "indices": None if sel is None else sel.indices,
                                       "weights": None if sel is None else sel.weights,
                                       "protocol": asdict(cfg.protocol)}))
    log(f"{len(todo)} training cells to run with {cfg.workers} worker(s)")
    if not todo:
        return cells
    accuracy = load_metric("accuracy")
    t_start = time.perf_counter()
    # relative training cost, for the time estimate
    work = [1.0 if k["method"] == FULL or cfg.protocol.budget == "steps"
            else k["fraction"] * cfg.protocol.epochs / cfg.protocol.full_data_epochs for k, _ in todo]
    done_work, done = 0.0, 0

    def finish(i, out):
        nonlocal done_work, done
        key = todo[i][0]
        acc = accuracy.compute(predictions=out["predictions"], references=out["references"])["accuracy"]
        cells.add({**key, "accuracy": acc, "train_s": round(out["train_s"], 3), "workers": cfg.workers,
                   "date": now(), "machine": mach, **stamp})
        done_work += work[i]
        done += 1
        elapsed = time.perf_counter() - t_start
        eta = elapsed / done_work * (sum(work) - done_work)
        log(f"[{done}/{len(todo)}] {key['method']} {key['fraction']:.0%} seed {key['seed']}: {100 * acc:.2f}% "
            f"({out['train_s']:.0f} s train; elapsed {elapsed / 60:.1f} min, about {eta / 60:.0f} min left)")

    if cfg.workers == 1:
        for i, (_, task) in enumerate(todo):
            finish(i, train_cell(task))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(cfg.workers, initializer=init_worker) as pool:
            for i, out in pool.imap(_indexed_train_cell, list(enumerate(t for _, t in todo))):
                finish(i, out)
    return cells


def _indexed_train_cell(item):
    i, task = item
    return i, train_cell(task)


# ---------------------------------------------------------------- the report


def _stats(values: list[float]) -> tuple[float, float, int]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else float("nan"), len(a)


def summarize(records: list[dict], setup: dict | None = None) -> dict:
    """Group train and selection records (of one setup: the most common if not given) by method and fraction."""
    if setup is None:
        setups = [json.dumps(r["setup"], sort_keys=True) for r in records if r["kind"] == "train"]
        if not setups:
            raise ValueError("The cells file has no training record yet; run the grid first.")
        setup = json.loads(max(set(setups), key=setups.count))
    same = [r for r in records if json.dumps(r["setup"], sort_keys=True) == json.dumps(setup, sort_keys=True)]
    # A later record of the same cell (a new method version, or a --redo) supersedes the earlier one.
    latest = {}
    for r in same:
        latest[(r["kind"], r["method"], r["fraction"], r["seed"], None if r["kind"] != "proxy" else str(r["options"]))] = r
    sel = {(r["method"], r["fraction"]): r for r in latest.values() if r["kind"] == "selection"}
    # only training on the latest selection's rows counts (an earlier selection's cells are history); records
    # from before the rows hash name the selection they trained by its fingerprint
    same = [r for r in latest.values() if r["kind"] != "train" or r["method"] == FULL
            or ((s := sel.get((r["method"], r["fraction"]))) is not None
                and r.get("selection") == s.get("rows", s["fingerprint"]))]
    acc = {}
    for r in same:
        if r["kind"] == "train":
            acc.setdefault(r["method"], {}).setdefault(r["fraction"], {})[r["seed"]] = r["accuracy"]
    return {"setup": setup, "accuracy": acc, "selection": sel, "records": same}


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.1f}"


def quality_report(results: str | os.PathLike, out_md: str | os.PathLike, out_png: str | os.PathLike | None = None,
                   *, command: str | None = None) -> str:
    """Write the quality fragment (markdown, and the plot as PNG if matplotlib is installed).

    Every number comes from the cells file `results`. Returns the markdown.
    """
    s = summarize(Cells(results).records)
    setup, acc, sel, recs = s["setup"], s["accuracy"], s["selection"], s["records"]
    proto = setup["protocol"]
    fractions = sorted({f for m, fs in acc.items() if m != FULL for f in fs})
    methods_all = [m for m in acc if m != FULL]
    rand = acc.get("random", {})
    full = list(acc.get(FULL, {}).get(1.0, {}).values())
    full_mean = _stats(full)[0] if full else float("nan")

    def mean_over_common(m, f):
        """Mean accuracy of m at f over the seeds random also has (so the difference is paired)."""
        common = sorted(set(acc[m].get(f, {})) & set(rand.get(f, {})))
        if not common:
            return None
        return (np.mean([acc[m][f][k] for k in common]), np.mean([rand[f][k] for k in common]), len(common))

    # Order: by mean gap closed over fractions, best first; random last among methods.
    def rank(m):
        vals = [d[0] - d[1] for f in fractions if (d := mean_over_common(m, f))]
        return -np.mean(vals) if vals else 0.0

    methods = sorted((m for m in methods_all if m != "random"), key=rank) + (["random"] if "random" in acc else [])
    train_recs = [r for r in recs if r["kind"] == "train"]
    dates = sorted(r["date"] for r in recs)
    revs = sorted({r["git"] for r in recs})
    commands = sorted({r["command"] for r in recs})
    mach = train_recs[-1]["machine"] if train_recs else {}
    workers = sorted({r.get("workers") for r in train_recs})
    seeds = sorted({r["seed"] for r in train_recs})
    loads = [r["machine"]["loadavg_1m"] for r in recs]

    equal_steps = proto.get("budget", "epochs") == "steps"
    train_rows = int(0.8 * setup["num_samples"])
    full_steps = proto["full_data_epochs"] * -(-train_rows // proto["batch_size"])
    if equal_steps:
        lines = ["## Quality under equal steps: the subset trains as long as the full data", ""]
        budget = (f"for as many steps as the full-data reference ({full_steps:,} steps = {proto['full_data_epochs']} "
                  f"epochs over {train_rows:,} rows, so a 1% subset sees about {100 * proto['full_data_epochs']:,} "
                  f"epochs), the cosine schedule spanning those steps (equal-step protocol, as CCS, D2 and ELFS). The "
                  f"selections come from the same selection setup as the equal-epoch section's (one saved selection per "
                  f"method and fraction serves both; the comparison section checks their fingerprints); only training "
                  f"differs")
    else:
        lines = ["## Quality: is it better than random, and what does it cost?", ""]
        budget = f"{proto['epochs']} epochs over the subset (equal-epoch protocol, as DeepCore)"
    lines += [f"Protocol: MNIST-1D from the built-in loader ({setup['num_samples']:,} generated rows, 80% train / "
              f"20% test), the reference ConvNet (`make_convnet(seed)`), trained on the kept rows with Adam lr "
              f"{proto['lr']:g} and cosine decay to 0, batch {proto['batch_size']}, {budget}; the full-data reference "
              f"trains {proto['full_data_epochs']} epochs. "
              f"The figure is the final test accuracy (never the best over epochs), mean +- std over training seeds "
              f"{', '.join(map(str, seeds))}. Every selection uses selection seed {setup['selection_seed']} and one "
              f"shared proxy: the same ConvNet (seed {setup['selection_seed']}) trained on the full train split "
              f"with constant-lr {setup['proxy']['optimizer']} at {setup['proxy']['lr']:g}, batch "
              f"{setup['proxy']['batch_size']}; each method reads its signals at the epochs it asks for (see the cost "
              f"table{' of the equal-epoch section' if equal_steps else ''}). Fractions are "
              f"per class (proportional budgets). Method defaults were not tuned on the test split.", ""]
    lines += [f"Reproduce: `{'`, `'.join(commands)}` (resumable: finished cells in "
              f"`{Path(results).as_posix()}` are reused). Cells dated {dates[0]} to {dates[-1]}, git "
              f"revision(s) {', '.join(revs)}; machine: {mach.get('cpu_count')} CPU cores, torch {mach.get('torch')}, "
              f"Python {mach.get('python')}, training workers {', '.join(map(str, workers))} (one thread each when "
              f"more than 1); 1-minute load average during the run {min(loads):.1f} to {max(loads):.1f} (the machine "
              f"was shared, so times are rough).", ""]

    head = "| method | " + " | ".join(f"{f:.0%}" for f in fractions) + " |"
    rule = "|---|" + "---:|" * len(fractions)
    lines += ["### Test accuracy (%)", "",
              "mean +- std over seeds, then the difference to random (percentage points, paired by seed). "
              "**below random** marks a mean under random's.", "", head, rule]
    losses = []
    for m in methods:
        row = [m]
        for f in fractions:
            v = list(acc[m].get(f, {}).values())
            if not v:
                row.append("-")
                continue
            mean, std, n = _stats(v)
            cell = f"{_fmt_pct(mean)}" + (f" +- {100 * std:.1f}" if n > 1 else "")
            d = mean_over_common(m, f)
            if m != "random" and d:
                diff = 100 * (d[0] - d[1])
                cell += f" ({diff:+.1f})"
                if diff < 0:
                    cell += " **below random**"
                    losses.append((m, f, diff))
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
    if full:
        mean, std, n = _stats(full)
        lines.append(f"| {FULL} (all rows, {proto['full_data_epochs']} epochs) | "
                     + " | ".join([f"{_fmt_pct(mean)}" + (f" +- {100 * std:.1f}" if n > 1 else "")] * len(fractions))
                     + " |")
    lines.append("")
    lines += _best_per_fraction(acc, rand, fractions, full_mean)

    if full:
        lines += ["### Share of the random-to-full gap closed", "",
                  "(method - random) / (full - random), from the mean accuracies; 1 = as good as training on all rows, "
                  "0 = random, negative = worse than random.", "", head, rule]
        for m in methods:
            if m == "random":
                continue
            row = [m]
            for f in fractions:
                d = mean_over_common(m, f)
                gap = full_mean - d[1] if d else 0
                row.append(f"{(d[0] - d[1]) / gap:+.2f}" if d and gap > 0 else "-")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")

    if equal_steps:  # the selections, their cost and coverage are the equal-epoch section's
        lines += _plot_lines(acc, methods, fractions, full, out_png, "MNIST-1D, equal steps: coreset methods vs random")
        md = "\n".join(lines)
        Path(out_md).parent.mkdir(parents=True, exist_ok=True)
        Path(out_md).write_text(md)
        return md

    lines += ["### Selection cost (seconds, wall time)", "",
              "One proxy trained once for all methods, epoch by epoch, timing each epoch's training and signal "
              "pass; a method's proxy training is the training up to the last epoch it needs, its signals the "
              "passes at the epochs it reads (each pass collected every field any method wanted at that epoch, so "
              "this slightly over-counts methods that read fewer fields). Its fractions share that cost; scoring is "
              "per fraction. Random needs no proxy.", "",
              "| method | proxy epochs | proxy training | signals | " + " | ".join(f"scoring {f:.0%}" for f in fractions)
              + " |", "|---|---:|---:|---:|" + "---:|" * len(fractions)]
    for m in methods:
        recs_m = [sel[m, f] for f in fractions if (m, f) in sel and sel[m, f]["timings"]]
        if not recs_m:
            continue
        proxy_s = max(r["timings"].get("proxy_training", 0.0) for r in recs_m)
        sig_s = max(r["timings"].get("signals", 0.0) for r in recs_m)
        score = [f"{sel[m, f]['timings']['scoring']:.2f}" if (m, f) in sel and sel[m, f]["timings"] else "-"
                 for f in fractions]
        epochs = max(r.get("proxy_epochs", 0) for r in recs_m)
        lines.append(f"| {m} | {epochs} | {proxy_s:.1f} | {sig_s:.1f} | " + " | ".join(score) + " |")
    lines.append("")

    lines += ["### Coverage of the full set (raw 40-value inputs)", "",
              "From the shipped `coreset_coverage` metric: mean distance of every train row to its nearest kept row "
              "of the same class (lower = better covered), then the Frechet distance between Gaussian fits of the kept "
              "rows and all rows (lower = closer distribution).", "", head, rule]
    lines += _selection_rows(methods, fractions, sel, "coverage",
                             lambda c: f"{c['mean_nn_dist']:.2f} / {c['frechet']:.2f}")

    wrong_epochs = {sel[k]["proxy_wrong"]["epoch"] for k in sel if sel[k].get("proxy_wrong")}
    if wrong_epochs:
        lines += ["### How hard the kept rows are", "",
                  f"Share of the kept rows (%) that the shared proxy misclassifies at epoch "
                  f"{', '.join(map(str, sorted(wrong_epochs)))} (random's is close to the rate over the whole train split).",
                  "", head, rule]
        lines += _selection_rows(methods, fractions, sel, "proxy_wrong", lambda w: f"{100 * w['share']:.1f}")

    if losses:
        lines += ["### Where a method loses to random", "",
                  "; ".join(f"{m} at {f:.0%} ({d:+.1f})" for m, f, d in sorted(losses, key=lambda t: (t[1], t[2])))
                  + ".", ""]
        # A measured explanation: does losing go with covering the class worse than random does?
        pairs = []
        for m, f, d in losses:
            c, r = sel.get((m, f), {}).get("coverage"), sel.get(("random", f), {}).get("coverage")
            if c and r:
                pairs.append(c["mean_nn_dist"] / r["mean_nn_dist"])
        if pairs:
            lines += [f"In {sum(p > 1 for p in pairs)} of these {len(pairs)} cells the kept rows cover their classes "
                      f"worse than random's do (mean nearest-kept distance {min(pairs):.2f}x to {max(pairs):.2f}x "
                      f"random's).", ""]
        for label, fn in (("the mean nearest-kept distance", lambda c: c["coverage"]["mean_nn_dist"]),
                          ("the Frechet distance of the kept rows", lambda c: c["coverage"]["frechet"]),
                          ("the share of kept rows the proxy misclassifies",
                           lambda c: c["proxy_wrong"]["share"] if c.get("proxy_wrong") else None)):
            corr = _correlation(acc, sel, rand, fractions, fn)
            if corr:
                lines += [f"Spearman correlation, over the methods, between the accuracy difference to random and "
                          f"{label}: " + ", ".join(f"{rho:+.2f} at {f:.0%} (n={n})" for f, rho, n in corr)
                          + ".", ""]

    lines += _plot_lines(acc, methods, fractions, full, out_png, "MNIST-1D: coreset methods vs random and full data")
    md = "\n".join(lines)
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text(md)
    return md


def protocol_comparison(epochs_results: str | os.PathLike, steps_results: str | os.PathLike, out_md: str | os.PathLike,
                        out_png: str | os.PathLike | None = None) -> str:
    """Write the fragment that sets the equal-epoch and equal-step grids side by side (same selections).

    Per method and fraction: the paired margin over random under each protocol; per fraction: the best
    method under each and where `auto` and the seed methods stand; whether the two grids trained the
    same selections (fingerprints); and whether the methods that keep hard rows gain most from more steps.
    """
    from scipy.stats import spearmanr

    grids = {"epochs": summarize(Cells(epochs_results).records), "steps": summarize(Cells(steps_results).records)}
    acc = {k: g["accuracy"] for k, g in grids.items()}
    fractions = sorted({f for a in acc.values() for m, fs in a.items() if m != FULL for f in fs})
    methods = sorted({m for a in acc.values() for m in a if m not in (FULL, "random")}
                     & set(acc["epochs"]) & set(acc["steps"]))

    def margin(k, m, f):
        a, r = acc[k].get(m, {}).get(f, {}), acc[k].get("random", {}).get(f, {})
        seeds = sorted(set(a) & set(r))
        return [100 * (a[s] - r[s]) for s in seeds] if seeds else None

    sels = {k: {key: r for key, r in g["selection"].items()} for k, g in grids.items()}
    both = [key for key in sels["epochs"] if key in sels["steps"]]
    same = [key for key in both if sels["epochs"][key]["fingerprint"] == sels["steps"][key]["fingerprint"]]
    rows = {key: same_rows(sels["epochs"][key], sels["steps"][key]) for key in same}
    # the mechanism reads the equal-step grid's subsets; the hard share comes from the grid whose proxy ran
    made = {key: sels["epochs"][key] if not r.get("proxy_wrong") and sels["epochs"].get(key, {}).get("proxy_wrong")
            and same_rows(sels["epochs"][key], r) else r for key, r in sels["steps"].items()}
    dates = sorted(r["date"] for g in grids.values() for r in g["records"])
    revs = sorted({r["git"] for g in grids.values() for r in g["records"]})
    steps_proto = grids["steps"]["setup"]["protocol"]
    lines = ["## Equal epochs against equal steps, on selections of the same inputs", "",
             f"Built by `quality.protocol_comparison` from `{Path(epochs_results).as_posix()}` (equal epochs: "
             f"{grids['epochs']['setup']['protocol']['epochs']} epochs over the subset) and "
             f"`{Path(steps_results).as_posix()}` (equal steps: the full-data run's steps, "
             f"{steps_proto['full_data_epochs']} epochs over the train split); both sections above give their "
             f"commands. Cells dated {dates[0]} to {dates[-1]}, git revision(s) {', '.join(revs)}. "
             f"{len(same)} of {len(both)} (method, fraction) selections have the same fingerprint in both grids"
             + (" (the same inputs)" if len(same) == len(both) else
                f" (the same inputs); differing: {', '.join(f'{m} {f:.0%}' for m, f in both if (m, f) not in same)}")
             + f". Of those, {sum(v is True for v in rows.values())} kept the very same rows"
             + (", so the two protocols trained the same subsets." if all(v is True for v in rows.values()) else
                f" and {sum(v is False for v in rows.values())} kept other rows"
                + (f" ({', '.join(f'{m} {f:.0%}' for (m, f), v in rows.items() if v is False)})"
                   if any(v is False for v in rows.values()) else "")
                + ": the same inputs give other rows on another CPU, because the proxy's float arithmetic differs "
                  "there (random, which reads no proxy, keeps the same rows); those margins compare the protocols on "
                  "subsets made by the same rule from slightly different proxies."), ""]

    lines += ["### Margin over random under each protocol (points, paired by seed)", "",
              "E = equal epochs, S = equal steps; mean over training seeds. **bold** = below random.", "",
              "| method | " + " | ".join(f"{f:.0%} E | {f:.0%} S" for f in fractions) + " |",
              "|---|" + "---:|---:|" * len(fractions)]

    def cell(v):
        if v is None:
            return "-"
        text = f"{np.mean(v):+.1f}"
        return f"**{text}**" if np.mean(v) < 0 else text

    order = sorted(methods, key=lambda m: -np.mean([np.mean(v) for f in fractions for k in acc
                                                    if (v := margin(k, m, f))] or [0]))
    for m in order:
        lines.append("| " + " | ".join([m] + [cell(margin(k, m, f)) for f in fractions for k in ("epochs", "steps")])
                     + " |")
    lines.append("| random's own accuracy (%) | " + " | ".join(
        f"{100 * np.mean(list(acc['epochs']['random'][f].values())):.1f} | "
        f"{100 * np.mean(list(acc['steps']['random'][f].values())):.1f}"
        if acc["epochs"].get("random", {}).get(f) and acc["steps"].get("random", {}).get(f) else "- | -"
        for f in fractions) + " |")
    lines.append("")

    lines += ["### Best method per fraction under each protocol", "",
              "| fraction | protocol | best | its margin | auto picks | auto's margin | rank of auto | "
              "seed methods' ranks (nfg, mrmc, mrmc-r, fdmat) |", "|---|---|---|---:|---|---:|---:|---|"]
    from hf_coreset.methods.auto import choice

    for f in fractions:
        for k, label in (("epochs", "equal epochs"), ("steps", "equal steps")):
            scored = {m: np.mean(v) for m in methods + ["random"] if (v := (margin(k, m, f) if m != "random" else [0.0]))}
            ranked = sorted(scored, key=lambda m: -scored[m])
            if not ranked:
                continue
            best = ranked[0]
            # what auto ran: recorded by version 3 (chosen on the data), else the fixed table's row
            picked = sels[k].get(("auto", f), {}).get("auto_method") or choice(f)[0]
            seed_ranks = ", ".join(str(ranked.index(m) + 1) if m in ranked else "-"
                                   for m in ("nfg", "mrmc", "mrmc-r", "fdmat"))
            auto = f"{scored['auto']:+.1f}" if "auto" in scored else "-"
            rank = f"{ranked.index('auto') + 1} of {len(ranked)}" if "auto" in ranked else "-"
            lines.append(f"| {f:.0%} | {label} | {best} | {scored[best]:+.1f} | {picked} | {auto} | {rank} | "
                         f"{seed_ranks} |")
    lines.append("")

    # Mechanism: do the methods that keep hard rows gain most from the extra epochs of equal steps?
    rows = []
    for f in fractions:
        xs, ys = [], []
        for m in methods:
            rec = sels["epochs"].get((m, f))
            me, ms = margin("epochs", m, f), margin("steps", m, f)
            if rec and rec.get("proxy_wrong") and me and ms:
                xs.append(rec["proxy_wrong"]["share"])
                ys.append(np.mean(ms) - np.mean(me))
        if len(xs) >= 4:
            rows.append((f, float(spearmanr(xs, ys).statistic), len(xs)))
    if rows:
        lines += ["Spearman correlation, over the methods, between the share of kept rows the proxy misclassifies "
                  "(how hard the subset is) and the change of margin from equal epochs to equal steps: "
                  + ", ".join(f"{rho:+.2f} at {f:.0%} (n={n})" for f, rho, n in rows) + ".", ""]
    if out_png is not None and _plot_protocols(margin, methods, fractions, out_png):
        lines += [f"![margin over random, equal epochs vs equal steps]({Path(out_png).name})", ""]
    lines += _seed_mechanism(margin, made, methods, fractions, out_png)
    md = "\n".join(lines)
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text(md)
    return md


SEED_METHODS = ("nfg", "mrmc", "mrmc-r", "fdmat")


def _seed_mechanism(margin, sel, methods, fractions, out_png) -> list[str]:
    """Which rows the seed methods keep, under the protocol their papers use (equal steps): how hard they
    are for the proxy, how well they cover their class, against random and kernel herding; and whether
    coverage or hardness predicts the margin over random across all methods."""
    from scipy.stats import spearmanr

    def nn(m, f):
        return sel[m, f]["coverage"]["mean_nn_dist"] if (m, f) in sel and sel[m, f].get("coverage") else None

    shown = [m for m in SEED_METHODS + ("kernel-herding", "random") if m == "random" or m in methods]
    lines = ["### Why the seed methods still lose under equal steps", "",
             "Per kept subset (the equal-step grid's selections): *hard* = share of kept rows the proxy "
             "misclassifies at its last default-length epoch (random keeps about the class's error rate); "
             "*spread* = mean distance from each train row to its nearest kept row of the same class, in raw-input "
             "space, as a ratio to random's (above 1 = the subset leaves parts of its class further from any kept "
             "row); *Frechet* = Frechet distance between the kept rows and the whole train split; S = margin over "
             "random under equal steps (points).", "",
             "| method | " + " | ".join(f"{f:.0%} hard | spread | Frechet | S" for f in fractions) + " |",
             "|---|" + "---:|---:|---:|---:|" * len(fractions)]
    for m in shown:
        row = [m]
        for f in fractions:
            rec, r = sel.get((m, f)), nn("random", f)
            hard = rec["proxy_wrong"]["share"] if rec and rec.get("proxy_wrong") else None
            spread = nn(m, f) / r if nn(m, f) and r else None
            frechet = rec["coverage"]["frechet"] if rec and rec.get("coverage") else None
            ms = [0.0] if m == "random" else margin("steps", m, f)
            row += [f"{100 * hard:.1f}%" if hard is not None else "-", f"{spread:.3f}" if spread else "-",
                    f"{frechet:.2f}" if frechet is not None else "-", f"{np.mean(ms):+.1f}" if ms else "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    corr = []
    for f in fractions:
        pts = [(nn(m, f), sel[m, f]["proxy_wrong"]["share"], np.mean(v)) for m in methods
               if nn(m, f) and sel[m, f].get("proxy_wrong") and (v := margin("steps", m, f))]
        if len(pts) >= 4:
            x_nn, x_hard, y = zip(*pts)
            corr.append((f, float(spearmanr(x_nn, y).statistic), float(spearmanr(x_hard, y).statistic), len(pts)))
    if corr:
        lines += ["Spearman correlation over all methods between the subset's spread (mean nearest-kept distance) and "
                  "its margin under equal steps, and between its hard share and that margin: "
                  + "; ".join(f"{f:.0%}: spread {a:+.2f}, hard {b:+.2f} (n={n})" for f, a, b, n in corr) + ".", ""]
    if out_png is not None and _plot_spread(margin, sel, methods, fractions, nn, Path(out_png).with_name(
            Path(out_png).stem + "_spread.png")):
        lines += [f"![margin under equal steps against the subset's spread]({Path(out_png).stem}_spread.png)", ""]
    return lines


def _pyplot():
    """matplotlib's pyplot on the Agg backend, or None (with a warning) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed (pip install hf-coreset[plots]); the plot is skipped.")
        return None
    return plt


def _plot_spread(margin, sel, methods, fractions, nn, out_png) -> bool:
    plt = _pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, len(fractions), figsize=(3.6 * len(fractions), 3.8), squeeze=False)
    for ax, f in zip(axes[0], fractions):
        r = nn("random", f)
        pts = [(m, nn(m, f) / r, np.mean(v)) for m in methods if r and nn(m, f) and (v := margin("steps", m, f))]
        ax.axvline(1, color="black", linewidth=0.6)
        _labelled_points(ax, pts, f, "spread: nearest-kept distance / random's")
    axes[0][0].set_ylabel("margin over random, equal steps (points)")
    fig.suptitle("Subsets that leave parts of their class uncovered lose (red: seed methods, green: auto)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return True


def _labelled_points(ax, pts, fraction, xlabel) -> None:
    """One panel: a labelled point per (method, x, y), seed methods red, auto green; the y = 0 line."""
    ax.axhline(0, color="black", linewidth=0.6)
    for m, x, y in pts:
        ax.scatter([x], [y], s=14, color="tab:red" if m in SEED_METHODS else ("tab:green" if m == "auto" else "tab:blue"))
        ax.annotate(m, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_title(f"{fraction:.0%} kept")
    ax.set_xlabel(xlabel)


def _plot_protocols(margin, methods, fractions, out_png) -> bool:
    plt = _pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, len(fractions), figsize=(3.6 * len(fractions), 3.8), squeeze=False)
    for ax, f in zip(axes[0], fractions):
        pts = [(m, np.mean(e), np.mean(s)) for m in methods
               if (e := margin("epochs", m, f)) and (s := margin("steps", m, f))]
        if not pts:
            continue
        lo = min(min(p[1], p[2]) for p in pts) - 1
        hi = max(max(p[1], p[2]) for p in pts) + 1
        ax.plot([lo, hi], [lo, hi], color="gray", linewidth=0.8, linestyle=":")
        ax.axvline(0, color="black", linewidth=0.6)
        _labelled_points(ax, pts, f, "margin, equal epochs (points)")
    axes[0][0].set_ylabel("margin, equal steps (points)")
    fig.suptitle("Margin over random on selections of the same inputs (red: seed methods, green: auto)", fontsize=9)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return True


def _plot_lines(acc, methods, fractions, full, out_png, title) -> list[str]:
    if out_png is not None and _plot(acc, methods, fractions, full, out_png, title):
        return [f"![test accuracy vs kept fraction]({Path(out_png).name})", ""]
    return []


def _selection_rows(methods, fractions, sel, field: str, fmt) -> list[str]:
    """Table rows (one per method, one cell per fraction) from a field of the selection cells; "-" where absent."""
    rows = []
    for m in methods:
        cells = [sel.get((m, f), {}).get(field) for f in fractions]
        rows.append("| " + " | ".join([m] + [fmt(c) if c else "-" for c in cells]) + " |")
    return rows + [""]


def _best_per_fraction(acc, rand, fractions, full_mean) -> list[str]:
    """Per fraction: the method with the best mean accuracy, and `auto`, each with its paired margin over
    random (mean +- std of the per-seed differences) and its distance to full data."""
    lines = ["### Best method per fraction, and `auto`", "",
             "Margin = accuracy minus random's with the same training seed, mean +- std over those seeds (points).",
             "", "| fraction | row | method | accuracy | margin over random | below full data by |", "|---|---|---|---:|---:|---:|"]
    for f in fractions:
        candidates = [m for m in acc if m not in (FULL, "random") and acc[m].get(f)]
        if not candidates or not rand.get(f):
            continue
        best = max(candidates, key=lambda m: np.mean(list(acc[m][f].values())))
        for label, m in (("best", best), ("auto", "auto")):
            if m not in acc or not acc[m].get(f):
                continue
            seeds = sorted(set(acc[m][f]) & set(rand[f]))
            diffs = [100 * (acc[m][f][k] - rand[f][k]) for k in seeds]
            mean, std, n = _stats(list(acc[m][f].values()))
            margin = f"{np.mean(diffs):+.1f} +- {np.std(diffs, ddof=1) if len(diffs) > 1 else 0.0:.1f}"
            lines.append(f"| {f:.0%} | {label} | {m} | {_fmt_pct(mean)} +- {100 * std:.1f} | {margin} | "
                         f"{100 * (full_mean - mean):.1f} |")
    lines.append("")
    return lines


def _correlation(acc, sel, rand, fractions, value):
    """Per fraction: Spearman rho between (method - random) accuracy and value(selection record)."""
    from scipy.stats import spearmanr

    out = []
    for f in fractions:
        if f not in rand:
            continue
        xs, ys = [], []
        for m in acc:
            rec = sel.get((m, f))
            v = value(rec) if rec else None
            if m in ("random", FULL) or v is None or f not in acc[m]:
                continue
            xs.append(v)
            ys.append(np.mean(list(acc[m][f].values())) - np.mean(list(rand[f].values())))
        if len(xs) >= 4:
            out.append((f, float(spearmanr(xs, ys).statistic), len(xs)))
    return out


def _plot(acc, methods, fractions, full, out_png, title) -> bool:
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(8, 5.5))
    cmap = plt.get_cmap("tab20")
    for i, m in enumerate(methods):
        fs = [f for f in fractions if acc[m].get(f)]
        if not fs:
            continue
        means = [100 * np.mean(list(acc[m][f].values())) for f in fs]
        stds = [100 * np.std(list(acc[m][f].values())) for f in fs]
        style = dict(color="black", linestyle="--", linewidth=2.2) if m == "random" else dict(color=cmap(i % 20))
        ax.errorbar([100 * f for f in fs], means, yerr=stds, marker="o", markersize=3.5, capsize=2, label=m, **style)
    if full:
        ax.axhline(100 * np.mean(full), color="gray", linestyle=":", linewidth=2, label="full data")
    ax.set_xscale("log")
    ax.set_xticks([100 * f for f in fractions], [f"{f:.0%}" for f in fractions])
    ax.set_xlabel("kept fraction of the training set (log scale)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, ncol=2, loc="lower right")
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return True


__all__ = ["QualityConfig", "run_quality", "quality_report", "protocol_comparison", "summarize", "train_cell", "Cells", "git_revision",
           "machine", "FULL", "PROXY"]
