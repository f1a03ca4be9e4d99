"""Session 19 (E10): a wait for a server that never ends, and Apptainer's temporary folder for local builds.

- HPC539: a server or monitor started in the background that never ends by itself (srun vllm serve … &, vllm serve
  … &, ray start --head --block &, jupyter lab … &, apptainer exec img vllm serve … &, nvidia-smi dmon … &), and a
  wait (or wait $SERVER_PID) that waits for it with no stop before: the job runs on to its time limit.
- HPC207: APPTAINER_TMPDIR / SINGULARITY_TMPDIR under $HOME before a build from a definition file, a sandbox or
  a local image (the image's whole root file system is assembled there), and build's own --tmpdir.
"""

from __future__ import annotations

import subprocess

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, select=[code])]


JOB = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --gres=gpu:1\n"
READY = "until curl -sf http://localhost:8000/health; do sleep 10; done\n"
WORK = "python run_eval.py --base-url http://localhost:8000/v1\n"


# --------------------------------------------------------------------------------------------
# HPC539: the servers and monitors a wait waits for

@pytest.mark.parametrize("server, label", [
    ("srun --overlap vllm serve meta-llama/Llama-3.1-8B-Instruct &\n", "srun vllm serve"),
    ("vllm serve meta-llama/Llama-3.1-8B-Instruct --port 8000 &\n", "vllm serve"),
    ("python -m vllm.entrypoints.openai.api_server --model m &\n", "python -m vllm.entrypoints.openai.api_server"),
    ("ray start --head --port=6379 --block &\n", "ray start --block"),
    ("jupyter lab --no-browser --ip=0.0.0.0 --port=8888 &\n", "jupyter lab"),
    ("apptainer exec --nv vllm_0.6.sif vllm serve meta-llama/Llama-3.1-8B-Instruct &\n",
     "apptainer exec … vllm serve"),
    ("nvidia-smi dmon -s u -d 30 > gpu_util.log &\n", "nvidia-smi dmon"),
    ("srun --overlap nvidia-smi dmon -d 30 > gpu.log &\n", "srun nvidia-smi dmon"),
    ("tail -f server.log &\n", "tail -f"),
    # a pipeline: wait waits for every command of it
    ("vllm serve m 2>&1 | tee vllm.log &\n", "vllm serve"),
    # a function or a group run with & that runs the server with srun in its foreground
    ("serve() { srun --overlap vllm serve m; }\nserve &\n", "serve … & running srun vllm serve"),
    ("( srun --overlap vllm serve m ) &\n", "( … ) & running srun vllm serve"),
])
def test_a_wait_for_a_server_that_never_ends_is_reported(server: str, label: str) -> None:
    text = JOB + server + READY + WORK + "wait\n"
    hits = found(text, "HPC539")
    assert [line for line, _ in hits] == [text.count("\n")], hits
    label = label if "running" in label else f"{label} … &"
    assert f"waits for {label} (line {text.count(chr(10)) - 3})" in hits[0][1] and "time limit" in hits[0][1]


@pytest.mark.parametrize("ending", [
    # the server's own PID, or all the jobs by their PIDs
    'wait "$SERVER_PID"\n',
    "wait $(jobs -p)\n",
    "wait %1\n",
    'wait "$SERVER_PID" "$EVAL_PID"\n',
])
def test_a_wait_naming_the_server_is_reported(ending: str) -> None:
    text = JOB + "vllm serve m &\nSERVER_PID=$!\n" + READY + "python run_eval.py &\nEVAL_PID=$!\n" + ending
    assert [line for line, _ in found(text, "HPC539")] == [text.count("\n")]


def test_the_work_before_a_monitor_counts() -> None:
    """The usual monitor: the training in the background, the monitor beside it, one wait for both."""
    text = JOB + "srun python train.py &\nnvidia-smi dmon -d 30 > gpu.log &\nwait\n"
    assert [line for line, _ in found(text, "HPC539")] == [7]


def test_ray_head_and_workers_with_a_driver() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=3\n#SBATCH --ntasks-per-node=1\n"
            'nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))\n'
            'srun -N1 -n1 -w "${nodes[0]}" ray start --head --port=6379 --block &\n'
            "for i in 1 2; do\n"
            '  srun -N1 -n1 -w "${nodes[$i]}" ray start --address="${nodes[0]}:6379" --block &\n'
            "done\n"
            "python driver.py\n"
            "wait\n")
    hits = found(text, "HPC539")
    assert [line for line, _ in hits] == [10]
    assert "line 5" in hits[0][1] and "line 7" in hits[0][1] and "never end by themselves" in hits[0][1]


