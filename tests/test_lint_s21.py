"""Session 21's linter gaps: a Ray worker ends once the batch shell's ray stop ends its head (HPC522/HPC539); a ~
that reaches the runtime quoted (R="~", IMG="~/x.sif") names no home folder (HPC204/HPC206; HPC219 says so);
python -m pip behind the interpreter's options in build files (HPC703-705) and job scripts (HPC507); horovodrun with
fewer slots than -np is an error of its own (HPC140); an instance started and used under two names (HPC236)."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint, rules


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- 1. HPC522 / HPC539: ray stop and the workers of the head it ends ---------------------------------------------

RAY_CLUSTER = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
nodes=$(scontrol show hostnames "$SLURM_JOB_NODELIST")
nodes_array=($nodes)
head_node=${nodes_array[0]}
srun --nodes=1 --ntasks=1 -w "HEAD" ray start --head --port=6379 --block &
sleep 10
srun --nodes=1 --ntasks=1 -w "WORKER" ray start --address "$head_node:6379" --block &
sleep 10
python driver.py
STOP
LATER
"""


def ray_job(stop: str, later: str = "srun python post.py", head: str = "$head_node",
            worker: str = "${nodes_array[1]}") -> str:
    return RAY_CLUSTER.replace("STOP", stop).replace("LATER", later).replace('"HEAD"', f'"{head}"') \
        .replace('"WORKER"', f'"{worker}"')


def test_without_ray_stop_the_head_and_the_worker_hold_their_nodes():
    assert [line for line, _ in found(ray_job(""), "HPC522")] == [8, 10]
    assert [line for line, _ in found(ray_job("", later="wait"), "HPC539")] == [14]


def test_ray_stop_that_ends_the_head_on_the_batch_node_ends_its_workers_too():
    # the worker's raylet exits once it cannot reach the head's GCS (RAY_gcs_rpc_server_reconnect_timeout_s)
    assert found(ray_job("ray stop"), "HPC522") == []
    assert found(ray_job("ray stop", later="wait"), "HPC539") == []
    assert found(ray_job("ray stop --force"), "HPC522") == []


def test_ray_stop_on_the_batch_node_leaves_a_head_that_runs_on_another_node():
    # the worker runs on the batch shell's node (ray stop ends it there); the head on the second node keeps running
    text = ray_job("ray stop", head="${nodes_array[1]}", worker="$head_node")
    assert [line for line, _ in found(text, "HPC522")] == [8]
    [(line, message)] = found(ray_job("ray stop", later="wait", head="${nodes_array[1]}", worker="$head_node"),
                              "HPC539")
    assert line == 14 and "(line 8)" in message and "(line 10)" not in message


def test_ray_stop_run_as_a_step_or_before_the_head_ends_nothing():
    assert [line for line, _ in found(ray_job("srun ray stop"), "HPC522")] == [8, 10]
    before = ray_job("").replace("srun --nodes=1 --ntasks=1 -w \"$head_node\"", "ray stop\nsrun --nodes=1 --ntasks=1 "
                                 "-w \"$head_node\"")
    assert [line for line, _ in found(before, "HPC522")] == [9, 11]


RAY_DAEMON_HEAD = """#!/bin/bash
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
head_ip=$(hostname --ip-address)
ray start --head --port=6379
srun --nodes=2 --ntasks=2 -x "$(hostname)" WORKER &
sleep 20
python driver.py
STOP
wait
"""


def test_workers_of_a_head_the_batch_shell_started_end_with_its_ray_stop():
    worker = 'ray start --address "$head_ip:6379" --block'
    assert [line for line, _ in found(RAY_DAEMON_HEAD.replace("WORKER", worker).replace("STOP", ""), "HPC539")] \
        == [10]
    assert found(RAY_DAEMON_HEAD.replace("WORKER", worker).replace("STOP", "ray stop"), "HPC539") == []
    # ray stop stops Ray, not another server on the other nodes
    other = RAY_DAEMON_HEAD.replace("WORKER", "vllm serve facebook/opt-125m").replace("STOP", "ray stop")
    assert [line for line, _ in found(other, "HPC539")] == [10]


def test_the_rule_text_says_where_ray_stop_acts():
    why = rules()["HPC522"].why
    assert "ray stop ends the Ray processes of the node it runs on, no other" in why
    assert "RAY_gcs_rpc_server_reconnect_timeout_s" in why and "whose head runs elsewhere" in why


