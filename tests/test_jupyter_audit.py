"""JupyterLab job and ``make lab``: the cases an audit found broken (each test failed before its fix)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.cli import main as cli_main
from hpcwidgets.errors import ValidationError
from hpcwidgets.profiles import load_profile
from hpcwidgets.render.jupyter import render_jupyter_job
from hpcwidgets.run import lab
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.jupyter import JupyterJob
from test_jupyter2_s19 import short_tmpdir

LOGIN = "login.example.org"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _run(script: str, work: Path, programs: dict[str, str], env_extra: dict[str, str] | None = None,
         *, drop_user: bool = False) -> tuple[int, str, Path]:
    """Run the job script with bash; ``programs`` are stand-ins (name → Python source) first on PATH."""
    bindir = work / "bin"
    bindir.mkdir(parents=True)
    for name, source in programs.items():
        _write(bindir / name, f"#!{sys.executable}\n{source}")
    tmp = short_tmpdir()
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(tmp), "SLURMD_NODENAME": "n7",
           "SLURM_JOB_ID": "4242", "HPCW_OUT": str(work / "out.txt")}
    if not drop_user:
        env["USER"] = "jdoe"
    env.update(env_extra or {})
    job = _write(work / "job.sh", script)
    proc = subprocess.run(["bash", str(job)], env=env, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr, tmp


# --- ch-run needs $USER in its environment -----------------------------------------------------------------

#: behaves like ch-run 0.31: refuses to start without $USER
CH_RUN = """import os, sys
if not os.environ.get("USER"):
    sys.exit("ch-run[1]: error: $USER not set (ch-run.c:122)")
open(os.environ["HPCW_OUT"], "w").write(os.environ["USER"])
"""


def test_ch_run_job_starts_when_user_is_unset(tmp_path):
    """sbatch --export=NONE, cron: $USER is unset; the script fills it in, and ch-run must see it."""
    script = render_jupyter_job(JupyterJob(login_host=LOGIN, container=ChRun(image="/var/tmp/img", home=True)))
    rc, text, _ = _run(script, tmp_path, {"ch-run": CH_RUN}, drop_user=True)
    assert "$USER not set" not in text
    assert rc == 0, text
    import pwd
    assert (tmp_path / "out.txt").read_text() == pwd.getpwuid(os.getuid()).pw_name


# --- JupyterLab that does not start, or stops -----------------------------------------------------------------

def test_a_missing_jupyter_says_which_setting_to_change(tmp_path):
    script = render_jupyter_job(JupyterJob(login_host=LOGIN, python=str(tmp_path / "no-env"),
                                           helper_python=sys.executable))
    rc, text, tmp = _run(script, tmp_path, {})
    assert rc == 127, text
    assert "error: JupyterLab did not start" in text and "set python (jupyter-job --python)" in text
    assert list(tmp.iterdir()) == [], "the runtime directory is removed after a failed start"


def test_a_jupyterlab_that_stops_before_it_answers_is_explained(tmp_path):
    """A failure that is not about the port (the port is still free): no retry, no tunnel, a plain error."""
    busy = ("import sys\nprint('[C ServerApp] ERROR | something went wrong', file=sys.stderr)\n"
            "sys.exit(1)\n")
    rc, text, _ = _run(render_jupyter_job(JupyterJob(login_host=LOGIN)), tmp_path, {"jupyter": busy})
    assert rc == 1, text
    assert "stopped with exit status 1 before it answered" in text and "read its messages above" in text
    assert text.count("Starting JupyterLab") == 1, "a failure that is not about the port is not retried"
    assert "ssh -N -L" not in text, "no tunnel is printed for a server that never answered"


def test_a_cancelled_job_cleans_up_without_a_false_error(tmp_path):
    """scancel / the time limit: Slurm sends SIGTERM to the script and JupyterLab; no error message follows."""
    script = render_jupyter_job(JupyterJob(login_host=LOGIN))
    sleeper = ("import os, signal, sys, time\n"
               "open(os.environ['HPCW_OUT'], 'w').write('up')\n"
               "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
               "time.sleep(60)\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _write(bindir / "jupyter", f"#!{sys.executable}\n{sleeper}")
    tmp = short_tmpdir()
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp), "USER": "jdoe",
           "SLURMD_NODENAME": "n7", "SLURM_JOB_ID": "4242", "HPCW_OUT": str(tmp_path / "out.txt")}
    job = _write(tmp_path / "job.sh", script)
    proc = subprocess.Popen(["bash", str(job)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "out.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "out.txt").exists(), "the stand-in jupyter never started"
        os.killpg(proc.pid, signal.SIGTERM)  # like slurmstepd: every process of the job
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, out
    assert "error:" not in out, out
    assert list(tmp.iterdir()) == []


# --- the profile fills in the site (jupyter-job --profile NAME) ----------------------------------------------

def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli_main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_jupyter_job_profile_fills_in_the_login_host_and_partition(capsys):
    """The command's own documented example: hpcwidgets jupyter-job --profile midway3 --set job.time=02:00:00."""
    rc, out, err = _cli(capsys, "jupyter-job", "--profile", "midway3", "--set", "job.time=02:00:00")
    assert rc == 0, err
    profile = load_profile("midway3")
    assert f"$USER@{profile.login_host}" in out
    assert f"#SBATCH --partition={profile.default_partition}" in out


