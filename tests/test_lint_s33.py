"""Session 33: lint and lint --fix after the review of session 32's work and this session's audits."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix, fix_script, held_back

_LATE = ("#!/bin/bash\nset -e\n#SBATCH {option}\n"
         'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)\n'
         "srun torchrun --nnodes=$SLURM_NNODES --nproc_per_node=1 --rdzv_backend=c10d "
         "--rdzv_endpoint=$MASTER_ADDR:29500 train.py\n")


@pytest.mark.parametrize("option, shown", [("--nodes=4", "--nodes"), ("-N4", "-N"), ("-N 4", "-N"),
                                           ("--tasks-per-node=1", "--tasks-per-node"), ("-G 8", "-G"),
                                           ("--gres=gpu:4", "--gres"), ("--gpus-per-task=1", "--gpus-per-task")])
def test_every_spelling_of_an_option_that_sizes_the_job_holds_the_fixes_back(option, shown):
    # the options are the job model's own spellings of its node, task and GPU fields
    text = _LATE.format(option=option)
    result = fix(text)
    assert result.text == text and result.fixed == []
    assert f"(HPC501, line 3: {shown})" in result.waiting
    assert result.waiting == held_back(text)


@pytest.mark.parametrize("option", ["--time=10", "--job-name=x", "--mem=4G", "--nodelist=n1"])
def test_a_late_option_that_does_not_size_the_job_holds_nothing_back(option):
    assert held_back(_LATE.format(option=option)) == ""


def test_fix_says_why_fixes_wait_in_the_text_it_returns():
    # the late --nodes=2 holds back the fixes of the launch below it (its missing --nv among them)
    text = ("#!/bin/bash\n#SBATCH --gpus-per-node=4\nset -e\n#SBATCH --nodes=2\n"
            "srun apptainer exec img.sif torchrun --standalone --nproc_per_node=4 train.py\n")
    result = fix(text)
    assert result.fixed == [] and result.waiting == held_back(result.text) != ""
    assert fix_script(text) == (result.text, result.fixed)
