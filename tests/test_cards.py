"""Both cards render from plain dicts: no trainer, no selection, no Hub (hf_coreset.cards)."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml

from hf_coreset.cards import load_template, render_dataset_card, render_model_card_section

ROOT = Path(__file__).resolve().parents[1]

DATASET_INFO = {
    "card_data": {"license": "mit", "source_datasets": ["me/src"], "size_categories": ["n<1K"],
                  "tags": ["coreset", "el2n", "hf-coreset"], "pretty_name": "me/src el2n coreset (20.0%)",
                  "coreset": {"method": "el2n", "fraction": 0.2, "num_kept": 10, "num_rows": 50}},
    "repo_id": "me/repo", "method": "el2n", "method_summary": "Largest error norm", "paper": "Paul et al., 2021",
    "method_version": 3, "fraction": 0.2, "kept": 10, "num_rows": 50, "seed": 7, "weighted": True, "has_gains": False,
    "source_md": "`me/src`", "source_split": "train", "source_revision": None, "source_fingerprint": "sfp",
    "label_column": "label", "label_hash": "lh", "source_license": "MIT", "fingerprint": "fp",
    "model_md": "none (the method uses labels only)", "library_version": "0.0.9", "pushed_with": "0.1.0",
    "config_json": "{}", "source_load": 'load_dataset("me/src", split="train")',
    "per_class": [{"id": 0, "name": "a", "total": 25, "kept": 6, "percent": 24.0, "bar": "\u2588" * 20},
                  {"id": 1, "name": "b", "total": 25, "kept": 4, "percent": 16.0, "bar": "\u2588" * 13}],
    "benchmark": [("accuracy / coreset", 0.8)],
}

SECTION_INFO = {
    "method": "craig", "schedule": "static", "fraction": 0.25, "warmup_epochs": 1, "epochs": 3, "seed": 3,
    "kept": 5, "num_rows": 50, "weighted": True, "options": {"epoch": 1}, "fingerprint": "fp2",
    "selection_repo": "me/sel", "selection_url": "https://huggingface.co/datasets/me/sel", "events": [],
    "crest": None, "selection_dir": "_coreset_selection", "version": "0.1.0",
}


def test_dataset_card_renders_from_a_plain_dict():
    card = render_dataset_card(DATASET_INFO)
    _, header, body = card.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["tags"] == ["coreset", "el2n", "hf-coreset"] and meta["coreset"]["num_kept"] == 10
    assert "# me/src el2n coreset (20.0%)" in body
    assert "A **20.0% coreset** (10 of 50 rows) of `me/src`," in body
    assert "| 0 | a | 25 | 6 | 24.0 | " + "\u2588" * 20 + " |" in body
    assert "| accuracy / coreset | 0.8 |" in body
    assert "index` into the source, `weight`, in pick order" in body  # weighted, no gains
    assert DATASET_INFO["card_data"]["license"] == "mit"  # the caller's dict is left as it was


def test_model_card_section_renders_from_a_plain_dict():
    section = render_model_card_section(SECTION_INFO)
    assert section.startswith("## Coreset training\n\nThis model was trained with `hf_coreset.CoresetTrainer` "
                              "(hf-coreset 0.1.0)")
    assert "| method | `craig` |\n| schedule | static |\n| fraction | 0.25 |\n" in section
    assert "| rows kept | 5 of 50 (weighted) |\n" in section
    assert '| method options | `{"epoch": 1}` |\n' in section
    assert "[me/sel](https://huggingface.co/datasets/me/sel)" in section
    assert 'CoresetSelection.from_hub("me/sel")' in section and "CoresetSelection.load" not in section
    local = render_model_card_section({**SECTION_INFO, "selection_repo": None, "selection_url": None})
    assert 'CoresetSelection.load("<output_dir>/_coreset_selection")' in local and "(not uploaded with the model)" in local

    crest = render_model_card_section({**SECTION_INFO, "schedule": "crest", "kept": None, "crest": {
        "tau": 0.05, "h": 1, "b": 0.1, "T2": 20, "alpha": 0.1, "random_subset_size": 500, "minibatch_size": 64},
        "events": [{"step": 9, "rel_error": 0.123456, "P": 2, "T1": 5, "dropped": 7}]})
    assert "| 9 | 0.1235 | 2 | 5 | 7 |" in crest and "rows kept" not in crest


def test_model_card_section_refuses_a_missing_field():
    """A variable the template reads and the dict lacks is an error, never a silently blank cell."""
    info = dict(SECTION_INFO)
    del info["seed"]
    with pytest.raises(jinja2.UndefinedError, match="seed"):
        render_model_card_section(info)


def test_templates_come_from_one_loader():
    for name in ("dataset_card.md", "model_card_section.md"):
        assert load_template(name) == (ROOT / "model_cards" / name).read_text(encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="reinstall hf-coreset"):
        load_template("no_such_card.md")


def card_parts(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def machine_paths(tmp_path) -> list[str]:
    """Absolute paths of this machine that a card must never show."""
    return [str(tmp_path), str(Path.home()), str(Path.cwd()), str(ROOT)]


def bert_trainer(tiny_bert, tmp_path, **kw):
    """A CoresetTrainer on the tiny BERT loaded from its local folder (a new head), 2 epochs of 64 rows."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    from hf_coreset import CoresetTrainer, CoresetTrainingArguments

    folder, text = tiny_bert
    tok = AutoTokenizer.from_pretrained(folder)
    ds = text.map(lambda b: tok(b["text"], truncation=True), batched=True)
    set_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    base = dict(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=16,
                learning_rate=1e-3, report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=1000,
                coreset_method="el2n", coreset_fraction=0.25, coreset_warmup_epochs=1, dataloader_pin_memory=False)
    base.update(kw)
    return CoresetTrainer(model=model, args=CoresetTrainingArguments(**base), train_dataset=ds, processing_class=tok)


