"""The benchmark code on a tiny grid: metric modules, the resumable quality runner, report assembly.

These tests check the machinery (offline metric loading, right metric values, resumability, the
report's arithmetic), not the published figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import shutil

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline(monkeypatch):
    """No Hub access: a module that tried to fetch would fail."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there


# ---------------------------------------------------------------- metric modules


def test_accuracy_metric_offline(offline):
    import evaluate

    from hf_coreset import metrics

    acc = evaluate.load(metrics.path("accuracy"))
    rng = np.random.default_rng(0)
    pred, ref = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    assert acc.compute(predictions=pred, references=ref)["accuracy"] == pytest.approx(np.mean(pred == ref))
    w = rng.random(300)
    got = acc.compute(predictions=pred, references=ref, sample_weight=w)["accuracy"]
    assert got == pytest.approx((w * (pred == ref)).sum() / w.sum())
    with pytest.raises(ValueError, match="sample_weight"):
        acc.compute(predictions=pred, references=ref, sample_weight=np.zeros(300))
    with pytest.raises(ValueError, match="Unknown hf-coreset metric 'f1'"):
        metrics.path("f1")


def _frechet_reference(a, b):
    from scipy import linalg

    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # sqrt of the PSD product through the symmetric form sqrt(sqrt(ca) cb sqrt(ca)), which has the same trace
    ra = linalg.sqrtm(ca).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb)
                 - 2 * np.trace(linalg.sqrtm(ra @ cb @ ra).real))


def test_coverage_metric_against_brute_force(offline):
    from hf_coreset import metrics

    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 3))
    y = rng.integers(0, 3, 120)
    sel = np.zeros(120, dtype=bool)
    sel[rng.choice(120, 25, replace=False)] = True
    out = metrics.load("coreset_coverage").compute(features=x, labels=y, selected=sel, block=7)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))  # explicit pairwise matrix: the reference
    same = (y[:, None] == y[None, :]) & sel[None, :]
    nearest = np.where(same, d, np.inf).min(1)
    for c in range(3):
        assert out["per_class_share"][c] == pytest.approx(sel[y == c].mean())
        assert out["per_class_nn_dist"][c] == pytest.approx(nearest[y == c].mean())
        assert out["per_class_radius"][c] == pytest.approx(nearest[y == c].max())
    assert out["mean_nn_dist"] == pytest.approx(nearest.mean())
    tv = 0.5 * sum(abs((y[sel] == c).mean() - (y == c).mean()) for c in range(3))
    assert out["class_tv"] == pytest.approx(tv)
    assert out["frechet"] == pytest.approx(_frechet_reference(x[sel], x), rel=1e-6, abs=1e-9)
    # the full set covers itself perfectly
    full = metrics.load("coreset_coverage").compute(features=x, labels=y, selected=np.ones(120, dtype=bool))
    assert full["mean_nn_dist"] == pytest.approx(0.0, abs=1e-6) and full["frechet"] == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- the quality runner


def _tiny(tmp_path, **kw):
    from benchmarks.quality import QualityConfig
    from hf_coreset.evaluation import Protocol

    base = dict(methods=("random", "el2n"), fractions=(0.1,), seeds=(0,), num_samples=1250,
                protocol=Protocol(epochs=2, full_data_epochs=2), method_options={"el2n": {"epoch": 2}}, workers=1,
                cache_dir=str(tmp_path / "cache"), results=str(tmp_path / "cells.jsonl"))
    return QualityConfig(**{**base, **kw})


