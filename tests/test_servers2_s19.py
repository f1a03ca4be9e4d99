"""Session 19 (E12): auditor A3's findings on servers and temporary folders.

- HPC538, HPC522, HPC539: a server's subcommands and options that print something and exit (jupyter server list,
  jupyter lab build, vllm serve --help, tensorboard --version_tb …) start no server.
- HPC538: stopping an Apptainer instance, Ray or a Jupyter server after a foreground server is tidying up, not work.
- HPC522, HPC539: pkill -f PATTERN matching srun's command line, pkill or killall by srun's name, and kill $(cat FILE)
  (or pkill -F FILE) after echo $! > FILE stop the server.
- HPC207: TMPDIR under $HOME when APPTAINER_TMPDIR (SINGULARITY_TMPDIR) is not set.
- HPC206: an image path set with a ~ in an assignment, used through the variable.
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint, rules


def only(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


JOB = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --gres=gpu:1\n"
WORK = "srun python train.py\n"


# --------------------------------------------------------------------------------------------
# A server's commands that print something and exit

PRINT_AND_EXIT = [
    "jupyter notebook list",
    "jupyter server list --json",
    "jupyter lab build --minimize=False",
    "jupyter lab clean",
    "jupyter lab path",
    "jupyter lab workspaces export",
    "jupyter server stop 8888",
    "jupyter notebook password",
    "jupyter server extension list",
    "jupyter-lab build",
    "jupyter lab --version",
    "jupyter lab --help-all",
    "jupyter server --generate-config",
    "python -m jupyterlab --version",
    "vllm serve --help",
    "vllm serve --help=ModelConfig",
    "python -m vllm.entrypoints.openai.api_server -h",
    "python3 -m sglang.launch_server --help",
    "tensorboard --version_tb",
    "tensorboard --inspect --logdir runs",
    "mlflow server --help",
    "ollama serve -h",
    "dask scheduler --version",
    "text-generation-launcher -V",
    "ray start --head --block --help",
]

#: the same programs serving: a file to open is no subcommand, mlflow's -h is --host, and TGI's --env prints the
#: environment and then serves (launcher/src/main.rs: the launch goes on after it)
SERVING = [
    "jupyter lab --no-browser --port=8888",
    "jupyter notebook analysis.ipynb --no-browser",
    "jupyter lab --ServerApp.root_dir=build",
    "vllm serve m --chat-template help.jinja",
    "tensorboard --logdir runs --port 6006",
    "mlflow server -h 0.0.0.0 --port 5000",
    "text-generation-launcher --env --model-id m",
]


@pytest.mark.parametrize("command", PRINT_AND_EXIT)
def test_a_command_that_prints_and_exits_is_no_foreground_server(command: str) -> None:
    assert not only(JOB + f"{command}\n" + WORK, "HPC538")
    assert not only(JOB + f"srun {command}\n" + WORK, "HPC538")


@pytest.mark.parametrize("command", PRINT_AND_EXIT)
def test_a_command_that_prints_and_exits_holds_no_step(command: str) -> None:
    assert not only(JOB + f"srun {command} &\n" + WORK, "HPC522")


@pytest.mark.parametrize("command", PRINT_AND_EXIT)
def test_a_wait_for_a_command_that_prints_and_exits_returns(command: str) -> None:
    assert not only(JOB + f"{command} &\npython client.py\nwait\n", "HPC539")


@pytest.mark.parametrize("command", SERVING)
def test_the_same_programs_serving_are_still_reported(command: str) -> None:
    assert only(JOB + f"{command}\n" + WORK, "HPC538")
    assert only(JOB + f"srun {command} &\n" + WORK, "HPC522")
    assert only(JOB + f"{command} &\npython client.py\nwait\n", "HPC539")


def test_the_ulhpc_instance_launcher_is_left_alone() -> None:
    """A3's real script s24: the server in the background, jupyter notebook list for its URL, then wait for it."""
    script = JOB + ("singularity instance start jupyter.sif jupyter\n"
                    "singularity exec instance://jupyter jupyter notebook --ip \"$(hostname -i)\" --no-browser &\n"
                    "pid=$!\nsleep 5s\nsingularity exec instance://jupyter jupyter notebook list\n"
                    "wait $pid\nsingularity instance stop jupyter\n")
    assert not [f for f in lint(script) if f.code in ("HPC522", "HPC538", "HPC539")]


