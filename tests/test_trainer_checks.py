"""CoresetTrainer runs the model checks of `select` before it trains: the automatic head is resolved
by the probe and recorded, bad models are refused before any training step (naming the trainer's
settings), and BatchNorm models never get a one-row training batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hf_coreset
from hf_coreset import CoresetTrainingArguments
from hf_coreset.signals import ROW_KEY

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(nn.Module):
    """40 -> 16 -> 10 with an auxiliary layer of the logits' width registered after the head (so the
    last-registered final-width layer is not the head); `bn` adds BatchNorm, `wrap` changes the output.
    Records whether each forward call ran in training mode."""

    def __init__(self, bn: bool = False, wrap=None):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(40, 16)
        self.bn = nn.BatchNorm1d(16) if bn else nn.Identity()
        self.head = nn.Linear(16, 10)
        self.aux = nn.Linear(16, 10)
        self.wrap = wrap
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        logits = self.head(torch.relu(self.bn(self.body(x))))
        return logits if self.wrap is None else self.wrap(logits)


class TwoHeads(Net):
    """Logits that are the mean of two final-width layers: no single layer is the head."""

    def forward(self, x):
        self.modes.append(self.training)
        h = torch.relu(self.body(x))
        return (self.head(h) + self.aux(h)) / 2


class RecordingTrainer(hf_coreset.CoresetTrainer):
    """Keeps the number of rows of every training batch."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            self.batch_rows.append(len(inputs[ROW_KEY]))
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def _args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=16,
                learning_rate=1e-2, optim="adamw_torch", report_to="none", save_strategy="no", disable_tqdm=True,
                logging_steps=1000, coreset_fraction=0.5, coreset_warmup_epochs=1, dataloader_pin_memory=False)
    base.update(kw)
    return CoresetTrainingArguments(**base)


@pytest.fixture
def ds(mnist1d_small):
    return mnist1d_small["train"].select(range(96))


@pytest.mark.parametrize("method", ["kcenter", "el2n"])
def test_head_resolved_and_recorded(ds, tmp_path, method):
    # `aux` is the last registered 10-output layer; the probe finds that `head` gives the logits.
    trainer = hf_coreset.CoresetTrainer(model=Net(), train_dataset=ds, args=_args(tmp_path, coreset_method=method))
    trainer.train()
    sel = trainer.coreset_selection
    assert sel.config["head"] == "head"
    assert hf_coreset.CoresetSelection.load(tmp_path / "out" / "_coreset_selection").config["head"] == "head"
    if method == "kcenter":  # features are the head's 16 inputs
        assert trainer._signals.at(1, "features").features.shape == (ds.num_rows, 16)


def _no_logits(logits):
    return {"scores": logits}


def _loss_first(logits):
    return (logits.sum(), logits)


@pytest.mark.parametrize("model, kw, error, match", [
    (lambda: Net(wrap=_no_logits), {}, TypeError, "without `logits`"),
    (lambda: Net(wrap=_loss_first), {}, TypeError, "first element is a scalar"),
    (TwoHeads, {}, ValueError, r"ambiguous; pass coreset_head='<module name>'"),
    (Net, {"coreset_head": "nope"}, ValueError, r"coreset_head='nope' is not a module"),
    (Net, {"coreset_head": "bn"}, ValueError, r"coreset_head='bn' is a Identity"),
])
def test_bad_model_refused_before_training(ds, tmp_path, model, kw, error, match):
    model = model()
    trainer = hf_coreset.CoresetTrainer(model=model, train_dataset=ds,
                                        args=_args(tmp_path, coreset_method="kcenter", **kw))
    with pytest.raises(error, match=match):
        trainer.train()
    assert True not in model.modes  # only the eval-mode probe ran: no training step
    assert not (tmp_path / "out" / "_coreset_selection").exists()


def test_frozen_and_non_module_refused(ds, tmp_path):
    model = Net().requires_grad_(False)
    trainer = hf_coreset.CoresetTrainer(model=model, train_dataset=ds, args=_args(tmp_path, coreset_method="el2n"))
    with pytest.raises(ValueError, match=r"frozen.*requires_grad_\(True\)"):
        trainer.train()
    assert model.modes == []
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        hf_coreset.CoresetTrainer(model=lambda x: x, train_dataset=ds, args=_args(tmp_path, coreset_method="el2n"))


def test_batchnorm_with_a_one_row_tail_trains(ds, tmp_path):
    # 33 rows in batches of 4 would leave one row; the last batch wraps around the shuffled rows instead.
    train = ds.select(range(33))
    trainer = RecordingTrainer(model=Net(bn=True), train_dataset=train, args=_args(
        tmp_path, coreset_method="el2n", per_device_train_batch_size=4, num_train_epochs=3))
    trainer.batch_rows = []
    trainer.train()
    assert trainer.state.global_step == 9 + 2 * 5 and set(trainer.batch_rows) == {4}
    assert len(trainer.coreset_selection) == 17


@pytest.mark.parametrize("kw, match", [
    ({"coreset_method": "el2n", "per_device_train_batch_size": 1}, "per_device_train_batch_size=1"),
    ({"coreset_schedule": "crest", "crest_minibatch_size": 1, "crest_random_subset_fraction": 0.1},
     "crest_minibatch_size=1"),
])
def test_batchnorm_one_row_batches_refused(ds, tmp_path, kw, match):
    model = Net(bn=True)
    trainer = hf_coreset.CoresetTrainer(model=model, train_dataset=ds, args=_args(tmp_path, **kw))
    with pytest.raises(ValueError, match=match + ".*BatchNorm"):
        trainer.train()
    assert True not in model.modes


def test_ragged_column_refused_naming_data_collator(ds, tmp_path):
    import datasets

    x = [row[:39] if i == 5 else row for i, row in enumerate(ds["x"])]
    ragged = datasets.Dataset.from_dict({"x": x, "label": ds["label"]})
    model = Net()
    trainer = hf_coreset.CoresetTrainer(model=model, train_dataset=ragged,
                                        args=_args(tmp_path, coreset_method="el2n"))
    with pytest.raises(ValueError, match=r"Column 'x' has ragged lengths.*data_collator=DataCollatorWithPadding"):
        trainer.train()
    assert model.modes == []
