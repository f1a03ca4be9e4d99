"""Session 19: the JupyterLab job stops itself when idle, tunnels to the node itself where login nodes cannot reach
compute nodes' ports, and ``make lab`` survives a port taken between the check and JupyterLab's start.

The job-script tests run the rendered script with the stand-in JupyterLab of ``test_jupyter_network`` (it listens,
writes its server file, and stops on its own shortly after the script's check connected, as the idle stop would).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.cli import main as cli_main
from hpcwidgets.parse.jupyter import parse_jupyter_job
from hpcwidgets.render.jupyter import render_jupyter_job, tunnel_command
from hpcwidgets.run import lab
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.jupyter import ALLOW_ROOT, JupyterJob, idle_args
from test_jupyter2_s19 import short_tmpdir
from test_jupyter_network import STANDIN, _records, _run

LOGIN = "login.example.org"
ROOT = Path(__file__).resolve().parents[1]


def job(**changes) -> JupyterJob:
    return JupyterJob(**{"login_host": LOGIN, "helper_python": sys.executable, **changes})


def _start_words(script: str) -> list[str]:
    """The JupyterLab options on the job's start line, in order."""
    start = script.split("jl_start() {", 1)[1].split("&\n")[0]
    return re.findall(r"(?<=\s)(--\S+?=\S+|\$\{jl_extra.*?\})(?=\s)", start)


# --- 1. idle shutdown ------------------------------------------------------------------------------------------------

def test_idle_minutes_become_the_servers_and_the_cullers_settings():
    words = _start_words(render_jupyter_job(job(idle_minutes=45, extra_args=("--ServerApp.terminals_enabled=False",))))
    settings = ["--ServerApp.shutdown_no_activity_timeout=2700", "--MappingKernelManager.cull_idle_timeout=2700",
                "--MappingKernelManager.cull_interval=60", "--MappingKernelManager.cull_connected=False",
                "--TerminalManager.cull_inactive_timeout=2700", "--TerminalManager.cull_interval=60"]
    at = words.index(settings[0])
    assert words[at:at + len(settings)] == settings
    assert words[at + len(settings)] == str(ALLOW_ROOT), "the job's settings stand before the person's extra ones"
    assert words[-1] == "--ServerApp.terminals_enabled=False"
    never = _start_words(render_jupyter_job(job(idle_minutes=0)))
    assert not any("shutdown_no_activity" in w or "cull" in w for w in never)


def test_the_default_stops_an_idle_server_after_an_hour():
    assert JupyterJob().idle_minutes == 60
    assert "--ServerApp.shutdown_no_activity_timeout=3600" in render_jupyter_job(job())


@pytest.mark.parametrize("setting", idle_args(30))
def test_each_idle_setting_is_a_configurable_trait_of_the_installed_server(setting):
    """The option names are Jupyter Server's own (a misspelt one is ignored by traitlets, and nothing would stop)."""
    need(importlib.util.find_spec("jupyter_server") is not None, "Jupyter Server is not installed in this Python")
    owners = {"ServerApp": "jupyter_server.serverapp",
              "MappingKernelManager": "jupyter_server.services.kernels.kernelmanager",
              "TerminalManager": "jupyter_server_terminals.terminalmanager"}
    cls_name, trait_and_value = setting[2:].split(".", 1)
    trait, value = trait_and_value.split("=")
    module = pytest.importorskip(owners[cls_name])
    traits = getattr(module, cls_name).class_traits(config=True)
    assert trait in traits, f"{cls_name}.{trait} is not a configurable trait"
    assert traits[trait].from_string(value) is not None


def test_the_log_says_when_the_server_stops_and_no_more_when_it_never_does():
    text = render_jupyter_job(job(idle_minutes=20))
    assert "after 20 idle minutes. An open JupyterLab tab" in text and "terminals unused for 20 minutes" in text
    assert "(a kernel running code never" in text
    never = render_jupyter_job(job(idle_minutes=0))
    assert "idle minutes" not in never and "JupyterLab has stopped; the job ends." in never


