"""How well does ddp_train.py scale from 1 to 2 CPU processes on this machine?

Runs the payload under ``torchrun --standalone`` (gloo, CPU) with 1 and then 2 processes, the two
settings alternating in each round so that both see the same machine load, and prints a table of
training throughput (samples per second, all ranks together) and the scaling efficiency::

    2-process throughput / (2 x 1-process throughput)

Every process gets ``--threads`` CPU threads (OMP_NUM_THREADS, default 1), so 2 processes use
twice the cores of 1. The bundled digits set is tiny, so by default it is repeated ``--scale``
times (written to a temporary .npz and passed as ``--data-dir``) to make an epoch long enough to
measure. The first epoch of each run is a warm-up and not counted. No assertions: this reports.

    .venv/bin/python benchmarks/bench_ddp.py [--epochs 4] [--rounds 2] [--scale 8] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "hpcwidgets" / "payload" / "ddp_train.py"
EPOCH = re.compile(r"^epoch=(\d+) loss=\S+ val_acc=\S+ samples_per_sec=([\d.]+)$", re.M)
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def write_scaled_digits(directory: Path, scale: int) -> Path:
    """The digits repeated ``scale`` times, with a little noise so the copies are not identical."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    X = np.concatenate([digits.data + rng.normal(0, 0.5, digits.data.shape) for _ in range(scale)])
    y = np.concatenate([digits.target] * scale)
    target = directory / "data.npz"
    np.savez(target, X=X.astype(np.float32), y=y)
    return target


def measure(nproc: int, args: argparse.Namespace, data: Path | None, workdir: Path) -> list[float]:
    """Throughput of every epoch after the first, from one torchrun launch with ``nproc`` processes."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env["OMP_NUM_THREADS"] = str(args.threads)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            str(SCRIPT), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--device", "cpu",
            "--output-dir", str(workdir / f"out-{nproc}")]
    if data is not None:
        argv += ["--data-dir", str(data)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"torchrun with {nproc} process(es) failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    rates = [float(rate) for epoch, rate in EPOCH.findall(proc.stdout) if int(epoch) > 1]
    if not rates:
        sys.exit(f"no epoch after the first was reported; use --epochs 2 or more\n{proc.stdout}")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run; the first is warm-up (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating 1-/2-process rounds (default 2)")
    parser.add_argument("--scale", type=int, default=8, help="repeat the digits this many times; 1 = as shipped")
    parser.add_argument("--batch-size", type=int, default=64, help="per-process batch size (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS per process (default 1)")
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.rounds < 1 or args.scale < 1 or args.threads < 1:
        parser.error("need --epochs >= 2 (the first is warm-up) and --rounds, --scale, --threads >= 1")

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"ddp_train.py on CPU (gloo): {args.epochs} epochs/run, {args.rounds} round(s), digits x{args.scale}, "
          f"batch {args.batch_size}/process, {args.threads} thread(s)/process, {cores} CPU(s) available")
    if cores is not None and cores < 2 * args.threads:
        print(f"note: 2 processes x {args.threads} thread(s) exceed the {cores} CPU(s) here; expect poor scaling")

    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="bench_ddp.") as tmp:
        workdir = Path(tmp)
        data = write_scaled_digits(workdir, args.scale) if args.scale > 1 else None
        for round_no in range(1, args.rounds + 1):
            for nproc in (1, 2):
                rates[nproc] += measure(nproc, args, data, workdir)
                print(f"  round {round_no}: {nproc} process(es) done", flush=True)

    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print()
    print(f"{'processes':>9}  {'samples/s (median)':>18}  {'min':>10}  {'max':>10}  {'epochs':>6}")
    for nproc in (1, 2):
        values = rates[nproc]
        print(f"{nproc:>9}  {statistics.median(values):>18.1f}  {min(values):>10.1f}  {max(values):>10.1f}  "
              f"{len(values):>6}")
    print(f"\nspeed-up 2 vs 1: {two / one:.2f}x   scaling efficiency: {two / (2 * one):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
