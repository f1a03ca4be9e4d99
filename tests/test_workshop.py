"""The workshop pipeline: ``hpcwidgets workshop build`` / ``check`` and the runner behind them."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from hpcwidgets.cli import main
from hpcwidgets.errors import HpcWidgetsError
from hpcwidgets.exercises import runner
from hpcwidgets.exercises.build import BEGIN, END

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, *sources: str, matrix: list | None = None) -> Path:
    cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {"tags": ["parameters"]} if i == 0 else {},
              "source": src, "execution_count": None, "outputs": []} for i, src in enumerate(sources)]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    if matrix is not None:
        meta["hpcwidgets"] = {"matrix": matrix}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.fixture
def workshop(tmp_path: Path) -> Path:
    """A tiny workshop: one good solution over two profiles, one broken solution, one exercise each."""
    _notebook(tmp_path / "solutions" / "ex01-good.ipynb", 'profile = "generic"',
              f'# HINT: one plus one\n{BEGIN}\nanswer = 2\n{END}',
              'from hpcwidgets.exercises import AnswerError\nif answer != 2:\n    raise AnswerError(["wrong"])\nprint(profile)',
              matrix=[{"profile": "generic"}, {"profile": "local"}])
    _notebook(tmp_path / "solutions" / "ex02-broken.ipynb", 'profile = "generic"',
              f'{BEGIN}\nanswer = 3\n{END}',
              'from hpcwidgets.exercises import AnswerError\nif answer != 2:\n    raise AnswerError(["answer must be 2, not 3"])',
              matrix=[{"profile": "generic"}])
    assert main(["workshop", "build", "--root", str(tmp_path)]) == 0
    return tmp_path


def test_plan_reads_the_matrix_and_filters(workshop):
    tasks = runner.plan(workshop)
    assert [(t.kind, t.notebook.stem, t.label()) for t in tasks] == [
        ("solution", "ex01-good", "profile=generic"), ("solution", "ex01-good", "profile=local"),
        ("solution", "ex02-broken", "profile=generic"),
        ("exercise", "ex01-good", "(defaults)"), ("exercise", "ex02-broken", "(defaults)")]
    assert {t.notebook.stem for t in runner.plan(workshop, only="ex01*")} == {"ex01-good"}


def test_matrix_must_be_a_list_of_objects(tmp_path):
    nb = _notebook(tmp_path / "solutions" / "ex01-x.ipynb", "p = 1", matrix={"profile": "generic"})
    with pytest.raises(HpcWidgetsError, match="must be a non-empty list"):
        runner.notebook_matrix(nb)


def test_runner_reports_the_failing_notebook_and_exits_non_zero(workshop):
    report = runner.check(workshop, jobs=2, progress=io.StringIO())
    by = {(o.task.kind, o.task.notebook.stem, o.task.label()): o for o in report.outcomes}
    assert by[("solution", "ex01-good", "profile=local")].ok
    bad = by[("solution", "ex02-broken", "profile=generic")]
    assert not bad.ok and "AnswerError" in bad.detail and "answer must be 2, not 3" in bad.detail
    assert by[("exercise", "ex01-good", "(defaults)")].ok, "an exercise stopping at its task passes"
    assert report.exit_code == 1
    table = runner.table(report.outcomes)
    assert "ex02-broken" in table and "✗" in table and "4 passed, 1 failed" in table


def test_exercise_failing_with_another_error_is_a_failure(tmp_path):
    _notebook(tmp_path / "exercises" / "ex01-x.ipynb", "p = 1", "undefined_name + 1",
              'raise NotImplementedError("Exercise: write it")')
    _notebook(tmp_path / "exercises" / "ex02-y.ipynb", "p = 1", "x = 1")
    outcomes = runner.run_all(runner.plan(tmp_path, kinds=["exercise"]), jobs=2, progress=None)
    first, second = outcomes
    assert not first.ok and "NameError" in first.detail and "may only stop at an unsolved task" in first.detail
    assert not second.ok and "ran to the end" in second.detail


def test_progress_counter_and_cli_table(workshop, capsys):
    assert main(["workshop", "check", "--root", str(workshop), "--jobs", "2", "--only", "ex01*"]) == 0
    captured = capsys.readouterr()
    assert "[3/3]" in captured.err
    assert "3 passed, 0 failed" in captured.out
    assert "ex01-good" in captured.out and "profile=local" in captured.out


def test_nbval_runs_on_lesson_notebooks(tmp_path):
    good = _notebook(tmp_path / "notebooks" / "01-ok.ipynb", "print(1 + 1)")
    nb = json.loads(good.read_text())
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "2\n"}]
    nb["cells"][0]["execution_count"] = 1
    good.write_text(json.dumps(nb))
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "3\n"}]
    (tmp_path / "notebooks" / "02-stale.ipynb").write_text(json.dumps(nb))
    outcomes = runner.run_all(runner.plan(tmp_path, kinds=["nbval"]), jobs=2, progress=None)
    assert [o.ok for o in outcomes] == [True, False]
    assert "nbval exit" in outcomes[1].detail


def test_build_check_cli_detects_staleness(workshop, capsys):
    assert main(["workshop", "build", "--check", "--root", str(workshop)]) == 0
    sol = workshop / "solutions" / "ex01-good.ipynb"
    nb = json.loads(sol.read_text())
    nb["cells"][1]["source"] = f"{BEGIN}\nanswer = 1 + 1\n{END}\n# changed"
    sol.write_text(json.dumps(nb))
    capsys.readouterr()
    assert main(["workshop", "build", "--check", "--root", str(workshop)]) == 1
    err = capsys.readouterr().err
    assert "stale" in err and "ex01-good.ipynb" in err
    assert main(["workshop", "build", "--root", str(workshop)]) == 0
    assert main(["workshop", "build", "--check", "--root", str(workshop)]) == 0


def test_shipped_workshop_builds_in_a_copy(tmp_path, capsys):
    for name in ("solutions", "exercises"):
        shutil.copytree(ROOT / name, tmp_path / name)
    assert main(["workshop", "build", "--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "exercises" / "ex03-gpu-flag.ipynb").write_text("{}")
    assert main(["workshop", "build", "--check", "--root", str(tmp_path)]) == 1
    assert "ex03-gpu-flag.ipynb" in capsys.readouterr().err


@pytest.mark.slow
def test_full_workshop_check():
    """Every solution over its matrix, every exercise and the lessons, as `make check` runs them."""
    report = runner.check(ROOT, progress=io.StringIO())
    assert report.outcomes, report.notes
    assert report.exit_code == 0, runner.table(report.outcomes)
    solutions = {o.task.notebook.stem for o in report.outcomes if o.task.kind == "solution"}
    assert len(solutions) >= 12


def test_plan_for_a_site_profile_runs_solutions_and_lessons_with_it():
    from pathlib import Path

    from hpcwidgets.exercises.runner import plan
    root = Path(__file__).resolve().parent.parent
    tasks = plan(root, only="0[09]-*", profiles=("midway3",)) + plan(root, only="ex09*", profiles=("midway3", "local"))
    lessons = [t for t in tasks if t.kind == "lesson"]
    solutions = [t for t in tasks if t.kind == "solution"]
    assert lessons and all(dict(t.params) == {"profile": "midway3"} for t in lessons)
    assert sorted(dict(t.params)["profile"] for t in solutions) == ["local", "midway3"]
    assert not [t for t in tasks if t.kind == "nbval"]


def test_check_for_a_site_runs_a_lesson_with_that_profile(tmp_path, isolated_profiles):
    """The lesson runs from a workshop folder of the test's own, with a home of its own: the run copies the whole
    lessons folder, which in the checkout others may be writing into (a lesson run in place, an editor's temporary
    file), and its kernel would otherwise share ~/.ipython and the user's profiles with every other kernel."""
    from hpcwidgets.exercises.runner import check
    lesson = Path(__file__).resolve().parent.parent / "notebooks" / "00-quickstart.ipynb"
    (tmp_path / "workshop" / "notebooks").mkdir(parents=True)
    (tmp_path / "workshop" / "notebooks" / lesson.name).write_bytes(lesson.read_bytes())
    report = check(tmp_path / "workshop", only="00-quickstart*", kinds=("nbval",), profiles=("midway3",),
                   progress=False)
    assert [(o.task.kind, o.task.params) for o in report.outcomes] == [("lesson", {"profile": "midway3"})]
    assert report.exit_code == 0, runner.table(report.outcomes)


