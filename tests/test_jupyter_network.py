"""JupyterLab job: where it listens, when the tunnel is printed, a port taken in between, and clean-up.

Each test failed before the script picked one reachable address, waited for JupyterLab to answer before
printing the tunnel, retried a port taken between the check and the start, and removed its private
folder at once on scancel.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import need, reachable_addresses
from hpcwidgets.render.jupyter import render_jupyter_job
from hpcwidgets.spec import SlurmJob
from hpcwidgets.spec.jupyter import JupyterJob
from test_jupyter2_s19 import short_tmpdir

LOGIN = "login.example.org"

#: a stand-in jupyter that behaves like JupyterLab on the network: it listens on --ip/--port (and fails with
#: "not available" when it cannot), writes jpserver-PID.json into JUPYTER_RUNTIME_DIR, and serves until it
#: gets SIGTERM or shortly after the first connection. HPCW_DELAY: seconds before it listens; HPCW_TAKE_FIRST: on its first start another program
#: takes the port just before it binds; HPCW_SLOW_STOP: seconds it takes to stop; HPCW_NEVER: never listens.
STANDIN = r"""#!{python}
import json, os, signal, socket, subprocess, sys, time
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
ip, port = opts["ip"], int(opts["port"])
env = os.environ
def note(**kw):
    with open(env["HPCW_RECORD"], "a") as fh:
        fh.write(json.dumps(dict(kw, ip=ip, port=port, pid=os.getpid(), t=time.time())) + "\n")
slow = float(env.get("HPCW_SLOW_STOP", "0"))
def stop(*_):
    note(event="term")
    time.sleep(slow)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
note(event="start")
first = env.get("HPCW_TAKE_FIRST")
if first and not os.path.exists(first):
    intruder = subprocess.Popen([sys.executable, "-c",
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"  # over a closed connection's TIME_WAIT, as the server
        "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); print('up', flush=True); time.sleep(60)\n",
        ip, str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True)
    intruder.stdout.readline()
    with open(first, "w") as fh:
        fh.write(str(intruder.pid))
if env.get("HPCW_NEVER"):
    time.sleep(120)
time.sleep(float(env.get("HPCW_DELAY", "0")))
server = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    server.bind((ip, port))
except OSError:
    note(event="busy")
    sys.exit("[C ServerApp] ERROR: the Jupyter server could not be started because port %d is not available." % port)
server.listen()
with open(os.path.join(env["JUPYTER_RUNTIME_DIR"], "jpserver-%d.json" % os.getpid()), "w") as fh:
    json.dump(dict(port=port, pid=os.getpid()), fh)
note(event="listening")
print("STANDIN LISTENING %d" % port, file=sys.stderr, flush=True)
server.settimeout(0.2)
serve = float(env.get("HPCW_SERVE", "0"))  # seconds to serve after the first connection (the script's check)
deadline = time.time() + 30 + serve
while time.time() < deadline:
    try:
        server.accept()[0].close()
        deadline = min(deadline, time.time() + serve + 0.3)
    except socket.timeout:
        pass
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _setup(work: Path, env_extra: dict[str, str] | None = None, *, programs: dict[str, str] | None = None):
    bindir = work / "bin"
    bindir.mkdir(parents=True)
    _write(bindir / "jupyter", STANDIN.replace("{python}", sys.executable))
    for name, text in (programs or {}).items():
        _write(bindir / name, text)
    tmp = short_tmpdir()
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(tmp), "USER": "jdoe",
           "SLURMD_NODENAME": socket.gethostname(), "SLURM_JOB_ID": "4242", "HPCW_RECORD": str(work / "record.jsonl")}
    env.update(env_extra or {})
    return env, tmp


