"""Session 12's changes to existing checks, from audits of real scripts: torchrun's default (static) rendezvous
at an endpoint (HPC105), a node rank the rendezvous ignores (HPC502), and the others below."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint

TWO = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n" \
      'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- HPC105: which options the rendezvous at --rdzv-endpoint ignores -------------------------------------------

def test_the_static_rendezvous_at_an_endpoint_ignores_only_the_master_address():
    # torchrun's default backend is static: it meets at --rdzv-endpoint, and still reads each node's --node-rank
    text = TWO + ('srun torchrun --nnodes=2 --nproc-per-node=4 --node_rank="$RANK_OF_NODE" --master_addr="$head" '
                  '--master_port=29500 --rdzv_endpoint="$head:29500" train.py\n')
    hits = found(text, "HPC105")
    assert len(hits) == 1 and "--master_addr, --master_port are ignored by the static rendezvous" in hits[0][1]
    new, fixed = fix_script(text)
    assert [f.code for f in fixed] == ["HPC105"] and "--node_rank=$RANK_OF_NODE" in new and "master" not in new
    assert not found(new, "HPC116")  # the node rank the static rendezvous needs is kept


def test_c10d_ignores_the_node_rank_too():
    text = TWO + 'srun torchrun --nnodes=2 --nproc-per-node=4 --node-rank=0 --rdzv-backend=c10d ' \
                 '--rdzv-endpoint="$head:29500" train.py\n'
    assert "--node-rank is ignored by the c10d rendezvous" in found(text, "HPC105")[0][1]


# --- HPC502: a node rank the rendezvous ignores is not a per-task mistake --------------------------------------

C10D_ACCELERATE = ("srun accelerate launch --multi_gpu --num_processes 8 --num_machines 2 --machine_rank {rank} "
                   '--rdzv_backend {backend} --main_process_ip "$head" --main_process_port 29500 train.py\n')


@pytest.mark.parametrize("before, rank", [
    ("", "$SLURM_NODEID"),
    ("NODE_RANK=$SLURM_PROCID\n", "$NODE_RANK"),
    ("NODE_RANK=${SLURM_NODEID}\n", '"${NODE_RANK}"'),
])
def test_accelerate_machine_rank_with_c10d_is_left_alone(before, rank):
    # accelerate hands --machine_rank to torchrun as its node rank, which c10d does not read
    assert found(TWO + before + C10D_ACCELERATE.format(rank=rank, backend="c10d"), "HPC502") == []


@pytest.mark.parametrize("before, rank, backend", [
    ("", "$SLURM_NODEID", "static"),              # the static rendezvous reads it: every node is rank 0
    ("NODE_RANK=$SLURM_PROCID\n", "$NODE_RANK", "static"),
    ("export NODE_RANK=$SLURM_PROCID\n", "$NODE_RANK", "c10d"),  # exported: a program may read NODE_RANK itself
    ("NODE_RANK=$SLURM_PROCID\necho $NODE_RANK > rank.txt\n", "$NODE_RANK", "c10d"),  # read elsewhere too
])
def test_a_node_rank_that_is_read_stays_an_error(before, rank, backend):
    assert found(TWO + before + C10D_ACCELERATE.format(rank=rank, backend=backend), "HPC502")


def test_a_torchrun_node_rank_held_in_a_variable_with_c10d_is_left_alone():
    text = TWO + ("NODE_RANK=$SLURM_NODEID\nsrun torchrun --nnodes=2 --nproc-per-node=4 --node_rank=$NODE_RANK "
                  '--rdzv_backend=c10d --rdzv_endpoint="$head:29500" train.py\n')
    assert found(text, "HPC502") == [] and found(text, "HPC105")


# --- HPC530: --signal=B:… with no trap: the batch shell dies of the warning ------------------------------------

SIGNAL = "#!/bin/bash\n#SBATCH --time=24:00:00\n#SBATCH --requeue\n#SBATCH --signal={signal}\n"


@pytest.mark.parametrize("signal, body, said", [
    ("B:USR1@120", "srun python train.py\n", "it kills bash 120 seconds before the time limit"),
    ("B:SIGUSR2", "srun python train.py &\nwait\n", "it kills bash 60 seconds"),    # Slurm's default: 60 s
    ("RB:TERM@300", "python train.py\n", "sends TERM"),
    ("B:10@90", "srun python train.py\n", "sends USR1"),                          # by number
    ("B:USR1@90", "trap 'kill -USR1 $pid' USR2\nsrun python train.py & pid=$!\nwait\n", "sends USR1"),  # another
])
def test_a_signal_to_the_batch_shell_with_no_trap(signal, body, said):
    hits = found(SIGNAL.format(signal=signal) + body, "HPC530")
    assert len(hits) == 1 and hits[0][0] == 4 and said in hits[0][1], hits


@pytest.mark.parametrize("signal, body", [
    ("B:USR1@120", "trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1\nsrun python train.py &\nwait\n"),
    ("B:USR1@120", "handler() { scontrol requeue \"$SLURM_JOB_ID\"; }\ntrap handler SIGUSR1\nsrun python t.py &\nwait\n"),
    ("B:USR1@120", "trap '' USR1\nsrun python train.py\n"),                          # ignored: the shell lives on
    ("B:USR1@120", "exec python train.py\n"),                                          # the program gets it
    ("B:USR1@60", ". /usr/common/software/variable-time-job/setup.sh\nrequeue_job func_trap USR1\nsrun a.out &\nwait\n"),
    ("B:USR1@60", "source ./requeue_handler.sh\nsrun python train.py &\nwait\n"),
    ("USR1@120", "srun python train.py\n"),                                            # to the steps: HPC517's
    ("B:CHLD@60", "srun python train.py\n"),                                           # ignored by default
    ("B:USR1@60", "setup_traps() { trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1; }\nsetup_traps\n"
                  "srun python train.py &\nwait\n"),                                  # a trap in a function's body
])
def test_a_trapped_or_handed_on_signal_is_left_alone(signal, body):
    assert found(SIGNAL.format(signal=signal) + body, "HPC530") == []


def test_a_python_batch_script_is_not_a_shell():
    assert found("#!/usr/bin/env python3\n#SBATCH --signal=B:USR1@60\nimport time\n", "HPC530") == []


# --- HPC518: steps placed on nodes by name are a head and its workers, not seeds on one node -------------------

RAY = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
srun --nodes=1 --ntasks=1 {pin}"${{nodes[0]}}" ray start --head --port=6379 --block &
for ((i = 1; i < SLURM_JOB_NUM_NODES; i++)); do
    srun --nodes=1 --ntasks=1 {pin}"${{nodes[$i]}}" ray start --address "${{nodes[0]}}:6379" --block &
done
sleep 10
python train_with_ray.py
"""


