"""``make lab``: start JupyterLab on the lessons with a random token on a free port.

    python -m hpcwidgets.run.lab [--notebook-dir notebooks] [--port P] [--profile NAME] [--login-host HOST]
                                 [--login-port SSH_PORT] [--jump-host JUMP]

Outside Slurm the server listens on 127.0.0.1 only. Inside a Slurm job (``SLURM_JOB_ID`` is set) it
listens on the node's name and also prints the SSH tunnel command for the login host (from
``--login-host`` with ``--login-port`` and ``--jump-host``, else from the cluster profile's ``login_host``,
``login_port`` and ``jump_host``: one way in, so they are never mixed). The token is made with :mod:`secrets` and handed to
JupyterLab through ``JUPYTER_TOKEN`` (environment variables are private to their owner; a command
line is visible to every user of the machine). When stdout or stderr is a file (the log of a batch
job), it is made private before the token is printed. ``port_retries=0``: if the port were taken, JupyterLab
stops instead of moving to another port than the one printed.

Options cannot be given through make, so the Makefile passes the make variable ``LOGIN_HOST`` as
``--login-host`` (``make lab LOGIN_HOST=HOST``); inside a job without a login host, the advice printed
names that form when make started this (make marks the commands it runs with ``MAKELEVEL``). In a batch
job there is no terminal to press Ctrl-C in, so the stop advice is ``scancel JOBID`` there.

The address is printed before JupyterLab starts; then this process becomes JupyterLab (``exec``),
so Ctrl-C and signals go straight to it. Inside a job JupyterLab gets a private runtime folder, as the
generated Jupyter job gives it (``mktemp -d`` under ``$TMPDIR``, mode 0700, named by ``XDG_RUNTIME_DIR``
and ``JUPYTER_RUNTIME_DIR``): the default, ``~/.local/share/jupyter/runtime``, is in the home folder, and
a full home stops JupyterLab at start ("Disk quota exceeded", lesson 11's table). A small helper process
removes the folder when JupyterLab ends, and at once on scancel or the time limit (see
:func:`remove_when_done`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import HpcWidgetsError
from ..render.jupyter import lab_url, tunnel_command
from ..spec.jupyter import JupyterJob
from ..spec.ssh import jump_host_problem, login_host_problem
from . import netcheck

LOCALHOST = "127.0.0.1"
PREFERRED_PORT = 8888
#: how often, in seconds, the helper that removes JupyterLab's runtime folder in a job looks whether it has ended
WATCH_INTERVAL = 1.0


class LabError(HpcWidgetsError):
    """JupyterLab cannot be started as asked (missing folder, busy port, JupyterLab not installed)."""


def lab_argv(notebook_dir: str, port: int, ip: str = LOCALHOST, *, allow_root: bool = False,
             python: str = sys.executable, extra: Sequence[str] = ()) -> list[str]:
    """The argument vector that starts JupyterLab (the token travels in the environment, see :func:`lab_env`)."""
    argv = [python, "-m", "jupyterlab", "--no-browser", f"--ip={ip}", f"--port={int(port)}",
            "--ServerApp.port_retries=0", f"--notebook-dir={notebook_dir}"]
    if allow_root:
        argv.append("--allow-root")
    return argv + list(extra)


def lab_env(token: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for JupyterLab: ``base`` (default: this process's) plus ``JUPYTER_TOKEN``."""
    env = dict(os.environ if base is None else base)
    env["JUPYTER_TOKEN"] = token
    return env


def make_token() -> str:
    return secrets.token_hex(24)