def test_jupyter_job_options_and_from_file_win_over_the_profile(capsys, tmp_path):
    rc, out, err = _cli(capsys, "jupyter-job", "--profile", "midway3", "--login-host", "other.example.org")
    assert rc == 0, err
    assert "$USER@other.example.org" in out
    saved = tmp_path / "j.json"
    saved.write_text(JupyterJob(login_host="saved.example.org").to_json())
    rc, out, err = _cli(capsys, "jupyter-job", "--profile", "midway3", "--from", str(saved))
    assert rc == 0, err
    assert "$USER@saved.example.org" in out


def test_for_profile_keeps_the_time_within_the_default_partition(capsys):
    local = load_profile("local")
    part = local.default()
    need(part is not None and part.max_seconds() is not None and part.max_seconds() < 7200,
         "the local profile's default partition no longer has a limit under two hours")
    model = JupyterJob.for_profile(local)
    assert model.job.time == part.max_time or model.job.time == "01:00:00"
    rc, out, err = _cli(capsys, "jupyter-job", "--profile", "local")
    assert rc == 0, err
    assert "over the" not in err


def test_a_container_typed_as_text_says_how_to_give_one(capsys):
    rc, _, err = _cli(capsys, "jupyter-job", "--login-host", LOGIN, "--container", "img.sif")
    assert rc == 2
    assert "give the whole command line" in err and "--container 'apptainer exec --nv image.sif'" in err
    rc, out, err = _cli(capsys, "jupyter-job", "--login-host", LOGIN, "--container", "apptainer exec --nv img.sif")
    assert rc == 0 and "apptainer exec --nv" in out and "img.sif" in out, err
    with pytest.raises(ValidationError, match="--from"):
        JupyterJob(login_host=LOGIN, container="img.sif").validate()  # type: ignore[arg-type]


# --- make lab inside a Slurm job -------------------------------------------------------------------------------

def test_login_user_without_user_is_the_account_name_not_a_shell_variable(tmp_path):
    import pwd
    me = pwd.getpwuid(os.getuid()).pw_name
    assert lab.login_user({}) == me
    assert lab.login_user({"USER": "first.last"}) == "first.last"
    p = lab.plan(lab.parser().parse_args(["--notebook-dir", str(tmp_path), "--login-host", LOGIN]),
                 {"SLURM_JOB_ID": "7", "SLURMD_NODENAME": "n3"}, token="t" * 48, is_root=False)
    tunnel = next(line for line in p.lines if "ssh -N -L" in line)
    assert "$USER" not in tunnel, "on the laptop $USER is the laptop's user, not the cluster's"
    assert tunnel.strip().endswith(f"{me}@{LOGIN}")


def test_make_output_private_changes_regular_files_only(tmp_path):
    log = tmp_path / "slurm-1.out"
    log.write_text("")
    log.chmod(0o644)
    r, w = os.pipe()
    with log.open("a") as fh:
        try:
            assert lab.make_output_private([fh.fileno(), w]) == [fh.fileno()]
        finally:
            os.close(r)
            os.close(w)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_make_lab_in_a_batch_job_makes_its_log_private_before_printing_the_token(tmp_path):
    import importlib.util
    need(importlib.util.find_spec("jupyterlab") is not None, "JupyterLab is not installed in this Python")
    log = tmp_path / "slurm-9.out"
    log.write_text("")
    log.chmod(0o644)
    code = ("import os, sys\nfrom hpcwidgets.run import lab\n"
            "lab.Supervisor.start = lambda self, plan: True\n"  # as if JupyterLab had started and answered
            "lab.Supervisor.wait = lambda self: 0\n"
            f"sys.exit(lab.main(['--notebook-dir', {str(tmp_path)!r}, '--login-host', 'login.example.org']))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env.update(SLURM_JOB_ID="9", SLURMD_NODENAME="n1")
    with log.open("a") as out:
        proc = subprocess.run([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, env=env,
                              cwd=Path(__file__).parent.parent, timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "token=" in text and "ssh -N -L" in text
    assert stat.S_IMODE(log.stat().st_mode) & 0o077 == 0, "the job log holds the token and must be private"


def test_ch_run_home_notebook_folder_is_where_ch_run_mounts_the_home():
    """ch-run --home mounts the host's home at /home/$USER; the batch shell's $HOME is the host path."""
    from hpcwidgets.render import render
    from hpcwidgets.spec import ChRun
    job = JupyterJob(login_host=LOGIN, container=ChRun(image="/scratch/img", home=True), notebook_dir="$HOME/nb")
    assert '"--notebook-dir=/home/$USER/nb"' in render(job)
    apptainer = JupyterJob(login_host=LOGIN, notebook_dir="$HOME/nb")
    assert '"--notebook-dir=$HOME/nb"' in render(apptainer)
