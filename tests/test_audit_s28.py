"""What an audit of container job scripts from HPC centres' repositories found lint getting wrong or missing
(session 28). Each script is a small one of our own in the shape the audit found."""

from __future__ import annotations

import os
import subprocess

import pytest

from helpers import bash_image_dir
from hpcwidgets.fixes import apply_fix
from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def found(text: str, code: str, profile=None) -> list:
    return [f for f in lint(text, profile) if f.code == code]


# --- HPC239: ch-run reads options after the image as its own, until a -- ---------------------------------------------

@pytest.mark.parametrize(("step", "taken", "says"), [
    ("srun ch-run /scratch/imgs/app python /app/run.py --epochs 10", "--epochs", "unrecognized option '--epochs'"),
    ("ch-run /img python -c 'print(1)'", "-c", "--cd: it changes into that folder"),
    ("ch-run -b /data:/mnt/0 /img python /opt/train.py -b 64", "-b", "it binds the word after it"),
    ("ch-run --set-env /img sh -c 'env'", "-c", "--cd"),
    ("ch-run /img python /opt/run.py --bind /home/alice/out:/app/output", "--bind", "binds"),
])
def test_an_option_after_the_image_without_a_double_dash_is_ch_runs(step, taken, says):
    text = HEAD + step + "\n"
    [f] = found(text, "HPC239")
    assert f.line == 3 and f"{taken} is read as ch-run's" in f.message and says in f.message
    fixed = apply_fix(text, f.fix)
    image = step.split(" python")[0].split(" sh -c")[0]
    assert fixed.split("\n")[2].startswith(image + " -- ")
    assert found(fixed, "HPC239") == []


@pytest.mark.parametrize("step", [
    "ch-run /img -- python /opt/run.py --epochs 10",
    "ch-run -c /mnt/0 -b /data:/mnt/0 /img -- python run.py -b 64",
    "ch-run /img cat /etc/os-release",            # no option after the image
    "ch-run /img python /opt/run.py $ARGS",       # what $ARGS holds is not known
    "ch-run /img python /opt/run.py - < in.txt",  # - is standard input, no option
    "ch-run -w ~/img -b ~/data/ -- sh /app/run.sh 24",   # options after the image, before --: ch-run's, as meant
    "ch-run /img -b /data:/mnt/0 python /opt/run.py",    # between the image and the command: ch-run's, as meant
])
def test_a_command_ch_run_reads_as_written_is_left_alone(step):
    assert found(HEAD + step + "\n", "HPC239") == []


def test_the_host_path_rule_leaves_a_ch_run_without_double_dash_to_hpc239():
    """The audit's false HPC224: with no --, the --bind after the command is ch-run's, so the folder is bound."""
    text = HEAD + "srun ch-run /scratch/imgs/app python /app/run.py --bind /home/alice/out:/app/output\n"
    assert [f.code for f in lint(text) if f.severity == "error"] == ["HPC239"]