def test_a_trap_on_exit_does_not_stop_the_server_before_the_wait() -> None:
    """bash runs the EXIT trap when the script ends, which the wait keeps from happening."""
    text = JOB + "vllm serve m &\nSERVER_PID=$!\ntrap 'kill $SERVER_PID' EXIT\n" + READY + WORK + "wait\n"
    hits = found(text, "HPC539")
    assert [line for line, _ in hits] == [10] and "trap on EXIT" in hits[0][1]


def test_bash_waits_for_a_server_despite_an_exit_trap() -> None:
    """What the rule relies on, checked with bash itself: the wait returns only when the background program ends
    (here after 1 s), and the EXIT trap runs after that, finding the program already gone."""
    script = "trap 'kill $pid 2>/dev/null || echo gone' EXIT; sleep 1 & pid=$!; wait; echo waited"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10).stdout.split()
    assert out == ["waited", "gone"]


@pytest.mark.parametrize("stop", [
    # INT and QUIT: a program bash runs with & ignores both
    "kill -INT $SERVER_PID\n",
    "kill -QUIT $SERVER_PID\n",
    # a stop only some runs reach, or a test
    "if [ -f done ]; then kill $SERVER_PID; fi\n",
    "kill -0 $SERVER_PID\n",
    # scancel of a step: vllm serve … & is no step
    "scancel ${SLURM_JOB_ID}.0\n",
    # a disown that only stops SIGHUP from reaching it
    "disown -h\n",
])
def test_a_server_not_surely_stopped_is_reported(stop: str) -> None:
    text = JOB + "vllm serve m &\nSERVER_PID=$!\n" + READY + WORK + stop + "wait\n"
    assert [line for line, _ in found(text, "HPC539")] == [text.count("\n")]


def test_bash_ignores_int_and_quit_in_a_program_it_runs_with_ampersand() -> None:
    """bash(1), SIGNALS: without job control, asynchronous commands ignore SIGINT and SIGQUIT."""
    # (the pause lets the child set the signals aside before they arrive)
    script = ("sleep 30 & p=$!; sleep 0.3; kill -INT $p; kill -QUIT $p; sleep 0.3; kill -0 $p && echo alive; "
              "kill $p; wait $p; echo $?")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10).stdout.split()
    assert out == ["alive", "143"]


def test_the_fix_stops_the_server_before_the_wait() -> None:
    text = JOB + "vllm serve m &\nSERVER_PID=$!\n" + READY + WORK + "  wait\n"
    new, done = fix_script(text, select="HPC539")
    assert [f.code for f in done] == ["HPC539"]
    assert new.endswith(WORK + '  kill "$SERVER_PID"\n  wait\n')
    assert not found(new, "HPC539")


@pytest.mark.parametrize("text", [
    # no PID saved: nothing to kill by name
    JOB + "vllm serve m &\n" + READY + WORK + "wait\n",
    # work still running in the background: a kill before the wait would cut the server from under it
    JOB + "vllm serve m &\nSERVER_PID=$!\n" + READY + "python run_eval.py &\nwait\n",
    # the wait shares its line
    JOB + "vllm serve m &\nSERVER_PID=$!\n" + READY + WORK + "wait; echo done\n",
])
def test_no_fix_where_a_kill_before_the_wait_may_be_wrong(text: str) -> None:
    assert found(text, "HPC539")
    assert not fix_script(text, select="HPC539")[1]


# --------------------------------------------------------------------------------------------
# HPC539: scripts left alone

@pytest.mark.parametrize("stop", [
    "kill $SERVER_PID\n",
    'kill -TERM "$SERVER_PID"\n',
    "kill -9 $SERVER_PID\n",
    "kill %1\n",
    "kill $(jobs -p)\n",
    "pkill -P $$\n",
    "pkill -P $$ -f 'vllm serve'\n",
    "kill 0\n",
    # in a function the script calls there
    "cleanup\n",
    # disowned: wait no longer waits for it
    "disown\n",
    "disown -a\n",
    "disown $SERVER_PID\n",
])
def test_a_server_stopped_or_disowned_before_the_wait_is_left_alone(stop: str) -> None:
    text = (JOB + 'cleanup() { echo stopping; kill "$SERVER_PID"; }\n' + "vllm serve m &\nSERVER_PID=$!\n" + READY
            + WORK + stop + "wait\n")
    assert not found(text, "HPC539")


