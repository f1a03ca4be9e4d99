"""Session 20: the kernels' transport is a choice of the JupyterLab job and of ``make lab`` (ipc by default; tcp for
kernels that cannot use Unix sockets, said with what it gives up), and the idle stop's handling of terminals is said
as Jupyter Server does it (a terminal with its tab open but no input or output is shut down too).

The claims the notes make are checked against the real programs: a kernel over TCP lets a process without its key
read every cell's code and output but not run code (ipykernel and jupyter_client), and JupyterLab's terminal culler
shuts down a terminal that a client is connected to (a real JupyterLab server).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.cli import main as cli_main
from hpcwidgets.lint import lint, rules
from hpcwidgets.parse.jupyter import parse_jupyter_job
from hpcwidgets.render.jupyter import render_jupyter_job
from hpcwidgets.run import lab
from hpcwidgets.spec.jupyter import (KERNELS_IPC, KERNELS_TCP, PRIVATE_KERNELS, SHARED_KERNELS, TCP_KERNELS_NOTE,
                                     TERMINALS_NOTE, JupyterJob, idle_args, kernel_args)

LOGIN = "login.example.org"


def job(**changes) -> JupyterJob:
    return JupyterJob(**{"login_host": LOGIN, "helper_python": sys.executable, **changes})


# --- 1. the field: metadata, validation, JSON, the CLI -----------------------------------------------------------------

def test_the_field_defaults_to_unix_sockets_and_offers_tcp():
    f = JupyterJob.field_spec("kernel_transport")
    assert f.default == KERNELS_IPC == "ipc"
    assert f.info.choices == (KERNELS_IPC, KERNELS_TCP)
    assert f.info.label and f.info.advanced
    assert TCP_KERNELS_NOTE in f.info.help, "the help says what tcp gives up"
    assert job().kernel_transport == "ipc" and job().problems() == []
    assert job(kernel_transport="tcp").problems() == []


def test_kernel_args_are_the_transport_options_the_server_reads():
    assert kernel_args("ipc") == [PRIVATE_KERNELS] == ["--KernelManager.transport=ipc"]
    assert kernel_args("tcp") == [SHARED_KERNELS] == ["--KernelManager.transport=tcp"]
    kernels = pytest.importorskip("jupyter_server.services.kernels.kernelmanager")
    trait = kernels.ServerKernelManager.class_traits(config=True)["transport"]
    assert trait.validate(None, SHARED_KERNELS.split("=")[1]) == "tcp"


@pytest.mark.parametrize("value", ["udp", "TCP", "", "ipc "])
def test_another_transport_is_refused_naming_the_choices(value):
    problems = job(kernel_transport=value).problems()
    assert [p.field for p in problems] == ["kernel_transport"]
    assert "ipc, tcp" in problems[0].message and repr(value) in problems[0].message


def test_json_carries_tcp_and_leaves_the_default_out():
    tcp = job(kernel_transport="tcp")
    data = json.loads(tcp.to_json())
    assert data["kernel_transport"] == "tcp"
    assert JupyterJob.from_json(tcp.to_json()) == tcp
    assert "kernel_transport" not in json.loads(job().to_json())
    older = {k: v for k, v in data.items() if k != "kernel_transport"}  # a file saved before the field existed
    assert JupyterJob.from_dict(older).kernel_transport == "ipc"


def test_the_cli_has_the_option_and_refuses_a_wrong_value_clearly(capsys, tmp_path):
    out = tmp_path / "j.json"
    assert cli_main(["jupyter-job", "--login-host", LOGIN, "--kernel-transport", "tcp", "--format", "json",
                     "-o", str(out)]) == 0
    assert json.loads(out.read_text())["kernel_transport"] == "tcp"
    capsys.readouterr()
    assert cli_main(["jupyter-job", "--login-host", LOGIN, "--kernel-transport", "udp"]) == 2
    err = capsys.readouterr().err
    assert "udp" in err and "tcp" in err and "Traceback" not in err


def test_the_transport_in_extra_arguments_points_at_the_field():
    for extra in (("--KernelManager.transport=tcp",), ("--transport", "tcp")):
        problems = job(extra_args=extra).problems()
        assert [p.field for p in problems] == ["extra_args"]
        assert "kernel_transport" in problems[0].message
        assert "read every cell's code and output" in problems[0].message


# --- 2. what tcp gives up, as the note says it -------------------------------------------------------------------------

def test_the_note_says_what_the_key_does_and_does_not_protect():
    note = TCP_KERNELS_NOTE
    assert "127.0.0.1" in note and "every user" in note
    assert "signs" in note and "no one can send the kernel code to run" in note
    assert "does not encrypt" in note and "read every cell's code and output" in note


@pytest.mark.slow
def test_over_tcp_a_process_without_the_key_reads_the_code_but_cannot_run_any(tmp_path):
    """What TCP_KERNELS_NOTE says, with a real ipykernel: any process that can reach the ports subscribes to the
    output channel and reads the code and its output; a request not signed with the key is refused."""
    zmq = pytest.importorskip("zmq")
    manager = pytest.importorskip("jupyter_client.manager")
    km = manager.KernelManager(transport="tcp", connection_file=str(tmp_path / "kernel.json"))
    km.start_kernel(env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)})
    kc = km.client()
    ctx = zmq.Context()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        info = km.get_connection_info()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(f"tcp://127.0.0.1:{info['iopub_port']}")
        time.sleep(0.5)  # (a subscription takes a moment to reach the publisher)
        secret = uuid.uuid4().hex
        kc.execute_interactive(f"print('{secret}'[::-1])", timeout=30)
        seen = b""
        while sub.poll(1000):
            seen += b"".join(sub.recv_multipart())
        assert secret.encode() in seen and secret[::-1].encode() in seen, "the code and its output"

        marker = tmp_path / "ran"
        outsider = ctx.socket(zmq.DEALER)
        outsider.connect(f"tcp://127.0.0.1:{info['shell_port']}")
        header = json.dumps({"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "session": "x",
                             "username": "x", "version": "5.3", "date": "2024-01-01T00:00:00Z"}).encode()
        content = json.dumps({"code": f"open({str(marker)!r}, 'w').close()", "silent": False}).encode()
        outsider.send_multipart([b"<IDS|MSG>", b"0" * 64, header, b"{}", b"{}", content])
        kc.execute_interactive("1", timeout=30)  # the kernel has read its shell channel since
        assert not marker.exists(), "a request without the key's signature runs nothing"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        ctx.destroy(linger=0)


# --- 3. reading a job back --------------------------------------------------------------------------------------------

def _with_tcp(script: str) -> str:
    """The job as the renderer writes it with kernel_transport tcp: the start line's transport option is the one
    the choice selects (the rest of that script is its log lines, which the reader does not take)."""
    assert script.count(PRIVATE_KERNELS) == 1
    return script.replace(PRIVATE_KERNELS, SHARED_KERNELS)


def test_a_job_with_tcp_kernels_reads_back_as_tcp():
    base = job(idle_minutes=30, extra_args=("--ServerApp.terminals_enabled=False",))
    text = _with_tcp(render_jupyter_job(base))
    read = parse_jupyter_job(text)
    assert read.kernel_transport == "tcp"
    assert read == base.replace(kernel_transport="tcp", helper_python=read.helper_python)
    assert parse_jupyter_job(render_jupyter_job(base)).kernel_transport == "ipc"


def test_a_job_that_names_no_transport_reads_back_with_the_default():
    text = render_jupyter_job(job()).replace(" " + PRIVATE_KERNELS, "").replace(PRIVATE_KERNELS + " ", "")
    assert "transport" not in text.split("jl_start() {", 1)[1].split("&\n")[0]
    assert parse_jupyter_job(text).kernel_transport == "ipc"


def test_tcp_among_the_persons_extra_arguments_is_not_the_jobs_choice():
    """After the start line's ALLOW_ROOT word the arguments are the person's, kept as written (and refused)."""
    text = render_jupyter_job(job())
    marker = '"${jl_extra[@]}"}'
    assert marker in text
    read = parse_jupyter_job(text.replace(marker, marker + " " + SHARED_KERNELS, 1))
    assert read.kernel_transport == "ipc" and read.extra_args == (SHARED_KERNELS,)


# --- 4. the linter's note -----------------------------------------------------------------------------------------------

def _server(options: str) -> str:
    return ("#!/bin/bash\n#SBATCH --time=02:00:00\n"
            f"jupyter lab --no-browser --ip=\"$(hostname -s)\" --port=8888 {options}\n")


def test_the_rule_is_catalogued_with_its_examples():
    rule = rules()["HPC611"]
    assert rule.severity == "info" and rule.name == "jupyter-kernels-over-tcp"
    assert [f.code for f in lint(rule.bad, select="HPC611")] == ["HPC611"]
    assert lint(rule.good, select="HPC611") == []
    assert "HMAC" in rule.why and "encrypt" in rule.why


@pytest.mark.parametrize("options", ["--KernelManager.transport=tcp", "--transport tcp", "--transport=tcp",
                                     "--ServerKernelManager.transport=tcp", "--KernelManager.transport 'tcp'",
                                     "--ConnectionFileMixin.transport=tcp"])
def test_each_spelling_of_tcp_is_noted(options):
    found = lint(_server(options), select="HPC611")
    assert [f.line for f in found] == [3]
    assert "reading every cell's code and output" in found[0].message


@pytest.mark.parametrize("options", ["", "--KernelManager.transport=ipc", "--transport=ipc",
                                     "--KernelManager.transport=tcp --KernelManager.transport=ipc",
                                     "--ServerApp.transport_encryption=tcp", "--KernelManager.ip=127.0.0.1"])
def test_no_note_without_tcp_named(options):
    assert lint(_server(options), select="HPC611") == []


def test_the_note_fires_on_the_job_with_tcp_and_not_on_the_default():
    assert lint(render_jupyter_job(job()), select="HPC611") == []
    assert [f.code for f in lint(_with_tcp(render_jupyter_job(job())), select="HPC611")] == ["HPC611"]


# --- 5. make lab -------------------------------------------------------------------------------------------------------

def test_lab_argv_takes_the_transport():
    assert lab.lab_argv("/nb", 9000, python="py")[-1:] == [PRIVATE_KERNELS] or os.name != "posix"
    argv = lab.lab_argv("/nb", 9000, python="py", transport="tcp")
    if os.name == "posix":
        assert SHARED_KERNELS in argv and PRIVATE_KERNELS not in argv


def _args(tmp_path: Path, argv: list[str]) -> argparse.Namespace:
    return lab.parser().parse_args(["--notebook-dir", str(tmp_path), *argv])


def test_lab_tcp_is_printed_with_what_it_gives_up(tmp_path):
    env = {"USER": "alice"}
    plain = lab.plan(_args(tmp_path, []), env, token="t", is_root=False, terminal=True, preferred=None)
    assert not any(TCP_KERNELS_NOTE in line for line in plain.lines)
    tcp = lab.plan(_args(tmp_path, ["--kernel-transport", "tcp"]), env, token="t", is_root=False, terminal=True,
                   preferred=None)
    assert any(TCP_KERNELS_NOTE in line for line in tcp.lines)
    assert (SHARED_KERNELS in tcp.argv) == (os.name == "posix")


def test_lab_reads_the_transport_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HPCW_KERNEL_TRANSPORT", "tcp")
    assert _args(tmp_path, []).kernel_transport == "tcp"
    assert _args(tmp_path, ["--kernel-transport", "ipc"]).kernel_transport == "ipc", "the option wins"
    monkeypatch.delenv("HPCW_KERNEL_TRANSPORT")
    assert _args(tmp_path, []).kernel_transport == "ipc"


def test_lab_refuses_a_wrong_transport_in_the_environment(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HPCW_KERNEL_TRANSPORT", "udp")
    assert lab.main(["--notebook-dir", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "HPCW_KERNEL_TRANSPORT='udp'" in err and "ipc or tcp" in err


def test_lab_dry_run_shows_the_chosen_transport(tmp_path, capsys):
    need(importlib.util.find_spec("jupyterlab") is not None, "JupyterLab is not installed in this Python")
    assert lab.main(["--notebook-dir", str(tmp_path), "--dry-run", "--kernel-transport", "tcp"]) == 0
    printed = capsys.readouterr().out
    assert (SHARED_KERNELS in printed) == (os.name == "posix") and PRIVATE_KERNELS not in printed


# --- 6. idle terminals ---------------------------------------------------------------------------------------------------

def test_the_help_says_an_open_terminal_is_shut_down_too():
    help_text = JupyterJob.field_spec("idle_minutes").info.help
    assert TERMINALS_NOTE in help_text
    assert "even while its tab is open" in TERMINALS_NOTE and "batch job" in TERMINALS_NOTE
    assert "--TerminalManager.cull_inactive_timeout=3600" in idle_args(60), "terminals are still culled"


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.mark.real
def test_jupyterlab_shuts_down_a_terminal_whose_client_is_connected(tmp_path):
    """What TERMINALS_NOTE says, with a real JupyterLab and the culler settings idle_args makes (in seconds): a
    terminal a client is connected to, running a command that prints nothing, is culled all the same."""
    need(importlib.util.find_spec("jupyterlab") is not None, "JupyterLab is not installed in this Python")
    need(importlib.util.find_spec("terminado") is not None, "terminado is not installed: JupyterLab has no terminals")
    from tornado.websocket import websocket_connect
    port = lab.free_port(None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(JUPYTER_TOKEN="s20", JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    settings = [a.replace("=3600", "=3") if "cull_inactive_timeout" in a else a.replace("=60", "=1")
                for a in idle_args(60) if a.startswith("--TerminalManager.")]
    assert settings == ["--TerminalManager.cull_inactive_timeout=3", "--TerminalManager.cull_interval=1"]
    argv = lab.lab_argv(str(tmp_path), port, allow_root=os.geteuid() == 0, extra=settings)
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def api(path: str, method: str = "GET"):
        request = urllib.request.Request(base + path, method=method, headers={"Authorization": "token s20"},
                                         data=b"" if method == "POST" else None)
        with _DIRECT.open(request, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    async def connected_terminal_outcome() -> float | None:
        name = api("/api/terminals", "POST")["name"]
        ws = await websocket_connect(f"ws://127.0.0.1:{port}/terminals/websocket/{name}?token=s20")
        try:
            await ws.write_message(json.dumps(["stdin", "sleep 600\r"]))  # runs quietly, as long work may
            started = time.monotonic()
            while time.monotonic() - started < 20:
                if name not in [t["name"] for t in api("/api/terminals")]:
                    return time.monotonic() - started
                await asyncio.sleep(0.5)
            return None
        finally:
            ws.close()

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                api("/api/status")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
        culled_after = asyncio.run(connected_terminal_outcome())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    assert culled_after is not None, "the connected terminal was kept: TERMINALS_NOTE and the job's log are wrong now"
    assert "Culling terminal" in (tmp_path / "server.log").read_text()
