"""Session 19 (E2): servers and the ways a job script stops them.

- HPC538: a server in the foreground holds the batch shell whether srun runs it or not: vllm serve, python -m
  sglang.launch_server, jupyter lab … in the batch shell itself, or in a container (apptainer exec, ch-run).
- HPC522: a background server the script stops before the later step is left alone also when a function it calls
  there stops it, when pkill -P $$ or kill 0 / kill -- -$$ (the batch script's process group) does, when kill -INT
  reaches an srun with --quit-on-interrupt, and when the server was told to stop by itself when idle.
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint, rules


def only(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


JOB = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --gres=gpu:4\n"
CLIENT = "python client.py --base-url http://localhost:8000/v1\n"


# --------------------------------------------------------------------------------------------
# HPC538: foreground servers without srun

@pytest.mark.parametrize("server, named", [
    ("vllm serve meta-llama/Llama-3.1-8B-Instruct", "vllm serve"),
    ("python -m vllm.entrypoints.openai.api_server --model m", "python -m vllm.entrypoints.openai.api_server"),
    ("python3 -u -m sglang.launch_server --model-path m --port 8000", "python3 -u -m sglang.launch_server"),
    ("jupyter lab --no-browser --port=8888", "jupyter lab"),
    ("tensorboard --logdir runs --port 6006", "tensorboard"),
    ("ray start --head --block", "ray start --block"),
    ("mlflow server --host 0.0.0.0 --port 5000", "mlflow server"),
    ("ollama serve", "ollama serve"),
    ("uv run vllm serve m", "vllm serve"),
    ("bash -c 'vllm serve m --port 8000'", "vllm serve"),
    # in a container, also in a running instance
    ("apptainer exec --nv img_0.6.sif vllm serve m", "apptainer exec … vllm serve"),
    ("singularity run --nv img_0.6.sif vllm serve m", "singularity run … vllm serve"),
    ("apptainer exec instance://llm vllm serve m", "apptainer exec … vllm serve"),
    ("ch-run -b /scratch:/scratch img -- vllm serve m", "ch-run … vllm serve"),
])
def test_a_foreground_server_without_srun_is_reported(server: str, named: str) -> None:
    [finding] = only(JOB + f"{server}\n{CLIENT}", "HPC538")
    assert finding.line == 5 and finding.severity == "warning"
    assert finding.message.startswith(f"{named} … runs in the foreground")
    assert "python on line 6 starts only after something else stops the server" in finding.message
    # the same fix as for srun, in the batch shell: in the background, wait for it, then stop it
    assert f"start the server with {named} … &, wait until it answers, and stop it" in finding.message
    assert 'kill "$PID"; wait "$PID"' in finding.message and "--overlap" not in finding.message


def test_the_later_work_is_named_as_for_srun() -> None:
    [finding] = only(JOB + "ollama serve\nollama run llama3 'Say hi'\n", "HPC538")
    assert "ollama on line 6" in finding.message
    [finding] = only(JOB + "apptainer exec img.sif vllm serve m\nsrun python eval.py\n", "HPC538")
    assert "the srun step on line 6" in finding.message


def test_a_server_after_and_before_its_client_never_lets_it_run() -> None:
    """server && client: the client waits for the server to end, which it never does."""
    assert only(JOB + "vllm serve m && python client.py\n", "HPC538")


def test_an_srun_server_gets_the_readiness_step_too() -> None:
    [finding] = only(JOB + "srun vllm serve m\nsrun python eval.py\n", "HPC538")
    assert "start the server with srun --overlap … &, wait until it answers, and stop it" in finding.message
    # a monitor has nothing to wait for
    [finding] = only(JOB + "srun nvidia-smi dmon -d 30\nsrun python train.py\n", "HPC538")
    assert "srun --overlap … & and stop it" in finding.message and "answers" not in finding.message


@pytest.mark.parametrize("body", [
    # a job that is the server: its last work, or only tidying up after it
    "vllm serve m\n",
    "module load vllm\nollama serve\necho \"server stopped\"\nrm -rf \"$TMPDIR/ollama\"\n",
    "apptainer exec --nv img.sif jupyter lab --no-browser\n",
    # in the background (a ( … ) & group too), or held to a time
    "vllm serve m &\nsleep 60\n" + CLIENT + "kill %1\nwait\n",
    "nohup vllm serve m > vllm.log 2>&1 &\n" + CLIENT,
    "( vllm serve m ) &\n" + CLIENT + "kill 0\n",
    "timeout 2h vllm serve m\n" + CLIENT,
    "timeout 2h apptainer exec img.sif vllm serve m\n" + CLIENT,
    "apptainer exec img.sif timeout 2h vllm serve m\n" + CLIENT,
    # in another branch, in a function (called when?), in a pipeline, after a test, or run with exec
    'if [ "$MODE" = serve ]; then\n  vllm serve m\nelse\n  python train.py\nfi\n',
    "serve() { vllm serve m; }\n" + CLIENT,
    "vllm serve m 2>&1 | grep -m 1 'Application startup complete'\n" + CLIENT,
    "test -f config.yaml && vllm serve m\n" + CLIENT,
    "exec jupyter lab --no-browser\npython post.py\n",
    # commands that return at once: Ray without --block, an instance started (or run) in the background, and the
    # runscript of an instance, which the script does not show
    "ray start --head\npython driver.py\n",
    "apptainer instance start --nv img.sif llm\n" + CLIENT,
    "apptainer instance run --nv img.sif llm\n" + CLIENT,
    "apptainer run instance://llm\n" + CLIENT,
    # told to stop by itself
    "dask scheduler --scheduler-file s.json --idle-timeout 1h\npython summarize.py\n",
    "jupyter lab --no-browser --ServerApp.shutdown_no_activity_timeout=1800\npython post.py\n",
])
def test_foreground_servers_without_srun_left_alone(body: str) -> None:
    assert not only(JOB + body, "HPC538")


def test_the_rule_text_names_servers_without_srun() -> None:
    rule = rules()["HPC538"]
    assert "vllm serve …, apptainer exec img.sif vllm serve …" in rule.summary
    assert "ch-run img -- vllm serve" in rule.why and "--idle-timeout" in rule.why and "exec" in rule.why


# --------------------------------------------------------------------------------------------
# HPC522: stops the script runs through a function

SERVE = "srun vllm serve m --tensor-parallel-size 4 &\nSERVER_PID=$!\n"
WAIT = "until curl -sf http://localhost:8000/health; do sleep 10; done\n" + CLIENT
LATER = "srun python summarize.py\n"


@pytest.mark.parametrize("before, after", [
    # the function defined above the server or between it and the call
    ('cleanup() { kill "$SERVER_PID"; wait "$SERVER_PID"; }\n', "cleanup\n"),
    ("", 'stop_server() {\n  echo "stopping the server"\n  kill -TERM "$SERVER_PID"\n}\nstop_server\n'),
    # kill %1 and the shell's job list from a function (it runs in the batch shell)
    ("stop() { kill %1; wait; }\n", "stop\n"),
    ("stop() { kill $(jobs -p); }\n", "stop\n"),
    # a function that calls the one that stops it
    ('halt() { kill -9 "$SERVER_PID"; }\nfinish() { echo done; halt; }\n', "finish\n"),
    # a trap for the script's end as well, and the call before the later step
    ('cleanup() { kill "$SERVER_PID"; }\ntrap cleanup EXIT\n', "cleanup\n"),
])
def test_a_server_stopped_by_a_function_the_script_calls_is_left_alone(before: str, after: str) -> None:
    assert not only(JOB + before + SERVE + WAIT + after + LATER, "HPC522")


@pytest.mark.parametrize("before, after", [
    # a trap for EXIT runs when the script ends: the later step waits before that
    ('cleanup() { kill "$SERVER_PID"; }\ntrap cleanup EXIT\n', ""),
    # never called, called after the later step, or called before it is defined (bash: command not found)
    ('cleanup() { kill "$SERVER_PID"; }\n', ""),
    ("", LATER + 'cleanup() { kill "$SERVER_PID"; }\ncleanup\n'),
    ("", 'cleanup\ncleanup() { kill "$SERVER_PID"; }\n'),
    # a kill only some calls reach, or one a subshell body runs (its wait would wait for nothing of the shell's)
    ('cleanup() { if [ -f done ]; then kill "$SERVER_PID"; fi; }\n', "cleanup\n"),
    ('cleanup() { [ -f done ] && kill "$SERVER_PID"; }\n', "cleanup\n"),
    ("cleanup() ( wait )\n", "cleanup\n"),
    # a function that does something else
    ('report() { echo "$SERVER_PID"; }\n', "report\n"),
])
def test_a_function_that_does_not_surely_stop_the_server_keeps_the_finding(before: str, after: str) -> None:
    [finding] = only(JOB + before + SERVE + WAIT + after + LATER, "HPC522")
    assert "never ends by itself" in finding.message


# --------------------------------------------------------------------------------------------
# HPC522: the batch shell's children and process group

@pytest.mark.parametrize("stop", [
    "pkill -P $$\n",
    "pkill -9 -P $$\n",
    "pkill --signal KILL --parent $$\n",
    "pkill -P$$ srun\n",
    "pkill --parent=$$ -f vllm\n",
    # the batch script leads its own process group (slurmstepd), which srun … & belongs to
    "kill 0\n",
    "kill -9 0\n",
    "kill -- -$$\n",
    'kill -TERM -"$$"\n',
    "kill -s KILL -- -${$}\n",
    # already read before: the job number (the brief's case)
    "kill %1\n",
])
def test_a_kill_of_the_shells_children_or_group_ends_the_server(stop: str) -> None:
    assert not only(JOB + SERVE + WAIT + stop + LATER, "HPC522")


@pytest.mark.parametrize("stop", [
    # a pattern srun's name does not match (vllm is the program on the node, srun the shell's child)
    "pkill -P $$ vllm\n",
    # another parent, another selection, another signal, or no parent at all
    "pkill -P 1\n",
    "pkill -u root -P $$\n",
    "pkill -USR1 -P $$\n",
    "pkill vllm\n",
    # a test, a signal srun passes on, or the batch shell alone
    "kill -0 0\n",
    "kill -USR1 -- -$$\n",
    "kill $$\n",
])
def test_other_kills_keep_the_finding(stop: str) -> None:
    assert only(JOB + SERVE + WAIT + stop + LATER, "HPC522")


def test_a_function_started_with_and_is_reached_by_its_group_but_not_by_pkill() -> None:
    """run &: srun is the grandchild of the batch shell (pkill -P $$ ends the subshell only), but in its group."""
    start = "run() { srun vllm serve m; }\nrun &\n"
    assert not only(JOB + start + WAIT + "kill 0\n" + LATER, "HPC522")
    assert only(JOB + start + WAIT + "pkill -P $$\n" + LATER, "HPC522")


@pytest.mark.parametrize("stop", ["kill -INT $SERVER_PID\n", "kill -2 $SERVER_PID\n", "pkill -INT -P $$\n"])
def test_an_interrupt_ends_an_srun_with_quit_on_interrupt(stop: str) -> None:
    """srun(1): --quit-on-interrupt ends the step on one SIGINT; without it srun only prints the tasks' state."""
    serve = SERVE.replace("srun ", "srun --quit-on-interrupt ")
    assert not only(JOB + serve + WAIT + stop + LATER, "HPC522")
    assert only(JOB + SERVE + WAIT + stop + LATER, "HPC522")