def test_the_server_stopping_itself_ends_the_job_cleanly(tmp_path):
    """The idle stop ends JupyterLab with status 0: the job ends with it, says so, and removes its private folder."""
    rc, text, tmp, records = _run(render_jupyter_job(job(idle_minutes=5)), tmp_path)
    assert rc == 0, text
    assert [r["event"] for r in records] == ["start", "listening"], "it stopped on its own, not by a signal"
    assert text.index("JupyterLab is ready") < text.index("after 5 idle minutes. An open JupyterLab tab") \
        < text.index("JupyterLab has stopped (shut down from its menu, or after 5 idle minutes); the job ends.")
    assert list(tmp.iterdir()) == [], "the private folder is removed"


def test_the_job_sets_the_idle_options_so_extra_args_may_not_while_it_does():
    taken = job(extra_args=("--ServerApp.shutdown_no_activity_timeout=600",)).problems()
    assert [p.field for p in taken] == ["extra_args"]
    assert "idle_minutes" in taken[0].message and "0 turns the idle stop off" in taken[0].message
    assert job(extra_args=("--MappingKernelManager.cull_idle_timeout", "600")).problems()
    assert job(idle_minutes=0, extra_args=("--MappingKernelManager.cull_idle_timeout=600",)).problems() == []
    assert job(extra_args=("--MappingKernelManager.cull_busy=True",)).problems(), "it would shut code running down"
    assert job(extra_args=("--MappingKernelManager.default_kernel_name=ir",)).problems() == [], "not the job's"
    assert [p.field for p in job(idle_minutes=-1).problems()] == ["idle_minutes"]


@pytest.mark.parametrize("minutes", [0, 1, 15, 60, 24 * 60])
def test_idle_minutes_read_back(minutes):
    text = render_jupyter_job(job(idle_minutes=minutes))
    back = parse_jupyter_job(text)
    assert back.idle_minutes == minutes and render_jupyter_job(back) == text


def test_a_job_written_before_the_idle_stop_reads_back_as_never_stopping():
    """Reading back keeps what the script does: one without the settings never stopped itself."""
    text = render_jupyter_job(job(idle_minutes=0, extra_args=("--ServerApp.shutdown_no_activity_timeout=600",)))
    back = parse_jupyter_job(text)
    assert back.idle_minutes == 0 and back.extra_args == ("--ServerApp.shutdown_no_activity_timeout=600",)
    assert back.problems() == []


def test_a_server_someone_else_started_becomes_a_job_with_the_default_idle_stop():
    back = parse_jupyter_job("#!/bin/bash\n#SBATCH --time=1:00:00\njupyter lab --no-browser --port=8888\n")
    assert back.idle_minutes == 60


def test_the_cli_takes_idle_minutes_and_refuses_a_negative_one(capsys):
    assert cli_main(["jupyter-job", "--login-host", LOGIN, "--idle-minutes", "90"]) == 0
    assert "--ServerApp.shutdown_no_activity_timeout=5400" in capsys.readouterr().out
    assert cli_main(["jupyter-job", "--login-host", LOGIN, "--idle-minutes", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--idle-minutes" in err and "at least 0" in err and "Traceback" not in err


# --- 2. the tunnel to the node itself -------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, expected", [
    ({}, "ssh -N -L 8888:127.0.0.1:$jl_port -o ExitOnForwardFailure=yes -J $USER@login.example.org $USER@$jl_node"),
    ({"login_port": 8022, "jump_host": "gw.example.org", "login_user": "jdoe", "local_port": 9999},
     "ssh -N -L 9999:127.0.0.1:$jl_port -o ExitOnForwardFailure=yes -J gw.example.org,jdoe@login.example.org:8022 "
     "jdoe@$jl_node"),
    ({"login_host": "2001:db8::1", "jump_host": "a@gw:2222,[2001:db8::2]"},
     "ssh -N -L 8888:127.0.0.1:$jl_port -o ExitOnForwardFailure=yes -J a@gw:2222,[2001:db8::2],$USER@[2001:db8::1] "
     "$USER@$jl_node"),
])
def test_the_tunnel_to_the_node_renders_and_reads_back(fields, expected):
    model = job(tunnel="node", **fields)
    text = render_jupyter_job(model)
    assert f'jl_tunnel="{expected}"' in text
    assert "jl_addr=127.0.0.1" in text and "address \"$jl_node\")" not in text, "JupyterLab listens on loopback only"
    back = parse_jupyter_job(text)
    assert back == model and render_jupyter_job(back) == text


