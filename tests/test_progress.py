"""Progress: one bar per phase on a terminal, plain periodic lines in logs, nothing with progress=False."""

from __future__ import annotations

import io

import pytest

from hf_coreset.proxy import ProxyConfig, run_proxy
from hf_coreset.api import check_dataset
from hf_coreset.data.mnist1d import make_convnet
from hf_coreset.signals.progress import Progress


class Clock:
    def __init__(self, step):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


def lines_of(total, seconds_per_update, **kw):
    out = io.StringIO()  # not a TTY: plain lines
    with Progress("proxy epoch 3/10", total, file=out, clock=Clock(seconds_per_update), **kw) as bar:
        for _ in range(total):
            bar.update(rows=128, loss=0.5)
    return out.getvalue().splitlines()


def test_plain_lines_at_each_tenth_and_at_the_end():
    lines = lines_of(100, 1.0)  # 1 s a step: every tenth is more than `quiet` (5 s) after the last line
    assert len(lines) == 10
    assert lines[0].startswith("proxy epoch 3/10: step 10/100, ") and ", eta 1m" in lines[0]
    assert "rows/s" in lines[0] and lines[0].endswith("loss 0.5")
    assert lines[-1].startswith("proxy epoch 3/10: step 100/100 in 1m4")  # the closing line: time taken, no eta


def test_short_phases_print_one_line_and_long_steps_print_each():
    assert len(lines_of(100, 0.01)) == 1  # a one-second phase: only the closing line
    assert len(lines_of(7, 40.0)) == 7  # 40 s steps: more than `every` (30 s) apart, each gets a line


def test_disabled_progress_writes_nothing():
    out = io.StringIO()
    with Progress("phase", 10, file=out, enabled=False) as bar:
        bar.update(5)
    assert out.getvalue() == ""


def test_terminal_gets_a_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    with Progress("proxy epoch 1/2", 4, file=out) as bar:
        for _ in range(4):
            bar.update()
    assert "proxy epoch 1/2" in out.getvalue() and "4/4" in out.getvalue() and "\r" in out.getvalue()


@pytest.mark.parametrize("progress", [True, False])
def test_proxy_reports_each_phase_in_plain_lines(mnist1d_small, capfd, progress):
    ds = mnist1d_small["train"].select(range(200))
    labels, num_classes = check_dataset(ds, "label")
    capfd.readouterr()
    run_proxy(make_convnet(0), ds, labels, num_classes, {2: frozenset({"features"})}, seed=0, label_column="label",
              config=ProxyConfig(optimizer="adam", lr=1e-2, batch_size=50), cache_dir=False, progress=progress)
    err = capfd.readouterr().err
    phases = ["proxy epoch 1/2: step 4/4 in ", "proxy epoch 2/2: step 4/4 in ", "signals @ proxy epoch 2: rows 200/200 in "]
    if progress:
        for phase in phases:
            assert phase in err, err
        assert "\r" not in err  # no bar redraws in a log
    else:
        assert not any(phase.split(":")[0] in err for phase in phases) and "%|" not in err, err


def test_demo_announces_every_phase(capfd):
    from hf_coreset.demo import run_demo

    said = []
    capfd.readouterr()
    run_demo(num_samples=200, methods=("random", "el2n"), epochs=1, full_data_epochs=1, out=said.append)
    err = capfd.readouterr().err
    starts = ["Generating MNIST-1D (200 samples", "[1/3] full data: training the ConvNet on 160 rows",
              "[1/3] full data: test accuracy", "[2/3] random: selecting 10%", "[2/3] random: kept 16 rows",
              "[2/3] random: test accuracy", "[3/3] el2n: selecting 10%", "[3/3] el2n: kept 16 rows",
              "[3/3] el2n: test accuracy", "| method |"]
    assert [next((s for s in starts if line.startswith(s)), line) for line in said[:1] + said[2:]] == starts
    for phase in ("full data training: step 2/2 in ", "proxy epoch 10/10: step 2/2 in ",
                  "signals @ proxy epoch 10: rows 160/160 in ", "el2n subset training: step 1/1 in "):
        assert phase in err, err