# --------------------------------------------------------------------------------------------
# HPC522 and HPC538: servers told to stop by themselves

@pytest.mark.parametrize("server", [
    "dask scheduler --scheduler-file s.json --idle-timeout 1h",
    "dask-scheduler --idle-timeout=3600 --scheduler-file s.json",
    "dask worker --scheduler-file s.json --lifetime 55m",
    "dask-worker --scheduler-file s.json --lifetime=1h --lifetime-stagger 2m",
    "jupyter lab --no-browser --ServerApp.shutdown_no_activity_timeout=1800",
    "python -m notebook --NotebookApp.shutdown_no_activity_timeout 600",
])
def test_a_server_told_to_stop_by_itself_is_no_step_that_never_ends(server: str) -> None:
    assert not only(JOB + f"srun {server} &\nsleep 60\n" + LATER, "HPC522")
    assert not only(JOB + f"srun {server}\n" + LATER, "HPC538")


@pytest.mark.parametrize("server", [
    # restarted at the end of its lifetime, a time of 0 (off), an option of another server
    "dask worker --scheduler-file s.json --lifetime 55m --lifetime-restart",
    "dask scheduler --scheduler-file s.json --idle-timeout 0",
    "jupyter lab --ServerApp.shutdown_no_activity_timeout=0",
    "dask scheduler --scheduler-file s.json --lifetime 1h",
    # srun's --quit-on-interrupt only changes what one SIGINT does
    "--quit-on-interrupt vllm serve m",
])
def test_options_that_do_not_stop_the_server_keep_the_findings(server: str) -> None:
    assert only(JOB + f"srun {server} &\nsleep 60\n" + LATER, "HPC522")
    assert only(JOB + f"srun {server}\n" + LATER, "HPC538")


def test_hpc522s_text_names_the_new_stops() -> None:
    why = rules()["HPC522"].why
    for stop in ("cleanup; a trap cleanup EXIT runs only at the script's end", "pkill -P $$", "kill 0",
                 "kill -- -$$", "--quit-on-interrupt", "--idle-timeout", "--lifetime"):
        assert stop in why
