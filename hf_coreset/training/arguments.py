"""`CoresetTrainingArguments`: `TrainingArguments` plus the coreset and CREST settings, each with its one
default and its help text; how `CoresetTrainer` takes `args=None` or a plain `TrainingArguments`."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from dataclasses import dataclass, field

from transformers import TrainingArguments

from .. import methods
from ..budget import check_bool, check_fraction
from .crest import CrestConfig

logger = logging.getLogger(__name__)

SCHEDULES = ("static", "crest", "random")
SIGNAL_SOURCES = ("minibatch", "eval")
CREST_PARAMS = ("all", "head")
# Under output_dir; Trainer.push_to_hub uploads output_dir but skips names starting with "_", so the selection's
# parquet files never land in the model repo (push_to_hub pushes them to coreset_selection_repo instead).
SELECTION_DIR = "_coreset_selection"
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
EVENTS_FILE = "coreset_events.json"
# The CrestConfig fields that are arguments (`crest_<name>`); the others are sizes in rows, derived from
# the arguments when CREST starts, and the moment estimates' smoothing constants.
CREST_SETTINGS = ("tau", "h", "b", "T2", "alpha", "drop_learned", "min_pool_fraction", "params")


@dataclass
class CoresetTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the coreset settings (fields prefixed `coreset_` and `crest_`).

    Coreset settings:
        coreset_method (`str`, *optional*): registered method for the static schedule (e.g. "el2n",
            "craig", "nfg"); see `hf-coreset methods`.
        coreset_method_options (`dict` or JSON `str`, *optional*): the method's options. An `epoch`
            or `epochs` option left unset defaults to `coreset_warmup_epochs`.
        coreset_fraction (`float`, *optional*, defaults to `0.1`): kept share of the rows (static), the
            share of a full epoch's rows trained per epoch (CREST), or drawn afresh each epoch (random).
        coreset_warmup_epochs (`int`, *optional*, defaults to `1`): epochs on the full data first.
        coreset_schedule (`str`, *optional*, defaults to `"static"`): "static", "crest" or "random".
        coreset_seed (`int`, *optional*): seeds the selection and the samplers; defaults to `seed`.
        coreset_cache_dir (`str`, *optional*): also keep each selection under
            `<dir>/selections/<fingerprint>/` for reuse with `coreset_selection=`.
        coreset_signals (`str`, *optional*, defaults to `"minibatch"`): where cheap signals come from.
        coreset_label_column, coreset_head, coreset_per_class, coreset_selection_repo: see help.
        crest_tau, crest_h, crest_b, crest_T2, crest_alpha, crest_random_subset_fraction,
        crest_minibatch_size, crest_drop_learned, crest_min_pool_fraction, crest_params: CREST (see
            `hf_coreset.training.crest`). Their defaults and help live here only; :meth:`crest_config`
            builds the `CrestConfig` that CREST reads.

    `CoresetTrainer` also takes ``args=None`` (these defaults, ``output_dir="<model name>-coreset"``) or a
    plain `TrainingArguments` (its settings, plus these defaults); see :func:`coreset_arguments`. No
    default names a coreset method: set `coreset_method`, `coreset_schedule="crest"`, or give the trainer
    a selection.

    Example:
        ```python
        >>> args = CoresetTrainingArguments(output_dir="out", coreset_method="el2n", coreset_fraction=0.3,
        ...                                 coreset_warmup_epochs=2, num_train_epochs=10)
        ```
    """

    coreset_method: str | None = field(default=None, metadata={
        "help": "Registered coreset method for the static schedule (e.g. 'el2n', 'kcenter', 'craig', 'nfg'); "
                "list them with `hf-coreset methods`. Not used by the 'crest' schedule."})
    coreset_method_options: dict | str | None = field(default=None, metadata={
        "help": "Options of the method, as a dict or a JSON string (e.g. '{\"epoch\": 2}'). An 'epoch' or 'epochs' "
                "option left unset defaults to coreset_warmup_epochs."})
    coreset_fraction: float = field(default=0.1, metadata={
        "help": "Kept share of the training rows, in (0, 1]: 0.1 keeps 10%%. For 'crest', the share of a full "
                "epoch's rows trained in each epoch after the warm-up; for 'random', the share drawn each epoch."})
    coreset_warmup_epochs: int = field(default=1, metadata={
        "help": "Epochs trained on the full data before the coreset takes over; they are the proxy that scores "
                "the rows. 0 is allowed for 'crest' and 'random', or with a given selection."})
    coreset_schedule: str = field(default="static", metadata={
        "help": "'static': select once after the warm-up, then train on the kept rows. 'crest': mini-batch coresets "
                "re-selected during training (Yang et al., ICML 2023). 'random': a fresh uniform draw of "
                "coreset_fraction of the rows every epoch after the warm-up (CREST's random baseline; no selection)."})
    coreset_seed: int | None = field(default=None, metadata={
        "help": "Seed of the selection and of the data order; defaults to `seed`."})
    coreset_cache_dir: str | None = field(default=None, metadata={
        "help": "Folder where each selection is also saved, as <dir>/selections/<fingerprint>/, to train later runs "
                "on it with CoresetTrainer(coreset_selection=...). The selection is always saved in "
                "<output_dir>/_coreset_selection."})
    coreset_signals: str = field(default="minibatch", metadata={
        "help": "'minibatch': loss, correctness and logits of warm-up epoch e come from its training mini-batches "
                "(no extra pass); features and epoch 0 need one eval pass. 'eval': one eval-mode pass after each "
                "needed epoch, as hf_coreset.select's proxy does."})
    coreset_label_column: str | None = field(default=None, metadata={
        "help": "Integer class-id column of the training set; defaults to 'label', else 'labels'."})
    coreset_head: str | None = field(default=None, metadata={
        "help": "Name of the model's final nn.Linear (for feature signals and crest_params='head'); found "
                "automatically if unset (the layer whose output is the logits). The selection records the one used "
                "in config['head']."})
    coreset_per_class: bool = field(default=True, metadata={
        "help": "Proportional per-class budgets (the library's rounding rule); False lets the method pick globally."})
    coreset_selection_repo: str | None = field(default=None, metadata={
        "help": "Hub dataset repo, 'user/name' (e.g. 'me/mnist1d-el2n-10pct'), that CoresetTrainer.push_to_hub pushes "
                "the selection to (never into the model repo); the model card links it."})
    crest_tau: float = field(default=0.05, metadata={
        "help": "CREST: relative error of the quadratic loss model on a fresh random sample above which the "
                "mini-batch coresets are re-selected (paper: 0.05 CIFAR-10, 0.01 CIFAR-100)."})
    crest_h: float = field(default=1.0, metadata={
        "help": "CREST: T1 = ceil(h * ||H_0|| / ||H_t||) steps between checks of the quadratic model."})
    crest_b: float = field(default=5.0, metadata={
        "help": "CREST: P = ceil(b * T1) mini-batch coresets per selection (and initially ceil(b))."})
    crest_T2: int = field(default=20, metadata={
        "help": "CREST: window in training steps over which a row whose loss stays below crest_alpha is dropped."})
    crest_alpha: float = field(default=0.1, metadata={
        "help": "CREST: loss below which a row counts as learned."})
    crest_random_subset_fraction: float = field(default=0.01, metadata={
        "help": "CREST: r as a share of the training rows: the size of each random subset and of each check "
                "sample (paper: 0.01). Must give at least crest_minibatch_size rows."})
    crest_minibatch_size: int | None = field(default=None, metadata={
        "help": "CREST: m, rows of a mini-batch coreset = the global training batch in the CREST phase; defaults "
                "to per_device_train_batch_size * number of processes."})
    crest_drop_learned: bool = field(default=True, metadata={
        "help": "CREST: drop learned rows (loss < crest_alpha over crest_T2 steps) from the pool."})
    crest_min_pool_fraction: float = field(default=0.8, metadata={
        "help": "CREST: dropping learned rows never takes a class below this share of its rows (the official "
                "code keeps 80%% of CIFAR)."})
    crest_params: str = field(default="all", metadata={
        "help": "CREST: parameters of the quadratic loss model: 'all' trainable ones (paper, small networks) or "
                "the classifier 'head' (paper, large networks)."})

    _VALID_DICT_FIELDS = TrainingArguments._VALID_DICT_FIELDS + ["coreset_method_options"]

    def __post_init__(self):
        if isinstance(self.coreset_method_options, str):
            try:
                self.coreset_method_options = json.loads(self.coreset_method_options)
            except json.JSONDecodeError as err:
                raise ValueError(f"coreset_method_options={self.coreset_method_options!r} is not valid JSON ({err}); "
                                 "pass e.g. '{\"epoch\": 2}'.") from None
        if self.coreset_method_options is not None and not isinstance(self.coreset_method_options, dict):
            raise TypeError(f"coreset_method_options must be a dict or a JSON object string, not "
                            f"{type(self.coreset_method_options).__name__}.")
        super().__post_init__()
        if self.coreset_schedule not in SCHEDULES:
            raise ValueError(f"coreset_schedule={self.coreset_schedule!r}; pick one of {list(SCHEDULES)}.")
        if self.coreset_signals not in SIGNAL_SOURCES:
            raise ValueError(f"coreset_signals={self.coreset_signals!r}; pick one of {list(SIGNAL_SOURCES)}.")
        if self.crest_params not in CREST_PARAMS:
            raise ValueError(f"crest_params={self.crest_params!r}; pick one of {list(CREST_PARAMS)}.")
        check_fraction(self.coreset_fraction, name="coreset_fraction")
        check_bool(self.coreset_per_class, "coreset_per_class")
        check_fraction(self.crest_random_subset_fraction, name="crest_random_subset_fraction")
        check_fraction(self.crest_min_pool_fraction, name="crest_min_pool_fraction")
        _check_int(self.coreset_warmup_epochs, "coreset_warmup_epochs", 0)
        _check_int(self.crest_T2, "crest_T2", 1)
        if self.coreset_seed is not None:
            _check_int(self.coreset_seed, "coreset_seed", 0)
        repo = self.coreset_selection_repo
        if repo is not None and (not isinstance(repo, str) or not REPO_ID.fullmatch(repo) or ".." in repo
                                 or "--" in repo or repo.endswith(".git")):
            raise ValueError(f"coreset_selection_repo={repo!r} is not a Hub dataset repo id; pass 'user/name', "
                             "e.g. 'me/mnist1d-el2n-10pct' (letters, digits, '-', '_' and '.').")
        if self.crest_minibatch_size is not None:
            _check_int(self.crest_minibatch_size, "crest_minibatch_size", 1)
        for name in ("crest_tau", "crest_h", "crest_b", "crest_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}={value!r} must be a finite number >= 0.")
        if self.crest_b <= 0 or self.crest_h <= 0:
            raise ValueError(f"crest_b={self.crest_b} and crest_h={self.crest_h} must be > 0 (P and T1 must be >= 1).")
        if self.coreset_method is not None and self.coreset_schedule != "static":
            raise ValueError(f"coreset_method={self.coreset_method!r} is for the static schedule; with "
                             f"coreset_schedule={self.coreset_schedule!r} leave coreset_method unset.")
        if self.coreset_method is not None:
            methods.get(self.coreset_method)  # raises listing the known methods
        if self.max_steps > 0:
            raise ValueError(f"max_steps={self.max_steps}: CoresetTrainer plans its steps from epochs (warm-up epochs "
                             "on the full data, then coreset epochs); set num_train_epochs and leave max_steps=-1.")
        if float(self.num_train_epochs) != int(self.num_train_epochs):
            raise ValueError(f"num_train_epochs={self.num_train_epochs} must be a whole number of epochs here.")
        if self.coreset_warmup_epochs >= int(self.num_train_epochs) and self.coreset_schedule == "static" \
                and self.coreset_method is not None:
            raise ValueError(f"coreset_warmup_epochs={self.coreset_warmup_epochs} leaves no epoch for the coreset "
                             f"(num_train_epochs={self.num_train_epochs}); lower it or raise num_train_epochs.")

    def coreset_method_and_options(self):
        """`(MethodSpec, checked options)` of `coreset_method`, or `(None, {})` without one. An `epoch` or `epochs`
        option left unset scores at the end of the warm-up, which is the proxy."""
        if self.coreset_method is None:
            return None, {}
        spec = methods.get(self.coreset_method)
        options = dict(self.coreset_method_options or {})
        if spec.name == "auto":
            if options.get("validate"):
                raise ValueError("CoresetTrainer runs auto from its fixed table: its warm-up has no held-out slice "
                                 "to validate candidates on; drop validate=True, or choose with "
                                 "hf_coreset.select(ds, 'auto', model=...) and pass that selection to the trainer.")
            options["validate"] = False
        if "epochs" in spec.defaults and "epochs" not in options:
            options["epochs"] = self.coreset_warmup_epochs
        # An unset `epoch`, also inside a wrapper's score_options, is the end of the warm-up.
        options = spec.check_options(options, last_epoch=self.coreset_warmup_epochs)
        needs = spec.needs(options)
        if needs and max(needs) > self.coreset_warmup_epochs:
            raise ValueError(
                f"Method {spec.name!r} with options {options} needs signals at warm-up epochs {sorted(needs)}, "
                f"but coreset_warmup_epochs={self.coreset_warmup_epochs}; raise the warm-up or lower the "
                "method's epoch option(s).")
        return spec, options

    def crest_config(self, *, minibatch_size: int, random_subset_size: int) -> CrestConfig:
        """The CREST settings, with the sizes in rows that the trainer derives from them."""
        return CrestConfig(**{name: getattr(self, f"crest_{name}") for name in CREST_SETTINGS},
                           minibatch_size=minibatch_size, random_subset_size=random_subset_size)


