"""Lint corrections from the session-8 audit of Slurm features: GPU rules in a heterogeneous job's later
components, a step that takes the job's --gpus-per-task (HPC108, HPC101's fix), steps side by side that run one
after another (HPC518) or are never waited for (HPC519), $VARIABLE in any #SBATCH option (HPC305), and the ROCm
visibility variables (HPC513)."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import apply_fix
from hpcwidgets.lint import lint


def codes(text: str, profile: str | None = None) -> list[str]:
    return [f.code for f in lint(text, profile)]


def found(text: str, code: str, profile: str | None = None) -> list:
    return [f for f in lint(text, profile) if f.code == code]


# --- heterogeneous jobs: a step in component 1 is judged by component 1's resources

HET = """#!/bin/bash
#SBATCH --time=00:20:00
#SBATCH --ntasks=1 --cpus-per-task=1
#SBATCH hetjob
#SBATCH --nodes=1 {second}

srun --het-group=0 apptainer exec img.sif python prepare.py
srun --het-group=1 {step}
"""


def het(second: str, step: str) -> str:
    return HET.format(second=second, step=step)


def test_a_gpu_step_in_the_second_component_needs_nv():
    script = het("--ntasks=1 --gres=gpu:1", "apptainer exec img.sif python train.py")
    assert [f.line for f in found(script, "HPC201")] == [8]  # not line 7: component 0 has no GPU
    assert "HPC201" not in codes(script.replace("exec img.sif python train.py", "exec --nv img.sif python train.py"))


def test_launchers_per_node_in_the_second_component_oversubscribe():
    script = het("--ntasks-per-node=4 --gres=gpu:4",
                 "apptainer exec --nv img.sif torchrun --standalone --nproc-per-node=4 train.py")
    hits = found(script, "HPC101")
    assert [f.line for f in hits] == [8] and "4×4=16" in hits[0].message
    assert hits[0].fix is None  # the job model holds component 0 only: no rewrite of another component's step


def test_too_many_workers_in_the_second_component():
    script = het("--ntasks=1 --gres=gpu:2",
                 "apptainer exec --nv img.sif torchrun --standalone --nproc-per-node=4 train.py")
    assert [f.line for f in found(script, "HPC108")] == [8]
    assert "HPC108" not in codes(script.replace("gpu:2", "gpu:4"))


def test_nv_in_a_later_cpu_component_has_no_gpu():
    script = het("--ntasks=1", "apptainer exec --nv img.sif python train.py")
    assert [f.line for f in found(script, "HPC202")] == [8]
    assert "HPC202" not in codes(het("--ntasks=1 --gres=gpu:1", "apptainer exec --nv img.sif python train.py"))


# --- a step takes the job's --gpus-per-task for its own tasks

GPT = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
"""
TORCHRUN = "apptainer exec --nv img.sif torchrun --standalone --nproc-per-node=4 train.py\n"


def test_one_task_step_in_a_gpus_per_task_job_has_one_gpu():
    script = GPT + "srun --ntasks=1 --ntasks-per-node=1 --cpus-per-task=32 " + TORCHRUN
    hit = found(script, "HPC108")
    assert len(hit) == 1 and "SLURM_GPUS_PER_TASK" in hit[0].message and "--gpus-per-task=4" in hit[0].message
    fixed = apply_fix(script, hit[0].fix)
    assert "srun --ntasks=1 --ntasks-per-node=1 --cpus-per-task=32 --gpus-per-task=4 apptainer" in fixed
    assert not {"HPC108", "HPC109", "HPC101"} & set(codes(fixed))


@pytest.mark.parametrize("own", ["--gpus-per-task=4", "--gres=gpu:4", "--gpus-per-node=4", "--gpus=4"])
def test_a_step_that_asks_for_its_gpus_keeps_them(own):
    assert "HPC108" in codes(GPT + "srun --ntasks=1 --cpus-per-task=32 " + TORCHRUN)
    assert "HPC108" not in codes(GPT + f"srun --ntasks=1 --cpus-per-task=32 {own} " + TORCHRUN)


