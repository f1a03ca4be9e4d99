"""HPC238 reads the GPU type a step asks for on its own srun line (srun --gres=gpu:mi250:1), for that step."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.lint.catalogue import step_gpu_types
from hpcwidgets.parse.script import read_script


def hpc238(text: str) -> list:
    return [f for f in lint(text) if f.code == "HPC238"]


@pytest.mark.parametrize("srun_options, flag, right", [
    ("--gres=gpu:mi250:1", "--nv", "--rocm"),
    ("-G mi100:2", "--nv", "--rocm"),
    ("--gpus-per-task=a100:1 --ntasks=1", "--rocm", "--nv"),
    ("--gpus=h100:2", "--rocm", "--nv"),
])
def test_the_steps_own_type_names_the_vendor(srun_options, flag, right):
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:2\n#SBATCH --time=01:00:00\n"
            f"srun {srun_options} apptainer exec {flag} img.sif python train.py\n")
    [finding] = hpc238(text)
    assert finding.line == 4 and "the step asks for" in finding.message and finding.message.endswith(f"use {right}")
    fixed, applied = fix_script(text, select="HPC238")
    assert [f.code for f in applied] == ["HPC238"] and f"apptainer exec {right} img.sif" in fixed
    assert not hpc238(fixed)


def test_each_step_is_judged_by_its_own_type_or_the_jobs():
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:mi250:1\n#SBATCH --time=01:00:00\n"
            "srun --gres=gpu:a100:1 apptainer exec --nv img.sif python a.py\n"   # the step's a100: --nv is right
            "srun apptainer exec --nv img.sif python b.py\n")                     # the job's mi250: --nv is wrong
    assert [(f.line, "the job asks for" in f.message) for f in hpc238(text)] == [(5, True)]


def test_a_step_that_asks_for_a_count_only_takes_the_jobs_type():
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:mi250:2\n#SBATCH --time=01:00:00\n"
            "srun --gres=gpu:1 apptainer exec --nv img.sif python a.py\n")
    assert [f.line for f in hpc238(text)] == [4]


@pytest.mark.parametrize("line, types", [
    ("srun --gres=gpu:mi250:1,lscratch:10 true", ("mi250",)),
    ("srun --gres=gpu:a100:1,gpu:v100:1 true", ("a100", "v100")),
    ("srun --gres=gpu:a100 true", ("a100",)),                  # one a100, as sbatch reads it
    ("srun -G a100:2 true", ("a100",)),
    ("srun --gpus-per-node=h100:4 --gpus-per-task=h100:1 true", ("h100",)),
    ("srun --gres=gpu:2 -G 2 true", ()),
    ("srun true", ()),
])
def test_step_gpu_types(line, types):
    parsed = read_script(f"#!/bin/bash\n{line.replace(' true', ' apptainer exec i.sif true')}\n")
    assert step_gpu_types(parsed.steps[0].chain.srun) == types
