"""JupyterLab on a compute node: the defects a sixth audit found (each test failed before its fix).

Security: a token on the command line (HPC606), a fixed token through JUPYTER_TOKEN (HPC602), a switched-off
token in the space form or under ``python -m jupyterlab`` (HPC603). Working jobs: ``jupyter-job --from`` keeps
set-up lines, a Charliecloud notebook folder outside $HOME needs a bind, JupyterLab gets the submitter's umask
back, the time follows the partition chosen with --set. False alarms: HPC604 with other spellings of
port_retries=0, HPC221 and the model with a bind whose destination is $HOME, HPC605 only informs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hpcwidgets.cli import main as cli_main
from hpcwidgets.lint import lint, rules
from hpcwidgets.parse import parse_jupyter_job
from hpcwidgets.render.jupyter import render_jupyter_job
from hpcwidgets.spec import ApptainerRun, Bind
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.jupyter import JupyterJob

LOGIN = "login.example.org"


def codes(text: str) -> list[str]:
    return sorted(f.code for f in lint(text))


def job_script(line: str, before: str = "") -> str:
    return f"#!/bin/bash\n#SBATCH --time=02:00:00\n{before}{line}\n"


# --- S1: the token or password on the command line, which ps shows to everyone ----------------------------

@pytest.mark.parametrize("line", [
    'jupyter notebook --ip 0.0.0.0 --port 8888 --no-browser --NotebookApp.token=$TOKEN --NotebookApp.port_retries=0',
    'jupyter lab --no-browser --ServerApp.port_retries=0 --ServerApp.token="$tok"',
    'jupyter lab --no-browser --ServerApp.port_retries=0 --ServerApp.token "$tok"',
    'jupyter lab --no-browser --ServerApp.port_retries=0 --IdentityProvider.token=abc',
    "jupyter lab --no-browser --ServerApp.port_retries=0 --PasswordIdentityProvider.hashed_password='argon2:$x'",
    'python3 -m jupyterlab --no-browser --ServerApp.port_retries=0 --ServerApp.token=$TOKEN',
])
def test_a_token_or_password_on_the_command_line_is_an_error_naming_jupyter_token(line):
    found = [f for f in lint(job_script(line)) if f.code == "HPC606"]
    assert len(found) == 1 and found[0].severity == "error", lint(job_script(line))
    assert "JUPYTER_TOKEN" in found[0].message and "ps" in found[0].message


def test_only_a_secret_on_the_command_line_is_hpc606():
    assert "HPC606" in codes(job_script("jupyter lab --no-browser --ServerApp.port_retries=0 --ServerApp.token=x"))
    for line in ("jupyter lab --no-browser --ServerApp.port_retries=0",
                 # a dead alias: jupyter_server ignores --token= ("Unrecognized alias") and makes a random token
                 "jupyter lab --no-browser --ServerApp.port_retries=0 --token=0123456789abcdef",
                 "jupyter lab --no-browser --ServerApp.port_retries=0 --ServerApp.token=''"):  # HPC603's case
        assert "HPC606" not in codes(job_script(line)), line


# --- S2: a fixed token written in the script through the environment -------------------------------------

@pytest.mark.parametrize("assignment", [
    "export JUPYTER_TOKEN=famousamos2024",
    "export APPTAINERENV_JUPYTER_TOKEN='famousamos'",
    "export SINGULARITYENV_JUPYTER_TOKEN=Test",   # short, but still a password anyone reading the script knows
])
def test_a_fixed_jupyter_token_in_the_environment_is_a_secret_in_the_script(assignment):
    found = [f for f in lint(job_script("jupyter lab --no-browser --ServerApp.port_retries=0", assignment + "\n"))
             if f.code == "HPC602"]
    assert len(found) == 1, assignment
    assert "fixed Jupyter token" in found[0].message and "secrets" in found[0].message


def test_only_a_fixed_jupyter_token_is_flagged():
    start = "jupyter lab --no-browser --ServerApp.port_retries=0"
    assert "HPC602" in codes(job_script(start, "export JUPYTER_TOKEN=0123456789abcdef\n"))
    for assignment in ('export JUPYTER_TOKEN="$jl_token"', "export JUPYTER_TOKEN=",
                       'export JUPYTER_TOKEN=$(cat "$HOME/.jupyter-token")'):
        assert "HPC602" not in codes(job_script(start, assignment + "\n")), assignment
    # the generated jobs pass it as JUPYTER_TOKEN="$jl_token" (and the prefixed copies), and stay clean
    for model in (JupyterJob(login_host=LOGIN),
                  JupyterJob(login_host=LOGIN, container=ApptainerRun(image="i.sif", cleanenv=True))):
        assert [f for f in lint(render_jupyter_job(model)) if f.severity != "info"] == []


# --- S3: a switched-off token in other spellings ---------------------------------------------------------

@pytest.mark.parametrize("line", [
    "jupyter lab --no-browser --ip 0.0.0.0 --port 8888 --ServerApp.token '' --ServerApp.port_retries=0",
    "python -m jupyterlab --no-browser --ip=0.0.0.0 --port=8888 --ServerApp.token='' --ServerApp.port_retries=0",
    "python3 -m notebook --no-browser --port=8888 --NotebookApp.token= --NotebookApp.port_retries=0",
    "/opt/env/bin/python3.11 -m jupyter lab --no-browser --IdentityProvider.token ''",
])
def test_an_empty_token_is_found_in_every_spelling(line):
    assert "HPC603" in codes(job_script(line))


def test_a_generated_job_started_with_python_m_jupyterlab_is_read_as_a_server_and_clean():
    script = render_jupyter_job(JupyterJob(login_host=LOGIN, python="/opt/py/bin/python3"))
    assert "-m jupyterlab" in script
    assert [f for f in lint(script) if f.severity != "info"] == []
    bad = script.replace("--ServerApp.port_retries=0", "--ServerApp.port_retries=0 --ServerApp.token=''")
    assert "HPC603" in codes(bad)


def test_the_space_form_names_the_open_address():
    line = "jupyter lab --no-browser --ip 0.0.0.0 --ServerApp.token '' --ServerApp.port_retries=0"
    found = [f for f in lint(job_script(line)) if f.code == "HPC603"]
    assert found and "--ip=0.0.0.0" in found[0].message


# --- F1: port_retries=0 in other accepted spellings ------------------------------------------------------

@pytest.mark.parametrize("retries", ["--port-retries=0", "--port-retries 0", "--ServerApp.port_retries 0"])
def test_port_retries_switched_off_in_another_spelling_is_accepted(retries):
    line = 'jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 {}'
    assert "HPC604" not in codes(job_script(line.format(retries)))
    # the same spellings with retries on, and none at all, are still reported
    assert "HPC604" in codes(job_script(line.format(retries.replace("0", "5"))))
    assert "HPC604" in codes(job_script(line.format("")))


# --- F2: a bind whose destination is $HOME under --containall --------------------------------------------

@pytest.mark.parametrize("bind", ['-B "$PWD:$HOME"', "-B $(pwd):$HOME", '--bind "$SCRATCH/home:$HOME"'])
def test_a_bind_onto_home_makes_home_visible_to_lint(bind):
    line = (f"singularity exec -C {bind} class.sif jupyter notebook --no-browser --port=8888 "
            '--ServerApp.port_retries=0 --ip "$(hostname -s)" --notebook-dir="$HOME"')
    assert "HPC221" not in codes(job_script(line))
    # a bind to another destination still leaves $HOME out
    elsewhere = 'apptainer exec --containall --bind "$HOME/project:/project" img.sif python "$HOME/project/train.py"'
    assert "HPC221" in codes(job_script(elsewhere))


def test_the_model_accepts_a_bind_onto_the_notebook_folder():
    onto_home = ApptainerRun(image="class.sif", containall=True, binds=(Bind("$PWD", "$HOME"),))
    assert JupyterJob(login_host=LOGIN, container=onto_home).problems() == []
    elsewhere = ApptainerRun(image="class.sif", containall=True, binds=(Bind("$HOME/nb", "/nb"),))
    assert [p.field for p in JupyterJob(login_host=LOGIN, container=elsewhere, notebook_dir="$HOME/nb").problems()] \
        == ["notebook_dir"]


def test_a_pawsey_style_script_with_a_command_substitution_bind_reads_back(tmp_path, capsys):
    script = tmp_path / "run_session.sh"
    script.write_text(job_script("singularity exec -C -B $(pwd):$HOME class.sif jupyter notebook --no-browser "
                                 "--port=8888 --ip 0.0.0.0 --notebook-dir=$HOME"))
    rc = cli_main(["jupyter-job", "--from", str(script), "--login-host", LOGIN, "--format", "json"])
    _, err = capsys.readouterr()
    assert rc == 0, err


# --- F3: HPC605 is about old Jupyter ---------------------------------------------------------------------

def test_xdg_runtime_dir_is_information_about_old_jupyter():
    assert rules()["HPC605"].severity == "info"
    assert "4.5" in rules()["HPC605"].why
    found = [f for f in lint(job_script("jupyter lab --no-browser --ServerApp.port_retries=0",
                                        "export XDG_RUNTIME_DIR=/run/user/$(id -u)\n")) if f.code == "HPC605"]
    assert found and found[0].severity == "info" and "4.5" in found[0].message


def test_the_installed_jupyter_ignores_xdg_runtime_dir(monkeypatch, tmp_path):
    """What lowered HPC605 to info: jupyter_core >= 4.5 keeps its runtime files elsewhere."""
    paths = pytest.importorskip("jupyter_core.paths")
    monkeypatch.delenv("JUPYTER_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run-user"))
    assert not paths.jupyter_runtime_dir().startswith(str(tmp_path / "run-user"))
    assert rules()["HPC605"].severity == "info"


# --- W1: jupyter-job --from keeps set-up lines ----------------------------------------------------------

def _saved(tmp_path: Path, capsys, *argv: str) -> str:
    out = tmp_path / f"job{len(list(tmp_path.iterdir()))}.sbatch"
    rc = cli_main(["jupyter-job", *argv, "-o", str(out)])
    _, err = capsys.readouterr()
    assert rc == 0, err
    return out.read_text()


@pytest.mark.parametrize("extra", [
    (),
    ("--set", "job.fail_fast=off", "--set", "job.shell=/bin/bash -l"),
    ("--container", "apptainer exec --cleanenv img.sif"),
])
def test_a_generated_job_reads_back_byte_identical_with_its_set_up_lines(tmp_path, capsys, extra):
    first = _saved(tmp_path, capsys, "--profile", "generic", "--set",
                   'job.setup=source "$HOME/miniconda3/etc/profile.d/conda.sh"', "--set", "job.setup=conda activate ml",
                   "--set", "job.env=OMP_NUM_THREADS=2", *extra)
    assert 'conda activate ml' in first
    path = tmp_path / "first.sbatch"
    path.write_text(first)
    assert _saved(tmp_path, capsys, "--from", str(path)) == first


def test_a_foreign_job_keeps_its_environment_before_the_server():
    model = parse_jupyter_job("#!/bin/bash\n#SBATCH --time=01:00:00\nmodule load anaconda3\n"
                              "export MPLBACKEND=Agg\nsource activate fyp\n"
                              "jupyter lab --no-browser --ip=$(hostname -s) --port=8888\necho done\n")
    assert model.job.setup == ("source activate fyp",)
    assert model.job.modules == ("anaconda3",) and [e.name for e in model.job.env] == ["MPLBACKEND"]
    assert model.job.time == "01:00:00" and not model.job.commands
    script = render_jupyter_job(model.replace(login_host=LOGIN))
    assert script.index("source activate fyp") < script.index("umask 077")
    assert "echo done" not in script
    # a script that starts no server gives its job alone
    other = parse_jupyter_job("#!/bin/bash\n#SBATCH --time=01:00:00\nsource activate fyp\npython train.py\n")
    assert other.job.setup == () and other.job.time == "01:00:00"


# --- W2: a Charliecloud notebook folder outside $HOME ----------------------------------------------------

def test_a_charliecloud_notebook_folder_on_scratch_needs_a_bind():
    model = JupyterJob(login_host=LOGIN, container=ChRun(image="/var/tmp/img", home=True), notebook_dir="$SCRATCH/project")
    problems = model.problems()
    assert [p.field for p in problems] == ["notebook_dir"]
    assert 'ch-run -b "$SCRATCH/project"' in problems[0].message
    for container, folder in [
        (ChRun(image="/var/tmp/img", binds=(Bind("$SCRATCH"),)), "$SCRATCH/project"),
        (ChRun(image="/var/tmp/img", binds=(Bind("$SCRATCH/project", "/work"),)), "/work"),
        (ChRun(image="/var/tmp/img", home=True), "/home/$USER/nb"),
        (ChRun(image="/var/tmp/img"), "/tmp/nb-$USER"),
        (ChRun(image="/var/tmp/img"), "/opt/notebooks"),  # may be the image's own folder
    ]:
        assert JupyterJob(login_host=LOGIN, container=container, notebook_dir=folder).problems() == [], folder


# --- W3: JupyterLab and its kernels get the submitter's umask back ---------------------------------------

#: a stand-in jupyter: records its umask and the modes of the job's private files, then stops
UMASK_PROBE = """import json, os, stat, sys
mask = os.umask(0); os.umask(mask)
runtime = os.path.dirname(os.environ["JUPYTER_RUNTIME_DIR"])
mode = lambda p: oct(stat.S_IMODE(os.stat(p).st_mode))
json.dump({"umask": oct(mask), "token": mode(os.path.join(runtime, "token")), "runtime": mode(runtime),
           "jupyter_runtime": mode(os.environ["JUPYTER_RUNTIME_DIR"])}, open(os.environ["HPCW_OUT"], "w"))
