"""The batch script that runs JupyterLab on a compute node and prints how to reach it.

At run time, on the node, the script:

* sets ``umask 077`` and makes its log private (the log will hold the token); JupyterLab and its kernels get
  the submitter's umask back, so notebooks saved in a shared project folder keep the usual permissions;
* makes a private runtime directory under ``${TMPDIR:-/tmp}`` with ``mktemp -d`` (mode 0700), points
  ``XDG_RUNTIME_DIR`` and ``JUPYTER_RUNTIME_DIR`` there and removes it on exit, and at once on
  scancel or the time limit (before JupyterLab has finished stopping, so Slurm's SIGKILL cannot skip it);
  Apptainer gets it bound in, and ch-run, which shows the host's ``${TMPDIR:-/tmp}`` at the container's
  ``/tmp``, is given its path there; JupyterLab's kernels talk to it through Unix sockets made there
  (:data:`~hpcwidgets.spec.jupyter.PRIVATE_KERNELS`: over 127.0.0.1 TCP any user of the node could read every
  cell's code and output), so a ``$TMPDIR`` too long for their paths is passed over for /tmp; with
  ``kernel_transport = "tcp"``, for kernels that cannot use Unix sockets, they use 127.0.0.1 ports, and the script
  says so, with what that gives up, in a comment and in the log;
* makes a random token with Python's :mod:`secrets`, kept in a 0600 file in that directory and printed
  to the log; it reaches JupyterLab through the ``JUPYTER_TOKEN`` environment variable, which only
  the owner can read, never through the command line, which ``ps`` shows to every user of the node;
* picks one address of the node that the login node can reach (the node's name when it resolves to a
  non-loopback address, else the default route's address or the first of ``hostname -I``; ``0.0.0.0``
  only when there is none), and JupyterLab listens on exactly that address (``--ip=ADDRESS``); with the
  tunnel to the node itself (``tunnel = "node"``) the tunnel ends on the node, so JupyterLab listens on
  ``127.0.0.1`` only;
* picks a free port from ``port_min..port_max`` by binding a socket to that same address, and starts
  JupyterLab in the background with ``--ServerApp.port_retries=0``;
* waits until JupyterLab has written its server file for that port and the port accepts connections;
  when another program took the port in between (JupyterLab stops), it picks another port, up to 3 tries;
* only then prints the tunnel (:func:`tunnel_command`) and the URL, saying that these are the lines to use
  (JupyterLab's own log lines name the node's address and 127.0.0.1, which the laptop cannot open) and what
  to do when the laptop's port is taken, and after how many idle minutes JupyterLab stops itself
  (:func:`~hpcwidgets.spec.jupyter.idle_args`);
* ends when JupyterLab ends (scancel, the time limit, its File menu's Shut Down, or the idle stop), removing
  the runtime folder.

The body is the template ``templates/jupyter.sh.j2`` around values quoted by the contract in
:mod:`hpcwidgets.render.quote`; the whole script is assembled by :func:`~hpcwidgets.render.script.render_script`.
"""

from __future__ import annotations

import functools
import posixpath
import re
from pathlib import Path

from ..spec._words import Verbatim
from ..spec.apptainer import ApptainerRun, env_prefix
from ..spec.charliecloud import USER_COMMENT, USER_LINE, ChRun
from ..spec.common import Bind
from ..spec.jupyter import (ALLOW_ROOT, FIRST_LINE, KERNELS_TCP, RUNTIME, RUNTIME_PATH_MAX, TUNNEL_TO_NODE,
                             JupyterJob, idle_args, kernel_args)
from .command import command_line, wrap
from .quote import assignment, quote
from .script import Block, fill_template, render_script

#: shell variables the script sets at run time (referenced, never filled in at render time)
NODE = "$jl_node"
#: the one address JupyterLab listens on (checked for a free port), and that address as ssh -L writes it
ADDRESS = "$jl_addr"
HOST = "$jl_host"
PORT = "$jl_port"
TOKEN = "$jl_token"
#: where JupyterLab listens when the tunnel ends on the node itself (ssh -J LOGIN … NODE): its loopback, which only
#: the node reaches
LOOPBACK = "127.0.0.1"
#: where the private runtime folder is made: the node-local temporary folder, which ch-run also shows at /tmp
RUNTIME_BASE = "${TMPDIR:-/tmp}"
#: the longest $TMPDIR the runtime folder is made in (else in /tmp), so that the kernels' sockets in it fit: the
#: folder's path is $TMPDIR/jupyter.XXXXXXXXXX
RUNTIME_BASE_MAX = RUNTIME_PATH_MAX - len("/jupyter.XXXXXXXXXX")