def test_the_batch_shell_and_a_job_of_one_task_per_node_are_not_this_mistake():
    assert "HPC108" in codes(GPT + "srun --ntasks=1 " + TORCHRUN)
    assert "HPC108" not in codes(GPT + TORCHRUN)  # the batch shell holds the job's GPUs on its node
    one = GPT.replace("--ntasks-per-node=4", "--ntasks-per-node=1").replace("--gpus-per-task=1", "--gpus-per-task=4")
    assert "HPC108" not in codes(one + "srun --ntasks=1 " + TORCHRUN)


def test_hpc101_fix_gives_the_one_launcher_the_node_gpus():
    script = GPT + "srun --ntasks-per-node=1 " + TORCHRUN
    hit = found(script, "HPC101")[0]
    fixed = apply_fix(script, hit.fix)
    assert "--gpus-per-task=4" in fixed.splitlines()[-1]
    assert not {"HPC101", "HPC108"} & set(codes(fixed))
    # GPUs counted per node need no more: the one launcher has them all
    per_node = GPT.replace("--gpus-per-task=1", "--gres=gpu:4") + "srun " + TORCHRUN
    assert "--gpus-per-task" not in apply_fix(per_node, found(per_node, "HPC101")[0].fix)


# --- steps side by side

SEEDS = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --gres=gpu:4
for seed in 0 1 2 3; do
  srun {opts} apptainer exec --nv img.sif python train.py --seed "$seed" &
done
wait
"""


def test_steps_in_a_loop_without_their_share_run_one_after_another():
    hit = found(SEEDS.format(opts="-n 1"), "HPC518")
    assert [f.line for f in hit] == [6]
    assert "--exact" in hit[0].message and "--gpus=1" in hit[0].message
    cpus_only = found(SEEDS.format(opts="-n 1 --gpus=1"), "HPC518")
    assert "all the CPUs" in cpus_only[0].message and "GPUs" not in cpus_only[0].message.split("so the steps")[0]


@pytest.mark.parametrize("opts", ["--exact -n 1 -c 4 --gpus=1", "-n 1 -c 4 --gres=gpu:1", "--exclusive -n 1 --gpus=1",
                                  "--overlap -n 1"])
def test_steps_with_their_own_share_run_side_by_side(opts):
    assert "HPC518" in codes(SEEDS.format(opts="-n 1"))
    assert "HPC518" not in codes(SEEDS.format(opts=opts))


def test_steps_side_by_side_depend_on_the_slurm_version():
    job_cpus = SEEDS.format(opts="-n 1 --gpus=1").replace("--ntasks=4\n", "--ntasks=4\n#SBATCH --cpus-per-task=4\n")
    assert "HPC518" not in codes(job_cpus)  # version unknown: from 23.11 srun takes --cpus-per-task, implying --exact
    assert "HPC518" in codes(job_cpus, "local")  # 22.05: srun does not take it, so the step gets every CPU


def test_one_step_at_a_time_is_not_side_by_side():
    assert "HPC518" in codes(SEEDS.format(opts="-n 1"))
    waited = SEEDS.format(opts="-n 1").replace('"$seed" &\n', '"$seed" &\n  wait\n')
    assert "HPC518" not in codes(waited)
    monitor = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\n"
               "srun -n 1 nvidia-smi dmon -d 30 > gpu.log &\nsrun python train.py\n")
    assert "HPC518" not in codes(monitor)  # one background step beside a foreground one


def test_several_nodes_are_left_alone():
    assert "HPC518" in codes(SEEDS.format(opts="-n 1"))
    assert "HPC518" not in codes(SEEDS.format(opts="-n 1").replace("--nodes=1", "--nodes=2"))
    # no count in the script: sbatch -N 4 may give one on its command line (ray start … -w "$node" & on each)
    assert "HPC518" not in codes(SEEDS.format(opts="-n 1").replace("#SBATCH --nodes=1\n#SBATCH --ntasks=4\n", ""))


def test_a_step_started_before_the_wait_runs_beside_the_earlier_ones():
    script = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=2\nsrun -n 1 python server.py &\n"
              "srun -n 1 python client.py | tee client.log &\nwait\n")
    assert [f.line for f in found(script, "HPC518")] == [4, 5]
    one_by_one = script.replace("server.py &\n", "server.py &\nwait\n")
    assert "HPC518" not in codes(one_by_one)


NO_WAIT = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=2
srun --exact -n 1 python a.py &
srun --exact -n 1 python b.py &
echo started
"""


