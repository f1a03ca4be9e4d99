"""Session 11: the forms under bad input (audit H5, findings 1-7, 9, 10, 12 and the minor ones)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")

from hpcwidgets import files
from hpcwidgets.cli import main
from hpcwidgets.errors import FileError, RunError
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.widgets import JupyterJobBuilder, SlurmBuilder, WorkflowBuilder

DOCKERFILE = "FROM ubuntu:22.04\nRUN apt-get update\nCMD [\"bash\"]\n"
DEFFILE = "Bootstrap: docker\nFrom: ubuntu:22.04\n%post\n  apt-get -y update\n"


def status(b) -> str:
    import html
    import re
    return html.unescape(re.sub("<[^>]+>", "", b.status.value))


# ==============================================================================================
# finding 1: Apply fix while the form is stale

def test_apply_fix_while_stale_is_refused_and_keeps_the_edits():
    b = WorkflowBuilder(profile="generic", submit=False)
    c = b.controls
    c["slurm.modules"].value = ""  # apptainer without its module: HPC409, with a fix
    assert not b.stale and [f for f in b.findings if f.fix is not None]
    c["slurm.nodes"].value = "x"
    c["slurm.job_name"].value = "my-run"
    assert b.stale
    fix = next(f for f in b.findings if f.fix is not None)
    assert b.apply_fix(fix) is False
    assert "Fix the marked fields first" in status(b)
    assert c["slurm.job_name"].value == "my-run" and c["slurm.nodes"].value == "x"
    buttons = [row.children[1] for row in b.findings_view.children if hasattr(row, "children")
               and len(row.children) == 2]
    assert buttons and all(btn.disabled for btn in buttons)
    c["slurm.nodes"].value = "1"
    assert not b.stale
    fix = next(f for f in b.findings if f.fix is not None)
    assert b.apply_fix(fix) is True
    assert c["slurm.job_name"].value == "my-run"


# ==============================================================================================
# finding 2 (and 10): reading refuses pipes, devices, huge files and unknown users

@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_load_file_refuses_a_fifo_without_blocking(fifo):
    b = SlurmBuilder(profile="generic", submit=False)
    b.path_text.value = str(fifo)
    b.open_button.click()
    assert "is a named pipe (FIFO), not a regular file" in status(b)
    assert b.controls["job_name"].value == "train"


def test_load_file_refuses_a_device():
    b = SlurmBuilder(profile="generic", submit=False)
    b.path_text.value = "/dev/zero"
    b.open_button.click()
    assert "/dev/zero is a character device, not a regular file" in status(b)


def test_reading_caps_the_size(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_READ_BYTES", 100)
    big = tmp_path / "big.sh"
    big.write_text("#!/bin/bash\n" + "echo hi\n" * 50)
    with pytest.raises(FileError, match="larger than"):
        files.read_text(big)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"x" * 200)))
    with pytest.raises(FileError, match="larger than"):
        files.read_stdin()


def test_a_pipe_nothing_writes_to_is_refused_after_the_wait(fifo, monkeypatch):
    monkeypatch.setattr(files, "PIPE_WAIT", 0.05)
    with pytest.raises(FileError, match="nothing wrote to it"):
        files.read_text(fifo)


def test_a_pipe_with_a_writer_is_still_read_by_default(fifo):
    writer = threading.Thread(target=lambda: fifo.write_text("#!/bin/bash\necho hi\n"))
    writer.start()
    assert files.read_text(fifo).text == "#!/bin/bash\necho hi\n"
    writer.join()


def test_cli_lint_refuses_a_device(capsys):
    assert main(["lint", "/dev/zero"]) == 2
    assert "is a character device, not a regular file" in capsys.readouterr().err


def test_cli_sbatch_from_a_pipe_reads_it_once(fifo, capsys):
    writer = threading.Thread(target=lambda: fifo.write_text("#!/bin/bash\n#SBATCH --time=10\nsrun hostname\n"))
    writer.start()
    code = main(["sbatch", "--from", str(fifo)])
    writer.join()
    assert code in (0, 1) and "srun hostname" in capsys.readouterr().out


def test_unknown_user_in_a_file_name_is_a_clear_error(tmp_path):
    b = SlurmBuilder(profile="generic", submit=False)
    b.path_text.value = "~nosuchuser-hpcw/job.sh"
    b.save_button.click()
    assert "there is no user 'nosuchuser-hpcw'" in status(b) and "bug" not in status(b)
    b.open_button.click()
    assert "there is no user 'nosuchuser-hpcw'" in status(b)
    with pytest.raises(FileError, match="write the path without ~"):
        files.read_text("~nosuchuser-hpcw/x.sh")


# ==============================================================================================
# finding 4: Replace? replaces the file it asked about

def test_replace_after_a_change_of_folder_replaces_the_file_asked_about(tmp_path, monkeypatch):
    for d in ("A", "B"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "job.sh").write_text(f"precious {d}\n")
    b = SlurmBuilder(profile="generic", submit=False)
    monkeypatch.chdir(tmp_path / "A")
    b.path_text.value = "job.sh"
    b.save_button.click()
    monkeypatch.chdir(tmp_path / "B")
    b.replace_button.click()
    assert (tmp_path / "A" / "job.sh").read_text().startswith("#!/bin/bash")
    assert (tmp_path / "B" / "job.sh").read_text() == "precious B\n"
    assert str(tmp_path / "A" / "job.sh") in status(b)


# ==============================================================================================
# finding 3: Load refuses build files and empty text, and leaves the form as it was

@pytest.mark.parametrize("cls", [SlurmBuilder, WorkflowBuilder, JupyterJobBuilder])
@pytest.mark.parametrize("text, said", [(DOCKERFILE, "is a Dockerfile, not a job script"),
                                        (DEFFILE, "is an Apptainer definition file, not a job script"),
                                        ("", "the Script box is empty"), ("  \n", "the Script box is empty"),
                                        ("#!/bin/bash\n", "the text holds only its #! line (no #SBATCH line"),
                                        ("#!/bin/bash\n# TODO\n##SBATCH -N 2\n", "holds only its #! line and comments")])
def test_load_refuses_build_files_and_empty_text(cls, text, said):
    b = cls(profile="generic", submit=False)
    key = "job_name" if cls is SlurmBuilder else "slurm.job_name"
    b.controls[key].value = "typed"
    before = b.text
    b.load_text.value = text
    b.load_button.click()
    assert said in status(b)
    assert b.controls[key].value == "typed" and b.text == before


def test_load_file_refuses_an_empty_file_and_a_dockerfile(tmp_path):
    b = SlurmBuilder(profile="generic", submit=False)
    (tmp_path / "empty.sh").write_text("")
    (tmp_path / "notes.txt").write_text(DOCKERFILE)
    b.path_text.value = str(tmp_path / "empty.sh")
    b.open_button.click()
    assert "empty.sh is empty" in status(b)
    b.path_text.value = str(tmp_path / "notes.txt")
    b.open_button.click()
    assert f"ch-image build -f {tmp_path / 'notes.txt'} ." in status(b)


def test_cli_from_still_names_a_dockerfile(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text(DOCKERFILE)
    assert main(["sbatch", "--from", str(tmp_path / "notes.txt")]) == 2
    assert "is a Dockerfile, not a saved model: build it with ch-image build -f" in capsys.readouterr().err


def test_load_reads_old_mac_line_ends():
    b = SlurmBuilder(profile="generic", submit=False)
    assert b.load("#!/bin/bash\r#SBATCH --time=00:10:00\rpython train.py\r")
    assert b.controls["time"].value == "00:10:00"


# ==============================================================================================
# finding 5: an off layer's controls are disabled, and an edit from code is refused (session 18: it used to switch
# the layer on with the form's defaults, a torchrun of train.py for a script without one)

def test_off_layer_is_disabled_and_said_in_its_tab():
    b = WorkflowBuilder(profile="generic", submit=False)
    c = b.controls
    assert not c["srun.enabled"].value
    assert c["srun.nodes"].disabled and "This layer is off" in b._off_notes["Job step (srun)"].value
    c["srun.enabled"].value = True
    assert not c["srun.nodes"].disabled and b._off_notes["Job step (srun)"].value == ""


def test_an_edit_in_an_off_layer_is_refused_and_undone():
    b = WorkflowBuilder(profile="generic", submit=False)
    c = b.controls
    c["srun.nodes"].value = "2"
    assert not c["srun.enabled"].value and b.spec.srun is None and c["srun.nodes"].value != "2"
    assert any(f.field == "srun.nodes" and "Launch with srun" in f.message for f in b.findings if f.code == "FORM")


# ==============================================================================================
# finding 7: the lint cache follows the profile's content

def test_lint_cache_follows_a_changed_profile_of_the_same_name():
    b = SlurmBuilder(profile="local", submit=False)
    b.controls["time"].value = "02:00:00"
    assert "HPC402" in {f.code for f in b.findings}
    local = load_profile("local")
    roomy = local.replace(partitions=tuple(p.replace(max_time="04:00:00") for p in local.partitions))
    b.set_profile(roomy)
    assert "HPC402" not in {f.code for f in b.findings}


# ==============================================================================================
# finding 6: the forms' own starting points pass their own lint

def test_jupyter_default_fits_the_profiles_partition():
    b = JupyterJobBuilder(profile="local", submit=False)
    assert "#SBATCH --time=01:00:00" in b.text
    assert not [f for f in b.findings if f.severity in ("error", "warning")]


@pytest.mark.parametrize("profile", ["generic", "midway3"])
def test_workflow_default_loads_the_runtimes_module(profile):
    b = WorkflowBuilder(profile=profile, submit=False)
    assert "HPC409" not in {f.code for f in b.findings}
    assert "HPC409" not in {f.code for f in lint(b.text, load_profile(profile))}


# ==============================================================================================
# finding 9: a submit that may have reached Slurm is not called "Not submitted"

@pytest.mark.parametrize("error", [
    RunError("sbatch did not answer within 60 s; the Slurm controller may be down", argv=["sbatch"], timed_out=True),
    RunError("sbatch rejected the job (exit 137)", argv=["sbatch"], returncode=137)])
def test_submit_that_may_have_queued_says_check_squeue(error):
    def submitter(text):
        raise error
    b = SlurmBuilder(profile="generic", submit=submitter)
    b.submit_button.click()
    assert "Maybe submitted" in status(b) and "squeue -u $USER" in status(b)
    assert "Not submitted" not in status(b)


def test_the_timeout_is_told_by_the_error_not_its_words(monkeypatch):
    """run.slurm marks the RunError of an sbatch it killed after its timeout: that, not the message's wording, is
    what the form reads."""
    import subprocess

    from hpcwidgets.run import slurm

    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout", 1))
    monkeypatch.setattr(slurm.subprocess, "run", hang)
    monkeypatch.delenv("SLURM_CONF", raising=False)
    with pytest.raises(RunError) as caught:
        slurm._run(["sbatch", "--parsable"], timeout=1)
    assert caught.value.timed_out


def test_submit_refused_by_sbatch_is_still_not_submitted():
    def submitter(text):
        raise RunError("sbatch rejected the job (exit 1)", argv=["sbatch"], returncode=1)
    b = SlurmBuilder(profile="generic", submit=submitter)
    b.submit_button.click()
    assert status(b).startswith("Not submitted")


# ==============================================================================================
# finding 12: a broken profile leaves the dropdown on the profile in use

def test_broken_profile_puts_the_dropdown_back(tmp_path, monkeypatch):
    folder = tmp_path / "hpcwidgets" / "profiles"
    folder.mkdir(parents=True)
    (folder / "broken.toml").write_text('name = "broken"\n[[partitions\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    b = SlurmBuilder(profile="generic", submit=False)
    assert ("broken", "broken") in b.profile_selector.options
    b.profile_selector.value = "broken"
    assert b.profile_selector.value == "generic" == b.profile.name
    assert "Cannot use profile 'broken'" in status(b) and "still using generic" in status(b)


# ==============================================================================================
# minor: file names meant as a folder or with a shell variable

def test_save_refuses_a_folder_name_and_a_shell_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = SlurmBuilder(profile="generic", submit=False)
    b.path_text.value = "runs/"
    b.save_button.click()
    assert "ends with '/'" in status(b)
    b.path_text.value = "$HOME/job.sh"
    b.save_button.click()
    assert "would be taken literally" in status(b)
    assert os.listdir(tmp_path) == []


def test_switching_the_runtime_swaps_the_profiles_module_unless_typed():
    b = WorkflowBuilder(profile="generic", submit=False)
    assert "module load apptainer" in b.text
    b.controls["container.runtime"].value = "none"
    assert "apptainer" not in b.text
    b.controls["container.runtime"].value = "apptainer"
    assert "module load apptainer" in b.text
    b.controls["slurm.modules"].value = "apptainer/1.3"
    b.controls["container.runtime"].value = "none"
    assert "module load apptainer/1.3" in b.text


def test_a_setup_python_with_a_space_comes_back_from_the_saved_script():
    from hpcwidgets.parse import parse_jupyter_job
    from hpcwidgets.render import render
    from hpcwidgets.spec.jupyter import JupyterJob
    job = JupyterJob.for_profile(load_profile("generic")).replace(helper_python="/opt/My Tools/bin/python3")
    assert parse_jupyter_job(render(job)).helper_python == "/opt/My Tools/bin/python3"
