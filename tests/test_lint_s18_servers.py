"""Session 18 (E11): servers in job scripts, after the audit of real vLLM, Dask and Ray jobs (s18/a5).

- HPC522: a background server the script stops before the later step (kill $PID, kill %1, kill $(jobs -p),
  scancel $SLURM_JOB_ID.N, a wait for it), or whose later step is in another branch of an if or case, or on other
  nodes by srun -r/--relative, does not block that step.
- HPC538: a server run with srun in the foreground holds the batch shell, so the work after it never starts.
- HPC321: #XBATCH --partition=… beside a live #SBATCH --partition=… is a value switched off on purpose.
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint, rules


def only(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


JOB = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --gres=gpu:4\n"
SERVE = "srun vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 4 &\n"
EVAL = "until curl -sf http://localhost:8000/health; do sleep 10; done\npython run_eval.py\n"
LATER = "srun python summarize.py\n"


# --------------------------------------------------------------------------------------------
# HPC522: the server is stopped before the later step

@pytest.mark.parametrize("stop", [
    # the audited min/s1: kill, then wait for it
    "SERVER_PID=$!\n" + EVAL + "kill $SERVER_PID\nwait $SERVER_PID\n",
    'pid="$!"\n' + EVAL + 'kill -TERM "$pid" && wait "$pid"\n',
    "pid=${!}\n" + EVAL + "kill -s HUP ${pid}; wait\n",
    # SIGKILL kills srun itself; its shepherd process then cancels the step; no wait: srun retries the later step
    "pid=$!\n" + EVAL + "kill -9 $pid\n",
    "export pid=$!\n" + EVAL + "kill -SIGQUIT $pid\n",
    "pids+=($!)\n" + EVAL + 'kill "${pids[@]}"\nwait\n',
    # job specs and the shell's own list of jobs
    EVAL + "kill %1\nwait\n",
    EVAL + "kill %%\n",
    EVAL + "kill $(jobs -p)\nwait\n",
    EVAL + "kill `jobs -pr`\n",
    # scancel of the server's step (min/s5), by number or by a variable the linter cannot count
    EVAL + "scancel ${SLURM_JOB_ID}.0\n",
    EVAL + 'scancel "$SLURM_JOBID.$SERVER_STEP"\n',
    EVAL + "scancel --signal=KILL $SLURM_JOB_ID.0\n",
    # the batch shell waits for it: the later step runs only once the server has ended
    "pid=$!\n" + EVAL + "wait $pid\n",
])
def test_a_server_stopped_before_the_later_step_is_left_alone(stop: str) -> None:
    assert not only(JOB + SERVE + stop + LATER, "HPC522")


def test_the_audited_kill_then_srun_script_is_left_alone() -> None:
    text = (JOB + SERVE + "SERVER_PID=$!\n" + EVAL + "kill $SERVER_PID\nwait $SERVER_PID\n" + LATER)
    assert not lint(text, select="HPC522,HPC538")


@pytest.mark.parametrize("stop", [
    # a kill of another PID: $! is then the monitor's, or the variable is set again
    "nvidia-smi dmon -d 30 > gpu.log &\nmon=$!\n" + EVAL + "kill $mon\nwait $mon\n",
    "pid=$!\npython warmup.py &\npid=$!\n" + EVAL + "kill $pid\nwait $pid\n",
    "python warmup.py &\n" + EVAL + "kill %%\n",
    "python warmup.py &\n" + EVAL + "kill %2\n",
    # a test, a signal srun does not end the step on, no signal at all
    "pid=$!\n" + EVAL + "kill -0 $pid\n",
    "pid=$!\n" + EVAL + "kill -INT $pid\n",
    "pid=$!\n" + EVAL + "kill -s USR1 $pid\n",
    "pid=$!\n" + EVAL + "kill -l\n",
    # a kill only some runs reach
    "pid=$!\n" + EVAL + "if [ -f done ]; then kill $pid; fi\n",
    "pid=$!\n" + EVAL + "test -f done && kill $pid\n",
    # another step cancelled, or only signalled
    EVAL + "scancel ${SLURM_JOB_ID}.1\n",
    EVAL + "scancel --signal=USR1 ${SLURM_JOB_ID}.0\n",
    # a wait for something else
    "python warmup.py &\nw=$!\n" + EVAL + "wait $w\n",
    EVAL + "wait -n\n",
])
def test_a_server_not_surely_stopped_keeps_its_finding(stop: str) -> None:
    [finding] = only(JOB + SERVE + stop + LATER, "HPC522")
    assert finding.line == 5 and "never ends by itself" in finding.message


def test_a_kill_after_the_later_step_keeps_the_finding() -> None:
    text = JOB + SERVE + "pid=$!\n" + EVAL + LATER + "kill $pid\nwait $pid\n"
    [finding] = only(text, "HPC522")
    assert "line 9" in finding.message


def test_the_pid_of_a_pipeline_is_its_last_command() -> None:
    """$! after srun … | tee log & is tee's PID: killing it leaves srun running (kill %1 would reach both)."""
    serve = SERVE.replace(" &\n", " | tee server.log &\n")
    assert only(JOB + serve + "pid=$!\n" + EVAL + "kill $pid\nwait $pid\n" + LATER, "HPC522")
    assert not only(JOB + serve + EVAL + "kill %1\nwait\n" + LATER, "HPC522")


