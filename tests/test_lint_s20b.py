"""Session 20, second lint round (a real-scripts audit): launchers run as ``python -u -m …`` (any interpreter
options) seen by every launcher check and named as written, an image under a literal /home/NAME (HPC206),
horovodrun given fewer slots than -np (HPC137), the wording of HPC507 and HPC528, and HPC508 left alone where the
looked-up value is overwritten before it is read."""

from __future__ import annotations

import dataclasses

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- 1. python -u -m accelerate.commands.launch is accelerate launch ----------------------------------------------

ACCEL_PER_TASK = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:8
#SBATCH --time=01:00:00
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun bash -c "PY -m accelerate.commands.launch --num_processes 16 --num_machines 2 --machine_rank \\$SLURM_NODEID \
--main_process_ip $head --main_process_port 29500 train.py"
"""


@pytest.mark.parametrize("python", ["python", "python -u", "python3 -u", "python -O", "python3 -X faulthandler",
                                    "python -W ignore", "python -Wignore -B", "/opt/conda/bin/python3.11 -u"])
def test_accelerate_run_through_python_with_options_is_seen(python):
    hits = found(ACCEL_PER_TASK.replace("PY", python), "HPC101")
    assert [n for n, _ in hits] == [7]
    assert "srun starts 8 accelerate launchers on each node" in hits[0][1]


SAME_RANK = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=8
#SBATCH --time=01:00:00
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun --cpus-per-task=8 PY -m accelerate.commands.launch --num_processes 8 --num_machines 2 --machine_rank 0 \
--main_process_ip $head --main_process_port 29500 train.py
"""


@pytest.mark.parametrize("python", ["python", "python -u", "python3 -u -X dev"])
def test_same_machine_rank_is_found_through_interpreter_options(python):
    hits = found(SAME_RANK.replace("PY", python), "HPC116")
    assert [n for n, _ in hits] == [8] and "each with --machine_rank 0" in hits[0][1]
    fixed = SAME_RANK.replace("PY", python).replace("--machine_rank 0", '--machine_rank "$SLURM_NODEID"')
    assert found(fixed, "HPC116") == []


VLLM_TP8 = """#!/bin/bash
#SBATCH -N 1
#SBATCH --ntasks-per-node 1
#SBATCH --gres gpu:4
#SBATCH --time=01:00:00
PY -m vllm.entrypoints.openai.api_server --model /models/llama --tensor-parallel-size 8 --port 58111
"""


@pytest.mark.parametrize("python", ["python -u", "python3 -u -X faulthandler", "python"])
def test_hpc139_quotes_the_server_command_as_written(python):
    hits = found(VLLM_TP8.replace("PY", python), "HPC139")
    assert [n for n, _ in hits] == [6]
    assert hits[0][1].startswith(f"{python} -m vllm.entrypoints.openai.api_server --tensor-parallel-size 8 needs 8 "
                                 "GPUs")


def test_a_background_server_behind_valued_interpreter_options_is_seen():
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n"
            "srun python -X faulthandler -m vllm.entrypoints.openai.api_server --model m &\n"
            "sleep 60\npython bench.py\nwait\n")
    hits = found(text, "HPC539")
    assert [n for n, _ in hits] == [7]
    assert "srun python -X faulthandler -m vllm.entrypoints.openai.api_server" in hits[0][1]


# --- 2. HPC206: a literal /home/NAME path -------------------------------------------------------------------------

def _image(path: str) -> str:
    return f"#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\napptainer exec --nv {path} python train.py\n"


def test_an_image_in_a_literal_home_directory_is_reported_with_its_doubt():
    hits = found(_image("/home/alice/containers/main.sif"), "HPC206")
    assert [n for n, _ in hits] == [4]
    message = hits[0][1]
    assert message.startswith("the image /home/alice/containers/main.sif is in /home/alice, by its name a home "
                              "directory (small quota, slow); keep images on scratch")
    assert message.endswith("(if /home/alice is project storage on this site, ignore this)")


