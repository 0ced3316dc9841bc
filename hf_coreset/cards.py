"""The two cards hf-coreset writes, rendered from plain dicts: a pushed selection's dataset card and the
"Coreset training" section of a trained model's card.

The templates live in ``model_cards/`` (``hf_coreset.model_cards`` once installed). The callers (hub.py,
trainer.py) gather what a card shows into a dict; this module only loads and renders, so a card can be
previewed or tested without a trainer or the Hub.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DATASET_CARD = "dataset_card.md"
MODEL_CARD_SECTION = "model_card_section.md"


def load_template(name: str) -> str:
    """Text of a card template from ``model_cards/``.

    From a source checkout (``PYTHONPATH=.``) the top-level ``model_cards/`` folder is read; an
    installed package carries the same files as ``hf_coreset.model_cards`` (see pyproject.toml).

    Args:
        name (`str`): file name, e.g. ``"dataset_card.md"``.

    Returns:
        `str`: the Jinja template.
    """
    checkout = Path(__file__).resolve().parents[1] / "model_cards" / name
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    try:
        return resources.files("hf_coreset.model_cards").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise FileNotFoundError(f"Card template {name!r} is neither in {checkout.parent} nor in the installed "
                                f"package hf_coreset.model_cards; reinstall hf-coreset.") from err


def render_dataset_card(info: dict) -> str:
    """The dataset card (``model_cards/dataset_card.md``) of a pushed selection.

    Args:
        info (`dict`): ``card_data``, the YAML metadata as keyword arguments of
            `huggingface_hub.DatasetCardData` (license, tags, configs, ...), plus every variable the
            template reads (method, fraction, kept, per_class, ...); :func:`hf_coreset.hub.dataset_card`
            builds it from a selection.

    Returns:
        `str`: the card, YAML header first, as written to the repo's ``README.md``.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    info = dict(info)
    card_data = DatasetCardData(**info.pop("card_data"))
    return str(DatasetCard.from_template(card_data, template_str=load_template(DATASET_CARD), **info))


def render_model_card_section(info: dict) -> str:
    """The "Coreset training" section (``model_cards/model_card_section.md``) of a trained model's card.

    Args:
        info (`dict`): every variable the template reads (method, schedule, fraction, warmup_epochs,
            epochs, seed, kept, num_rows, weighted, options, fingerprint, selection_repo, selection_url,
            events, crest, selection_dir, version); a missing one is an error, not a blank.
            `hf_coreset.trainer.model_card_info` builds it from a trainer.

    Returns:
        `str`: the markdown section.
    """
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(load_template(MODEL_CARD_SECTION)).render(**info)
