"""A JupyterLab job script hpcwidgets wrote → :class:`~hpcwidgets.spec.jupyter.JupyterJob`.

The job writes its own commands (token, port, tunnel), so most of the body is the template's; what the
model holds is read from the few places it lands: the ``#SBATCH`` lines, modules, exports and set-up lines
(what comes before the job's own commands, or before the server's start line in a script someone else
wrote: ``conda activate`` stays), the start line in
``jl_start`` (the container, the Jupyter program, the notebook folder, the idle minutes, the kernels' transport,
extra JupyterLab arguments), the tunnel line (its form, local port, login user and host, the login node's ssh port and jump
host), the port range and the set-up Python. A script that is not one of these jobs still gives its Slurm
job, with the server settings at their defaults.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from ..spec.jupyter import ALLOW_ROOT, FIRST_LINE, KERNELS_TCP, RUNTIME, SHARED_KERNELS, TUNNEL_TO_NODE, server_start
from .script import ParsedScript, Step, read_script

#: the tunnel the job prints: ssh -N -L LOCAL:$jl_host:$jl_port -o ExitOnForwardFailure=yes [-p SSH_PORT] [-J JUMP]
#: USER@HOST (a job written before the -o was added has none)
_TUNNEL = re.compile(r'^jl_tunnel="?ssh -N -L ([0-9]+):\$jl_host:\$jl_port(?: -o ExitOnForwardFailure=yes)?'
                     r'(?: -p ([0-9]+))?(?: -J ([^\s"]+))? ([^@\s"]+)@([^\s"]+)"?\s*$', re.MULTILINE)
#: the tunnel to the node itself: ssh -N -L LOCAL:127.0.0.1:$jl_port -o ExitOnForwardFailure=yes
#: -J [JUMP,]USER@LOGIN[:SSH_PORT] USER@$jl_node
_NODE_TUNNEL = re.compile(r'^jl_tunnel="?ssh -N -L ([0-9]+):127\.0\.0\.1:\$jl_port -o ExitOnForwardFailure=yes '
                          r'-J ([^\s"]+) ([^@\s"]+)@\$jl_node"?\s*$', re.MULTILINE)
#: the login hop of that tunnel's -J: USER@HOST, USER@HOST:PORT, USER@[IPV6] or USER@[IPV6]:PORT
_LOGIN_HOP = re.compile(r"[^@]+@(?:\[([^\]]+)\]|([^:\[\]]+))(?::([0-9]+))?")
#: the job's idle stop on its start line (see spec.jupyter.idle_args), in seconds
_IDLE = re.compile(r"--ServerApp\.shutdown_no_activity_timeout=([0-9]+)")
_PORTS = re.compile(r'port "\$jl_addr" (\d+) (\d+)\)')
_HELPER = re.compile(r"^jl_helper=\S", re.MULTILINE)


def parse_jupyter_job(text: str, path: str = "") -> Any:
    """Read a Jupyter job script back (see the module docstring); only ParseError is raised."""
    from ..spec.jupyter import DEFAULT_JOB, JupyterJob
    parsed = read_script(text, path)
    job = _job(parsed, text, path)
    job = job if job.time else job.replace(time=DEFAULT_JOB.time)
    values: dict[str, Any] = {"job": job}
    step = next((s for s in parsed.steps if _starts_jupyter(s)), None)
    if step is not None:
        values.update(_server(step))
    elif _server_line(parsed) is None:  # a job that starts no server (a training job): JupyterLab in its container
        work = _work_step(parsed)
        if work is not None and _as_server_container(work) is not None:
            values["container"] = _as_server_container(work)
    else:  # JupyterLab started on the node itself: the start line is no launch the reader models
        words = _start_words(parsed.lexed.code)
        if words:
            program = [str(w) for w in words[:[str(w) for w in words].index("--no-browser")]]
            values.update(_settings(program, words[len(program) + 1:]))
    values.update(_tunnel(text))
    ports = _PORTS.search(text)
    if ports:
        values.update(port_min=int(ports.group(1)), port_max=int(ports.group(2)))
    helper = parsed.variable("jl_helper") if _HELPER.search(text) else None
    if helper is not None and helper.value:
        values["helper_python"] = str(helper.value)  # as the shell reads it: '/opt/My Tools/bin/python3' is one path
    return JupyterJob(**values)


def _tunnel(text: str) -> dict[str, Any]:
    """The tunnel's fields from the line that prints it: its form, the local port, the login user and host, the
    login node's ssh port and the jump host; {} when the script has no such line."""
    to_node = _NODE_TUNNEL.search(text)
    hop = _LOGIN_HOP.fullmatch(to_node.group(2).rsplit(",", 1)[-1]) if to_node else None
    if to_node and hop:
        jumps = to_node.group(2).rsplit(",", 1)
        out = {"tunnel": TUNNEL_TO_NODE, "local_port": int(to_node.group(1)), "login_user": to_node.group(3),
               "login_host": hop.group(1) or hop.group(2), "jump_host": jumps[0] if len(jumps) > 1 else ""}
        return out | ({"login_port": int(hop.group(3))} if hop.group(3) else {})
    tunnel = _TUNNEL.search(text)
    if not tunnel:
        return {}
    out = {"local_port": int(tunnel.group(1)), "login_user": tunnel.group(4), "login_host": tunnel.group(5)}
    if tunnel.group(2):
        out["login_port"] = int(tunnel.group(2))
    if tunnel.group(3):
        out["jump_host"] = tunnel.group(3)
    return out


