"""Publish selections on the Hugging Face Hub and reuse them by repo id.

A pushed repository holds, in one commit:

- ``data/train-*.parquet``: the kept rows (config ``default``), written by `datasets`;
- ``selection/``: ``selection.json`` (provenance), ``indices.parquet`` (``index`` plus ``weight``
  and ``gain`` where the method has them) and ``scores.parquet`` (one ``score`` per source row),
  exactly what :meth:`CoresetSelection.save` writes; the parquet files double as the configs
  ``selection`` and ``scores``, so ``load_dataset(repo, "selection")`` works without hf-coreset;
- ``README.md``: a dataset card rendered from ``model_cards/dataset_card.md``, showing
  ``selection/plot.png`` (:meth:`CoresetSelection.plot`) when matplotlib (the plots extra) is installed;
- ``selection/manifest.json``: the hashes of every file the push wrote, so that a later push can tell
  hf-coreset's files from a user's and never deletes or overwrites the latter without ``overwrite=True``.

Every request waits at most ``timeout`` seconds for the Hub (argument, else ``HF_CORESET_HUB_TIMEOUT``,
else 60), then fails with a `HubError`. With ``HF_HUB_OFFLINE=1``, :func:`download_selection` reads the
local Hugging Face cache only.

This module moves files; `CoresetSelection` (selection.py) owns them and calls it, never the other way
round: the file names come from the caller or from what :meth:`CoresetSelection.save` wrote.

Nothing pushed or loaded is a pickle, `trust_remote_code` is never set, and a token is only ever
passed through to `huggingface_hub` (argument, ``HF_TOKEN`` or the saved login): never logged,
printed or written by us.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .cards import render_dataset_card
from .version import __version__

if TYPE_CHECKING:
    from .selection import CoresetSelection

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"
SELECTION_DIR = "selection"
DATA_DIR = "data"
PLOT_FILE = "plot.png"  # in selection/: CoresetSelection.plot's figure, when matplotlib is installed
MANIFEST_FILE = "manifest.json"  # in selection/: {path: {"sha256": ..., "git": ...}} of every file a push wrote
TIMEOUT_ENV = "HF_CORESET_HUB_TIMEOUT"
DEFAULT_TIMEOUT = 60.0  # seconds a request waits for the Hub; a commit of many files can take tens of seconds
MAX_SHARD_BYTES = 500 * 2**20
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")  # "name" or "user/name"
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")  # the shard size `datasets.Dataset.push_to_hub` uses by default


class HubError(RuntimeError):
    """A push to or a load from the Hub failed; the message says what to do. Never contains a token."""


# ------------------------------------------------------------------------------- card
def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for `n` rows (e.g. ``"1K<n<10K"``)."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    for bound, name in bounds:
        if n < bound:
            return name
    return "n>1T" if n > 10**12 else "1B<n<10B" if n < 10**10 else "10B<n<100B" if n < 10**11 else "100B<n<1T"


def _task_categories(dataset, label_column: str) -> list[str] | None:
    """Guess the task from the column types (classification, since selections need class labels)."""
    import datasets

    kinds = {type(f).__name__ for name, f in dataset.features.items() if name != label_column}
    if "Image" in kinds:
        return ["image-classification"]
    if "Audio" in kinds:
        return ["audio-classification"]
    if any(isinstance(f, datasets.Value) and f.dtype in ("string", "large_string")
           for name, f in dataset.features.items() if name != label_column):
        return ["text-classification"]
    return None


def _method_info(method: str) -> tuple[str | None, str | None]:
    from . import methods

    try:
        spec = methods.get(method)
    except (KeyError, ValueError):  # a method from a newer hf-coreset: the card still renders
        return None, None
    return spec.summary, spec.paper


def _per_class_rows(selection: "CoresetSelection", dataset) -> list[dict]:
    column = selection.label_column
    if column is None or column not in dataset.column_names:
        return []
    # Through Arrow: np.asarray of a numpy-formatted column converts row by row (~70x slower on datasets 5).
    labels = np.asarray(dataset.with_format("arrow")[column].to_numpy(), dtype=np.int64)
    totals = np.bincount(labels)
    kept = selection.per_class_counts(labels)
    names = getattr(dataset.features[column], "names", None)
    most = max(kept.values(), default=1)
    # A text bar per class (up to 20 blocks, scaled to the largest class) is the card's plot: it renders
    # on the Hub and in any markdown viewer without an image file in the repo.
    return [{"id": c, "name": names[c] if names and c < len(names) else "", "total": int(totals[c]),
             "kept": kept.get(c, 0), "percent": 100.0 * kept.get(c, 0) / max(int(totals[c]), 1),
             "bar": "\u2588" * max(int(round(20 * kept.get(c, 0) / most)), 1 if kept.get(c, 0) else 0)}
            for c in range(len(totals)) if totals[c] > 0]


def _benchmark_rows(config: dict) -> list[tuple[str, Any]]:
    """Rows of ``config["benchmark"]`` and ``config["evaluation"]`` (each flattened one level); empty when
    the selection holds no quality numbers."""
    rows = []
    for name in ("benchmark", "evaluation"):
        bench = config.get(name)
        if not isinstance(bench, dict):
            continue
        for key, value in bench.items():
            if isinstance(value, dict):
                rows += [(f"{key} / {k}", v) for k, v in value.items()]
            else:
                rows.append((str(key), value))
    return rows


LOCAL_PATH = "<local path>"


def _is_local_path(text: str) -> bool:
    """Whether `text` names a file or folder on the user's machine (absolute, home-relative, or existing)."""
    text = text.strip()
    if not text or "\n" in text:
        return False
    return (os.path.isabs(text) or text.startswith("~") or bool(re.match(r"[A-Za-z]:[\\/]", text))
            or (("/" in text or os.sep in text) and os.path.exists(text)))


