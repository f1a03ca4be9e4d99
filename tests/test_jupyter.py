"""JupyterLab on a compute node: the model, the rendered job script, and running that script."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import need, need_tool, reachable_addresses, run_with_stand_ins
from hpcwidgets.errors import ValidationError
from hpcwidgets.render.jupyter import (jupyter_program, lab_url, render_jupyter_job, tunnel_command)
from hpcwidgets.render.quote import expand, quote, references
from hpcwidgets.spec import ApptainerRun, Bind, SlurmJob
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.jupyter import PRIVATE_KERNELS, JupyterJob
from test_jupyter2_s19 import short_tmpdir

LOGIN = "login.example.org"


def job(**changes) -> JupyterJob:
    base = JupyterJob(login_host=LOGIN)
    return base.replace(**changes) if changes else base


def fields(model) -> set[str]:
    return {p.field for p in model.problems()}


# --- the model -----------------------------------------------------------------------------------

def test_a_login_host_is_required_and_then_the_defaults_are_valid():
    bare = JupyterJob()
    assert "login_host" in fields(bare)
    assert job().problems() == []
    assert job().notebook_dir == "$HOME" and job().login_user == "$USER" and job().local_port == 8888


@pytest.mark.parametrize("changes, field", [
    (dict(login_host="me@login.example.org"), "login_host"),
    (dict(login_host="login;rm"), "login_host"),
    (dict(login_user="me; rm -rf"), "login_user"),
    (dict(login_user=""), "login_user"),
    (dict(port_min=30000, port_max=20000), "port_max"),
    (dict(port_min=80), "port_min"),
    (dict(local_port=70000), "local_port"),
    (dict(notebook_dir="~/work"), "notebook_dir"),
    (dict(notebook_dir=""), "notebook_dir"),
    (dict(python=" "), "python"),
    (dict(extra_args=("--ip=0.0.0.0",)), "extra_args"),
    (dict(extra_args=("--ServerApp.port_retries=50",)), "extra_args"),
    (dict(extra_args=("--IdentityProvider.token=abc",)), "extra_args"),
    (dict(extra_args=("--ServerApp.token=",)), "extra_args"),
    (dict(job=SlurmJob(time="01:00:00", nodes=2)), "job.nodes"),
    (dict(job=SlurmJob(time="01:00:00", commands=("echo hi",))), "job.commands"),
    (dict(job=SlurmJob()), "job.time"),
    (dict(job=SlurmJob(time="1 hour")), "job.time"),
    (dict(container=ApptainerRun(image="img.sif", command=("python",))), "container.command"),
    (dict(container=ApptainerRun(image="img.sif", action="run")), "container.action"),
    (dict(container=ApptainerRun(image="")), "container.image"),
    (dict(container=ApptainerRun(image="img.sif", no_home=True)), "notebook_dir"),
    (dict(container=ChRun(image="/img", private_tmp=True, home=True)), "container.private_tmp"),
    (dict(container=ChRun(image="/img")), "notebook_dir"),
])
def test_each_mistake_is_reported_on_its_field(changes, field):
    assert field in fields(job(**changes))


@pytest.mark.parametrize("changes", [
    dict(login_host="midway3.rcc.uchicago.edu", login_user="jdoe"),
    dict(login_user="${USER}"),
    dict(port_min=9000, port_max=9000),
    dict(notebook_dir="$SCRATCH/project"),
    dict(python="$HOME/miniconda3/envs/ml"),
    dict(extra_args=("--ServerApp.shutdown_no_activity_timeout=3600", "--iptables"), idle_minutes=0),
    dict(job=SlurmJob(time="01:00:00", nodes=1, gpus_per_node=1)),
    dict(container=ApptainerRun(image="img.sif", nv=True)),
    dict(container=ApptainerRun(image="img.sif", no_home=True, binds=(Bind("$HOME"),))),
    dict(container=ChRun(image="/img", home=True)),
    dict(container=ChRun(image="/img", binds=(Bind("$HOME/nb"),)), notebook_dir="$HOME/nb"),
    dict(container=ChRun(image="/img", binds=(Bind("$HOME/nb", "/mnt/0"),)), notebook_dir="/mnt/0"),
])
def test_near_misses_are_valid(changes):
    assert job(**changes).problems() == []


def test_for_profile_fills_in_the_site():
    profiles = pytest.importorskip("hpcwidgets.profiles")
    site = profiles.load_profile("midway3")
    model = JupyterJob.for_profile(site, local_port=8899)
    assert model.login_host == site.login_host and model.job.partition == site.default_partition
    assert model.local_port == 8899 and model.job.time == "02:00:00"
    assert model.problems() == []


def test_invalid_models_do_not_render():
    with pytest.raises(ValidationError) as info:
        render_jupyter_job(job(extra_args=("--ip=0.0.0.0",), port_min=30000, port_max=20000))
    text = str(info.value)
    assert "--ip=0.0.0.0" in text and "port" in text


@pytest.mark.parametrize("model", [
    job(),
    job(container=ApptainerRun(image="$SCRATCH/a.sif", nv=True, binds=(Bind("$SCRATCH", mode="ro"),))),
    job(container=ChRun(image="/var/tmp/img", home=True), extra_args=("--a=b c",)),
])
def test_json_round_trip(model):
    again = JupyterJob.from_json(model.to_json())
    assert again == model
    assert type(again.container) is type(model.container)


# --- pure helpers ----------------------------------------------------------------------------------

def test_tunnel_command_and_url():
    assert tunnel_command("n1", 23456, "login.example.org", "jdoe", 8889) == \
        "ssh -N -L 8889:n1:23456 -o ExitOnForwardFailure=yes jdoe@login.example.org"
    assert tunnel_command("n1", 23456, "login", "jdoe") == "ssh -N -L 8888:n1:23456 -o ExitOnForwardFailure=yes jdoe@login"
    assert lab_url(8889, "abc123") == "http://localhost:8889/lab?token=abc123"


@pytest.mark.parametrize("python, words", [
    ("jupyter", ["jupyter", "lab"]),
    ("$HOME/env/bin/jupyter", ["$HOME/env/bin/jupyter", "lab"]),
    ("/opt/env/bin/jupyter-lab", ["/opt/env/bin/jupyter-lab"]),
    ("python3", ["python3", "-m", "jupyterlab"]),
    ("/opt/conda/bin/python3.11", ["/opt/conda/bin/python3.11", "-m", "jupyterlab"]),
    ("$HOME/miniconda3/envs/ml/", ["$HOME/miniconda3/envs/ml/bin/jupyter", "lab"]),
])
def test_jupyter_program(python, words):
    assert jupyter_program(python) == words


# --- the rendered text -----------------------------------------------------------------------------

def test_rendered_script_has_no_token_and_the_safe_settings():
    model = job(local_port=8899)
    script = render_jupyter_job(model)
    assert script == render_jupyter_job(model), "rendering must be deterministic: randomness happens at run time"
    assert not re.search(r"[0-9a-f]{24,}", script), "no token literal may be written into the script"
    assert "IdentityProvider.token" not in script and "ServerApp.token" not in script
    assert 'JUPYTER_TOKEN="$jl_token"' in script
    assert "import secrets" in script
    assert "--ServerApp.port_retries=0" in script
    assert "umask 077" in script
    assert "--ip=0.0.0.0" not in script
    assert '"--ip=$jl_addr"' in script
    assert re.search(r"^jl_runtime=\$\(mktemp -d ", script, re.M)
    assert "trap jl_cleanup EXIT" in script and "trap 'jl_stop 143' TERM" in script
    assert "export XDG_RUNTIME_DIR=" in script and "export JUPYTER_RUNTIME_DIR=" in script
    tunnel = quote(tunnel_command("$jl_host", "$jl_port", LOGIN, "$USER", 8899))
    assert f"jl_tunnel={tunnel}\n" in script
    assert tunnel == '"ssh -N -L 8899:$jl_host:$jl_port -o ExitOnForwardFailure=yes $USER@login.example.org"'
    assert 'jl_url="http://localhost:8899/lab?token=$jl_token"' in script
    assert "#SBATCH --output=jupyter-%j.log" in script and "#SBATCH --time=02:00:00" in script


def test_apptainer_container_gets_the_runtime_dir_and_clean_env_copies():
    c = ApptainerRun(image="$SCRATCH/pytorch.sif", nv=True, cleanenv=True)
    script = render_jupyter_job(job(container=c))
    assert '--bind "$jl_runtime"' in script
    assert 'APPTAINERENV_JUPYTER_TOKEN="$jl_token"' in script
    start = script.index("apptainer exec")
    assert script.index('"$SCRATCH/pytorch.sif"', start) < script.index("jupyter lab", start)
    plain = render_jupyter_job(job(container=ApptainerRun(image="img.sif")))
    assert "APPTAINERENV_" not in plain


def _shellcheck() -> str:
    local = Path(sys.executable).parent / "shellcheck"
    return str(local) if local.exists() else need_tool("shellcheck", "needed to check rendered scripts")


HOSTILE = "$HOME/a b'; echo pwned; \"c\" $(touch x) `id` *"


@pytest.mark.parametrize("model", [
    job(),
    job(notebook_dir=HOSTILE, extra_args=(HOSTILE, "--x=$(id)"), login_user="${USER}",
        python="$HOME/my env/bin/python3", helper_python="/usr/bin/python3"),
    job(container=ApptainerRun(image="$SCRATCH/x.sif", nv=True, cleanenv=True, binds=(Bind("$SCRATCH/d:1", "/d"),))),
    job(container=ChRun(image="/var/tmp/img", home=True, binds=(Bind(HOSTILE.replace(":", ""), "/mnt/0"),))),
    job(job=SlurmJob(time="00:30:00", partition="gpu", gpus_per_node=1, modules=("cuda/12.1",),
                     setup=('source "$HOME/miniconda3/bin/activate" ml',))),
])
def test_rendered_scripts_are_shellcheck_clean(model, tmp_path):
    path = tmp_path / "jupyter.sbatch"
    path.write_text(render_jupyter_job(model))
    proc = subprocess.run([_shellcheck(), "-s", "bash", "-S", "warning", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- argv fidelity with stand-ins --------------------------------------------------------------------

def _base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"USER": "jdoe", "TMPDIR": str(short_tmpdir()), "SLURMD_NODENAME": "n7", "SLURM_JOB_ID": "4242",
           "SCRATCH": str(tmp_path / "scratch")}
    env.update(extra)
    return env


def _jupyter_tail(notebook_dir: str, extras, env: dict[str, str]) -> list[str]:
    return [f"--notebook-dir={expand(notebook_dir, env)}", *[expand(a, env) for a in extras]]


def test_hostile_notebook_dir_and_extra_args_reach_jupyter_exactly(tmp_path):
    extras = (HOSTILE, "--x=$(id)", "two\nlines", "--glob=*", "${SCRATCH}/s p")
    model = job(notebook_dir=HOSTILE, extra_args=extras, python="jupyter", idle_minutes=0)
    env = _base_env(tmp_path)
    calls = run_with_stand_ins(render_jupyter_job(model), tmp_path, ["jupyter"], env=env)
    assert len(calls) == 1
    argv = calls[0]["argv"]
    env_seen = dict(env, HOME=str(tmp_path))
    assert argv[:2] == ["lab", "--no-browser"] and argv[2].startswith("--ip=")
    ipaddress.ip_address(argv[2].split("=", 1)[1])  # one address, never the node's name
    assert re.fullmatch(r"--port=\d+", argv[3]) and argv[4] == "--ServerApp.port_retries=0"
    tail = [a for a in argv[5:] if a not in ("--allow-root", PRIVATE_KERNELS)]
    assert tail == _jupyter_tail(HOSTILE, extras, env_seen)
    assert not (tmp_path / "x").exists(), "a command substitution in a value must not run"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=30)
       .filter(lambda v: v.strip() and not v.startswith("~") and not references(v)))
@example(value="0\x85")       # NEL: a line break to str.splitlines (and Jinja's indent filter), not to bash
@example(value="a\u2028b")    # LINE SEPARATOR, likewise
def test_any_notebook_dir_reaches_jupyter_exactly(value, tmp_path_factory):
    """Any text without $NAME references (an unset one stops the script under set -u) arrives unchanged."""
    tmp_path = tmp_path_factory.mktemp("nb")
    env = _base_env(tmp_path)
    calls = run_with_stand_ins(render_jupyter_job(job(notebook_dir=value)), tmp_path, ["jupyter"], env=env)
    seen = dict(env, HOME=str(tmp_path))
    assert f"--notebook-dir={expand(value, seen)}" in calls[0]["argv"]


def test_apptainer_and_charliecloud_argv(tmp_path):
    env = _base_env(tmp_path)
    a = job(container=ApptainerRun(image="$SCRATCH/my img.sif", nv=True, binds=(Bind("$SCRATCH", mode="ro"),)),
            notebook_dir="$SCRATCH/nb")
    calls = run_with_stand_ins(render_jupyter_job(a), tmp_path / "a", ["apptainer"], env=env)
    argv = calls[0]["argv"]
    img = argv.index(f"{env['SCRATCH']}/my img.sif")
    assert argv[:3] == ["exec", "--nv", "--bind"] and argv[3] == f"{env['SCRATCH']}:{env['SCRATCH']}:ro"
    runtime = argv[argv.index("--bind", 4) + 1]
    assert runtime.startswith(env["TMPDIR"] + "/jupyter.")
    assert argv[img + 1:img + 3] == ["jupyter", "lab"] and f"--notebook-dir={env['SCRATCH']}/nb" in argv
    assert not Path(runtime).exists(), "the runtime directory is removed when the script ends"

    c = job(container=ChRun(image="/var/tmp/img", home=True))
    calls = run_with_stand_ins(render_jupyter_job(c), tmp_path / "c", ["ch-run"], env=env)
    argv = calls[0]["argv"]
    assert argv[:4] == ["--home", "/var/tmp/img", "--", "jupyter"]


# --- executing the script ------------------------------------------------------------------------------

#: a stand-in jupyter: records argv, the token it was given, the runtime dir's state, and whether the port was
#: free on the address it was told; then, like JupyterLab, it listens there, writes its server file and
#: stops after the first connection (the script's check that it answers)
JUPYTER_STANDIN = """#!{python}
import json, os, socket, stat, sys
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
ip, port = opts["ip"], int(opts["port"])
server = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    server.bind((ip, port))
    free = True