def test_the_step_number_counts_the_steps_before_the_server() -> None:
    prep = "srun python prepare.py\n"
    assert not only(JOB + prep + SERVE + EVAL + "scancel $SLURM_JOB_ID.1\n" + LATER, "HPC522")
    assert only(JOB + prep + SERVE + EVAL + "scancel $SLURM_JOB_ID.0\n" + LATER, "HPC522")


def test_a_function_or_group_started_with_a_pid_kill_is_not_the_server() -> None:
    """kill $! of ( srun … ) & signals the subshell, not srun; a wait for the group does end it."""
    group = "( srun vllm serve m )&\npid=$!\n"
    assert only(JOB + group + EVAL + "kill $pid\n" + LATER, "HPC522")
    assert not only(JOB + group + EVAL + "wait $pid\n" + LATER, "HPC522")


# --------------------------------------------------------------------------------------------
# HPC522: branches that never both run

@pytest.mark.parametrize("body", [
    # the audited min/s3
    'if [ "$MODE" = serve ]; then\n  srun vllm serve m &\n  wait\nelse\n  srun python train.py\nfi\n',
    'if [ "$MODE" = serve ]; then  # serve, or else train\n  srun vllm serve m &\nelif [ -f x ]; then\n'
    "  srun python train.py\nfi\n",
    'case "$MODE" in\n  serve) srun vllm serve m & ;;\n  train)\n    srun python train.py ;;\nesac\n',
    # the server's own wait in its branch: the later step runs once it has ended; or a kill there
    'if [ "$MODE" = serve ]; then\n  srun vllm serve m &\n  wait\nfi\nsrun python train.py\n',
    'if [ "$MODE" = serve ]; then\n  srun vllm serve m &\n  pid=$!\n  python eval.py\n  kill $pid\nfi\n'
    "srun python train.py\n",
])
def test_steps_in_branches_that_never_both_run_are_left_alone(body: str) -> None:
    assert not only(JOB + body, "HPC522")


@pytest.mark.parametrize("body", [
    # the server's branch runs, then the step after fi
    'if [ "$MODE" = serve ]; then\n  srun vllm serve m &\nfi\nsrun python train.py\n',
    # both in the same branch
    'if [ "$MODE" = serve ]; then\n  srun vllm serve m &\n  srun python client.py\nfi\n',
    # case items that fall through run both
    'case "$MODE" in\n  serve) srun vllm serve m & ;&\n  train) srun python train.py ;;\nesac\n',
    # a loop runs its body again: no branches there
    "for i in 1 2; do\n  srun vllm serve m &\n  srun python client.py\ndone\nwait\n",
])
def test_steps_that_can_both_run_keep_the_finding(body: str) -> None:
    assert only(JOB + body, "HPC522")


