"""Launchers other than a bare torchrun (audit 8a): accelerate launch, python -m torch.distributed.launch inside
bash -c, torchrun's c10d rendezvous with --master-addr, deepspeed in a container and its counts, job-derived ports.
Each case is a minimal form of a script the audit found; the launchers' own code decides what is reported."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.parse.script import read_script

TWO = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node={tasks}\n#SBATCH --gres=gpu:4\n"
       'export head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)\n')
ONE = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\n"


def two(step: str, tasks: int = 1) -> str:
    return TWO.format(tasks=tasks) + step + "\n"


def found(text: str, code: str) -> list[str]:
    return [f.message for f in lint(text) if f.code == code]


def accelerate(options: str) -> str:
    """One accelerate launch per task, its options read by each task (single quotes)."""
    return f"srun bash -c 'accelerate launch {options} train.py'"


GOOD = "--multi_gpu --num_machines 2 --num_processes 8 --machine_rank $SLURM_NODEID --main_process_ip $head"


# --------------------------------------------------------------------------------------------
# accelerate launch: the mistakes torchrun's rules catch, through accelerate's options

def test_several_accelerate_launchers_per_node() -> None:
    """--ntasks-per-node=4: four launchers on each node, each starting 8 / 2 = 4 processes from LOCAL_RANK 0; the
    same launch once per node is right."""
    out = found(two(accelerate(GOOD), tasks=4), "HPC101")
    assert len(out) == 1
    assert "4×4=16 processes per node for 4 GPUs" in out[0] and "same --machine_rank" in out[0]
    assert "srun --ntasks=2 --ntasks-per-node=1" in out[0]
    assert [f.format() for f in lint(two(accelerate(GOOD))) if f.severity != "info"] == []


@pytest.mark.parametrize("step", [
    accelerate("--num_machines 8 --num_processes 8 --machine_rank $SLURM_PROCID --gpu_ids $SLURM_LOCALID "
               "--main_process_ip $head"),                                          # each task its own GPU
    "srun --gpus-per-task=1 " + accelerate(GOOD)[5:],
    accelerate("--use_deepspeed --num_machines 2 --num_processes 8 --deepspeed_hostfile hf"),  # DeepSpeed's pdsh
])
def test_launchers_per_node_that_do_not_share_gpus_or_start_elsewhere(step: str) -> None:
    assert found(two(accelerate(GOOD), tasks=4), "HPC101")
    assert not found(two(step, tasks=4), "HPC101")


@pytest.mark.parametrize("machines", ["2", "$SLURM_NNODES", "$N"])
def test_num_machines_against_the_nodes_srun_starts(machines: str) -> None:
    def options(value: str) -> str:
        return GOOD.replace("--num_machines 2", f"--num_machines {value}").replace("8", "16")
    out = found(two(accelerate(options("4"))), "HPC112")
    assert len(out) == 1 and "waits forever" in out[0] and "use --num_machines 2" in out[0]
    assert not found(two(accelerate(options(machines))), "HPC112")   # right, or not known


def test_num_machines_on_a_one_node_job_and_launches_placed_by_hand() -> None:
    assert found(ONE + "accelerate launch --multi_gpu --num_machines 2 --num_processes 8 train.py\n", "HPC112")
    by_hand = two("srun -N1 -n1 -w $head accelerate launch " + GOOD.replace("$SLURM_NODEID", "0") + " train.py &\n"
                  "srun -N1 -n1 -x $head accelerate launch " + GOOD.replace("$SLURM_NODEID", "1") + " train.py &\nwait")
    assert not found(by_hand, "HPC112") and not found(by_hand, "HPC116")


@pytest.mark.parametrize("ip,code", [("localhost", "HPC103"), ("127.0.0.1", "HPC103"),
                                     ("$SLURM_JOB_NODELIST", "HPC102")])
def test_main_process_ip_that_is_no_head_node(ip: str, code: str) -> None:
    out = found(two(accelerate(GOOD.replace("$head", ip))), code)
    assert len(out) == 1 and "--main_process_ip" in out[0]


@pytest.mark.parametrize("options", [
    "--multi_gpu --config_file multi.yaml --num_machines 2 --machine_rank $SLURM_NODEID",   # the file may give it
    "--multi_gpu --num_machines 2 --main_process_ip $MASTER_ADDR --machine_rank $SLURM_NODEID",  # not known
    "--use_deepspeed --num_machines 2 --deepspeed_hostfile hf",      # deepspeed finds the head itself
])
def test_a_multi_machine_launch_without_main_process_ip(options: str) -> None:
    out = found(two(accelerate("--multi_gpu --num_machines 2 --num_processes 8 --machine_rank $SLURM_NODEID")),
                "HPC103")
    assert len(out) == 1 and "without --main_process_ip" in out[0] and "'None:PORT'" in out[0]
    assert not found(two(accelerate(options)), "HPC103")


@pytest.mark.parametrize("options", [
    # c10d numbers the nodes itself (torchrun ignores --node-rank there); a config file each node has its own of
    # (on its own disk, or named by its number) may give each its rank (one file every node reads gives all the
    # same: test_lint_s31); DeepSpeed's pdsh launcher starts the machines itself
    "--multi_gpu --rdzv_backend c10d --num_machines 2 --machine_rank 0 --main_process_ip $head",
    "--multi_gpu --config_file /tmp/node.yaml --num_machines 2 --main_process_ip $head",
    "--use_deepspeed --num_machines 2 --deepspeed_hostfile hf --main_process_ip $head",
])
def test_machine_rank_of_a_launch_on_every_node(options: str) -> None:
    out = found(two(accelerate("--multi_gpu --num_machines 2 --num_processes 8 --main_process_ip $head")), "HPC116")
    assert len(out) == 1 and "without --machine_rank" in out[0] and "TypeError" in out[0]
    assert not found(two(accelerate(options)), "HPC116")


@pytest.mark.parametrize("text,reported", [
    (two(accelerate(GOOD.replace("--num_processes 8", "--num_processes 16"))), "starts 8 processes on each machine"),
    (ONE + "accelerate launch --multi_gpu --num_processes 8 train.py\n", "use --num_processes 4"),
])
def test_num_processes_is_the_total_over_all_machines(text: str, reported: str) -> None:
    out = found(text, "HPC108")
    assert len(out) == 1 and reported in out[0]


@pytest.mark.parametrize("launch", [
    "accelerate launch --multi_gpu --num_processes 4 train.py",
    "accelerate launch --config_file c.yaml --num_processes 8 train.py",     # the file's --num_machines
    "accelerate launch --cpu --num_processes 8 train.py",
])
def test_num_processes_within_the_gpus_or_not_known(launch: str) -> None:
    assert found(ONE + "accelerate launch --multi_gpu --num_processes 8 train.py\n", "HPC108")
    assert not found(ONE + launch + "\n", "HPC108")


# --------------------------------------------------------------------------------------------
# python -m torch.distributed.launch inside bash -c is torchrun under its old name

LEGACY = ("srun bash -c 'python -m torch.distributed.launch --nproc_per_node=8 --nnodes=2 --node_rank=$SLURM_NODEID "
          "--master_addr=$head --master_port=29500 train.py'")


def test_the_deprecated_launcher_is_read_from_a_bash_c_script() -> None:
    step = read_script(two(LEGACY, tasks=4)).steps[0]
    assert step.wrapper == "bash -c" and step.chain.launcher is not None
    assert step.chain.launcher.nproc_per_node == "8"


def test_the_deprecated_launcher_in_bash_c_gets_torchruns_checks() -> None:
    codes = {f.code for f in lint(two(LEGACY, tasks=4))}
    assert {"HPC101", "HPC111"} <= codes
    container = two("srun apptainer exec --nv img_1.sif bash -c 'python -m torch.distributed.launch "
                    "--nproc_per_node=8 --nnodes=2 --node_rank=$SLURM_NODEID --master_addr=$head train.py'")
    assert found(container, "HPC108") and found(container, "HPC111")


# --------------------------------------------------------------------------------------------
# c10d ignores --master-addr: without --rdzv-endpoint every node meets itself

C10D = "srun torchrun --nnodes=2 --nproc-per-node=4 --master_addr=$head --master_port=29400 --rdzv_backend=c10d train.py"


def test_master_addr_with_c10d_and_no_endpoint_is_the_localhost_hang() -> None:
    out = found(two(C10D), "HPC103")
    assert len(out) == 1 and "ignored by the c10d rendezvous" in out[0] and "$head:29400" in out[0]
    new, fixed = fix_script(two(C10D))
    assert "HPC103" in [f.code for f in fixed] and "rdzv_endpoint=$head:29400" in new
    assert "master_addr" not in new and not found(new, "HPC103")


@pytest.mark.parametrize("step", [
    C10D.replace("--rdzv_backend=c10d", "--rdzv_endpoint=$head:29400 --rdzv_backend=c10d"),
    C10D.replace(" --rdzv_backend=c10d", ""),                 # static: --master-addr is the rendezvous host
])
def test_master_addr_where_torchrun_reads_a_host(step: str) -> None:
    assert found(two(C10D), "HPC103")
    assert not found(two(step), "HPC103")


# --------------------------------------------------------------------------------------------
# deepspeed: its multi-node launcher inside a container, and counts beyond the job's

PDSH = "apptainer exec --nv ds_0.14.sif deepspeed --hostfile hostfile --num_gpus 4 train.py --deepspeed ds.json"


@pytest.mark.parametrize("text", [
    two(PDSH),
    two(PDSH.replace("--hostfile hostfile", "--hostfile hostfile --launcher openmpi")),
    two("apptainer exec a.sif accelerate launch --use_deepspeed --num_machines 2 --num_processes 8 "
        "--deepspeed_hostfile hf --main_process_ip $head train.py"),
])
def test_deepspeeds_multi_node_launcher_inside_a_container(text: str) -> None:
    out = found(text, "HPC214")
    assert len(out) == 1 and "outside the container" in out[0]


@pytest.mark.parametrize("text", [
    two(PDSH.replace("--hostfile hostfile", "--hostfile hostfile --launcher slurm")),
    two("srun bash -c '" + PDSH.replace("--hostfile", "--no_ssh --node_rank=$SLURM_NODEID --hostfile") + "'"),
    two(PDSH.replace("--hostfile hostfile ", "")),     # no hostfile: this node only
    ONE + PDSH + "\n",
])
def test_deepspeed_in_a_container_started_per_node_or_on_one_node(text: str) -> None:
    assert found(two(PDSH), "HPC214")
    assert not found(text, "HPC214")


@pytest.mark.parametrize("bad,good,code,says", [
    ("deepspeed --num_gpus 8 train.py", "deepspeed --num_gpus 4 train.py", "HPC108", "use --num_gpus 4"),
    ("deepspeed --num_gpus 8 train.py", "deepspeed --num_gpus=$GPUS train.py", "HPC108", "invalid device ordinal"),
    ("deepspeed --num_nodes 2 train.py", "deepspeed --num_nodes 1 train.py", "HPC112", "Num nodes is >1"),
])
def test_deepspeed_counts_beyond_a_one_node_job(bad: str, good: str, code: str, says: str) -> None:
    out = found(ONE + bad + "\n", code)
    assert len(out) == 1 and says in out[0]
    assert not found(ONE + good + "\n", code)


def test_deepspeed_num_nodes_beyond_the_jobs_nodes() -> None:
    out = found(two("deepspeed --hostfile hf --num_nodes 4 --num_gpus 4 train.py"), "HPC112")
    assert len(out) == 1 and "first 4 hosts of its hostfile" in out[0] and "use --num_nodes 2" in out[0]
    assert not found(two("deepspeed --hostfile hf --num_nodes 2 --num_gpus 4 train.py"), "HPC112")


def test_deepspeed_on_every_node_says_what_each_copy_does() -> None:
    """DeepSpeed's runner: without a hostfile each copy uses its own node's GPUs (master 127.0.0.1) and trains
    alone; with one, each starts the workers of every host in it."""
    alone = found(two("srun deepspeed train.py --deepspeed ds.json"), "HPC117")
    assert len(alone) == 1 and "trains alone" in alone[0] and "never communicate" in alone[0]
    every = found(two("srun deepspeed --hostfile hf train.py --deepspeed ds.json"), "HPC117")
    assert len(every) == 1 and "every node in it" in every[0]


# --------------------------------------------------------------------------------------------
# HPC106: only a number is a fixed port

@pytest.mark.parametrize("setup,port", [
    ("MASTER_PORT=$((20000 + SLURM_JOB_ID % 10000))\n", "$MASTER_PORT"),
    ("", "${SLURM_JOB_ID: -4}"),
    ("MASTER_PORT=$(shuf -i 20000-30000 -n 1)\n", "$MASTER_PORT"),
])
def test_a_port_derived_from_the_job_is_not_fixed(setup: str, port: str) -> None:
    launch = "torchrun --nnodes=1 --nproc-per-node=4 --master-addr=127.0.0.1 --master-port={} train.py\n"
    assert not found(ONE + setup + launch.format(port), "HPC106")
    out = found(ONE + "MASTER_PORT=29500\n" + launch.format("$MASTER_PORT"), "HPC106")
    assert len(out) == 1 and "fixed port 29500" in out[0]   # the number, not the variable's name
