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
    "crest": None, "selection_dir": "coreset_selection", "version": "0.1.0",
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
    assert 'CoresetSelection.load("coreset_selection")' in section

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
