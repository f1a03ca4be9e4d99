"""Widget defects found by the session-6 audit of the forms and the submit path (pure Python, no browser).

Submit after sbatch accepted a job, Load of a Jupyter job, switching runtimes and actions, Replace? after
a rename, Save messages, unbalanced quotes in shell-line fields and switching torchrun off.
"""

from __future__ import annotations

import pytest

from hpcwidgets.errors import ValidationError
from hpcwidgets.run import slurm
from hpcwidgets.spec import ApptainerRun
from hpcwidgets.spec.charliecloud import ChRun
from test_submit import fake_sbatch, script

pytest.importorskip("ipywidgets")
from hpcwidgets.widgets.builder import (ApptainerBuilder, CharliecloudBuilder, JupyterJobBuilder,  # noqa: E402
                                        SlurmBuilder, WorkflowBuilder)


def make(cls, *args, **kw):
    kw.setdefault("submit", False)
    kw.setdefault("profile", "generic")
    return cls(*args, **kw)


def form_errors(builder, key):
    return [f.message for f in builder.findings if getattr(f, "field", "") == key and f.severity == "error"]


# ------------------------------------------------------------------------------------------------
# submit: a job sbatch accepted is never "Not submitted"

def _submitting(tmp_path, printed):
    env = fake_sbatch(tmp_path, printed)
    return make(SlurmBuilder, submit=lambda text: slurm.submit(text, env=env, cwd=tmp_path), poll_seconds=60)


def test_submit_reads_the_id_of_sbatchs_human_form(tmp_path):
    b = _submitting(tmp_path, "Submitted batch job 123\n")
    b.submit_button.click()
    assert "Submitted job 123." in b.status.value
    assert b.job_panel.job.id == "123" and b.job_panel.layout.display != "none"
    b.job_panel.stop()


def test_submit_without_a_readable_id_says_the_job_was_submitted(tmp_path):
    b = _submitting(tmp_path, "Your job was queued.\n")
    b.submit_button.click()
    status = b.status.value
    assert "Not submitted" not in status and "hpcw-status-error" not in status
    assert "Submitted, but the job id is unknown" in status and "squeue -u $USER" in status
    assert b.job_panel.job is None and b.job_panel.layout.display == "none", "nothing to follow without an id"


# ------------------------------------------------------------------------------------------------
# JupyterJobBuilder reads the whole job back

def _jupyter_with_settings():
    b = make(JupyterJobBuilder)
    b.controls["notebook_dir"].value = "$SCRATCH/project"
    b.controls["login_host"].value = "login2.mycluster.edu"
    return b


def test_jupyter_load_file_keeps_the_server_settings(tmp_path):
    first = _jupyter_with_settings()
    path = tmp_path / "jupyter.sh"
    first.save(path)
    second = make(JupyterJobBuilder)
    second.path_text.value = str(path)
    second.open_button.click()
    assert second.controls["notebook_dir"].value == "$SCRATCH/project"
    assert second.controls["login_host"].value == "login2.mycluster.edu"
    assert second.text == path.read_text()


def test_jupyter_load_keeps_the_container():
    from hpcwidgets.examples import examples
    text = examples("generic")["jupyter"].render()
    assert "apptainer exec" in text
    b = make(JupyterJobBuilder)
    assert b.load(text)
    assert isinstance(b.spec.container, ApptainerRun)
    assert b.text == text


def test_jupyter_from_script_is_a_classmethod_that_works():
    text = _jupyter_with_settings().text
    b = JupyterJobBuilder.from_script(text, profile="generic", submit=False)
    assert b.spec.notebook_dir == "$SCRATCH/project" and b.text == text


def test_jupyter_from_a_plain_job_script_takes_the_profiles_login_host():
    b = JupyterJobBuilder.from_script("#!/bin/bash\n#SBATCH --time=01:00:00\npython x.py\n", profile="generic",
                                      submit=False)
    assert b.spec.login_host == b.profile.login_host != ""
    assert not form_errors(b, "login_host") and not b.stale


# ------------------------------------------------------------------------------------------------
# switching the container runtime or the action keeps what was typed

def _typed_apptainer():
    b = make(WorkflowBuilder)
    b.controls["container.binds"].value = "$SCRATCH/data:/data"
    b.controls["container.cleanenv"].value = True
    b.controls["container.env"].value = "OMP_NUM_THREADS=1"
    return b


