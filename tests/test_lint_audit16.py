"""Session 16's fixes to what the audit of fresh real scripts found: ``#SBATCH --hetjob`` (HPC312)."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- HPC312: the separator line of a heterogeneous job written as an option --------------------------------------

@pytest.mark.parametrize("option", ["--hetjob", "--packjob", "--het-job", "--HETJOB"])
def test_hetjob_as_an_option_is_an_error_that_names_the_separator_line(option):
    text = f"#!/bin/bash\n#SBATCH {option}\n#SBATCH --nodes=1\nsrun hostname\n"
    hits = found(text, "HPC312")
    assert [line for line, _ in hits] == [2]
    assert "write a line #SBATCH hetjob between" in hits[0][1]
    assert not found(text, "HPC313")  # not also "fine only if your site adds it"


def test_with_a_separator_line_already_there_the_option_line_is_to_be_removed():
    text = ("#!/bin/bash\n#SBATCH --hetjob\n#SBATCH --nodes=1 --gres=gpu:4\n#SBATCH hetjob\n#SBATCH --nodes=2\n"
            "srun --het-group=0 python head.py : --het-group=1 python worker.py\n")
    (line, message), = found(text, "HPC312")
    assert line == 2 and "remove this line" in message


def test_the_separator_line_itself_and_srun_het_group_are_left_alone():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH hetjob\n#SBATCH --nodes=2\n"
            "srun --het-group=0 python head.py : --het-group=1 python worker.py\n")
    assert not found(text, "HPC312") and not found(text, "HPC313")


# --- HPC502: a per-task variable on a step of one task -----------------------------------------------------------

@pytest.mark.parametrize("step", [
    "srun -N1 -n1 -c7 --gpus-per-task=1 --export=ALL,HIP_VISIBLE_DEVICES=$SLURM_LOCALID python3 train.py",
    "srun -n1 python3 train.py --rank $SLURM_PROCID",
    "srun --ntasks=1 python3 train.py --node $SLURM_NODEID",
    "srun -N1 --ntasks-per-node=1 python3 train.py --rank $SLURM_PROCID"])
def test_a_step_of_one_task_gets_the_batch_shells_value_which_is_its_own(step):
    # the one task is task 0 on node 0 of its step: the batch shell's 0 is its own value
    assert not found(f"#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n{step}\n", "HPC502")


@pytest.mark.parametrize("step", [
    "srun -n1 a & srun -n4 python3 train.py --rank $SLURM_PROCID\nwait",   # the other step on the line has 4
    "srun -n1 mpirun python3 train.py --rank $SLURM_PROCID",              # mpirun starts tasks of its own
    "srun -n2 python3 train.py --rank $SLURM_PROCID",
    "srun python3 train.py --rank $SLURM_PROCID"])
def test_steps_of_several_tasks_are_still_reported(step):
    assert found(f"#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n{step}\n", "HPC502")


# --- --gpus=0: how many sites' CPU jobs say "no GPU" -------------------------------------------------------------

@pytest.mark.parametrize("option", ["--gpus=0", "-G 0", "--gpus 0"])
def test_no_gpus_in_total_is_a_request_for_none_read_back_as_written(option):
    from hpcwidgets import parse_script, render
    from hpcwidgets.parse.layout import without_layout
    text = f"#!/bin/bash\n#SBATCH --partition=compute\n#SBATCH {option}\n#SBATCH --time=10\nsrun python x.py\n"
    assert not [f for f in lint(text) if f.severity == "error"]
    model = parse_script(text)
    assert model.job.gpus == 0 and render(model) == text  # validates: no "at least 1"
    assert "#SBATCH --gpus=0" in render(without_layout(model))  # the renderer's own spelling


def test_no_gpus_in_total_with_a_gpu_flag_is_a_flag_without_gpus():
    text = "#!/bin/bash\n#SBATCH --gpus=0\n#SBATCH --time=10\napptainer exec --nv img.sif python x.py\n"
    assert found(text, "HPC202")


# --- one mistake, one finding: a long option written with one dash -----------------------------------------------

def test_a_long_option_with_one_dash_is_reported_once():
    text = "#!/bin/bash\n#SBATCH --nodes=4\n#SBATCH -gres=gpu:4\nsrun python train.py\n"
    (line, message), = found(text, "HPC312")
    assert line == 3 and "-gres has one dash" in message and "write --gres" in message


def test_a_short_option_sbatch_lacks_is_still_reported():
    (line, message), = found("#!/bin/bash\n#SBATCH -y 4\nsrun python train.py\n", "HPC312")
    assert line == 2 and "-y is not an sbatch option" in message


# --- lint --fix keeps to the rules --select and --ignore leave ----------------------------------------------------

def test_fix_applies_only_the_selected_rules_fixes(tmp_path, capsys):
    from hpcwidgets.cli import main
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --cpus-per-task=8\n"
                      "srun python train.py \\\\\n--epochs 3\n")
    main(["lint", "--select", "HPC504", "--fix", str(script)])
    fixed = script.read_text()
    assert "srun python train.py \\\n--epochs 3" in fixed  # HPC504's fix
    assert "--cpus-per-task" not in fixed.split("srun", 1)[1]  # HPC309's fix was not selected
    main(["lint", "--ignore", "HPC504", "--fix", str(script)])
    assert "--cpus-per-task" in script.read_text().split("srun", 1)[1]
    capsys.readouterr()