def _without_local_paths(value):
    """`value` (JSON-like) with every string that is a local path replaced: a card never shows the user's paths."""
    if isinstance(value, dict):
        return {k: _without_local_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_local_paths(v) for v in value]
    if isinstance(value, str) and _is_local_path(value):
        return LOCAL_PATH
    return value


def _model_name(config: dict) -> str | None:
    """The scoring model as the card names it: its Hub id, else its class, never a path."""
    name = config.get("model_name")
    if not isinstance(name, str) or not name:
        return None
    if HUB_ID.fullmatch(name) and ".." not in name and not _is_local_path(name):
        return name
    return config.get("model_class") or "a local model"


def dataset_card(selection: "CoresetSelection", dataset, repo_id: str, *, source_dataset: str | None = None,
                 source_revision: str | None = None, license: str | None = None,
                 task_categories: list[str] | None = None, pretty_name: str | None = None, plot: str | None = None):
    """The dataset card of a pushed selection (``model_cards/dataset_card.md``): what it shows, rendered by
    :func:`hf_coreset.cards.render_dataset_card`.

    Args:
        selection (`CoresetSelection`): the selection being published.
        dataset (`datasets.Dataset`): its source (for license, class names and per-class counts).
        repo_id (`str`): the repository the card is for (used in the loading snippets).
        source_dataset (`str`, *optional*): Hub id of the source, e.g. ``"stanfordnlp/imdb"``;
            defaults to ``dataset.info.dataset_name``.
        source_revision (`str`, *optional*): the source's revision, shown in the card.
        license (`str`, *optional*): defaults to the source's ``dataset.info.license``.
        task_categories (`list[str]`, *optional*): guessed from the column types if omitted.
        pretty_name (`str`, *optional*): title of the card; defaults to the source's name, method and
            share kept, ``"<source> <method> coreset (<pct>%)"``, or for a source without a name
            ``"<method> coreset (<pct>% of <n> rows)"``.
        plot (`str`, *optional*): path in the repo of the selection's figure (:meth:`CoresetSelection.plot`),
            shown in the card.

    Returns:
        `str`: the card, YAML header first. It never shows a path of the user's machine: the model is
        named by Hub id or class, and local paths in the config read ``<local path>``.

    Example:
        ```python
        >>> card = dataset_card(sel, ds, "me/mnist1d-kcenter-10pct", source_dataset="mnist1d")
        >>> card.splitlines()[0]
        '---'
        ```
    """
    info = dataset.info
    source = source_dataset or info.dataset_name or None
    if source and _is_local_path(source):  # a folder name is no dataset name to show or load
        source = None
    source_license = license or info.license or None
    # The card's `license` must be a Hub license id; a free-text license from the source becomes "other"
    # and is quoted in the card body instead.
    license = None
    if source_license:
        license = source_license.strip().lower() if LICENSE_ID.fullmatch(source_license.strip().lower()) else "other"
    config = selection.config or {}
    kept = len(selection)
    summary, paper = _method_info(selection.method)
    summary = summary.rstrip(".") if summary else None
    paper = paper if paper and paper.strip() not in ("-", "") else None
    split = str(dataset.split) if getattr(dataset, "split", None) is not None else config.get("split")
    configs = [
        {"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/train-*"}], "default": True},
        {"config_name": "selection", "data_files": [{"split": "train", "path": f"{SELECTION_DIR}/indices.parquet"}]},
        {"config_name": "scores", "data_files": [{"split": "train", "path": f"{SELECTION_DIR}/scores.parquet"}]},
    ]
    card_data = dict(
        license=license,
        source_datasets=[source] if source else None,
        task_categories=task_categories if task_categories is not None else _task_categories(dataset, selection.label_column),
        size_categories=[size_category(kept)],
        tags=["coreset", selection.method, "hf-coreset"],
        pretty_name=pretty_name or (f"{source} {selection.method} coreset ({selection.fraction:.1%})" if source else
                                    f"{selection.method} coreset ({selection.fraction:.1%} of {selection.num_rows} rows)"),
        configs=configs,
        coreset={"method": selection.method, "fraction": round(selection.fraction, 6), "num_kept": kept,
                 "num_rows": selection.num_rows, "seed": selection.seed, "weighted": selection.weights is not None,
                 "source_fingerprint": selection.source_fingerprint, "fingerprint": selection.fingerprint,
                 "library_version": selection.library_version},
    )
    if source:
        load = f'load_dataset("{source}"' + (f', revision="{source_revision}"' if source_revision else "") \
            + f', split="{split or "train"}")'
        source_md = f"[{source}](https://huggingface.co/datasets/{source})" if "/" in source else f"`{source}`"
    else:
        load = "...  # the dataset the selection was made from"
        source_md = f"a local dataset (fingerprint `{selection.source_fingerprint}`)"
    model = _model_name(config)
    config = _without_local_paths(config)
    model_md = (f"`{model}` (weights hash `{config.get('model_fingerprint')}`), proxy: `{json.dumps(config.get('proxy'))}`"
                if model else "none (the method uses labels only)")
    return render_dataset_card(dict(
        card_data=card_data,
        repo_id=repo_id, method=selection.method, method_summary=summary, paper=paper,
        method_version=config.get("method_version"), fraction=selection.fraction, kept=kept,
        num_rows=selection.num_rows, seed=selection.seed, weighted=selection.weights is not None,
        has_gains=selection.gains is not None, source_md=source_md, source_split=split,
        source_revision=source_revision, source_fingerprint=selection.source_fingerprint,
        label_column=selection.label_column, label_hash=selection.label_hash,
        source_license=" ".join(source_license.split())[:300] if source_license else None, fingerprint=selection.fingerprint,
        model_md=model_md, library_version=selection.library_version, pushed_with=__version__,
        config_json=json.dumps(config, indent=2, sort_keys=True, default=repr), source_load=load,
        per_class=_per_class_rows(selection, dataset), benchmark=_benchmark_rows(config), plot=plot,
        auto_validation=config.get("auto_validation"),
    ))


