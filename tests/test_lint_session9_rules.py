"""Lint corrections from the session-9 audit of real job scripts: launchers in tasks with GPUs of their own
(HPC101, HPC109), NVIDIA_VISIBLE_DEVICES passed by srun --export (HPC225), Apptainer flags set through
APPTAINER_<FLAG> (HPC225, HPC209), accelerate without --machine_rank under c10d (HPC116), a fixed port in a job
that holds its node (HPC106) and GPUs in a later heterogeneous-job component (HPC407)."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import apply_fix
from hpcwidgets.lint import lint


def found(text: str, code: str, profile: str | None = None) -> list:
    return [f for f in lint(text, profile) if f.code == code]


def codes(text: str, profile: str | None = None) -> set[str]:
    return {f.code for f in lint(text, profile)}


# --- HPC101: --gpus-per-task gives each launcher GPUs of its own

PER_TASK = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks=4
#SBATCH --gpus-per-task=2
#SBATCH --cpus-per-task=8
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun --cpus-per-task=8 {bind}torchrun --nnodes=4 --nproc-per-node={nproc} --rdzv-backend=c10d \\
  --rdzv-endpoint="$head_node:29500" --rdzv-id="$SLURM_JOB_ID" train.py
"""


def per_task(nproc: str = "2", bind: str = "") -> str:
    return PER_TASK.format(nproc=nproc, bind=bind)


@pytest.mark.parametrize("nproc", ["2", "gpu"])
def test_two_launchers_per_node_each_on_its_task_s_gpus_are_correct(nproc):
    # --gpus-per-task implies --gpu-bind=per_task: each launcher sees only its own 2 GPUs
    script = per_task(nproc)
    assert not {"HPC101", "HPC108", "HPC109"} & codes(script)
    assert not [f for f in lint(script) if f.fix is not None]  # --fix leaves the correct layout alone


def test_the_step_s_own_gpus_per_task_count_too():
    script = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=2\n#SBATCH --gres=gpu:4\n"
              "srun --gpus-per-task=2 torchrun --standalone --nproc-per-node=2 train.py\n")
    assert "HPC101" not in codes(script)
    assert "HPC101" in codes(script.replace("srun --gpus-per-task=2 ", "srun "))


@pytest.mark.parametrize("bind", ["--gpu-bind=none ", "--gpu-bind=closest "])
def test_a_binding_other_than_per_task_shares_the_gpus_again(bind):
    assert not found(per_task(bind="--gpu-bind=per_task:2 "), "HPC101")
    assert found(per_task(bind=bind), "HPC101")


def test_fewer_workers_than_the_task_s_gpus_is_a_waste_not_a_collision():
    (hit,) = found(per_task("1"), "HPC109")
    assert hit.severity == "warning" and "1 of the 2 GPUs of each task idle" in hit.message
    assert "--nproc-per-node=2" in hit.message
    assert "HPC101" not in codes(per_task("1"))


def test_more_workers_than_the_task_s_gpus_is_reported_and_the_text_names_what_the_fix_does():
    script = per_task("4")
    (hit,) = found(script, "HPC101")
    assert "sees only its own 2 GPUs" in hit.message and "find no GPU of their own" in hit.message
    named = ("--ntasks=2", "--ntasks-per-node=1", "--nproc-per-node=4", "--gpus-per-task=4", "--cpus-per-task=16")
    assert all(option in hit.message for option in named)
    fixed = apply_fix(script, hit.fix)
    step = fixed.split("srun ", 1)[1]
    assert all(option in step for option in named)
    assert not {"HPC101", "HPC108"} & codes(fixed)


def test_the_printed_fix_names_gpus_per_task_when_the_job_counts_gpus_per_task():
    script = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-task=1\n"
              "srun --ntasks-per-node=1 torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
              "--rdzv-endpoint=h:29500 train.py\n")
    (hit,) = found(script, "HPC101")
    assert "--gpus-per-task=4 (all the node's GPUs for its one task)" in hit.message
    assert hit.fix.description in hit.message
    assert "--gpus-per-task=4" in apply_fix(script, hit.fix)


# --- HPC225: NVIDIA_VISIBLE_DEVICES as apptainer's process sees it

def nvccli(step: str, before: str = "") -> str:
    return (f"#!/bin/bash\n#SBATCH --gres=gpu:2\n{before}{step}apptainer exec --nvccli --containall "
            "--writable-tmpfs img.sif python train.py\n")


@pytest.mark.parametrize("srun", ["srun --export=ALL,NVIDIA_VISIBLE_DEVICES=all ",
                                  "srun --export=NVIDIA_VISIBLE_DEVICES=0,1 ",
                                  "srun --export HOME,NVIDIA_VISIBLE_DEVICES=all "])
def test_srun_export_can_set_nvidia_visible_devices(srun):
    assert "HPC225" in codes(nvccli("srun "))
    assert "HPC225" not in codes(nvccli(srun))
    assert "HPC225" in codes(nvccli(srun.replace("=all", "=void").replace("=0,1", "=")))  # no GPU named


@pytest.mark.parametrize("srun", ["srun --export=NONE ", "srun --export=HOME,PATH "])
def test_srun_export_that_leaves_it_out_keeps_the_script_s_value_from_apptainer(srun):
    before = "export NVIDIA_VISIBLE_DEVICES=all\n"
    assert "HPC225" not in codes(nvccli("srun ", before))
    assert "HPC225" not in codes(nvccli("srun --export=ALL ", before))
    (hit,) = found(nvccli(srun, before), "HPC225")
    assert "srun --export leaves it out" in hit.message


# --- APPTAINER_<FLAG> in the environment acts as the flag

