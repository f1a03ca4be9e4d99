"""A job script that starts no Jupyter server (a training job) read as a Jupyter job: its resources, its set-up
lines and its container carry over, and what is left out (the work itself) is said, on the command line and in
the form, never dropped without a word."""

from __future__ import annotations

from hpcwidgets.parse import parse_jupyter_job
from hpcwidgets.parse.workflow import readback_notes

TRAINING = """#!/bin/bash -l
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=04:00:00
module load apptainer
conda activate myenv
export HF_HOME=/scratch/hf
apptainer run --nv --cleanenv -B /scratch/$USER:/scratch img.sif python train.py --lr 0.1
echo done
"""


def test_the_container_and_set_up_carry_over_and_the_work_does_not() -> None:
    job = parse_jupyter_job(TRAINING)
    c = job.container
    assert (c.kind, c.action, c.image, c.nv, c.cleanenv, c.command) == ("apptainer.run", "exec", "img.sif", True, True, ())
    text = "\n".join(job.job.setup) + "\n" + "\n".join(f"{e.name}={e.value}" for e in job.job.env)
    assert "conda activate myenv" in text and "HF_HOME=/scratch/hf" in text
    assert "train.py" not in text and "echo done" not in text
    assert job.job.time == "04:00:00" and job.job.partition == "gpu"


def test_what_is_left_out_is_said() -> None:
    [note] = readback_notes(TRAINING, parse_jupyter_job(TRAINING))
    assert note == ("the script starts no Jupyter server: the Jupyter job keeps its #SBATCH lines and the lines before "
                    "its step and runs JupyterLab in the same image with apptainer exec (img.sif), and leaves out the "
                    "step on line 8 and everything after it")


def test_commands_without_a_step_are_said_and_set_up_alone_is_not() -> None:
    plain = "#!/bin/bash\n#SBATCH --time=10\nmodule load x\necho hi\n"
    [note] = readback_notes(plain, parse_jupyter_job(plain))
    assert "leaves out its other commands (from line 4 on)" in note
    quiet = "#!/bin/bash\n#SBATCH --time=10\nmodule load x\n"
    assert readback_notes(quiet, parse_jupyter_job(quiet)) == ()


def test_a_jupyter_job_hpcwidgets_wrote_gets_no_note() -> None:
    from hpcwidgets.examples import examples
    from hpcwidgets.render import render
    text = render(examples("generic")["jupyter"].model)
    assert readback_notes(text, parse_jupyter_job(text)) == ()


def test_the_form_says_it_after_load() -> None:
    import re
    from hpcwidgets.widgets import JupyterJobBuilder
    form = JupyterJobBuilder(profile="generic")
    form.load(TRAINING)
    status = re.sub("<[^>]+>", "", form.status.value)
    assert "leaves out the step on line 8" in status
    assert "img.sif" in form.copy_button.text and "train.py" not in form.copy_button.text
