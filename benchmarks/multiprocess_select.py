"""Selection split across processes: wall time of the selection step with 1 vs 2 processes.

Synthetic signals (`scaling.synthetic`: Gaussian classes of equal size, float32 features) go straight
into `hf_coreset.methods.run`, the selection step of `select`, with no proxy. One process runs the
method alone; two processes (spawned, forming a gloo process group on the CPU as `accelerate launch
--multi_gpu` with ACCELERATE_USE_CPU=1 does) each have 1 torch thread and split the classes between them. Only the `run` call is timed, between two
barriers (data generation and process start are not). The picks of the two runs are compared by a
digest of the indices and gains. With `--classes C` (C < 10) the 10 Gaussian blobs are relabelled
into C classes (blob b -> class b mod C), so each class is a mixture: with C = 1 a single large class
on the partitioned path, which the processes share part by part instead of class by class.

Usage (from the repository root):
    python benchmarks/multiprocess_select.py [--rows 100000] [--dim 512] [--fraction 0.1] [--classes 10]
        [--methods kcenter kernel-herding] [--out benchmarks/results/multiprocess_select.md]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import socket
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import REPO, header  # noqa: E402
from benchmarks.scaling import synthetic  # noqa: E402


def worker(rank: int, size: int, port: int, method: str, args, queue) -> None:
    """One process of a run: build the signals, time `methods.run`; the main process puts the result on `queue`."""
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import hf_coreset
    from hf_coreset.signals import Checkpoint

    dist = None
    if size > 1:
        dist = torch.distributed
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    x, labels = synthetic(args.rows, args.dim)
    labels = labels % args.classes
    signals = hf_coreset.Signals(labels=labels, num_classes=int(labels.max()) + 1,
                                 checkpoints={0: Checkpoint(epoch=0, features=x)})
    budget = hf_coreset.make_budget(labels, fraction=args.fraction)
    if dist:
        dist.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    out = hf_coreset.methods.run(method, signals, budget, seed=0, epoch=0)
    cpu = [time.process_time() - c0]
    if dist:
        dist.barrier()
    seconds = time.perf_counter() - t0
    if dist:
        cpu = [None] * dist.get_world_size()
        dist.all_gather_object(cpu, time.process_time() - c0)
    if not dist or dist.get_rank() == 0:
        digest = hashlib.sha256(np.asarray(out.indices, dtype=np.int64).tobytes())
        if out.gains is not None:
            digest.update(np.asarray(out.gains, dtype=np.float64).tobytes())
        queue.put({"seconds": seconds, "cpu": max(cpu), "picks": len(out.indices), "digest": digest.hexdigest()[:16]})
    if dist:
        dist.destroy_process_group()


def measure(method: str, processes: int, args) -> dict:
    """Run `method` on `processes` fresh processes; return the main process's result."""
    with socket.socket() as free:  # a free port for the process group
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    load = os.getloadavg()[0]
    procs = [ctx.Process(target=worker, args=(rank, processes, port, method, args, queue)) for rank in range(processes)]
    for p in procs:
        p.start()
    result = queue.get()
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"{method} on {processes} process(es): a process exited with {p.exitcode}.")
    return {**result, "load": load}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--classes", type=int, default=10, help="relabel the 10 blobs into this many classes")
    parser.add_argument("--methods", nargs="+", default=["kcenter", "kernel-herding"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "multiprocess_select.md"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # as in every run, so that the header's thread count is the runs'
    intro = header()  # before the runs: the command, and the load the runs start under
    rows = []
    for method in args.methods:
        one, two = measure(method, 1, args), measure(method, 2, args)
        rows.append(f"| {method} | {one['seconds']:.1f} | {two['seconds']:.1f} | {one['seconds'] / two['seconds']:.2f}x "
                    f"| {one['cpu']:.1f} | {two['cpu']:.1f} | {one['cpu'] / two['cpu']:.2f}x "
                    f"| {'yes' if one['digest'] == two['digest'] and one['picks'] == two['picks'] else 'NO'} "
                    f"| {one['load']:.1f} / {two['load']:.1f} |")
        print(rows[-1], flush=True)
    md = "\n".join([
        "# Selection across processes: 1 vs 2 processes", "",
        intro.rstrip(), "",
        f"Selection step only (`hf_coreset.methods.run`, the step after the proxy), {args.rows:,} rows x {args.dim} "
        f"float32 features in {args.classes} equal classes ({10 // args.classes} Gaussian blob(s) each), {args.fraction:g} "
        "kept per class. 2 processes: a gloo process group on the CPU (what `accelerate launch --multi_gpu "
        "--num_processes 2` forms with ACCELERATE_USE_CPU=1), each running its share of the classes (of a class on "
        "the partitioned path, its share of the parts) and gathering the picks; "
        "1 torch thread per process. A shared class splits its parts only: the herdings' and CRAIG's second round "
        "(GreeDi's central round, matching the whole class from every part's candidates) runs on every process, so "
        "its share of the time bounds their speed-up on few large classes (k-center has no second round). "
        "Picks identical: the indices and gains of the two runs have the same digest. "
        "Load: the 1-minute load average when each run started (other jobs share the machine's cores, so a "
        "speed-up below 2x partly measures them). CPU: the CPU seconds of the busiest process over the same "
        "span, which other jobs on the machine inflate much less than wall time.", "",
        "| method | 1 process (s) | 2 processes (s) | speed-up | CPU, 1 process (s) | CPU, busiest of 2 (s) "
        "| CPU speed-up | picks identical | load at start (1 / 2) |",
        "|---|---|---|---|---|---|---|---|---|", *rows, ""])
    Path(args.out).write_text(md)
    print(md)


if __name__ == "__main__":
    main()