@pytest.mark.parametrize("path", ["/home/software/singularity/tf26.simg", "/home/share/images/x.sif",
                                  "/home/projects/ml/x.sif", "/scratch/alice/x.sif", "/home/x.sif",
                                  "/homes/alice/x.sif", "/home/Shared_Data/x.sif"])
def test_shared_home_folders_and_other_paths_are_left_alone(path):
    assert found(_image(path), "HPC206") == []


def test_the_user_home_keeps_its_own_wording():
    [(_, message)] = found(_image("/home/$USER/images/x.sif"), "HPC206")
    assert "is under $HOME (small quota, slow)" in message and "ignore this" not in message


def test_a_profile_whose_storage_lives_under_home_is_believed():
    text = _image("/home/scratch2/alice/x.sif")
    assert [n for n, _ in found(text, "HPC206", "generic")] == [4]
    site = dataclasses.replace(load_profile("generic"), scratch="/home/scratch2/$USER")
    assert found(text, "HPC206", site) == []


def test_a_pull_into_a_literal_home_is_reported():
    text = ("#!/bin/bash\n#SBATCH --time=01:00:00\n"
            "apptainer pull --dir /home/bob/images docker://pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime\n")
    [(line, message)] = found(text, "HPC206")
    assert line == 3 and "pulled into /home/bob/images, in /home/bob, by its name a home directory" in message


# --- 3. HPC137: horovodrun asks for more processes than its hosts' slots ------------------------------------------

HVD_BUILT = """#!/bin/bash
#SBATCH -n 2
#SBATCH --ntasks-per-node=2
#SBATCH --gres=gpu:2
#SBATCH -t 0:10:00
NODE_LIST=$( scontrol show hostname $SLURM_JOB_NODELIST | sed -z 's/\\n/\\:1,/g' )
NODE_LIST=${NODE_LIST%?}
horovodrun -np 2 --hosts $NODE_LIST python cifar10_horovod.py
"""


def test_horovodrun_with_one_slot_per_node_for_two_tasks_per_node():
    [(line, message)] = found(HVD_BUILT, "HPC140")
    assert line == 8
    assert message.startswith("horovodrun -np 2 asks for 2 processes, but --hosts $NODE_LIST gives 1 slot (the list "
                              "line 6 builds, :1 after the job's node)")
    assert "'Requested more processes (2) than there are available slots (1)'" in message
    assert "give each host the job's 2 tasks per node as its slots (:2)" in message
    assert found(HVD_BUILT.replace("\\:1,", "\\:2,"), "HPC140") == []


TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=4\n"
BUILT = 'hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed \'s/$/:SLOTS/\' | paste -sd,)\n'


@pytest.mark.parametrize("body, short", [
    (BUILT.replace("SLOTS", "1") + 'horovodrun -np 8 -H "$hosts" python train.py\n', 2),
    ("#SBATCH --ntasks=8\n" + BUILT.replace("SLOTS", "2") + 'horovodrun -np $SLURM_NTASKS -H "$hosts" python t.py\n',
     4),
    (BUILT.replace("SLOTS", "4") + 'horovodrun --num-proc=16 --hosts="$hosts" python train.py\n', 8),
    ("horovodrun -np 16 -H gpu01:4,gpu02:4 python train.py\n", 8),
])
def test_fewer_slots_than_processes(body, short):
    hits = [m for _, m in found(TWO_NODES + body, "HPC140") if "asks for" in m]
    assert len(hits) == 1 and f"gives {short} slots" in hits[0]