@pytest.mark.parametrize("pin", ["-w ", "--nodelist=", "-w"])
def test_a_ray_head_and_workers_placed_by_node_are_left_alone(pin):
    assert found(RAY.format(pin=pin), "HPC518") == []


def test_seeds_side_by_side_on_one_node_are_still_reported():
    seeds = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\nfor s in 0 1 2 3; do\n  srun -n 1 python t.py $s &\ndone\nwait\n"
    assert found(seeds, "HPC518")


# --- HPC202: --exclusive is allocated the node's GPUs -----------------------------------------------------------

EXCLUSIVE = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --exclusive\n#SBATCH --partition={part}\n" \
            "{srun}apptainer exec --nv pytorch_2.3.sif python train.py\n"


@pytest.mark.parametrize("part, profile", [("gpu", None), ("gpu", "generic"), ("batch", None)])
@pytest.mark.parametrize("srun", ["", "srun --gpus-per-node=4 ", "srun --gres=gpu:4 "])
def test_an_exclusive_job_holds_the_gpus_of_its_node(part, profile, srun):
    assert found(EXCLUSIVE.format(part=part, srun=srun), "HPC202", profile) == []


def test_a_step_of_an_exclusive_job_gets_only_the_gpus_it_asks_for():
    # srun(1) --gres: a step gets the job's generic resources "except those implicitly requested when a job is exclusive"
    hits = found(EXCLUSIVE.format(part="batch", srun="srun "), "HPC202")
    assert len(hits) == 1 and "this srun step gets no GPU" in hits[0][1]


