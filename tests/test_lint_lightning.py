"""HPC121 read further: a Lightning trainer's devices and num_nodes given as a script's own options (--devices,
--gpus, --num_nodes, where the script shows Lightning) or in Python code the step runs (Trainer(…) or Fabric(…) in
python -c code or a here-document), and the message says which number to change. Lightning's SLURMEnvironment
.validate_settings compares devices with SLURM_NTASKS_PER_NODE and num_nodes with SLURM_NNODES and stops at start-up
when they differ; both the Trainer's strategy and Fabric's launcher call it."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint


def found(text: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, select=["HPC121"])]


def job(directives: str, *lines: str) -> str:
    return ("#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives.split())
            + "module load pytorch-lightning/2.4\n" + "".join(line + "\n" for line in lines))


TWO_BY_FOUR = "--nodes=2 --ntasks-per-node=4 --gres=gpu:4"


@pytest.mark.parametrize("step, shown", [
    ("srun python train.py --devices 2 --strategy ddp", "--devices=2"),
    ("srun python train.py --devices=2", "--devices=2"),
    ("srun python train.py --gpus 2", "--gpus=2"),                  # Lightning 1.x's name for the device count
    ("srun python train.py fit --trainer.gpus=2", "--trainer.gpus=2"),
])
def test_a_script_s_own_device_option_is_read_where_the_script_shows_lightning(step, shown):
    assert found(job(TWO_BY_FOUR, step)) == [(6, (
        f"{shown} under srun with --ntasks-per-node=4: Lightning runs one process per Slurm task and stops at start-up "
        "(devices must equal the tasks per node); the job has 4 GPUs per node, one per task: use "
        f"{shown[:-1]}4"))]


def test_num_nodes_given_as_the_script_s_own_option_is_read_too():
    ((line, message),) = found(job(TWO_BY_FOUR, "srun python train.py --devices 4 --num_nodes 1"))
    assert line == 6 and message.startswith("--num_nodes=1 under srun on 2 nodes") \
        and message.endswith("use --num_nodes=2")


@pytest.mark.parametrize("step", [
    "srun python train.py --devices 2 --num_nodes 1",
    "srun python train.py --gpus 2",
])
def test_a_script_s_own_options_mean_nothing_without_lightning_in_sight(step):
    script = job(TWO_BY_FOUR, step).replace("module load pytorch-lightning/2.4\n", "module load pytorch/2.4\n")
    assert found(script) == []


@pytest.mark.parametrize("code", [
    "import lightning as L; L.Trainer(devices=2, accelerator='gpu').fit(model)",
    "import pytorch_lightning as pl; trainer = pl.Trainer(devices=2)",
    "from lightning.fabric import Fabric; Fabric(devices=2, num_nodes=2).launch()",
    "from pytorch_lightning import Trainer; Trainer(gpus=2)",
])
def test_a_trainer_or_fabric_in_python_c_code_is_read(code):
    name = "gpus" if "gpus=" in code else "devices"
    ((line, message),) = found(job(TWO_BY_FOUR, f'srun python -c "{code}"'))
    assert line == 6 and message.startswith(f"{name}=2 under srun with --ntasks-per-node=4")
    assert message.endswith(f"use {name}=4")


def test_a_trainer_in_a_here_document_the_step_runs_is_read():
    script = job(TWO_BY_FOUR, "srun python - <<'EOF'", "import lightning as L",
                 "trainer = L.Trainer(devices=4, num_nodes=4)", "EOF")
    assert [m.split(" under")[0] for _, m in found(script)] == ["num_nodes=4"]


@pytest.mark.parametrize("code", [
    "L.Trainer(devices='auto')", "L.Trainer(devices=-1)", "L.Trainer(devices=[0, 1])",
    "L.Trainer(devices=n, num_nodes=nodes)", "L.Trainer(devices=int(os.environ['SLURM_NTASKS_PER_NODE']))",
    "L.Trainer(devices=4, num_nodes=2)", "make_trainer(devices=2)", "L.Trainer(devices=True)",
])
def test_code_whose_counts_cannot_be_known_or_that_match_is_left_alone(code):
    assert found(job(TWO_BY_FOUR, f'srun python -c "import lightning as L, os; {code}"')) == []


def test_a_here_document_given_to_a_script_as_its_input_is_not_read_as_code():
    script = job(TWO_BY_FOUR, "srun python train.py <<'EOF'", "L.Trainer(devices=2)", "EOF")
    assert found(script) == []


@pytest.mark.parametrize("directives, step, advice", [
    # the tasks per node differ from the GPUs: change them
    ("--nodes=1 --ntasks-per-node=1 --gres=gpu:4", "srun python t.py --devices 4",
     "the job has 4 GPUs per node: use --ntasks-per-node=4, one task per GPU"),
    # the devices differ from the GPUs: change them
    ("--nodes=1 --ntasks-per-node=4 --gpus-per-node=4", "srun python t.py --devices 2",
     "the job has 4 GPUs per node, one per task: use --devices=4"),
    # both differ: change both
    ("--nodes=1 --ntasks-per-node=2 --gres=gpu:4", "srun python t.py --devices 3",
     "the job has 4 GPUs per node: use --ntasks-per-node=4 and --devices=4"),
    # no GPU count in the script: either way
    ("--nodes=1 --ntasks-per-node=2", "srun python t.py --devices 3",
     "use --ntasks-per-node=3, one task per GPU (or --devices=2)"),
    # srun's own count is the one Lightning sees, and the one to change
    ("--nodes=1 --ntasks-per-node=4 --gres=gpu:4", "srun --ntasks-per-node=1 python t.py --devices 4",
     "the job has 4 GPUs per node: use srun --ntasks-per-node=4, one task per GPU"),
])
def test_the_message_names_the_number_to_change(directives, step, advice):
    ((_, message),) = found(job(directives, step))
    assert message.endswith(advice)


def test_srun_s_own_node_count_is_the_one_num_nodes_must_equal():
    ((_, message),) = found(job(TWO_BY_FOUR, "srun -N 1 python train.py --devices 4 --num_nodes 2"))
    assert message.startswith("--num_nodes=2 under srun on 1 node:") and message.endswith("use --num_nodes=1")
    assert found(job(TWO_BY_FOUR, "srun -N 1 python train.py --devices 4 --num_nodes 1")) == []


@pytest.mark.parametrize("step", [
    "srun python train.py --devices 4 --num_nodes 2",                          # as Lightning wants it
    "srun python train.py --devices auto --gpus -1",                           # counts of the node
    'srun python train.py --devices "$NGPUS"',                                 # a variable
    "srun torchrun --nproc-per-node=4 train.py --devices 2",                   # torchrun starts the processes
    "python train.py --devices 2",                                             # no srun: Lightning starts them
])
def test_settings_lightning_accepts_or_cannot_be_judged_are_left_alone(step):
    assert found(job(TWO_BY_FOUR, step)) == []