# ----------------------------------------------------------------------------- timeout
def hub_timeout(timeout: float | None = None) -> float:
    """Seconds a Hub request may wait for an answer: `timeout`, else ``HF_CORESET_HUB_TIMEOUT``, else 60."""
    name = "timeout"
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_TIMEOUT
        name = TIMEOUT_ENV
        try:
            timeout = float(raw)
        except ValueError:
            raise ValueError(f"{TIMEOUT_ENV}={raw!r} is not a number; set it to the seconds a Hub request may wait "
                             f"for an answer (e.g. 120), or unset it for {DEFAULT_TIMEOUT:g}.") from None
    elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds (e.g. 120), not {type(timeout).__name__}.")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"{name}={timeout!r}; pass a positive number of seconds a Hub request may wait (e.g. 120).")
    return float(timeout)


_ACTIVE_TIMEOUTS: list[float] = []  # of the hf-coreset Hub calls in progress (any thread)
_TIMEOUT_LOCK = threading.Lock()


def _fill_timeout(request) -> None:
    """Request hook on huggingface_hub's HTTP client: while an hf-coreset call runs, a request sent
    without a timeout (most of HfApi's: create_repo, create_commit, uploads) gets that call's, so a
    server that accepts and never answers cannot block forever. Timeouts huggingface_hub sets itself
    (HF_HUB_DOWNLOAD_TIMEOUT, HF_HUB_ETAG_TIMEOUT) are kept."""
    if not _ACTIVE_TIMEOUTS:
        return
    seconds = min(_ACTIVE_TIMEOUTS)
    given = request.extensions.get("timeout") or {}
    filled = {key: seconds if given.get(key) is None else given[key] for key in ("connect", "read", "write", "pool")}
    request.extensions = {**request.extensions, "timeout": filled}


