"""JupyterLab job, session 18: ch-run's /tmp, network namespaces, options that weaken the server, ssh destinations
ssh takes, and a local port already taken on the laptop."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import need, need_tool
from hpcwidgets.cli import main as cli_main
from hpcwidgets.errors import ValidationError
from hpcwidgets.parse import parse_command, parse_jupyter_job
from hpcwidgets.render.jupyter import render_jupyter_job, tunnel_command
from hpcwidgets.spec import ApptainerRun, Bind
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.jupyter import JupyterJob
from hpcwidgets.spec.ssh import jump_host_problem, login_host_problem
from test_jupyter import JUPYTER_STANDIN, _printed, _run_script

LOGIN = "login.example.org"
TRAINER = Path("/var/tmp/hpcw-images/trainer")


# --- 1. ch-run shows the host's $TMPDIR (not /tmp) at the container's /tmp --------------------------------------

def _problems(model: JupyterJob) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in model.problems():
        out.setdefault(p.field, []).append(p.message)
    return out


def test_ch_run_is_told_where_it_shows_the_runtime_folder():
    script = render_jupyter_job(JupyterJob(login_host=LOGIN, container=ChRun(image="/var/tmp/img", home=True)))
    assert 'jl_runtime=$(mktemp -d "${TMPDIR:-/tmp}/jupyter.XXXXXXXXXX")' in script
    start = script[script.index("jl_start() {"):script.index("jl_pid=$!")]
    assert 'XDG_RUNTIME_DIR="/tmp/${jl_runtime##*/}" \\' in start
    assert 'JUPYTER_RUNTIME_DIR="/tmp/${jl_runtime##*/}/jupyter" \\' in start
    assert start.index("JUPYTER_RUNTIME_DIR=") < start.index("ch-run")
    # the host's own paths stay as they were: the job looks for JupyterLab's server file there
    assert 'export JUPYTER_RUNTIME_DIR="$jl_runtime/jupyter"' in script
    assert render_jupyter_job(parse_jupyter_job(script)) == script


def test_apptainer_and_no_container_keep_the_host_path():
    for container in (None, ApptainerRun(image="/img.sif")):
        script = render_jupyter_job(JupyterJob(login_host=LOGIN, container=container))
        assert "${jl_runtime##*/}" not in script


def test_ch_run_private_tmp_is_refused_with_where_the_files_are():
    problems = _problems(JupyterJob(login_host=LOGIN, container=ChRun(image="/img", home=True, private_tmp=True)))
    assert "$TMPDIR" in problems["container.private_tmp"][0] and "--private-tmp" in problems["container.private_tmp"][0]


@pytest.mark.real
def test_real_ch_run_with_a_tmpdir_of_its_own_reaches_a_server_that_answers(tmp_path):
    """A site's per-job TMPDIR: ch-run binds it at the container's /tmp, so JupyterLab must be told the runtime
    folder's path there, and the job must find the server file in it and remove it at the end."""
    need_tool("ch-run", "Charliecloud's ch-run runs the real-container tests")
    need(os.path.lexists(TRAINER / "usr/bin/python3"), f"the trainer image {TRAINER} is missing (make images)")
    tools = tmp_path / "tools"  # bound at /mnt/0: the stand-in JupyterLab, run by the image's python3
    tools.mkdir()
    (tools / "jupyter").write_text(JUPYTER_STANDIN.format(python="/usr/bin/python3"))
    (tools / "jupyter").chmod(0o755)
    node_tmp = tmp_path / "node-local-tmp"
    node_tmp.mkdir()
    model = JupyterJob(login_host=LOGIN, python="/mnt/0/jupyter", notebook_dir="/tmp",
                       container=ChRun(image=str(TRAINER), binds=(Bind(str(tools), "/mnt/0"),)))
    script = tmp_path / "job.sh"
    script.write_text(render_jupyter_job(model))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "USER": os.environ.get("USER") or "root",
           "TMPDIR": str(node_tmp), "SLURMD_NODENAME": "n7", "SLURM_JOB_ID": "4242",
           "HPCW_RECORD": "/mnt/0/record.jsonl"}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "JupyterLab is ready" in proc.stdout, proc.stdout + proc.stderr
    record = json.loads((tools / "record.jsonl").read_text().splitlines()[0])
    name = record["xdg"].rsplit("/", 1)[1]
    assert record["xdg"] == f"/tmp/{name}" and record["jupyter_runtime"] == f"/tmp/{name}/jupyter"
    assert record["file_token"] == record["token"]
    assert list(node_tmp.iterdir()) == [], "the runtime folder is removed when the job ends"


# --- 2. Apptainer with a network of its own ------------------------------------------------------------------------

