"""The shape of hf_coreset.training (issue 12): the trainer takes `args=None` and a plain `TrainingArguments`
as TRL's trainers do, the CREST settings have one set of defaults, the trainer creates all its state in
`__init__` (no probing), and the kept fraction is checked once and budgeted once."""

from __future__ import annotations

import ast
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import torch

import hf_coreset
from hf_coreset.data.mnist1d import make_convnet

TRAINING = Path(__file__).resolve().parents[1] / "hf_coreset" / "training"

pytestmark = pytest.mark.usefixtures("one_thread")

QUIET = dict(report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=1000, dataloader_pin_memory=False)


@pytest.fixture
def train(mnist1d_small):
    return mnist1d_small["train"].select(range(160))


def test_args_none_gives_the_defaults(train, tmp_path, monkeypatch):
    """args=None: CoresetTrainingArguments' defaults, output_dir "<model name>-coreset" (as TRL names its
    default after the model); they name no method, so a given selection is what it trains on."""
    from hf_coreset.training.arguments import coreset_arguments

    monkeypatch.chdir(tmp_path)
    model = make_convnet(0)
    with pytest.raises(ValueError, match=r"set coreset_method=<name>.*args=None"):
        hf_coreset.CoresetTrainer(model=model, train_dataset=train)
    sel = hf_coreset.select(train, "random", fraction=0.25, seed=3)
    trainer = hf_coreset.CoresetTrainer(model=model, train_dataset=train, coreset_selection=sel)
    args = trainer.args
    assert type(args) is hf_coreset.CoresetTrainingArguments
    assert Path(args.output_dir).name == f"{type(model).__name__}-coreset"
    assert (args.coreset_fraction, args.coreset_warmup_epochs, args.num_train_epochs) == (0.1, 1, 3)
    trainer.train()
    # one epoch on 160 rows, two on the 40 given ones, in batches of 8
    assert trainer.state.global_step == 160 // 8 + 2 * 40 // 8
    assert (tmp_path / f"{type(model).__name__}-coreset" / "_coreset_selection").is_dir()

    class Named(torch.nn.Module):  # a transformers model: named after config._name_or_path
        config = type("Config", (), {"_name_or_path": "org/tiny-bert"})()

    assert coreset_arguments(None, Named()).output_dir.endswith("tiny-bert-coreset")


def test_plain_training_arguments_are_upgraded(train, tmp_path):
    """A plain TrainingArguments keeps every setting (hub_token too, which to_dict hides) and trains exactly as
    the same settings in CoresetTrainingArguments do."""
    from transformers import TrainingArguments

    settings = dict(num_train_epochs=2, per_device_train_batch_size=32, learning_rate=5e-3, optim="adamw_torch",
                    lr_scheduler_type="cosine", seed=4, **QUIET)
    plain = TrainingArguments(output_dir=str(tmp_path / "plain"), hub_token="hf_secret", **settings)
    sel = hf_coreset.select(train, "random", fraction=0.25, seed=3)
    upgraded = hf_coreset.CoresetTrainer(model=make_convnet(0), args=plain, train_dataset=train, coreset_selection=sel)
    args = upgraded.args
    assert type(args) is hf_coreset.CoresetTrainingArguments and args.hub_token == "hf_secret"
    base = {f.name for f in fields(TrainingArguments) if f.init}
    assert {k: v for k, v in args.to_dict().items() if k in base} == plain.to_dict()
    assert args.coreset_fraction == 0.1 and args.coreset_method is None and args.coreset_schedule == "static"

    direct = hf_coreset.CoresetTrainer(model=make_convnet(0), train_dataset=train, coreset_selection=sel,
                                       args=hf_coreset.CoresetTrainingArguments(output_dir=str(tmp_path / "direct"),
                                                                                **settings))
    upgraded.train()
    direct.train()
    assert upgraded.state.global_step == direct.state.global_step
    for a, b in zip(upgraded.model.parameters(), direct.model.parameters()):
        assert torch.equal(a, b)