@pytest.mark.slow
def test_quality_grid_runs_resumes_and_reports(tmp_path, offline):
    from benchmarks.quality import Cells, quality_report, run_quality
    from hf_coreset.data import load_mnist1d
    from hf_coreset.evaluation import arrays, predict, train_convnet

    cfg = _tiny(tmp_path)
    log = []
    run_quality(cfg, log=log.append, command="tiny")
    recs = Cells(cfg.results).records
    train = [r for r in recs if r["kind"] == "train"]
    sels = [r for r in recs if r["kind"] == "selection"]
    assert sorted(r["method"] for r in train) == ["el2n", "full data", "random"]
    assert sorted(r["method"] for r in sels) == ["el2n", "random"]
    for r in recs:
        assert r["git"] and r["date"] and r["machine"]["cpu_count"] and r["command"] == "tiny"
    el2n_sel = next(r for r in sels if r["method"] == "el2n")
    assert el2n_sel["kept"] == 100 and el2n_sel["timings"]["proxy_training"] > 0 and el2n_sel["proxy_epochs"] == 2
    proxy = [r for r in recs if r["kind"] == "proxy"]
    assert [r["seed"] for r in proxy] == [2]  # the one epoch el2n reads; its training time is el2n's proxy cost
    assert el2n_sel["timings"]["proxy_training"] == proxy[0]["timings"]["proxy_training"]
    assert not (tmp_path / "cache" / "proxy").exists()  # signal cache dropped once every selection is made

    # The recorded accuracy is that of a model trained by hand on the same rows.
    data = load_mnist1d(num_samples=1250, cache_dir=tmp_path / "cache" / "data")
    (x, y), (xt, yt) = arrays(data["train"]), arrays(data["test"])
    model = train_convnet(x, y, epochs=2, seed=0)
    full = next(r for r in train if r["method"] == "full data")
    assert full["accuracy"] == pytest.approx(np.mean(predict(model, xt) == yt.numpy()))

    # A second run reuses every cell: nothing is selected or trained again.
    size = Path(cfg.results).stat().st_size
    log2 = []
    run_quality(cfg, log=log2.append, command="tiny")
    assert Path(cfg.results).stat().st_size == size
    assert not any(line.startswith("selecting") for line in log2)
    assert "0 training cells to run" in " ".join(log2)

    # A new seed only adds that seed's cells.
    run_quality(_tiny(tmp_path, seeds=(0, 1)), log=lambda s: None, command="tiny")
    recs = Cells(cfg.results).records
    assert sorted((r["method"], r["seed"]) for r in recs if r["kind"] == "train" and r["seed"] == 1) == [
        ("el2n", 1), ("full data", 1), ("random", 1)]
    assert len([r for r in recs if r["kind"] == "selection"]) == 2

    md = quality_report(cfg.results, tmp_path / "quality.md", tmp_path / "quality.png")
    assert (tmp_path / "quality.png").stat().st_size > 0 and "![" in md
    acc = {(r["method"], r["seed"]): r["accuracy"] for r in recs if r["kind"] == "train"}
    diff = 100 * np.mean([acc["el2n", s] - acc["random", s] for s in (0, 1)])
    gap = np.mean([acc["el2n", s] - acc["random", s] for s in (0, 1)]) / (
        np.mean([acc["full data", s] for s in (0, 1)]) - np.mean([acc["random", s] for s in (0, 1)]))
    row = next(line for line in md.splitlines() if line.startswith("| el2n |"))
    assert f"({diff:+.1f})" in row and (("below random" in row) == (diff < 0))
    gap_row = [line for line in md.splitlines() if line.startswith("| el2n |")][1]
    assert f"{gap:+.2f}" in gap_row
    assert "git revision(s)" in md and "tiny" in md

    # --redo makes one method's selection and cells again; the report reads the new cells only.
    run_quality(_tiny(tmp_path, seeds=(0, 1), redo=("random",)), log=lambda s: None, command="redo")
    recs = Cells(cfg.results).records
    assert len([r for r in recs if r["kind"] == "selection" and r["method"] == "random"]) == 2
    assert len([r for r in recs if r["kind"] == "train" and r["method"] == "random"]) == 4
    assert len([r for r in recs if r["kind"] == "train" and r["method"] == "el2n"]) == 2  # untouched
    assert len([r for r in recs if r["kind"] == "proxy"]) == 1  # random needs no proxy: none recorded again
    run_quality(_tiny(tmp_path, seeds=(0,), redo=("el2n",)), log=lambda s: None, command="redo")
    proxies = [r for r in Cells(cfg.results).records if r["kind"] == "proxy"]
    assert len(proxies) == 2 and proxies[-1]["command"] == "redo"  # el2n's proxy cost is this run's
    md = quality_report(cfg.results, tmp_path / "quality.md")
    assert "`redo`" in md and "`tiny`" in md  # both runs made cells the report uses

    # A selection that changed on disk (made again by other code) is trained again: a training cell
    # is keyed by the fingerprint of its rows, and the report drops the cells of the old selection.
    import hf_coreset
    from benchmarks.quality import rows_hash, selection_dir, summarize

    folder = selection_dir(cfg, "el2n", hf_coreset.methods.get("el2n").version, 0.1)
    other = hf_coreset.select(load_mnist1d(num_samples=1250, cache_dir=tmp_path / "cache" / "data")["train"],
                              "random", fraction=0.1, seed=7, label_column="label", progress=False)
    shutil.rmtree(folder)
    other.save(folder)
    run_quality(_tiny(tmp_path, seeds=(0,)), log=lambda s: None, command="changed")
    recs = Cells(cfg.results).records
    assert [r["fingerprint"] for r in recs if r["kind"] == "selection" and r["method"] == "el2n"][-1] == other.fingerprint
    new = [r for r in recs if r["kind"] == "train" and r["method"] == "el2n" and r["command"] == "changed"]
    assert [r["selection"] for r in new] == [rows_hash(other)]
    assert summarize(recs)["accuracy"]["el2n"][0.1] == {0: new[0]["accuracy"]}  # seed 1 trained the old rows