def tunnel_command(host: str, port: int | str, login_host: str, user: str, local_port: int | str = 8888, *,
                   login_port: int | None = None, jump_host: str = "", node: str = "") -> str:
    """The ssh command to run on the laptop: it forwards ``localhost:LOCAL`` there to ``host:port``, where JupyterLab
    listens.

    Without ``node``: ``ssh -N -L LOCAL:HOST:PORT -o ExitOnForwardFailure=yes [-p SSH_PORT] [-J JUMP] USER@LOGIN``,
    the login node connecting to the node's address ``host``. With ``node``: ``ssh -N -L LOCAL:HOST:PORT -o
    ExitOnForwardFailure=yes -J [JUMP,]USER@LOGIN[:SSH_PORT] USER@NODE``, an ssh session on the compute node itself
    (which the login node reaches by name), ``host`` being the node's loopback; for sites whose login nodes cannot
    reach compute nodes' ports but let you ssh to a node running your job. ``ExitOnForwardFailure`` makes ssh stop
    with an error when LOCAL is taken on the laptop; by default it keeps running without the forward, and the
    browser reaches whatever holds LOCAL (often a Jupyter of the laptop's own). ``-p`` and ``-J`` appear only when
    set, for sites whose login node listens on another port or is reached through a gateway."""
    words = ["ssh", "-N", "-L", f"{local_port}:{host}:{port}", "-o", "ExitOnForwardFailure=yes"]
    if node:
        login = f"[{login_host}]" if ":" in login_host else login_host  # ssh -J reads a bare IPv6's colons as a port
        hop = f"{user}@{login}" + (f":{int(login_port)}" if login_port is not None else "")
        return " ".join(words + ["-J", ",".join(filter(None, (jump_host, hop))), f"{user}@{node}"])
    if login_port is not None:
        words += ["-p", str(int(login_port))]
    if jump_host:
        words += ["-J", jump_host]
    return " ".join(words + [f"{user}@{login_host}"])


def lab_url(local_port: int | str, token: str) -> str:
    """The address to open on the laptop once the tunnel runs."""
    return f"http://localhost:{local_port}/lab?token={token}"


def jupyter_program(python: str) -> list[str]:
    """The words that start JupyterLab for the job's ``python`` setting.

    ``jupyter`` or ``…/bin/jupyter`` → ``… lab``; ``jupyter-lab`` → itself; a Python interpreter →
    ``… -m jupyterlab``; anything else is taken as an environment directory holding ``bin/jupyter``.
    """
    base = posixpath.basename(python.rstrip("/"))
    if base == "jupyter":
        return [python, "lab"]
    if base == "jupyter-lab":
        return [python]
    if re.fullmatch(r"python(\d+(\.\d+)?)?", base):
        return [python, "-m", "jupyterlab"]
    return [python.rstrip("/") + "/bin/jupyter", "lab"]


def jupyter_words(j: JupyterJob) -> list[str]:
    """The JupyterLab argument vector with the run-time values as ``$jl_…`` references."""
    return [*jupyter_program(j.python), "--no-browser", f"--ip={ADDRESS}", f"--port={PORT}",
            "--ServerApp.port_retries=0", f"--notebook-dir={notebook_dir(j)}", *kernel_args(j.kernel_transport),
            *idle_args(j.idle_minutes), ALLOW_ROOT, *j.extra_args]


#: $HOME or ${HOME} at the start of a path
_HOME_PREFIX = re.compile(r"^\$(?:HOME|\{HOME\})(?=/|$)")


def notebook_dir(j: JupyterJob) -> str:
    """The notebook folder as JupyterLab sees it. ch-run --home mounts the host's home at /home/$USER, while
    the batch shell expands $HOME to the host's path (/global/homes/a/alice), which the image does not have."""
    if isinstance(j.container, ChRun) and j.container.home:
        return _HOME_PREFIX.sub("/home/$USER", j.notebook_dir)
    return j.notebook_dir


def _seen_by_ch_run(path_in_runtime: str = "") -> Verbatim:
    """The runtime folder (with ``path_in_runtime`` appended) as ch-run's container sees it, as one shell word.
    ch-run binds the host's ``${TMPDIR:-/tmp}``, where the folder is made, at the container's /tmp (and unsets
    TMPDIR there), so the host's $TMPDIR/jupyter.XXXX is /tmp/jupyter.XXXX inside."""
    return Verbatim(f'"/tmp/${{jl_runtime##*/}}{path_in_runtime}"')