@contextmanager
def _requests_time_out(seconds: float):
    """Apply `seconds` to the requests huggingface_hub sends in this block (see `_fill_timeout`)."""
    from huggingface_hub import get_session

    # The hook goes on the shared client (a no-op outside hf-coreset's calls). It is added on entry, as
    # huggingface_hub may have replaced the client (set_client_factory, close_session) since the last call.
    # A requests-based huggingface_hub (< 1.0) has no request hooks: its own timeouts apply.
    hooks = getattr(get_session(), "event_hooks", {}).get("request")
    if hooks is not None and _fill_timeout not in hooks:
        hooks.append(_fill_timeout)
    with _TIMEOUT_LOCK:
        _ACTIVE_TIMEOUTS.append(seconds)
    try:
        yield
    finally:
        with _TIMEOUT_LOCK:
            _ACTIVE_TIMEOUTS.remove(seconds)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)  # read once at import, like huggingface_hub does


# ------------------------------------------------------------------------------ errors
def _transport_errors() -> tuple[type[BaseException], ...]:
    """HTTP errors of whichever client huggingface_hub uses (httpx2 in 2.x, requests before)."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [HfHubHTTPError, OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _timed_out(err: BaseException | None) -> bool:
    """Whether `err` or what caused it is an HTTP timeout (huggingface_hub wraps some, e.g. in downloads)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, TimeoutError) or "Timeout" in type(err).__name__:  # httpx2's ReadTimeout, ...
            return True
        err = err.__cause__ or err.__context__
    return False


