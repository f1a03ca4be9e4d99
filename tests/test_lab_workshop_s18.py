"""Session 18: ``make lab`` inside a Slurm job, and ``workshop build`` / ``workshop reset`` never losing a
learner's answers (audits a1 finding 2, a2 findings 1.1 and 4.1)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcwidgets.cli import main
from hpcwidgets.exercises.build import (BEGIN, END, RECORD, NotebookFormatError, build, cells_digest, dumps,
                                        exercise_from_solution, holds_edits)
from hpcwidgets.run import lab
from test_jupyter2_s19 import short_tmpdir

ROOT = Path(__file__).resolve().parents[1]
JOB = {"SLURM_JOB_ID": "4242", "SLURMD_NODENAME": "n1", "USER": "jdoe"}


def args(*argv: str) -> argparse.Namespace:
    return lab.parser().parse_args(list(argv))


# ------------------------------------------------------------------------------------------------
# make lab inside a job: the advice printed
# ------------------------------------------------------------------------------------------------
def _job_plan(tmp_path: Path, env: dict[str, str], *extra: str, terminal: bool = False) -> lab.LabPlan:
    return lab.plan(args("--notebook-dir", str(tmp_path), "--profile", "", *extra), env, token="abc",
                    is_root=False, terminal=terminal)


def test_in_a_job_under_make_the_advice_is_the_make_variable(tmp_path, monkeypatch):
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.1")
    lines = _job_plan(tmp_path, dict(JOB, MAKELEVEL="1")).lines
    assert "   make lab LOGIN_HOST=HOST" in lines
    assert not any("--login-host" in line for line in lines), "an option cannot be given through make"
    direct = _job_plan(tmp_path, JOB).lines
    assert any("python -m hpcwidgets.run.lab --login-host HOST" in line for line in direct)
    assert not any("make lab" in line for line in direct)


def test_a_profile_without_a_login_host_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.1")
    monkeypatch.setattr(lab, "profile_login", lambda name: lab.NO_LOGIN)
    p = lab.plan(args("--notebook-dir", str(tmp_path), "--profile", "mysite"), dict(JOB, MAKELEVEL="1"),
                 token="abc", is_root=False, terminal=False)
    assert any(line.startswith("The profile mysite names no login host.") for line in p.lines)


def test_make_lab_login_host_prints_the_tunnel(tmp_path, monkeypatch):
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.1")
    p = _job_plan(tmp_path, dict(JOB, MAKELEVEL="1"), "--login-host", "login.example.org")
    assert any(line.strip().startswith("ssh -N -L") and line.endswith("jdoe@login.example.org") for line in p.lines)
    assert not any("LOGIN_HOST" in line for line in p.lines)


@pytest.mark.parametrize("env, terminal, says, never", [
    (JOB, False, "Stop JupyterLab by ending the job: scancel 4242", "Ctrl-C"),
    (JOB, True, "Stop JupyterLab with Ctrl-C, or end the whole job with: scancel 4242", None),
    ({}, False, "Stop JupyterLab with Ctrl-C.", "scancel"),
])
def test_stop_advice_fits_a_batch_job_an_interactive_job_and_a_laptop(tmp_path, monkeypatch, env, terminal, says,
                                                                     never):
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.1")
    lines = lab.plan(args("--notebook-dir", str(tmp_path), "--profile", ""), env, token="abc", is_root=False,
                     terminal=terminal).lines
    assert lines[-1] == says
    assert never is None or not any(never in line for line in lines)


# ------------------------------------------------------------------------------------------------
# make lab inside a job: a private runtime folder, removed when JupyterLab ends
# ------------------------------------------------------------------------------------------------
FAKE_JUPYTERLAB = """#!{python}
# stands in for "python -m jupyterlab": listens on --ip/--port and writes its server file there as JupyterLab does,
# records what it was given, then exits with FAKE_EXIT once someone connected, or waits until SIGTERM stops it
# (FAKE_SLOW: it only notes the SIGTERM, as a JupyterLab slow to stop would)
import json, os, signal, socket, sys, time
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
server = socket.socket()
server.bind((opts["ip"], int(opts["port"])))
server.listen()
record, xdg, runtime = {record!r}, os.environ.get("XDG_RUNTIME_DIR", ""), os.environ.get("JUPYTER_RUNTIME_DIR", "")
mode = format(os.stat(xdg).st_mode & 0o777, "o") if os.path.isdir(xdg) else ""
with open(record + ".tmp", "w") as fh:
    fh.write(f"pid={{os.getpid()}}\\nppid={{os.getppid()}}\\nxdg={{xdg}}\\njupyter={{runtime}}\\nmode={{mode}}\\n")