@pytest.mark.parametrize("command, option", [
    ("apptainer exec --net img.sif", "--net"),
    ("apptainer exec --net --network none img.sif", "--net"),
    ("apptainer exec -en img.sif", "-n"),
    ("singularity exec --network=bridge img.sif", "--network=bridge"),
    ("apptainer exec --network-args portmap=8888:8888/tcp img.sif", "--network-args"),
    ("apptainer exec --netns-path /run/netns/lab img.sif", "--netns-path"),
])
def test_a_container_with_a_network_of_its_own_is_refused(command, option):
    problems = _problems(JupyterJob(login_host=LOGIN, container=parse_command(command)))
    (message,) = problems["container.extra"]
    assert message.startswith(f"remove {option!r}:") and "node's address" in message and "shares the node's" in message
    with pytest.raises(ValidationError, match="network of its own"):
        render_jupyter_job(JupyterJob(login_host=LOGIN, container=parse_command(command)))


@pytest.mark.parametrize("command", ["apptainer exec --net=false img.sif", "apptainer exec --nv --hostname lab img.sif",
                                     "apptainer exec -e img.sif"])
def test_containers_sharing_the_node_network_are_accepted(command):
    assert JupyterJob(login_host=LOGIN, container=parse_command(command)).problems() == []


def test_jupyter_job_cli_refuses_net_with_its_reason(capsys):
    rc = cli_main(["jupyter-job", "--login-host", LOGIN, "--container", "apptainer exec --net --network none img.sif"])
    _, err = capsys.readouterr()
    assert rc != 0 and "remove '--net'" in err and "Traceback" not in err


# --- 3. extra arguments that weaken the server ------------------------------------------------------------------

@pytest.mark.parametrize("args, shown, reason", [
    (("--ServerApp.disable_check_xsrf=True",), "--ServerApp.disable_check_xsrf=True", "cross-site request forgery"),
    (("--NotebookApp.disable_check_xsrf=1",), "--NotebookApp.disable_check_xsrf=1", "cross-site request forgery"),
    (("--ServerApp.disable_check_xsrf", "True"), "--ServerApp.disable_check_xsrf True", "cross-site request forgery"),
    (("--ServerApp.allow_origin=*",), "--ServerApp.allow_origin=*", "web pages of other sites"),
    (("--NotebookApp.allow_origin=https://evil.example",), "--NotebookApp.allow_origin=https://evil.example",
     "web pages of other sites"),
    (("--ServerApp.allow_origin_pat=.*",), "--ServerApp.allow_origin_pat=.*", "web pages of other sites"),
    (("--ServerApp.sock=/tmp/lab.sock",), "--ServerApp.sock=/tmp/lab.sock", "Unix socket"),
    (("--NotebookApp.sock=$HOME/s",), "--NotebookApp.sock=$HOME/s", "Unix socket"),
    (("--NotebookApp.ip=0.0.0.0",), "--NotebookApp.ip=0.0.0.0", "one address of the node"),
    (("--NotebookApp.port=8888",), "--NotebookApp.port=8888", "free port"),
    (("--NotebookApp.port_retries=50",), "--NotebookApp.port_retries=50", "port_retries=0"),
    (("--NotebookApp.notebook_dir=/x",), "--NotebookApp.notebook_dir=/x", "notebook_dir field"),
])
def test_weakening_and_job_owned_settings_are_refused_with_reasons(args, shown, reason):
    (message,) = _problems(JupyterJob(login_host=LOGIN, extra_args=args))["extra_args"]
    assert message.startswith(f"remove {shown!r}: ") and reason in message


@pytest.mark.parametrize("args", [
    ("--ServerApp.disable_check_xsrf=False",), ("--ServerApp.disable_check_xsrf", "false"),
    ("--ServerApp.allow_origin=",), ("--ServerApp.sock=",), ("--ServerApp.sock=''",),
    ("--ServerApp.terminals_enabled=False",), ("--ServerApp.allow_remote_access=True",),
])
def test_harmless_values_and_other_settings_are_accepted(args):
    assert JupyterJob(login_host=LOGIN, extra_args=args).problems() == []


def test_jupyter_job_cli_refuses_disable_check_xsrf(capsys):
    rc = cli_main(["jupyter-job", "--login-host", LOGIN, "--extra-args=--ServerApp.disable_check_xsrf=True"])
    _, err = capsys.readouterr()
    assert rc != 0 and "cross-site request forgery" in err and "Traceback" not in err


# --- 4. a local port already taken: ssh stops instead of reaching whatever holds it ---------------------------

