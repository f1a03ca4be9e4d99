"""Shared test helpers: real-component gating and argv-printing stand-in programs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpcwidgets.lessons.kernel_client import RUN_OPTIONS

REQUIRE_REAL = os.environ.get("HPCW_REQUIRE_REAL") == "1"


def need(ok: bool, reason: str) -> None:
    """Skip when a real component is missing, or fail when HPCW_REQUIRE_REAL=1 (CI)."""
    if ok:
        return
    if REQUIRE_REAL:
        pytest.fail(f"HPCW_REQUIRE_REAL=1 but a real component is missing: {reason}")
    pytest.skip(reason)


def need_tool(name: str, why: str = "") -> str:
    """A program's path: next to the test interpreter first (.venv/bin/shellcheck), then on PATH."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(name)
    need(path is not None, f"{name} is not installed{': ' + why if why else ''}")
    return path  # type: ignore[return-value]


def bash_image_dir(root: Path) -> Path:
    """A minimal Charliecloud image directory at ``root`` holding bash and its libraries (no network, ~2 MB); skips
    without ch-run and ldd (fails under HPCW_REQUIRE_REAL=1, as need_tool does)."""
    need_tool("ch-run", "Charliecloud's ch-run runs the real-container tests")
    need_tool("ldd", "copies bash's libraries into a test image")
    for d in ("dev", "proc", "sys", "tmp", "etc", "home", "mnt/0", "bin", "data"):
        (root / d).mkdir(parents=True)
    (root / "etc/passwd").write_text("")
    (root / "etc/group").write_text("")
    bash = shutil.which("bash")
    shutil.copy(bash, root / "bin/bash")
    libs = subprocess.run(["ldd", bash], capture_output=True, text=True, check=True).stdout
    for token in libs.split():
        if token.startswith("/") and os.path.exists(token):
            target = root / token.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(token, target)
    return root


STANDIN = """#!{python} -IS
import json, os, sys
with open(os.environ["HPCW_ARGV_LOG"], "a", encoding="utf-8") as fh:
    fh.write(json.dumps({{"prog": os.path.basename(sys.argv[0]), "argv": sys.argv[1:]}}) + "\\n")
"""


def stand_ins(directory: Path, names: list[str]) -> Path:
    """Create programs that append their argv as JSON lines to $HPCW_ARGV_LOG."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        p = directory / name
        p.write_text(STANDIN.format(python=sys.executable))
        p.chmod(0o755)
    return directory


def stand_in_env(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment :func:`run_with_stand_ins` runs bash with (``env`` added to its PATH, HOME and log):
    what a ``$NAME`` in a rendered command expands to there, for a test's expected argv."""
    return {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HPCW_ARGV_LOG": str(tmp_path / "argv.jsonl"),
            "HOME": str(tmp_path), **(env or {})}


def run_with_stand_ins(script: str, tmp_path: Path, names: list[str], env: dict[str, str] | None = None) -> list[dict]:
    """Run bash text with stand-ins first on PATH; return the recorded invocations."""
    stand_ins(tmp_path / "bin", names)
    full_env = stand_in_env(tmp_path, env)
    log = Path(full_env["HPCW_ARGV_LOG"])
    log.write_text("")
    proc = subprocess.run(["bash", "-c", script], env=full_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"bash failed ({proc.returncode}): {proc.stderr}\n--- script ---\n{script}"
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def sbatch_and_wait(script: Path, env: dict[str, str], seconds: int = 120) -> str:
    """Submit ``script`` with sbatch (``env`` names the cluster: its SLURM_CONF) and wait until squeue no longer
    lists the job; its id. A job still there after ``seconds`` fails the test, and is cancelled either way."""
    import time
    import pytest
    submitted = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, env=env,
                               check=True)
    job = submitted.stdout.strip().split(";")[0]
    try:
        for _ in range(seconds):
            state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, env=env)
            if not state.stdout.strip():
                return job
            time.sleep(1)
        pytest.fail(f"job {job} did not finish in {seconds} s\n{cluster_picture(job, env)}")
    finally:
        subprocess.run(["scancel", job], capture_output=True, env=env)