def _hub_error(err: BaseException, action: str, repo_id: str, token: str | None, seconds: float) -> HubError:
    """A `HubError` for a failed Hub call, saying what to do; any token is scrubbed from the text."""
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    status = getattr(getattr(err, "response", None), "status_code", None)
    unconfirmed = False  # the Hub may have received the request but gave no answer
    if _timed_out(err):
        unconfirmed = True
        text = (f"{action} {repo_id!r} failed: the Hub at {constants.ENDPOINT} did not answer within {seconds:g} s. "
                f"Check your network and the endpoint (HF_ENDPOINT), or allow more time with timeout=... "
                f"or {TIMEOUT_ENV}=<seconds>.")
    elif status == 412:
        text = (f"{action} {repo_id!r} failed: another commit landed on that branch while pushing, so nothing was "
                f"changed; push again.")
    elif status == 401 and not isinstance(err, RepositoryNotFoundError):
        text = (f"{action} {repo_id!r} failed: the Hub at {constants.ENDPOINT} refused the token (401 Unauthorized). "
                f"Pass a valid token with write access as token=..., set HF_TOKEN, or run `hf auth login`.")
    elif status == 403:
        text = (f"{action} {repo_id!r} failed: the token has no write access to that namespace (403 Forbidden). "
                f"Use a repo id under your user or an organisation you can write to.")
    elif isinstance(err, RevisionNotFoundError):
        text = f"{action} {repo_id!r} failed: that revision does not exist; pass an existing branch, tag or commit."
    elif isinstance(err, RepositoryNotFoundError):
        text = (f"{action} {repo_id!r} failed: no dataset repository {repo_id!r} at {constants.ENDPOINT}, or it is "
                f"private and no token with access was given (pass token=... or set HF_TOKEN).")
    else:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        text = f"{action} {repo_id!r} failed ({type(err).__name__}: {first})."
        unconfirmed = True
    if unconfirmed and action.startswith("Pushing"):
        # The commit is the last step and is atomic on the Hub: either all files landed or none.
        text += (" The Hub did not confirm the commit, so the push is not done; the local selection is "
                 "unchanged. Push again once the Hub is reachable (if the commit did land, pushing the same "
                 "selection again changes nothing).")
    return HubError(_scrub(text, token))


def _scrub(text: str, token: str | None) -> str:
    from huggingface_hub import get_token

    for secret in {token, get_token()}:
        if secret:
            text = text.replace(secret, "***")
    return text


# ------------------------------------------------------------------------------- push
def _write_shards(pruned, folder: Path, max_shard_bytes: int) -> list[str]:
    """Write the kept rows as ``train-XXXXX-of-YYYYY.parquet`` shards, embedding external files
    (images, audio given by path) as `datasets.Dataset.push_to_hub` does, so the repo is self-contained."""
    from datasets.features.features import require_decoding
    from datasets.table import embed_table_storage

    # _estimate_nbytes counts only the selected rows (and external files); datasets' push_to_hub uses it too.
    estimate = getattr(pruned, "_estimate_nbytes", None)
    nbytes = estimate() if estimate is not None and len(pruned) else pruned.data.nbytes
    num_shards = max(1, min(len(pruned), math.ceil(nbytes / max_shard_bytes)))
    embed = any(require_decoding(f, ignore_decode_attribute=True) for f in pruned.features.values())
    names = []
    for i in range(num_shards):
        shard = pruned.shard(num_shards=num_shards, index=i, contiguous=True)
        if embed:
            shard = shard.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True)
        name = f"train-{i:05d}-of-{num_shards:05d}.parquet"
        shard.to_parquet(str(folder / name))
        names.append(name)
    return names