def env_run(before: str, flags: str = "--nvccli") -> str:
    return f"#!/bin/bash\n#SBATCH --gres=gpu:1\n{before}\napptainer exec {flags} img.sif python train.py\n"


@pytest.mark.parametrize("setting, off", [
    ("export APPTAINER_CONTAINALL=1", "export APPTAINER_CONTAINALL=0"),
    ("export APPTAINER_CONTAIN=true", "APPTAINER_CONTAIN=true"),  # not exported: apptainer does not see it
    ("export SINGULARITY_CONTAINALL=1", "export SINGULARITY_CONTAINALL=false"),
])
def test_containment_from_the_environment_needs_nvidia_visible_devices(setting, off):
    (hit,) = found(env_run(setting), "HPC225")
    assert setting.split()[1].split("=")[0] + " set" in hit.message
    assert "HPC209" not in codes(env_run(setting))  # contained: $HOME is not mounted
    assert "HPC225" not in codes(env_run(off)) and "HPC209" in codes(env_run(off))


def test_nvccli_from_the_environment_counts_too():
    assert "HPC225" in codes(env_run("export APPTAINER_NVCCLI=1", "--containall"))


def test_no_home_from_the_environment_keeps_home_out():
    assert "HPC209" not in codes(env_run("export APPTAINER_NO_HOME=1", ""))
    assert "HPC209" in codes(env_run("export APPTAINER_NO_HOME=0", ""))


def test_cleanenv_keeps_an_exported_pythonnousersite_out_of_the_container():
    plain = "export PYTHONNOUSERSITE=1"
    assert "HPC209" not in codes(env_run(plain, ""))
    (hit,) = found(env_run(plain + "\nexport APPTAINER_CLEANENV=1", ""), "HPC209")
    assert "APPTAINERENV_PYTHONNOUSERSITE=1" in hit.message
    assert "HPC209" in codes(env_run(plain, "--cleanenv"))
    assert "HPC209" not in codes(env_run("export APPTAINERENV_PYTHONNOUSERSITE=1", "--cleanenv"))


# --- HPC116: what a saved accelerate config does depends on the rendezvous

ACCELERATE = """#!/bin/bash
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun accelerate launch --multi_gpu --num_processes 16 --num_machines 4 {backend}--main_process_ip "$head_node" \\
  --main_process_port 29500 train.py
"""


def test_without_machine_rank_c10d_runs_on_a_saved_config_and_static_hangs():
    (c10d,) = found(ACCELERATE.format(backend="--rdzv_backend c10d "), "HPC116")
    assert "TypeError" in c10d.message and "hang" not in c10d.message
    assert "the c10d rendezvous numbers the nodes itself" in c10d.message and "saved default config" in c10d.message
    (static,) = found(ACCELERATE.format(backend=""), "HPC116")
    assert "so the job hangs" in static.message


# --- HPC106: a job that holds its node shares the port with nobody

SINGLE = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH {exclusive}
#SBATCH --gres=gpu:4
torchrun --nnodes=1 --nproc-per-node=4 --master-port=29500 train.py{background}
"""


def test_an_exclusive_node_has_no_second_job_on_the_port():
    assert "HPC106" not in codes(SINGLE.format(exclusive="--exclusive", background=""))
    assert "HPC106" in codes(SINGLE.format(exclusive="--exclusive=user", background=""))  # your other jobs share it
    assert "HPC106" in codes(SINGLE.format(exclusive="--time=01:00:00", background=""))


def test_an_exclusive_job_s_launches_side_by_side_still_collide():
    (hit,) = found(SINGLE.format(exclusive="--exclusive", background=" &\nwait"), "HPC106")
    assert "another launch this job starts beside it" in hit.message


# --- HPC407: each heterogeneous-job component gets the default partition when it names none

HET = """#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --nodes=1 --ntasks=1 --cpus-per-task=8
#SBATCH hetjob
#SBATCH {second} --nodes=1 --ntasks=4 --gpus-per-task=1
srun --het-group=0 python coordinator.py &
srun --het-group=1 python worker.py
wait
"""


def test_gpus_in_a_later_component_without_a_partition_are_checked_against_the_default():
    (hit,) = found(HET.format(second="--cpus-per-task=2"), "HPC407", "generic")
    assert hit.line == 5 and hit.message.startswith("component 1 of the heterogeneous job:")
    assert "(the default, as the component names no partition)" in hit.message
    assert not found(HET.format(second="--partition=gpu"), "HPC407", "generic")
    assert not found(HET.format(second="--cpus-per-task=2"), "HPC407")  # no profile: no site to check against


def test_a_workflow_of_launchers_on_their_own_task_gpus_renders_and_one_sharing_them_does_not():
    from hpcwidgets.spec import SlurmJob, Srun, Torchrun, Workflow
    job = SlurmJob(nodes=2, ntasks_per_node=2, gpus_per_task=2, time="01:00:00")
    own = Workflow(job=job, srun=Srun(), launcher=Torchrun(nnodes=4, nproc_per_node="2", script="train.py",
                                                            rdzv_backend="c10d", rdzv_endpoint="$head_node:29500"))
    assert not [p for p in own.problems() if p.field.endswith("ntasks_per_node")]
    more = own.replace(launcher=own.launcher.replace(nproc_per_node="4"))   # 4 workers on a task's 2 GPUs
    bound = own.replace(srun=Srun(gpu_bind="closest"))                       # binding that lets tasks share
    for wf in (more, bound, own.replace(job=job.replace(gpus_per_task=None, gpus_per_node=4))):
        # (srun takes the job's --ntasks-per-node: the problem is the job's field)
        assert [p for p in wf.problems() if p.field == "job.ntasks_per_node"], wf
