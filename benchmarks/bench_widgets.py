"""Widget responsiveness: control change → updated preview and findings, and building each builder.

* WorkflowBuilder: hundreds of control changes of different kinds (a number, a text, a checkbox, a
  list, a value that flows into other layers, a bad value and its correction); each change runs the
  whole cycle (form → model → problems → render → lint → highlighted preview → findings view).
  Values repeat (people type and undo), so the lint and highlight caches count as they would in use;
  the "fresh text" rows use a value never seen before to show the uncached cost.
* each builder: time to construct it and produce its first display bundle (``_repr_mimebundle_``).

Target: p99 < 10 ms per change. Run: ``.venv/bin/python benchmarks/bench_widgets.py``.
"""

from __future__ import annotations

import itertools
import statistics
import time

CHANGES = 600
BUILDS = 15


def p99(xs: list[float]) -> float:
    return sorted(xs)[int(0.99 * (len(xs) - 1))]


def row(name: str, xs: list[float], target: float | None = None) -> tuple[str, str, str, str, str]:
    med, worst = statistics.median(xs), p99(xs)
    verdict = "" if target is None else ("OK" if worst < target else "MISSED")
    return (name, str(len(xs)), f"{med * 1e3:.2f} ms", f"{worst * 1e3:.2f} ms", verdict)


def main() -> int:
    from hpcwidgets.widgets.builder import BUILDERS, WorkflowBuilder

    b = WorkflowBuilder(submit=False)
    edits = itertools.cycle([
        ("slurm.time", "02:00:00"), ("slurm.time", "01:00:00"),
        ("slurm.job_name", "train-a"), ("slurm.job_name", "train"),
        ("slurm.gpus_per_node", "2"), ("slurm.gpus_per_node", "4"),      # flows into torchrun and --nv
        ("slurm.nodes", "2"), ("slurm.nodes", "1"),
        ("container.binds", "$SCRATCH/data:/data:ro"), ("container.binds", ""),
        ("container.cleanenv", True), ("container.cleanenv", False),
        ("torchrun.args", "--epochs 10"), ("torchrun.args", ""),
        ("slurm.time", "1.5h"), ("slurm.time", "01:00:00"),                 # bad value, then corrected
    ])
    for key, value in itertools.islice(edits, 64):  # warm-up: imports, first lint, Pygments lexer
        b.controls[key].value = value
    cached: list[float] = []
    for key, value in itertools.islice(edits, CHANGES):
        t0 = time.perf_counter()
        b.controls[key].value = value
        _ = (b.text, b.findings)
        cached.append(time.perf_counter() - t0)

    fresh: list[float] = []
    for i in range(CHANGES // 3):
        t0 = time.perf_counter()
        b.controls["slurm.job_name"].value = f"run-{i}"   # a text never seen: lint and highlight run in full
        _ = (b.text, b.findings)
        fresh.append(time.perf_counter() - t0)

    rows = [row("WorkflowBuilder: change → preview + findings (typical edits)", cached, 0.010),
            row("WorkflowBuilder: change → preview + findings (fresh text, no cache)", fresh, 0.010)]
    for cls in BUILDERS:
        cls(submit=False)  # warm-up: imports and the first render of this model kind
        times = []
        for _ in range(BUILDS):
            t0 = time.perf_counter()
            built = cls(submit=False)
            built._repr_mimebundle_()
            times.append(time.perf_counter() - t0)
            built.close()
        rows.append(row(f"build + display {cls.__name__}", times))

    header = ("measurement", "n", "median", "p99", "target p99 < 10 ms")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0 if all(r[4] != "MISSED" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