def test_the_tunnel_through_the_login_node_is_unchanged():
    assert tunnel_command("10.0.0.7", 23456, "login", "jdoe", login_port=8022, jump_host="gw") == \
        "ssh -N -L 8888:10.0.0.7:23456 -o ExitOnForwardFailure=yes -p 8022 -J gw jdoe@login"
    back = parse_jupyter_job(render_jupyter_job(job(login_port=8022, jump_host="gw.example.org")))
    assert back.tunnel == "login" and back.login_port == 8022 and back.jump_host == "gw.example.org"


def test_the_node_tunnel_works_with_a_container():
    model = job(tunnel="node", container=ApptainerRun(image="lab.sif", nv=True))
    assert model.problems() == []
    assert parse_jupyter_job(render_jupyter_job(model)) == model


def test_the_job_listens_on_loopback_and_prints_the_node_tunnel(tmp_path):
    rc, text, _, records = _run(render_jupyter_job(job(tunnel="node")), tmp_path, {"SLURMD_NODENAME": "gpu017"})
    assert rc == 0, text
    listening = [r for r in records if r["event"] == "listening"]
    assert len(listening) == 1 and listening[0]["ip"] == "127.0.0.1", text
    port = listening[0]["port"]
    assert (f"   ssh -N -L 8888:127.0.0.1:{port} -o ExitOnForwardFailure=yes -J jdoe@{LOGIN} jdoe@gpu017"
            in text.splitlines()), text


def test_the_cli_offers_the_tunnels_forms(capsys):
    assert cli_main(["jupyter-job", "--login-host", LOGIN, "--tunnel", "node"]) == 0
    assert "-J $USER@login.example.org $USER@$jl_node" in capsys.readouterr().out
    assert cli_main(["jupyter-job", "--login-host", LOGIN, "--tunnel", "adopt"]) == 2
    err = capsys.readouterr().err
    assert "login, node" in err and "Traceback" not in err


# --- make lab: the tunnel's forms -----------------------------------------------------------------------------------

def args(*argv: str) -> argparse.Namespace:
    return lab.parser().parse_args(list(argv))


NODE_JOB = {"SLURM_JOB_ID": "77", "SLURMD_NODENAME": "gpu017", "USER": "jdoe"}


def test_make_lab_prints_the_tunnel_to_the_node(tmp_path):
    p = lab.plan(args("--notebook-dir", str(tmp_path), "--login-host", LOGIN, "--login-port", "8022",
                      "--jump-host", "gw.example.org", "--tunnel", "node"), NODE_JOB, token="abc", is_root=False)
    assert "--ip=127.0.0.1" in p.argv
    assert (f"   ssh -N -L 8888:127.0.0.1:{p.port} -o ExitOnForwardFailure=yes -J gw.example.org,jdoe@{LOGIN}:8022 "
            "jdoe@gpu017") in p.lines


def test_make_lab_takes_the_tunnels_form_from_the_environment(tmp_path, monkeypatch):
    """make passes a variable set on its command line to the program's environment: make lab HPCW_TUNNEL=node."""
    monkeypatch.setenv("HPCW_TUNNEL", "node")
    p = lab.plan(args("--notebook-dir", str(tmp_path), "--login-host", LOGIN), NODE_JOB, token="abc", is_root=False)
    assert any(line.endswith("jdoe@gpu017") and "-J jdoe@" in line for line in p.lines)