@pytest.mark.parametrize("other", ["charliecloud", "none"])
def test_switching_the_runtime_back_restores_the_container(other):
    b = _typed_apptainer()
    before = b.text
    b.controls["container.runtime"].value = other
    b.controls["container.runtime"].value = "apptainer"
    assert b.controls["container.binds"].value == "$SCRATCH/data:/data"
    assert b.controls["container.cleanenv"].value is True
    assert b.controls["container.env"].value == "OMP_NUM_THREADS=1"
    assert b.controls["container.nv"].value is True
    assert b.text == before


def test_a_new_container_takes_the_binds_and_the_gpu_flag():
    b = _typed_apptainer()
    b.controls["container.runtime"].value = "charliecloud"
    assert isinstance(b.spec.container, ChRun)
    assert b.controls["container.binds"].value == "$SCRATCH/data:/data\n$PWD:/mnt/0"   # and the project
    b = make(WorkflowBuilder)
    b.controls["container.runtime"].value = "none"
    assert b.load(b.text)  # a document without a container: nothing parked
    b.controls["container.runtime"].value = "apptainer"
    assert b.controls["container.nv"].value is True, "the job asks for GPUs"
    assert b.controls["container.binds"].value == ""


def test_the_gpu_flag_follows_gpus_changed_while_the_container_was_parked():
    b = _typed_apptainer()
    b.controls["container.runtime"].value = "none"
    b.controls["slurm.gpus_per_node"].value = "0"
    b.controls["container.runtime"].value = "apptainer"
    assert b.controls["container.binds"].value == "$SCRATCH/data:/data"
    assert b.controls["container.nv"].value is False


def test_a_parked_container_comes_back_in_its_document_only():
    b = _typed_apptainer()
    b.controls["container.runtime"].value = "none"
    b.controls["container.runtime"].value = "apptainer"
    assert b.controls["container.binds"].value == "$SCRATCH/data:/data"
    b.controls["container.runtime"].value = "none"
    assert b.load(b.text)
    b.controls["container.runtime"].value = "apptainer"
    assert b.controls["container.binds"].value == "", "the parked container belonged to the previous document"


def test_apptainer_exec_pull_exec_restores_the_exec_values():
    b = make(ApptainerBuilder)
    b.controls["binds"].value = "$SCRATCH/data:/data"
    b.controls["nv"].value = True
    b.controls["command"].value = "python train.py --epochs 3"
    before = b.text
    b.controls["action"].value = "pull"
    b.controls["action"].value = "run"
    assert b.text == before.replace("apptainer exec", "apptainer run")
    b.controls["action"].value = "exec"
    assert b.text == before and not b.stale


def test_charliecloud_run_pull_run_restores_the_run_values():
    b = make(CharliecloudBuilder)
    b.controls["binds"].value = "$SCRATCH/data:/mnt/0"
    b.controls["command"].value = "python train.py --epochs 3"
    before = b.text
    b.controls["action"].value = "pull"
    assert b.text.startswith("ch-image pull")
    b.controls["action"].value = "run"
    assert b.text == before and not b.stale


# ------------------------------------------------------------------------------------------------
# Replace? and the Save messages

def test_replace_is_disarmed_when_the_file_name_changes(tmp_path):
    precious = tmp_path / "precious.sh"
    precious.write_text("my work\n")
    b = make(SlurmBuilder)
    b.path_text.value = str(precious)
    b.save_button.click()
    assert b.replace_button.layout.display != "none"
    b.path_text.value = str(tmp_path / "new-job.sh")
    assert b.replace_button.layout.display == "none"
    assert "already exists" not in b.status.value
    b.replace_button.click()  # a click that was on its way: it must replace nothing
    assert precious.read_text() == "my work\n"
    assert not (tmp_path / "new-job.sh").exists()


def test_save_under_a_file_names_the_file_in_the_way(tmp_path):
    (tmp_path / "job.sh").write_text("x\n")
    b = make(SlurmBuilder)
    b.path_text.value = str(tmp_path / "job.sh" / "x.sh")
    b.save_button.click()
    status = b.status.value
    assert f"{tmp_path / 'job.sh'} is a file, not a folder" in status
    assert str(tmp_path / "x.sh") in status, "the message names a name that works"


def test_save_onto_a_dangling_link_says_what_it_points_to(tmp_path):
    link = tmp_path / "dangling.sh"
    link.symlink_to(tmp_path / "missing" / "target.sh")
    b = make(SlurmBuilder)
    b.path_text.value = str(link)
    b.save_button.click()
    assert "is a symbolic link to" in b.status.value and "which does not exist" in b.status.value
    assert b.replace_button.layout.display != "none"
    b.replace_button.click()
    assert (tmp_path / "missing" / "target.sh").read_text() == b.text and link.is_symlink()