def _env_prefix(j: JupyterJob) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = [("JUPYTER_TOKEN", TOKEN)]
    c = j.container
    # (ch-run refuses to start without $USER in its environment: the script exports it, filled in when unset)
    if isinstance(c, ChRun):
        pairs += [("XDG_RUNTIME_DIR", _seen_by_ch_run()), ("JUPYTER_RUNTIME_DIR", _seen_by_ch_run("/jupyter"))]
    elif isinstance(c, ApptainerRun) and (c.cleanenv or c.containall):
        # a clean environment drops host variables; the prefixed copies are set inside the container
        prefix = env_prefix(c.binary)
        pairs += [(prefix + "JUPYTER_TOKEN", TOKEN), (prefix + "XDG_RUNTIME_DIR", RUNTIME),
                  (prefix + "JUPYTER_RUNTIME_DIR", RUNTIME + "/jupyter")]
    return pairs


def _program_hint(j: JupyterJob) -> str:
    """What to change when the program that should start JupyterLab cannot be run (exit status 126/127)."""
    if j.container is None:
        return (f"could not run {' '.join(jupyter_program(j.python))} on this node: set python (jupyter-job "
                "--python) to the jupyter of the environment that has JupyterLab, e.g. $HOME/miniconda3/envs/ml")
    tool = "ch-run" if isinstance(j.container, ChRun) else j.container.binary
    return (f"could not run {tool} or jupyter in the image: load the module that provides {tool} "
            "(job.modules) and check that JupyterLab is installed in the image")


def start_command(j: JupyterJob) -> str:
    """The line that starts JupyterLab (in the container when there is one)."""
    env = [assignment(name, value) for name, value in _env_prefix(j)]
    words = jupyter_words(j)
    c = j.container
    if c is None:
        quoted = [quote(w) for w in words]
        first_option = len(jupyter_program(j.python))
        return " \\\n  ".join(env + [wrap(quoted, group_starts=range(first_option, len(quoted)), indent="    ")])
    if isinstance(c, ApptainerRun):
        # the private runtime directory may live outside the paths Apptainer mounts by default
        c = c.replace(binds=c.binds + (Bind(RUNTIME),), command=tuple(words))
    else:
        c = c.replace(command=tuple(words))
    return " \\\n  ".join(env + [command_line(c, env_prefix=False, indent="    ")])


def jupyter_block(j: JupyterJob) -> str:
    """The script body (everything after the prologue) as shell text."""
    to_node = j.tunnel == TUNNEL_TO_NODE
    return fill_template(
        "jupyter.sh.j2",
        first_line=FIRST_LINE,
        runtime_base=RUNTIME_BASE,
        # ch-run shows the folder at /tmp/jupyter.XXXXXXXXXX in the container, where the kernels make their sockets,
        # however long $TMPDIR is
        base_max=0 if isinstance(j.container, ChRun) else RUNTIME_BASE_MAX,
        helper=quote(j.helper_python),
        port_min=int(j.port_min),
        port_max=int(j.port_max),
        local_port=int(j.local_port),
        to_node=to_node,
        loopback=LOOPBACK,
        tunnel=quote(tunnel_command(LOOPBACK if to_node else HOST, PORT, j.login_host, j.login_user,
                                    int(j.local_port), login_port=j.login_port, jump_host=j.jump_host,
                                    node=NODE if to_node else "")),
        idle_minutes=int(j.idle_minutes),
        tcp_kernels=j.kernel_transport == KERNELS_TCP,
        url=quote(lab_url(int(j.local_port), TOKEN)),
        # indented here, not with Jinja's indent filter: that splits lines at U+0085 and U+2028 as well,
        # which may sit inside a quoted value
        start="\n  ".join(start_command(j).split("\n")),
        program_hint=quote("error: JupyterLab did not start: " + _program_hint(j)),
        net_checker=_net_checker(),
        fill_user=not isinstance(j.container, ChRun),  # else at the top, see render_jupyter_job
    ).rstrip("\n")


@functools.cache
def _net_checker() -> str:
    """The source of :mod:`hpcwidgets.run.netcheck`, which the job writes out and runs with the node's python3."""
    from ..run import netcheck
    text = Path(netcheck.__file__).read_text(encoding="utf-8").rstrip("\n")
    if "\nEOF\n" in f"\n{text}\n":
        raise AssertionError("netcheck.py holds a line EOF, which would end the job's here-document early")
    return text


def render_jupyter_job(j: JupyterJob) -> str:
    """The complete sbatch script for ``j``; raises :class:`~hpcwidgets.errors.ValidationError` listing every problem."""
    j.validate()
    title = f"JupyterLab on a compute node (job {j.job.job_name})" if j.job.job_name else "JupyterLab on a compute node"
    # ch-run needs $USER: filled in before the job's exports and set-up lines, which may name it under set -u (a
    # site's job_env, a scratch path); a job without ch-run fills it in just before the server starts
    first = [Block(USER_LINE, USER_COMMENT)] if isinstance(j.container, ChRun) else []
    return render_script(j.job, [Block(jupyter_block(j))], title=title, first=first)