# --------------------------------------------------------------------------------------------
# HPC522: srun -r/--relative

TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n"


@pytest.mark.parametrize("server, client", [
    # the audited min/r1
    ("srun -N1 -n1 -r 0 vllm serve m &", "srun -N1 -n1 --relative=1 python client.py"),
    ("srun --nodes=1 --relative 1 vllm serve m &", "srun -N1 -r0 python client.py"),
    ("srun -n1 -r 0 vllm serve m &", "srun -n 1 -r 1 python client.py"),
])
def test_steps_on_other_relative_nodes_are_left_alone(server: str, client: str) -> None:
    assert not only(TWO_NODES + f"{server}\nsleep 300\n{client}\n", "HPC522")


@pytest.mark.parametrize("server, client", [
    ("srun -N2 -r 0 vllm serve m &", "srun -N1 -r 1 python client.py"),
    ("srun -N1 -r 0 vllm serve m &", "srun -N1 -r 0 python client.py"),
    ("srun -r 0 vllm serve m &", "srun -N1 -r 1 python client.py"),
    ("srun -N1 -r 0 vllm serve m &", "srun -N1 python client.py"),
    ('srun -N1 -r "$HEAD" vllm serve m &', "srun -N1 -r 1 python client.py"),
])
def test_steps_that_may_share_a_relative_node_keep_the_finding(server: str, client: str) -> None:
    assert only(TWO_NODES + f"{server}\nsleep 300\n{client}\n", "HPC522")


# --------------------------------------------------------------------------------------------
# HPC538: a server in the foreground

DASK = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --time=01:00:00\n"
        "dask-scheduler --scheduler-file s.json &\nsleep 5\n"
        "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=3600s \\\n"
        "srun dask-worker \\\n  --scheduler-file s.json \\\n  --nworkers 1\n"
        "srun python mpi_ase_calc.py\necho \"Killing scheduler\"\nkill -9 $!\n")


def test_the_audited_foreground_dask_worker_is_reported() -> None:
    """The audited scripts/10 (NERSC Dask): the computation below the worker never starts."""
    [finding] = only(DASK, "HPC538")
    assert finding.line == 6 and finding.severity == "warning"
    assert "srun dask-worker" in finding.message and "the srun step on line 10" in finding.message
    assert "--overlap" in finding.message


@pytest.mark.parametrize("server, work, named", [
    ("srun vllm serve m", "srun python run_eval.py", "the srun step on line 6"),
    ("srun --gres=gpu:1 python -m sglang.launch_server --model-path m", "python client.py", "python on line 6"),
    ("srun apptainer exec --nv vllm.sif vllm serve m", "python3 client.py", "python3 on line 6"),
    ("srun jupyter lab --no-browser", "srun python train.py", "the srun step on line 6"),
])
def test_work_after_a_foreground_server_is_reported(server: str, work: str, named: str) -> None:
    [finding] = only(JOB + f"{server}\n{work}\n", "HPC538")
    assert finding.line == 5 and named in finding.message


