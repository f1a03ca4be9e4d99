"""Wall time of ``hpcwidgets workshop check`` (every solution over its matrix, every exercise, nbval).

Runs the check as a user would (the CLI in a fresh process) with one worker per core and prints a table:
the wall time, the number of notebook runs, the sum of their own times (how much the pool overlapped
them) and the slowest runs. Target: under 2 minutes on 2 cores.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 120.0


def main() -> int:
    from hpcwidgets.exercises import runner
    cores = os.cpu_count() or 1
    t0 = time.perf_counter()
    report = runner.check(ROOT, jobs=cores, progress=io.StringIO())
    wall = time.perf_counter() - t0
    runs = len(report.outcomes)
    busy = sum(o.seconds for o in report.outcomes)
    rows = [
        ("workshop check wall time", f"{wall:.1f} s",
         f"target < {TARGET_SECONDS:.0f} s on 2 cores: " + ("OK" if wall < TARGET_SECONDS else "MISSED")),
        ("cores used", str(cores), ""),
        ("notebook runs", str(runs), f"{len(report.failed)} failed"),
        ("sum of run times", f"{busy:.1f} s", f"overlap x{busy / wall:.2f}" if wall else ""),
    ]
    for o in sorted(report.outcomes, key=lambda o: -o.seconds)[:3]:
        rows.append((f"slow: {o.task.kind} {o.task.notebook.stem} [{o.task.label()}]", f"{o.seconds:.1f} s", ""))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip())
    if report.failed:
        print(runner.table(report.failed), file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