def _job(parsed: ParsedScript, text: str, path: str) -> Any:
    """The Slurm job with its set-up lines (``conda activate``, ``source …``), its modules and exports: the
    script up to the job's own commands (hpcwidgets wrote it) or up to the command that starts the server
    (someone else did) read as ``sbatch --from`` reads a job. A script that starts no server gives its job alone."""
    from ..spec.workflow import Workflow
    from .workflow import workflow_from
    cut = _server_line(parsed)
    if cut is None:
        work = _work_step(parsed)
        if work is None:
            return parsed.job
        cut = work.line  # its set-up (conda activate, exports) stays; the work itself is not the Jupyter job's
    head = "".join(line + "\n" for line in text.split("\n")[:cut - 1])
    # (the whole script's first command says which #SBATCH lines sbatch reads; the head may hold none)
    read = replace(read_script(head, path), first_command=parsed.first_command)
    server = next((s for s in parsed.steps if _starts_jupyter(s)), None)
    ch_run = server is not None and server.chain.container is not None \
        and server.chain.container.kind == "charliecloud.run"  # then the job fills in $USER at its top
    # the job is part of a Jupyter job's script
    return workflow_from(read, Workflow, job_only=True, layout=False, user_line=ch_run)


def _work_step(parsed: ParsedScript) -> Step | None:
    """The step of a job script that starts no server (``apptainer run … python train.py``), as the workflow
    reader takes it; None when it has none."""
    from ..spec.workflow import Workflow
    from .workflow import _main_step
    return _main_step(parsed, Workflow)


def _as_server_container(step: Step) -> Any:
    """The container ``step`` runs its program in, made ready to run JupyterLab (``exec`` with no command of its
    own), or None: the job then runs JupyterLab on the node, as without a container."""
    c = step.chain.container
    if c is None or c.kind not in ("apptainer.run", "charliecloud.run"):
        return None
    return c.replace(command=(), **({"action": "exec"} if c.kind == "apptainer.run" else {}))


def _as_read(script: str | ParsedScript) -> ParsedScript:
    """A script's text read, or the script already read (the notes of one Load share one reading)."""
    return script if isinstance(script, ParsedScript) else read_script(script)


def left_out_note(script: str | ParsedScript) -> str:
    """What reading a job script that starts no Jupyter server (a training job) as a Jupyter job leaves out: the
    work and the lines after it, said with what is kept, so that the person who asked knows. "" for a script that
    starts a server, or that does nothing but set up."""
    parsed = _as_read(script)
    if _server_line(parsed) is not None:
        return ""
    work = _work_step(parsed)
    if work is None:
        loads = {line for _, line in parsed.modules}  # module loads are kept
        rest = [c for c in parsed.lexed.code if c.line >= parsed.first_command and c.line not in loads]
        if not rest:
            return ""
        return ("the script starts no Jupyter server and has no step the reader takes: the Jupyter job keeps its "
                "#SBATCH lines and module loads, and leaves out its other commands (from line "
                f"{rest[0].line} on); add what JupyterLab needs with --set job.setup=…")
    c = _as_server_container(work)
    where = "" if c is None else (f" and runs JupyterLab in the same image with "
                                  f"{'ch-run' if c.kind == 'charliecloud.run' else c.binary + ' exec'} ({c.image})")
    return (f"the script starts no Jupyter server: the Jupyter job keeps its #SBATCH lines and the lines before its "
            f"step{where}, and leaves out the step on line {work.line} and everything after it")


def _server_line(parsed: ParsedScript) -> int | None:
    """The line where the job's own commands begin, or else the line of the outermost command that starts
    the server (a function or an ``if`` holding it counts whole); None when there is neither."""
    from .lexer import compound_body
    for cmd in parsed.lexed.commands:
        if cmd.kind == "comment" and cmd.text.strip() == FIRST_LINE:
            return cmd.line

    def starts(cmd: Any) -> bool:
        if cmd.kind == "compound":
            return any(starts(inner) for inner in compound_body(cmd))
        return cmd.kind == "simple" and server_start([str(w) for w in cmd.argv]) is not None
    return next((cmd.line for cmd in parsed.lexed.code if starts(cmd)), None)