@pytest.mark.parametrize("body", [
    BUILT.replace("SLOTS", "4") + 'horovodrun -np 8 -H "$hosts" python train.py\n',
    BUILT.replace("SLOTS", "1") + 'horovodrun -np 2 -H "$hosts" python train.py\n',
    "horovodrun -np 8 -H gpu01:4,gpu02:4 python train.py\n",          # fixed hosts: the other finding only
    'horovodrun -np 8 -H "$HOSTS" python train.py\n',                   # a list the script does not build
    "horovodrun -np 8 python train.py\n",
    "mpirun -np 16 -H gpu01:4,gpu02:4 ./solver\n",                       # mpirun's slots: not this check
])
def test_enough_slots_or_unknown_counts_are_left_alone(body):
    assert [m for _, m in found(TWO_NODES + body, "HPC140") if "asks for" in m] == []


def test_a_node_count_slurm_chooses_is_not_guessed():
    job = "#!/bin/bash\n#SBATCH --nodes=1-4\n#SBATCH --ntasks-per-node=4\n"
    body = BUILT.replace("SLOTS", "1") + 'horovodrun -np 8 -H "$hosts" python train.py\n'
    assert found(job + body, "HPC140") == []


# --- 4. HPC507 and HPC528 name what runs --------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["python3 -m pip install --user deepspeed", "python -m pip install wandb",
                                     "python3 -u -m pip install wandb", "python3.11 -m pip install wandb"])
def test_hpc507_names_pip(command):
    [(line, message)] = found(f"#!/bin/bash\n#SBATCH --time=01:00:00\n{command}\npython train.py\n", "HPC507")
    assert line == 3 and message.startswith("pip install runs on every job")


def test_hpc507_still_names_conda():
    [(_, message)] = found("#!/bin/bash\nconda install -y numpy\npython train.py\n", "HPC507")
    assert message.startswith("conda install runs on every job")


FOUR_TASKS = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus=1\n"


@pytest.mark.parametrize("command, shown", [
    ("singularity exec --nv ../sandbox python -u ./train.py", "python -u ./train.py"),
    ("time -p singularity exec --bind /expanse --nv ../sandbox python -u ./train.py", "python -u ./train.py"),
    ("python3 -X faulthandler -u train.py --epochs 3", "python3 -X faulthandler -u train.py"),
    ("python -u -m mypkg.train --epochs 3", "python -u -m mypkg.train"),
    ("python train.py", "python train.py"),
])
def test_hpc528_names_the_script_or_module(command, shown):
    [(_, message)] = found(FOUR_TASKS + command + "\n", "HPC528")
    assert f"but {shown} runs once, in the batch shell" in message


def test_hpc528_leaves_pip_behind_interpreter_options_alone():
    assert found(FOUR_TASKS + "python -u -m pip install --no-index wandb\n", "HPC528") == []


# --- 5. HPC508: a looked-up value overwritten before it is read ---------------------------------------------------

SWEEP = """#!/bin/bash
#SBATCH --array=5-20
#SBATCH --time=01:00:00
ARRAY=(1e-5 1e-6 1e-7 1e-8 1e-9)
val=${ARRAY[$SLURM_ARRAY_TASK_ID]}
BETWEEN
python train.py --reward_weight=$val
"""


def test_a_value_overwritten_before_use_is_not_reported():
    assert found(SWEEP.replace("BETWEEN", "val=$SLURM_ARRAY_TASK_ID"), "HPC508") == []
    assert found(SWEEP.replace("BETWEEN", "TAG=sweep\nval=$SLURM_ARRAY_TASK_ID"), "HPC508") == []


@pytest.mark.parametrize("between", [
    "echo $val\nval=$SLURM_ARRAY_TASK_ID",                    # read before it is overwritten
    "val=${val:-0.1}",                                        # the overwrite reads it
    'if [ -z "$x" ]; then val=$SLURM_ARRAY_TASK_ID; fi',     # overwritten only sometimes
    "other=$(cat file)\nval=$SLURM_ARRAY_TASK_ID",            # a command runs in between
    "true",                                                   # never overwritten
])
def test_a_value_that_may_be_read_is_still_reported(between):
    assert [n for n, _ in found(SWEEP.replace("BETWEEN", between), "HPC508")] == [5]
