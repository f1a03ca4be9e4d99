"""Session 18, audit A4: ``--set`` edits that were lost or misdirected, and a named pipe given to ``--from``.

F3: a set-up line added to a job script read back went after the script's step (the job read back held the step among
its set-up lines); the reader now keeps the lines from the job's first real work on as its commands. F4: a workflow's
``job.commands`` is never written, so ``--set job.commands=…`` is refused instead of lost. F9: the example of
``--set`` without ``=`` is in the command's own path form. F10: ``--from`` a named pipe says what it waits for, and
gives up after a bounded wait."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from hpcwidgets import files
from hpcwidgets.cli import main
from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.render import render

#: the auditor's script (/tmp/s18/a4/min/base.sbatch)
BASE = """#!/bin/bash
#SBATCH --job-name=train
#SBATCH --nodes=1
#SBATCH --time=01:00:00   # one hour
#SBATCH --gres=gpu:4
set -euo pipefail
module load apptainer
export OMP_NUM_THREADS=1
srun apptainer exec --nv image.sif torchrun --standalone --nproc-per-node=4 train.py
"""
STEP = "srun apptainer exec --nv image.sif torchrun --standalone --nproc-per-node=4 train.py"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err
    return code, out, err


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base.sbatch"
    path.write_text(BASE)
    return path


def without(text: str, *lines: str) -> str:
    """``text`` without ``lines`` and without blank lines (how the added lines are spaced is the layout's choice)."""
    return "\n".join(line for line in text.split("\n") if line.strip() and line not in lines)


# ==============================================================================================
# F3: a set-up line runs before the job's steps

@pytest.mark.parametrize("command, path", [("sbatch", "setup"), ("workflow", "job.setup")])
def test_a_set_up_line_added_to_a_script_goes_before_its_step(base, capsys, command, path):
    code, out, _ = run(capsys, command, "--from", str(base), "--set", f"{path}=mkdir -p out")
    lines = out.split("\n")
    assert code == 0 and lines.index("mkdir -p out") < lines.index(STEP)
    assert without(out, "mkdir -p out") == without(BASE)  # every other line as it was, in its place


def test_the_job_read_back_holds_its_step_as_a_command():
    job = parse_job(BASE)
    assert job.setup == () and job.commands == (STEP,)
    assert job.modules == ("apptainer",) and [v.name for v in job.env] == ["OMP_NUM_THREADS"]
    assert render(job, validate=False) == BASE


@pytest.mark.parametrize("body, setup, commands", [
    # set-up before the first line that works (a module load, cd, mkdir, a message are no work)
    ("cd $SCRATCH\nmkdir -p out\necho start\npip install -r req.txt\npython train.py\n",
     ("cd $SCRATCH", "mkdir -p out", "echo start"), ("pip install -r req.txt\npython train.py",)),
    # a list over two lines is one command, taken whole
    ("mkdir -p out\ncd run &&\n  python train.py\n", ("mkdir -p out",), ("cd run &&\n  python train.py",)),
    # a comment right above the work goes with it; one with a blank line after it stays a set-up line
    ("# the data\ncp -r data $TMPDIR\n\n# train\npython train.py\n", ("# the data", "cp -r data $TMPDIR"),
     ("# train\npython train.py",)),
    # each block between blank lines is one command, as the renderer writes commands
    ("python a.py\n\npython b.py\npython c.py\n", (), ("python a.py", "python b.py\npython c.py")),
    # a loop of steps is work
    ("mkdir -p out\nfor s in 1 2; do\n  srun python t.py --seed $s\ndone\n", ("mkdir -p out",),
     ("for s in 1 2; do\n  srun python t.py --seed $s\ndone",)),
    # nothing that works: every line is set-up
    ("echo hello\nhostname\n", ("echo hello", "hostname"), ()),
])
def test_the_lines_from_the_first_work_on_are_commands(body, setup, commands):
    text = "#!/bin/bash\n#SBATCH --time=10\n" + body
    job = parse_job(text)
    assert (job.setup, job.commands) == (setup, commands)
    assert render(job, validate=False) == text
    written = render(without_layout(job), validate=False)  # the renderer's own layout reads back the same
    assert render(without_layout(parse_job(written)), validate=False) == written


def test_a_jupyter_job_keeps_its_lines_before_the_server_as_set_up():
    from hpcwidgets.parse import parse_jupyter_job
    text = ("#!/bin/bash\n#SBATCH --time=01:00:00\nmodule load python\npip install --user jupyterlab\n"
            "jupyter lab --no-browser --ip=$(hostname -i) --port=8888\n")
    job = parse_jupyter_job(text).job
    assert job.setup == ("pip install --user jupyterlab",) and job.commands == ()


def test_the_forms_set_up_box_holds_what_runs_before_the_step():
    pytest.importorskip("ipywidgets")
    from hpcwidgets.widgets.builder import SlurmBuilder
    b = SlurmBuilder(submit=False)
    assert b.load(BASE)
    assert b.controls["setup"].value == "" and b.controls["commands"].value == STEP
    b.controls["setup"].value = "mkdir -p out"
    lines = b.text.split("\n")
    assert lines.index("mkdir -p out") < lines.index(STEP) and without(b.text, "mkdir -p out") == without(BASE)


# ==============================================================================================
# F4: a workflow's job.commands is never written

def test_a_workflows_job_commands_are_refused_with_where_the_step_comes_from(base, capsys):
    code, out, err = run(capsys, "workflow", "--from", str(base), "--set", "job.commands=echo hi")
    assert code == 2 and out == ""
    assert "--set job.commands: a workflow writes no commands of its job" in err
    assert "--program" in err and "job.setup" in err and "--after" in err and "sbatch --commands" in err


def test_a_new_workflows_job_commands_are_refused_too(capsys):
    code, out, _ = run(capsys, "workflow", "--launcher", "torchrun --standalone train.py", "--set", "job.commands=x")
    assert code == 2 and out == ""


def test_emptying_a_workflows_job_commands_loses_nothing(base, capsys):
    code, out, _ = run(capsys, "workflow", "--from", str(base), "--set", "job.commands=")
    assert code == 0 and out == BASE


@pytest.mark.parametrize("path", ["job.setup=echo hi", "after=echo done"])
def test_the_lines_a_workflow_writes_are_still_set(base, capsys, path):
    code, out, _ = run(capsys, "workflow", "--from", str(base), "--set", path)
    assert code == 0 and "echo " in out


def test_a_jobs_own_commands_are_still_set(base, capsys):
    code, out, _ = run(capsys, "sbatch", "--from", str(base), "--set", "commands=echo hi")
    lines = out.split("\n")
    assert code == 0 and lines.index("echo hi") > lines.index(STEP)


# ==============================================================================================
# F9: --set without '=' gives an example the command takes

@pytest.mark.parametrize("command, example", [
    (["sbatch"], "--set nodes=2"), (["workflow"], "--set job.nodes=2"), (["jupyter-job"], "--set job.nodes=2"),
    (["torchrun"], "--set standalone=true"), (["apptainer", "exec"], "--set cleanenv=true"),
])
def test_a_set_without_a_value_gives_the_commands_own_form(capsys, command, example):
    code, _, err = run(capsys, *command, "--set", "nodes")
    assert code == 2 and "'nodes' gives no value" in err and err.rstrip().endswith(f"e.g. {example}")
    if command == ["sbatch"]:
        assert "job." not in err
        code, out, _ = run(capsys, "sbatch", *example.split())  # the example works as given
        assert code in (0, 1) and "#SBATCH --nodes=2" in out


@pytest.mark.parametrize("command, metavar, example", [("sbatch", "FIELD=VALUE", "--set nodes=2"),
                                                       ("workflow", "LAYER.FIELD=VALUE", "--set job.nodes=2")])
def test_the_help_of_set_keeps_its_form(capsys, command, metavar, example):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"--set {metavar}" in text and f"e.g. {example}" in text


# ==============================================================================================
# F10: a named pipe given to --from

@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_a_pipe_nothing_writes_to_says_it_waits_then_gives_up(fifo, capsys, monkeypatch):
    monkeypatch.setattr(files, "PIPE_WAIT", 0.3)
    monkeypatch.setattr(files, "PIPE_QUIET", 0.1)
    started = time.monotonic()
    code, out, err = run(capsys, "sbatch", "--from", str(fifo))
    assert code == 2 and out == "" and time.monotonic() - started < 5
    note, error = err.strip().split("\n")
    assert note == (f"hpcwidgets: note: {fifo} is a named pipe (FIFO): waiting up to 0.3 s for a program to write "
                    "to it (start that program now, or press Ctrl-C)")
    assert error.startswith(f"hpcwidgets: error: {fifo} is a named pipe (FIFO), and nothing wrote to it within 0.3 s")


def test_a_pipe_written_to_after_the_note_is_read(fifo, capsys, monkeypatch):
    monkeypatch.setattr(files, "PIPE_QUIET", 0.05)
    writer = threading.Thread(target=lambda: (time.sleep(0.5), fifo.write_text(BASE)))
    writer.start()
    code, out, err = run(capsys, "sbatch", "--from", str(fifo))
    writer.join()
    assert code == 0 and out == BASE and "waiting up to 30 s" in err


def test_a_pipe_whose_writer_is_running_is_read_without_a_note(capsys):
    """``--from <(…)``: bash passes /dev/fd/N, a pipe whose writer is already running."""
    read, write = os.pipe()
    os.write(write, BASE.encode())
    os.close(write)
    try:
        code, out, err = run(capsys, "sbatch", "--from", f"/dev/fd/{read}")
    finally:
        os.close(read)
    assert code == 0 and out == BASE and err == ""


def test_a_device_is_still_refused_at_once(capsys):
    code, _, err = run(capsys, "sbatch", "--from", "/dev/zero")
    assert code == 2 and "a character device, not a regular file" in err and "waiting" not in err