def test_building_the_lab_before_serving_it_is_left_alone() -> None:
    script = JOB + "jupyter lab build --minimize=False\njupyter lab --version\njupyter lab --no-browser --port=8888\n"
    assert not only(script, "HPC538")


def test_the_rule_texts_say_what_is_no_server() -> None:
    for code in ("HPC522", "HPC538", "HPC539"):
        assert "not with --help or --version, nor jupyter server list" in rules()[code].why


# --------------------------------------------------------------------------------------------
# HPC538: stopping a server or runtime after it is tidying up

@pytest.mark.parametrize("server, stop", [
    ("apptainer exec instance://lab jupyter lab --no-browser", "apptainer instance stop lab"),
    ("singularity exec instance://lab jupyter lab --no-browser", "singularity instance stop --all"),
    ("ray start --head --port=6379 --block", "ray stop"),
    ("ray start --head --block", "/usr/bin/ray stop --force"),
    ("jupyter lab --no-browser --port=8888", "jupyter server stop 8888"),
    ("jupyter notebook --no-browser --port=8888", "jupyter-notebook stop 8888"),
])
def test_stopping_what_served_after_it_is_tidying_up(server: str, stop: str) -> None:
    assert not only(JOB + f"{server}\n{stop}\necho done\n", "HPC538")


@pytest.mark.parametrize("after", [
    "apptainer exec img.sif python post.py",
    "apptainer instance start img.sif other",
    "ray job submit -- python train.py",
    "jupyter nbconvert --to html report.ipynb",
])
def test_work_after_a_foreground_server_is_still_reported(after: str) -> None:
    [finding] = only(JOB + f"apptainer exec instance://lab jupyter lab --no-browser\n{after}\n", "HPC538")
    assert "line 6" in finding.message


# --------------------------------------------------------------------------------------------
# HPC522 and HPC539: stopping the server by its command line, its name or a PID file

SERVE = "srun vllm serve m --port 8000 &\n"
CLIENT = "until curl -sf http://localhost:8000/health; do sleep 10; done\npython client.py\n"
LATER = "srun python analyze.py\n"


@pytest.mark.parametrize("stop", [
    'pkill -f "vllm serve"\n',
    "pkill -f vllm\n",
    "pkill -9 -f 'vllm serve'\n",
    "pkill --full --signal KILL 'serve m'\n",
    'pkill -u "$USER" -f "vllm serve"\n',
    "pkill -fi 'VLLM SERVE'\n",
    "pkill -x -f 'srun vllm serve m --port 8000'\n",
    "pkill srun\n",
    "pkill -x srun\n",
    "killall srun\n",
    "killall -9 srun\n",
    "killall -s KILL -u $USER srun\n",
    "killall -r '^sru'\n",
    # the PID saved in a file right after the start
    "echo $! > server.pid\n" + CLIENT + "kill $(cat server.pid)\n",
    'echo "$!" >"$SCRATCH/server.pid"\n' + CLIENT + 'kill -9 "$(< "$SCRATCH/server.pid")"\n',
    "printf '%s\\n' $! >> pids\n" + CLIENT + "kill `cat pids`\n",
    "echo $! > server.pid\n" + CLIENT + "pkill -F server.pid\n",
])
def test_a_kill_by_command_line_name_or_pid_file_ends_the_server(stop: str) -> None:
    assert not only(JOB + SERVE + CLIENT + stop + LATER, "HPC522")


