"""Fuzzing the script reader and the linter with realistic fragments mixed with random text.

Contract: ``read_script`` raises nothing but ParseError; ``lint`` never raises (an unreadable script
gives one HPC000 finding).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcwidgets.errors import ParseError
from hpcwidgets.lint import lint
from hpcwidgets.parse.script import read_script
from hpcwidgets.profiles import load_profile

FRAGMENTS = [
    "#!/bin/bash", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gres=gpu:a100:4",
    "#SBATCH --gpus-per-node=a100:2", "#SBATCH --time=1-00:00:00", "#SBATCH --mem=16GB", "#SBATCH --mem=16GiB",
    "#SBATCH --nodes=2-4", "#SBATCH --nodes=4-2", "#SBATCH --gpus=a100:8", "#SBATCH --gpus=a100:x", "#SBATCH --gpus-per-task=1",
    "#SBATCH --gres=gpu:v100x:2,lscratch:200", "#SBATCH --gres=lscratch:200", "#SBATCH --array=0-9%2",
    "#SBATCH --cpus-per-task=8", "#SBATCH --cpus-per-gpu=4", "#SBATCH --partition=gpu", "#SBATCH -N", "#SBATCH 'open",
    "#SBATCH --output=$HOME/%j.out", "module load apptainer", "set -euo pipefail", "export PYTHONNOUSERSITE=1",
    'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
    "srun", "srun --ntasks-per-node=1", "srun -c 8", "apptainer exec --nv", "apptainer run", "singularity exec -B /a:/b",
    "img.sif", '"$SCRATCH/images/pytorch_24.05.sif"', "docker://pytorch/pytorch:latest", "--nv", "--bind /:/host",
    "torchrun", "--nnodes=2", "--nproc-per-node=4", "--nproc_per_node=$SLURM_NTASKS_PER_NODE", "--standalone",
    "--rdzv-backend=c10d", '--rdzv-endpoint="$head_node:29500"', "--rdzv_endpoint=$SLURM_STEP_NODELIST:29500",
    "--node-rank=0", "python -m torch.distributed.launch", "python train.py", "train.py", "\\", "\\\n  ", " | ", " && ",
    " || ", ";", "&", "bash -c", "'echo $SLURM_PROCID'", '"echo $SLURM_PROCID"', "$$SCRATCH", '$(dirname "$0")',
    "ch-run -b /a:/data", "--", "mpirun -np 4", "pip install torch", "export WANDB_API_KEY=abcdef0123456789",
    "jupyter lab --ip=0.0.0.0 --ServerApp.token=''", "export XDG_RUNTIME_DIR=/run/user/1000", "# hpcw: disable=HPC101",
    "if [ -f x ]; then", "fi", "for i in 1 2; do", "done", "{", "}", "(", ")", "<<EOF", "EOF", "'", '"', "`", "$(", "${",
    "[ -f img.sif ] ||", "apptainer pull --force x.sif docker://alpine", "ch-image pull alpine", "x=1", "--mpi=pmix",
]
SEPARATORS = [" ", " ", " ", "\n", "\n", "\t", "  \\\n  "]

fragment_scripts = st.lists(
    st.tuples(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), st.sampled_from(SEPARATORS)),
    max_size=30,
).map(lambda parts: "".join(f + s for f, s in parts))
random_scripts = st.one_of(fragment_scripts, st.text(max_size=200),
                           st.text(alphabet="#!$'\"`\\{}()[];&|<> \n\tSBATCHabc-=:", max_size=200))
PROFILES = [None, load_profile("generic"), load_profile("local"), load_profile("generic").replace(gpu_vendor="amd")]


def check(text: str, profile_index: int) -> None:
    try:
        read_script(text)
    except ParseError as exc:
        assert exc.message
    findings = lint(text, PROFILES[profile_index])
    assert isinstance(findings, list)
    for f in findings:
        assert f.line >= 1 and f.severity in ("error", "warning", "info") and f.message
        if f.code == "HPC000":
            assert f.severity == "error"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_scripts, st.integers(0, len(PROFILES) - 1))
def test_reader_and_linter_quick(text: str, profile_index: int) -> None:
    check(text, profile_index)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_scripts, st.integers(0, len(PROFILES) - 1))
def test_reader_and_linter_long(text: str, profile_index: int) -> None:
    check(text, profile_index)