def test_a_bad_tunnel_form_in_the_environment_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HPCW_TUNNEL", "nodes")
    assert lab.main(["--notebook-dir", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "HPCW_TUNNEL='nodes'" in err and "login or node" in err


# --- 3. make lab: a port taken between the check and JupyterLab's start ---------------------------------------------

def _lab(tmp_path: Path, *extra: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m hpcwidgets.run.lab`` outside Slurm with the stand-in JupyterLab as its Python."""
    standin = tmp_path / "standin-python"
    standin.write_text(STANDIN.replace("{python}", sys.executable))
    standin.chmod(0o755)
    (tmp_path / "nb").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "MAKE", "HPCW_"))}
    env.update({"TMPDIR": str(short_tmpdir()), "HPCW_RECORD": str(tmp_path / "record.jsonl"), **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "hpcwidgets.run.lab", "--notebook-dir", str(tmp_path / "nb"),
                           "--python", str(standin), *extra], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def _urls(text: str) -> list[int]:
    return [int(port) for port in re.findall(r"http://127\.0\.0\.1:(\d+)/lab\?token=[0-9a-f]{48}", text)]


def test_make_lab_prints_the_address_once_jupyterlab_answers(tmp_path):
    tmp = short_tmpdir()
    proc = _lab(tmp_path, env_extra={"TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stderr
    listening = [r for r in _records(tmp_path) if r["event"] == "listening"]
    assert len(listening) == 1
    assert _urls(proc.stdout) == [listening[0]["port"]]
    assert list(tmp.iterdir()) == [], "the private runtime folder is removed"


def _kill_intruder(marker: Path) -> None:
    """Stop the stand-in that took the port, if it still runs (it may have ended with the lab's process group)."""
    if marker.exists():
        try:
            os.kill(int(marker.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_make_lab_moves_to_a_new_port_when_another_program_takes_its_port(tmp_path):
    marker = tmp_path / "intruder.pid"
    try:
        proc = _lab(tmp_path, env_extra={"HPCW_TAKE_FIRST": str(marker)})
    finally:
        _kill_intruder(marker)
    assert proc.returncode == 0, proc.stderr
    records = _records(tmp_path)
    starts = [r["port"] for r in records if r["event"] == "start"]
    assert len(starts) == 2 and starts[0] != starts[1], records
    assert f"Another program took port {starts[0]} before JupyterLab could use it; trying another port." in proc.stderr
    assert _urls(proc.stdout) == [starts[1]], "only the address of the server that answers is printed"


def test_make_lab_keeps_a_port_given_with_port_and_prints_no_address(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    marker = tmp_path / "intruder.pid"
    try:
        proc = _lab(tmp_path, "--port", str(port), env_extra={"HPCW_TAKE_FIRST": str(marker)})
    finally:
        _kill_intruder(marker)
    assert proc.returncode == 2
    assert f"another program took port {port} as JupyterLab started; choose another with --port" in proc.stderr
    assert _urls(proc.stdout + proc.stderr) == [] and "Traceback" not in proc.stderr
    assert [r["event"] for r in _records(tmp_path)] == ["start", "busy"], "no second start on another port"


def test_make_lab_gives_up_after_its_tries_without_printing_an_address(tmp_path, monkeypatch, capsys):
    """Every chosen port taken: a bounded number of starts, then JupyterLab's status, and no address."""
    monkeypatch.setattr(lab, "START_TRIES", 2)
    monkeypatch.setattr(lab.Supervisor, "start", lambda self, plan: bool(starts.append(plan.port)))
    monkeypatch.setattr(lab.Supervisor, "wait", lambda self: 1)
    monkeypatch.setattr(lab.netcheck, "free", lambda addr, port: False)
    starts: list[int] = []
    (tmp_path / "runtime").mkdir()
    status = lab.serve(args("--notebook-dir", str(tmp_path)), {}, tmp_path / "runtime")
    out, err = capsys.readouterr()
    assert status == 1 and len(starts) == 2
    assert err.count("trying another port") == 1 and "exit status 1 before it answered" in err
    assert "http://" not in out
    assert not (tmp_path / "runtime").exists()
