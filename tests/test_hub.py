"""Publishing and reusing selections on the Hub, against the loopback Hub in hub_server.py.

The real huggingface_hub and datasets clients talk HTTP to a server on 127.0.0.1; hf_coreset is
not told it is a test. One real-Hub test runs only with HF_TOKEN and network access.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
import zipfile
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml

import hf_coreset
from hf_coreset import CoresetSelection
from hf_coreset.cards import load_template
from hf_coreset.hub import HubError

from hub_server import SilentServer, serve  # tests/ is on sys.path (pytest rootdir-relative import)

TOKEN = "hf_loopbackWriteToken0123456789abcdef"
OTHER_TOKEN = "hf_loopbackOtherUser0123456789abcdef"


def point_clients_at(endpoint: str, home: Path, monkeypatch) -> None:
    """Point huggingface_hub and datasets at `endpoint`, online, with every cache and the token file under
    `home`: whatever the user's environment says (HF_HUB_OFFLINE=1, another HF_ENDPOINT, a saved login)."""
    import huggingface_hub.constants as hub_constants

    env = {"HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(home),
           "HF_HUB_CACHE": str(home / "hub"), "HF_DATASETS_CACHE": str(home / "datasets"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_OFFLINE": "0",
           "HF_DATASETS_OFFLINE": "0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("TRANSFORMERS_OFFLINE", "HF_CORESET_HUB_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)
    # Both libraries read these at import time.
    for name, value in {"ENDPOINT": endpoint, "HF_HUB_OFFLINE": False,
                        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
                        "HF_HUB_DISABLE_XET": True, "HF_HUB_DISABLE_PROGRESS_BARS": True, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
                        "HF_TOKEN_PATH": str(home / "token"), "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
                        "AGENT_HARNESSES_PATH": str(home / "agent_harnesses.json")}.items():
        monkeypatch.setattr(hub_constants, name, value)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", home / "modules")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", home / "datasets" / "downloads")


def go_offline(monkeypatch) -> None:
    """HF_HUB_OFFLINE=1 as a user sets it (the constants are read at import, so they are set too)."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A loopback Hub with users "me" (token TOKEN, also in HF_TOKEN) and "you"; every client cache and
    the token file live under tmp_path, so nothing touches the real Hub or the user's login."""
    server, thread = serve(tmp_path / "hub_storage", {TOKEN: "me", OTHER_TOKEN: "you"})
    point_clients_at(server.endpoint, tmp_path / "hf_home", monkeypatch)
    yield server
    if not server.state.down:
        server.shutdown()
        server.server_close()
    thread.join(timeout=5)
    assert not server.state.errors, server.state.errors[0]


@pytest.fixture
def silent_hub(tmp_path, monkeypatch):
    """An endpoint on 127.0.0.1 that accepts connections and never answers."""
    server = SilentServer()
    point_clients_at(server.endpoint, tmp_path / "hf_home", monkeypatch)
    yield server
    server.close()


@pytest.fixture(scope="module")
def source(mnist1d_small):
    return mnist1d_small["train"]


@pytest.fixture(scope="module")
def craig_selection(source):
    """A real weighted selection (CRAIG after one proxy epoch of the MNIST-1D ConvNet)."""
    from hf_coreset.data.mnist1d import make_convnet

    return hf_coreset.select(source, "craig", fraction=0.1, model=make_convnet(0), seed=0, epoch=1,
                             proxy={"optimizer": "adam", "lr": 1e-2, "batch_size": 256}, progress=False)


def load(repo_id, *args, **kwargs):
    return datasets.load_dataset(repo_id, *args, **kwargs)


def card_yaml(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def read_remote(repo_id, path, revision=None) -> str:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, path, repo_type="dataset", revision=revision)).read_text()


def requests_since(server, start):
    return server.state.requests[start:]


