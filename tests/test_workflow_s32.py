"""Session 32: what the audit of edits to people's own scripts found in the models (audit K)."""

from __future__ import annotations

from hpcwidgets.parse import parse_script
from hpcwidgets.spec import Torchrun
from hpcwidgets.spec._words import Verbatim


def test_an_endpoint_read_back_in_double_quotes_is_judged_as_torchrun_gets_it():
    launch = Torchrun(script="train.py", nnodes="1", nproc_per_node="4", rdzv_backend="c10d",
                      rdzv_endpoint=Verbatim('"$(hostname):29500"'))
    assert [p for p in launch.problems() if p.field == "rdzv_endpoint"] == []
    bad = launch.replace(rdzv_endpoint=Verbatim('"head:29x00"'))
    [problem] = [p for p in bad.problems() if p.field == "rdzv_endpoint"]
    assert "'29x00', is not a number" in problem.message and "Verbatim" not in problem.message


def test_an_unrelated_edit_of_a_script_with_a_quoted_endpoint_reports_nothing():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gpus-per-node=4\nsrun torchrun --nnodes=1 --nproc_per_node=4 "
            '--rdzv_backend=c10d --rdzv_endpoint="$(hostname):29500" train.py\n')
    model = parse_script(text)
    edited = model.replace(job=model.job.replace(time="1:00:00"))
    assert [p for p in edited.problems() if "rdzv_endpoint" in p.field] == []


def _read(directives: str, step: str):
    return parse_script(f"#!/bin/bash\n{directives}head=$(scontrol show hostnames | sed -n 1p)\n{step}\n")


def _edited(model, **job):
    from hpcwidgets.spec.workflow import followed
    after = model.replace(job=model.job.replace(**job))
    return followed(model, after, given=[f"job.{k}" for k in job])


_C10D = '--rdzv_backend=c10d --rdzv_endpoint="$head:29500" train.py'


def test_gpus_per_task_of_one_task_a_node_follows_the_gpus_per_node():
    model = _read("#SBATCH --nodes=2\n#SBATCH --ntasks=2\n#SBATCH --gpus-per-task=8\n#SBATCH --gres=gpu:8\n",
                  f"srun torchrun --nnodes=2 --nproc_per_node=8 {_C10D}")
    new = _edited(model, gpus_per_node=4)
    assert (new.job.gpus_per_task, new.launcher.nproc_per_node) == (4, "4")


def test_sruns_gpus_per_task_follows_where_it_starts_one_launcher_a_node():
    model = _read("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n",
                  f"srun --ntasks-per-node=1 --gpus-per-task=4 torchrun --nnodes=2 --nproc_per_node=4 {_C10D}")
    new = _edited(model, gpus_per_node=8)
    assert (new.srun.gpus_per_task, new.launcher.nproc_per_node) == (8, "8")


def test_gpus_per_task_of_several_tasks_a_node_stays():
    model = _read("#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-task=1\n"
                  "#SBATCH --gpus-per-node=4\n", "srun python train.py")
    assert _edited(model, gpus_per_node=8).job.gpus_per_task == 1


def test_a_task_count_of_so_many_a_node_follows_the_nodes():
    model = _read("#SBATCH --nodes=4\n#SBATCH --ntasks=4\n#SBATCH --gpus-per-node=8\n",
                  f"srun torchrun --nnodes=4 --nproc_per_node=8 {_C10D}")
    new = _edited(model, nodes=2)
    assert (new.job.ntasks, new.launcher.nnodes) == (2, "2")
    eight = _read("#SBATCH --nodes=2\n#SBATCH --ntasks=8\n", "srun python train.py")
    assert _edited(eight, nodes=3).job.ntasks == 12
    given = _read("#SBATCH --nodes=4\n#SBATCH --ntasks=4\n", "srun python train.py")
    from hpcwidgets.spec.workflow import followed
    after = given.replace(job=given.job.replace(nodes=2, ntasks=6))
    assert followed(given, after, given=["job.nodes", "job.ntasks"]).job.ntasks == 6  # the person's own count wins


def test_a_standalone_launch_with_a_master_port_grows_to_c10d_without_it():
    model = parse_script("#!/bin/bash\n#SBATCH --gres=gpu:4\nMASTER_PORT=$((20000 + RANDOM % 20000))\n"
                         "srun torchrun --standalone --nnodes=1 --nproc_per_node=4 --master_port=$MASTER_PORT train.py\n")
    new = _edited(model, nodes=2)
    assert (new.launcher.standalone, new.launcher.rdzv_backend, new.launcher.master_port) == (False, "c10d", None)
    assert [p for p in new.problems() if p.field.startswith("launcher")] == []


def test_a_task_count_with_its_own_count_per_node_follows_the_nodes_too():
    model = _read("#SBATCH --nodes=4\n#SBATCH --ntasks=4\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=8\n",
                  f"srun torchrun --nnodes=$SLURM_NNODES --nproc_per_node=8 {_C10D}")
    assert _edited(model, nodes=2).job.ntasks == 2
    odd = _read("#SBATCH --nodes=2\n#SBATCH --ntasks=3\n#SBATCH --ntasks-per-node=2\n", "srun python train.py")
    assert _edited(odd, nodes=1).job.ntasks == 3  # not so many a node: kept (and the check names the fix)
    [message] = [p.message for p in _edited(odd, nodes=1).problems() if p.field == "job.ntasks"]
    assert message.endswith("ask for at most 2 tasks, or more nodes")