def _run(script: str, work: Path, env_extra: dict[str, str] | None = None, **kw) -> tuple[int, str, Path, list]:
    env, tmp = _setup(work, env_extra, **kw)
    job = _write(work / "job.sh", script)
    proc = subprocess.run(["bash", str(job)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=90)
    return proc.returncode, proc.stdout, tmp, _records(work)


def _records(work: Path) -> list[dict]:
    path = work / "record.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _tunnel(text: str) -> tuple[str, int]:
    m = re.search(r"^   ssh -N -L \d+:(\S+):(\d+) -o ExitOnForwardFailure=yes \S+$", text, re.M)
    assert m, text
    return m.group(1), int(m.group(2))


def model(**changes) -> JupyterJob:
    base = JupyterJob(login_host=LOGIN, helper_python=sys.executable)
    return base.replace(**changes) if changes else base


# --- 1. a node name that means loopback on the node itself -------------------------------------------------------

def test_a_node_name_that_means_loopback_gets_an_address_the_login_node_can_reach(tmp_path):
    """Debian/Ubuntu write '127.0.1.1 NAME' into /etc/hosts: listening on NAME there is unreachable through ssh -L."""
    need(bool(reachable_addresses()), "this machine has no address other than loopback")
    rc, text, _, records = _run(render_jupyter_job(model()), tmp_path, {"SLURMD_NODENAME": "localhost"})
    assert rc == 0, text
    host, port = _tunnel(text)
    listening = [r for r in records if r["event"] == "listening"]
    assert len(listening) == 1, text
    addr = ipaddress.ip_address(listening[0]["ip"])
    assert not addr.is_loopback, f"JupyterLab listens on {addr}, which the login node cannot reach"
    assert host.strip("[]") == str(addr) and port == listening[0]["port"], "the tunnel names where it listens"


# --- 2. the port check is made on exactly the address JupyterLab listens on ----------------------------------------

def test_jupyterlab_listens_on_exactly_the_checked_and_printed_address(tmp_path):
    rc, text, _, records = _run(render_jupyter_job(model()), tmp_path)
    assert rc == 0, text
    start = next(r for r in records if r["event"] == "start")
    ipaddress.ip_address(start["ip"])  # an address, not a name that may resolve to several (IPv4 and IPv6)
    assert f"address {start['ip']}, port {start['port']}" in text
    assert _tunnel(text) == (f"[{start['ip']}]" if ":" in start["ip"] else start["ip"], start["port"])


def test_a_port_busy_on_that_address_only_is_skipped(tmp_path):
    """A program listening on the chosen address (not on 0.0.0.0) makes the port busy for JupyterLab too."""
    need(bool(reachable_addresses()), "this machine has no address other than loopback")
    first = tmp_path / "first"
    rc, text, _, records = _run(render_jupyter_job(model()), first)
    assert rc == 0, text
    addr = records[0]["ip"]
    with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET) as busy:
        busy.bind((addr, 0))
        busy.listen()
        port = busy.getsockname()[1]
        need(port + 4 <= 65535, "the system gave a port at the top of the range")
        for i in range(3):
            rc, text, _, records = _run(render_jupyter_job(model(port_min=port, port_max=port + 4)), tmp_path / f"r{i}")
            assert rc == 0, text
            assert [r["port"] for r in records if r["event"] == "busy"] == []
            assert _tunnel(text)[1] != port


# --- 3. the tunnel is printed once JupyterLab answers; a port taken in between gets a new one --------------------

def test_the_tunnel_is_printed_only_once_jupyterlab_answers(tmp_path):
    rc, text, _, records = _run(render_jupyter_job(model()), tmp_path, {"HPCW_DELAY": "2"})
    assert rc == 0, text
    assert "STANDIN LISTENING" in text and "ssh -N -L" in text
    assert text.index("STANDIN LISTENING") < text.index("ssh -N -L"), text
    assert text.index("STANDIN LISTENING") < text.index("JupyterLab is ready"), text