"""


def test_jupyterlab_saves_notebooks_with_the_submitters_umask(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    probe = bindir / "jupyter"
    probe.write_text(f"#!{sys.executable}\n{UMASK_PROBE}")
    probe.chmod(0o755)
    (tmp_path / "tmp").mkdir()
    job = tmp_path / "job.sh"
    job.write_text(render_jupyter_job(JupyterJob(login_host=LOGIN, helper_python=sys.executable)))
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path / "tmp"),
           "USER": "jdoe", "SLURMD_NODENAME": "n7", "HPCW_OUT": str(tmp_path / "out.json")}
    # a group project: the researcher's umask is 002, as Slurm passes it on to the batch script
    proc = subprocess.run(["bash", "-c", 'umask 002; exec bash "$0"', str(job)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads((tmp_path / "out.json").read_text())
    assert seen["umask"] == "0o2", "JupyterLab and its kernels work with the submitter's umask"
    assert (seen["token"], seen["runtime"], seen["jupyter_runtime"]) == ("0o600", "0o700", "0o700")


# --- W6: the time follows the partition chosen after the profile ----------------------------------------

SITE = """name = "debugfirst"
login_host = "login.sc.example.edu"
default_partition = "debug"
default_gpu_partition = "gpu"
gpu_vendor = "nvidia"