def _ssh_config(tunnel: str) -> dict[str, str]:
    """What ssh makes of a printed tunnel command (ssh -G: reads the options, connects nowhere)."""
    ssh = shutil.which("ssh")
    need(ssh is not None, "ssh is not installed")
    words = tunnel.split()
    proc = subprocess.run([ssh, "-G", "-F", "/dev/null", *words[1:]], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


def test_the_tunnel_exits_when_its_local_port_is_taken():
    tunnel = tunnel_command("10.1.0.7", 23456, LOGIN, "jdoe", 8890, login_port=8022, jump_host="gw.example.org")
    assert tunnel == ("ssh -N -L 8890:10.1.0.7:23456 -o ExitOnForwardFailure=yes -p 8022 -J gw.example.org "
                      f"jdoe@{LOGIN}")
    config = _ssh_config(tunnel)
    assert config["exitonforwardfailure"] == "yes" and config["localforward"] == "8890 [10.1.0.7]:23456"
    assert (config["hostname"], config["port"], config["user"]) == (LOGIN, "8022", "jdoe")


def test_the_log_says_which_lines_to_use_and_what_to_do_when_the_port_is_taken(tmp_path):
    rc, text, records, _, _ = _run_script(render_jupyter_job(JupyterJob(login_host=LOGIN, local_port=8890)), tmp_path)
    assert rc == 0, text
    lines = text.splitlines()
    tunnel, url = _printed(text)
    assert "-o ExitOnForwardFailure=yes" in tunnel
    use = next(i for i, line in enumerate(lines) if line.startswith("Use the two lines below"))
    assert "127.0.0.1" in lines[use] + lines[use + 1]
    assert use < lines.index(f"   {tunnel}") < lines.index(f"   {url}")
    taken = next(i for i, line in enumerate(lines) if "'Address already in use'" in line)
    assert lines.index(f"   {url}") < taken and "port 8890 is taken on your computer" in lines[taken]
    assert "replace 8890 in both lines by another number" in lines[taken + 1]


# --- 5. ssh destinations ssh takes ----------------------------------------------------------------------------

@pytest.mark.parametrize("login_host, jump_host, hostname, proxyjump", [
    ("2001:db8::1", "", "2001:db8::1", None),
    ("login.example.org.", "", "login.example.org.", None),
    (LOGIN, "[2001:db8::5]:2222", LOGIN, "[2001:db8::5]:2222"),
    ("2001:db8::1", "alice@[2001:db8::5]:2222,gw.example.org.", "2001:db8::1",
     "alice@[2001:db8::5]:2222,gw.example.org."),
])
def test_ipv6_and_fully_qualified_destinations_are_accepted_and_rendered_as_ssh_reads_them(
        login_host, jump_host, hostname, proxyjump):
    model = JupyterJob(login_host=login_host, jump_host=jump_host, login_port=2200)
    assert model.problems() == []
    script = render_jupyter_job(model)
    line = re.search(r'^jl_tunnel="(.*)"$', script, re.M).group(1)
    config = _ssh_config(line.replace("$jl_host", "10.1.0.7").replace("$jl_port", "23456").replace("$USER", "jdoe"))
    assert (config["hostname"], config["user"], config["port"]) == (hostname, "jdoe", "2200")
    assert config.get("proxyjump") == proxyjump


@pytest.mark.parametrize("value, hint", [
    ("[2001:db8::1]", "without brackets (2001:db8::1)"),
    ("[2001:db8::1]:2222", "--login-port 2222"),
    ("-oProxyCommand=id", "is not a host name"),
    ("login;id", "is not a host name"),
    ("login id", "is not a host name"),
    ("$(id)", "is not a host name"),
    ("fe80::1%eth0;id", "is not a host name"),
    ("login..", "is not a host name"),
])
def test_login_hosts_ssh_would_not_take_or_that_inject_are_refused(value, hint):
    assert hint in login_host_problem(value)
    assert login_host_problem(value, in_profile=True)


def test_a_profile_is_told_the_bracketed_address_and_port_apart():
    message = login_host_problem("[2001:db8::1]:2222", in_profile=True)
    assert "login_port = 2222" in message and "(2001:db8::1)" in message


@pytest.mark.parametrize("value, hint", [
    ("2001:db8::5", "in brackets, [2001:db8::5]"),
    ("bob@2001:db8::5", "in brackets, [2001:db8::5]"),
    ("[nothex]:22", "is not a jump host"),
    ("[10.0.0.1]:22", "is not an IPv6 address"),
    ("[2001:db8::5]:70000", "not a port number"),
    ("-oProxyCommand=id", "is not a jump host"),
    ("[2001:db8::5]:2222;id", "is not a jump host"),
    ("gw $(id)", "is not a jump host"),
])
def test_jump_hosts_ssh_would_not_take_or_that_inject_are_refused(value, hint):
    assert hint in jump_host_problem(value)