def test_round_trip(hub, source, craig_selection):
    sel = craig_selection
    info = sel.push_to_hub("me/mnist1d-craig", dataset=source, source_dataset="mnist1d")
    assert hub.state.commit_count("me/mnist1d-craig") == 2  # the repo's initial commit + one push commit
    files = sorted(hub.state.repos[("dataset", "me/mnist1d-craig")].commits[info.oid]["tree"])
    assert files == [".gitattributes", "README.md", "data/train-00000-of-00001.parquet", "selection/indices.parquet",
                     "selection/manifest.json", "selection/plot.png", "selection/scores.parquet",
                     "selection/selection.json"]
    # The manifest records what this push wrote (all but itself and the Hub's .gitattributes), by content hash.
    manifest = json.loads(read_remote("me/mnist1d-craig", "selection/manifest.json"))
    assert sorted(manifest) == files[1:4] + files[5:]
    tree = hub.state.repos[("dataset", "me/mnist1d-craig")].commits[info.oid]["tree"]
    assert manifest["data/train-00000-of-00001.parquet"]["sha256"] == tree["data/train-00000-of-00001.parquet"].sha256

    # The pruned rows load with plain datasets and equal the selection applied to the source.
    pruned = load("me/mnist1d-craig", split="train")
    expected = sel.apply(source)
    assert pruned.num_rows == len(sel) == expected.num_rows
    assert pruned.features == source.features
    assert pruned["label"] == expected["label"]
    np.testing.assert_array_equal(np.asarray(pruned["x"]), np.asarray(expected["x"]))

    # The selection config loads without hf-coreset: indices in pick order with CRAIG's weights.
    table = load("me/mnist1d-craig", "selection", split="train")
    np.testing.assert_array_equal(table["index"], sel.indices)
    np.testing.assert_allclose(table["weight"], sel.weights)
    scores = load("me/mnist1d-craig", "scores", split="train")
    assert scores.num_rows == source.num_rows

    # from_hub reads only selection/ files, then applies exactly like the original.
    start = len(hub.state.requests)
    back = CoresetSelection.from_hub("me/mnist1d-craig")
    fetched = [p for m, p, s in requests_since(hub, start) if "/resolve/" in p and m == "GET"]
    assert fetched and all("/selection/" in p for p in fetched), fetched
    np.testing.assert_array_equal(back.indices, sel.indices)
    np.testing.assert_allclose(back.weights, sel.weights)
    np.testing.assert_allclose(back.gains, sel.gains)
    np.testing.assert_array_equal(np.isnan(back.scores), np.isnan(sel.scores))
    assert (back.method, back.seed, back.fingerprint, back.source_fingerprint, back.config) == \
        (sel.method, sel.seed, sel.fingerprint, sel.source_fingerprint, json.loads(json.dumps(sel.metadata()["config"])))
    assert back.apply(source)["label"] == expected["label"]

    # The one-line reuse path.
    again = source.select_coreset(from_hub="me/mnist1d-craig")
    assert again["label"] == expected["label"] and again.num_rows == len(sel)


def test_card_metadata_and_body(hub, craig_selection, source):
    sel = craig_selection
    sel.push_to_hub("me/card", dataset=source, source_dataset="someone/mnist1d", source_revision="abc123")
    text = read_remote("me/card", "README.md")
    meta = card_yaml(text)
    assert meta["source_datasets"] == ["someone/mnist1d"]
    assert {"coreset", "craig", "hf-coreset"} <= set(meta["tags"])
    assert meta["size_categories"] == ["n<1K"]  # 160 kept rows
    assert {c["config_name"] for c in meta["configs"]} == {"default", "selection", "scores"}
    assert meta["coreset"]["seed"] == 0 and meta["coreset"]["num_kept"] == len(sel)
    assert "license" not in meta  # the generated source has none; nothing is invented
    body = text.split("---\n", 2)[2]
    for fragment in ("someone/mnist1d", "abc123", sel.source_fingerprint, "`craig`", "| seed | 0 |",
                     f"hf-coreset {hf_coreset.__version__}", 'load_dataset("me/card", split="train")',
                     'source.select_coreset(from_hub="me/card")', '"selection", split="train")["index"]',
                     "MNIST1DConvNet", sel.config["model_fingerprint"]):
        assert fragment in body, fragment
    # The per-class table matches the selection's counts.
    counts = sel.per_class_counts(np.asarray(source["label"]))
    rows = [line.split("|") for line in body.splitlines() if line.startswith("| ") and line.count("|") == 7]
    table = {int(r[1]): int(r[4]) for r in rows if r[1].strip().isdigit()}
    assert table == counts
    assert "## Benchmark" not in body  # this selection carries no benchmark numbers


