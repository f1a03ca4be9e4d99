"""HPC112 and a launcher started once per node by a loop (``for node in …; do srun -N1 -w "$node" torchrun … &
done; wait``): the rendezvous gets a launcher from every pass, so the step's own node count is not the number that
joins, and ``--nnodes`` equal to the job's nodes is right."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

HEAD = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --time=02:00:00
set -euo pipefail
"""
STATIC = ('torchrun --nnodes=2 --nproc-per-node=4 --node-rank="$i" --master-addr="$head" --master-port=29500 '
          'train.py')
C10D = ('torchrun --nnodes=2 --nproc-per-node=4 --rdzv-id="$SLURM_JOB_ID" --rdzv-backend=c10d '
        '--rdzv-endpoint="$head:29500" train.py')


def codes(text: str) -> list[str]:
    return [f.code for f in lint(text)]


@pytest.mark.parametrize("launcher", [STATIC, C10D])
def test_one_background_launch_per_node_in_a_loop_is_not_reported(launcher):
    text = HEAD + ('mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")\nhead=${nodes[0]}\n'
                   'for i in "${!nodes[@]}"; do\n'
                   f'  srun -N1 -n1 -w "${{nodes[$i]}}" {launcher} &\n'
                   'done\nwait\n')
    assert "HPC112" not in codes(text)


def test_a_loop_over_the_hostnames_with_while_read():
    text = HEAD + ('head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\ni=0\n'
                   'while read -r node; do\n'
                   f'  srun --nodes=1 --ntasks=1 --nodelist="$node" {STATIC} &\n'
                   '  i=$((i + 1))\n'
                   'done < <(scontrol show hostnames "$SLURM_JOB_NODELIST")\nwait\n')
    assert "HPC112" not in codes(text)


def test_the_same_step_once_is_still_reported():
    text = HEAD + f'head=$(hostname)\ni=0\nsrun -N1 -n1 {STATIC}\n'
    assert "HPC112" in codes(text)


def test_a_loop_that_waits_for_each_pass_is_still_reported():
    """One launcher at a time: the first waits for a second that never starts beside it."""
    text = HEAD + ('head=$(hostname)\n'
                   'for i in 0 1; do\n'
                   f'  srun -N1 -n1 {STATIC}\n'
                   'done\n')
    assert "HPC112" in codes(text)
    text = HEAD + ('head=$(hostname)\n'
                   'for i in 0 1; do\n'
                   f'  srun -N1 -n1 {STATIC} &\n'
                   '  wait\n'
                   'done\n')
    assert "HPC112" in codes(text)


ONE_GPU = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:{gpus}
#SBATCH --time=01:00:00
for lr in 0.1 0.01 0.001 0.0001; do
  srun --exact -n 1 -c 4 {extra}apptainer exec --nv img.sif python train.py --lr "$lr" &
done
wait
"""


def test_steps_side_by_side_on_a_jobs_one_gpu_are_told_of_overlap():
    """On the practice cluster (Slurm 22.05) two steps of a one-GPU job ran one after the other without a GPU count
    and with --gpus=1 each, and together with --overlap: the advice names --overlap, not --gpus=1."""
    found = [f for f in lint(ONE_GPU.format(gpus=1, extra="")) if f.code == "HPC518"]
    assert len(found) == 1
    assert "srun --overlap" in found[0].message and "would with --gpus=1 each too" in found[0].message
    four = [f for f in lint(ONE_GPU.format(gpus=4, extra="")) if f.code == "HPC518"]
    assert len(four) == 1 and "--gpus=1" in four[0].message and "--overlap" not in four[0].message
    assert "HPC518" not in codes(ONE_GPU.format(gpus=4, extra="--gpus=1 "))