def test_a_port_taken_between_the_check_and_the_start_gets_a_new_port(tmp_path):
    """port_retries=0: JupyterLab stops with 'not available'; the script picks another port and prints that one."""
    marker = tmp_path / "intruder.pid"
    try:
        rc, text, _, records = _run(render_jupyter_job(model()), tmp_path / "w", {"HPCW_TAKE_FIRST": str(marker)})
    finally:
        if marker.exists():
            os.kill(int(marker.read_text()), signal.SIGKILL)
    assert rc == 0, text
    starts = [r for r in records if r["event"] == "start"]
    assert len(starts) == 2 and starts[0]["port"] != starts[1]["port"], text
    assert [r["port"] for r in records if r["event"] == "busy"] == [starts[0]["port"]]
    assert f"Another program took port {starts[0]['port']}" in text
    assert _tunnel(text)[1] == starts[1]["port"], "the tunnel names the port that really serves"
    assert text.count("ssh -N -L") == 1


def test_a_server_that_never_answers_is_stopped_after_the_timeout(tmp_path):
    script = render_jupyter_job(model())
    assert "jl_start_timeout=300" in script
    script = script.replace("jl_start_timeout=300", "jl_start_timeout=2")
    rc, text, tmp, records = _run(script, tmp_path, {"HPCW_NEVER": "1"})
    assert rc == 1, text
    assert "did not answer within 2 seconds" in text
    assert "ssh -N -L" not in text
    assert [r["event"] for r in records] == ["start", "term"], "the silent server is stopped"
    assert list(tmp.iterdir()) == []


# --- 4. the private folder goes at once on scancel, and a leftover is named ----------------------------------------