@pytest.mark.real
def test_a_real_ch_run_takes_the_commands_options_without_a_double_dash(tmp_path):
    image = bash_image_dir(tmp_path / "img")
    env = {"PATH": "/usr/bin:/bin", "USER": os.environ.get("USER", "root"), "HOME": str(tmp_path)}

    def run(*words: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ch-run", str(image), *words], env=env, capture_output=True, text=True, timeout=60)
    without = run("/bin/bash", "-c", "echo in the container")
    assert without.returncode != 0 and "can't cd to echo in the container" in without.stderr
    unknown = run("/bin/bash", "/x.sh", "--epochs", "3")
    assert unknown.returncode != 0 and "unrecognized option '--epochs'" in unknown.stderr
    with_dash = run("--", "/bin/bash", "-c", "echo in the container")
    assert with_dash.returncode == 0 and with_dash.stdout == "in the container\n"


# --- HPC507: an install that runs only when the environment is missing -------------------------------------------------

@pytest.mark.parametrize(("body", "reported"), [
    ('if [ ! -d "$VENV" ]; then\n  python3 -m venv "$VENV"\n  "$VENV/bin/python" -m pip install numpy==2.1.0\nfi', False),
    ('if [[ ! -e $VENV/bin/activate ]]; then pip install --user numpy; fi', False),
    ('if ! python -c "import numpy"; then pip install --user numpy; fi', False),
    ('[ -d "$VENV" ] || pip install numpy', False),
    ('if [ -d "$VENV" ]; then pip install numpy; fi', True),             # installs when it IS there
    ('if [ "$MODE" != test ]; then pip install numpy; fi', True),         # != is no test of a file
    ('pip install numpy', True),
])
def test_an_install_guarded_by_a_missing_environment_runs_once(body, reported):
    assert bool(found(HEAD + body + "\n", "HPC507")) is reported


# --- HPC209: a bind over ~/.local hides the host's packages -----------------------------------------------------------

@pytest.mark.parametrize(("bind", "reported"), [
    ("/scratch/$USER/pyenv:$HOME/.local", False),
    ("/scratch/$USER/pyenv:~/.local", False),
    ("/scratch/$USER/pyenv:/home/alice/.local/", False),
    ("/scratch/$USER/pyenv:/opt/env", True),
    ("$HOME/.local/share:/data", True),
])
def test_a_folder_bound_over_home_local_hides_the_hosts_packages(bind, reported):
    text = HEAD + f"#SBATCH --gres=gpu:1\napptainer exec --nv --bind {bind} pytorch.sif python train.py\n"
    assert bool(found(text, "HPC209")) is reported


# --- HPC208/HPC210: a pull run through srun is a pull ------------------------------------------------------------------

def test_a_pull_under_srun_is_reported_like_one_without():
    step = "singularity pull --disable-cache docker://tensorflow/tensorflow:latest-gpu"
    for line in (step, "srun -c $SLURM_CPUS_PER_TASK " + step, "srun --ntasks=1 time " + step):
        codes = {f.code for f in lint(HEAD + line + "\nsrun singularity exec tensorflow_latest-gpu.sif python x.py\n")}
        assert {"HPC208", "HPC210"} <= codes, line


# --- HPC207/HPC208: one finding per image, not per step ----------------------------------------------------------------

def test_steps_that_fetch_the_same_image_are_one_finding_that_names_them():
    steps = "".join(f"srun singularity exec docker://quay.io/pawsey/openfoam:v2012 solver{k}\n" for k in range(4))
    text = HEAD + steps
    [fetch] = found(text, "HPC208")
    assert fetch.line == 3 and "(and so do the steps on lines 4, 5, 6)" in fetch.message
    [cache] = found(text, "HPC207")
    assert cache.line == 3 and "(so do the steps on lines 4, 5, 6)" in cache.message
    other = text + "srun singularity exec docker://ubuntu:24.04 true\n"
    assert [f.line for f in found(other, "HPC208")] == [3, 7]  # another image: its own finding


# --- HPC315: a #! line below comments is moved up, options and all ----------------------------------------------------

def test_a_shebang_below_comments_is_moved_to_the_top_with_its_options():
    text = "# my job\n# author: me\n#!/bin/bash -l\n#SBATCH --time=00:10:00\nsrun hostname\n"
    [f] = found(text, "HPC315")
    assert "line 3, below comments" in f.message
    fixed = apply_fix(text, f.fix)
    assert fixed == "#!/bin/bash -l\n# my job\n# author: me\n#SBATCH --time=00:10:00\nsrun hostname\n"
    assert found(fixed, "HPC315") == []


def test_a_script_with_no_shebang_at_all_still_gets_one_added():
    [f] = found("#SBATCH --time=00:10:00\nsrun hostname\n", "HPC315")
    assert apply_fix("#SBATCH --time=00:10:00\nsrun hostname\n", f.fix).startswith("#!/bin/bash\n#SBATCH")


# --- HPC536: what a placeholder left in an #SBATCH line does, by option ------------------------------------------------

@pytest.mark.parametrize(("line", "says"), [
    ("#SBATCH --mail-user=<your email>", "Slurm's mail goes to that text"),
    ("#SBATCH --output=[path/to/logs]/%j.out", "fails to start when no folder of that name exists"),
    ("#SBATCH --account=<project>", "refuses the job"),
])
def test_a_placeholder_in_a_directive_says_what_sbatch_does_with_it(line, says):
    [f] = found(f"#!/bin/bash\n{line}\nsrun hostname\n", "HPC536")
    assert says in f.message


# --- HPC545: --export with names and no ALL ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "line"), [
    ("#!/bin/bash\n#SBATCH --export=LR=0.1,EPOCHS=3\n#SBATCH --time=01:00:00\nsrun python train.py\n", 2),
    ("#!/bin/bash\njid=$(sbatch --parsable --export=EXP_NAME=\"$EXP\" jobs/train.sh)\n", 2),
    ("#!/bin/bash\nfor lr in 1 2; do\n  sbatch --export LR=$lr job.sh\ndone\n", 3),
])
def test_an_export_list_without_all_is_reported(text, line):
    [f] = found(text, "HPC545")
    assert f.line == line and "write --export=ALL," in f.message