def test_card_license_task_and_benchmark(hub):
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "neu", "pos"])})
    info = datasets.DatasetInfo(license="CC-BY-4.0", dataset_name="tiny-text", features=features)
    ds = datasets.Dataset.from_dict({"text": [f"review {i}" for i in range(60)], "label": [i % 3 for i in range(60)]},
                                    features=features, info=info)
    sel = hf_coreset.select(ds, "random", fraction=0.5, seed=3)
    sel.config["benchmark"] = {"test_accuracy": {"coreset": 0.81, "random": 0.78}}
    sel.push_to_hub("me/text", dataset=ds)
    text = read_remote("me/text", "README.md")
    meta = card_yaml(text)
    assert meta["license"] == "cc-by-4.0"
    assert meta["source_datasets"] == ["tiny-text"]
    assert meta["task_categories"] == ["text-classification"]
    assert "| license | CC-BY-4.0 |" in text
    # A free-text license is not a Hub license id: the metadata says "other", the body quotes it.
    ds.info.license = "Free for research.\nNo redistribution."
    sel.push_to_hub("me/text", dataset=ds)
    text = read_remote("me/text", "README.md")
    assert card_yaml(text)["license"] == "other" and "| license | Free for research. No redistribution. |" in text
    assert "| test_accuracy / coreset | 0.81 |" in text and "| test_accuracy / random | 0.78 |" in text
    assert "| 2 | pos | 20 | 10 | 50.0 |" in text
    assert load("me/text", split="train")["text"] == sel.apply(ds)["text"]


def test_private_repo(hub, source, monkeypatch):
    sel = hf_coreset.select(source, "random", fraction=0.05, seed=1)
    sel.push_to_hub("me/secret", dataset=source, private=True)
    assert hub.state.repos[("dataset", "me/secret")].private
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/secret").indices, sel.indices)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="private") as err:
        CoresetSelection.from_hub("me/secret")
    assert "me/secret" in str(err.value)
    with pytest.raises(HubError, match="private"):  # another user's token does not see it either
        CoresetSelection.from_hub("me/secret", token=OTHER_TOKEN)
    # An explicit token argument works with no HF_TOKEN in the environment, for both clients.
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/secret", token=TOKEN).indices, sel.indices)
    assert load("me/secret", split="train", token=TOKEN).num_rows == len(sel)


def test_revisions_second_push_and_branch(hub, source):
    first = hf_coreset.select(source, "random", fraction=0.1, seed=0)
    second = hf_coreset.select(source, "random", fraction=0.05, seed=1)
    # The first push writes three shards; the second, one: the stale shards go in the same commit.
    a = first.push_to_hub("me/pinned", dataset=source, max_shard_size=10_000)
    repo = hub.state.repos[("dataset", "me/pinned")]
    assert sum(p.startswith("data/") for p in repo.commits[a.oid]["tree"]) == 3
    start = len(hub.state.requests)
    b = second.push_to_hub("me/pinned", dataset=source, commit_message="smaller")
    commits = [p for m, p, s in requests_since(hub, start) if "/commit/" in p]
    assert len(commits) == 1 and repo.commits[b.oid]["parent"] == a.oid and repo.commits[b.oid]["title"] == "smaller"
    assert sorted(p for p in repo.commits[b.oid]["tree"] if p.startswith("data/")) == ["data/train-00000-of-00001.parquet"]

    np.testing.assert_array_equal(CoresetSelection.from_hub("me/pinned").indices, second.indices)
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/pinned", revision=a.oid).indices, first.indices)
    assert load("me/pinned", split="train").num_rows == len(second)
    assert load("me/pinned", split="train", revision=a.oid)["label"] == first.apply(source)["label"]
    pinned = source.select_coreset(from_hub="me/pinned", revision=a.oid)
    assert pinned.num_rows == len(first)

    # A push to a branch leaves main alone.
    c = first.push_to_hub("me/pinned", dataset=source, revision="v1")
    assert repo.branches["main"] == b.oid and repo.branches["v1"] == c.oid
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/pinned", revision="v1").indices, first.indices)
    with pytest.raises(HubError, match="revision"):
        CoresetSelection.from_hub("me/pinned", revision="no-such-branch")


