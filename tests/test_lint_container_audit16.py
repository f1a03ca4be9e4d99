"""Two container misses from the session-16 audit (M1, M2).

HPC224: ch-run shows only what is bound in (and $HOME only with --home since Charliecloud 0.31), so a home directory
written out (/home/NAME, ~, ~NAME) in the program's words, or any host folder given to -c/--cd, is missing inside:
ch-run's run_user_command() stops with "can't cd to DIR" before the command starts.
HPC202: an instance started with --nv/--rocm/--nvccli in a job that asks for no GPU is reported at its start, with
the quiet cases HPC202 has for exec.
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def hpc224(body: str) -> list[str]:
    return [f.message for f in lint(HEAD + body) if f.code == "HPC224"]


# --- HPC224: -c/--cd into a host folder, and home directories written out -------------------------------------------

@pytest.mark.parametrize("body, says", [
    ("ch-run -c /home/u/proj /scratch/img -- python3 run.py\n", "can't cd to /home/u/proj"),
    ("ch-run --cd=/home/u/proj /scratch/img -- python3 run.py\n", "can't cd to /home/u/proj"),
    ("ch-run -w -c /home/jankovys/JIDENN ./../cuda -- python3 runMe.py\n", "can't cd to /home/jankovys/JIDENN"),
    ('ch-run -c "$HOME/proj" /scratch/img -- python3 run.py\n', "can't cd to $HOME/proj"),
    ('ch-run -c "$SCRATCH/proj" /scratch/img -- python3 run.py\n', "can't cd to $SCRATCH/proj"),
    ('srun ch-run --cd "$PWD" /scratch/img -- python3 run.py\n', "can't cd to $PWD"),
    ("ch-run /scratch/img -- python3 /home/u/proj/run.py\n", "/home/u/proj/run.py is in a host folder"),
    ("ch-run /scratch/img -- /home/u/bin/solver --in in.dat\n", "/home/u/bin/solver is in a host folder"),
    ("ch-run /scratch/img -- python3 /opt/run.py --config=/home/u/cfg.yaml\n", "/home/u/cfg.yaml is in a host"),
    ("ch-run /scratch/img -- python3 ~/proj/run.py\n", "~/proj/run.py is in a host folder"),
    ("ch-run /scratch/img -- python3 ~bob/proj/run.py\n", "~bob/proj/run.py is in a host folder"),
])
def test_a_host_home_or_cd_folder_ch_run_cannot_see(body, says):
    found = hpc224(body)
    assert len(found) == 1 and says in found[0], found
    home = "$SCRATCH" not in body and "$PWD" not in body
    assert ("only with --home" in found[0]) is home


def test_the_advice_binds_the_folder_as_bash_will_expand_it():
    """A ~ inside double quotes stays a literal ~: the suggested bind spells the home as "$HOME", and leaves ~NAME
    unquoted for bash to expand."""
    [mine] = hpc224("ch-run /scratch/img -- python3 ~/proj/run.py\n")
    assert 'ch-run -b "$HOME/proj:/mnt/0"' in mine
    [bobs] = hpc224("ch-run /scratch/img -- python3 ~bob/proj/run.py\n")
    assert "ch-run -b ~bob/proj:/mnt/0 " in bobs
    [cd] = hpc224("ch-run -c /home/u/proj /scratch/img -- python3 run.py\n")
    assert 'ch-run -b "/home/u/proj:/mnt/0" -c /mnt/0' in cd


def test_a_folder_bound_elsewhere_is_named_where_it_is():
    [found] = hpc224('ch-run -b "$PWD:/mnt/0" -c "$PWD" /scratch/img -- python3 run.py\n')
    assert "can't cd to $PWD" in found and "it is bound at /mnt/0: cd there (-c /mnt/0)" in found


@pytest.mark.parametrize("body", [
    "ch-run -c /scratch/u/proj /scratch/img -- python3 run.py\n",      # the image may hold /scratch/…
    "ch-run /scratch/img -- python3 /scratch/u/proj/run.py\n",
    "ch-run /scratch/img -- python3 /project/p/run.py\n",
    "ch-run --home -c /home/u/proj /scratch/img -- python3 run.py\n",   # --home mounts $HOME at /home/$USER
    "ch-run --home /scratch/img -- python3 /home/u/proj/run.py\n",
    "ch-run --home /scratch/img -- python3 ~/proj/run.py\n",
    "ch-run -b /home/u/proj -c /home/u/proj /scratch/img -- python3 run.py\n",
    "ch-run -b /home/u/proj:/home/u/proj /scratch/img -- python3 /home/u/proj/run.py\n",
    "ch-run -w -b /home /scratch/img -- python3 /home/u/proj/run.py\n",
    'ch-run -b "$HOME/proj" /scratch/img -- python3 ~/proj/run.py\n',   # bash gives both the same value
    'ch-run -b ~/proj /scratch/img -- python3 "$HOME/proj/run.py"\n',
    'ch-run -b "$PWD:/mnt/0" -c /mnt/0 /scratch/img -- python3 run.py\n',
    'ch-run -b "$SCRATCH/proj" -c "$SCRATCH/proj" /scratch/img -- python3 run.py\n',
    "ch-run -c /home /scratch/img -- python3 /opt/run.py\n",           # /home itself is in every image
    # --no-home (Charliecloud 0.30 and older) shows the image's own /home: a program built there
    "ch-run -w --no-home -b output --cd /mnt/0 /var/tmp/flecsale -- /home/flecsi/build/hydro_2d -m in.g\n",
    "apptainer exec --pwd /home/u/proj img.sif python3 /home/u/proj/run.py\n",  # Apptainer mounts $HOME
])
def test_a_path_ch_run_does_see(body):
    assert hpc224(body) == []


def test_no_home_still_misses_the_users_own_home():
    """--no-home leaves the image's /home alone, but $HOME (expanded on the host) is still not inside."""
    found = hpc224('ch-run --no-home /scratch/img -- python3 "$HOME/proj/run.py"\n')
    assert len(found) == 1 and "$HOME/proj/run.py" in found[0]