# ------------------------------------------------------------------------------------------------
# shell-line fields with an unbalanced quote

@pytest.mark.parametrize("cls, key, text, line, quote", [
    (SlurmBuilder, "commands", "echo start\npython train.py --name 'run 1", 2, "'"),
    (SlurmBuilder, "setup", "echo ${", 1, "}"),
    (WorkflowBuilder, "workflow.after", "\ncp out.txt \"$HOME/results/", 2, '"'),
    (JupyterJobBuilder, "slurm.setup", "echo don't", 1, "'"),
])
def test_an_unbalanced_quote_in_shell_lines_blocks_save_and_names_the_line(tmp_path, cls, key, text, line, quote):
    b = make(cls)
    good = b.text
    b.controls[key].value = text
    assert b.stale and b.text == good
    messages = form_errors(b, key)
    assert len(messages) == 1 and f"line {line}:" in messages[0]
    assert f"add the closing {quote}" in messages[0] or f"add the closing `{quote}`" in messages[0]
    assert not any(f.code == "HPC000" for f in b.findings)
    with pytest.raises(ValidationError):
        b.save(tmp_path / "job.sh")
    assert not (tmp_path / "job.sh").exists()
    # constructs over several lines are complete shell: no finding
    b.controls[key].value = "for i in 1 2; do\n  echo \"$i\"\ndone\ncat <<EOF > notes.txt\ndon't\nEOF"
    assert not b.stale and not form_errors(b, key) and "don't" in b.text


# ------------------------------------------------------------------------------------------------
# the torchrun switch

def test_torchrun_off_moves_the_script_back_to_program_and_on_again_moves_it_in():
    b = make(WorkflowBuilder)
    b.controls["container.runtime"].value = "none"
    b.controls["torchrun.enabled"].value = False
    b.controls["workflow.program"].value = "python3 train.py --epochs 10"
    b.controls["torchrun.enabled"].value = True
    assert b.controls["workflow.program"].value == "" and not b.stale
    b.controls["torchrun.args"].value = "--epochs 20"
    b.controls["torchrun.enabled"].value = False
    assert b.controls["workflow.program"].value == "python3 train.py --epochs 20"
    assert not b.stale and "python3 train.py --epochs 20" in b.text
    b.controls["workflow.program"].value = "python3 train.py --epochs 30"
    b.controls["torchrun.enabled"].value = True  # the parked launcher comes back with the script as typed
    assert not b.stale and b.controls["workflow.program"].value == ""
    assert "train.py --epochs 30" in b.text and "torchrun" in b.text


def test_a_grid_sweep_in_the_workflow_form():
    """Further swept variables are lines NAME: value value; the array that fits is named until it is set."""
    from hpcwidgets.spec import SweepAxis
    b = WorkflowBuilder(profile="generic", submit=False)
    b.controls["workflow.sweep_name"].value = "lr"
    b.controls["workflow.sweep_values"].value = "0.1 0.01 0.001"
    b.controls["workflow.sweep_grid"].value = "batch_size: 32 64"
    b.controls["torchrun.args"].value = "--lr $lr --batch-size $batch_size"
    assert b.stale  # no array yet: the form says which one fits
    b.controls["slurm.array"].value = "0-5"
    assert not b.stale
    assert b.spec.sweep_grid == (SweepAxis("batch_size", ("32", "64")),)
    assert "batch_size=${batch_size_values[SLURM_ARRAY_TASK_ID / 3 % 2]}" in b.text
    b.controls["workflow.sweep_grid"].value = "batch_size 32 64"  # the colon forgotten
    assert b.stale


def test_a_sweep_axis_line_round_trips():
    from hpcwidgets.spec import SweepAxis
    axis = SweepAxis("tag", ("a b", "c'd", "e"))
    assert SweepAxis.from_token(axis.to_token()) == axis
    assert "after a colon" in SweepAxis.from_token("seed").problems()[0].message


def test_switching_to_charliecloud_binds_the_submit_directory_and_starts_there():
    """ch-run starts in the image's / and mounts no project folder (HPC224): the new container binds $PWD at the
    first free /mnt/N and cds there, so the form's relative train.py is found, and the preview has no error."""
    b = make(WorkflowBuilder)
    b.controls["container.runtime"].value = "charliecloud"
    b.controls["container.image"].value = "$SCRATCH/images/env.sqfs"
    assert '"--bind=$PWD:/mnt/0"' in b.text or "--bind=$PWD:/mnt/0" in b.text, b.text
    assert "--cd=/mnt/0" in b.text
    assert not [f for f in b.findings if f.severity == "error"], [f.format() for f in b.findings]
