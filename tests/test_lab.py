"""``make lab``: the JupyterLab launcher (argv, plan, and a real server)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.errors import HpcWidgetsError
from hpcwidgets.run import lab


def args(*argv: str) -> argparse.Namespace:
    return lab.parser().parse_args(list(argv))


def test_lab_argv_outside_slurm():
    argv = lab.lab_argv("/work/notebooks", 8888, python="/venv/bin/python")
    assert argv == ["/venv/bin/python", "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", "--port=8888",
                    "--ServerApp.port_retries=0", "--notebook-dir=/work/notebooks", "--KernelManager.transport=ipc"]


def test_lab_argv_as_root_on_a_node_with_extras():
    argv = lab.lab_argv("/nb dir", 9000, "n3", allow_root=True, python="py", extra=("--a=b",))
    assert "--ip=n3" in argv and "--port=9000" in argv and "--notebook-dir=/nb dir" in argv
    assert argv[-2:] == ["--allow-root", "--a=b"]
    assert not any("token" in a.lower() for a in argv), "the token never goes on the command line"


def test_lab_env_carries_the_token_without_touching_the_base():
    base = {"PATH": "/bin"}
    env = lab.lab_env("t0k", base)
    assert env == {"PATH": "/bin", "JUPYTER_TOKEN": "t0k"} and base == {"PATH": "/bin"}


def test_plan_outside_slurm_listens_on_localhost(tmp_path):
    p = lab.plan(args("--notebook-dir", str(tmp_path)), {"PATH": "/bin"}, token="abc", is_root=False)
    port = int(next(a for a in p.argv if a.startswith("--port=")).split("=")[1])
    assert "--ip=127.0.0.1" in p.argv and "--allow-root" not in p.argv
    assert p.url == f"http://127.0.0.1:{port}/lab?token=abc"
    assert any(p.url in line for line in p.lines)
    assert not any("ssh" in line for line in p.lines)
    assert p.env["JUPYTER_TOKEN"] == "abc"
    assert f"--notebook-dir={tmp_path.resolve()}" in p.argv


def test_plan_makes_a_random_token_each_time(tmp_path):
    a = lab.plan(args("--notebook-dir", str(tmp_path)), {}, is_root=False)
    b = lab.plan(args("--notebook-dir", str(tmp_path)), {}, is_root=False)
    assert re.fullmatch(r"[0-9a-f]{48}", a.env["JUPYTER_TOKEN"])
    assert a.env["JUPYTER_TOKEN"] != b.env["JUPYTER_TOKEN"]


def test_plan_inside_slurm_prints_the_tunnel(tmp_path, monkeypatch):
    # the node's name may resolve to 127.0.1.1 on the node itself: JupyterLab listens on, and the tunnel names,
    # an address the login node reaches (the same choice the Jupyter job script makes)
    monkeypatch.setattr(lab.netcheck, "address", lambda node: {"n7": "10.1.0.7"}[node])
    env = {"SLURM_JOB_ID": "99", "SLURMD_NODENAME": "n7", "USER": "jdoe"}
    p = lab.plan(args("--notebook-dir", str(tmp_path), "--login-host", "login.example.org", "--local-port", "8890"),
                 env, token="abc", is_root=True)
    port = int(next(a for a in p.argv if a.startswith("--port=")).split("=")[1])
    assert "--ip=10.1.0.7" in p.argv and "--allow-root" in p.argv
    assert f"   ssh -N -L 8890:10.1.0.7:{port} -o ExitOnForwardFailure=yes jdoe@login.example.org" in p.lines
    assert p.url == "http://localhost:8890/lab?token=abc" and "   " + p.url in p.lines


def test_plan_inside_slurm_never_listens_on_a_loopback_name(tmp_path, monkeypatch):
    import socket as sock
    real = sock.getaddrinfo
    monkeypatch.setattr(lab.netcheck.socket, "getaddrinfo",
                        lambda host, *a, **k: real("127.0.1.1", *a, **k) if host == "n7" else real(host, *a, **k))
    p = lab.plan(args("--notebook-dir", str(tmp_path), "--login-host", "login.example.org"),
                 {"SLURM_JOB_ID": "99", "SLURMD_NODENAME": "n7", "USER": "jdoe"}, token="abc", is_root=False)
    ip = next(a for a in p.argv if a.startswith("--ip=")).split("=", 1)[1]
    assert ip != "127.0.1.1" and not ip.startswith("127.")


def test_plan_inside_slurm_without_a_login_host_asks_for_one(tmp_path):
    p = lab.plan(args("--notebook-dir", str(tmp_path), "--profile", ""), {"SLURM_JOB_ID": "1", "SLURMD_NODENAME": "n1"},
                 token="abc", is_root=False)
    assert not any(line.lstrip().startswith("ssh") for line in p.lines)
    assert any("--login-host" in line for line in p.lines)


def test_plan_inside_slurm_takes_the_login_host_from_a_profile(tmp_path):
    profiles = pytest.importorskip("hpcwidgets.profiles")
    host = profiles.load_profile("midway3").login_host
    env = {"SLURM_JOB_ID": "1", "SLURMD_NODENAME": "n1", "USER": "jdoe"}
    p = lab.plan(args("--notebook-dir", str(tmp_path), "--profile", "midway3"), env, token="abc", is_root=False)
    assert any(line.strip().endswith(f"jdoe@{host}") for line in p.lines)
    override = lab.plan(args("--notebook-dir", str(tmp_path), "--profile", "midway3", "--login-host", "other.org"),
                        env, token="abc", is_root=False)
    assert any(line.strip().endswith("jdoe@other.org") for line in override.lines)


def test_plan_refuses_a_missing_folder_and_a_busy_port(tmp_path):
    with pytest.raises(lab.LabError, match="--notebook-dir"):
        lab.plan(args("--notebook-dir", str(tmp_path / "nope")), {})
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(lab.LabError, match=f"port {port} is already in use"):
            lab.plan(args("--notebook-dir", str(tmp_path), "--port", str(port)), {})
        assert lab.free_port(port) != port


def test_main_reports_errors_and_dry_run(tmp_path, capsys):
    assert lab.main(["--notebook-dir", str(tmp_path / "nope"), "--dry-run"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert lab.main(["--notebook-dir", str(tmp_path), "--dry-run", "--port", "70000"]) == 2
    assert "not a port number" in capsys.readouterr().err
    if importlib.util.find_spec("jupyterlab") is not None:
        assert lab.main(["--notebook-dir", str(tmp_path), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "-m jupyterlab" in out and "--ServerApp.port_retries=0" in out and "token" not in out


# --- a real server --------------------------------------------------------------------------------------

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _status(url: str) -> int:
    try:
        with _DIRECT.open(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return 0
        raise


@pytest.mark.real
def test_make_lab_starts_a_server_that_needs_its_token(tmp_path):
    need(importlib.util.find_spec("jupyterlab") is not None, "JupyterLab is not installed in this Python")
    port = lab.free_port(None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    proc = subprocess.Popen([sys.executable, "-m", "hpcwidgets.run.lab", "--notebook-dir", str(tmp_path),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=Path(__file__).parent.parent)
    try:
        url = ""
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline and not url:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(r"http://127\.0\.0\.1:(\d+)/lab\?token=([0-9a-f]+)", line)
            if m:
                url = m.group(0)
        assert url, "".join(seen)
        assert f":{port}/" in url
        token = url.rsplit("=", 1)[1]
        base = f"http://127.0.0.1:{port}/api/status"
        status = 0
        while time.monotonic() < deadline:
            status = _status(f"{base}?token={token}")
            if status:
                break
            time.sleep(0.3)
        assert status == 200
        assert _status(base) == 403
        assert _status(f"{base}?token=x{token}") == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode is not None, "the server must be gone after it was stopped"


def test_lab_error_is_a_package_error():
    assert issubclass(lab.LabError, HpcWidgetsError)