def test_an_exclusive_job_on_a_partition_without_gpus_is_still_reported():
    # the generic profile's cpu partition has no GPUs: --nv there finds none, exclusive or not
    assert found(EXCLUSIVE.format(part="cpu", srun=""), "HPC202", "generic")


# --- HPC101: why srun's own --ntasks-per-node=1 is not enough ---------------------------------------------------

@pytest.mark.parametrize("launch", [
    "srun --nodes=2 --ntasks-per-node=1 bash -c 'accelerate launch --multi_gpu --num_machines 2 --num_processes 4 "
    "--machine_rank \"$SLURM_NODEID\" --main_process_ip h --main_process_port 29500 train.py'",
    'srun --ntasks-per-node=1 torchrun --nnodes=2 --nproc-per-node=2 --rdzv-backend=c10d --rdzv-endpoint=h:29500 t.py',
])
def test_hpc101_says_srun_takes_the_jobs_task_count(launch):
    text = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2\n#SBATCH --gres=gpu:2\n" + launch + "\n"
    hits = found(text, "HPC101")
    assert len(hits) == 1 and "srun takes the job's task count (SLURM_NTASKS=4) as its --ntasks, which wins over " \
                              "its own --ntasks-per-node=1" in hits[0][1], hits


@pytest.mark.parametrize("directives, asked, waits", [
    ("#SBATCH --ntasks=40\n", "the job asks for 40 tasks, but", "waits for 39 ranks"),
    ("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n", "the job asks for 4 tasks per node, but", "waits for 7 ranks"),
    ("#SBATCH --nodes=2\n#SBATCH --ntasks=8\n", "the job asks for 8 tasks on 2 nodes, but", "waits for 7 ranks"),
])
def test_hpc528_names_the_tasks_as_the_job_asks_for_them(directives, asked, waits):
    hits = found("#!/bin/bash\n" + directives + "python train.py\n", "HPC528")
    assert len(hits) == 1 and asked in hits[0][1] and waits in hits[0][1], hits


# --- HPC110: the fix's srun starts one launcher per node even where the job has several tasks per node ----------

@pytest.mark.parametrize("tasks, srun", [
    ("#SBATCH --ntasks-per-node=1\n", "srun --ntasks-per-node=1 torchrun"),
    ("#SBATCH --ntasks-per-node=48\n", "srun --ntasks=2 --ntasks-per-node=1 torchrun"),
    ("#SBATCH --ntasks=8\n", "srun --ntasks=2 --ntasks-per-node=1 torchrun"),
])
def test_hpc110_fix_needs_no_further_fix(tasks, srun):
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n" + tasks + "#SBATCH --gpus-per-node=4\n"
            'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
            'torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head:29500" train.py\n')
    new, fixed = fix_script(text)
    assert [f.code for f in fixed][:1] == ["HPC110"] and srun in new, new
    assert not [f for f in lint(new) if f.severity == "error"], new


# --- HPC518: steps that take only their share still cannot use more CPUs than the job holds ---------------------

LOOP = "for i in 1 2 3 4; do\n  srun {srun} Rscript run.R \"$i\" &\ndone\nwait\n"


@pytest.mark.parametrize("directives, srun, said", [
    ("#SBATCH -N 1\n#SBATCH --cpus-per-task=1\n", "-n 1", "the job holds 1 CPU and each step needs 1"),
    ("#SBATCH -N 1\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=4\n", "--exact -n 1 -c 4",
     "the job holds 4 CPUs and each step needs 4"),
])
def test_steps_that_cannot_run_together_in_the_jobs_cpus(directives, srun, said):
    hits = found("#!/bin/bash\n" + directives + LOOP.format(srun=srun), "HPC518")
    assert len(hits) == 1 and said in hits[0][1] and "one at a time" in hits[0][1], hits


