"""Pairwise kernels take a device (issue 13): same picks on CPU and CUDA up to float ties, tensors on
the device asked for, the Accelerate state's device by default, and k-center as fast as a plain loop
without changing a pick."""

import numpy as np
import pytest
import torch

from hf_coreset.ops import (FeatureKernel, GradientKernel, default_device, facility_location, facility_location_batch,
                            gaussian_herding, herding, kcenter_greedy, kmeans, nearest_rows, resolve_device)
from hf_coreset.ops import clustering as clustering
from hf_coreset.ops.nfg import radius_neighbour_counts


def blobs(n=300, d=24, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) + rng.standard_normal(d) * 2).astype(np.float32)


def logit_grad(n, c=5, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, c)) * 2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return p - np.eye(c)[rng.integers(c, size=n)]


def run_all(device):
    x = blobs()
    e = logit_grad(len(x))
    return {
        "kcenter": kcenter_greedy(x, 30, first=4, device=device),
        "herding": herding(x, 30, device=device),  # the kept Gram matrix (300 rows)
        "herding_matvec": herding(x, 30, dense=False, device=device),
        "gaussian_herding": gaussian_herding(x, 30, block=64, device=device),
        "gaussian_herding_matvec": gaussian_herding(x, 30, block=64, dense=False, device=device),
        "facility_location_batch": tuple(np.concatenate(a) for a in zip(*facility_location_batch(
            [e[:40], e[40:100]], [5, 8], device=device))),  # CREST's (subset x class) problems
        "facility_location": facility_location(FeatureKernel(x, device=device), 20, block=64),
        "facility_location_blocked": facility_location(FeatureKernel(x, device=device), 20, block=64, dense=False),
        "craig_gradient": facility_location(GradientKernel(e, x, device=device), 20, block=64),
        "nfg": radius_neighbour_counts(e, x, 0.3, block=64, device=device)[0],
        "kmeans": run_kmeans(x.astype(np.float64), device),
    }


def run_kmeans(x, device):
    """Prototypes' kernel: the assignment, the centres and the row nearest each centre."""
    centres, assign = kmeans(x, 12, iters=20, rng=np.random.default_rng(0), device=device)
    return assign, centres, nearest_rows(x, centres, device=device)


def reference_kcenter(features, k, *, first):
    """kcenter_greedy as it was before the device rewrite (one host sync and a list index per step)."""
    x = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32))
    sq = (x * x).sum(1)
    picks, radii = [first], [float("inf")]
    min_d = (sq + sq[first] - 2.0 * (x @ x[first])).clamp_(min=0)
    min_d[first] = -1.0
    for _ in range(1, k):
        j = int(torch.argmax(min_d))
        radii.append(float(min_d[j].clamp(min=0).sqrt()))
        picks.append(j)
        min_d = torch.minimum(min_d, (sq + sq[j] - 2.0 * (x @ x[j])).clamp_(min=0))
        min_d[torch.tensor(picks)] = -1.0
    return np.asarray(picks), np.asarray(radii)


@pytest.mark.parametrize("n,d,k", [(3000, 64, 300), (2000, 512, 200), (500, 3, 400)])
def test_kcenter_picks_and_radii_are_those_of_the_previous_loop(n, d, k):
    # same float32 expression, so identical to the bit, ties included (d=3, k=0.8 n has many near-ties)
    x = blobs(n, d, seed=n)
    picks, radii = kcenter_greedy(x, k, first=7)
    ref_picks, ref_radii = reference_kcenter(x, k, first=7)
    np.testing.assert_array_equal(picks, ref_picks)
    np.testing.assert_array_equal(radii, ref_radii)


def test_kcenter_with_duplicate_rows_never_repicks():
    x = np.repeat(blobs(20, 4), 3, axis=0)  # every row three times: 20 distinct points
    picks, radii = kcenter_greedy(x, 25, first=0)
    assert len(set(picks.tolist())) == 25
    # after the 20 distinct points only copies remain: distance 0 up to the float32 rounding of
    # ||x||^2 + ||c||^2 - 2 x.c
    assert np.all(radii[20:] < 1e-2 * radii[1])


def test_kcenter_bad_arguments():
    with pytest.raises(ValueError, match="k=11"):
        kcenter_greedy(blobs(10, 2), 11, first=0)
    with pytest.raises(ValueError, match="first=10"):
        kcenter_greedy(blobs(10, 2), 3, first=10)
    with pytest.raises(TypeError, match="device=3"):
        kcenter_greedy(blobs(10, 2), 3, first=0, device=3)


def test_explicit_cpu_device_gives_the_default_picks():
    default, explicit = run_all(None), run_all("cpu")
    typed = run_all(torch.device("cpu"))
    for name in default:
        for a, b, c in zip(*(np.atleast_1d(r) if not isinstance(r, tuple) else r for r in
                             (default[name], explicit[name], typed[name]))):
            np.testing.assert_array_equal(a, b, err_msg=name)
            np.testing.assert_array_equal(a, c, err_msg=name)


def test_kernels_build_their_tensors_on_the_given_device(monkeypatch):
    """Every tensor a kernel creates or moves lands on the device passed (checked on the CPU by
    recording the device of every tensor the factory functions and .to() return)."""
    seen = []
    target = torch.device("cpu")
    for name in ("zeros", "empty", "full", "tensor", "arange", "as_tensor"):
        original = getattr(torch, name)

        def wrapped(*args, _original=original, **kwargs):
            out = _original(*args, **kwargs)
            seen.append(out.device)
            return out

        monkeypatch.setattr(torch, name, wrapped)
    results = run_all(target)
    assert seen and all(d == target for d in seen)
    assert FeatureKernel(blobs(5, 2), device=target).x.device == target
    assert GradientKernel(logit_grad(5), blobs(5, 2), device="cpu").e.device == target
    assert all(isinstance(r, (np.ndarray, tuple)) for r in results.values())