with open(os.path.join(runtime, f"jpserver-{{os.getpid()}}.json"), "w") as fh:
    json.dump({{"port": int(opts["port"])}}, fh)
os.rename(record + ".tmp", record)
if "FAKE_EXIT" in os.environ:
    server.accept()
    sys.exit(int(os.environ["FAKE_EXIT"]))


def note(what, then_exit):
    def handler(*_):
        with open(record, "a") as fh:
            fh.write(what + "\\n")
        if then_exit:
            sys.exit(0)
    return handler


signal.signal(signal.SIGTERM, note("stopping", False) if os.environ.get("FAKE_SLOW") else note("stopped", True))
time.sleep(60)
"""


def _fake_lab(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """``python -m hpcwidgets.run.lab`` with a stand-in JupyterLab, in a process group of its own (as a job's
    processes are); returns the process and the stand-in's record file.

    The launcher gets a port of its own (``--port``, one the system hands out), not its preferred 8888: every
    launcher started on this machine at the same time (the other pytest-xdist worker's, other test runs, a
    ``make lab``) asks for 8888 first, and where two see it free, the one whose stand-in loses the bind finds it
    free again once the winner has ended and takes its stand-in's exit for JupyterLab's own (exit 1, no record).
    These tests are about the runtime folder, not the choice of port (tests/test_jupyter_s19.py tests that).
    The person's HPCW_* settings (HPCW_PROFILE, HPCW_TUNNEL, HPCW_KERNEL_TRANSPORT) are left out as well."""
    record = tmp_path / "record"
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_JUPYTERLAB.format(python=sys.executable, record=str(record)))
    fake.chmod(0o755)
    (tmp_path / "nb").mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MAKE", "HPCW_"))}
    proc = subprocess.Popen([sys.executable, "-m", "hpcwidgets.run.lab", "--notebook-dir", str(tmp_path / "nb"),
                             "--python", str(fake), "--login-host", "login.example.org",
                             "--port", str(lab.free_port(None))],
                            env=dict(base, **env), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    return proc, record


def _recorded(record: Path, proc: subprocess.Popen) -> dict[str, str]:
    deadline = time.monotonic() + 30
    while not record.exists():
        assert proc.poll() is None or record.exists(), proc.communicate()
        assert time.monotonic() < deadline, "the stand-in JupyterLab never started"
        time.sleep(0.05)
    return dict(line.split("=", 1) for line in record.read_text().splitlines() if "=" in line)


def _gone(path: Path, within: float) -> bool:
    deadline = time.monotonic() + within
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not path.exists()


def _end(proc: subprocess.Popen) -> None:
    """Stop what the test started: the stand-in, its sleep and the helper (one process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def test_in_a_job_jupyterlab_gets_a_private_runtime_folder_removed_when_it_ends(tmp_path):
    tmp = short_tmpdir()
    proc, record = _fake_lab(tmp_path, dict(JOB, TMPDIR=str(tmp), XDG_RUNTIME_DIR="/run/user/none", FAKE_EXIT="3"))
    out, err = proc.communicate(timeout=60)
    seen = _recorded(record, proc)
    runtime = Path(seen["xdg"])
    assert runtime.parent == tmp and seen["mode"] == "700", seen
    assert seen["jupyter"] == str(runtime / "jupyter")
    assert seen["ppid"] == str(proc.pid), "JupyterLab runs as the launcher's child, which waits for it to answer"
    assert proc.returncode == 3, err
    assert not runtime.exists(), "the folder is removed when JupyterLab ends"
    assert "Stop JupyterLab by ending the job: scancel 4242" in out


def test_scancel_removes_the_runtime_folder_at_once(tmp_path):
    tmp = short_tmpdir()
    proc, record = _fake_lab(tmp_path, dict(JOB, TMPDIR=str(tmp), FAKE_SLOW="1"))
    try:
        runtime = Path(_recorded(record, proc)["xdg"])
        assert runtime.is_dir()
        os.killpg(proc.pid, signal.SIGTERM)  # scancel: every process of the job gets SIGTERM
        assert _gone(runtime, 5), "removed at once, before Slurm's SIGKILL"
        assert proc.poll() is None and "stopping" in record.read_text(), "while JupyterLab is still stopping"
    finally:
        _end(proc)
    assert list(tmp.iterdir()) == []


def test_the_runtime_folder_goes_even_when_jupyterlab_is_killed(tmp_path):
    tmp = short_tmpdir()
    proc, record = _fake_lab(tmp_path, dict(JOB, TMPDIR=str(tmp)))
    try:
        seen = _recorded(record, proc)
        runtime = Path(seen["xdg"])
        os.kill(int(seen["pid"]), signal.SIGKILL)
        assert proc.wait(timeout=10) == 128 + signal.SIGKILL
        assert not runtime.exists()
    finally:
        _end(proc)


def test_outside_slurm_only_jupyters_runtime_folder_is_private(tmp_path):
    """A laptop's XDG_RUNTIME_DIR is its desktop's, and stays; JupyterLab's server file goes to a private folder,
    where the launcher knows it can only be this JupyterLab's."""
    proc, record = _fake_lab(tmp_path, {"XDG_RUNTIME_DIR": "/run/user/mine", "FAKE_EXIT": "0"})
    proc.communicate(timeout=60)
    seen = _recorded(record, proc)
    assert seen["xdg"] == "/run/user/mine"
    runtime = Path(seen["jupyter"])
    assert runtime.name == "jupyter" and runtime.parent.name.startswith("jupyter.") and not runtime.parent.exists()


def test_a_runtime_folder_that_cannot_be_made_is_a_clear_error(tmp_path, monkeypatch):
    def refuse(**_kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(lab.tempfile, "mkdtemp", refuse)
    with pytest.raises(lab.LabError, match="set TMPDIR to a folder on this node that you can write to"):
        lab.private_runtime({"TMPDIR": str(tmp_path)})


# ------------------------------------------------------------------------------------------------
# workshop build: a learner's answers are never replaced unasked
# ------------------------------------------------------------------------------------------------
def _solution(path: Path, answer: str = "answer = 2", hint: str = "one plus one") -> Path:
    cells = [{"cell_type": "markdown", "id": "m0", "metadata": {}, "source": "# Exercise"},
             {"cell_type": "code", "id": "c1", "metadata": {"tags": ["parameters"]}, "source": 'profile = "generic"',
              "execution_count": None, "outputs": []},
             {"cell_type": "code", "id": "c2", "metadata": {}, "source": f"# HINT: {hint}\n{BEGIN}\n{answer}\n{END}",
              "execution_count": None, "outputs": []},
             {"cell_type": "code", "id": "c3", "metadata": {}, "source": "print(answer)",
              "execution_count": None, "outputs": []}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {"hpcwidgets": {"matrix": [{"profile": "generic"}]}},
                                "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workshop copy with two solutions, built once."""
    _solution(tmp_path / "solutions" / "ex01-add.ipynb")
    _solution(tmp_path / "solutions" / "ex02-more.ipynb", "answer = 3", "three")
    assert main(["workshop", "build", "--root", str(tmp_path)]) == 0
    return tmp_path


def _answer(path: Path, text: str = "answer = 1 + 1") -> str:
    """What a learner does: write an answer in place of the raise, run the cells, save in JupyterLab."""
    nb = json.loads(path.read_text())
    cell = nb["cells"][2]
    cell["source"] = [line for line in cell["source"] if "NotImplementedError" not in line] + [text]
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "2\n"}]
    cell["execution_count"] = 1
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.12.1"}
    saved = json.dumps(nb, indent=1)
    path.write_text(saved)
    return saved


def _change_solution(ws: Path, name: str = "ex01-add.ipynb") -> None:
    path = ws / "solutions" / name
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] = "# Exercise, reworded upstream"
    path.write_text(json.dumps(nb))


