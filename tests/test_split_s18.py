"""Session 18, audit A6: the set-up/commands split of a plain job read back, an image set on a step that runs in an
Apptainer instance, and a value set from code in a form control that is disabled.

Odd splits: the shell's environment (``eval "$(conda shell.bash hook)"``, ``conda activate``), a look at a file
(``cat $HOSTFILE``), a file written (``cat > config.yaml <<EOF``, ``sed -i``), a one-liner (``python -c``) and a call
of a script's function that only prepares things (``makehostfile > hostfile``) are set-up; a function whose body does
work is work. F6: ``--set container.image=`` on ``apptainer exec instance://NAME`` is refused (it would run the step
outside the instance), and a script with several container steps gets a note that the model holds one. F7: a value
set from code in the Workflow form's disabled torchrun control is refused and undone, with a finding."""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main
from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.parse.workflow import readback_notes
from hpcwidgets.widgets import SlurmBuilder, WorkflowBuilder

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"
WORK = "srun python train.py"

MAKEHOSTFILE = """makehostfile() {
perl -e '@nodes = split /\\n/, qx[scontrol show hostnames $ENV{"SLURM_JOB_NODELIST"}];
print map { "$_ slots=4\\n" } @nodes'
}
makehostfile > hostfile"""
MASTER_ADDRESS = """function get_master_address(){
    NODE_LIST=`scontrol show hostnames $SLURM_JOB_NODELIST`
    MASTER_ADDR=`echo $NODE_LIST | awk '{print $1}'`
}
get_master_address"""