def free_port(preferred: int | None = PREFERRED_PORT) -> int:
    """``preferred`` when it is free on every address, else a port the system picks."""
    if preferred and netcheck.free("0.0.0.0", preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def in_slurm(env: Mapping[str, str]) -> bool:
    return bool(env.get("SLURM_JOB_ID"))


def node_name(env: Mapping[str, str]) -> str:
    """The node's short name as the login node knows it (Slurm's name for it, else the host name)."""
    return env.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


def login_user(env: Mapping[str, str]) -> str:
    """Your user name here, for ``USER@LOGIN`` in the tunnel command.

    ``$USER`` when set, else the account's name from the password database (``USER`` is unset under
    cron, ``sbatch --export=NONE`` and some container set-ups). Never the text ``$USER``: the tunnel
    command runs on the laptop, where ``$USER`` is the laptop's user, often not the cluster's.
    """
    name = env.get("USER") or env.get("LOGNAME")
    if name:
        return name
    try:
        import pwd  # Unix only; make lab also runs on laptops
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # no pwd module, or a uid without a passwd entry (some containers)
        return "YOUR_USER_NAME"


def make_output_private(fds: Sequence[int] = (1, 2)) -> list[int]:
    """Make the files behind ``fds`` readable by their owner only; returns the descriptors changed.

    Inside a batch job stdout/stderr are the job log, which slurmstepd creates with the submitter's
    umask (often 0644, readable by every user); the lines printed next hold the token. Terminals and
    pipes are left alone.
    """
    changed = []
    for fd in fds:
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077 and hasattr(os, "fchmod"):
            try:
                os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o700)
            except OSError as exc:
                raise LabError(f"the output file (descriptor {fd}) would show the token to other users and its "
                               f"permissions cannot be changed ({exc.strerror}); write the log to a file you own, "
                               "e.g. sbatch --output=$HOME/jupyter-%j.log") from None
            changed.append(fd)
    return changed


#: no way in is known: no login host, no ssh port, no jump host
NO_LOGIN = ("", None, "")


def profile_login(profile: str) -> tuple[str, int | None, str]:
    """The login host a cluster profile names with its ssh port and jump host (see
    :meth:`~hpcwidgets.spec.jupyter.JupyterJob.login_fields`), or :data:`NO_LOGIN` when the profile
    support is not available."""
    try:
        from .. import profiles
    except ImportError:
        return NO_LOGIN
    load = getattr(profiles, "load_profile", None)
    if load is None:
        return NO_LOGIN
    fields = JupyterJob.login_fields(load(profile))
    return str(fields["login_host"]), fields["login_port"], str(fields["jump_host"])


def option_login(args: argparse.Namespace) -> tuple[str, int | None, str]:
    """The login host, ssh port and jump host given as options, after the checks the job's fields get;
    :data:`NO_LOGIN` without ``--login-host``."""
    if not args.login_host:
        if args.login_port is not None or args.jump_host:
            raise LabError("--login-port and --jump-host belong to --login-host: add --login-host HOST, or leave "
                           "them out to use the profile's")
        return NO_LOGIN
    if args.login_port is not None and not 0 < args.login_port < 65536:
        raise LabError(f"--login-port {args.login_port} is not a port number; give one from 1 to 65535")
    problem = login_host_problem(args.login_host) or (args.jump_host and jump_host_problem(args.jump_host))
    if problem:
        raise LabError(problem)
    return args.login_host, args.login_port, args.jump_host


@dataclass(frozen=True)
class LabPlan:
    """Everything decided before JupyterLab starts: what to run and what to tell the person."""

    argv: list[str]
    env: dict[str, str] = field(repr=False)
    url: str = field(repr=False)
    lines: list[str] = field(repr=False)


