"""Session 19, audit A5: the JupyterLab job and ``make lab`` keep the kernels' channels private (Unix sockets in the
0700 runtime folder, not 127.0.0.1 TCP ports anyone on the node can subscribe to), an open JupyterLab tab keeps its
kernel (it counts as use anyway), extra arguments cannot switch off the idle stop or the private channels under
another spelling, ``make lab`` passes LOGIN_HOST and $USER without a shell reading them, and Ctrl-C while lab.py
starts JupyterLab is a stop, not an error.

A kernel over Unix sockets and the idle stop with a tab open, then closed, were checked by hand with a real
JupyterLab and browser (session 19); these tests check what the code decides, and lab.py and make for real.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.cli import main as cli_main
from hpcwidgets.parse.jupyter import parse_jupyter_job
from hpcwidgets.render.jupyter import RUNTIME_BASE_MAX, render_jupyter_job
from hpcwidgets.run import lab
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.jupyter import ALLOW_ROOT, PRIVATE_KERNELS, RUNTIME_PATH_MAX, JupyterJob, idle_args

LOGIN = "login.example.org"
ROOT = Path(__file__).resolve().parents[1]
JOB_ENV = {"SLURM_JOB_ID": "77", "SLURMD_NODENAME": "gpu017"}


def short_tmpdir() -> Path:
    """A new folder right under /tmp for a job's $TMPDIR, removed when the tests end: the job makes its private
    runtime folder in $TMPDIR only when that leaves room for the kernels' Unix sockets (at most
    :data:`~hpcwidgets.render.jupyter.RUNTIME_BASE_MAX` characters), and pytest's tmp_path is longer."""
    path = Path(tempfile.mkdtemp(prefix="hpcw.", dir="/tmp"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def job(**changes) -> JupyterJob:
    return JupyterJob(**{"login_host": LOGIN, "helper_python": sys.executable, **changes})


def _start_line(script: str) -> str:
    return script.split("jl_start() {", 1)[1].split("&\n")[0]


# --- 1. the kernels' channels: Unix sockets in the private folder ----------------------------------------------------

@pytest.mark.parametrize("container", [None, ApptainerRun(image="lab.sif", nv=True),
                                       ApptainerRun(image="lab.sif", containall=True), ChRun(image="/img/lab")])
def test_the_job_runs_its_kernels_over_unix_sockets(container):
    start = _start_line(render_jupyter_job(job(container=container, notebook_dir="/scratch/p")))
    assert PRIVATE_KERNELS in start
    assert start.index(PRIVATE_KERNELS) < start.index(str(ALLOW_ROOT)), "among the job's settings, not the person's"


def test_the_option_is_the_transport_of_the_kernel_managers_jupyter_server_runs():
    """(a misspelt option is only warned about by traitlets, and the kernels would stay on TCP)"""
    kernels = pytest.importorskip("jupyter_server.services.kernels.kernelmanager")
    from jupyter_client.ioloop import AsyncIOLoopKernelManager
    cls_name, setting = PRIVATE_KERNELS[2:].split(".", 1)
    trait, value = setting.split("=")
    for per_kernel in (kernels.ServerKernelManager, AsyncIOLoopKernelManager):  # Jupyter Server's, and its base
        assert cls_name in per_kernel.section_names(), "a KernelManager setting reaches the server's kernels"
        assert per_kernel.class_traits(config=True)[trait].validate(None, value) == "ipc"


def test_the_runtime_folder_leaves_room_for_the_kernels_sockets(tmp_path):
    """The longest folder allowed still takes a kernel's last socket (FOLDER/jupyter/kernel-<id>-ipc-5)."""
    folder = Path("/tmp") / ("r" * (RUNTIME_PATH_MAX - len("/tmp/")))
    assert len(str(folder)) == RUNTIME_PATH_MAX
    (folder / "jupyter").mkdir(parents=True)
    try:
        path = f"{folder}/jupyter/kernel-{uuid.uuid4()}-ipc-5"
        assert len(path.encode()) <= 103, "macOS's limit, the shorter one"
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(path)
    finally:
        shutil.rmtree(folder)
    assert RUNTIME_BASE_MAX + len("/jupyter.XXXXXXXXXX") == RUNTIME_PATH_MAX


def _runtime_folder(script: str, tmpdir: str | None) -> str:
    """The runtime folder the script's lines that make it make with $TMPDIR set to ``tmpdir`` (unset for None)."""
    start = script.index("jl_base=") if "jl_base=" in script else script.index("jl_runtime=$(mktemp")
    head = script[start:script.index('jl_pid=""')]
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    if tmpdir is not None:
        env["TMPDIR"] = tmpdir
    made = subprocess.run(["bash", "-c", head + 'printf %s "$jl_runtime"'], env=env, capture_output=True,
                          text=True, check=True).stdout
    shutil.rmtree(made)
    return made


@pytest.mark.parametrize("length, under_tmpdir", [(RUNTIME_BASE_MAX, True), (RUNTIME_BASE_MAX + 1, False)])
def test_a_long_tmpdir_is_passed_over_for_tmp(tmp_path, length, under_tmpdir):
    base = Path("/tmp") / ("t" * (length - len("/tmp/")))
    base.mkdir()
    try:
        made = _runtime_folder(render_jupyter_job(job()), str(base))
    finally:
        base.rmdir()
    assert made.startswith(f"{base}/jupyter.") == under_tmpdir
    assert made.startswith("/tmp/jupyter.") != under_tmpdir
    assert len(made) <= RUNTIME_PATH_MAX or not under_tmpdir
    assert _runtime_folder(render_jupyter_job(job()), None).startswith("/tmp/jupyter.")


def test_ch_run_keeps_the_folder_in_tmpdir_which_it_shows_at_tmp(tmp_path):
    """ch-run binds the host's $TMPDIR at the container's /tmp: the folder must be there, and its path inside is
    short whatever $TMPDIR is."""
    long_base = tmp_path / ("t" * 40)
    long_base.mkdir()
    script = render_jupyter_job(job(container=ChRun(image="/img/lab"), notebook_dir="/scratch/p"))
    assert _runtime_folder(script, str(long_base)).startswith(f"{long_base}/jupyter.")
    assert 'XDG_RUNTIME_DIR="/tmp/${jl_runtime##*/}"' in script


@pytest.mark.parametrize("changes", [{}, {"container": ApptainerRun(image="lab.sif")},
                                     {"container": ChRun(image="/img/lab"), "notebook_dir": "/scratch/p"},
                                     {"tunnel": "node", "idle_minutes": 0}])
def test_the_job_reads_back_unchanged(changes):
    text = render_jupyter_job(job(**changes))
    back = parse_jupyter_job(text)
    assert back == job(**changes) and render_jupyter_job(back) == text
    assert PRIVATE_KERNELS not in back.extra_args


def test_a_job_written_before_reads_back_and_renders_with_private_kernels():
    text = render_jupyter_job(job()).replace(f" \\\n      {PRIVATE_KERNELS}", "").replace(
        "cull_connected=False", "cull_connected=True")
    assert PRIVATE_KERNELS not in text
    back = parse_jupyter_job(text)
    assert back == job() and PRIVATE_KERNELS in render_jupyter_job(back)


def test_make_lab_runs_its_kernels_over_unix_sockets(tmp_path):
    p = lab.plan(lab.parser().parse_args(["--notebook-dir", str(tmp_path)]), {}, token="abc", is_root=False)
    assert PRIVATE_KERNELS in p.argv


@pytest.mark.parametrize("extra, under_tmpdir", [(0, True), (1, False)])
def test_make_lab_passes_over_a_tmpdir_too_long_for_the_sockets(extra, under_tmpdir):
    """(macOS's $TMPDIR, /var/folders/…/T/, is such a one)"""
    longest = RUNTIME_PATH_MAX - len("/jupyter.12345678")
    base = Path("/tmp") / ("m" * (longest + extra - len("/tmp/")))
    base.mkdir()
    try:
        runtime = lab.private_runtime({"TMPDIR": str(base)})
        shutil.rmtree(runtime)
    finally:
        base.rmdir()
    assert (runtime.parent == base) == under_tmpdir and (runtime.parent == Path("/tmp")) != under_tmpdir
    assert len(str(runtime)) <= RUNTIME_PATH_MAX


# --- 2. the idle stop: an open tab keeps its kernel ------------------------------------------------------------------

def test_kernels_a_tab_is_connected_to_are_kept():
    assert "--MappingKernelManager.cull_connected=False" in idle_args(30)
    assert not any("cull_connected=True" in a for a in idle_args(30))
    assert "cull_connected" not in _start_line(render_jupyter_job(job(idle_minutes=0)))


def test_the_log_and_the_help_say_an_open_tab_counts_as_use():
    said = " ".join(re.findall(r'^  "(.*)"(?: \\)?$', render_jupyter_job(job(idle_minutes=20)), re.M))
    assert ("after 20 idle minutes. An open JupyterLab tab counts as use, so save your work and close the tab (or "
            "let your computer sleep) when you leave. Kernels no tab is connected to and terminals unused for 20 "
            "minutes are shut down") in said
    assert "An open JupyterLab tab" not in render_jupyter_job(job(idle_minutes=0))
    help_text = JupyterJob.field_spec("idle_minutes").info.help
    assert "An open JupyterLab tab counts as use" in help_text and "close it" in help_text


# --- 3. every spelling of the job's own settings is refused in extra_args ------------------------------------------

IDLE_SPELLINGS = [("--AsyncMappingKernelManager.cull_idle_timeout=0",),
                  ("--AsyncMappingKernelManager.cull_idle_timeout", "0"),
                  ("--MappingKernelManager.cull_busy=True",),
                  ("--GatewayMappingKernelManager.cull_interval=5",),
                  ("--AsyncMappingKernelManager.cull_connected=True",),
                  ("--TerminalManager.cull_inactive_timeout=0",),
                  ("--ServerApp.shutdown_no_activity_timeout=0",),
                  ("--LabApp.shutdown_no_activity_timeout=0",)]
PRIVATE_SPELLINGS = [("--transport=tcp",), ("--transport", "tcp"), ("--KernelManager.transport=tcp",),
                     ("--ServerKernelManager.transport=tcp",), ("--ConnectionFileMixin.transport=tcp",),
                     ("--KernelManager.ip=127.0.0.1",)]


@pytest.mark.parametrize("extra", IDLE_SPELLINGS)
def test_each_spelling_of_the_idle_settings_is_refused_while_the_job_stops_idle_servers(extra):
    problems = job(idle_minutes=30, extra_args=extra).problems()
    assert [p.field for p in problems] == ["extra_args"], problems
    assert "idle_minutes" in problems[0].message and extra[0] in problems[0].message
    assert job(idle_minutes=0, extra_args=extra).problems() == [], "with no idle stop they are the person's"


@pytest.mark.parametrize("extra", PRIVATE_SPELLINGS)
def test_the_kernels_transport_is_refused_under_every_spelling(extra):
    for minutes in (0, 60):
        problems = job(idle_minutes=minutes, extra_args=extra).problems()
        assert [p.field for p in problems] == ["extra_args"], problems
        assert "Unix sockets" in problems[0].message and "read every cell's code and output" in problems[0].message


@pytest.mark.parametrize("extra", ["--ServerApp.terminals_enabled=False", "--MappingKernelManager.default_kernel_name=ir",
                                   "--KernelManager.autorestart=False", "--ServerKernelManager.transport_encryption=auto",
                                   "--ServerApp.kernel_ws_protocol=v1.kernel.websocket.jupyter.org",
                                   "--LabApp.collaborative=True"])
def test_nearby_settings_stay_the_persons(extra):
    assert job(idle_minutes=60, extra_args=(extra,)).problems() == []


def test_the_cli_refuses_the_bypasses_clearly(capsys):
    for extra in ("--AsyncMappingKernelManager.cull_idle_timeout=0", "--transport=tcp"):
        assert cli_main(["jupyter-job", "--login-host", LOGIN, "--idle-minutes", "1", f"--extra-args={extra}"]) == 2
        err = capsys.readouterr().err
        assert extra in err and "Traceback" not in err


# --- 4. make lab: LOGIN_HOST without a shell reading it, and a checked $USER ----------------------------------------

FAKE_PYTHON = """#!{python}
import json, os, sys
print(json.dumps({{"argv": sys.argv[1:], "LOGIN_HOST": os.environ.get("LOGIN_HOST")}}))
"""


def _make_lab(tmp_path: Path, *variables: str, env_login_host: str | None = None) -> dict:
    """What ``make lab`` runs, with a stand-in for .venv/bin/python that prints its arguments."""
    make = shutil.which("make")
    need(make is not None, "make is not installed")
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "python").write_text(FAKE_PYTHON.format(python=sys.executable))
    (bindir / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k not in ("MFLAGS", "LOGIN_HOST")}
    if env_login_host is not None:
        env["LOGIN_HOST"] = env_login_host
    out = subprocess.run([make, "--no-print-directory", "-s", "-o", "venv", "lab", f"BIN={bindir}", *variables],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("value", ["login.example.org", "x'; touch pwned; : '", 'a "b" $(id) `id` $HOME'])
def test_make_lab_passes_login_host_as_one_word_the_shell_never_reads(tmp_path, value):
    ran = _make_lab(tmp_path, f"LOGIN_HOST={value.replace('$', '$$')}")
    assert ran["argv"][:2] == ["-m", "hpcwidgets.run.lab"]
    given = lab.parser().parse_args(ran["argv"][2:])
    assert given.login_host == value and given.notebook_dir == "notebooks"
    assert not (ROOT / "pwned").exists()


def test_make_lab_takes_login_host_from_the_environment_and_gives_no_empty_option(tmp_path):
    assert _make_lab(tmp_path, env_login_host="from.env.org")["argv"][-2:] == ["--login-host", "from.env.org"]
    assert "--login-host" not in _make_lab(tmp_path)["argv"]
    assert "--login-host" not in _make_lab(tmp_path, "LOGIN_HOST=")["argv"]


def test_a_hostile_login_host_from_make_reaches_lab_whole_and_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.1")
    p_args = lab.parser().parse_args(["--notebook-dir", str(tmp_path), "--login-host", "x'; id; : '"])
    with pytest.raises(lab.LabError, match="x'; id; : '"):
        lab.plan(p_args, dict(JOB_ENV, USER="jdoe"), token="abc", is_root=False)


@pytest.mark.parametrize("env, variable", [({"USER": "-oProxyCommand=touch /tmp/pwned"}, "USER"),
                                           ({"USER": "a b"}, "USER"),
                                           ({"LOGNAME": "x;id"}, "LOGNAME")])
def test_make_lab_refuses_a_user_name_that_is_not_one(tmp_path, env, variable):
    with pytest.raises(lab.LabError) as caught:
        lab.login_user(env)
    message = str(caught.value)
    assert f"${variable} is {env[variable]!r}" in message and f"set {variable} to your user name" in message
    p_args = lab.parser().parse_args(["--notebook-dir", str(tmp_path), "--login-host", LOGIN])
    with pytest.raises(lab.LabError):
        lab.plan(p_args, {**JOB_ENV, **env}, token="abc", is_root=False)
    no_tunnel = lab.plan(lab.parser().parse_args(["--notebook-dir", str(tmp_path), "--profile", ""]),
                         {**JOB_ENV, **env}, token="abc", is_root=False)
    assert not any("ssh -N" in line for line in no_tunnel.lines), "no tunnel printed, so no user name needed"


def test_make_lab_keeps_a_user_name_that_is_one():
    assert lab.login_user({"USER": "first.last_2-x"}) == "first.last_2-x"
    assert lab.login_user({"LOGNAME": "jdoe"}) == "jdoe"


def test_a_bad_user_is_a_clear_error_from_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("USER", "a b")
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.1")
    assert lab.main(["--notebook-dir", str(tmp_path), "--login-host", LOGIN, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: $USER is 'a b'") and "Traceback" not in err


# --- 5. Ctrl-C while lab.py starts JupyterLab, and the node form's messages ------------------------------------------

INTERRUPTED = """#!{python}
# stands in for JupyterLab hit by Ctrl-C at start: the terminal sends SIGINT to the whole group, lab.py too, and
# JupyterLab dies of its KeyboardInterrupt (status 130); without CTRL_C it dies with that status on its own
import os, signal, sys
if os.environ.get("CTRL_C"):
    os.kill(os.getppid(), signal.SIGINT)
sys.exit(130)
"""


@pytest.mark.parametrize("ctrl_c", [True, False])
def test_ctrl_c_during_the_start_is_a_stop_not_an_error(tmp_path, ctrl_c):
    python = tmp_path / "python"
    python.write_text(INTERRUPTED.format(python=sys.executable))
    python.chmod(0o755)
    (tmp_path / "nb").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "MAKE", "HPCW_"))}
    env.update(TMPDIR=str(tmp_path), **({"CTRL_C": "1"} if ctrl_c else {}))
    proc = subprocess.run([sys.executable, "-m", "hpcwidgets.run.lab", "--notebook-dir", str(tmp_path / "nb"),
                           "--python", str(python)], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130
    said_error = "error: JupyterLab stopped with exit status 130 before it answered" in proc.stderr
    assert said_error != ctrl_c, proc.stderr
    assert "trying another port" not in proc.stderr


def test_the_node_forms_messages_name_its_loopback():
    node = render_jupyter_job(job(tunnel="node"))
    assert "the http://127.0.0.1 address JupyterLab printed above is the node's own" in node
    assert "(the node's address, 127.0.0.1)" not in node
    assert "(the node's address, 127.0.0.1)" in render_jupyter_job(job())
    net = job(tunnel="node", container=ApptainerRun(image="lab.sif", extra=("--net",))).problems()
    assert [p.field for p in net] == ["container.extra"]
    assert "the container's 127.0.0.1, which the tunnel to the node's 127.0.0.1 does not reach" in net[0].message
    assert "address that the tunnel names" not in net[0].message
    login = job(container=ApptainerRun(image="lab.sif", extra=("--net",))).problems()
    assert "the node's address that the tunnel names does not exist" in login[0].message
