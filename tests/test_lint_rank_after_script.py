"""HPC116 names the cause when the node's rank is written after the training script: the launcher passes it on
to the script and takes none itself, which reads like "no rank" to someone who can see the option on the line."""

from __future__ import annotations

from hpcwidgets.lint import lint

HEAD = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
"""


def hpc116(text: str) -> list[str]:
    return [f.message for f in lint(text) if f.code == "HPC116"]


def test_torchrun_rank_after_the_script() -> None:
    step = ("srun bash -c 'torchrun --nnodes=2 --nproc-per-node=4 --master-addr=\"$0\" --master-port=29500 "
            "train.py --node-rank=$SLURM_NODEID' \"$head\"\n")
    [message] = hpc116(HEAD + step)
    assert message.startswith("torchrun: --node-rank=$SLURM_NODEID comes after train.py, so torchrun passes it to the "
                              "script")
    assert "move it before the script" in message
    before = step.replace("train.py --node-rank=$SLURM_NODEID", "--node-rank=$SLURM_NODEID train.py")
    assert hpc116(HEAD + before) == []


def test_torchrun_without_any_rank_keeps_its_message() -> None:
    [message] = hpc116(HEAD + "srun torchrun --nnodes=2 --nproc-per-node=4 --master-addr=\"$head\" "
                              "--master-port=29500 train.py --lr 0.1\n")
    assert "comes after" not in message and "node-rank" in message


def test_accelerate_machine_rank_after_the_script() -> None:
    step = ('srun bash -c "accelerate launch --num_machines 2 --num_processes 8 --main_process_ip $head '
            '--main_process_port 29500 train.py --lr 1e-4 --machine_rank \\$SLURM_NODEID"\n')
    [message] = hpc116(HEAD + step)
    assert "its --machine_rank $SLURM_NODEID comes after the training script, so accelerate passes it to the script" \
        in message
    assert "move it before the script" in message
    assert hpc116(HEAD + step.replace("train.py --lr 1e-4 --machine_rank \\$SLURM_NODEID",
                                      "--machine_rank \\$SLURM_NODEID train.py --lr 1e-4")) == []
    [plain] = hpc116(HEAD + step.replace(" --machine_rank \\$SLURM_NODEID", ""))
    assert "without --machine_rank" in plain and "comes after" not in plain
