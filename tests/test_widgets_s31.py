"""Session 31's form fixes from a headless audit of the forms: a job grown to two nodes renders at once (srun and the
c10d rendezvous follow, tested in test_workflow_s31), a runtime switch carries the container's variables over, and a
job form that loads commands without a #! line starts them with one."""

from __future__ import annotations

from hpcwidgets.widgets import WorkflowBuilder

CH = ("#!/bin/bash\n#SBATCH --time=01:00:00\n"
      "ch-run -b $SCRATCH/data:/data --set-env=OMP_NUM_THREADS=4 $SCRATCH/ch/pytorch -- python train.py\n")


def test_switching_from_charliecloud_to_apptainer_keeps_the_variables():
    b = WorkflowBuilder.from_script(CH, submit=False)
    b.controls["container.runtime"].value = "apptainer"
    assert b.controls["container.env"].value == "OMP_NUM_THREADS=4"
    assert "OMP_NUM_THREADS=4" in b.text and not b.stale


def test_switching_from_apptainer_to_charliecloud_keeps_the_variables():
    b = WorkflowBuilder(submit=False)
    b.controls["container.env"].value = "NCCL_DEBUG=INFO\nOMP_NUM_THREADS=2"
    b.controls["container.runtime"].value = "charliecloud"
    assert b.controls["container.set_env"].value == "NCCL_DEBUG=INFO\nOMP_NUM_THREADS=2"
    b.controls["container.image"].value = "$SCRATCH/images/pytorch.sqfs"  # (ch-run cannot read the SIF it had)
    assert "--set-env=NCCL_DEBUG=INFO" in b.text and not b.stale


def test_a_set_env_file_stays_with_charliecloud():
    b = WorkflowBuilder.from_script(CH.replace("--set-env=OMP_NUM_THREADS=4", "--set-env=env.txt"), submit=False)
    b.controls["container.runtime"].value = "apptainer"
    assert b.controls["container.env"].value == ""


def test_commands_without_a_shebang_load_with_one_and_say_so():
    b = WorkflowBuilder(submit=False)
    assert b.load("srun python train.py\n")
    assert b.text.startswith("#!/bin/bash\n") and "srun python train.py" in b.text
    assert "no #! line" in b.status.value
    assert b.load("#SBATCH --time=01:00:00\nsrun python train.py\n")
    assert b.text.startswith("#!/bin/bash\n#SBATCH --time=01:00:00\n")


def test_a_script_with_its_shebang_loads_as_it_is():
    b = WorkflowBuilder(submit=False)
    assert b.load(CH)
    assert b.text == CH and "no #! line" not in b.status.value


def test_gpus_per_node_typed_as_type_and_count_goes_to_both_fields_and_follows():
    b = WorkflowBuilder(submit=False)
    b.controls["job.gpus_per_node"].value = "4.0"
    assert any("TYPE:COUNT (a100:4)" in f.message for f in b.findings)  # the advice this follows
    b.controls["job.gpus_per_node"].value = "a100:4"
    assert (b.controls["job.gpus_per_node"].value, b.controls["job.gpu_type"].value) == ("4", "a100")
    assert "#SBATCH --gres=gpu:a100:4" in b.text and "--nproc-per-node=4" in b.text and "--nv" in b.text
    assert [f for f in b.findings if f.code == "FORM"] == []


def test_a_type_other_than_the_one_set_stays_as_typed():
    b = WorkflowBuilder(submit=False)
    b.controls["job.gpu_type"].value = "v100"
    b.controls["job.gpus_per_node"].value = "a100:4"
    assert b.controls["job.gpus_per_node"].value == "a100:4" and b.controls["job.gpu_type"].value == "v100"
