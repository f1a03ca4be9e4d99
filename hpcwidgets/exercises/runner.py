"""The workshop check pipeline (``hpcwidgets workshop check``).

Three kinds of run, all in parallel in a process pool, each in its own temporary working
directory with the kernel named explicitly (``python3``) and a per-cell timeout:

* every solution notebook with papermill, once per entry of its parameter matrix (the notebook's
  metadata ``hpcwidgets.matrix``: a list of parameter dicts, e.g. ``[{"profile": "generic"},
  {"profile": "local"}]``); any error fails;
* every exercise notebook with its default parameters: it must stop at an unsolved task with the
  generated ``NotImplementedError`` and nothing else (any other error, or no error, fails); checked for a
  site (``profiles``), an exercise runs with that site as its ``profile`` parameter, up to its first task,
  unless it takes no such parameter, or it submits a job before that task and the site's Slurm is not the
  one here (then it runs with its defaults, and a note says why);
* every lesson notebook in ``notebooks/`` with nbval (``pytest --nbval``, strict output comparison),
  on a copy of the folder.

A one-line counter on stderr shows progress; the result is a table notebook × parameters × result
(✓/✗, seconds) and the exit status is 1 when anything failed.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import HpcWidgetsError
# the kernel, its start and the start failures worth another try are the lessons' too (the exercises import the
# lessons, never the other way round)
from ..lessons.kernel import KERNEL, KERNEL_START_FAILURES, START_ATTEMPTS, START_TIMEOUT, kernel_start_failed

CELL_TIMEOUT = 180
EXERCISE_MARK = "Exercise:"


@dataclass(frozen=True)
class Task:
    """One notebook run."""

    kind: str                               # solution | exercise | nbval
    notebook: Path
    parameters: tuple[tuple[str, Any], ...] = ()
    root: Path | None = None                # the folder copied for nbval runs
    note: str = ""                          # why the run is not the one asked for (an exercise kept at its defaults)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.parameters)

    def label(self) -> str:
        given = ", ".join(f"{k}={v}" for k, v in self.parameters)
        if given and self.note:  # an exercise kept at its default profile: it was not asked for
            return f"{given} (its default)"
        return given or "(defaults)"


@dataclass(frozen=True)
class Outcome:
    task: Task
    ok: bool
    seconds: float
    detail: str = ""
    starts: int = 1                         # kernel starts it took (more than one: a kernel died starting)


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or not self.outcomes else 0


# ------------------------------------------------------------------------------------------------
# planning
# ------------------------------------------------------------------------------------------------
def notebook_matrix(path: Path) -> list[dict[str, Any]]:
    """The parameter sets a solution declares in its metadata ``hpcwidgets.matrix`` ([{}] if none)."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8")).get("metadata", {})
    except json.JSONDecodeError as exc:
        raise HpcWidgetsError(f"{path}: not valid notebook JSON: {exc.msg}") from None
    matrix = meta.get("hpcwidgets", {}).get("matrix", [{}])
    if not isinstance(matrix, list) or not matrix or not all(isinstance(m, dict) for m in matrix):
        raise HpcWidgetsError(f"{path}: metadata hpcwidgets.matrix must be a non-empty list of parameter "
                              "objects, e.g. [{\"profile\": \"generic\"}, {\"profile\": \"local\"}]")
    return matrix