@pytest.mark.slow
def test_equal_steps_grid_trains_the_same_selections_for_the_full_runs_steps(tmp_path, offline):
    """The equal-step grid reuses the equal-epoch grid's selections (no proxy, no re-selection) and trains
    each subset for exactly the full-data run's steps."""
    import torch

    from benchmarks.quality import Cells, quality_report, run_quality
    from hf_coreset.data import load_mnist1d
    from hf_coreset.evaluation import Protocol, arrays, predict, train_convnet

    epochs = _tiny(tmp_path)
    run_quality(epochs, log=lambda s: None, command="epochs")
    steps = _tiny(tmp_path, protocol=Protocol(epochs=2, full_data_epochs=2, budget="steps"),
                  results=str(tmp_path / "steps.jsonl"))
    assert steps.setup()["protocol"]["budget"] == "steps" and "budget" not in epochs.setup()["protocol"]
    log = []
    run_quality(steps, log=log.append, command="steps")
    assert not any(line.startswith(("proxy epoch", "selected")) for line in log)  # selections came from the cache
    recs = {name: Cells(c.results).records for name, c in (("epochs", epochs), ("steps", steps))}
    fingerprints = [{r["method"]: r["fingerprint"] for r in recs[k] if r["kind"] == "selection"} for k in recs]
    assert fingerprints[0] == fingerprints[1] and len(fingerprints[0]) == 2

    data = load_mnist1d(num_samples=1250, cache_dir=tmp_path / "cache" / "data")
    (x, y), (xt, yt) = arrays(data["train"]), arrays(data["test"])
    full_steps = 2 * -(-len(y) // 128)
    assert steps.protocol.steps(100, len(y)) == full_steps and epochs.protocol.steps(100, len(y)) == 2
    from hf_coreset import CoresetSelection
    from benchmarks.quality import selection_dir

    assert selection_dir(steps, "el2n", 1, 0.1) == selection_dir(epochs, "el2n", 1, 0.1)
    sel = CoresetSelection.load(selection_dir(steps, "el2n", 1, 0.1))
    idx = torch.as_tensor(np.asarray(sel.indices, dtype=np.int64))
    model = train_convnet(x[idx], y[idx], steps=full_steps, seed=0)
    cell = next(r for r in recs["steps"] if r["kind"] == "train" and r["method"] == "el2n")
    assert cell["accuracy"] == pytest.approx(np.mean(predict(model, xt) == yt.numpy()))
    md = quality_report(steps.results, tmp_path / "steps.md")
    assert md.startswith("## Quality under equal steps") and f"{full_steps:,} steps" in md

    from benchmarks.quality import protocol_comparison

    md = protocol_comparison(epochs.results, steps.results, tmp_path / "protocols.md")
    assert "2 of 2 (method, fraction) selections have the same fingerprint" in md
    assert "2 kept the very same rows, so the two protocols trained the same subsets." in md
    acc = {(k, r["method"]): r["accuracy"] for k in recs for r in recs[k] if r["kind"] == "train"}
    row = next(line for line in md.splitlines() if line.startswith("| el2n |"))
    for k in ("epochs", "steps"):  # the paired margins of each grid, in E, S order
        assert f"{100 * (acc[k, 'el2n'] - acc[k, 'random']):+.1f}" in row
    # the mechanism table reads the selection records: el2n's hard share and spread relative to random
    sel = {r["method"]: r for r in recs["epochs"] if r["kind"] == "selection"}  # the grid that made them
    mech = md.split("### Why the seed methods")[1]
    row = next(line for line in mech.splitlines() if line.startswith("| random |"))
    assert f"| {100 * sel['random']['proxy_wrong']['share']:.1f}% | 1.000 |" in row


def test_train_convnet_counts_steps_across_epochs(monkeypatch):
    """steps= cuts the last epoch short; steps equal to whole epochs is the epochs= computation itself."""
    import torch

    from hf_coreset import evaluation

    calls = []
    make = evaluation.make_convnet

    def counting(seed):
        model = make(seed)
        model.register_forward_hook(lambda *a: calls.append(1))
        return model

    monkeypatch.setattr(evaluation, "make_convnet", counting)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(70, 40, generator=g), torch.randint(0, 10, (70,), generator=g)
    evaluation.train_convnet(x, y, steps=7, seed=0, batch_size=32)  # 3 steps an epoch: 2 epochs and 1 step
    assert len(calls) == 7
    a = evaluation.train_convnet(x, y, steps=6, seed=0, batch_size=32)
    b = evaluation.train_convnet(x, y, epochs=2, seed=0, batch_size=32)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="exactly one of epochs= and steps="):
        evaluation.train_convnet(x, y, epochs=1, steps=3, seed=0)
    with pytest.raises(ValueError, match="pass 'epochs'"):
        evaluation.Protocol(budget="step")


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")  # in-process training with one thread, as in the workers
def test_quality_grid_with_two_workers_matches_one(tmp_path, offline):
    """Training in worker processes (one thread each) records the same accuracies as in-process training
    with one thread: the same float arithmetic, so equal (with OMP_NUM_THREADS=2 in-process, they need not be)."""
    from benchmarks.quality import Cells, run_quality

    one = _tiny(tmp_path / "a", methods=("random",))
    two = _tiny(tmp_path / "b", methods=("random",), workers=2)
    run_quality(one, log=lambda s: None)
    run_quality(two, log=lambda s: None)
    acc = [{r["method"]: r["accuracy"] for r in Cells(c.results).records if r["kind"] == "train"} for c in (one, two)]
    assert acc[0] == acc[1]