@pytest.mark.parametrize("text", [
    "#!/bin/bash\n#SBATCH --export=ALL,LR=0.1\n#SBATCH --time=01:00:00\nsrun python train.py\n",
    "#!/bin/bash\n#SBATCH --export=NONE\n#SBATCH --time=01:00:00\nunset SLURM_EXPORT_ENV\nsrun python train.py\n",
    "#!/bin/bash\nsbatch --export=ALL,LR=1 job.sh\nsbatch --export=$VARS job.sh\nsbatch --export=NONE job.sh\n",
])
def test_all_none_and_a_list_in_a_variable_are_left_alone(text):
    assert found(text, "HPC545") == []


def test_the_fix_puts_all_first_on_the_directive():
    text = "#!/bin/bash\n#SBATCH --export=LR=0.1\n#SBATCH --time=01:00:00\nsrun python train.py\n"
    [f] = found(text, "HPC545")
    assert apply_fix(text, f.fix).split("\n")[1] == "#SBATCH --export=ALL,LR=0.1"


@pytest.mark.real
def test_a_step_of_a_job_exported_without_all_cannot_find_its_program(tmp_path):
    """What HPC545 rests on, on the practice cluster: the list reaches srun as SLURM_EXPORT_ENV, without PATH."""
    from helpers import need, need_tool, sbatch_and_wait
    from hpcwidgets.run import practice_cluster as pc
    need_tool("sbatch", "Slurm's client programs (apt-get install slurm-client)")
    st = pc.status()
    need(st.running, "the practice cluster is not up (run: sudo hpcwidgets practice-cluster up)")
    env = {**os.environ, "SLURM_CONF": str(st.slurm_conf), "FROM_SHELL": "yes"}
    results = {}
    for name, export in (("bare", "LR=1"), ("all", "ALL,LR=1")):
        script = tmp_path / f"{name}.sh"
        out = tmp_path / f"{name}.out"
        script.write_text(f"#!/bin/bash\n#SBATCH --export={export}\n#SBATCH --time=00:02:00\n#SBATCH --output={out}\n"
                          'echo "batch LR=[$LR] FROM_SHELL=[$FROM_SHELL]"\nsrun bash -c \'echo "step LR=[$LR]"\'\n')
        assert (found(script.read_text(), "HPC545") != []) is (name == "bare")
        sbatch_and_wait(script, env)
        results[name] = out.read_text()
    assert "batch LR=[1] FROM_SHELL=[]" in results["bare"] and "step LR=" not in results["bare"]
    assert "No such file or directory" in results["bare"]
    assert "batch LR=[1] FROM_SHELL=[yes]" in results["all"] and "step LR=[1]" in results["all"]


# --- HPC602: a token written as the default of ${NAME:-…} -------------------------------------------------------------

@pytest.mark.parametrize(("line", "reported"), [
    ('export WANDB_API_KEY="${WANDB_API_KEY:-"fdfd0123456789abcdef49aa"}"', True),
    ("HF_TOKEN=${HF_TOKEN:-hf_abcdefghijklmnop}", True),
    ("export WANDB_API_KEY=${WANDB_API_KEY:-}", False),
    ('export WANDB_API_KEY="${WANDB_API_KEY:-$(cat ~/.wandb_key)}"', False),
    ("export WANDB_MODE=${WANDB_MODE:-offline}", False),
])
def test_a_secret_given_as_a_default_is_a_secret_in_the_script(line, reported):
    hits = found(HEAD + line + "\npython train.py\n", "HPC602")
    assert bool(hits) is reported
    if reported:
        assert "as the default of" in hits[0].message


# --- HPC502: a rank torchrun sets again for every worker -------------------------------------------------------------

TORCHRUN_STEP = ("srun apptainer exec --nv img.sif torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
                 "--rdzv-endpoint=$MASTER_ADDR:29500 train.py\n")


@pytest.mark.parametrize(("export", "step", "reported"), [
    ("export RANK=$SLURM_PROCID", TORCHRUN_STEP, False),          # torchrun sets RANK for each worker
    ("export RANK=$SLURM_PROCID", "srun python train.py\n", True),  # the program reads the batch shell's 0
    ("export NODE_RANK=$SLURM_NODEID", "srun python train.py\n", True),
    ("export RANK=$SLURM_PROCID WORLD=$SLURM_PROCID", TORCHRUN_STEP, True),  # WORLD is no torchrun variable
])
def test_a_rank_torchrun_sets_again_is_no_mistake(export, step, reported):
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node=4\n"
            'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n' + export + "\n" + step)
    assert bool(found(text, "HPC502")) is reported
