"""Session 20, with the renderer's part: the JupyterLab job starts its kernels with the transport its
``kernel_transport`` names, says in a comment and in its log what tcp gives up, reads back to the same model, and its
log says that the idle stop shuts down a terminal whose tab is open too.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.parse.jupyter import parse_jupyter_job
from hpcwidgets.render.jupyter import render_jupyter_job
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.jupyter import ALLOW_ROOT, PRIVATE_KERNELS, SHARED_KERNELS, JupyterJob

LOGIN = "login.example.org"
CONTAINERS = [None, ApptainerRun(image="lab.sif", nv=True), ApptainerRun(image="lab.sif", containall=True),
              ChRun(image="/img/lab")]


def job(**changes) -> JupyterJob:
    return JupyterJob(**{"login_host": LOGIN, "helper_python": sys.executable, **changes})


def _start_line(script: str) -> str:
    return script.split("jl_start() {", 1)[1].split("&\n")[0]


def _log_lines(script: str) -> str:
    """The text the script's printf lines print, joined."""
    return " ".join(re.findall(r'^  "(.*)"(?: \\| >&2)?$', script, re.M))


@pytest.mark.parametrize("container", CONTAINERS)
def test_the_start_line_has_the_chosen_transport_among_the_jobs_settings(container):
    for transport, option, other in (("ipc", PRIVATE_KERNELS, SHARED_KERNELS), ("tcp", SHARED_KERNELS, PRIVATE_KERNELS)):
        start = _start_line(render_jupyter_job(job(container=container, notebook_dir="/scratch/p",
                                                   kernel_transport=transport)))
        assert option in start and other not in start
        assert start.index(option) < start.index(str(ALLOW_ROOT))


def test_tcp_is_said_in_a_comment_and_in_the_log_and_ipc_says_nothing():
    tcp = render_jupyter_job(job(kernel_transport="tcp"))
    comment = [line for line in tcp.splitlines() if line.startswith("# ") and "kernel_transport = tcp" in line]
    assert len(comment) == 1 and "127.0.0.1" in comment[0]
    said = _log_lines(tcp)
    assert "note: kernel_transport is tcp" in said and "every user of the node can connect to" in said
    assert "no one without it can make them run code" in said and "does not encrypt them" in said
    assert "read every cell's code and output" in said
    plain = render_jupyter_job(job())
    assert "kernel_transport" not in plain and "note: kernel_transport" not in plain


def test_the_note_is_printed_when_the_job_runs(tmp_path):
    """The lines the script runs before starting JupyterLab print the note (bash reads the printf as written)."""
    script = render_jupyter_job(job(kernel_transport="tcp"))
    block = script[script.index("# --- The kernels listen"):script.index("# --- Start JupyterLab")]
    done = subprocess.run(["bash", "-c", block], capture_output=True, text=True, check=True)
    assert done.stdout == "" and done.stderr.startswith("note: kernel_transport is tcp:")
    assert "read every cell's code and output from a kernel's output channel." in done.stderr.replace("\n", " ")


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_render_parse_render_is_a_fixed_point_with_either_transport(container, transport):
    base = job(container=container, notebook_dir="/scratch/p", kernel_transport=transport, idle_minutes=45,
               extra_args=("--ServerApp.terminals_enabled=False",))
    text = render_jupyter_job(base)
    read = parse_jupyter_job(text)
    assert read.kernel_transport == transport
    assert render_jupyter_job(read) == text


def test_the_linter_notes_the_tcp_job_and_not_the_default():
    assert [f.code for f in lint(render_jupyter_job(job(kernel_transport="tcp")), select="HPC611")] == ["HPC611"]
    assert lint(render_jupyter_job(job()), select="HPC611") == []


def test_the_log_says_an_open_terminal_is_shut_down_too():
    said = _log_lines(render_jupyter_job(job(idle_minutes=20)))
    assert "terminals unused for 20 minutes" in said
    assert ("A terminal counts as unused even with its tab open (only typing and output count): a command that runs "
            "quietly in one ends with it, so run long work as a batch job of its own.") in said
    assert "A terminal counts as unused" not in render_jupyter_job(job(idle_minutes=0))