def test_background_steps_without_wait_are_killed_with_the_job():
    hit = found(NO_WAIT, "HPC519")
    assert [f.line for f in hit] == [4]
    fixed = apply_fix(NO_WAIT, hit[0].fix)
    assert fixed.splitlines()[-2:] == ["wait", "echo started"]
    assert "HPC519" not in codes(fixed)


@pytest.mark.parametrize("after", ["wait\n", "wait $pid\n", "srun python c.py\n", "python report.py\n",
                                   "while squeue -j \"$SLURM_JOB_ID\" >/dev/null; do sleep 60; done\n"])
def test_something_after_the_background_steps_keeps_the_job(after):
    assert "HPC519" in codes(NO_WAIT)
    assert "HPC519" not in codes(NO_WAIT + after)


def test_a_wait_in_a_function_or_trap_counts():
    head = "#!/bin/bash\n"
    assert "HPC519" in codes(NO_WAIT.replace(head, head + "finish() { echo done; }\ntrap finish EXIT\n"))
    assert "HPC519" not in codes(NO_WAIT.replace(head, head + "finish() { wait; }\ntrap finish EXIT\n"))
    assert "HPC519" not in codes(NO_WAIT.replace("#!/bin/bash\n", "#!/bin/bash\ntrap 'wait' EXIT\n"))


# --- $VARIABLE in any #SBATCH option

@pytest.mark.parametrize("directive", ["--dependency=afterok:$TRAIN_JOB", "--export=ALL,DATA_DIR=${HOME}/data",
                                       "--container=$SCRATCH/bundles/pytorch", "--signal=B:USR1@$T",
                                       "--nodelist=$NODE", "--begin=$START", "-w $NODE", "--nodes=$N"])
def test_a_variable_is_not_expanded_in_any_directive(directive):
    hit = found(f"#!/bin/bash\n#SBATCH --time=00:10:00\n#SBATCH {directive}\npython train.py\n", "HPC305")
    assert [f.line for f in hit] == [3] and directive in hit[0].message


def test_a_variable_in_a_later_component_is_reported():
    script = het("--ntasks=1 --output=$HOME/logs/%j.out", "python train.py")
    assert [f.line for f in found(script, "HPC305")] == [5]


def test_literal_dollars_and_modelled_fields_are_reported_once():
    assert "HPC305" not in codes("#!/bin/bash\n#SBATCH --comment='costs $HOME'\npython train.py\n")
    assert "HPC305" not in codes("#!/bin/bash\n#SBATCH --comment=\"costs \\$HOME\"\npython train.py\n")
    assert len(found("#!/bin/bash\n#SBATCH --output=$HOME/x.out\npython train.py\n", "HPC305")) == 1
    gres = found("#!/bin/bash\n#SBATCH --time=10\n#SBATCH --gres=gpu:1,lscratch:$S\npython train.py\n", "HPC305")
    assert [f.line for f in gres] == [3]  # at the --gres line, once


def test_a_price_in_a_comment_is_text_but_a_variable_there_is_not():
    assert "HPC305" not in codes('#!/bin/bash\n#SBATCH --comment="costs $5 an hour"\npython train.py\n')
    assert len(found("#!/bin/bash\n#SBATCH --comment=by_$USER\npython train.py\n", "HPC305")) == 1
    assert len(found("#!/bin/bash\n#SBATCH --job-name=run$1\npython train.py\n", "HPC305")) == 1  # an argument


# --- the ROCm visibility variables

ROCM = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gpus-per-node=8
export {name}={value}
singularity exec --rocm pytorch.sif torchrun --standalone --nproc-per-node=8 train.py
"""


@pytest.mark.parametrize("name", ["ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"])
def test_a_fixed_list_of_visible_amd_gpus(name):
    assert [f.line for f in found(ROCM.format(name=name, value="0,1"), "HPC513")] == [4]
    assert "HPC513" not in codes(ROCM.format(name=name, value="0,1,2,3,4,5,6,7"))
    # the batch shell's $SLURM_LOCALID is 0, and so is the one task's: torchrun's 8 workers share one GPU
    assert "HPC513" in codes(ROCM.format(name=name, value="$SLURM_LOCALID"))