except OSError:
    free = False
rt = os.environ["XDG_RUNTIME_DIR"]
token_file = os.path.join(rt, "token")
record = dict(argv=sys.argv[1:], token=os.environ.get("JUPYTER_TOKEN"), xdg=rt,
              jupyter_runtime=os.environ.get("JUPYTER_RUNTIME_DIR"),
              dir_mode=stat.S_IMODE(os.stat(rt).st_mode), file_mode=stat.S_IMODE(os.stat(token_file).st_mode),
              file_token=open(token_file).read(), port_free=free)
with open(os.environ["HPCW_RECORD"], "a") as fh:
    fh.write(json.dumps(record) + "\\n")
if not free:
    sys.exit("[C ServerApp] ERROR: port %d is not available" % port)
server.listen()
info = os.path.join(os.environ["JUPYTER_RUNTIME_DIR"], "jpserver-%d.json" % os.getpid())
with open(info, "w") as fh:
    json.dump(dict(port=port, pid=os.getpid()), fh)
server.settimeout(30)
server.accept()[0].close()
os.remove(info)
"""


def _run_script(script: str, tmp_path: Path, env_extra: dict[str, str] | None = None, name: str = "run"):
    """Run the job script with bash outside Slurm (SLURM_* set by hand); stdout goes to a log file."""
    work = tmp_path / name
    bindir = work / "bin"
    bindir.mkdir(parents=True)
    standin = bindir / "jupyter"
    standin.write_text(JUPYTER_STANDIN.format(python=sys.executable))
    standin.chmod(0o755)
    path = work / "job.sh"
    path.write_text(script)
    log = work / "job.log"
    log.write_text("")
    log.chmod(0o644)
    record = work / "record.jsonl"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(work), "HPCW_RECORD": str(record)}
    env.update(_base_env(work))
    env.update(env_extra or {})
    with log.open("w") as out:
        proc = subprocess.run(["bash", str(path)], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=60)
    records = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return proc.returncode, log.read_text(), records, env, log


def _listen_address(argv: list[str]) -> str:
    """The one address JupyterLab was told to listen on (an IP address, not a name)."""
    addr = next(a for a in argv if a.startswith("--ip=")).split("=", 1)[1]
    ipaddress.ip_address(addr)
    return addr


def _ssh_host(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


def _printed(log_text: str) -> tuple[str, str]:
    tunnel = re.search(r"^   (ssh -N -L .*)$", log_text, re.M)
    url = re.search(r"^   (http://localhost:\S+)$", log_text, re.M)
    assert tunnel and url, log_text
    return tunnel.group(1), url.group(1)


def test_executed_script_makes_a_fresh_token_a_private_dir_and_a_free_port(tmp_path):
    model = job(local_port=8890, port_min=31000, port_max=31999, helper_python="python3")
    script = render_jupyter_job(model)
    tokens = []
    for i in range(2):
        rc, text, records, env, log = _run_script(script, tmp_path, name=f"run{i}")
        assert rc == 0, text
        assert len(records) == 1
        r = records[0]
        token = r["token"]
        assert re.fullmatch(r"[0-9a-f]{48}", token) and r["file_token"] == token
        assert token not in script
        tokens.append(token)
        assert r["dir_mode"] == 0o700 and r["file_mode"] == 0o600
        assert r["jupyter_runtime"] == r["xdg"] + "/jupyter"
        assert r["xdg"].startswith(env["TMPDIR"] + "/")
        assert not Path(r["xdg"]).exists(), "the runtime directory must be removed on exit"
        assert list(Path(env["TMPDIR"]).iterdir()) == []
        assert r["port_free"], "the chosen port must be free when JupyterLab starts"
        argv = r["argv"]
        port = int(argv[argv.index("--ServerApp.port_retries=0") - 1].split("=")[1])
        assert 31000 <= port <= 31999
        assert "--no-browser" in argv
        addr = _listen_address(argv)
        tunnel, url = _printed(text)
        assert tunnel == tunnel_command(_ssh_host(addr), port, LOGIN, "jdoe", 8890)
        assert url == lab_url(8890, token)
        assert (log.stat().st_mode & 0o077) == 0, "the job log holds the token and must be private"
    assert tokens[0] != tokens[1], "each run must make its own token"


def _occupy() -> socket.socket:
    s = socket.socket()
    s.bind(("", 0))
    s.listen(1)
    return s


def test_a_busy_single_port_range_fails_clearly(tmp_path):
    with _occupy() as busy:
        port = busy.getsockname()[1]
        rc, text, records, env, _ = _run_script(render_jupyter_job(job(port_min=port, port_max=port)), tmp_path)
    assert rc != 0
    assert records == [], "JupyterLab must not start without a port"
    assert f"no free port between {port} and {port}" in text and "choose another range" in text
    assert "ssh -N -L" not in text
    assert list(Path(env["TMPDIR"]).iterdir()) == []


def test_a_wider_range_skips_the_busy_port(tmp_path):
    with _occupy() as busy:
        port = busy.getsockname()[1]
        need(port + 8 <= 65535, "the system gave a port at the top of the range")
        model = job(port_min=port, port_max=port + 8)
        for i in range(3):
            rc, text, records, _, _ = _run_script(render_jupyter_job(model), tmp_path, name=f"r{i}")
            assert rc == 0, text
            argv = records[0]["argv"]
            chosen = int(next(a for a in argv if a.startswith("--port=")).split("=")[1])
            assert chosen != port and port < chosen <= port + 8
            assert records[0]["port_free"]
            assert _printed(text)[0] == tunnel_command(_ssh_host(_listen_address(argv)), chosen, LOGIN, "jdoe", 8888)


# --- the real thing on the practice cluster ----------------------------------------------------------------

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, host: str = "") -> int:
    """HTTP status of a GET (with ``host`` as the Host header); 0 while nothing listens yet."""
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with _DIRECT.open(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return 0
        raise


@pytest.mark.real
def test_jupyter_job_on_the_practice_cluster(tmp_path):
    from hpcwidgets.run import slurm
    need(slurm.available(), "no Slurm cluster answers (start it with: hpcwidgets practice-cluster up)")
    jupyter = Path(sys.executable).parent / "jupyter"
    need(jupyter.exists(), f"no jupyter next to {sys.executable}")
    nb = tmp_path / "nb"
    nb.mkdir()
    tmp_path.chmod(0o755)
    model = job(login_host="localhost", notebook_dir=str(nb), python=str(jupyter), helper_python=sys.executable,
                job=SlurmJob(job_name="jupyter-test", time="00:05:00", output=str(tmp_path / "jupyter-%j.log")))
    submitted = slurm.submit(render_jupyter_job(model), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        text = ""
        log = tmp_path / f"jupyter-{submitted.id}.log"
        while time.monotonic() < deadline:
            text = log.read_text() if log.exists() else ""
            if "http://localhost" in text:
                break
            assert submitted.state() in ("PENDING", "RUNNING", "CONFIGURING"), text
            time.sleep(0.5)
        tunnel, url = _printed(text)
        m = re.fullmatch(r"ssh -N -L 8888:(\S+):(\d+) -o ExitOnForwardFailure=yes (\S+)@localhost", tunnel)
        assert m, tunnel
        node, port = m.group(1), int(m.group(2))
        # the node's name means 127.0.0.1 on the practice nodes: the tunnel must name an address the login node reaches
        address = ipaddress.ip_address(node.strip("[]"))
        assert not address.is_loopback or not reachable_addresses(), tunnel
        assert re.search(rf"^JupyterLab is ready on node \S+, address {re.escape(str(address))}, port {port} ", text, re.M)
        token = url.rsplit("token=", 1)[1]
        assert (log.stat().st_mode & 0o077) == 0
        # through the tunnel the browser says Host: localhost:8888; send the same
        tunnelled = "localhost:8888"
        status_ok = 0
        while time.monotonic() < deadline:
            status_ok = _get(f"http://{node}:{port}/api/status?token={token}", tunnelled)
            if status_ok:
                break
            time.sleep(0.5)
        assert status_ok == 200, log.read_text()
        assert _get(f"http://{node}:{port}/api/status", tunnelled) == 403
        assert _get(f"http://{node}:{port}/api/status?token=wrong{token}", tunnelled) == 403
        runtime = re.search(r"The token is also in (\S+)/token", text).group(1)
        assert Path(runtime).is_dir() and (Path(runtime).stat().st_mode & 0o777) == 0o700
    finally:
        submitted.cancel()
    assert submitted.wait(timeout=60) == "CANCELLED"
    gone = time.monotonic() + 30
    while Path(runtime).exists() and time.monotonic() < gone:
        time.sleep(0.2)
    assert not Path(runtime).exists(), "cancelling the job must remove its runtime directory"