def push_to_hub(selection: "CoresetSelection", repo_id: str, *, dataset, private: bool = False,
                token: str | None = None, revision: str | None = None, commit_message: str | None = None,
                check: str = "strict", source_dataset: str | None = None, source_revision: str | None = None,
                license: str | None = None, task_categories: list[str] | None = None,
                max_shard_size: int = MAX_SHARD_BYTES, overwrite: bool = False, timeout: float | None = None):
    """Publish the kept rows, the selection and a dataset card to a Hub dataset repo in one commit.

    The repo is created if needed. Files of an earlier push that this one does not rewrite (e.g.
    shards of a larger pruned set) are deleted in the same commit, so every revision is consistent.
    A push replaces only ``README.md`` and files under ``data/`` and ``selection/``; if any of those
    were not written by hf-coreset (no match in ``selection/manifest.json``, e.g. a user's own
    ``data/train-*.parquet`` or an edited card), it is refused with a `HubError` naming them, and
    nothing changes, unless `overwrite=True` or `revision` names a new branch (the old files stay on main).
    If any step fails, a `HubError` says so and the repo's branch keeps its previous commit: a
    commit is the Hub's unit of change, and it is made last.

    Args:
        selection (`CoresetSelection`): what to publish.
        repo_id (`str`): ``"user/name"`` of the dataset repo.
        dataset (`datasets.Dataset`): the source the selection was made from (checked, see `check`).
        private (`bool`, *optional*, defaults to `False`): visibility of a newly created repo.
        token (`str`, *optional*): a write token; defaults to ``HF_TOKEN`` or the saved login.
        revision (`str`, *optional*): branch to commit to (created from ``main`` if missing);
            defaults to ``main``.
        commit_message (`str`, *optional*): defaults to a line naming method and fraction.
        check (`str`, *optional*, defaults to `"strict"`): how to check `dataset` against the
            selection's source (`"strict"`, `"content"` or `"none"`, see `CoresetSelection.check_source`).
        source_dataset (`str`, *optional*): Hub id of the source, for the card's metadata and snippets.
        source_revision (`str`, *optional*): the source's revision, for the card.
        license (`str`, *optional*): defaults to the source's license (``dataset.info.license``).
        task_categories (`list[str]`, *optional*): card metadata; guessed from the columns if omitted.
        max_shard_size (`int`, *optional*, defaults to 500 MiB): bytes per Parquet shard.
        overwrite (`bool`, *optional*, defaults to `False`): replace files hf-coreset did not write.
        timeout (`float`, *optional*): seconds each request may wait for the Hub; defaults to
            ``HF_CORESET_HUB_TIMEOUT`` or 60.

    Returns:
        `huggingface_hub.CommitInfo` of the commit (``.oid`` is the revision to pin).

    Example:
        ```python
        >>> info = sel.push_to_hub("me/mnist1d-kcenter-10pct", dataset=ds)
        >>> load_dataset("me/mnist1d-kcenter-10pct", split="train").num_rows == len(sel)
        True
        ```
    """
    import datasets
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import RevisionNotFoundError

    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be the source datasets.Dataset the selection was made from, "
                        f"not {type(dataset).__name__}; e.g. push_to_hub(repo_id, dataset=ds['train']).")
    if not isinstance(repo_id, str) or repo_id.count("/") > 1 or not repo_id.strip("/"):
        raise ValueError(f"repo_id={repo_id!r}; pass 'user/name' (or 'name' for your own namespace).")
    if revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision):
        raise ValueError(f"revision={revision!r} is a commit; a push goes to a branch: pass a branch name "
                         f"(created from main if missing) or leave it None for main.")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, not {overwrite!r}.")
    seconds = hub_timeout(timeout)
    if _offline():
        raise HubError(f"Cannot push to {repo_id!r}: HF_HUB_OFFLINE is set and a push needs the Hub; unset "
                       f"HF_HUB_OFFLINE (or set it to 0) and push again.")
    pruned = selection.apply(dataset, check=check)
    message = commit_message or (f"hf-coreset: {selection.method} coreset, {len(selection)}/{selection.num_rows} rows "
                                 f"({selection.fraction:.1%})")
    figure = _figure(selection, dataset)
    card = dataset_card(selection, dataset, repo_id, source_dataset=source_dataset, source_revision=source_revision,
                        license=license, task_categories=task_categories,
                        plot=f"{SELECTION_DIR}/{PLOT_FILE}" if figure is not None else None)
    api = HfApi(token=token, library_name="hf-coreset")
    action = "Pushing the selection to"
    try:
        with _requests_time_out(seconds):
            repo_id = api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True).repo_id
            try:
                head = api.dataset_info(repo_id, revision=revision, files_metadata=True, timeout=seconds)
                new_branch = False
            except RevisionNotFoundError:  # a new branch starts from main: main keeps its files
                head = api.dataset_info(repo_id, files_metadata=True, timeout=seconds)
                new_branch = True
            remote = {s.rfilename: s.lfs.sha256 if s.lfs else s.blob_id for s in head.siblings or []}
            ours = _files_we_wrote(remote, repo_id, head.sha, token, seconds)
    except _transport_errors() as err:
        raise _hub_error(err, action, repo_id, token, seconds) from err
    replaced = sorted(p for p in remote if p not in ours and (p == "README.md" or p.startswith(
        (f"{DATA_DIR}/", f"{SELECTION_DIR}/"))))
    if replaced and not overwrite and not new_branch:
        raise HubError(f"Not pushing to {repo_id!r} (branch {revision or 'main'}): the push would delete or "
                       f"overwrite {len(replaced)} file(s) that hf-coreset did not write: {', '.join(replaced)}. "
                       f"Nothing was changed; pass overwrite=True (--overwrite) to replace them, push to a new "
                       f"branch with revision='...', or choose another repo_id.")
    with tempfile.TemporaryDirectory(prefix="hf_coreset_push_") as tmp:
        tmp = Path(tmp)
        (tmp / DATA_DIR).mkdir()
        shards = _write_shards(pruned, tmp / DATA_DIR, max_shard_size)
        selection.save(tmp / SELECTION_DIR)
        saved = sorted(p.name for p in (tmp / SELECTION_DIR).iterdir())  # the selection's own files
        if figure is not None:
            figure.savefig(tmp / SELECTION_DIR / PLOT_FILE, format="png", dpi=100)
            saved.append(PLOT_FILE)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        files = [f"{DATA_DIR}/{name}" for name in shards] + [f"{SELECTION_DIR}/{name}" for name in saved] + ["README.md"]
        manifest = {p: _file_hashes(tmp / p) for p in files}
        (tmp / SELECTION_DIR / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        files.append(f"{SELECTION_DIR}/{MANIFEST_FILE}")
        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(tmp / p)) for p in files]
        stale = [p for p in remote if p.startswith((f"{DATA_DIR}/", f"{SELECTION_DIR}/")) and p not in files]
        operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
        try:
            with _requests_time_out(seconds):
                if new_branch:
                    api.create_branch(repo_id, repo_type=REPO_TYPE, branch=revision, revision=head.sha, exist_ok=True)
                # parent_commit: if anyone commits after the files were checked above, the Hub refuses this one.
                info = api.create_commit(repo_id, operations, repo_type=REPO_TYPE, revision=revision,
                                         commit_message=message, parent_commit=head.sha,
                                         commit_description=f"Selection fingerprint {selection.fingerprint}.")
        except _transport_errors() as err:
            raise _hub_error(err, action, repo_id, token, seconds) from err
    logger.info("Pushed %s (%d rows) to %s at commit %s", selection, len(pruned), repo_id, info.oid)
    return info