def test_refuses_a_dataset_that_is_not_the_source(hub, source, mnist1d_small):
    sel = hf_coreset.select(source, "random", fraction=0.1, seed=0)
    sel.push_to_hub("me/strict", dataset=source)
    back = CoresetSelection.from_hub("me/strict")
    other = mnist1d_small["test"]  # 400 rows
    with pytest.raises(ValueError) as err:
        back.apply(other)
    assert sel.source_fingerprint in str(err.value) and other._fingerprint in str(err.value)
    # Same size, labels permuted: the label hash catches it, naming both hashes.
    permuted = source.select(np.random.default_rng(0).permutation(source.num_rows))
    with pytest.raises(ValueError) as err:
        permuted.select_coreset(from_hub="me/strict")
    assert sel.label_hash in str(err.value)
    # Same rows and labels, different fingerprint (e.g. a copy built another way): strict refuses,
    # content accepts.
    copy = datasets.Dataset.from_dict(source.to_dict(), features=source.features)
    with pytest.raises(ValueError, match="fingerprint"):
        copy.select_coreset(from_hub="me/strict")
    assert copy.select_coreset(from_hub="me/strict", check="content")["label"] == sel.apply(source)["label"]
    with pytest.raises(TypeError, match="from_hub"):
        source.select_coreset("random", from_hub="me/strict")
    # push_to_hub refuses to publish rows of a dataset that is not the selection's source.
    with pytest.raises(ValueError):
        sel.push_to_hub("me/strict", dataset=other)


def test_clear_errors_for_missing_repo_or_selection(hub, source):
    from huggingface_hub import HfApi

    with pytest.raises(HubError, match="no dataset repository 'me/nothing'"):
        CoresetSelection.from_hub("me/nothing")
    HfApi().create_repo("me/plain", repo_type="dataset")
    HfApi().upload_file(path_or_fileobj=b"# just a card", path_in_repo="README.md", repo_id="me/plain",
                        repo_type="dataset")
    with pytest.raises(HubError, match="push_to_hub"):
        CoresetSelection.from_hub("me/plain")
    sel = hf_coreset.select(source, "random", fraction=0.1, seed=0)
    with pytest.raises(ValueError, match="branch"):
        sel.push_to_hub("me/plain", dataset=source, revision="0" * 40)


def test_server_down_mid_push(hub, source, tmp_path):
    first = hf_coreset.select(source, "random", fraction=0.1, seed=0)
    a = first.push_to_hub("me/flaky", dataset=source)
    second = hf_coreset.select(source, "random", fraction=0.2, seed=5)
    saved = second.save(tmp_path / "local")
    before = {p.name: p.read_bytes() for p in saved.iterdir()}

    hub.state.fail["commit"] = "close"  # the LFS uploads succeed, then the commit's connection drops
    with pytest.raises(HubError, match="me/flaky") as err:
        second.push_to_hub("me/flaky", dataset=source)
    assert "Pushing the selection" in str(err.value) and "not done" in str(err.value)
    repo = hub.state.repos[("dataset", "me/flaky")]
    assert repo.branches["main"] == a.oid and len(repo.commits) == 2  # nothing half-committed
    assert any(m == "PUT" for m, p, s in hub.state.requests)  # the data did reach the LFS store
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/flaky").indices, first.indices)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert len(second) == round(0.2 * source.num_rows) and CoresetSelection.load(saved).fingerprint == second.fingerprint

    hub.state.fail["commit"] = 503  # the server answers an error instead
    with pytest.raises(HubError, match="503"):
        second.push_to_hub("me/flaky", dataset=source)
    assert repo.branches["main"] == a.oid

    # The retry after the outage is a normal, single commit.
    b = second.push_to_hub("me/flaky", dataset=source)
    assert repo.commits[b.oid]["parent"] == a.oid

    hub.go_down()  # the whole server is gone
    with pytest.raises(HubError, match="me/flaky"):
        first.push_to_hub("me/flaky", dataset=source)