@pytest.mark.parametrize("stop", [
    "scancel ${SLURM_JOB_ID}.0\n",
    "kill -QUIT $SERVER_PID\n",  # srun ends its step on QUIT
])
def test_an_srun_server_stopped_as_a_step_is_left_alone(stop: str) -> None:
    text = JOB + "srun --overlap vllm serve m &\nSERVER_PID=$!\n" + READY + WORK + stop + "wait\n"
    assert not found(text, "HPC539")


@pytest.mark.parametrize("ending", [
    'wait "$WORK_PID"\n',
    "wait -n\n",
    "wait %2\n",
])
def test_a_wait_for_the_work_only_is_left_alone(ending: str) -> None:
    text = JOB + "vllm serve m &\n" + READY + "python run_eval.py &\nWORK_PID=$!\n" + ending
    assert not found(text, "HPC539")


@pytest.mark.parametrize("server", [
    "dask scheduler --scheduler-file sched.json --idle-timeout 600 &\n",
    "jupyter lab --no-browser --ServerApp.shutdown_no_activity_timeout=3600 &\n",
    "timeout 2h vllm serve m &\n",
    "srun --overlap --time=02:00:00 vllm serve m &\n",
    "srun --overlap timeout 2h vllm serve m &\n",
    "timeout 1h nvidia-smi dmon -d 30 > gpu.log &\n",
    "nvidia-smi dmon -c 100 > gpu.log &\n",  # 100 samples, then it ends
    # a program that ends by itself
    "python prepare.py &\n",
    "ray start --head &\n",  # returns once Ray is up
])
def test_a_server_that_ends_by_itself_is_left_alone(server: str) -> None:
    assert not found(JOB + server + READY + WORK + "wait\n", "HPC539")


@pytest.mark.parametrize("text", [
    # the job is the server: it serves until its user cancels it
    JOB + "srun jupyter lab --no-browser --ip=0.0.0.0 &\nsleep 5\necho \"ssh -L 8888:$(hostname):8888 login\"\nwait\n",
    JOB + "vllm serve m &\n" + READY + 'echo "ready on $(hostname):8000"\nwait\n',
    JOB + "python download_model.py\nvllm serve m &\ntimeout 900 bash -c 'until curl -sf localhost:8000/health; do "
          "sleep 5; done'\nwait\n",
    JOB + "nvidia-smi dmon -d 30 > gpu.log &\nollama serve &\nwait\n",
    JOB + "srun --overlap ray start --head --block &\nwhile ! nc -z localhost 6379; do sleep 1; done\nwait\n",
    # work before the server, already done when it starts
    JOB + "python train.py &\nwait\nvllm serve m &\nwait\n",
])
def test_a_job_that_is_its_server_is_left_alone(text: str) -> None:
    assert not found(text, "HPC539")


@pytest.mark.parametrize("text", [
    # the wait in another branch than the server
    JOB + 'if [ "$MODE" = serve ]; then\n  vllm serve m &\nelse\n  ' + WORK + "  wait\nfi\n",
    # the server inside a ( … ) & group started with &: the batch shell's wait does not reach it
    JOB + "( vllm serve m & )\n" + READY + WORK + "wait\n",
    # started in a function (called when?) and no wait at all (HPC519's)
    JOB + "start() { vllm serve m & }\nstart\n" + READY + WORK + "wait\n",
    JOB + "vllm serve m &\n" + READY + WORK,
    # a wait before the server starts
    JOB + "srun python prep.py &\nwait\nvllm serve m &\n" + READY + WORK,
])
def test_other_shapes_are_left_alone(text: str) -> None:
    assert not found(text, "HPC539")


def test_jupyter_listing_its_servers_is_a_check_not_work() -> None:
    """A Jupyter job (as UL HPC's tutorial writes it) that lists its server once it runs, then waits for it."""
    text = ("#!/bin/bash -l\n#SBATCH -N 1\n#SBATCH -n 1\nsingularity instance start jupyter.sif jupyter\n"
            "singularity exec instance://jupyter jupyter notebook --ip \"$IP\" --no-browser --port 8889 &\n"
            "pid=$!\nsleep 5s\nsingularity exec instance://jupyter jupyter notebook list\nwait $pid\n"
            "singularity instance stop jupyter\n")
    assert not found(text, "HPC539")


def test_jupyter_with_work_beside_it_is_told_about_its_idle_shutdown() -> None:
    text = JOB + "jupyter lab --no-browser &\npython train.py\nwait\n"
    (_, message), = found(text, "HPC539")
    assert "shutdown_no_activity_timeout" in message and "nodes and GPUs" in message