def plan(root: Path, *, only: str = "", kinds: Iterable[str] = ("solution", "exercise", "nbval"),
         profiles: Sequence[str] = ()) -> list[Task]:
    """Every run for the workshop at ``root`` (holding solutions/, exercises/, notebooks/).

    ``only`` is a glob matched against notebook file names (``ex0*``, ``*torchrun*``).
    ``profiles`` checks the workshop for particular sites: each solution runs once per profile
    (instead of its declared matrix), each exercise as :func:`exercise_tasks` says, and the lessons are
    executed with each profile ("lesson" runs) instead of being compared with their saved outputs,
    which were made for ``generic``.
    """
    root = Path(root)
    kinds = set(kinds)
    tasks: list[Task] = []

    def wanted(p: Path) -> bool:
        return not only or fnmatch(p.name, only) or fnmatch(p.stem, only)

    if "solution" in kinds:
        for nb in sorted((root / "solutions").glob("*.ipynb")):
            if wanted(nb):
                matrix = notebook_matrix(nb)
                if profiles:  # the declared matrix's other parameters, once per requested site
                    base = {k: v for k, v in matrix[0].items() if k != "profile"}
                    matrix = [{**base, "profile": p} for p in profiles]
                for params in matrix:
                    tasks.append(Task("solution", nb, tuple(sorted(params.items()))))
    if "exercise" in kinds:
        for nb in sorted((root / "exercises").glob("*.ipynb")):
            if wanted(nb):
                tasks += exercise_tasks(nb, profiles) if profiles else [Task("exercise", nb)]
    if "nbval" in kinds:
        lessons = root / "notebooks"
        for nb in sorted(lessons.glob("*.ipynb")) if lessons.is_dir() else []:
            if not wanted(nb):
                continue
            if profiles:
                tasks += [Task("lesson", nb, (("profile", p),), root=lessons) for p in profiles]
            else:
                tasks.append(Task("nbval", nb, root=lessons))
    return tasks


def exercise_tasks(path: Path, profiles: Sequence[str]) -> list[Task]:
    """The runs of one exercise checked for ``profiles``: one per profile, given as its ``profile`` parameter.

    Two kinds of exercise run once with their defaults instead, with a note saying why: one that takes no
    ``profile`` parameter, and one that submits a job before its first task (:func:`submits_before_task`)
    when a site's jobs cannot run here (:func:`site_jobs_blocked`): with the site's profile it would send the
    site's job to a Slurm without the site's partitions, or to none, and fail for a reason that is not the
    exercise's. The label then names the default profile it ran with.
    """
    try:
        default = profile_default(path)
    except HpcWidgetsError:
        return [Task("exercise", path)]  # not a notebook this can read: its run reports why
    if default is None:
        return [Task("exercise", path, note=f"{path.stem} takes no profile parameter: it ran with its defaults, "
                                            f"not for {', '.join(profiles)}")]
    submits = submits_before_task(path)
    tasks: list[Task] = []
    kept: list[str] = []
    for profile in profiles:
        reason = site_jobs_blocked(profile) if submits else ""
        if reason:
            kept.append(f"{profile} ({reason})")
        else:
            tasks.append(Task("exercise", path, (("profile", profile),)))
    if kept:
        params = (("profile", default),) if default else ()
        tasks.append(Task("exercise", path, params, note=(
            f"{path.stem} submits a job before its first task, and these sites' jobs cannot run here: "
            f"{'; '.join(kept)}; it ran with " + (f"its default profile, {default}," if default else "its defaults")
            + " instead")))
    return tasks


def profile_default(path: Path) -> str | None:
    """The default of an exercise's ``profile`` parameter: the value its ``parameters`` cell (the one papermill
    injects after) assigns; "" when that is not a plain string (an expression), None when the cell assigns no
    ``profile``. Read with Python's parser: papermill's own reading (inspect_notebook) skips a line with a
    second ``=``, such as ``package = "scikit-learn==1.5.0"``."""
    for cell in _cells(path):
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            tree = ast.parse(_python(_cell_source(cell)))
        except SyntaxError as exc:
            raise HpcWidgetsError(f"{path}: the parameters cell is not Python papermill can extend: {exc.msg} "
                                  f"(line {exc.lineno})") from None
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else [])
            if any(isinstance(t, ast.Name) and t.id == "profile" for t in targets):
                value = node.value
                return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else ""
    return None


def _cells(path: Path) -> list[dict[str, Any]]:
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
        return [cell for cell in cells if isinstance(cell, dict)]
    except (json.JSONDecodeError, AttributeError) as exc:
        raise HpcWidgetsError(f"{path}: not valid notebook JSON: {getattr(exc, 'msg', 'not an object')}") from None


