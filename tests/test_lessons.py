"""The lesson notebooks: structure, saved outputs (nbval) and execution over the profile matrix (papermill).

* every lesson opens with what you'll learn, what you need and the time, and has a ``parameters`` cell
  with ``profile = "generic"`` (papermill's way in for site specifics);
* ``pytest --nbval`` re-runs every lesson and compares it with its saved outputs (sanitized by
  ``notebooks/sanitize.cfg``). The saved outputs were made where the practice cluster and Charliecloud
  run (their cells submit real jobs), so this test needs them: it skips elsewhere, and fails under
  ``HPCW_REQUIRE_REAL=1``;
* each lesson runs with papermill for the ``local`` and ``generic`` profiles, with ``run_jobs=False``
  where a lesson has that parameter (the real jobs are already covered by the nbval run).

Notebooks are copied to a temporary folder first, so runs never rewrite the committed pictures.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.exercises import runner
from hpcwidgets.lessons.kernel_client import RUN_OPTIONS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
LESSON = re.compile(r"^\d\d-.+\.ipynb$")
PROFILES = ("local", "generic")
WORKERS = 3


def lesson_paths() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.iterdir() if LESSON.match(p.name) and not p.name.startswith("00-"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def test_there_are_at_least_eleven_numbered_lessons():
    names = [p.name for p in lesson_paths()]
    assert len(names) >= 11, names
    numbers = [int(n[:2]) for n in names]
    assert numbers == list(range(1, len(names) + 1)), f"lessons must be numbered 01, 02, … without gaps: {names}"


@pytest.mark.parametrize("path", lesson_paths(), ids=lambda p: p.stem)
def test_lesson_header_and_parameters(path):
    nb = load(path)
    first = source(nb["cells"][0])
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert first.startswith(f"# {path.name[:2]} ·"), f"{path.name}: the first cell must be the numbered title"
    for heading in ("**What you'll learn**", "**What you need**", "**Time**"):
        assert heading in first, f"{path.name}: the first cell lacks {heading}"
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: exactly one cell tagged 'parameters' is needed"
    assert re.search(r'^profile = "generic"$', source(params[0]), re.M), f"{path.name}: profile must default to generic"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", lesson_paths(), ids=lambda p: p.stem)
def test_saved_outputs_are_portable(path):
    """Executed, with nothing from this machine in the compared outputs: no error, no checkout path."""
    nb = load(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), f"{path.name} is not executed; run it with papermill"
    for c in code:
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: a saved output is an error"
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            assert str(ROOT) not in text, f"{path.name}: a saved output shows this machine's path {ROOT}"
            assert not re.search(r"\bjob(?: id)? \d{2,}\b", text), f"{path.name}: a saved output shows a job id"


@pytest.mark.parametrize("path", lesson_paths(), ids=lambda p: p.stem)
def test_every_saved_widget_has_its_state(path):
    """A widget output names its model; a static view (a handout, GitHub) can draw it only when the notebook's
    saved widget state holds that model. Refreshing one cell's output without the state breaks this."""
    nb = load(path)
    state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    views = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for c in nb["cells"]
             if c["cell_type"] == "code" for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    missing = [m for m in views if m not in state]
    assert not missing, f"{path.name}: widget outputs {missing} are not in the saved widget state; re-execute the " \
                        "lesson with its widget state stored (nbclient store_widget_state=True)"


def _copy_notebooks(tmp_path: Path) -> Path:
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return work


def _real_components() -> tuple[bool, str]:
    from hpcwidgets import lessons
    target = lessons.practice_target("generic")
    return target.ok, target.reason


def _kernel_deaths(stdout: str) -> list[str]:
    """The lessons nbval could not check because their kernel died starting (a port another kernel took
    first); [] when anything else failed too, which a second run must not hide."""
    lines = [line for line in stdout.splitlines() if re.match(r"(?:FAILED|ERROR) \S+\.ipynb::", line)]
    if not lines or not all(runner.kernel_start_failed(line) for line in lines):
        return []
    return sorted({Path(line.split()[1].split("::")[0]).name for line in lines})