[[partitions]]
name = "debug"
is_default = true
max_time = "00:30:00"

[[partitions]]
name = "gpu"
max_time = "1-00:00:00"
gpus_per_node = 4
"""


@pytest.mark.parametrize("argv", [("--set", "job.partition=gpu"), ("--set", "job.gpus_per_node=1")])
def test_the_time_fits_the_partition_the_job_lands_on(tmp_path, capsys, argv):
    """--set job.partition=gpu (or GPUs, which the site routes to gpu) after a profile whose default is a debug queue."""
    site = tmp_path / "site.toml"
    site.write_text(SITE)

    def time_of(*more: str) -> str:
        rc = cli_main(["jupyter-job", "--profile", str(site), *more])
        out, err = capsys.readouterr()
        assert rc == 0, err
        return out.split("#SBATCH --time=", 1)[1].split("\n", 1)[0]
    assert time_of(*argv) == "02:00:00"
    assert time_of() == "00:30:00"                                    # the debug queue's limit
    assert time_of(*argv, "--set", "job.time=00:20:00") == "00:20:00"  # a time the person chose stays


def test_for_profile_still_fits_the_default_partition(tmp_path):
    from hpcwidgets.profiles import profile_from_toml
    site = profile_from_toml(SITE, source="site.toml")
    assert JupyterJob.for_profile(site).job.time == "00:30:00"
    assert JupyterJob.for_profile(site).replace(job=JupyterJob.for_profile(site).job.replace(
        partition="gpu", time="")).fit_time(site).job.time == "02:00:00"
