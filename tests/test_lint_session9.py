"""Rules added in session 9: a PyTorch Lightning trainer's devices and num_nodes against the tasks srun starts
(HPC121). Lightning under srun runs one process per Slurm task and stops at start-up when they disagree."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint


def found(text: str, code: str = "HPC121"):
    return [f for f in lint(text) if f.code == code]


def job(head: str, step: str) -> str:
    return "#!/bin/bash\n#SBATCH --time=01:00:00\n" + "".join(f"#SBATCH {d}\n" for d in head.split()) + step + "\n"


@pytest.mark.parametrize("step", [
    "srun python train.py fit --trainer.devices=4",
    "srun python train.py fit --trainer.devices 4",
    "srun apptainer exec --nv img.sif python train.py fit --trainer.devices=4",
    "srun python megatron_gpt_pretraining.py trainer.devices=4",
    "srun python pretrain.py +trainer.devices=4",
])
def test_devices_other_than_the_tasks_per_node_are_reported_with_the_count_to_use(step):
    (hit,) = found(job("--nodes=2 --ntasks-per-node=1 --gres=gpu:4", step))
    assert hit.line == 6 and hit.severity == "error"
    assert "--ntasks-per-node=1" in hit.message and "use --ntasks-per-node=4" in hit.message


def test_num_nodes_other_than_the_nodes_is_reported_in_the_spelling_used():
    (hit,) = found(job("--nodes=2 --ntasks-per-node=4 --gres=gpu:4",
                       "srun python train.py trainer.devices=4 trainer.num_nodes=1"))
    assert "on 2 nodes" in hit.message and hit.message.endswith("use trainer.num_nodes=2")


def test_the_step_s_own_counts_are_the_ones_lightning_sees():
    script = job("--nodes=2 --ntasks-per-node=1 --gres=gpu:4",
                 "srun --ntasks-per-node=4 python train.py fit --trainer.devices=4 --trainer.num_nodes=2")
    assert found(script) == []
    (hit,) = found(job("--nodes=2 --ntasks-per-node=4 --gres=gpu:4",
                       "srun -N 1 python train.py fit --trainer.devices=4 --trainer.num_nodes=2"))
    assert "on 1 node:" in hit.message


def test_ntasks_without_a_per_node_count_is_refused_by_lightning():
    (hit,) = found(job("--ntasks=8 --gres=gpu:4", "srun python train.py fit --trainer.devices=4"))
    assert "--ntasks=8 and no --ntasks-per-node" in hit.message and "--ntasks-per-node=4" in hit.message


@pytest.mark.parametrize("script", [
    job("--nodes=2 --ntasks-per-node=4 --gres=gpu:4",
        "srun python train.py fit --trainer.devices=4 --trainer.num_nodes=2"),        # as Lightning wants it
    job("--nodes=2 --ntasks-per-node=1 --gres=gpu:4", "srun python train.py fit --trainer.devices=auto"),
    job("--nodes=2 --ntasks-per-node=1 --gres=gpu:4", "srun python train.py fit --trainer.devices=-1"),
    job("--nodes=1 --ntasks-per-node=1 --gres=gpu:4",
        "srun torchrun --nproc-per-node=4 train.py --trainer.devices=4"),             # torchrun starts them
    job("--nodes=1 --ntasks-per-node=1 --gres=gpu:4", "srun python train.py --devices=4"),  # not the trainer's
    job("--nodes=1 --ntasks-per-node=1 --gres=gpu:4 --job-name=interactive",
        "srun python train.py fit --trainer.devices=4"),                              # Lightning ignores Slurm
])
def test_matching_counts_and_what_lightning_does_not_check_are_left_alone(script):
    assert found(script) == []


def test_a_later_component_of_a_heterogeneous_job_is_judged_by_its_own_counts():
    script = ("#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --nodes=1 --ntasks-per-node=1\n#SBATCH hetjob\n"
              "#SBATCH --nodes=1 --ntasks-per-node=2 --gres=gpu:4\n"
              "srun --het-group=1 python train.py fit --trainer.devices=4\n")
    (hit,) = found(script)
    assert hit.line == 6 and "--ntasks-per-node=2" in hit.message