def test_an_answered_exercise_is_kept_and_check_names_reset(ws, capsys):
    ex = ws / "exercises" / "ex01-add.ipynb"
    answered = _answer(ex)
    capsys.readouterr()
    assert main(["workshop", "build", "--check", "--root", str(ws)]) == 1
    err = capsys.readouterr().err
    assert "stale" not in err, "an answered notebook is not out of date with solutions/"
    assert "learner's answers" in err and str(ex) in err
    assert f"hpcwidgets workshop reset ex01-add --root {ws}" in err
    assert f"hpcwidgets workshop build --force --root {ws}" in err
    assert main(["workshop", "build", "--root", str(ws)]) == 1
    captured = capsys.readouterr()
    assert ex.read_text() == answered, "build never replaces an answer unasked"
    assert "0 written, 1 unchanged, 1 kept (a learner's answers)" in captured.out
    assert not list((ws / "exercises").glob("*.bak*"))


def test_check_tells_out_of_date_apart_from_answered(ws, capsys):
    _answer(ws / "exercises" / "ex02-more.ipynb")
    _change_solution(ws)
    capsys.readouterr()
    assert main(["workshop", "build", "--check", "--root", str(ws)]) == 1
    err = capsys.readouterr().err
    stale, answered = err.split("learner's answers in these")
    assert "ex01-add.ipynb" in stale and "ex02-more.ipynb" not in stale
    assert f"run `hpcwidgets workshop build --root {ws}`" in stale
    assert "ex02-more.ipynb" in answered and "ex01-add.ipynb" not in answered