def _check_int(value, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}.")


def coreset_arguments(args, model) -> CoresetTrainingArguments:
    """`args` as `CoresetTrainingArguments`, the way TRL's trainers take theirs.

    None gives the defaults with ``output_dir="<model name>-coreset"``; a plain `TrainingArguments` keeps
    every one of its settings (`hub_token` included) and gets the coreset settings' defaults. Those name
    no method on purpose: which rows to keep is the user's choice (`auto` needs 10 warm-up epochs, and
    every other method trades cost against quality by fraction; BENCHMARKS.md), so the trainer then asks
    for `coreset_method`, `coreset_schedule="crest"` or a given selection.
    """
    if args is None:
        name = getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        return CoresetTrainingArguments(output_dir=f"{name.rstrip('/').split('/')[-1]}-coreset")
    if isinstance(args, CoresetTrainingArguments):
        return args
    if not isinstance(args, TrainingArguments):
        raise TypeError(f"args must be a CoresetTrainingArguments (or a TrainingArguments, or None), not "
                        f"{type(args).__name__}.")
    names = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    dropped = sorted(f.name for f in dataclasses.fields(args) if f.init and f.name not in names)
    if dropped:
        logger.warning("CoresetTrainer ignores the %s settings %s (not TrainingArguments settings).",
                       type(args).__name__, dropped)
    # The attributes, not to_dict(), which hides hub_token.
    return CoresetTrainingArguments(**{name: getattr(args, name) for name in names})