def _cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _python(source: str) -> str:
    """A cell's source with its IPython lines (``!cmd``, ``%magic``) blanked, keeping the line numbers."""
    return "\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in source.splitlines())


#: Python calls that submit a job from a notebook: hpcwidgets.run.slurm.submit, a form's .submit(),
#: hpcwidgets.lessons.run_job
SUBMITTING_CALLS = frozenset({"submit", "run_job"})
#: commands that submit a job, in a shell escape (``!sbatch job.sh``), a ``%%bash`` cell or a subprocess argv
SUBMITTING_COMMANDS = (("sbatch",), ("hpcwidgets", "submit"))
_STUB = re.compile(r"raise\s+NotImplementedError\(\s*[\"']" + re.escape(EXERCISE_MARK))


def submits_before_task(path: Path) -> bool:
    """Whether the code cells an exercise check runs (up to the one holding its first task) submit a job: a
    call of :data:`SUBMITTING_CALLS`, or one of :data:`SUBMITTING_COMMANDS` run from the notebook."""
    for cell in _cells(path):
        if cell.get("cell_type") != "code":
            continue
        source = _cell_source(cell)
        task = _STUB.search(source)
        if _cell_submits(source[:task.start()] if task else source):  # the task's raise ends the run
            return True
        if task:
            return False
    return False


def _cell_submits(source: str) -> bool:
    lines = source.splitlines()
    if lines and re.match(r"%%(bash|sh|script)\b", lines[0]):
        return any(_shell_submits(line) for line in lines[1:])
    if any(_shell_submits(line.strip()[1:]) for line in lines if line.strip().startswith("!")):
        return True
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return False  # not Python this check can read; the run itself will say what is wrong with it
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in SUBMITTING_CALLS:
            return True
        for arg in node.args:
            words = ([getattr(e, "value", None) for e in arg.elts] if isinstance(arg, (ast.List, ast.Tuple))
                     else str(arg.value).split() if isinstance(arg, ast.Constant) else [])
            if _command_submits(words):
                return True
    return False


def _shell_submits(line: str) -> bool:
    """Whether a shell line runs one of :data:`SUBMITTING_COMMANDS` (``cd work && sbatch job.sh``)."""
    return any(_command_submits(part.split()) for part in re.split(r"&&|\|\||[;|&]", line))


def _command_submits(words: Sequence[Any]) -> bool:
    return any(tuple(words[:len(command)]) == command for command in SUBMITTING_COMMANDS)


def site_jobs_blocked(profile: str) -> str:
    """Why jobs for ``profile`` cannot run here ("" when they can): no Slurm answers, or the one that does
    lacks the profile's partitions (:func:`hpcwidgets.lessons.practice_target` decides, as for the lessons)."""
    from ..lessons import practice_target
    target = practice_target(profile, site_jobs=True)
    if target.slurm and target.profile == profile:
        return ""
    if not target.slurm:
        return target.reason
    return f"the Slurm here has the partitions of profile {target.profile!r}, not those of {profile!r}"


# ------------------------------------------------------------------------------------------------
# one run (top-level functions: they run in worker processes)
# ------------------------------------------------------------------------------------------------
def _first_lines(text: str, n: int = 6) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return "\n".join(lines[:n]) + (" …" if len(lines) > n else "")


def _papermill(task: Task, workdir: Path, timeout: int) -> None:
    import papermill

    from ..lessons.kernel_client import RUN_OPTIONS
    papermill.execute_notebook(
        str(task.notebook), str(workdir / f"out-{task.notebook.name}"), parameters=task.params,
        kernel_name=KERNEL, cwd=str(workdir), execution_timeout=timeout, start_timeout=START_TIMEOUT,
        progress_bar=False, log_output=False, report_mode=False,
        **RUN_OPTIONS)  # passed on to nbclient: every output and widget message kept, and none lost unsaid


