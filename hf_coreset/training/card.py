"""What the model card's "Coreset training" section shows about a trainer's coreset, as a plain dict
(rendered by `hf_coreset.cards`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from .arguments import SELECTION_DIR

if TYPE_CHECKING:
    from .trainer import CoresetTrainer


def model_card_info(trainer: CoresetTrainer) -> dict:
    """What the model card's "Coreset training" section shows about the coreset a trainer used
    (rendered by :func:`hf_coreset.cards.render_model_card_section`)."""
    from huggingface_hub import constants

    from ..version import __version__

    args = trainer.args
    sel = trainer.coreset_selection
    repo = args.coreset_selection_repo
    schedule = args.coreset_schedule
    if schedule in ("crest", "random"):
        method = schedule
    elif sel is not None:
        method = sel.method
    else:
        method = args.coreset_method
    return {
        "method": method, "schedule": schedule, "fraction": args.coreset_fraction,
        "warmup_epochs": trainer.plan.warmup_epochs,
        "epochs": int(args.num_train_epochs), "seed": trainer.coreset_seed,
        "kept": len(sel) if sel is not None and schedule == "static" else None,
        "num_rows": trainer.coreset_source.num_rows, "weighted": sel is not None and sel.weights is not None,
        "options": trainer._options, "fingerprint": sel.fingerprint if sel is not None else None,
        "selection_repo": repo, "selection_url": f"{constants.ENDPOINT}/datasets/{repo}" if repo else None,
        "events": trainer.coreset_events, "crest": asdict(trainer.crest.config) if trainer.crest else None,
        "selection_dir": SELECTION_DIR, "version": __version__,
    }
