"""Lint follow-ups of the session-17 audits: HPC137 (mpirun or horovodrun given fixed hosts instead of the job's
nodes) and HPC107 left alone where ${SLURM_GPUS_PER_NODE#*:} strips the GPU type."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=4\n"


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, select=[code])]


# --- HPC137: a launcher's host list that is not the job's ---------------------------------------------------------

@pytest.mark.parametrize("command, shown", [
    ("horovodrun -np 8 -H gpu01:4,gpu02:4 python train.py", "horovodrun -H gpu01:4,gpu02:4"),
    ("horovodrun --gloo -np 8 --hosts=gpu01:4,gpu02:4 python train.py", "horovodrun --hosts gpu01:4,gpu02:4"),
    ("mpirun -np 8 --host node1:4,node2:4 ./solver", "mpirun --host node1:4,node2:4"),
    ("apptainer exec image.sif horovodrun -np 8 -H gpu01:4,gpu02:4 python train.py",
     "horovodrun -H gpu01:4,gpu02:4"),
    ("bash -c 'horovodrun -np 8 -H gpu01:4,gpu02:4 python train.py'", "horovodrun -H gpu01:4,gpu02:4"),
])
def test_a_host_list_written_into_the_script_is_reported(command, shown):
    hits = found(TWO_NODES + command + "\n", "HPC137")
    assert [n for n, _ in hits] == [5]
    assert hits[0][1].startswith(shown + " names fixed hosts, not the nodes Slurm gives this job")
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in hits[0][1]


def test_a_hostfile_the_job_does_not_write_is_reported_on_several_nodes_only():
    hits = found(TWO_NODES + "mpirun -np 8 --hostfile hosts.txt ./solver\n", "HPC137")
    assert [n for n, _ in hits] == [5]
    assert "the script does not write hosts.txt from the job's nodes" in hits[0][1]
    one_node = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=8\n"
    assert found(one_node + "mpirun -np 8 --hostfile hosts.txt ./solver\n", "HPC137") == []


@pytest.mark.parametrize("body", [
    'hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed \'s/$/:4/\' | paste -sd,)\n'
    'horovodrun -np 8 -H "$hosts" python train.py\n',
    "horovodrun -np 4 -H localhost:4 python train.py\n",
    "mpirun -np 8 -H localhost:8 ./solver\n",
    'scontrol show hostnames "$SLURM_JOB_NODELIST" > hosts.txt\nmpirun -np 8 --hostfile hosts.txt ./solver\n',
    'scontrol show hostnames "$SLURM_JOB_NODELIST" > "hosts-$SLURM_JOB_ID"\n'
    'mpirun -np 8 --hostfile "hosts-$SLURM_JOB_ID" ./solver\n',
    'mpirun -np 8 --hostfile "$HOSTFILE" ./solver\n',
    "mpirun -np 8 ./solver -H gpu01\n",                    # the program's own option, not mpirun's
    "horovodrun -np 8 python train.py --hosts gpu01,gpu02\n",
    "srun --mpi=pmix python train.py\n",
    "mpiexec -machinefile <(srun hostname | sort -u) ./monitor\n",      # a process substitution: the job's nodes
    "mpirun -np 8 --hostfile=<(scontrol show hostnames) ./solver\n",
    "scontrol show hostnames >| hosts.txt\nmpirun -np 8 --hostfile=hosts.txt ./solver\n",
    'HF=hosts.txt\nscontrol show hostnames > "$HF"\nhorovodrun -np 8 --hostfile hosts.txt python train.py\n',
])
def test_host_lists_the_job_builds_or_does_not_need_are_left_alone(body):
    assert found(TWO_NODES + body, "HPC137") == []


def test_a_job_pinned_to_its_nodes_may_name_them():
    pinned = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH -w gpu01,gpu02\n#SBATCH --gpus-per-node=4\n"
    assert found(pinned + "horovodrun -np 8 -H gpu01:4,gpu02:4 python train.py\n", "HPC137") == []
    assert found(pinned.replace("-w ", "--nodelist=") + "mpirun -H gpu01,gpu02 ./solver\n", "HPC137") == []


# --- HPC107: ${SLURM_GPUS_PER_NODE#*:} ----------------------------------------------------------------------------

TYPED = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --gpus-per-node=A100:4\n"


@pytest.mark.parametrize("ref", ["${SLURM_GPUS_PER_NODE#*:}", "${SLURM_GPUS_PER_NODE##*:}"])
def test_the_type_stripped_from_a_typed_request_is_a_number(ref):
    assert found(TYPED + f"NGPUS={ref}\nsrun --ntasks-per-node=$NGPUS python ddp.py\n", "HPC107") == []


def test_the_variable_itself_and_a_stripped_unset_one_are_still_reported():
    use = "srun --ntasks-per-node=$NGPUS python ddp.py\n"
    hits = found(TYPED + "NGPUS=$SLURM_GPUS_PER_NODE\n" + use, "HPC107")
    assert [n for n, _ in hits] == [5] and "is A100:4 here" in hits[0][1]   # where the value is used as a number
    gres = "#!/bin/bash\n#SBATCH --gres=gpu:4\n"
    hits = found(gres + "NGPUS=${SLURM_GPUS_PER_NODE#*:}\n" + use, "HPC107")
    assert [n for n, _ in hits] == [4] and "is set only when the job asks for GPUs with --gpus-per-node" in hits[0][1]


# --- HPC136 on a partition with CPUs per GPU of its own ------------------------------------------------------------

def _gpu_site(**fields):
    from hpcwidgets.profiles import load_profile
    from hpcwidgets.spec.profile import Partition
    gpu = Partition(name="gpu", max_time="2-00:00:00", cpus_per_node=64, mem_per_node="480G", gpus_per_node=4,
                    gpu_types=("a100",), is_default=True, **fields)
    return load_profile("generic").replace(partitions=(gpu,), default_partition="gpu", default_gpu_partition="gpu")


FOUR_WORKERS = ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\n"
                "#SBATCH --time=01:00:00\ntorchrun --standalone --nproc-per-node=4 train.py\n")


def test_hpc136_asks_for_the_gpus_share_of_cpus_at_most_the_sites_limit():
    (hit,) = [f for f in lint(FOUR_WORKERS, _gpu_site(), select=["HPC136"])]
    assert "--cpus-per-task=64" in hit.message                     # 16 CPUs for each of 4 GPUs
    (hit,) = [f for f in lint(FOUR_WORKERS, _gpu_site(max_cpus_per_gpu=10), select=["HPC136"])]
    assert "--cpus-per-task=40" in hit.message                     # the site allows 10 per GPU
    assert not [f for f in lint(FOUR_WORKERS.replace("#SBATCH --time", "#SBATCH --cpus-per-task=40\n#SBATCH --time"),
                                 _gpu_site(max_cpus_per_gpu=10), select=["HPC406"])]


def test_hpc136_is_quiet_where_the_partition_gives_cpus_per_gpu_by_default():
    assert not lint(FOUR_WORKERS, _gpu_site(def_cpus_per_gpu=8), select=["HPC136"])
