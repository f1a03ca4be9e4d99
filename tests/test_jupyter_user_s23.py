"""A Jupyter job that runs JupyterLab with ch-run fills in $USER before its exports and set-up lines, which may name
it under ``set -u`` (a site's job_env such as ``MIOPEN_USER_DB_PATH=/tmp/$USER-miopen``, a scratch path)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from hpcwidgets.parse.jupyter import parse_jupyter_job
from hpcwidgets.render import render
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.charliecloud import USER_LINE, ChRun
from hpcwidgets.spec.common import EnvVar
from hpcwidgets.spec.jupyter import JupyterJob

CH_RUN = ChRun(image="/scratch/img", home=True)
APPTAINER = ApptainerRun(action="exec", image="/scratch/img.sif")


def _job(container) -> JupyterJob:
    job = JupyterJob(container=container, login_host="login.example.org", notebook_dir="$HOME")
    return job.replace(job=job.job.replace(env=(EnvVar("CACHE_HOME", "/scratch/$USER/cache"),),
                                           setup=('mkdir -p "/scratch/$USER/cache"',)))


def _head(text: str) -> str:
    """The script up to its own commands: the prologue, the user line, the exports and the set-up lines."""
    return text[:text.index("# --- Private files")]


def test_ch_run_fills_in_user_before_the_exports_once():
    text = render(_job(CH_RUN))
    lines = text.split("\n")
    assert lines.count(USER_LINE) == 1
    assert lines.index(USER_LINE) < next(k for k, line in enumerate(lines) if "$USER" in line and line != USER_LINE
                                                 and not line.startswith("#"))
    assert lines.index(USER_LINE) < next(k for k, line in enumerate(lines) if line.startswith("export CACHE_HOME"))
    assert "id -un" not in text[text.index("# --- Private files"):]  # not filled in a second time


def test_without_ch_run_the_job_fills_it_in_before_the_server_as_before():
    text = render(_job(APPTAINER))
    assert USER_LINE not in text.split("\n")
    assert text.count('export USER="${USER:-$(id -un)}"') == 1 and "the tunnel names it" in text


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_head_runs_with_user_unset(tmp_path):
    # sbatch --export=NONE or cron: no $USER; under set -u the export would stop the job with "unbound variable"
    head = _head(render(_job(CH_RUN))).replace("/scratch/", f"{tmp_path}/scratch/")
    env = {k: v for k, v in os.environ.items() if k != "USER"}
    done = subprocess.run(["bash", "-c", head + 'printf "%s\\n" "$CACHE_HOME"'], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    me = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    assert done.stdout.strip() == f"{tmp_path}/scratch/{me}/cache"
    assert (tmp_path / "scratch" / me / "cache").is_dir()
    # the script as it was written before (the export first) stops there, which is what the line above prevents
    before = head.replace(USER_LINE + "\n", "")
    broke = subprocess.run(["bash", "-c", before], env=env, capture_output=True, text=True, timeout=30)
    assert broke.returncode != 0 and "USER: unbound variable" in broke.stderr


@pytest.mark.parametrize("container", [CH_RUN, APPTAINER, None], ids=["ch-run", "apptainer", "none"])
def test_read_back_gives_the_same_job(container):
    job = _job(container)
    text = render(job)
    back = parse_jupyter_job(text)
    assert render(back) == text
    assert back.job.setup == job.job.setup and back.job.env == job.job.env
