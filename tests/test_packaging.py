"""What `pip install hf-coreset` ships and needs: no benchmark lab in the wheel, and no demo packages
(mnist1d, evaluate, matplotlib) to import the library and select."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXTRAS = ("mnist1d", "evaluate", "matplotlib")
# Run before anything else in a fresh interpreter: importing one of these packages raises ImportError,
# as if `pip install hf-coreset` had been run without extras.
WITHOUT_EXTRAS = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in EXTRAS)


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_CORESET_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS + code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_wheel_has_no_benchmark_lab_and_has_the_card_templates(tmp_path):
    """`pip wheel .` (offline, from a copy of the source tree so the checkout gets no build/ folder)."""
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "results", "cache", "runs")
    for name in ("pyproject.toml", "README.md", "hf_coreset", "model_cards", "benchmarks"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, src / name, **(
            {"ignore": ignore} if (REPO / name).is_dir() else {}))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                          "--no-index", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "dist").glob("hf_coreset-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "benchmark" in n.lower()], [n for n in names if "benchmark" in n.lower()]
    for template in ("dataset_card.md", "model_card_section.md"):
        assert f"hf_coreset/model_cards/{template}" in names
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "hf_coreset").rglob("*.py")}  # every subpackage ships
    assert not modules - set(names), sorted(modules - set(names))
    assert "hf_coreset/metrics/accuracy/accuracy.py" in names  # the metric modules stay (behind the demo extra)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    required = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not [line for line in required if any(name in line for name in EXTRAS)], required
    for extra in ("demo", "plots", "bench", "dev"):
        assert f"Provides-Extra: {extra}" in meta
    version = {}  # the wheel's version is the one written in hf_coreset/version.py
    exec((REPO / "hf_coreset" / "version.py").read_text(), version)
    assert f"\nVersion: {version['__version__']}\n" in meta and f"-{version['__version__']}-" in wheel.name


def test_imports_and_selects_without_the_demo_packages(tmp_path):
    out = _run("""
import datasets, torch
import hf_coreset

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(2, 8)
        self.classifier = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.classifier(torch.relu(self.body(x)))

rows = [[float(i % 7), float(i % 5)] for i in range(60)]
ds = datasets.Dataset.from_dict({"x": rows, "label": [i % 3 for i in range(60)]})
assert len(hf_coreset.select(ds, "random", fraction=0.2, seed=0)) == 12
torch.manual_seed(0)
sel = hf_coreset.select(ds, "el2n", fraction=0.2, model=Net(), seed=0, epoch=1, progress=False)
assert len(sel) == 12
assert all(sys.modules[name] is None for name in NAMES)
print("ok")
""".replace("NAMES", repr(EXTRAS)), tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr


def test_demo_and_mnist1d_say_which_extra_they_need(tmp_path):
    out = _run("""
import hf_coreset
from hf_coreset import metrics
from hf_coreset.demo import run_demo

for name, call in (("demo", lambda: run_demo(num_samples=100)), ("load", lambda: hf_coreset.data.load_mnist1d(100)),
                   ("metric", lambda: metrics.load("accuracy"))):
    try:
        call()
    except ImportError as err:
        print(name + ":", err)
""", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "demo: hf-coreset demo needs the demo extra: pip install 'hf-coreset[demo]'",
        "load: load_mnist1d needs the demo extra: pip install 'hf-coreset[demo]'",
        "metric: hf_coreset.metrics needs the demo extra: pip install 'hf-coreset[demo]'"]
    assert not (tmp_path / "cache").exists()  # the demo stopped before generating or training anything
    # the command line fails with that sentence, before any work
    cli = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS + "import sys\nfrom hf_coreset.cli import main\n"
                          "sys.exit(main(['demo']))"],
                         cwd=tmp_path, env={**os.environ, "HF_CORESET_CACHE": str(tmp_path / "cache")},
                         capture_output=True, text=True, timeout=600)
    assert cli.returncode == 2 and cli.stderr == ("hf-coreset: error: hf-coreset demo needs the demo extra: "
                                                  "pip install 'hf-coreset[demo]'\n")  # one line, no traceback
    assert not (tmp_path / "cache").exists()


def test_old_benchmark_command_says_where_the_benchmarks_went(capsys):
    from hf_coreset.cli import main

    assert main(["benchmark", "quality", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`python -m benchmarks quality --quick`" in err