def _figure(selection: "CoresetSelection", dataset):
    """The selection's figure for the card, or None (and a log line) without the plots extra."""
    from .extras import MissingExtra

    try:
        return selection.plot(dataset=dataset)
    except MissingExtra as err:
        logger.info("The dataset card gets no figure: %s", err)
        return None


def _file_hashes(path: Path) -> dict[str, str]:
    """The two ids the Hub may report for a file: sha256 (stored with LFS) and git blob id (a regular file)."""
    sha256, git = hashlib.sha256(), hashlib.sha1(b"blob %d\x00" % path.stat().st_size)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            sha256.update(chunk)
            git.update(chunk)
    return {"sha256": sha256.hexdigest(), "git": git.hexdigest()}


def _files_we_wrote(remote: dict[str, str], repo_id: str, sha: str, token: str | None, seconds: float) -> set[str]:
    """Paths in `remote` ({path: id the Hub reports}) that an hf-coreset push wrote and nobody changed since:
    listed with that id in the repo's ``selection/manifest.json`` (the manifest itself counts as ours)."""
    from huggingface_hub import hf_hub_download

    path = f"{SELECTION_DIR}/{MANIFEST_FILE}"
    if path not in remote:
        return set()
    local = hf_hub_download(repo_id, path, repo_type=REPO_TYPE, revision=sha, token=token,
                            library_name="hf-coreset", etag_timeout=seconds)
    try:
        manifest = json.loads(Path(local).read_text(encoding="utf-8"))
        ours = {p for p, ids in manifest.items() if remote.get(p) in ids.values()}
    except (ValueError, AttributeError, TypeError):  # not our manifest: nothing counts as ours
        return set()
    return ours | {path}