def plan(args: argparse.Namespace, env: Mapping[str, str], *, token: str | None = None,
         is_root: bool | None = None, terminal: bool | None = None) -> LabPlan:
    """Decide host, port and messages from the parsed options and the environment (``terminal``: whether
    someone can press Ctrl-C, by default whether stdin is a terminal)."""
    folder = Path(args.notebook_dir).expanduser()
    if not folder.is_dir():
        raise LabError(f"notebook directory {str(folder)!r} does not exist; pass an existing folder with --notebook-dir")
    folder = folder.resolve()
    token = token or make_token()
    root = (os.geteuid() == 0) if is_root is None else is_root
    slurm = in_slurm(env)
    node = node_name(env) if slurm else LOCALHOST
    ip = netcheck.address(node) if slurm else LOCALHOST  # the node's name may mean 127.0.1.1 on the node itself
    if args.port:
        try:
            taken = not netcheck.free(ip, args.port)
        except OSError as exc:
            raise LabError(f"cannot listen on {ip}: {exc.strerror or exc}") from None
        if taken:
            raise LabError(f"port {args.port} is already in use here; choose another with --port, or leave --port "
                           "out to get a free one")
        port = args.port
    else:
        port = free_port()
    argv = lab_argv(str(folder), port, ip, allow_root=root, python=args.python)
    lines = [f"JupyterLab for {folder}"]
    if slurm:
        login, ssh_port, jump = option_login(args)
        if not login and args.profile:
            login, ssh_port, jump = profile_login(args.profile)
        user = login_user(env)
        url = lab_url(args.local_port, token)
        lines.append(f"Running in Slurm job {env.get('SLURM_JOB_ID')} on node {node}, address {ip}, port {port}.")
        if ip == "0.0.0.0":
            lines.append(f"warning: found no address of {node} that other machines can reach; JupyterLab listens on "
                         "every address of this node (the token still protects it)")
        host = node if ip == "0.0.0.0" else f"[{ip}]" if ":" in ip else ip
        if login:
            lines += ["1. On your own computer, open the tunnel and leave it running:",
                      "   " + tunnel_command(host, port, login, user, args.local_port, login_port=ssh_port,
                                             jump_host=jump),
                      "2. Then open this address in your browser:", "   " + url]
        else:
            lines += no_login_advice(args.profile, env) + ["The address, once tunnelled:", "   " + url]
    else:
        url = f"http://{LOCALHOST}:{port}/lab?token={token}"
        lines += ["Open this address in your browser:", "   " + url]
    lines.append(stop_advice(env, sys.stdin.isatty() if terminal is None else terminal))
    return LabPlan(argv, lab_env(token, env), url, lines)


def no_login_advice(profile: str, env: Mapping[str, str]) -> list[str]:
    """How to get the tunnel command printed when no login host is known: ``make lab LOGIN_HOST=HOST`` under
    make (options cannot be given through it), else ``--login-host HOST``."""
    lacking = f"The profile {profile} names no login host. " if profile else ""
    again = ("make lab LOGIN_HOST=HOST" if env.get("MAKELEVEL") else
             "python -m hpcwidgets.run.lab --login-host HOST   (or --profile NAME, a site profile that names it)")
    return [f"{lacking}To get the ssh tunnel command for your computer printed here, start it again with the "
            "login host you ssh to:", "   " + again]


def stop_advice(env: Mapping[str, str], terminal: bool) -> str:
    """How to stop JupyterLab: Ctrl-C in a terminal; in a batch job, which has none, by ending the job."""
    job = env.get("SLURM_JOB_ID")
    if not job:
        return "Stop JupyterLab with Ctrl-C."
    if terminal:
        return f"Stop JupyterLab with Ctrl-C, or end the whole job with: scancel {job}"
    return f"Stop JupyterLab by ending the job: scancel {job}"


def private_runtime(env: Mapping[str, str]) -> Path:
    """A new folder for JupyterLab's runtime files that only you can enter (mode 0700), under ``$TMPDIR``
    (node-local on most clusters) or /tmp, as the generated Jupyter job makes it; ``jupyter`` in it is
    JupyterLab's ``JUPYTER_RUNTIME_DIR``."""
    base = env.get("TMPDIR") or ""
    if not os.path.isdir(base):
        base = "/tmp"
    try:
        runtime = Path(tempfile.mkdtemp(prefix="jupyter.", dir=base))
        (runtime / "jupyter").mkdir(mode=0o700)
        return runtime
    except OSError as exc:
        raise LabError(f"cannot make JupyterLab's private runtime folder in {base} ({exc.strerror or exc}); set "
                       "TMPDIR to a folder on this node that you can write to") from None