@pytest.mark.parametrize("stop", [
    # srun's command line has no python, and its name is srun: these reach only a task on this node, if any
    "pkill -f 'python.*vllm'\n",
    "pkill vllm\n",
    "killall vllm\n",
    # a pattern that matches nothing of it, another user, one process of many, a signal srun passes on
    "pkill -f sglang\n",
    "pkill -x -f 'vllm serve'\n",
    "killall -u root srun\n",
    "pkill -n -f vllm\n",
    "killall -USR1 srun\n",
    "pkill -USR1 -f vllm\n",
    # another file, a file without $!, or a file written anew since
    "echo $! > server.pid\n" + CLIENT + "kill $(cat other.pid)\n",
    "echo 12345 > server.pid\n" + CLIENT + "kill $(cat server.pid)\n",
    "echo $! > server.pid\nsrun --overlap nvidia-smi dmon &\necho $! > server.pid\n" + CLIENT
    + "kill $(cat server.pid)\n",
    "echo $! > server.pid\n" + CLIENT + "pkill -F other.pid\n",
])
def test_a_kill_that_misses_the_server_keeps_the_finding(stop: str) -> None:
    [finding] = only(JOB + SERVE + CLIENT + stop + LATER, "HPC522")
    assert "never ends by itself" in finding.message


def test_pkill_f_reaches_an_srun_that_a_function_runs() -> None:
    """run &: pkill -P $$ reaches only the subshell, but pkill -f picks srun wherever it is on the node."""
    start = "run() { srun vllm serve m; }\nrun &\n"
    assert not only(JOB + start + CLIENT + 'pkill -f "vllm serve"\n' + LATER, "HPC522")


@pytest.mark.parametrize("server, stop", [
    ("vllm serve m", 'pkill -f "vllm serve"'),
    ("vllm serve m", "killall vllm"),
    ("vllm serve m", "pkill -x vllm"),
    ("srun vllm serve m", "killall srun"),
    ("apptainer exec --nv img.sif vllm serve m", "pkill -f 'vllm serve'"),
    ("jupyter lab --no-browser", "pkill -f jupyter"),
])
def test_a_server_stopped_before_the_wait_is_left_alone(server: str, stop: str) -> None:
    assert not only(JOB + f"{server} &\n" + CLIENT + f"{stop}\nwait\n", "HPC539")


@pytest.mark.parametrize("server, stop", [
    ("python -m vllm.entrypoints.openai.api_server --model m", "killall vllm"),  # its name is python
    ("vllm serve m", "pkill -f sglang"),
    ("vllm serve m", "killall -QUIT vllm"),  # a program bash runs with & ignores QUIT
])
def test_a_server_the_kill_misses_keeps_the_wait_finding(server: str, stop: str) -> None:
    assert only(JOB + f"{server} &\n" + CLIENT + f"{stop}\nwait\n", "HPC539")


def test_a_pid_file_stops_the_server_before_the_wait() -> None:
    script = JOB + "vllm serve m &\necho $! > vllm.pid\n" + CLIENT + "kill $(cat vllm.pid)\nwait\n"
    assert not only(script, "HPC539")


# --------------------------------------------------------------------------------------------
# HPC207: TMPDIR under $HOME

CACHE = 'export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"\n'
PULL = '[ -f "$SCRATCH/tf.sif" ] || apptainer pull "$SCRATCH/tf.sif" docker://tensorflow/tensorflow:2.15.0-gpu\n'


@pytest.mark.parametrize("setting, line", [
    ("export TMPDIR=$HOME/tmp\n", 6),
    ("export TMPDIR=~/tmp\n", 6),
    ('TMPDIR="/home/$USER/tmp"\n', 6),
])
def test_tmpdir_under_home_is_reported_when_apptainer_tmpdir_is_unset(setting: str, line: int) -> None:
    [finding] = only(JOB + CACHE + setting + PULL, "HPC207")
    assert finding.line == line
    assert finding.message.startswith("TMPDIR=")
    assert "under $HOME (small quota), and with APPTAINER_TMPDIR unset apptainer pull unpacks the image's layers" \
        in finding.message
    assert "; export APPTAINER_TMPDIR to a folder on scratch (made with mkdir -p)" in finding.message