def _run_solution(task: Task, workdir: Path, timeout: int) -> tuple[bool, str]:
    from papermill.exceptions import PapermillExecutionError
    try:
        _papermill(task, workdir, timeout)
    except PapermillExecutionError as exc:
        return False, f"cell {exc.cell_index}: {exc.ename}: {_first_lines(exc.evalue)}"
    return True, ""


def _run_exercise(task: Task, workdir: Path, timeout: int) -> tuple[bool, str]:
    from papermill.exceptions import PapermillExecutionError
    try:
        _papermill(task, workdir, timeout)
    except PapermillExecutionError as exc:
        if exc.ename == "NotImplementedError" and str(exc.evalue).startswith(EXERCISE_MARK):
            return True, f"stops at the first task (cell {exc.cell_index}) as expected"
        return False, (f"cell {exc.cell_index}: {exc.ename}: {_first_lines(exc.evalue)} (an exercise may only stop "
                       "at an unsolved task's NotImplementedError)")
    return False, "ran to the end: a task is not left for the learner (is a solution region missing?)"


def _run_nbval(task: Task, workdir: Path, timeout: int) -> tuple[bool, str]:
    if task.root is None:
        raise HpcWidgetsError(f"nbval task for {task.notebook} has no lessons folder; build tasks with plan()")
    copy = workdir / task.root.name
    shutil.copytree(task.root, copy, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # -p …nbval_kernel: nbval's kernel clients keep every message a cell sends (lessons/kernel_client.py)
    argv = [sys.executable, "-m", "pytest", "-p", "hpcwidgets.lessons.nbval_kernel", "--nbval",
            str(copy / task.notebook.name), "-q", "-p", "no:cacheprovider",
            "--nbval-kernel-name", KERNEL, f"--nbval-cell-timeout={timeout}", "-o", "addopts=",
            "--rootdir", str(workdir), "-c", os.devnull]
    sanitize = copy / "sanitize.cfg"   # the lessons' own output sanitizers (ids, timings, paths)
    if sanitize.is_file():
        argv += ["--nbval-sanitize-with", str(sanitize)]
    try:
        proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=timeout * 10)
    except subprocess.TimeoutExpired:
        return False, f"nbval did not finish within {timeout * 10} s"
    if proc.returncode in (0, 5):   # 5: no cells to check
        return True, ""
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-8:]
    return False, f"nbval exit {proc.returncode}:\n" + "\n".join(tail)


def _run_lesson(task: Task, workdir: Path, timeout: int) -> tuple[bool, str]:
    """A lesson executed for a site's profile, in a copy of notebooks/ (its pictures and data beside it)."""
    if task.root is None:
        raise HpcWidgetsError(f"lesson task for {task.notebook} has no lessons folder; build tasks with plan()")
    copy = workdir / task.root.name
    shutil.copytree(task.root, copy, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return _run_solution(Task("lesson", copy / task.notebook.name, task.params), copy, timeout)


_RUNNERS: dict[str, Callable[[Task, Path, int], tuple[bool, str]]] = {
    "solution": _run_solution, "exercise": _run_exercise, "nbval": _run_nbval, "lesson": _run_lesson}


def run_task(task: Task, timeout: int = CELL_TIMEOUT) -> Outcome:
    """Run one task in a fresh temporary directory; never raises for a failing notebook.

    A run whose kernel died before it started (see :data:`KERNEL_START_FAILURES`) is run again, in a new
    directory, up to :data:`START_ATTEMPTS` times; the outcome counts the starts it took.
    """
    t0 = time.perf_counter()
    for start in range(1, START_ATTEMPTS + 1):
        with tempfile.TemporaryDirectory(prefix=f"hpcw-{task.kind}-") as tmp:
            try:
                ok, detail = _RUNNERS[task.kind](task, Path(tmp), timeout)
            except Exception as exc:  # noqa: BLE001 - reported in the table with its type, not swallowed
                ok, detail = False, f"{type(exc).__name__}: {_first_lines(exc)}"
        if ok or not kernel_start_failed(detail):
            break
    return Outcome(task, ok, time.perf_counter() - t0, detail, starts=start)


# ------------------------------------------------------------------------------------------------
# all runs
# ------------------------------------------------------------------------------------------------
def _progress(done: int, total: int, last: Outcome, stream: Any) -> None:
    mark = "✓" if last.ok else "✗"
    text = f"[{done:>{len(str(total))}}/{total}] {mark} {last.task.kind} {last.task.notebook.stem} {last.task.label()}"
    if stream.isatty():
        stream.write("\r\033[K" + text[:120])
        if done == total:
            stream.write("\n")
    else:
        stream.write(text + "\n")
    stream.flush()


def run_all(tasks: Sequence[Task], *, jobs: int | None = None, timeout: int = CELL_TIMEOUT,
            progress: Any = True) -> list[Outcome]:
    """Run ``tasks`` on ``jobs`` worker processes (default: the machine's cores), in plan order.

    ``progress``: True for the counter on stderr, a stream to write it to, or None/False for none.
    """
    if not tasks:
        return []
    if progress is True:
        progress = sys.stderr
    jobs = max(1, jobs or os.cpu_count() or 1)
    outcomes: dict[int, Outcome] = {}
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx) as pool:
        futures = {pool.submit(run_task, t, timeout): i for i, t in enumerate(tasks)}
        for n, fut in enumerate(cf.as_completed(futures), start=1):
            i = futures[fut]
            outcomes[i] = fut.result()
            if progress:
                _progress(n, len(tasks), outcomes[i], progress)
    return [outcomes[i] for i in range(len(tasks))]