def test_kernel_deaths_are_told_from_failures():
    died = ("ERROR notebooks/05-b.ipynb::Cell 2 - RuntimeError: Kernel died before replying to kernel_info\n"
            "ERROR notebooks/05-b.ipynb::Cell 3 - RuntimeError: Kernel died before replying to kernel_info\n")
    assert _kernel_deaths(died) == ["05-b.ipynb"]
    assert _kernel_deaths(died + "FAILED notebooks/06-c.ipynb::Cell 4\n") == []
    assert _kernel_deaths("1 passed\n") == []


@pytest.mark.real
def test_nbval_saved_outputs_match(tmp_path):
    ok, reason = _real_components()
    need(ok, f"the saved outputs include real jobs on the practice cluster: {reason}")
    pytest.importorskip("nbval")
    work = _copy_notebooks(tmp_path)
    files = [str(work / p.name) for p in lesson_paths()]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "hpcwidgets.lessons.nbval_kernel",
            "--nbval", *files,
            "--nbval-sanitize-with", str(work / "sanitize.cfg"), "--rootdir", str(work), "-o", "addopts=",
            "-n", "2", "--dist", "loadfile"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=work, timeout=900)
    for _ in range(2):  # checked again on their own, one after the other (kernels started beside them can race again)
        died = _kernel_deaths(proc.stdout)
        if not (proc.returncode and died):
            break
        again = [a for a in argv[:argv.index("-n")] if a not in files] + [str(work / name) for name in died]
        proc = subprocess.run(again, capture_output=True, text=True, cwd=work, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ passed", proc.stdout), proc.stdout[-2000:]


def _execute(nb: Path, out: Path, profile: str) -> str:
    import papermill as pm
    params = {"profile": profile}
    text = nb.read_text(encoding="utf-8")
    if "run_jobs = " in text:
        params["run_jobs"] = False
    for _ in range(runner.START_ATTEMPTS):
        try:
            pm.execute_notebook(str(nb), str(out), parameters=params, kernel_name="python3", cwd=str(nb.parent),
                                progress_bar=False, log_output=False, **RUN_OPTIONS)
        except Exception as exc:  # noqa: BLE001 - reported with the notebook's name below
            failure = f"{nb.name} [{profile}]: {type(exc).__name__}: {str(exc)[-1500:]}"
            if not runner.kernel_start_failed(failure):   # a kernel that died starting is started again
                return failure
        else:
            return ""
    return failure


def test_lessons_run_for_each_profile(tmp_path):
    pytest.importorskip("papermill")
    work = _copy_notebooks(tmp_path)
    runs = [(work / p.name, tmp_path / f"{p.stem}-{profile}.ipynb", profile)
            for p in lesson_paths() for profile in PROFILES]
    # processes, not threads: papermill's cwd= changes the working directory of the whole process, so with
    # threads a kernel could start in another run's directory (or the checkout) and write its figures there
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        failures = [f for f in pool.map(_execute, *zip(*runs)) if f]
    assert not failures, "\n\n".join(failures)
    assert list((work / "images").glob("*.png")), "the lessons' figures belong next to the notebooks that made them"
    for _, out, profile in runs:
        nb = load(out)
        params = [c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
        assert params and f'profile = "{profile}"' in source(params[0]), f"{out.name}: profile was not injected"


def test_practice_target_names_the_module_and_says_when_jobs_run_elsewhere(monkeypatch):
    from hpcwidgets import lessons
    from hpcwidgets.profiles import load_profile
    import hpcwidgets.run.slurm as run_slurm
    monkeypatch.setattr(run_slurm, "available", lambda env=None: True)
    midway = load_profile("midway3")
    monkeypatch.setattr(lessons, "_partitions", lambda: set(midway.slurm_partition_names()))
    monkeypatch.setattr(lessons.shutil, "which", lambda name: None)
    target = lessons.practice_target("midway3", site_jobs=True)
    assert not target.ok and f"module load {midway.module('apptainer')}" in target.reason
    # a site whose partitions this Slurm lacks: the practice cluster runs the jobs, and the lesson says so
    local = load_profile("local")
    monkeypatch.setattr(lessons, "_partitions", lambda: set(local.slurm_partition_names()))
    monkeypatch.setattr(lessons.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(lessons, "Path", lambda p: type("D", (), {"is_dir": lambda self: True})())
    target = lessons.practice_target("midway3")
    assert target.ok and target.profile == "local" and "'midway3'" in target.reason