@pytest.mark.slow
def test_quality_proxy_resumes_epoch_by_epoch(tmp_path, offline):
    """The grid's proxy trains one epoch per call from the previous epoch's kept state, so each recorded
    proxy cost is that epoch's alone (without the kept state every call started from scratch)."""
    from benchmarks.quality import Cells, run_quality

    cfg = _tiny(tmp_path, methods=("el2n", "entropy"), method_options={"el2n": {"epoch": 2}, "entropy": {"epoch": 1}},
                keep_signals=True)
    run_quality(cfg, log=lambda s: None)
    assert sorted(r["seed"] for r in Cells(cfg.results).records if r["kind"] == "proxy") == [1, 2]
    assert list((tmp_path / "cache" / "proxy").rglob("proxy_state.pt"))  # kept for the next epoch's call


def test_quality_config_rejects_bad_values():
    from benchmarks.quality import QualityConfig

    with pytest.raises(ValueError, match="fractions must lie in"):
        QualityConfig(fractions=(0.1, 1.0))
    with pytest.raises(ValueError, match="workers=0"):
        QualityConfig(workers=0)


# ---------------------------------------------------------------- report assembly and the CLI


def test_build_report_orders_fragments_and_fixes_image_links(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    (res / "zeta.md").write_text("## Zeta\n\nz")
    (res / "scaling.md").write_text("## Scaling\n\n![plot](scaling.png)")
    (res / "quality.md").write_text("## Quality\n\nq")
    out = tmp_path / "BENCHMARKS.md"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "build_report.py"), "--results", str(res), "--out",
                    str(out)], check=True, capture_output=True)
    md = out.read_text()
    assert md.index("## Quality") < md.index("## Scaling") < md.index("## Zeta")  # known order, then the rest
    assert "![plot](results/scaling.png)" in md
    assert "- Quality against random and full data" in md and "- zeta" in md