def test_an_untouched_exercise_follows_its_solution_without_a_backup(ws):
    ex = ws / "exercises" / "ex01-add.ipynb"
    nb = json.loads(ex.read_text())  # run and saved, not edited: outputs, ids and metadata change
    nb["cells"][3]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "2\n"}]
    nb["cells"][3]["id"] = "renumbered"
    nb["metadata"]["language_info"] = {"name": "python"}
    ex.write_text(json.dumps(nb))
    _change_solution(ws)
    result = build(ws / "solutions", ws / "exercises")
    assert result.written == (ex,) and result.edited == () and result.backups == ()
    assert "reworded upstream" in ex.read_text()
    assert not list((ws / "exercises").glob("*.bak*"))


def test_only_outputs_differ_is_out_of_date_not_answered(ws):
    ex = ws / "exercises" / "ex01-add.ipynb"
    nb = json.loads(ex.read_text())
    del nb["metadata"]["hpcwidgets"][RECORD]  # an exercise from a build that kept no record
    nb["cells"][3]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "2\n"}]
    ex.write_text(json.dumps(nb))
    assert build(ws / "solutions", ws / "exercises", check=True).stale == (ex,)


def test_force_keeps_every_learner_version_as_a_backup(ws, capsys):
    ex = ws / "exercises" / "ex01-add.ipynb"
    first = _answer(ex)
    _change_solution(ws)
    capsys.readouterr()
    assert main(["workshop", "build", "--force", "--root", str(ws)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {ex} (the learner's version is kept as ex01-add.ipynb.bak)" in out
    assert (ws / "exercises" / "ex01-add.ipynb.bak").read_text() == first
    assert "NotImplementedError" in ex.read_text() and "reworded upstream" in ex.read_text()
    second = _answer(ex, "answer = 2")
    assert main(["workshop", "reset", "ex01", "--root", str(ws)]) == 0
    assert (ws / "exercises" / "ex01-add.ipynb.bak").read_text() == first, "an earlier backup is never replaced"
    assert (ws / "exercises" / "ex01-add.ipynb.bak.1").read_text() == second
    assert build(ws / "solutions", ws / "exercises", check=True).unchanged == (ex, ws / "exercises" / "ex02-more.ipynb")


@pytest.mark.parametrize("text", ["{}", "not json", json.dumps({"cells": "x"}), json.dumps([1])])
def test_a_notebook_that_cannot_be_told_apart_counts_as_answered(ws, text):
    ex = ws / "exercises" / "ex01-add.ipynb"
    ex.write_text(text)
    result = build(ws / "solutions", ws / "exercises")
    assert result.edited == (ex,) and ex.read_text() == text


def test_an_answered_notebook_without_a_record_is_kept(ws):
    ex = ws / "exercises" / "ex01-add.ipynb"
    _answer(ex)
    nb = json.loads(ex.read_text())
    del nb["metadata"]["hpcwidgets"][RECORD]
    ex.write_text(json.dumps(nb))
    assert build(ws / "solutions", ws / "exercises", check=True).edited == (ex,)


# ------------------------------------------------------------------------------------------------
# workshop reset: one learner's notebook back to its fresh state
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ex01", "ex01-add", "ex01-add.ipynb", "exercises/ex01-add.ipynb"])
def test_reset_takes_the_number_the_name_or_the_path(ws, name):
    ex = ws / "exercises" / "ex01-add.ipynb"
    answered = _answer(ex)
    other = _answer(ws / "exercises" / "ex02-more.ipynb", "answer = 3")
    assert main(["workshop", "reset", name, "--root", str(ws)]) == 0
    assert (ws / "exercises" / "ex01-add.ipynb.bak").read_text() == answered
    assert json.loads(ex.read_text()) == exercise_from_solution(json.loads((ws / "solutions" / ex.name).read_text()))
    assert (ws / "exercises" / "ex02-more.ipynb").read_text() == other, "only the named exercise is reset"


def test_reset_of_an_unknown_name_lists_the_choices_and_writes_nothing(ws, capsys):
    ex = ws / "exercises" / "ex01-add.ipynb"
    answered = _answer(ex)
    assert main(["workshop", "reset", "ex01", "ex9", "--root", str(ws)]) == 2
    err = capsys.readouterr().err
    assert "there is no exercise 'ex9'" in err and "ex01-add, ex02-more" in err and "Traceback" not in err
    assert ex.read_text() == answered


def test_reset_of_a_fresh_or_missing_notebook(ws, capsys):
    assert main(["workshop", "reset", "ex02", "--root", str(ws)]) == 0
    assert "is fresh already" in capsys.readouterr().out
    (ws / "exercises" / "ex02-more.ipynb").unlink()
    assert main(["workshop", "reset", "ex02", "--root", str(ws)]) == 0
    assert (ws / "exercises" / "ex02-more.ipynb").exists() and not list((ws / "exercises").glob("*.bak*"))


# ------------------------------------------------------------------------------------------------
# the record, and the shipped workshop
# ------------------------------------------------------------------------------------------------
def test_the_record_is_the_digest_of_the_cells_as_built(tmp_path):
    nb = exercise_from_solution(json.loads(_solution(tmp_path / "s.ipynb").read_text()), "s.ipynb")
    assert nb["metadata"]["hpcwidgets"][RECORD] == cells_digest(nb)
    assert nb["metadata"]["hpcwidgets"]["matrix"] == [{"profile": "generic"}]
    assert not holds_edits(dumps(nb), nb)
    edited = json.loads(dumps(nb))
    edited["cells"][2]["source"] = "answer = 2"
    assert holds_edits(json.dumps(edited), nb)


def test_a_solution_whose_hpcwidgets_metadata_is_not_an_object_is_refused(tmp_path):
    nb = json.loads(_solution(tmp_path / "s.ipynb").read_text())
    nb["metadata"]["hpcwidgets"] = ["generic"]
    with pytest.raises(NotebookFormatError, match="metadata.hpcwidgets must be an object"):
        exercise_from_solution(nb, "s.ipynb")


def test_the_shipped_exercise_answered_as_in_the_audit_survives_build(tmp_path, capsys):
    for name in ("solutions", "exercises"):
        shutil.copytree(ROOT / name, tmp_path / name)
    # the shipped notebooks may predate the record: their cells are the built ones, so build rewrites them freely
    assert build(tmp_path / "solutions", tmp_path / "exercises").edited == ()
    ex = tmp_path / "exercises" / "ex07-sbatch-single-gpu.ipynb"
    nb = json.loads(ex.read_text())
    cell = next(c for c in nb["cells"] if any("NotImplementedError" in line for line in c["source"]))
    cell["source"] = ["script = '#SBATCH --partition=gpu_a100'\n"]
    ex.write_text(json.dumps(nb, indent=1))
    capsys.readouterr()
    assert main(["workshop", "build", "--check", "--root", str(tmp_path)]) == 1
    assert "workshop reset ex07-sbatch-single-gpu" in capsys.readouterr().err
    assert main(["workshop", "build", "--root", str(tmp_path)]) == 1
    assert "gpu_a100" in ex.read_text()
    assert main(["workshop", "reset", "ex07", "--root", str(tmp_path)]) == 0
    assert "gpu_a100" not in ex.read_text() and "gpu_a100" in (ex.parent / (ex.name + ".bak")).read_text()