def _flaky_kernel(tmp_path: Path, monkeypatch, deaths: int) -> Path:
    """A ``python3`` kernel spec (found first through JUPYTER_PATH) that exits at once on its first ``deaths``
    starts, the way a kernel whose port was taken dies, and then starts ipykernel as usual."""
    import sys
    count = tmp_path / "starts"
    script = tmp_path / "kernel.py"
    script.write_text(
        "import pathlib, runpy, sys\n"
        f"count = pathlib.Path({str(count)!r})\n"
        "n = int(count.read_text()) + 1 if count.exists() else 1\n"
        "count.write_text(str(n))\n"
        f"if n <= {deaths}:\n"
        "    sys.exit('zmq.error.ZMQError: Address already in use')\n"
        "sys.argv = ['ipykernel_launcher', *sys.argv[1:]]\n"
        "runpy.run_module('ipykernel_launcher', run_name='__main__')\n")
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(script), "-f", "{connection_file}"], "display_name": "Python 3",
        "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return count


@pytest.mark.parametrize("kind", ["solution", "nbval"])
def test_a_kernel_that_dies_starting_is_started_again(tmp_path, monkeypatch, kind):
    count = _flaky_kernel(tmp_path, monkeypatch, deaths=1)
    if kind == "solution":
        task = runner.Task("solution", _notebook(tmp_path / "solutions" / "ex01-x.ipynb", "p = 1", "assert p == 1"))
    else:
        nb = _notebook(tmp_path / "notebooks" / "01-ok.ipynb", "print(1 + 1)")
        data = json.loads(nb.read_text())
        data["cells"][0].update(outputs=[{"output_type": "stream", "name": "stdout", "text": "2\n"}], execution_count=1)
        nb.write_text(json.dumps(data))
        task = runner.Task("nbval", nb, root=nb.parent)
    outcome = runner.run_task(task, timeout=60)
    assert outcome.ok, outcome.detail
    assert outcome.starts == 2 and count.read_text() == "2"
    assert "kernel died while starting, run again: " + f"{kind} " in runner.table([outcome])


def test_a_kernel_that_never_starts_fails_after_three_starts_and_a_failing_cell_runs_once(tmp_path, monkeypatch):
    count = _flaky_kernel(tmp_path, monkeypatch, deaths=99)
    task = runner.Task("solution", _notebook(tmp_path / "solutions" / "ex01-x.ipynb", "p = 1"))
    outcome = runner.run_task(task, timeout=60)
    assert not outcome.ok and runner.kernel_start_failed(outcome.detail), outcome.detail
    assert outcome.starts == runner.START_ATTEMPTS == int(count.read_text())
    # a cell that fails is the notebook's fault: never repeated
    count.write_text("100")
    bad = runner.Task("solution", _notebook(tmp_path / "solutions" / "ex02-y.ipynb", "p = 1", "1 / 0"))
    outcome = runner.run_task(bad, timeout=60)
    assert not outcome.ok and "ZeroDivisionError" in outcome.detail and outcome.starts == 1
    assert count.read_text() == "101"