@pytest.mark.parametrize("directives, srun", [
    ("#SBATCH -N 1\n#SBATCH --ntasks=4\n#SBATCH --cpus-per-task=1\n", "-n 1"),           # room for four
    ("#SBATCH -N 1\n#SBATCH --ntasks=2\n#SBATCH --cpus-per-task=4\n", "--exact -n 1 -c 4"),  # room for two
    ("#SBATCH -N 1\n#SBATCH --exclusive\n#SBATCH --cpus-per-task=1\n", "-n 1"),          # the whole node
    ("#SBATCH -N 1\n#SBATCH --cpus-per-task=1\n", "--overlap -n 1"),                        # they share
])
def test_steps_with_room_to_run_together_are_left_alone(directives, srun):
    assert found("#!/bin/bash\n" + directives + LOOP.format(srun=srun), "HPC518") == []


def test_steps_pinned_to_one_node_by_name_still_queue():
    # -w only picks the node: four seeds there still take the whole node each
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n#SBATCH --gres=gpu:4\nnode=$(hostname)\n"
            "for seed in 0 1 2 3; do\n  srun -w \"$node\" -n 1 python train.py --seed \"$seed\" &\ndone\nwait\n")
    assert [line for line, _ in found(text, "HPC518")] == [7]


def test_a_head_and_workers_picked_through_variables_are_left_alone():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gpus-per-node=4\nnodes=$(scontrol show hostnames "
            "\"$SLURM_JOB_NODELIST\")\nmapfile -t nodes_array <<< \"$nodes\"\nhead_node=${nodes_array[0]}\n"
            "srun --nodes=1 --ntasks=1 -w \"$head_node\" ray start --head --block &\n"
            "worker_num=$((SLURM_JOB_NUM_NODES - 1))\nfor ((i = 1; i <= worker_num; i++)); do\n"
            "  node_i=${nodes_array[$i]}\n  srun --nodes=1 --ntasks=1 -w \"$node_i\" ray start --address h:1 --block &\n"
            "done\npython driver.py\n")
    assert found(text, "HPC518") == []


# --- HPC127: only a step of several ranks that Open MPI 5 starts itself ---------------------------------------

@pytest.mark.parametrize("text", [
    "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\nmodule load openmpi/5.0.3\nsrun --mpi=pmi2 ./solver\n",
    "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\nmodule load openmpi/5.0.3\n"
    "srun -N 1 -n 1 --mpi=pmi2 bash -c \"mpirun -np 64 ./solver\"\n",
    "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=32\nmodule load openmpi/5.0.3\nmodule purge\n"
    "module load intel-oneapi-mpi/2021.10\nsrun --mpi=pmi2 ./solver\n",
])
def test_hpc127_leaves_single_tasks_mpirun_and_purged_modules_alone(text):
    assert found(text, "HPC127") == []


def test_hpc127_still_reports_open_mpi_5_loaded_after_a_purge():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=32\nmodule purge\nmodule load openmpi/5.0.3\n"
            "srun --mpi=pmi2 ./solver\n")
    assert [line for line, _ in found(text, "HPC127")] == [6]


# --- HPC128: the slots of a job without --ntasks ------------------------------------------------------------------

@pytest.mark.parametrize("directives, np, reported", [
    ("#SBATCH --nodes=1\n#SBATCH --cpus-per-task=8\n", "8", True),   # 8 CPUs ÷ 8 per task: one slot
    ("#SBATCH --nodes=1\n", "2", False),                              # a whole two-thread core: maybe two slots
    ("#SBATCH --nodes=1\n", "4", True),
    ("#SBATCH --nodes=1\n#SBATCH --exclusive\n", "64", False),        # a task for each CPU of the node
    ("#SBATCH --ntasks=16\n", "32", True),
])
def test_hpc128_counts_the_slots_slurm_gives(directives, np, reported):
    text = "#!/bin/bash\n" + directives + "module load openmpi/4.1.6\nmpirun -np " + np + " ./solver\n"
    assert bool(found(text, "HPC128")) == reported