def test_model_card_yaml_tags_and_no_local_paths(tiny_bert, tmp_path):
    trainer = bert_trainer(tiny_bert, tmp_path, coreset_selection_repo="me/tiny-el2n")
    trainer.train()
    trainer.create_model_card()
    meta, body = card_parts(tmp_path / "out" / "README.md")
    # Tags through model.add_model_tags (Trainer never reads _tag_names), next to Trainer's own.
    assert {"hf-coreset", "coreset", "generated_from_trainer"} <= set(meta["tags"])
    assert {"hf-coreset", "coreset"} <= set(trainer.model.model_tags)
    sel = trainer.coreset_selection
    assert meta["coreset"] == {"method": "el2n", "schedule": "static", "fraction": 0.25, "warmup_epochs": 1,
                               "num_kept": len(sel), "num_rows": 64, "weighted": False, "seed": trainer.coreset_seed,
                               "selection_fingerprint": sel.fingerprint, "selection_repo": "me/tiny-el2n"}
    assert meta["datasets"] == ["me/tiny-el2n"]
    assert "None dataset" not in body and "unknown dataset" not in body
    assert "## Coreset training" in body and 'CoresetSelection.from_hub("me/tiny-el2n")' in body
    text = (tmp_path / "out" / "README.md").read_text()
    for path in machine_paths(tmp_path) + [tiny_bert[0]]:
        assert path not in text, path
    # A named source appears by name, in the prose and the metadata.
    trainer.coreset_source.info.dataset_name = "someone/reviews"
    trainer.create_model_card()
    meta, body = card_parts(tmp_path / "out" / "README.md")
    assert "the someone/reviews dataset" in body and meta["datasets"] == ["someone/reviews", "me/tiny-el2n"]


def test_model_card_of_a_plain_module_has_yaml(mnist1d_small, tmp_path):
    from hf_coreset import CoresetTrainer, CoresetTrainingArguments
    from hf_coreset.data.mnist1d import make_convnet

    args = CoresetTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, report_to="none",
                                    save_strategy="no", disable_tqdm=True, per_device_train_batch_size=64,
                                    coreset_method="random", coreset_fraction=0.5, coreset_warmup_epochs=1)
    trainer = CoresetTrainer(model=make_convnet(0), args=args, train_dataset=mnist1d_small["train"].select(range(128)))
    trainer.train()
    trainer.create_model_card()
    meta, body = card_parts(tmp_path / "out" / "README.md")
    assert {"hf-coreset", "coreset"} <= set(meta["tags"]) and meta["coreset"]["method"] == "random"
    assert meta["coreset"]["num_kept"] == 64 and "datasets" not in meta
    assert "A `MNIST1DConvNet` trained with hf-coreset" in body and str(tmp_path) not in body


@pytest.mark.parametrize("repo", ["not a repo", "me/x/y", "me/", "/x", "me/../x", 3])
def test_selection_repo_is_checked_at_argument_time(repo, tmp_path):
    from hf_coreset import CoresetTrainingArguments

    with pytest.raises(ValueError, match=r"coreset_selection_repo=.* is not a Hub dataset repo id; pass 'user/name'"):
        CoresetTrainingArguments(output_dir=str(tmp_path), coreset_method="el2n", num_train_epochs=2,
                                 coreset_selection_repo=repo)