# --- 2. ~ through a variable: HPC204, HPC206, HPC219 -----------------------------------------------------------

def job(body: str) -> str:
    return "#!/bin/bash\n#SBATCH --time=00:10:00\n" + body + "\n"


@pytest.mark.parametrize("body", [
    "R=~\napptainer exec --no-home -B $R img_1.0.sif python x.py",
    "R=~/\napptainer exec --no-home -B \"$R\" img_1.0.sif python x.py",
    "R=~\nH=$R\napptainer exec --no-home --bind=$H:/h img_1.0.sif python x.py",
    "R=~\nch-run -b $R:/mnt/0 /scratch/img.sqfs -- python /opt/x.py",
    "apptainer exec --no-home -B ~ img_1.0.sif python x.py",
])
def test_a_home_folder_bash_expands_is_a_broad_bind(body):
    [(line, message)] = found(job(body), "HPC204")
    assert "your whole home directory" in message


@pytest.mark.parametrize("body, written", [
    ('R="~"\napptainer exec --no-home -B $R:/h img_1.0.sif python x.py', "$R"),
    ("R='~'\napptainer exec --no-home -B \"$R\" img_1.0.sif python x.py", "$R"),
])
def test_a_quoted_tilde_in_a_variable_is_no_home_folder(body, written):
    assert found(job(body), "HPC204") == []  # bash does not expand it: a folder named ~ in the current directory
    [(_, message)] = found(job(body), "HPC219")
    assert f"{written} holds '~', and the '~' is quoted where it is set" in message and "$HOME" in message


def test_a_quoted_tilde_written_in_the_bind_is_reported_once_by_hpc219():
    text = job('apptainer exec --no-home -B "~:/h" img_1.0.sif python x.py')
    assert found(text, "HPC204") == []
    assert len(found(text, "HPC219")) == 1


@pytest.mark.parametrize("body, home", [
    ("IMG=~/x.sif\napptainer exec \"$IMG\" python x.py", True),
    ("apptainer exec ~/x.sif python x.py", True),
    ('IMG="~/x.sif"\napptainer exec $IMG python x.py', False),
    ('apptainer exec "~/x.sif" python x.py', False),
    ("D=~/imgs\napptainer pull --dir $D docker://alpine:3.19", True),
    ('D="~/imgs"\napptainer pull --dir $D docker://alpine:3.19', False),
])
def test_an_image_under_a_quoted_tilde_is_not_under_home(body, home):
    assert bool(found(job(body), "HPC206")) is home


def test_the_quoted_image_path_is_still_named_by_hpc219():
    [(_, message)] = found(job('IMG="~/x.sif"\napptainer exec $IMG python x.py'), "HPC219")
    assert "'~' is not expanded" in message


# --- 3. python -m pip behind the interpreter's options ---------------------------------------------------------

def dockerfile(run: str) -> str:
    return f"FROM python:3.11-slim\nRUN {run}\n"


def definition(run: str) -> str:
    return f"Bootstrap: docker\nFrom: python:3.11-slim\n%post\n    {run}\n"


PIP_SPELLINGS = ["python3 -u -m pip", "python -I -m pip", "python3 -X utf8 -m pip", "python3 -Im pip",
                 "/opt/venv/bin/python3.11 -u -W ignore -m pip"]


@pytest.mark.parametrize("pip", PIP_SPELLINGS)
@pytest.mark.parametrize("build", [dockerfile, definition])
def test_pip_behind_interpreter_options_is_read_in_build_files(pip, build):
    [(_, message)] = found(build(f"{pip} install --no-cache-dir transformers"), "HPC703")
    assert message.startswith("pip install transformers without a version")
    assert found(build(f"{pip} install --no-cache-dir transformers==4.41.2"), "HPC703") == []
    assert len(found(build(f"{pip} install --user transformers==4.41.2"), "HPC704")) == 1
    assert len(found(build(f"{pip} uninstall torch"), "HPC705")) == 1
    assert found(build(f"{pip} uninstall -y torch"), "HPC705") == []


@pytest.mark.parametrize("run", ["python3 -u -m pipx install black", "python3 -u -m pip download torch",
                                 "python3 -u -m pip_tools install x"])