def cluster_picture(job: str, env: dict[str, str]) -> str:
    """What a job that waited too long waited for: its state and reason, every job in the queue, the nodes."""
    def run(*argv: str) -> str:
        proc = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=30)
        return (proc.stdout + proc.stderr).strip()
    return "\n".join([
        f"job {job}: " + run("squeue", "-h", "-j", job, "-o", "%T reason=%r nodes=%N"),
        "queue:\n" + run("squeue", "-o", "%i %j %T %M %r %N"),
        "nodes:\n" + run("sinfo", "-N", "-o", "%N %T %C %E")])


def reachable_addresses() -> list[str]:
    """This machine's addresses other than loopback and link-local (``hostname -I``)."""
    import ipaddress
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    except OSError:
        return []
    return [a for a in out if not ipaddress.ip_address(a.split("%")[0]).is_link_local]


# ------------------------------------------------------------------------------------------------
# lesson notebooks: their cells, run in this process or by papermill
# ------------------------------------------------------------------------------------------------
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def lesson_cells(lesson: str) -> list[dict]:
    """The cells of the lesson notebook numbered ``lesson`` (e.g. ``"02"``)."""
    path = next(NOTEBOOKS.glob(f"{lesson}-*.ipynb"))
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def cell_source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def cell_outputs(cell: dict) -> str:
    """What a saved code cell printed (its streams and the plain text of its results), as one string."""
    out = []
    for o in cell.get("outputs", []):
        text = o.get("text") or o.get("data", {}).get("text/plain", "")
        out.append("".join(text) if isinstance(text, list) else text)
    return "".join(out)


def _parameters_cell(cell: dict) -> bool:
    return "parameters" in cell.get("metadata", {}).get("tags", []) or \
        cell_source(cell).lstrip().startswith("# Papermill parameter")


def run_lesson_in_process(lesson: str, profile: str, *, skip: tuple[str, ...] = ()) -> list[tuple[str, str, dict]]:
    """Run the lesson's code cells in this process, in order, for ``profile`` and without real jobs (``run_jobs`` and
    ``site_jobs`` False, in place of the parameters cell), leaving out the cells whose ids are in ``skip``.

    Returns one ``(cell id, what it printed, the names it set or changed)`` per cell run. The caller chooses the
    working directory (a lesson writes its figures into ``images/`` there)."""
    import contextlib
    import io
    namespace: dict = {"__name__": "__main__", "profile": profile, "run_jobs": False, "site_jobs": False}
    runs = []
    for cell in lesson_cells(lesson):
        if cell["cell_type"] != "code" or _parameters_cell(cell) or cell.get("id") in skip:
            continue
        before = dict(namespace)   # the old values themselves, so a new one is never taken for one of them
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(cell_source(cell), f"{lesson}:{cell.get('id')}", "exec"), namespace)
        changed = {name: value for name, value in namespace.items()
                   if name not in before or before[name] is not value}
        runs.append((cell.get("id", ""), printed.getvalue(), changed))
    return runs


def run_lessons_with_papermill(lessons: list[str], profile: str, tmp_path: Path) -> dict[str, dict[str, str]]:
    """Run each lesson with papermill for ``profile`` (``run_jobs=False`` where the lesson has it) from a copy in
    ``tmp_path`` (the committed notebooks and pictures stay as they are); for each lesson, its code cells' outputs by
    cell id."""
    pm = pytest.importorskip("papermill")
    work = tmp_path / "notebooks"
    (work / "images").mkdir(parents=True, exist_ok=True)
    shutil.copytree(NOTEBOOKS / "images", work / "images", dirs_exist_ok=True)
    runs: dict[str, dict[str, str]] = {}
    for lesson in lessons:
        source = Path(shutil.copy(next(NOTEBOOKS.glob(f"{lesson}-*.ipynb")), work))
        params = {"profile": profile}
        if "run_jobs = " in source.read_text(encoding="utf-8"):
            params["run_jobs"] = False
        out = tmp_path / f"{lesson}-{Path(profile).stem}.ipynb"
        pm.execute_notebook(str(source), str(out), parameters=params, kernel_name="python3", cwd=str(work),
                            progress_bar=False, log_output=False, **RUN_OPTIONS)
        runs[lesson] = {c.get("id", ""): cell_outputs(c) for c in json.loads(out.read_text(encoding="utf-8"))["cells"]
                        if c["cell_type"] == "code"}
    return runs
