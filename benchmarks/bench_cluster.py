"""Latency of the practice cluster, container start-up cost, and DDP throughput, in one table.

* **submit → start → done** of a trivial batch job (``echo``), median over ``--jobs`` jobs submitted
  one after another: how long ``sbatch`` takes to return, when the job starts and ends by its own
  clock (``date +%s.%N`` written by the job; same machine, same clock), and when
  :meth:`hpcwidgets.run.slurm.Job.wait` (polling every 0.1 s) reports it COMPLETED;
* ``import torch`` in the Charliecloud trainer image (``ch-run IMAGE -- python -c 'import torch'``)
  next to the same import on the host, median over ``--imports`` runs each, alternating;
* with ``--ddp`` (default on; ``--no-ddp`` skips it, ~40 s): ``benchmarks/bench_ddp.py``'s measurement of
  ddp_train.py with 1 and 2 CPU processes (samples/s) at a small size.

Needs the practice cluster up (``hpcwidgets practice-cluster up``) and the trainer image. No assertions.

    .venv/bin/python benchmarks/bench_cluster.py [--jobs 10] [--imports 3] [--no-ddp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hpcwidgets.run import practice_cluster as pc  # noqa: E402
from hpcwidgets.run import slurm  # noqa: E402
from hpcwidgets.run.images import TRAINER_IMAGE, read_marker  # noqa: E402

TRIVIAL = """#!/bin/bash
#SBATCH --partition={partition}
#SBATCH --time=00:01:00
#SBATCH --output={out}/bench-%j.out
date +%s.%N
echo hello
date +%s.%N
"""


def job_latencies(n: int, workdir: Path) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {"sbatch returns": [], "submit -> job starts": [], "submit -> job ends": [],
                                    "submit -> wait() sees COMPLETED": []}
    script = TRIVIAL.format(partition=pc.PARTITION, out=workdir)
    for _ in range(n):
        t0 = time.time()
        job = slurm.submit(script, cwd=workdir)
        t1 = time.time()
        state = job.wait(timeout=120, poll=0.1)
        t2 = time.time()
        if state != "COMPLETED":
            sys.exit(f"the trivial job {job.id} ended {state}: {job.output()}")
        stamps = [float(w) for w in job.output().split() if w.replace(".", "", 1).isdigit() and "." in w]
        rows["sbatch returns"].append(t1 - t0)
        rows["submit -> job starts"].append(stamps[0] - t0)
        rows["submit -> job ends"].append(stamps[-1] - t0)
        rows["submit -> wait() sees COMPLETED"].append(t2 - t0)
    return rows


def import_times(n: int) -> dict[str, list[float]]:
    env = {**os.environ, "USER": os.environ.get("USER") or "root"}
    argv = {"import torch on the host": [sys.executable, "-c", "import torch"],
            "import torch in ch-run trainer image": ["ch-run", str(TRAINER_IMAGE), "--", "python", "-c", "import torch"]}
    out: dict[str, list[float]] = {k: [] for k in argv}
    for _ in range(n):
        for name, cmd in argv.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            out[name].append(time.perf_counter() - t0)
    return out


def ddp_rates() -> dict[str, list[float]]:
    sys.path.insert(0, str(HERE))
    import bench_ddp
    args = argparse.Namespace(epochs=3, batch_size=64, threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        data = bench_ddp.write_scaled_digits(Path(tmp), 4)
        one = bench_ddp.measure(1, args, data, Path(tmp))
        two = bench_ddp.measure(2, args, data, Path(tmp))
    return {"ddp_train.py, 1 process (samples/s)": one, "ddp_train.py, 2 processes (samples/s)": two}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10, help="trivial jobs to time (default 10)")
    parser.add_argument("--imports", type=int, default=3, help="import-torch runs per side (default 3)")
    parser.add_argument("--ddp", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure ddp_train.py with 1 and 2 processes (default on)")
    args = parser.parse_args(argv)
    # `make bench` runs every benchmark: without a cluster this one says so and steps aside
    if not slurm.available():
        print("skipped: no Slurm controller answers; start the practice cluster: hpcwidgets practice-cluster up")
        return 0
    if read_marker(TRAINER_IMAGE) is None:
        print(f"skipped: no trainer image at {TRAINER_IMAGE}; build it: hpcwidgets practice-cluster up")
        return 0

    with tempfile.TemporaryDirectory(prefix="hpcw-bench-") as tmp:
        rows = job_latencies(args.jobs, Path(tmp))
    rows.update(import_times(args.imports))
    if args.ddp:
        rows.update(ddp_rates())

    print(f"practice cluster ({os.environ.get('SLURM_CONF') or pc.client_env().get('SLURM_CONF', '?')}), "
          f"{os.cpu_count()} CPUs on this machine")
    print(f"{'measure':<42} {'median':>10} {'min':>10} {'max':>10} {'n':>4}")
    for name, values in rows.items():
        unit = "" if "samples/s" in name else " s"
        fmt = (lambda v: f"{v:,.0f}") if not unit else (lambda v: f"{v:.3f}{unit}")
        print(f"{name:<42} {fmt(statistics.median(values)):>10} {fmt(min(values)):>10} {fmt(max(values)):>10} "
              f"{len(values):>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