def test_default_device_is_the_accelerate_state_device_else_cpu(monkeypatch):
    from accelerate.state import PartialState

    monkeypatch.setattr(PartialState, "_shared_state", {})
    assert default_device() == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert not PartialState._shared_state  # asking never creates a state
    PartialState(cpu=True)  # what an Accelerator / accelerate launch sets up
    assert PartialState._shared_state
    assert default_device() == PartialState().device
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_picks_equal_cpu_picks():
    cpu, cuda = run_all("cpu"), run_all("cuda")
    # k-center, herding, CREST's batched facility location and the NFG counts: no near-ties on these data
    for name in ("kcenter", "herding", "herding_matvec", "gaussian_herding", "gaussian_herding_matvec",
                 "facility_location_batch", "nfg"):
        got, want = cuda[name], cpu[name]
        if isinstance(got, tuple):
            np.testing.assert_array_equal(got[0], want[0], err_msg=name)
            np.testing.assert_allclose(got[1][1:], want[1][1:], rtol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)
    for name in ("facility_location", "facility_location_blocked", "craig_gradient"):
        np.testing.assert_array_equal(cuda[name][0], cpu[name][0], err_msg=name)
        np.testing.assert_allclose(cuda[name][1], cpu[name][1], rtol=1e-5, err_msg=name)
    # k-means: float64 on both, so assignments and nearest rows agree unless two centres tie to ~1e-13
    np.testing.assert_array_equal(cuda["kmeans"][0], cpu["kmeans"][0])
    np.testing.assert_allclose(cuda["kmeans"][1], cpu["kmeans"][1], rtol=1e-10)
    np.testing.assert_array_equal(cuda["kmeans"][2], cpu["kmeans"][2])


def test_kmeans_torch_distances_agree_with_numpy_ones(monkeypatch):
    """The torch distances a GPU runs, here on the CPU: the same float64 expressions as numpy's, so the
    same k-means and nearest rows (another BLAS's rounding, ~1e-13, moves no assignment on these data)."""
    x = blobs(600, 16, seed=5).astype(np.float64)
    x[:300] += 8.0  # two blobs: clusters of different sizes
    host = run_kmeans(x, "cpu")
    seen = []
    original = clustering.on_device
    monkeypatch.setattr(clustering, "_on_host", lambda device: False)
    monkeypatch.setattr(clustering, "on_device", lambda *a, **k: seen.append(1) or original(*a, **k))
    torch_path = run_kmeans(x, "cpu")
    assert seen  # the rows really went through torch
    np.testing.assert_array_equal(torch_path[0], host[0])
    np.testing.assert_allclose(torch_path[1], host[1], rtol=1e-10)
    np.testing.assert_array_equal(torch_path[2], host[2])
    empty = clustering._SquaredDistances(np.zeros((0, 3)), torch.device("cpu"))
    assert empty.nearest(np.zeros((2, 3))).shape == (0,)


@pytest.mark.parametrize("method,module,kernel,options", [
    ("kcenter", "kcenter", "kcenter_greedy", {"epoch": 2}),
    ("herding", "herding", "herding_greedy", {"epoch": 2}),
    ("kernel-herding", "kernel_herding", "gaussian_herding", {"epoch": 2}),
    ("craig", "craig", "facility_location", {"epoch": 2}),
    ("nfg", "nfg", "radius_neighbour_counts", {"checkpoints": [2]}),
    ("prototypes", "prototypes", "kmeans", {"epoch": 2}),
])
def test_methods_pass_the_default_device_to_their_kernels(monkeypatch, method, module, kernel, options):
    """Each method resolves the device once per selection (the Accelerate state's, else the CPU) and
    hands it to its kernel; it is no method option, so it cannot enter the fingerprint."""
    import importlib
    import inspect

    import hf_coreset
    from hf_coreset.budget import make_budget
    from hf_coreset.signals import Checkpoint, Signals

    mod = importlib.import_module(f"hf_coreset.methods.{module}")
    marker = torch.device("cpu", 0)  # a CPU device distinct from the plain "cpu" default
    resolved = []
    monkeypatch.setattr(mod, "default_device", lambda: resolved.append(marker) or marker)
    devices = []
    original = getattr(mod, kernel)

    def spy(*args, **kwargs):
        devices.append(kwargs.get("device", getattr(args[0], "device", None)))
        return original(*args, **kwargs)

    monkeypatch.setattr(mod, kernel, spy)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    ckpt = Checkpoint(epoch=2, logits=rng.normal(size=(90, 3)).astype(np.float32),
                      features=rng.normal(size=(90, 6)).astype(np.float32))
    signals = Signals(labels=labels, num_classes=3, checkpoints={2: ckpt})
    spec = hf_coreset.methods.get(method)
    assert "device" not in inspect.signature(spec.fn).parameters  # not an option: no fingerprint entry
    spec.fn(signals, make_budget(labels, fraction=0.2), rng=np.random.default_rng(0), **options)
    assert resolved == [marker]  # once per selection, not once per class
    assert devices and all(d == marker for d in devices)