# ------------------------------------------------------------------------------- load
def download_selection(repo_id: str, files: tuple[str, ...], *, revision: str | None = None,
                       token: str | None = None, timeout: float | None = None) -> dict[str, str]:
    """Download the selection files `files` (names in ``selection/``) of a pushed repo, all from one commit.

    The revision is resolved to a commit first, so the files always come from one commit. With
    ``HF_HUB_OFFLINE=1`` they come from the local Hugging Face cache (a selection loaded once online),
    without any request. :meth:`CoresetSelection.from_hub` reads them.

    Args:
        repo_id (`str`): the dataset repo, ``"user/name"``.
        files (`tuple[str, ...]`): file names in ``selection/``, e.g. ``("selection.json", ...)``.
        revision (`str`, *optional*): branch, tag or commit sha; defaults to ``main``.
        token (`str`, *optional*): needed for a private repo; defaults to ``HF_TOKEN`` or the login.
        timeout (`float`, *optional*): seconds each request may wait for the Hub; defaults to
            ``HF_CORESET_HUB_TIMEOUT`` or 60.

    Returns:
        `dict[str, str]`: the local path of each file, by name.
    """
    from huggingface_hub import HfApi, errors, hf_hub_download
    try:
        from huggingface_hub.errors import RemoteEntryNotFoundError as EntryNotFoundError
    except ImportError:  # huggingface_hub < 1.0
        from huggingface_hub.errors import EntryNotFoundError

    seconds = hub_timeout(timeout)
    offline = _offline()
    not_cached = (errors.LocalEntryNotFoundError,
                  getattr(errors, "RevisionResolutionError", errors.LocalEntryNotFoundError))
    api = HfApi(token=token, library_name="hf-coreset")
    try:
        with _requests_time_out(seconds):
            if hasattr(api, "resolve_revision"):  # also records branch -> commit in the cache, for offline use
                sha = api.resolve_revision(repo_id, repo_type=REPO_TYPE, revision=revision, token=token,
                                           local_files_only=offline)
            else:  # huggingface_hub < 2: offline, hf_hub_download resolves a branch through the cache's refs/
                sha = revision if offline else api.dataset_info(repo_id, revision=revision, timeout=seconds).sha
            paths = {name: hf_hub_download(repo_id, f"{SELECTION_DIR}/{name}", repo_type=REPO_TYPE, revision=sha,
                                           token=token, library_name="hf-coreset", etag_timeout=seconds)
                     for name in files}
    except EntryNotFoundError as err:
        raise HubError(f"{repo_id!r} (revision {revision or 'main'}) lacks the selection files "
                       f"({', '.join(files)} in {SELECTION_DIR}/); was it pushed with CoresetSelection.push_to_hub?"
                       ) from err
    except not_cached as err:
        if not offline:  # the Hub did not answer and nothing usable is cached: say why the Hub did not answer
            raise _hub_error(err, "Loading the selection from", repo_id, token, seconds) from err
        from huggingface_hub import constants

        raise HubError(f"HF_HUB_OFFLINE is set and the selection {repo_id!r} (revision {revision or 'main'}) is not "
                       f"in the local Hugging Face cache ({constants.HF_HUB_CACHE}); unset HF_HUB_OFFLINE to "
                       f"download it, or load it once while online first.") from err
    except _transport_errors() as err:
        raise _hub_error(err, "Loading the selection from", repo_id, token, seconds) from err
    logger.info("Downloaded the selection files of %s at %s", repo_id, getattr(sha, "resolved", sha))
    return paths