def table(outcomes: Sequence[Outcome]) -> str:
    """notebook × kind × parameters × result (✓/✗) × seconds, then the details of each failure."""
    rows = [("notebook", "run", "parameters", "result", "seconds")]
    for o in outcomes:
        rows.append((o.task.notebook.stem, o.task.kind, o.task.label(), "✓" if o.ok else "✗", f"{o.seconds:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    failed = [o for o in outcomes if not o.ok]
    passed_n = len(outcomes) - len(failed)
    lines.append("")
    lines.append(f"{passed_n} passed, {len(failed)} failed, {sum(o.seconds for o in outcomes):.1f} s of runs")
    restarted = [o for o in outcomes if o.starts > 1]
    if restarted:
        lines.append("kernel died while starting, run again: " + ", ".join(
            f"{o.task.kind} {o.task.notebook.stem} ({o.starts} starts)" for o in restarted))
    for o in failed:
        lines.append("")
        lines.append(f"✗ {o.task.kind} {o.task.notebook} [{o.task.label()}]")
        lines += ["    " + line for line in o.detail.splitlines()]
    return "\n".join(lines)


def check(root: Path, *, jobs: int | None = None, only: str = "", timeout: int = CELL_TIMEOUT,
          kinds: Iterable[str] = ("solution", "exercise", "nbval"), progress: Any = True,
          profiles: Sequence[str] = ()) -> Report:
    """Plan and run every check for the workshop at ``root`` (for ``profiles``: see :func:`plan`)."""
    tasks = plan(root, only=only, kinds=kinds, profiles=profiles)
    report = Report()
    if not tasks:
        report.notes.append(f"nothing to run under {root}" + (f" matching {only!r}" if only else ""))
        return report
    report.notes += [t.note for t in tasks if t.note]
    lessons = [t for t in tasks if t.kind == "nbval"]
    if "nbval" in set(kinds) and not lessons and not only:
        report.notes.append("no lesson notebooks in notebooks/ yet: nbval had nothing to check")
    report.outcomes = run_all(tasks, jobs=jobs, timeout=timeout, progress=progress)
    return report


__all__ = ["CELL_TIMEOUT", "KERNEL", "KERNEL_START_FAILURES", "Outcome", "Report", "SUBMITTING_CALLS",
           "SUBMITTING_COMMANDS", "Task", "check", "exercise_tasks", "kernel_start_failed", "notebook_matrix", "plan",
           "profile_default", "run_all", "run_task", "site_jobs_blocked", "submits_before_task", "table"]