def test_crest_settings_have_one_set_of_defaults(tmp_path):
    """CrestConfig has no defaults of its own for what the arguments set: each is the argument crest_<name>,
    and the arguments build it (crest_config) in one place."""
    from hf_coreset.training.arguments import CREST_SETTINGS
    from hf_coreset.training.crest import CrestConfig

    config_fields = {f.name: f for f in fields(CrestConfig)}
    assert {n for n, f in config_fields.items() if f.default is MISSING} == \
        set(CREST_SETTINGS) | {"random_subset_size", "minibatch_size"}  # sizes in rows come from the arguments
    crest_args = {f.name for f in fields(hf_coreset.CoresetTrainingArguments) if f.name.startswith("crest_")}
    assert crest_args == {f"crest_{n}" for n in CREST_SETTINGS} | {"crest_random_subset_fraction",
                                                                     "crest_minibatch_size"}
    args = hf_coreset.CoresetTrainingArguments(output_dir=str(tmp_path), coreset_schedule="crest", crest_tau=0.2,
                                               crest_params="head", crest_T2=7)
    config = args.crest_config(minibatch_size=16, random_subset_size=64)
    assert all(getattr(config, n) == getattr(args, f"crest_{n}") for n in CREST_SETTINGS)
    assert (config.tau, config.params, config.T2, config.minibatch_size, config.random_subset_size) == \
        (0.2, "head", 7, 16, 64)


def _self_attributes(fn: ast.FunctionDef) -> set[str]:
    """Attributes of `self` that `fn` assigns (plainly, annotated or augmented)."""
    names = set()
    for node in ast.walk(fn):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for t in targets:
            for sub in t.elts if isinstance(t, ast.Tuple) else [t]:
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                    names.add(sub.attr)
    return names


def test_trainer_state_is_created_in_init():
    """Every attribute CoresetTrainer's methods set is created in __init__, and nothing in hf_coreset/training
    probes the trainer's state (hasattr, or getattr with a default, on self or a trainer)."""
    tree = ast.parse((TRAINING / "trainer.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CoresetTrainer")
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    created = _self_attributes(methods["__init__"])
    late = {f"{name}: self.{attr}" for name, fn in methods.items() if name != "__init__"
            for attr in _self_attributes(fn) - created}
    assert not late, f"state created outside __init__: {sorted(late)}"
    probes = []
    for path in sorted(TRAINING.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args and (
                    node.func.id == "hasattr" or (node.func.id == "getattr" and len(node.args) == 3)) and \
                    isinstance(node.args[0], ast.Name) and node.args[0].id in ("self", "trainer"):
                probes.append(f"{path.name}:{node.lineno}")
    assert not probes, f"the trainer's state is probed at {probes}"


def test_fraction_checked_once_and_budget_made_once(train, tmp_path, monkeypatch):
    """One static selection: the kept fraction is checked once (when the arguments are built) and the budget
    made once (when the trainer is built), then used for the step plan and the selection."""
    from hf_coreset import budget as budget_module
    from hf_coreset.training import arguments, plan

    checks, budgets = [], []

    def spy_check(value, *, name="fraction"):
        checks.append(name)
        return budget_module.check_fraction.__wrapped__(value, name=name)

    def spy_budget(*a, **kw):
        budgets.append(kw)
        return spy_budget.__wrapped__(*a, **kw)

    spy_check.__wrapped__ = budget_module.check_fraction
    spy_budget.__wrapped__ = budget_module.budget_for
    for module in (budget_module, arguments):
        monkeypatch.setattr(module, "check_fraction", spy_check)
    for module in (budget_module, plan):
        monkeypatch.setattr(module, "budget_for", spy_budget)
    args = hf_coreset.CoresetTrainingArguments(output_dir=str(tmp_path), coreset_method="el2n", coreset_fraction=0.25,
                                               num_train_epochs=2, per_device_train_batch_size=32, **QUIET)
    trainer = hf_coreset.CoresetTrainer(model=make_convnet(0), args=args, train_dataset=train)
    trainer.train()
    assert [n for n in checks if n in ("fraction", "coreset_fraction")] == ["coreset_fraction"]
    assert len(budgets) == 1
    assert len(trainer.coreset_selection) == trainer.plan.budget.total == 40
    assert trainer.coreset_selection.config["budget_per_class"] == trainer.plan.budget.per_class.tolist()

    # select(): checked and budgeted once too
    checks.clear()
    budgets.clear()
    hf_coreset.select(train, "random", fraction=0.25, seed=0)
    assert checks == ["fraction"] and len(budgets) == 1