def _start_words(commands: Any) -> list[Any]:
    """The words of the command in the job's ``jl_start`` function that starts JupyterLab, or []."""
    from .lexer import compound_body
    for cmd in commands:
        if cmd.kind != "compound":
            continue
        for inner in compound_body(cmd):
            words = [w.value for w in inner.words]
            if inner.kind == "simple" and "--no-browser" in [str(w) for w in words]:
                return words
            found = _start_words([inner])
            if found:
                return found
    return []


def _words(step: Step) -> list[Any]:
    c = step.chain.container
    return list(getattr(c, "command", ()) or step.chain.program) if c is not None else list(step.chain.program)


def _starts_jupyter(step: Step) -> bool:
    return "--no-browser" in [str(w) for w in _words(step)]


def _server(step: Step) -> dict[str, Any]:
    """The container, the Jupyter program, the notebook folder and the extra arguments of the start line."""
    words = _words(step)
    cut = [str(w) for w in words].index("--no-browser")
    out = _settings([str(w) for w in words[:cut]], words[cut + 1:])
    c = step.chain.container
    if c is not None:
        binds = tuple(b for b in getattr(c, "binds", ()) if str(b.src) != RUNTIME)  # the job's own runtime folder
        out["container"] = c.replace(command=(), **({"binds": binds} if hasattr(c, "binds") else {}))
    return out


#: the words the renderer puts after the environment folder's jupyter: ``ENV/bin/jupyter lab`` is python=ENV
_ENV_JUPYTER = re.compile(r"(.+)/bin/jupyter")


def _settings(program: list[str], rest: list[Any]) -> dict[str, Any]:
    """The Jupyter program, the notebook folder, the idle minutes, the kernels' transport and the extra arguments
    from the start line's words. The job's own settings stand before ``ALLOW_ROOT``, the person's extra arguments
    after it; a start line without it (a server someone else wrote) keeps the defaults. A job that names no transport
    (written before the choice existed) gets the default, Unix sockets."""
    out: dict[str, Any] = {}
    if program:
        # jupyter [lab], jupyter-lab, python -m jupyterlab: the first word; ENV/bin/jupyter lab: the environment
        env = _ENV_JUPYTER.fullmatch(program[0])
        out["python"] = env.group(1) if env and program[1:] == ["lab"] else program[0]
    extra_at = next((i for i, w in enumerate(rest) if str(w) == str(ALLOW_ROOT)), None)
    for w in rest[:extra_at]:
        if str(w).startswith("--notebook-dir="):
            out["notebook_dir"] = str(w).split("=", 1)[1]
    if extra_at is not None:
        out["extra_args"] = tuple(str(w) for w in rest[extra_at + 1:])
        idle = [m for w in rest[:extra_at] if (m := _IDLE.fullmatch(str(w)))]
        out["idle_minutes"] = -(-int(idle[-1].group(1)) // 60) if idle else 0  # (a job written before it had none)
        if SHARED_KERNELS in [str(w) for w in rest[:extra_at]]:
            out["kernel_transport"] = KERNELS_TCP
    return out


#: a command that starts a Jupyter server (jupyter lab, jupyter-lab, jupyter notebook, python -m jupyterlab …)
_SERVER = re.compile(r"(?:^|[\s/])(?:jupyter[-\s]+(?:lab|notebook|server)|jupyter-(?:lab|notebook|server)"
                     r"|-m\s+(?:jupyterlab|notebook|jupyter_server))(?:\s|$)")


def replaced_server_note(script: str | ParsedScript) -> str:
    """What reading a script as a Jupyter job leaves behind, when a script hpcwidgets did not write starts its own
    server: the job starts its own instead (a free port, a token, the tunnel command in its log), and the lines
    around the old one (a fixed port, a tunnel message of its own) stay as written. "" for any other script."""
    if "jl_start" in (script.source if isinstance(script, ParsedScript) else script):
        return ""  # the job's own start function: a script hpcwidgets wrote
    parsed = _as_read(script)
    starts = [c.line for c in parsed.lexed.code if c.kind == "simple" and _SERVER.search(" " + c.text.strip())]
    if not starts:
        return ""
    return (f"the script starts its own Jupyter server (line {starts[0]}); the job written from it starts one "
            "itself instead, on a free port with a token, and prints the tunnel command to its log. Lines kept as "
            "written that belong to the old server (a fixed port, its own tunnel message) no longer apply: check "
            "the set-up lines")


__all__ = ["left_out_note", "parse_jupyter_job", "replaced_server_note"]