@pytest.mark.parametrize("script", [
    # the server is the job's last command, or only tidying up follows it
    JOB + "srun jupyter lab --no-browser --port=8888\n",
    JOB + "srun ollama serve\necho \"server stopped\"\nrm -rf \"$TMPDIR/ollama\"\n",
    # held to a time: srun's own --time, timeout around srun or inside it
    JOB + "srun --time=02:00:00 jupyter lab\nsrun python post.py\n",
    JOB + "srun -t 30 tensorboard --logdir runs\nsrun python post.py\n",
    JOB + "timeout 2h srun tensorboard --logdir runs\nsrun python post.py\n",
    JOB + "srun timeout 600 jupyter lab --no-browser\nsrun python post.py\n",
    # in the background (HPC522's), or in another branch
    JOB + "srun --overlap vllm serve m &\nsrun --overlap python client.py\n",
    JOB + 'if [ "$MODE" = serve ]; then\n  srun vllm serve m\nelse\n  srun python train.py\nfi\n',
    # in a function (called when?), or a step that ends (ray start without --block returns)
    JOB + "serve() {\n  srun vllm serve m\n}\nsrun python train.py\n",
    JOB + "srun ray start --head\nsrun python driver.py\n",
    # without srun: a program the batch shell runs is no step to hold (not this rule's case)
    JOB + "vllm serve m &\npython client.py\n",
])
def test_foreground_servers_without_work_after_them_are_left_alone(script: str) -> None:
    assert not only(script, "HPC538")


def test_both_server_rules_name_the_same_servers() -> None:
    """HPC538's text lists the servers HPC522 knows, from one list (a server added there is named in both)."""
    catalogue = rules()
    start = catalogue["HPC522"].why.index("or a server (") + len("or a server (")
    servers = catalogue["HPC522"].why[start:catalogue["HPC522"].why.index(") never ends")]
    assert "vllm serve" in servers and "python -m sglang.launch_server" in servers
    assert f"({servers})" in catalogue["HPC538"].why


# --------------------------------------------------------------------------------------------
# HPC321: a switched-off value beside the live one

HEAD = "#!/bin/bash\n#SBATCH --nodes=1\n"


@pytest.mark.parametrize("lines", [
    # the audited scripts/21 (MPCDF): the old partition and CPU count kept above the live ones
    "#XBATCH --partition=general\n#XBATCH --cpus-per-task=32\n#SBATCH --partition=broadwell\n"
    "#SBATCH --cpus-per-task=40\n",
    # the live line comes first, or names the option another way
    "#SBATCH -p broadwell\n#XBATCH --partition=general\n",
    "#SBTACH --time=02:00:00\n#SBATCH -t 01:00:00\n",
    "#XBATCH -p general -c 32\n#SBATCH --partition=broadwell --cpus-per-task=40\n",
])
def test_a_misspelled_line_beside_a_live_one_for_its_options_is_left_alone(lines: str) -> None:
    assert not only(HEAD + lines + "srun ./diamond\n", "HPC321")


@pytest.mark.parametrize("lines, line", [
    # no live line for the option: the typo drops it
    ("#XBATCH --partition=general\n", 3),
    ("#SBTACH --time=02:00:00\n#SBATCH --partition=gpu\n", 3),
    # one of its options has no live line
    ("#XBATCH --partition=general --time=01:00:00\n#SBATCH --partition=broadwell\n", 3),
    # the live line is one sbatch ignores (after the first command)
    ("#XBATCH --partition=general\nhostname\n#SBATCH --partition=broadwell\n", 3),
])
def test_a_misspelled_line_without_a_live_one_keeps_its_finding(lines: str, line: int) -> None:
    [finding] = only(HEAD + lines + "srun ./diamond\n", "HPC321")
    assert finding.line == line and "is not #SBATCH" in finding.message and finding.fix is not None


@pytest.mark.parametrize("serve", [
    "timeout 2h srun vllm serve m --tensor-parallel-size 4 &\n",
    "srun --time=30 vllm serve m --tensor-parallel-size 4 &\n",
    "srun timeout 600 vllm serve m --tensor-parallel-size 4 &\n",
])
def test_a_server_held_to_a_time_of_its_own_is_no_step_that_never_ends(serve: str) -> None:
    """The later step waits until that time, not until the job's: no HPC522."""
    assert not only(JOB + serve + EVAL + LATER, "HPC522")
    assert only(JOB + SERVE + EVAL + LATER, "HPC522")