def bounded(call, limit: float = 60.0) -> BaseException | None:
    """Run `call` in a thread and wait at most `limit` seconds: a hang fails the test instead of blocking it."""
    outcome = {}

    def target():
        try:
            call()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            outcome["err"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the Hub call still hangs after {limit:g} s"
    return outcome.get("err")


def test_hub_that_never_answers_times_out(silent_hub, source, tmp_path, monkeypatch, capsys):
    sel = hf_coreset.select(source, "random", fraction=0.05, seed=0)
    err = bounded(lambda: CoresetSelection.from_hub("me/silent", timeout=1))
    assert isinstance(err, HubError), err
    text = str(err)
    assert "me/silent" in text and "did not answer within 1 s" in text and silent_hub.endpoint in text
    assert "timeout=" in text and "HF_CORESET_HUB_TIMEOUT" in text
    assert silent_hub.accepted  # the connection was made: this is the hang, not a refused connection

    # The environment variable sets it where no argument is given (the CLI's only way).
    monkeypatch.setenv("HF_CORESET_HUB_TIMEOUT", "1.5")
    err = bounded(lambda: sel.push_to_hub("me/silent", dataset=source))
    assert isinstance(err, HubError) and "did not answer within 1.5 s" in str(err), err
    err = bounded(lambda: source.select_coreset(from_hub="me/silent"))
    assert isinstance(err, HubError) and "1.5 s" in str(err), err
    from hf_coreset.cli import main

    sel.save(tmp_path / "sel")
    source.save_to_disk(str(tmp_path / "source"))
    args = ["push", "--selection", str(tmp_path / "sel"), "--dataset", str(tmp_path / "source"),
            "--repo-id", "me/silent", "--check", "content"]
    rc = []
    assert bounded(lambda: rc.append(main(args))) is None
    assert rc == [2] and "did not answer within 1.5 s" in capsys.readouterr().err


def test_bad_timeouts_are_refused_before_any_call(source, monkeypatch):
    sel = hf_coreset.select(source, "random", fraction=0.05, seed=0)
    for bad, kind in ((0, ValueError), (-1, ValueError), (float("nan"), ValueError), ("10", TypeError),
                      (True, TypeError)):
        with pytest.raises(kind, match="timeout"):
            CoresetSelection.from_hub("me/x", timeout=bad)
        with pytest.raises(kind, match="timeout"):
            sel.push_to_hub("me/x", dataset=source, timeout=bad)
    monkeypatch.setenv("HF_CORESET_HUB_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="HF_CORESET_HUB_TIMEOUT"):
        CoresetSelection.from_hub("me/x")


def test_from_hub_offline_uses_the_cache(hub, source, monkeypatch):
    sel = hf_coreset.select(source, "random", fraction=0.1, seed=0)
    info = sel.push_to_hub("me/cached", dataset=source)
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/cached").indices, sel.indices)  # fills the cache
    go_offline(monkeypatch)
    start = len(hub.state.requests)
    for revision in (None, "main", info.oid):
        back = CoresetSelection.from_hub("me/cached", revision=revision)
        np.testing.assert_array_equal(back.indices, sel.indices)
        assert back.fingerprint == sel.fingerprint
    assert source.select_coreset(from_hub="me/cached")["label"] == sel.apply(source)["label"]
    assert hub.state.requests[start:] == []  # offline means no request at all
    # Nothing cached for this repo: one sentence that says what to do.
    with pytest.raises(HubError) as err:
        CoresetSelection.from_hub("me/never-loaded")
    text = str(err.value)
    assert "me/never-loaded" in text and "HF_HUB_OFFLINE" in text and "cache" in text
    # A push needs the network: refused before any file is written.
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        sel.push_to_hub("me/cached", dataset=source)
    assert hub.state.requests[start:] == []


@pytest.fixture
def user_offline(monkeypatch):
    """The user's shell has HF_HUB_OFFLINE=1 (the libraries were imported with it)."""
    go_offline(monkeypatch)


def test_hub_fixture_ignores_the_users_offline_setting(user_offline, hub, source):
    # user_offline is set up before hub: the fixture must switch the clients back online itself.
    sel = hf_coreset.select(source, "random", fraction=0.05, seed=0)
    sel.push_to_hub("me/online", dataset=source)
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/online").indices, sel.indices)
    assert load("me/online", split="train").num_rows == len(sel)


def foreign_repo(hub, source) -> dict[str, bytes]:
    """A dataset repo "me/mine" as a user made it with datasets and by hand; returns its files."""
    from huggingface_hub import HfApi

    source.select(range(50)).push_to_hub("me/mine")
    HfApi().upload_file(path_or_fileobj=b"my notes", path_in_repo="notes.txt", repo_id="me/mine", repo_type="dataset")
    return repo_files(hub, "me/mine")


def repo_files(hub, repo_id, branch="main") -> dict[str, bytes]:
    repo = hub.state.repos[("dataset", repo_id)]
    tree = repo.commits[repo.branches[branch]]["tree"]
    return {p: hub.state.read(e.sha256) for p, e in tree.items()}


def test_push_refuses_to_replace_files_it_did_not_write(hub, source):
    before = foreign_repo(hub, source)
    assert "data/train-00000-of-00001.parquet" in before and "README.md" in before
    commits = hub.state.commit_count("me/mine")
    sel = hf_coreset.select(source, "random", fraction=0.1, seed=0)
    with pytest.raises(HubError) as err:
        sel.push_to_hub("me/mine", dataset=source)
    text = str(err.value)
    # It names the files that would be deleted or overwritten (not notes.txt: a push leaves it alone).
    assert "data/train-00000-of-00001.parquet" in text and "README.md" in text and "notes.txt" not in text
    assert "overwrite=True" in text and "revision=" in text
    assert repo_files(hub, "me/mine") == before and hub.state.commit_count("me/mine") == commits

    # A new branch leaves main alone: allowed without overwrite.
    sel.push_to_hub("me/mine", dataset=source, revision="coreset")
    assert repo_files(hub, "me/mine") == before
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/mine", revision="coreset").indices, sel.indices)
    assert load("me/mine", split="train", revision="coreset").num_rows == len(sel)  # the user's shard is not mixed in

    # overwrite=True replaces them; files the push does not write stay.
    sel.push_to_hub("me/mine", dataset=source, overwrite=True)
    after = repo_files(hub, "me/mine")
    assert after["notes.txt"] == b"my notes" and after["README.md"] != before["README.md"]
    assert load("me/mine", split="train").num_rows == len(sel)

    # Now every replaced file is hf-coreset's own: pushing again needs no overwrite, on main and on the branch.
    other = hf_coreset.select(source, "random", fraction=0.05, seed=1)
    other.push_to_hub("me/mine", dataset=source, max_shard_size=5_000)
    other.push_to_hub("me/mine", dataset=source)  # three shards become one: the stale two were hf-coreset's
    other.push_to_hub("me/mine", dataset=source, revision="coreset")
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/mine").indices, other.indices)

    # A file of ours that the user edited on the Hub is theirs now: refused again, naming it.
    from huggingface_hub import HfApi

    HfApi().upload_file(path_or_fileobj=b"# my own card", path_in_repo="README.md", repo_id="me/mine",
                        repo_type="dataset")
    edited = repo_files(hub, "me/mine")
    with pytest.raises(HubError, match="README.md") as err:
        sel.push_to_hub("me/mine", dataset=source)
    assert "data/" not in str(err.value)
    assert repo_files(hub, "me/mine") == edited


def test_bad_token_is_a_clear_error_and_never_shown(hub, source, monkeypatch, caplog, capsys):
    secret = "hf_thisIsNotAValidToken_5f2a9c"
    sel = hf_coreset.select(source, "random", fraction=0.05, seed=0)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubError, match="401") as err:
        sel.push_to_hub("me/denied", dataset=source, token=secret)
    assert "token" in str(err.value) and secret not in str(err.value)
    monkeypatch.setenv("HF_TOKEN", secret)
    with pytest.raises(HubError, match="401") as err2:
        sel.push_to_hub("me/denied", dataset=source)
    with pytest.raises(HubError) as err3:
        CoresetSelection.from_hub("me/denied")
    # A valid token for another namespace gets a 403, not a silent success.
    with pytest.raises(HubError, match="403"):
        sel.push_to_hub("me/denied", dataset=source, token=OTHER_TOKEN)
    out = capsys.readouterr()
    for text in (str(err2.value), str(err3.value), repr(err2.value), caplog.text, out.out, out.err):
        assert secret not in text
    assert ("dataset", "me/denied") not in hub.state.repos


def test_cli_push(hub, source, tmp_path, capsys):
    from hf_coreset.cli import main

    sel = hf_coreset.select(source, "random", fraction=0.1, seed=2)
    sel.save(tmp_path / "sel")
    source.save_to_disk(str(tmp_path / "source"))
    args = ["push", "--selection", str(tmp_path / "sel"), "--dataset", str(tmp_path / "source"),
            "--repo-id", "me/from-cli", "--private", "--source-dataset", "someone/mnist1d"]
    # save_to_disk + load_from_disk gives the data a new fingerprint: strict refuses, naming both.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert sel.source_fingerprint in err and "check" in err
    assert ("dataset", "me/from-cli") not in hub.state.repos
    rc = main(args + ["--check", "content"])
    assert rc == 0, capsys.readouterr().err
    assert "me/from-cli" in capsys.readouterr().out
    assert hub.state.repos[("dataset", "me/from-cli")].private
    np.testing.assert_array_equal(CoresetSelection.from_hub("me/from-cli").indices, sel.indices)
    rc = main(["push", "--selection", str(tmp_path / "sel"), "--dataset", str(tmp_path / "source"),
               "--repo-id", "you/not-mine", "--check", "content"])
    assert rc == 2 and "403" in capsys.readouterr().err


def test_only_json_parquet_markdown_and_the_figure_are_published(hub, source):
    info = hf_coreset.select(source, "random", fraction=0.1, seed=0).push_to_hub("me/formats", dataset=source)
    tree = hub.state.repos[("dataset", "me/formats")].commits[info.oid]["tree"]
    assert {Path(p).suffix for p in tree} == {"", ".md", ".parquet", ".json", ".png"}  # "" is .gitattributes
    assert [p for p in tree if p.endswith(".png")] == ["selection/plot.png"]
    meta = json.loads(read_remote("me/formats", "selection/selection.json"))
    assert meta["num_kept"] == 160 and meta["method"] == "random"


@pytest.mark.slow
def test_template_ships_in_the_wheel(tmp_path):
    """The card template loads from an installed wheel (hf_coreset.model_cards), not only from a checkout."""
    import shutil

    pytest.importorskip("setuptools")  # the wheel is built without isolation, with the venv's setuptools
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"  # build from a copy, so the checkout gets no build/ or egg-info folders
    for name in ("hf_coreset", "model_cards"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "wheel"), str(src)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "wheel").glob("hf_coreset-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert "hf_coreset/model_cards/dataset_card.md" in z.namelist()
        z.extractall(tmp_path / "site")
    code = ("import hf_coreset.cards as h, pathlib; t = h.load_template('dataset_card.md'); "
            "print(pathlib.Path(h.__file__).parent, t.splitlines()[1])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}).stdout
    assert out.split()[0] == str(tmp_path / "site" / "hf_coreset") and "{{ card_data }}" in out
    assert load_template("dataset_card.md") == (root / "model_cards" / "dataset_card.md").read_text()


def _real_hub_reachable() -> bool:
    if not os.environ.get("HF_TOKEN"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.network
@pytest.mark.skipif(not _real_hub_reachable(), reason="needs HF_TOKEN and network access to huggingface.co")
def test_real_hub_round_trip(source):
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = f"{api.whoami()['name']}/hf-coreset-test-{uuid.uuid4().hex[:8]}"
    sel = hf_coreset.select(source, "random", fraction=0.05, seed=0)
    try:
        sel.push_to_hub(repo_id, dataset=source, private=True)
        np.testing.assert_array_equal(CoresetSelection.from_hub(repo_id).indices, sel.indices)
        assert datasets.load_dataset(repo_id, split="train").num_rows == len(sel)
    finally:
        api.delete_repo(repo_id, repo_type="dataset", missing_ok=True)


def machine_paths(tmp_path) -> list[str]:
    """Absolute paths of this machine that a card must never show."""
    return [str(tmp_path), str(Path.home()), os.getcwd(), str(Path(__file__).resolve().parents[1])]


def test_card_of_a_nameless_source_and_a_local_model(hub, tiny_bert, tmp_path):
    """A source without a name, a model loaded from a local folder: a real title, the split, the model's class, the
    figure, and no path of this machine anywhere in the card."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed

    folder, text = tiny_bert
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ds = text.map(lambda b: tokenizer(b["text"], truncation=True), batched=True)
    set_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    assert model.config._name_or_path == folder
    sel = hf_coreset.select(ds, "el2n", fraction=0.25, model=model, seed=0, epoch=1, progress=False,
                            collate_fn=DataCollatorWithPadding(tokenizer), proxy={"lr": 1e-3, "batch_size": 16})
    assert sel.config["split"] == "train" and sel.config["model_name"] == "BertForSequenceClassification"
    info = sel.push_to_hub("me/nameless", dataset=ds)
    text_card = read_remote("me/nameless", "README.md")
    meta = card_yaml(text_card)
    body = text_card.split("---\n", 2)[2]
    assert meta["pretty_name"] == "el2n coreset (25.0% of 64 rows)"
    assert "# el2n coreset (25.0% of 64 rows)" in body and "dataset el2n" not in body
    assert "| split | train |" in body
    assert "| signals' model | `BertForSequenceClassification` (weights hash" in body
    for path in machine_paths(tmp_path) + [folder]:
        assert path not in text_card, path
    # The figure is in the repo, in the manifest, and in the card.
    tree = hub.state.repos[("dataset", "me/nameless")].commits[info.oid]["tree"]
    manifest = json.loads(read_remote("me/nameless", "selection/manifest.json"))
    assert "selection/plot.png" in tree and "selection/plot.png" in manifest
    assert manifest["selection/plot.png"]["sha256"] == tree["selection/plot.png"].sha256
    assert "](selection/plot.png)" in body
    # A selection saved by an older hf-coreset, with the model's folder as its name: still no path in the card.
    old = CoresetSelection(**{**{k: getattr(sel, k) for k in ("indices", "scores", "method", "num_rows", "seed",
                                                               "source_fingerprint", "label_column", "label_hash",
                                                               "fingerprint")},
                              "config": {**sel.config, "model_name": folder, "cache": str(tmp_path / "x")}})
    old.config.pop("model_class")
    card = hf_coreset.hub.dataset_card(old, ds, "me/old")
    assert folder not in card and str(tmp_path) not in card and "`a local model` (weights hash" in card


def test_push_without_matplotlib_has_no_figure(hub, source, monkeypatch):
    from hf_coreset.extras import MissingExtra

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the plots extra were not installed
    sel = hf_coreset.select(source, "random", fraction=0.1, seed=0)
    with pytest.raises(MissingExtra, match=r"pip install 'hf-coreset\[plots\]'"):
        sel.plot()
    info = sel.push_to_hub("me/no-figure", dataset=source)
    tree = hub.state.repos[("dataset", "me/no-figure")].commits[info.oid]["tree"]
    assert "selection/plot.png" not in tree and "selection/selection.json" in tree
    assert "plot.png" not in read_remote("me/no-figure", "README.md")


def test_trainer_push_sends_the_selection_to_its_own_repo(hub, tiny_bert, tmp_path):
    """CoresetTrainer.push_to_hub: the model repo gets the model and its card, never the selection's files; the
    selection goes to coreset_selection_repo, which the card links and lists under `datasets:`."""
    from test_cards import bert_trainer

    trainer = bert_trainer(tiny_bert, tmp_path, coreset_selection_repo="me/tiny-el2n", hub_model_id="me/tiny-model",
                           push_to_hub=True, hub_strategy="end")
    trainer.train()
    assert (tmp_path / "out" / "_coreset_selection" / "indices.parquet").is_file()  # saved locally
    trainer.push_to_hub()
    model_repo = hub.state.repos[("model", "me/tiny-model")]
    tree = model_repo.commits[model_repo.branches["main"]]["tree"]
    assert "model.safetensors" in tree and "README.md" in tree
    assert not [p for p in tree if p.endswith(".parquet") or "coreset_selection" in p], sorted(tree)
    back = CoresetSelection.from_hub("me/tiny-el2n")
    np.testing.assert_array_equal(back.indices, trainer.coreset_selection.indices)
    from huggingface_hub import hf_hub_download

    card = Path(hf_hub_download("me/tiny-model", "README.md")).read_text()
    meta = card_yaml(card)
    assert meta["datasets"] == ["me/tiny-el2n"] and meta["coreset"]["selection_repo"] == "me/tiny-el2n"
    assert "https://huggingface.co/datasets/me/tiny-el2n" in card or "/datasets/me/tiny-el2n" in card
    for path in machine_paths(tmp_path) + [tiny_bert[0]]:
        assert path not in card, path
        assert path not in read_remote("me/tiny-el2n", "README.md"), path