def test_a_job_without_gpus_is_not_told_it_holds_gpus() -> None:
    text = "#!/bin/bash\n#SBATCH --ntasks=1\nsrun tensorboard --logdir=runs &\nsrun python train.py\nwait\n"
    (_, message), = found(text, "HPC539")
    assert "holding its nodes," in message and "GPU" not in message and "shutdown_no_activity" not in message


# --------------------------------------------------------------------------------------------
# HPC207: the temporary folder of a build from a definition file, a sandbox or a local image

BUILD_JOB = "#!/bin/bash\n#SBATCH --time=02:00:00\n#SBATCH --cpus-per-task=8\n"


@pytest.mark.parametrize("setting, build, name", [
    ('export APPTAINER_TMPDIR="$HOME/tmp"\n', 'apptainer build --fakeroot "$SCRATCH/app.sif" app.def\n',
     "APPTAINER_TMPDIR"),
    ('export APPTAINER_TMPDIR=~/apptainer-tmp\n', 'apptainer build --sandbox "$SCRATCH/app" app.def\n',
     "APPTAINER_TMPDIR"),
    ("export SINGULARITY_TMPDIR=/home/$USER/tmp\n", 'singularity build "$SCRATCH/app.sif" "$SCRATCH/app-sandbox/"\n',
     "SINGULARITY_TMPDIR"),
    # Apptainer reads the old name too
    ('export SINGULARITY_TMPDIR="$HOME/tmp"\n', 'apptainer build "$SCRATCH/app.sif" "$SCRATCH/base.sif"\n',
     "SINGULARITY_TMPDIR"),
    ("", 'APPTAINER_TMPDIR="$HOME/tmp" apptainer build -f "$SCRATCH/app.sif" app.def\n', "APPTAINER_TMPDIR"),
    # build's own option
    ("", 'apptainer build --fakeroot --tmpdir "$HOME/tmp" "$SCRATCH/app.sif" app.def\n', "--tmpdir"),
    ("", 'apptainer build --tmpdir=$HOME/tmp "$SCRATCH/app.sif" app.def\n', "--tmpdir"),
])
def test_a_local_build_with_its_temporary_folder_in_home_is_reported(setting: str, build: str, name: str) -> None:
    text = BUILD_JOB + setting + build
    hits = found(text, "HPC207")
    assert [line for line, _ in hits] == [4]
    assert hits[0][1].startswith(f"{name}=") and "root file system" in hits[0][1] and "scratch" in hits[0][1]


def test_one_finding_for_the_setting_of_two_builds() -> None:
    text = (BUILD_JOB + 'export APPTAINER_TMPDIR="$HOME/tmp"\napptainer build "$SCRATCH/a.sif" a.def\n'
            'apptainer build "$SCRATCH/b.sif" b.def\n')
    assert [line for line, _ in found(text, "HPC207")] == [4]


@pytest.mark.parametrize("text", [
    BUILD_JOB + 'export APPTAINER_TMPDIR="$SCRATCH/tmp"\napptainer build --fakeroot "$SCRATCH/app.sif" app.def\n',
    BUILD_JOB + 'apptainer build --fakeroot "$SCRATCH/app.sif" app.def\n',
    # the option takes the variable's place
    BUILD_JOB + 'export APPTAINER_TMPDIR="$HOME/tmp"\napptainer build --tmpdir "$SCRATCH/tmp" "$SCRATCH/app.sif" '
                'app.def\n',
    BUILD_JOB + 'export APPTAINER_TMPDIR="$HOME/tmp"\napptainer build --tmpdir "$SCRATCH/tmp" "$SCRATCH/app.sif" '
                'docker://python:3.12-slim\n',
    # set after the build, or a name SingularityCE does not read
    BUILD_JOB + 'apptainer build "$SCRATCH/app.sif" app.def\nexport APPTAINER_TMPDIR="$HOME/tmp"\n',
    BUILD_JOB + 'export APPTAINER_TMPDIR="$HOME/tmp"\nsingularity build "$SCRATCH/app.sif" app.def\n',
    # no build: a run of a local image uses no temporary build folder
    BUILD_JOB + 'export APPTAINER_TMPDIR="$HOME/tmp"\napptainer exec "$SCRATCH/app.sif" python run.py\n',
])
def test_builds_with_their_temporary_folder_elsewhere_are_left_alone(text: str) -> None:
    assert not [m for _, m in found(text, "HPC207") if "TMPDIR=" in m or "--tmpdir" in m]