def runtime_env(env: Mapping[str, str], runtime: Path) -> dict[str, str]:
    """``env`` pointing JupyterLab and its kernels at ``runtime`` (an ``XDG_RUNTIME_DIR`` sbatch copied from
    the login node often names a folder that does not exist on the compute node)."""
    return dict(env, XDG_RUNTIME_DIR=str(runtime), JUPYTER_RUNTIME_DIR=str(runtime / "jupyter"))


def remove_when_done(runtime: Path) -> None:
    """Start a helper process that removes ``runtime`` once this process, which is about to become JupyterLab
    (``exec``), has ended, however it ends (even by SIGKILL).

    Slurm sends SIGTERM to every process of the job on scancel or at the time limit, and SIGKILL a few
    seconds later: the helper removes the folder at once on SIGTERM, not after JupyterLab has stopped.
    It ignores Ctrl-C and hang-ups, which a terminal sends it too: JupyterLab decides on those, and the
    helper follows when JupyterLab ends."""
    lab_pid = os.getpid()
    if os.fork():
        return
    try:  # the helper: it never returns into the caller's code
        def remove_now(_signum: int, _frame: object) -> None:
            shutil.rmtree(runtime, ignore_errors=True)
            os._exit(0)

        signal.signal(signal.SIGTERM, remove_now)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # never keep the job's log or a caller's pipe open
            os.dup2(quiet, fd)
        os.close(quiet)
        while os.getppid() == lab_pid:  # an ended parent leaves its children to another process
            time.sleep(WATCH_INTERVAL)
        shutil.rmtree(runtime, ignore_errors=True)
    finally:
        os._exit(0)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hpcwidgets.run.lab",
                                description="Start JupyterLab on the lessons with a random token on a free port.",
                                epilog="Through make, name the login host with a make variable: make lab LOGIN_HOST=HOST "
                                       "(or set HPCW_PROFILE=NAME for a site profile that names it).")
    p.add_argument("--notebook-dir", default="notebooks", help="folder to open (default: notebooks)")
    p.add_argument("--port", type=int, default=0,
                   help=f"port to listen on (default: {PREFERRED_PORT} if free, else any free port)")
    p.add_argument("--profile", default=os.environ.get("HPCW_PROFILE", ""),
                   help="cluster profile naming the login host for the tunnel (default: $HPCW_PROFILE)")
    p.add_argument("--login-host", default="", help="login host for the tunnel command; overrides the profile")
    p.add_argument("--login-port", type=int, default=None,
                   help="the login host's ssh port when it is not 22 (with --login-host)")
    p.add_argument("--jump-host", default="",
                   help="host ssh goes through to reach the login host, as ssh -J takes it (with --login-host)")
    p.add_argument("--local-port", type=int, default=PREFERRED_PORT,
                   help="port on your own computer for the tunnel (default: 8888)")
    p.add_argument("--python", default=sys.executable, help="the Python that has JupyterLab (default: this one)")
    p.add_argument("--dry-run", action="store_true", help="print the command (without the token) and stop")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.port and not 0 < args.port < 65536:
        print(f"error: --port {args.port} is not a port number (1-65535)", file=sys.stderr)
        return 2
    if args.python == sys.executable and importlib.util.find_spec("jupyterlab") is None:
        print("error: JupyterLab is not installed in this Python; run 'make venv' (or pip install jupyterlab)",
              file=sys.stderr)
        return 2
    try:
        p = plan(args, os.environ)
    except HpcWidgetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(" ".join(p.argv))
        return 0
    try:
        make_output_private()  # before the token is printed
        runtime = private_runtime(os.environ) if in_slurm(os.environ) else None
    except HpcWidgetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(p.lines), flush=True)
    sys.stderr.flush()
    env = p.env
    if runtime is not None:
        env = runtime_env(p.env, runtime)
        remove_when_done(runtime)
    try:
        os.execvpe(p.argv[0], p.argv, env)
    except OSError as exc:  # the helper sees this process end and removes the runtime folder
        print(f"error: cannot start {p.argv[0]}: {exc.strerror or exc}; give a Python that has JupyterLab with "
              "--python", file=sys.stderr)
        return 2
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main())