def test_cli_parses_benchmark_commands():
    from benchmarks.cli import _command, build_parser

    args = build_parser().parse_args(["quality", "--quick", "--workers", "1", "--fractions", "0.1,0.3"])
    assert args.quick and args.workers == 1 and args.fractions == (0.1, 0.3)
    assert _command(args, "quality") == "python -m benchmarks quality --quick --fractions 0.1,0.3 --workers 1"
    args = build_parser().parse_args(["scaling", "--sizes", "1000,2000"])
    assert args.sizes == (1000, 2000) and args.kernels.split(",") == ["nfg_counts", "kcenter", "facility_location"]


def test_scaling_runs_a_small_size_and_reports_missing_kernels(tmp_path):
    from benchmarks import scaling

    rows = scaling.run_scaling(out_md=str(tmp_path / "scaling.md"), sizes=(500, 1000), kernels=("kcenter",), dim=16,
                               budget_s=60, log=lambda s: None)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[1]["peak_rss"] >= rows[1]["base_rss"] > 0
    text = (tmp_path / "scaling.md").read_text()
    assert "| kcenter | 1,000 |" in text
    # measuring another kernel alone keeps the stored k-center rows; another dim would not
    rows = scaling.run_scaling(out_md=str(tmp_path / "scaling.md"), sizes=(500,), kernels=("gaussian_herding",),
                               dim=16, budget_s=60, log=lambda s: None)
    assert [r["status"] for r in rows] == ["ok"]
    text = (tmp_path / "scaling.md").read_text()
    assert "| kcenter | 1,000 |" in text and "| gaussian_herding | 500 |" in text
    assert text.count("python -m benchmarks scaling` at git") == 1  # both runs share command and revision
    rows = scaling.run_scaling(out_md=str(tmp_path / "scaling.md"), sizes=(1000,), kernels=("kcenter",), dim=16,
                               budget_s=60, log=lambda s: None, command="again")
    text = (tmp_path / "scaling.md").read_text()
    assert "| kcenter | 500 |" in text and "| kcenter | 1,000 |" in text and "`again` at git" in text
    scaling.run_scaling(out_md=str(tmp_path / "scaling.md"), sizes=(500,), kernels=("gaussian_herding",), dim=8,
                        budget_s=60, log=lambda s: None)
    assert "| kcenter |" not in (tmp_path / "scaling.md").read_text()
    scaling.KERNELS["not_there"] = "hf_coreset.ops.no_such_module:fn"
    try:
        rows = scaling.run_scaling(out_md=str(tmp_path / "s2.md"), sizes=(500,), kernels=("not_there",), dim=16,
                                   log=lambda s: None)
    finally:
        del scaling.KERNELS["not_there"]
    assert rows[0]["status"] == "not available at this revision"


# ---------------------------------------------------------------- the benchmarks/ folder