def _start_in_background(script: str, work: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    env, tmp = _setup(work, env_extra)
    job = _write(work / "job.sh", script)
    proc = subprocess.Popen(["bash", str(job)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    return proc, tmp


def test_the_private_folder_is_removed_at_once_when_jupyterlab_is_slow_to_stop(tmp_path):
    """Slurm sends SIGTERM, then SIGKILL after KillWait: the folder must be gone before JupyterLab has stopped."""
    script = render_jupyter_job(model())
    proc, tmp = _start_in_background(script, tmp_path, {"HPCW_SLOW_STOP": "20", "HPCW_SERVE": "60"})
    try:
        deadline = time.monotonic() + 30
        while not any(r["event"] == "listening" for r in _records(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # the script checks once a second
        runtime = list(tmp.iterdir())
        assert len(runtime) == 1, "the private folder exists while JupyterLab runs"
        os.killpg(proc.pid, signal.SIGTERM)  # like slurmstepd: every process of the job
        gone = time.monotonic() + 3
        while runtime[0].exists() and time.monotonic() < gone:
            time.sleep(0.1)
        assert not runtime[0].exists(), "the private folder must go before a slow JupyterLab has stopped"
        assert proc.poll() is None, "JupyterLab is still stopping (the test's premise)"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # like slurmstepd after KillWait
        proc.communicate(timeout=30)


def test_a_private_folder_that_cannot_be_removed_is_named_in_the_log(tmp_path):
    failing_rm = "#!/bin/sh\necho \"rm: cannot remove: Device or resource busy\" >&2\nexit 1\n"
    rc, text, tmp, _ = _run(render_jupyter_job(model()), tmp_path, programs={"rm": failing_rm})
    assert rc == 0, text
    left = list(tmp.iterdir())
    assert len(left) == 1
    assert f"could not remove this job's private folder {left[0]}" in text


# --- on the practice cluster ----------------------------------------------------------------------------------------

#: a jupyter that lets another program take its port on the first start, then runs the real JupyterLab
TAKE_FIRST_WRAPPER = """#!/bin/bash
for a in "$@"; do case $a in --ip=*) ip=${{a#--ip=}};; --port=*) port=${{a#--port=}};; esac; done
if [[ ! -e {marker} ]]; then
  echo "$port" > {marker}
  setsid {python} -m http.server "$port" --bind "$ip" > /dev/null 2>&1 < /dev/null &
  echo $! > {marker}.pid
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null && break; sleep 0.1; done  # it listens
fi
exec {jupyter} "$@"
"""


def _submit_and_wait(tmp_path: Path, m: JupyterJob, ready: str = "http://localhost"):
    from hpcwidgets.run import slurm
    submitted = slurm.submit(render_jupyter_job(m), cwd=tmp_path)
    log = tmp_path / f"jupyter-{submitted.id}.log"
    deadline = time.monotonic() + 120
    text = ""
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if ready in text:
            break
        if submitted.state() not in ("PENDING", "RUNNING", "CONFIGURING"):
            break
        time.sleep(0.5)
    return submitted, log, text


def _status(url: str) -> int:
    import urllib.error
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers={"Host": "localhost:8888"}), timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _need_cluster():
    from hpcwidgets.run import slurm
    need(slurm.available(), "no Slurm cluster answers (start it with: hpcwidgets practice-cluster up)")
    jupyter = Path(sys.executable).parent / "jupyter"
    need(jupyter.exists(), f"no jupyter next to {sys.executable}")
    return jupyter


@pytest.mark.real
def test_a_port_taken_on_the_practice_cluster_gets_a_new_port(tmp_path):
    jupyter = _need_cluster()
    tmp_path.chmod(0o755)
    marker = tmp_path / "taken"
    (tmp_path / "wrap").mkdir()
    wrapper = _write(tmp_path / "wrap" / "jupyter",
                     TAKE_FIRST_WRAPPER.format(marker=marker, python=sys.executable, jupyter=jupyter))
    m = model(login_host="localhost", notebook_dir=str(tmp_path), python=str(wrapper),
              job=SlurmJob(job_name="jupyter-retry", time="00:05:00", output=str(tmp_path / "jupyter-%j.log")))
    submitted, log, text = _submit_and_wait(tmp_path, m)
    try:
        taken = int(marker.read_text())
        host, port = _tunnel(text)
        assert port != taken, text
        assert f"Another program took port {taken}" in text and "not available" in text
        token = re.search(r"token=([0-9a-f]{48})", text).group(1)
        assert _status(f"http://{host}:{port}/api/status?token={token}") == 200
        assert _status(f"http://{host}:{port}/api/status") == 403
    finally:
        submitted.cancel()
        pid = Path(f"{marker}.pid")
        if pid.exists():
            try:
                os.kill(int(pid.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert submitted.wait(timeout=60) == "CANCELLED"


@pytest.mark.real
def test_scancel_removes_the_private_folder_even_when_jupyterlab_outlives_killwait(tmp_path):
    """The practice cluster's KillWait is 5 s; this stand-in takes 20 s to stop, so slurmstepd SIGKILLs the job."""
    _need_cluster()
    tmp_path.chmod(0o755)
    env_dir = tmp_path / "env" / "bin"
    env_dir.mkdir(parents=True)
    standin = _write(env_dir / "jupyter", STANDIN.replace("{python}", sys.executable).replace(
        'env = os.environ', 'env = dict(os.environ, HPCW_SLOW_STOP="20", HPCW_SERVE="600", '
                            f'HPCW_RECORD={str(tmp_path / "record.jsonl")!r})'))
    m = model(login_host="localhost", notebook_dir=str(tmp_path), python=str(standin),
              job=SlurmJob(job_name="jupyter-slow", time="00:05:00", output=str(tmp_path / "jupyter-%j.log")))
    submitted, log, text = _submit_and_wait(tmp_path, m)
    try:
        assert "STANDIN LISTENING" in text, text
        runtime = Path(re.search(r"The token is also in (\S+)/token", text).group(1))
        assert runtime.is_dir()
    finally:
        submitted.cancel()
    gone = time.monotonic() + 30
    while runtime.exists() and time.monotonic() < gone:
        time.sleep(0.2)
    assert not runtime.exists(), "the private folder must not outlive a cancelled job:\n" + log.read_text()
    assert submitted.wait(timeout=60) == "CANCELLED"