def split(body: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    job = parse_job(HEAD + body + "\n")
    return job.setup, job.commands


# ---------------------------------------------------------------------------------------------------------------
# the set-up/commands split

@pytest.mark.parametrize("setup", [
    'eval "$(conda shell.bash hook)"\nconda activate myenv',
    "eval $(ssh-agent -s)",
    "source venv/bin/activate",
    "micromamba activate recon",
    "cat $HOSTFILE",
    "cat > config.yaml <<EOF\nmodel:\n  lr: 0.1\nEOF",
    "ls ch???/*.fits > fits_list",
    'sed -i "s/^steps:.*/steps: 10/" config.yaml',
    "env | grep SLURM",
    'python -c "import torch; print(torch.cuda.is_available())"',
    "/opt/env/bin/python3 -u -c 'import sys; print(sys.version)'",
    MAKEHOSTFILE,
    MASTER_ADDRESS,
    "note() { echo \"[$(date)] $*\"; }\nnote starting",
    "loop() { echo again; loop; }\nloop",           # followed once, not for ever
])
def test_preparation_is_set_up(setup):
    kept, commands = split(f"{setup}\n{WORK}")
    assert "\n".join(kept) == setup and commands == (WORK,)


@pytest.mark.parametrize("work, first", [
    *((w, w) for w in ["bash run.sh", "make -j 4", "mpirun -np 4 ./a.out", "$PROG --epochs 10",
                       "cat data.txt | python process.py", 'eval "$TRAIN_CMD"', "python -u train.py",
                       "python -m trainer.main", "perl process.pl in.txt", "time srun python train.py"]),
    ("for s in 1 2; do\n  srun python train.py --seed $s\ndone", "for s in 1 2; do"),
    ("train() {\n  srun python train.py\n}\ntrain", "train"),
    ("inner() { srun python train.py; }\nouter() { echo start; inner; }\nouter", "outer"),
])
def test_work_stays_work(work, first):
    setup, commands = split(f"cd $SLURM_SUBMIT_DIR\n{work}\necho done")
    assert setup[0] == "cd $SLURM_SUBMIT_DIR" and commands[0].split("\n")[0] == first
    assert "\n".join((*setup, *commands)).replace("\n", "") == f"cd $SLURM_SUBMIT_DIR{work}echo done".replace("\n", "")


def test_a_function_call_runs_the_definition_above_it():
    body = "f() { srun python train.py; }\nf() { echo only a message; }\nf\nsrun python eval.py"
    assert split(body)[1] == ("srun python eval.py",)
    body = "f() { echo only a message; }\nf() { srun python train.py; }\nf"
    assert split(body)[1] == ("f",)


def test_a_call_before_its_function_is_defined_is_a_program():
    assert split("prepare\nprepare() { echo hi; }")[1] == ("prepare\nprepare() { echo hi; }",)


def test_the_real_scripts_split_as_a_researcher_reads_them():
    umass = ('cd /work/speech  # your own directory\n\neval "$(conda shell.bash hook)"\nconda activate dorby\n\n'
             "export NGPU=4\nexport MASTER_PORT=44147\n\ntorchrun --nproc_per_node $NGPU train.py")
    assert split(umass)[1] == ("torchrun --nproc_per_node $NGPU train.py",)
    hostfile = ('HOSTFILE="$PWD/hostfile.$SLURM_JOB_ID"\n> $HOSTFILE\necho "Hostfile:"\ncat $HOSTFILE\n\n'
                "export NCCL_DEBUG=INFO\n\ndeepspeed --hostfile $HOSTFILE train.py")
    setup, commands = split(hostfile)
    assert "cat $HOSTFILE" in setup and "export NCCL_DEBUG=INFO" in setup
    assert commands == ("deepspeed --hostfile $HOSTFILE train.py",)


def test_a_setup_line_added_goes_before_the_work_not_after_the_preparation_it_follows():
    from hpcwidgets.render import render
    text = HEAD + MAKEHOSTFILE + "\n" + WORK + "\n"
    job = parse_job(text)
    out = render(job.replace(setup=(*job.setup, "export NCCL_DEBUG=INFO")))
    assert out.index("makehostfile > hostfile") < out.index("export NCCL_DEBUG=INFO") < out.index(WORK)


def test_the_workflow_step_is_the_work_not_a_look_at_its_output():
    model = parse_script(HEAD + "python train.py > out.log\ncat out.log\n")
    assert model.program[:2] == ("python", "train.py") and model.after == ("cat out.log",)
    assert parse_script(HEAD + 'python -c "import torch"\n').program == ()


def test_a_here_document_of_work_in_commands_keeps_its_indentation_when_edited():
    text = HEAD + "srun python train.py\npython - <<'PY'\nfor k in range(3):\n    print(k)\nPY\n"
    b = SlurmBuilder.from_script(text)
    b.controls["commands"].value = b.controls["commands"].value.replace("range(3)", "range(4)")
    assert "python - <<'PY'\nfor k in range(4):\n    print(k)\nPY\n" in b.text


# ---------------------------------------------------------------------------------------------------------------
# F6: an image set on a step that runs in an instance; several container steps

INSTANCE = (HEAD + "apptainer instance start --nv old.sif srv\napptainer exec instance://srv python serve.py\n"
            "apptainer instance stop srv\n")


def run(capsys, tmp_path, text: str, *argv: str) -> tuple[int, str, str]:
    script = tmp_path / "job.sh"
    script.write_text(text)
    code = main(["workflow", "--from", str(script), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_image_set_on_an_instance_step_is_refused_with_the_line_to_edit(capsys, tmp_path):
    code, out, err = run(capsys, tmp_path, INSTANCE, "--set", "container.image=new.sif")
    assert code == 2 and out == ""
    assert "instance srv" in err and "fresh container of new.sif" in err and "instance start line" in err


@pytest.mark.parametrize("image", ["instance://other", ""])
def test_another_instance_or_no_value_is_not_refused_as_leaving_the_instance(capsys, tmp_path, image):
    code, out, err = run(capsys, tmp_path, INSTANCE, "--set", f"container.image={image}")
    assert "fresh container" not in err
    if image:
        assert code == 0 and out == INSTANCE.replace("instance://srv", image)


def test_an_image_set_on_an_image_step_is_taken(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, HEAD + "apptainer exec --nv old.sif python train.py\n",
                       "--set", "container.image=new.sif")
    assert code == 0 and out == HEAD + "apptainer exec --nv new.sif python train.py\n"


SEVERAL = (HEAD + "srun -N1 --overlap apptainer exec ray.sif ray start --head --block &\nsleep 10\n"
           "srun -N1 --overlap apptainer exec ray.sif ray start --address $HEAD --block &\nsleep 10\n"
           "apptainer exec --nv vllm.sif vllm serve model\n")


def test_several_container_steps_get_a_note_that_the_model_holds_one(capsys, tmp_path):
    code, out, err = run(capsys, tmp_path, SEVERAL, "--set", "container.image=new.sif")
    assert code == 0 and out == SEVERAL.replace("vllm.sif", "new.sif")
    assert "line 7: the container fields" in err and "(lines 3 and 5)" in err and "changes line 7 alone" in err


@pytest.mark.parametrize("text", [
    HEAD + "apptainer exec --nv vllm.sif vllm serve model\n",
    HEAD + "srun hostname\napptainer exec --nv vllm.sif vllm serve model\n",
    HEAD + "srun python train.py\n",
])
def test_one_container_step_gets_no_such_note(text):
    assert not [n for n in readback_notes(text, parse_script(text), ("container.image",)) if "container fields" in n]


# ---------------------------------------------------------------------------------------------------------------
# F7: a disabled control's value set from code

NO_TORCHRUN = HEAD + "module load apptainer\nsrun apptainer exec --nv img.sif vllm serve model\n"


def test_a_value_in_the_disabled_torchrun_control_is_refused_and_undone():
    b = WorkflowBuilder.from_script(NO_TORCHRUN)
    control = b.controls["launcher.nproc_per_node"]
    assert control.disabled
    before = control.value
    control.value = "2"
    assert control.value == before and b.spec.launcher is None and b.text == NO_TORCHRUN and not b.stale
    said = [f for f in b.findings if f.code == "FORM" and f.field == "torchrun.nproc_per_node"]
    assert said and "was not changed" in said[0].message and "Launch with torchrun" in said[0].message
    b.controls["job.time"].value = "02:00:00"  # the next edit is taken, and the refusal is no longer news
    assert "#SBATCH --time=02:00:00" in b.text and not [f for f in b.findings if "was not changed" in f.message]


def test_the_torchrun_control_takes_a_value_once_its_layer_is_switched_on():
    b = WorkflowBuilder.from_script(NO_TORCHRUN)
    b.controls["torchrun.enabled"].value = True
    b.controls["launcher.nproc_per_node"].value = "2"
    assert b.spec.launcher is not None and b.spec.launcher.nproc_per_node == "2"
    assert not [f for f in b.findings if "was not changed" in f.message]


def test_a_program_written_out_over_several_lines_after_python_c_is_work():
    from hpcwidgets.parse import parse_job
    text = ('#!/bin/bash\n#SBATCH --time=01:00:00\ncd "$SLURM_SUBMIT_DIR"\npython3 -c "\nimport train\n'
            'train.main()\n"\n')
    job = parse_job(text)
    assert job.setup == ('cd "$SLURM_SUBMIT_DIR"',) and job.commands and job.commands[0].startswith("python3 -c")
