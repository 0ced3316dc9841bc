"""CoresetSelection.plot: score histogram kept vs dropped and rows per class (the plots extra)."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest

import hf_coreset
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.extras import MissingExtra

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def el2n(mnist1d_small, mnist1d_proxy):
    ds = mnist1d_small["train"].select(range(400))
    return ds, hf_coreset.select(ds, "el2n", fraction=0.2, model=make_convnet(0), seed=0, epoch=1,
                                 proxy=mnist1d_proxy, progress=False)


def test_plot_writes_a_png_with_two_panels(el2n, tmp_path):
    pytest.importorskip("matplotlib")
    ds, sel = el2n
    fig = sel.plot(tmp_path / "sel.png")
    assert len(fig.axes) == 2
    width, height = png_size(tmp_path / "sel.png")
    assert (width, height) == (1000, 360)  # figsize (10, 3.6) at dpi 100
    hist, bars = fig.axes
    # Kept and dropped histograms hold every row once; the bars are the recorded per-class counts.
    counted = sum(p.get_height() for p in hist.patches)
    assert counted == ds.num_rows
    labels = np.asarray(ds["label"])
    heights = [p.get_height() for p in bars.patches]
    assert heights[:10] == np.bincount(labels).tolist()
    assert heights[10:] == np.bincount(labels[sel.indices], minlength=10).tolist()
    # With the dataset given, the counts come from it and agree.
    again = sel.plot(dataset=ds)
    assert [p.get_height() for p in again.axes[1].patches] == heights


def test_plot_without_scores_or_counts_says_so(mnist1d_small):
    pytest.importorskip("matplotlib")
    sel = hf_coreset.CoresetSelection(indices=[0, 2], scores=np.full(4, np.nan), method="random", num_rows=4)
    fig = sel.plot()
    assert len(fig.axes) == 2
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no per-row scores" in t for t in texts) and any("plot(dataset=source)" in t for t in texts)


def test_plot_without_matplotlib_names_the_extra(el2n, monkeypatch):
    _, sel = el2n
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(MissingExtra) as err:
        sel.plot()
    assert str(err.value) == "CoresetSelection.plot needs the plots extra: pip install 'hf-coreset[plots]'"