def test_hpc128_quotes_the_option_as_written():
    text = "#!/bin/bash\n#SBATCH --ntasks=16\nmodule load openmpi/4.1.6\nmpiexec -n 32 ./solver\n"
    assert "mpiexec -n 32 asks for 32 ranks" in found(text, "HPC128")[0][1]


def test_hpc130_leaves_a_standalone_torchrun_alone():
    # --standalone picks a free port for its own rendezvous: the port given is never bound
    text = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gpus-per-node=4\ntorchrun --standalone --nproc-per-node=4 " \
           "--master-port=45000 train.py\n"
    assert found(text, "HPC130") == []


@pytest.mark.parametrize("name, option", [("node_rank", "--node_rank"), ("rank", "--node-rank")])
def test_a_rank_variable_named_like_the_option_is_still_expanded_once(name, option):
    # the static rendezvous reads --node_rank: $SLURM_NODEID, expanded by the batch shell, is 0 on every node
    text = TWO + (f"{name}=$SLURM_NODEID\nsrun torchrun --nnodes=2 --nproc-per-node=4 {option}=${name} "
                  '--master_addr="$head" --master_port=29500 train.py\n')
    assert [line for line, _ in found(text, "HPC502")] == [6]


def test_hpc113_fix_keeps_one_launcher_per_node_in_a_job_of_many_tasks():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=48\n#SBATCH --gpus-per-node=4\n"
            "torchrun --standalone --nproc-per-node=4 train.py &\nwait\n")
    new, fixed = fix_script(text)
    assert "srun --ntasks=2 --ntasks-per-node=1 torchrun --nnodes=2" in new, new
    assert not [f for f in lint(new) if f.severity == "error"], new


def test_hpc519_leaves_the_wait_to_write_when_a_trap_waits_for_the_warning():
    # a plain wait there would return when the trap runs (HPC529): no fix writes it
    text = ("#!/bin/bash\n#SBATCH --signal=B:USR1@60\ntrap 'kill -USR1 \"$pid\"' USR1\nsrun ./time-loop.py &\n"
            "pid=$!\n")
    assert found(text, "HPC519")
    new, fixed = fix_script(text)
    assert "HPC519" not in [f.code for f in fixed]


# --- network rules: what the real-script audit found they missed -----------------------------------------------

@pytest.mark.parametrize("directives, engines", [
    ("#SBATCH -n 64\n#SBATCH --ntasks-per-node=8\n", "srun ipengine &"),          # 8 nodes, by the task counts
    ("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=16\n", "srun bash -c 'ipengine --log-to-file' &"),
])
def test_hpc129_sees_engines_on_other_nodes(directives, engines):
    text = "#!/bin/bash\n" + directives + "ipcontroller &\nsleep 10\n" + engines + "\nsleep 30\npython run.py\n"
    assert [line for line, _ in found(text, "HPC129")] == [4]


def test_hpc129_leaves_a_controller_in_a_plain_bash_c_to_its_own_check():
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=16\nbash -c 'ipcontroller --ip=\"*\"' &\n"
            "sleep 10\nsrun ipengine &\nsleep 30\npython run.py\n")
    assert found(text, "HPC129") == []


@pytest.mark.parametrize("gpus", ["--gpus=h100:8", "--gpus-per-node=h100:8"])
def test_hpc132_reads_the_gpu_type_from_gpus(gpus):
    text = f"#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH {gpus}\nexport NCCL_P2P_DISABLE=1\n" \
           "torchrun --standalone --nproc-per-node=8 train.py\n"
    assert [line for line, _ in found(text, "HPC132")] == [4]