# --- HPC202: an instance started with a GPU flag in a job without GPUs ------------------------------------------------

NO_GPU = "#!/bin/bash\n#SBATCH --mem=8G\n"
INSTANCE = "apptainer exec instance://inst ollama serve &\nsleep 5\npython run.py\napptainer instance stop inst\n"


def hpc202(text: str, profile: str | None = None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == "HPC202"]


@pytest.mark.parametrize("start, flag", [
    ("apptainer instance start --nv ollama.sif inst\n", "--nv"),
    ("apptainer instance start --rocm ollama.sif inst\n", "--rocm"),
    ("apptainer instance start --nvccli ollama.sif inst\n", "--nvccli"),
    ("singularity instance start --nv -B /data ollama.sif inst\n", "--nv"),
    ("apptainer instance start --no-init --nv ollama.sif inst\n", "--nv"),
    ("srun -n1 apptainer instance start --nv ollama.sif inst\n", "--nv"),
    ('NAME=inst\napptainer instance start --nv ollama.sif "$NAME"\n', "--nv"),
])
def test_an_instance_started_with_a_gpu_flag_in_a_job_without_gpus(start, flag):
    text = NO_GPU + start + INSTANCE
    [(line, message)] = hpc202(text)
    assert text.splitlines()[line - 1].endswith(start.splitlines()[-1])
    assert message.startswith(f"{flag} is set on ") and "instance start inst" in message
    assert f"add --gres=gpu:N or drop {flag}" in message


def test_exec_with_nvccli_alone_is_reported_as_nv_is():
    assert [line for line, _ in hpc202(NO_GPU + "apptainer exec --nvccli img.sif python train.py\n")] == [3]


def test_the_start_and_an_exec_with_the_flag_are_each_reported():
    text = NO_GPU + "apptainer instance start --nv ollama.sif inst\napptainer exec --nv instance://inst ollama serve\n"
    assert [line for line, _ in hpc202(text)] == [3, 4]


@pytest.mark.parametrize("head", [
    "#!/bin/bash\n#SBATCH --gres=gpu:1\n",                       # a GPU job: HPC201's side
    "#!/bin/bash\n#SBATCH --gpus-per-node=2\n#SBATCH --mem=8G\n",
    "#!/bin/bash\n#SBATCH --time=01:00:00\n",                    # asks for nothing: resources from the command line
    "#!/bin/bash\n#SBATCH --partition=gpu-a100\n#SBATCH --mem=8G\n",  # no profile: a partition named as a GPU one
    "#!/bin/bash\n#SBATCH --gres=shard:2\n#SBATCH --mem=8G\n",   # a share of a GPU
    "#!/bin/bash\n#SBATCH --exclusive\n#SBATCH --mem=8G\n",      # the batch shell holds the node's GPUs
])
def test_an_instance_start_where_the_job_has_gpus_or_says_nothing(head):
    assert hpc202(head + "apptainer instance start --nv ollama.sif inst\n" + INSTANCE) == []


def test_an_instance_started_without_a_gpu_flag_is_left_alone():
    assert hpc202(NO_GPU + "apptainer instance start ollama.sif inst\n" + INSTANCE) == []


def test_an_exclusive_job_s_srun_step_gets_only_the_gpus_it_asks_for():
    head = "#!/bin/bash\n#SBATCH --exclusive\n#SBATCH --mem=8G\n"
    [(line, message)] = hpc202(head + "srun -n1 apptainer instance start --nv ollama.sif inst\n" + INSTANCE)
    assert line == 4 and "this srun step gets no GPU" in message and "instance start inst" in message
    asks = head + "srun -n1 --gpus-per-node=1 apptainer instance start --nv ollama.sif inst\n" + INSTANCE
    assert hpc202(asks) == []


def test_a_profile_decides_whether_an_exclusive_partition_has_gpus():
    start = "apptainer instance start --nv ollama.sif inst\n"
    cpu = "#!/bin/bash\n#SBATCH --exclusive\n#SBATCH --partition=cpu\n#SBATCH --mem=8G\n"
    gpu = cpu.replace("--partition=cpu", "--partition=gpu")
    assert [line for line, _ in hpc202(cpu + start + INSTANCE, "generic")] == [5]
    assert hpc202(gpu + start + INSTANCE, "generic") == []


def test_each_component_of_a_heterogeneous_job_is_judged_by_its_own_gpus():
    head = ("#!/bin/bash\n#SBATCH --mem=8G\n#SBATCH hetjob\n#SBATCH --gres=gpu:1\n#SBATCH --mem=8G\n")
    in_gpu_component = head + "srun --het-group=1 apptainer instance start --nv ollama.sif inst\n"
    assert hpc202(in_gpu_component) == []
    in_batch_shell = head + "apptainer instance start --nv ollama.sif inst\n"   # runs in component 0: no GPU
    assert [line for line, _ in hpc202(in_batch_shell)] == [6]
