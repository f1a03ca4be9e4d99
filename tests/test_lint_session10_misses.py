"""Mistakes from bug reports that lint missed (an audit of issue threads): the rendezvous host taken from
$SLURM_SUBMIT_HOST or an exported MASTER_ADDR that is a node list (HPC122), and an #SBATCH line that lost its #
(HPC321)."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node={tasks}\n#SBATCH --gres=gpu:4\n"
FIRST_NODE = 'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text) if f.code == code]


@pytest.mark.parametrize("tasks, body, what", [
    (4, "export MASTER_ADDR=$SLURM_SUBMIT_HOST\nexport MASTER_PORT=29500\nsrun python train.py\n", "MASTER_ADDR="),
    (4, "export MASTER_ADDR=${SLURM_SUBMIT_HOST}\nsrun python train.py\n", "MASTER_ADDR="),
    (4, "export MASTER_ADDR=$SLURM_JOB_NODELIST\nsrun python train.py\n", "compressed form"),
    (1, "srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$SLURM_SUBMIT_HOST:29500 "
        "train.py\n", "--rdzv-endpoint="),
    (1, "H=$SLURM_SUBMIT_HOST\nsrun torchrun --nnodes=2 --nproc-per-node=4 --master-addr=$H --master-port=29500 "
        "--node-rank=$SLURM_NODEID train.py\n", "--master-addr="),
    (1, "srun bash -c 'accelerate launch --multi_gpu --num_machines 2 --num_processes 8 --machine_rank $SLURM_NODEID "
        "--main_process_ip $SLURM_SUBMIT_HOST --main_process_port 29500 train.py'\n", "--main_process_ip"),
])
def test_a_rendezvous_host_that_is_not_a_node_of_the_job(tasks, body, what):
    hits = found(HEAD.format(tasks=tasks) + body, "HPC122")
    assert len(hits) == 1 and what in hits[0][1]


@pytest.mark.parametrize("text", [
    HEAD.format(tasks=4) + "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
                           "srun python train.py\n",
    HEAD.format(tasks=1) + FIRST_NODE + "srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
                                        "--rdzv-endpoint=$head:29500 train.py\n",
    # one node: the list is that one host's name
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\nexport MASTER_ADDR=$SLURM_JOB_NODELIST\nsrun python t.py\n",
    # only printed
    HEAD.format(tasks=4) + 'echo "submitted from $SLURM_SUBMIT_HOST"\nsrun python train.py\n',
])
def test_the_head_node_and_other_uses_are_left_alone(text):
    assert found(text, "HPC122") == []


SIGNAL = """#!/bin/bash
#SBATCH --nodes=1
SBATCH --signal=SIGUSR1@90
#SBATCH --ntasks-per-node=4
#SBATCH --time=24:00:00
srun python train.py
"""


def test_an_sbatch_line_that_lost_its_hash_is_named_and_fixed():
    hits = found(SIGNAL, "HPC321")
    assert [line for line, _ in hits] == [3] and "has lost its #" in hits[0][1]
    fixed, _ = fix_script(SIGNAL)
    assert "#SBATCH --signal=SIGUSR1@90\n" in fixed and lint(fixed) == []
    assert found("#!/bin/bash\n#SBATCH -N 1\nsbatch --dependency=afterok:1 next.sh\n", "HPC321") == []  # a submission


def test_a_master_addr_the_script_does_not_export_reaches_no_program():
    text = HEAD.format(tasks=1) + "MASTER_ADDR=$SLURM_JOB_NODELIST\n" + FIRST_NODE + (
        "srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$head:29500 train.py\n")
    assert found(text, "HPC122") == []
    assert len(found(text.replace("MASTER_ADDR=$SLURM_JOB_NODELIST\n",
                                  "MASTER_ADDR=$SLURM_JOB_NODELIST\nexport MASTER_ADDR\n"), "HPC122")) == 1


def test_scontrol_requeue_in_a_container_is_hpc222_not_the_head_node_rule():
    """HPC104 is about the head node's lookup (scontrol show hostnames) run in the container; any other scontrol
    call there, also in the container's own bash -c script, is HPC222's."""
    requeue = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n"
               "srun apptainer exec --nv pt.sif bash -c 'python train.py || scontrol requeue $SLURM_JOB_ID'\n")
    codes = [f.code for f in lint(requeue)]
    assert "HPC222" in codes and "HPC104" not in codes
    lookup = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --gres=gpu:4\nsrun apptainer exec --nv pt.sif bash -c "
              "'torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
              "--rdzv-endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500 train.py'\n")
    assert "HPC104" in [f.code for f in lint(lookup)]
    on_the_host = ('#!/bin/bash\n#SBATCH -N 1\nsrun bash -c "scontrol show job \\$SLURM_JOB_ID; '
                   "apptainer exec img.sif bash -c 'python t.py'\"\n")
    assert "HPC222" not in [f.code for f in lint(on_the_host)]


def test_accelerate_started_on_several_nodes_without_num_machines_trains_apart():
    text = HEAD.format(tasks=1) + "srun accelerate launch train.py\n"
    hits = found(text, "HPC112")
    assert len(hits) == 1 and "2 separate trainings" in hits[0][1]
    assert found(text.replace("launch train.py", "launch --config_file multi.yaml train.py"), "HPC112") == []
    one_node = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n" \
               "srun accelerate launch --multi_gpu --num_processes 4 train.py\n"
    assert found(one_node, "HPC112") == []


@pytest.mark.parametrize("directives, message", [
    ("#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --ntasks-per-node=2\n", "the job gets 1 task, not 2"),
    ("#SBATCH --ntasks=1\n#SBATCH --ntasks-per-node=2\n", "the job gets 1 task, not 2"),
    ("#SBATCH --nodes=2\n#SBATCH --ntasks=1\n", "sbatch lowers the nodes to 1"),
])
def test_task_counts_sbatch_changes_behind_the_scripts_back(directives, message):
    """Checked with sbatch --test-only on the practice cluster (Slurm 22.05): --nodes=1 --ntasks=1
    --ntasks-per-node=2 runs 1 task; --nodes=2 --ntasks=1 says "can't run 1 processes on 2 nodes, setting nnodes
    to 1". An uneven spread over several nodes (6 tasks, at most 4 per node) is what --ntasks-per-node is for."""
    hits = found("#!/bin/bash\n" + directives + "srun python train.py\n", "HPC308")
    assert len(hits) == 1 and message in hits[0][1]
    uneven = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks=6\n#SBATCH --ntasks-per-node=4\nsrun python t.py\n"
    assert found(uneven, "HPC308") == []


MONITOR = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gres=gpu:4
{monitor} > gpu_util.log &
srun python train.py
"""


@pytest.mark.parametrize("monitor", ["srun nvidia-smi dmon -s u -d 30", "srun nvidia-smi -l 30",
                                     "srun nvidia-smi --query-gpu=utilization.gpu --format=csv --loop=30",
                                     "srun watch -n 60 nvidia-smi", "srun tail -f train.log"])
def test_a_monitor_step_that_never_ends_blocks_the_training_step(monitor):
    text = MONITOR.format(monitor=monitor)
    hits = [f for f in lint(text) if f.code == "HPC522"]
    assert [f.line for f in hits] == [5] and "the srun on line 6 waits" in hits[0].message
    fixed, _ = fix_script(text)
    assert "srun --overlap " in fixed and "HPC522" not in [f.code for f in lint(fixed)]


@pytest.mark.parametrize("monitor", ["srun --overlap nvidia-smi dmon", "nvidia-smi dmon", "srun nvidia-smi",
                                     "srun nvidia-smi dmon -c 10"])
def test_monitors_that_share_end_or_run_in_the_batch_shell_are_left_alone(monitor):
    assert "HPC522" not in [f.code for f in lint(MONITOR.format(monitor=monitor))]