def test_other_modules_and_subcommands_are_not_pip_install(run):
    for code in ("HPC703", "HPC704", "HPC705"):
        assert found(dockerfile(run), code) == []


@pytest.mark.parametrize("pip", ["python3 -X utf8 -m pip", "python3 -W ignore -u -m pip", "python -Xdev -m pip"])
def test_pip_behind_x_and_w_options_is_an_install_at_job_start(pip):
    text = job(f"{pip} install wandb\npython train.py")
    [(line, message)] = found(text, "HPC507")
    assert line == 3 and message.startswith("pip install runs on every job")
    assert found(job(f"{pip} install --no-index --find-links ./wheels wandb\npython train.py"), "HPC507") == []


# --- 4. HPC140: horovodrun with fewer slots than -np -----------------------------------------------------------

TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-node=4\n"
BUILT = 'hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed \'s/$/:SLOTS/\' | paste -sd,)\n'


def test_too_few_slots_is_an_error_of_its_own_rule():
    assert rules()["HPC140"].severity == "error"
    text = TWO_NODES + BUILT.replace("SLOTS", "1") + 'horovodrun -np 8 -H "$hosts" python train.py\n'
    [finding] = [f for f in lint(text) if f.code == "HPC140"]
    assert finding.severity == "error" and finding.line == 6
    assert "gives 2 slots" in finding.message and "'Requested more processes (8)" in finding.message
    assert not [m for _, m in found(text, "HPC137") if "slot" in m]  # no longer said twice


@pytest.mark.parametrize("command, reported", [
    ('horovodrun -np 8 -H "$hosts" python train.py', True),
    ('horovodrun --gloo -np 8 -H "$hosts" python train.py', True),
    # Gloo reads no --mpi-args: it still stops
    ('horovodrun --gloo --mpi-args="--oversubscribe" -np 8 -H "$hosts" python train.py', True),
    # mpirun told to put more processes than slots on the hosts
    ('horovodrun --mpi-args="--oversubscribe" -np 8 -H "$hosts" python train.py', False),
    ('horovodrun -np 2 -H "$hosts" python train.py', False),
])
def test_oversubscription_asked_for_is_left_alone(command, reported):
    text = TWO_NODES + BUILT.replace("SLOTS", "1") + command + "\n"
    assert bool(found(text, "HPC140")) is reported


def test_enough_slots_is_silent():
    text = TWO_NODES + BUILT.replace("SLOTS", "4") + 'horovodrun -np 8 -H "$hosts" python train.py\n'
    assert found(text, "HPC140") == [] and found(text, "HPC137") == []


# --- 5. HPC236: an instance under two names ---------------------------------------------------------------------

INSTANCE = """#!/bin/bash
#SBATCH --cpus-per-task=4
START instance start "$SCRATCH/images/db_16.2.sif" db
JOIN instance://db psql -c 'SELECT 1'
STOP
"""


def instance_job(start: str, join: str, stop: str = "") -> str:
    return INSTANCE.replace("START", start).replace("JOIN", join).replace("STOP", stop)


def test_an_instance_started_with_singularity_and_joined_with_apptainer():
    [(line, message)] = found(instance_job("singularity", "apptainer exec"), "HPC236")
    assert line == 4 and "started with singularity (line 3)" in message and "no instance found" in message
    assert rules()["HPC236"].severity == "info"


def test_an_instance_stopped_under_the_other_name():
    hits = found(instance_job("apptainer", "srun apptainer exec", "singularity instance stop --all"), "HPC236")
    assert [line for line, _ in hits] == [5] and "stop it with apptainer instance stop" in hits[0][1]
    hits = found(instance_job("apptainer", "srun singularity run", "singularity instance stop db"), "HPC236")
    assert [line for line, _ in hits] == [4, 5]


@pytest.mark.parametrize("start, join, stop", [
    ("apptainer", "apptainer exec", "apptainer instance stop db"),
    ("singularity", "singularity exec", "singularity instance stop --all"),
    ("/usr/bin/apptainer", "srun apptainer exec", "/opt/apptainer/bin/apptainer instance stop db"),
    ("apptainer", "apptainer exec", "singularity instance stop other"),  # another instance
])
def test_one_name_for_all_of_it_is_silent(start, join, stop):
    assert found(instance_job(start, join, stop), "HPC236") == []