def test_tmpdir_before_the_command_and_singularity() -> None:
    [finding] = only(JOB + CACHE + "TMPDIR=$HOME/tmp apptainer build --fakeroot \"$SCRATCH/env.sif\" env.def\n",
                     "HPC207")
    assert finding.line == 6 and "assembles the image's whole root file system there" in finding.message
    script = JOB + 'export SINGULARITY_CACHEDIR="$SCRATCH/.singularity/cache"\nexport TMPDIR=$HOME/tmp\n' \
        + "singularity pull \"$SCRATCH/tf.sif\" docker://tensorflow/tensorflow:2.15.0-gpu\n"
    [finding] = only(script, "HPC207")
    assert "with SINGULARITY_TMPDIR unset singularity pull" in finding.message
    assert "export SINGULARITY_TMPDIR to" in finding.message


@pytest.mark.parametrize("body", [
    # the runtime's own variable (exported, or before the command) or build's --tmpdir takes TMPDIR's place
    'export TMPDIR=$HOME/tmp\nexport APPTAINER_TMPDIR="$SCRATCH/tmp"\n' + PULL,
    'export TMPDIR=$HOME/tmp\nAPPTAINER_TMPDIR="$SCRATCH/tmp" apptainer pull "$SCRATCH/tf.sif" docker://tf/tf:2\n',
    'export TMPDIR=$HOME/tmp\napptainer build --tmpdir "$SCRATCH/t" "$SCRATCH/env.sif" env.def\n',
    # TMPDIR elsewhere, set only after the pull, or no image fetched or built (A3's s34: mpirun of a local image)
    'export TMPDIR="$SCRATCH/tmp"\n' + PULL,
    PULL + "export TMPDIR=$HOME/tmp\n",
    'export TMPDIR=$HOME/tmp\nmpirun -np 4 apptainer exec "$SCRATCH/app.sif" ./solver\n',
])
def test_tmpdir_that_apptainer_does_not_use_here_is_left_alone(body: str) -> None:
    assert not only(JOB + CACHE + body, "HPC207")


def test_the_rule_text_names_tmpdir() -> None:
    assert "With neither set, Apptainer uses TMPDIR" in rules()["HPC207"].why


# --------------------------------------------------------------------------------------------
# HPC206: an image path set with a ~

@pytest.mark.parametrize("setting, image", [
    ("IMG=~/containers/lammps.sif\n", "~/containers/lammps.sif"),
    ("export IMG=~/containers/lammps.sif\n", "~/containers/lammps.sif"),
    ('IMG=~/"my containers"/lammps.sif\n', "~/my containers/lammps.sif"),
    ("BASE=~/containers\nIMG=$BASE/lammps.sif\n", "~/containers/lammps.sif"),
    ("IMG=~\n", "~"),  # then used as $IMG/… below
])
def test_an_image_set_with_a_tilde_is_under_home(setting: str, image: str) -> None:
    use = '"$IMG"/lammps.sif' if setting == "IMG=~\n" else '"$IMG"'
    script = JOB + setting + f"srun --mpi=pmix apptainer exec {use} lmp -in in.lj\n"
    [finding] = only(script, "HPC206")
    shown = image + "/lammps.sif" if setting == "IMG=~\n" else image
    assert f"the image {shown} is under $HOME" in finding.message


def test_a_tilde_image_under_mpiexec_and_a_pull_into_it() -> None:
    script = JOB + "IMG=~/containers/lammps.sif\nmpiexec -n 4 singularity exec \"$IMG\" lmp -in in.lj\n"
    [finding] = only(script, "HPC206")
    assert "every rank mpiexec starts opens it" in finding.message
    script = JOB + 'IMG=~/containers/tf.sif\napptainer pull "$IMG" docker://tensorflow/tensorflow:2.15.0\n'
    assert only(script, "HPC206")


@pytest.mark.parametrize("setting", [
    "IMG=~alice/containers/lammps.sif\n",  # another user's home, not the job's quota
    "IMG=~+/lammps.sif\n",  # ~+ is the current folder
    'IMG="$SCRATCH/containers/lammps.sif"\n',
    "IMG=$SCRATCH/~/lammps.sif\n",
])
def test_an_image_elsewhere_is_left_alone(setting: str) -> None:
    assert not only(JOB + setting + 'srun apptainer exec "$IMG" lmp -in in.lj\n', "HPC206")
