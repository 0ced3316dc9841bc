"""Proxy recipes: a transformers PreTrainedModel gets the fine-tuning recipe (and epoch 0 for methods
that read features only), a plain nn.Module keeps the old defaults (lr 1e-3, epoch 10), and a method's
unset epoch is the proxy's last epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hf_coreset
from hf_coreset import ProxyConfig, methods
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.proxy import _make_optimizer, run_proxy

pytestmark = pytest.mark.usefixtures("one_thread")

# What the proxy trained with before recipes existed (ProxyConfig() then); methods read epoch 10.
OLD_DEFAULTS = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.0, "batch_size": 128}
FINETUNE = {"optimizer": "adamw", "lr": 5e-5, "weight_decay": 0.01, "batch_size": 32, "warmup_steps": 50,
            "recipe": "finetune"}


def bert(tiny_bert, seed=0):
    """The tiny BERT base as a sequence classifier (a new head drawn from `seed`), its tokenized set, a collator."""
    from transformers import BertForSequenceClassification, BertTokenizerFast, DataCollatorWithPadding

    folder, text = tiny_bert
    tok = BertTokenizerFast.from_pretrained(folder)
    ds = text.map(lambda b: tok(b["text"]), batched=True, remove_columns=["text"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification.from_pretrained(folder, num_labels=2)
    return model, ds, DataCollatorWithPadding(tok)


def test_plain_module_keeps_the_old_defaults(ds):
    kw = dict(fraction=0.1, cache_dir=False, progress=False)
    new = hf_coreset.select(ds, "kcenter", model=make_convnet(0), **kw)
    old = hf_coreset.select(ds, "kcenter", model=make_convnet(0), proxy=OLD_DEFAULTS, epoch=10, **kw)
    np.testing.assert_array_equal(new.indices, old.indices)
    assert new.fingerprint == old.fingerprint  # same options, same training key: the same selection identity
    assert new.config["method_options"] == {"epoch": 10, "init": "mean", "partition_size": "auto"}
    assert new.config["proxy"] == {**OLD_DEFAULTS, "warmup_steps": 0, "recipe": "scratch", "epochs": [10]}
    assert ProxyConfig().training_key() == OLD_DEFAULTS  # cache entries written before recipes still match


def test_pretrained_model_gets_the_finetune_recipe(tiny_bert):
    model, ds, collate = bert(tiny_bert)
    sel = hf_coreset.select(ds, "el2n", fraction=0.25, model=model, collate_fn=collate, cache_dir=False,
                            progress=False)
    assert sel.config["proxy"] == {**FINETUNE, "epochs": [2]}  # lr, warm-up and the epochs read, recorded
    assert sel.config["method_options"] == {"epoch": 2}  # the unset epoch is the recipe's last
    assert sel.timings["proxy_training"] > 0
    # A method that reads features only scores the pretrained model as given: one pass, no training.
    feats = hf_coreset.select(ds, "kcenter", fraction=0.25, model=model, collate_fn=collate, cache_dir=False,
                              progress=False)
    assert feats.config["proxy"] == {**FINETUNE, "epochs": [0]} and feats.config["method_options"]["epoch"] == 0
    assert feats.timings["proxy_training"] == 0
    # A wrapper over a score, and auto (whose table rows read logits too), fine-tune.
    assert ProxyConfig.finetune().last_epoch(methods.get("coverage"), {}) == 2
    assert ProxyConfig.finetune().last_epoch(methods.get("auto"), {}) == 2
    assert ProxyConfig.finetune().last_epoch(methods.get("kernel-herding"), {}) == 0
    assert ProxyConfig().last_epoch(methods.get("kernel-herding"), {}) == 10
    # A dict overrides settings of the recipe the model picks; a name picks a recipe for any model.
    assert ProxyConfig.coerce({"lr": 2e-5}, model) == ProxyConfig.finetune(lr=2e-5)
    assert ProxyConfig.coerce("scratch", model) == ProxyConfig()
    assert ProxyConfig.coerce("finetune", make_convnet(0)) == ProxyConfig.finetune()
    assert ProxyConfig.coerce({"lr": 2e-5}, make_convnet(0)) == ProxyConfig(lr=2e-5)
    assert ProxyConfig.coerce({"recipe": "finetune", "epochs": 1}) == ProxyConfig.finetune(epochs=1)


def test_warmup_is_linear_over_fixed_steps_and_survives_a_state_round_trip():
    net = make_convnet(0)
    cfg = ProxyConfig(optimizer="sgd", lr=0.1, warmup_steps=4)
    x = torch.randn(8, 40)
    opt, lrs = _make_optimizer(net, cfg), []
    for step in range(6):
        if step == 3:  # as a resumed proxy does: a new optimizer loads the saved state
            state = opt.state_dict()
            opt = _make_optimizer(net, cfg)
            opt.load_state_dict(state)
        net(x).sum().backward()
        opt.step()
        opt.zero_grad()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])


def test_warmup_keeps_a_longer_run_equal_to_a_shorter_one(ds):
    labels = np.asarray(ds["label"])
    kw = dict(seed=0, label_column="label", cache_dir=False, progress=False)
    cfg = ProxyConfig(optimizer="adam", lr=1e-2, batch_size=50, warmup_steps=6)  # 4 steps an epoch: spans two
    short, _ = run_proxy(make_convnet(0), ds, labels, 10, {1: frozenset({"logits"})}, config=cfg, **kw)
    long, _ = run_proxy(make_convnet(0), ds, labels, 10, {1: frozenset({"logits"}), 3: frozenset({"logits"})},
                        config=cfg, **kw)
    np.testing.assert_array_equal(short.at(1, "logits").logits, long.at(1, "logits").logits)
    flat, _ = run_proxy(make_convnet(0), ds, labels, 10, {1: frozenset({"logits"})},
                        config=ProxyConfig(optimizer="adam", lr=1e-2, batch_size=50), **kw)
    assert not np.array_equal(flat.at(1, "logits").logits, short.at(1, "logits").logits)  # the warm-up is applied
    assert cfg.training_key()["warmup_steps"] == 6  # ... and keys the cache


def test_unset_epoch_is_the_proxy_last_epoch(ds, tmp_path, mnist1d_proxy):
    proxy = {**mnist1d_proxy, "batch_size": 50, "epochs": 2}
    kw = dict(fraction=0.1, proxy=proxy, cache_dir=tmp_path / "cache", progress=False)
    unset = hf_coreset.select(ds, "el2n", model=make_convnet(0), epoch=None, **kw)
    given = hf_coreset.select(ds, "el2n", model=make_convnet(0), epoch=2, **kw)
    assert unset.config["method_options"] == {"epoch": 2} and unset.config["proxy"]["epochs"] == [2]
    np.testing.assert_array_equal(unset.indices, given.indices)
    assert unset.fingerprint == given.fingerprint
    # Inside a wrapper's score_options too, and for auto's table rows.
    cov = hf_coreset.select(ds, "coverage", model=make_convnet(0), **kw)
    assert cov.config["method_options"]["score_options"] == {"epoch": 2} and cov.config["proxy"]["epochs"] == [2]
    auto = hf_coreset.select(ds, "auto", model=make_convnet(0), validate=False, **kw)
    assert auto.config["auto_options"]["epoch"] == 2 and auto.config["proxy"]["epochs"] == [2]
    # A method that reads a trajectory keeps its own length.
    assert methods.get("forgetting").check_options({}, last_epoch=2) == {"epochs": 10}


def test_auto_follows_the_trainer_warmup(mnist1d_small, tmp_path):
    """auto used to read epoch 10 whatever the warm-up, so CoresetTrainer refused it with a 1-epoch warm-up."""
    train = mnist1d_small["train"].select(range(320))
    args = hf_coreset.CoresetTrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=64, learning_rate=5e-3,
        report_to="none", save_strategy="no", disable_tqdm=True, coreset_method="auto", coreset_fraction=0.1,
        coreset_warmup_epochs=1, dataloader_pin_memory=False, coreset_cache_dir=str(tmp_path / "cache"))
    trainer = hf_coreset.CoresetTrainer(model=make_convnet(0), train_dataset=train, args=args)
    trainer.train()
    sel = trainer.coreset_selection
    assert sel.config["auto_method"] == "kernel-herding" and sel.config["auto_options"]["epoch"] == 1


def test_coverage_in_the_trainer_reads_the_warmup_epoch(mnist1d_small, tmp_path):
    """An unset epoch inside a wrapper's score_options is the end of the warm-up too (it meant 10, which a
    1-epoch warm-up refused)."""
    args = hf_coreset.CoresetTrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=64, report_to="none",
        coreset_method="coverage", coreset_fraction=0.2, coreset_warmup_epochs=1)
    spec, options = args.coreset_method_and_options()
    assert options["score_options"] == {"epoch": 1}
    assert spec.needs(options) == {1: frozenset({"logits"})}