def test_benchmark_scripts_use_public_imports_and_one_provenance_helper():
    """Every script imports only public hf_coreset names, and only benchmarks/provenance.py asks git, the clock
    or the platform where a number comes from."""
    import ast

    for path in sorted((REPO / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hf_coreset"):
                assert not any(part.startswith("_") for part in node.module.split(".")), (path.name, node.module)
                assert not any(a.name.startswith("_") for a in node.names), (path.name, node.module)
                assert not node.module.startswith("hf_coreset.benchmark"), path.name
            if path.name != "provenance.py" and isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                assert not {"subprocess", "datetime", "platform"} & set(names), (path.name, names)


def test_provenance_names_the_checkout_and_the_command(tmp_path, monkeypatch):
    from benchmarks import provenance

    monkeypatch.chdir(tmp_path)  # the revision is the checkout's that holds the script, not the current folder's
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert provenance.git_revision().split("+")[0] == head.stdout.strip()
    assert provenance.command([str(REPO / "benchmarks" / "seed_cost.py"), "--seed", "1"]) == (
        "python benchmarks/seed_cost.py --seed 1")
    assert provenance.command([str(REPO / "benchmarks" / "__main__.py"), "quality"]) == "python -m benchmarks quality"
    m = provenance.machine()
    assert m["cpu_count"] and m["torch"] and m["threads"] >= 1
    assert "- git revision: " in provenance.header()


def test_runner_says_which_extra_it_needs(tmp_path):
    code = ("import sys\nsys.modules['mnist1d'] = None\nfrom benchmarks.cli import main\n"
            f"sys.exit(main(['quality', '--quick', '--results', {str(tmp_path / 'cells.jsonl')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr == "error: python -m benchmarks quality needs the bench extra: pip install -e '.[bench]'\n"
    assert not (tmp_path / "cells.jsonl").exists()


def test_kernels_benchmark_compares_kcenter_with_numpy_and_skips_by_prediction(tmp_path):
    sys.path.insert(0, str(REPO))
    from benchmarks import kernel_rates as kernels

    x, _, _ = kernels.synthetic(400, 8)
    from hf_coreset.ops import kcenter_greedy

    np.testing.assert_array_equal(kernels.numpy_gonzalez(x[:40], 6, 0), kcenter_greedy(x[:40], 6, first=0)[0])
    rows = kernels.run([200, 20_000], [1], "cpu", budget_s=1e-9, dim=8, log=lambda s: None)
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["kernel"] for r in ok} == set(kernels.KERNELS) and all(r["n"] == 200 for r in ok)
    assert all(r["status"].startswith("skipped: predicted") for r in rows if r["n"] == 20_000)
    kc = next(r for r in ok if r["kernel"] == "kcenter")
    assert kc["agreement"] == 1.0 and kc["gemm_flops"] > 0
    md = kernels.write(rows, tmp_path / "kernels.md", "cpu", 1e-9)
    assert "| kcenter | 200 | 1 |" in md and "--device cuda" in md


def test_million_benchmark_projects_a_class_subset_and_counts_the_partitioned_work(tmp_path):
    sys.path.insert(0, str(REPO))
    from benchmarks import million

    # k-center on 2 of 10 classes of 300 rows, partitioned at 5000: one part, so exact's 2 n_c d k
    row = million.run_one("kcenter", 3000, 8, 2, 1, timeout_s=300)
    assert row["status"] == "ok" and row["picks"] == 2 * 30
    assert row["projected_s"] == pytest.approx(row["seconds"] * 5)
    assert row["flops"] == 2 * (2.0 * 300 * 8 * 30)
    assert million.parts(100_000, 10_000, 2000) == 50 and million.parts(1500, 150, 2000) == 1
    md = million.write([row], tmp_path / "million.md")
    assert "| kcenter | 3,000 x 8 | partition_size=5000 | 2 |" in md and "(projected)" in md
    assert json.loads((tmp_path / "million.json").read_text())[0]["method"] == "kcenter"


def test_collect_memory_benchmark_selects_the_same_with_and_without_the_cache(tmp_path):
    sys.path.insert(0, str(REPO))
    from benchmarks import collect_memory

    out = tmp_path / "collect_memory.md"
    assert collect_memory.main(["--rows", "3000", "--dim", "8", "--fraction", "0.05", "--dir", str(tmp_path),
                                "--out", str(out)]) == 0
    text = out.read_text()
    assert "3,000 rows x 8" in text and "Same picks: yes" in text and "| cache (signals memory-mapped" in text
    assert [p.name for p in tmp_path.iterdir()] == ["collect_memory.md"]  # the dataset and the cache are gone


def test_no_benchmark_script_shadows_an_installed_package():
    """Run as `python benchmarks/X.py`, the benchmarks folder is sys.path[0]: a script named like an
    installed top-level package (benchmarks/kernels.py did, and transformers imports `kernels`) would
    be imported in its place."""
    import importlib.metadata
    import sys

    installed = set(importlib.metadata.packages_distributions()) | set(sys.stdlib_module_names)
    stems = {p.stem for p in (Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")} - {"__init__", "__main__"}
    assert not stems & installed, f"rename benchmarks/{sorted(stems & installed)}.py"


def test_peers_benchmark_core_without_the_peers(monkeypatch):
    """The script's core with only ours and the numpy loop: the peers' rows say why they are absent."""
    sys.path.insert(0, str(REPO))
    from benchmarks import peers

    for module in peers.PEERS:  # as if not installed, whether or not they are
        monkeypatch.setitem(sys.modules, module, None)
    x = peers.blobs(300, 16)
    res = peers.compare(x)
    assert res["k"] == 30
    fl, kc = res["facility_location"], res["kcenter"]
    assert [r["library"] for r in fl] == ["hf_coreset", "hf_coreset dense=False", *peers.PEERS]
    assert [r["status"] for r in fl[2:]] == ["not installed"] * len(peers.PEERS)
    assert fl[1]["shared"] == 1.0 and fl[1]["prefix"] == 30  # ours without the kept matrix: same greedy
    from hf_coreset.ops import FeatureKernel, facility_location

    np.testing.assert_array_equal(fl[0]["picks"], facility_location(FeatureKernel(x), 30)[0])
    # The numpy loop and ours are the same greedy with the same first center.
    assert kc[1]["shared"] == 1.0 and kc[1]["prefix"] == 30 and kc[1]["radius_ratio"] == 1.0
    # The shared objective function against brute force.
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1))
    near = d[:, fl[0]["picks"]].min(1)
    q = peers.quality(x, fl[0]["picks"])
    # (its ||a||^2 + ||b||^2 - 2 a.b leaves ~1e-7 of each pick's zero self-distance after the square root)
    np.testing.assert_allclose([q["cost"], q["radius"]], [near.sum(), near.max()], rtol=1e-8)
    c = 2 * np.sqrt((x.astype(np.float64) ** 2).sum(1).max()) + 1e-6
    np.testing.assert_allclose(q["F"], (c - d[:, fl[0]["picks"]]).max(1).sum(), rtol=1e-8)
    np.testing.assert_allclose(peers.similarity_matrix(x), c - d, atol=1e-5)
    md = peers.markdown([res], "- command: `x`\n", "1 thread", {}, 16)
    assert "| 300 | 30 | apricot | not installed |" in md and "| 300 | 30 | numpy loop |" in md


@pytest.mark.parametrize("peer", ["apricot", "submodlib"])
def test_peer_reaches_our_facility_location_objective(peer):
    """Where a peer is installed (the bench extra), it maximises the same F as ours: on a small input its
    greedy picks give the same nearest-pick distance sum within 1e-3 (the orders may part at near-ties:
    our similarities are float32, the peers' float64)."""
    pytest.importorskip(peer)
    sys.path.insert(0, str(REPO))
    from benchmarks import peers

    res = peers.compare(peers.blobs(400, 16), peers=(peer,), blocked=False)
    row = res["facility_location"][1]
    assert row["status"] == "ok" and sorted(set(row["picks"])) == sorted(row["picks"]) and len(row["picks"]) == 40
    assert abs(row["cost_ratio"] - 1) < 1e-3 and abs(row["F_ratio"] - 1) < 1e-6
    assert row["shared"] >= 0.9


def test_docstring_paragraphs_reads_prose_from_source_without_importing(tmp_path, monkeypatch):
    """The `docstrings` task's rows: prose paragraphs of module, class and function docstrings, parsed
    (a module that would fail on import is still read), tests skipped, code-like and short ones dropped."""
    from benchmarks.auto_datasets import docstring_paragraphs

    pkg = tmp_path / "fakelib"
    (pkg / "tests").mkdir(parents=True)
    long = "This paragraph explains in plain words what the function computes for its caller today."
    (pkg / "__init__.py").write_text(f'"""{long}\n\nToo short to keep."""\nraise ImportError("never imported")\n')
    (pkg / "core.py").write_text(
        f'class A:\n    """{long}"""\n\n    def f(self):\n        """Returns x.\n\n'
        '        >>> f(1, 2, 3) == {{"a": [1, 2, 3], "b": (4, 5, 6)}}  # code: under 85% letters\n\n'
        '        An honest second paragraph that describes the method in enough plain English words."""\n')
    (pkg / "tests" / "test_x.py").write_text('"""A test module docstring with many plain words that must be skipped."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert docstring_paragraphs("fakelib") == [
        long, "An honest second paragraph that describes the method in enough plain English words."]
