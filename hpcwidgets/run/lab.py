"""``make lab``: start JupyterLab on the lessons with a random token on a free port.

    python -m hpcwidgets.run.lab [--notebook-dir notebooks] [--port P] [--profile NAME] [--login-host HOST]
                                 [--login-port SSH_PORT] [--jump-host JUMP] [--tunnel login|node]
                                 [--kernel-transport ipc|tcp]

Outside Slurm the server listens on 127.0.0.1 only. Inside a Slurm job (``SLURM_JOB_ID`` is set) it
listens on the node's name and also prints the SSH tunnel command for the login host (from
``--login-host`` with ``--login-port`` and ``--jump-host``, else from the cluster profile's ``login_host``,
``login_port`` and ``jump_host``: one way in, so they are never mixed). ``--tunnel node`` (or
``HPCW_TUNNEL=node``) prints the tunnel's other form, an ssh session on the node itself through the login
host (``ssh -J``), for sites whose login nodes cannot reach compute nodes' ports; the server then listens
on the node's loopback only. Without either, the form is the one the cluster profile names (``tunnel``, the
site's rule, also when the login host is given as an option), else ``login``. The token is made with
:mod:`secrets` and handed to JupyterLab through ``JUPYTER_TOKEN`` (environment variables are private to their
owner; a command line is visible to every user of the machine). When stdout or stderr is a file (the log of a batch job), it is made private before
the token is printed.

Options cannot be given through make, so the Makefile passes the make variable ``LOGIN_HOST`` as
``--login-host`` (``make lab LOGIN_HOST=HOST``); a variable set on make's command line reaches this
program's environment too (``make lab LOGIN_HOST=HOST HPCW_TUNNEL=node``). Inside a job without a login
host, the advice printed names that form when make started this (make marks the commands it runs with
``MAKELEVEL``). In a batch job there is no terminal to press Ctrl-C in, so the stop advice is
``scancel JOBID`` there.

The port is found free, then JupyterLab starts on it with ``port_retries=0`` (it stops rather than move to
a port other than the one printed); another program can take the port in between. So this process starts
JupyterLab as its child and prints the address only once JupyterLab has written its server file for that
port and answers there; when it stopped because the port was taken, it starts it again on another port, up
to :data:`START_TRIES` times (the generated Jupyter job does the same). A port given with ``--port`` is
never changed. JupyterLab gets a private runtime folder (``mktemp -d`` under ``$TMPDIR``, mode 0700, named
by ``JUPYTER_RUNTIME_DIR``, and inside a job by ``XDG_RUNTIME_DIR`` too, as the generated Jupyter job
gives it): its server file there can only be this JupyterLab's, and inside a job the default,
``~/.local/share/jupyter/runtime``, is in the home folder, where a full home stops JupyterLab at start
("Disk quota exceeded", lesson 11's table). The folder is removed when JupyterLab ends, and at once on
scancel or the time limit (see :class:`Supervisor`).

The kernels talk to JupyterLab through Unix sockets in that folder. ``--kernel-transport tcp`` (or
``HPCW_KERNEL_TRANSPORT=tcp``, which make passes on: ``make lab HPCW_KERNEL_TRANSPORT=tcp``) puts them on
127.0.0.1 ports instead, for kernels that cannot use Unix sockets, as the Jupyter job's ``kernel_transport`` does;
the printed lines then say what that gives up (:data:`~hpcwidgets.spec.jupyter.TCP_KERNELS_NOTE`).
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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

from ..errors import HpcWidgetsError
from ..render.jupyter import LOOPBACK, lab_url, tunnel_command
from ..spec.jupyter import (KERNELS_IPC, KERNELS_TCP, RUNTIME_PATH_MAX, TCP_KERNELS_NOTE, TUNNEL_THROUGH_LOGIN,
                             TUNNEL_TO_NODE, JupyterJob, kernel_args)
from ..spec.ssh import USER, jump_host_problem, login_host_problem
from . import netcheck

LOCALHOST = LOOPBACK
PREFERRED_PORT = 8888
#: how many ports are tried when another program takes the chosen one before JupyterLab listens on it
START_TRIES = 3
#: seconds to wait for JupyterLab to answer; a large environment on a shared file system can take minutes to load
START_TIMEOUT = 300.0
#: how often, in seconds, the start is checked on
POLL_INTERVAL = 0.2


class LabError(HpcWidgetsError):
    """JupyterLab cannot be started as asked (missing folder, busy port, JupyterLab not installed)."""


def lab_argv(notebook_dir: str, port: int, ip: str = LOCALHOST, *, allow_root: bool = False,
             python: str = sys.executable, extra: Sequence[str] = (), transport: str = KERNELS_IPC) -> list[str]:
    """The argument vector that starts JupyterLab (the token travels in the environment, see :func:`lab_env`). Its
    kernels talk to it through Unix sockets in the private runtime folder (``--KernelManager.transport=ipc``), where
    there are any: Jupyter's ipc transport is for Unix, not Windows; ``transport`` "tcp" puts them on 127.0.0.1
    ports (Jupyter's default, and Windows' only choice)."""
    argv = [python, "-m", "jupyterlab", "--no-browser", f"--ip={ip}", f"--port={int(port)}",
            "--ServerApp.port_retries=0", f"--notebook-dir={notebook_dir}"]
    if os.name == "posix":
        argv += kernel_args(transport)
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
    A name that is not one (``-oProxyCommand=…``, ``a b``) is refused, as the Jupyter job's ``login_user`` is:
    the line is meant to be pasted into a shell on the laptop.
    """
    variable = "USER" if env.get("USER") else "LOGNAME"
    name = env.get(variable)
    if name:
        if not USER.fullmatch(name):
            raise LabError(f"${variable} is {name!r}, which is not a user name (letters, digits, . _ -) and would go "
                           f"into the ssh command printed for your computer; set {variable} to your user name on the "
                           f"cluster, e.g. {variable}=$(id -un) make lab")
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


class Login(NamedTuple):
    """A way in: the login host with its ssh port and jump host, and the tunnel's form ("": not said)."""

    host: str
    port: int | None
    jump: str
    tunnel: str = ""


#: no way in is known: no login host, no ssh port, no jump host, no tunnel form
NO_LOGIN = Login("", None, "")


def profile_login(profile: str) -> Login:
    """The login host a cluster profile names with its ssh port and jump host, and the tunnel form it names for
    the site (see :meth:`~hpcwidgets.spec.jupyter.JupyterJob.login_fields`), or :data:`NO_LOGIN` when the
    profile support is not available."""
    try:
        from .. import profiles
    except ImportError:
        return NO_LOGIN
    load = getattr(profiles, "load_profile", None)
    if load is None:
        return NO_LOGIN
    fields = JupyterJob.login_fields(load(profile))
    return Login(str(fields["login_host"]), fields["login_port"], str(fields["jump_host"]),
                 str(fields.get("tunnel", "")))


def option_login(args: argparse.Namespace) -> Login:
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
    return Login(args.login_host, args.login_port, args.jump_host)


@dataclass(frozen=True)
class LabPlan:
    """Everything decided before JupyterLab starts: what to run, where it will answer, and what to tell the
    person once it does."""

    argv: list[str]
    env: dict[str, str] = field(repr=False)
    url: str = field(repr=False)
    lines: list[str] = field(repr=False)
    address: str = LOCALHOST
    port: int = 0


def plan(args: argparse.Namespace, env: Mapping[str, str], *, token: str | None = None,
         is_root: bool | None = None, terminal: bool | None = None,
         preferred: int | None = PREFERRED_PORT) -> LabPlan:
    """Decide host, port and messages from the parsed options and the environment (``terminal``: whether
    someone can press Ctrl-C, by default whether stdin is a terminal; ``preferred``: the port taken when it is
    free and ``--port`` names none, None for any free port)."""
    folder = Path(args.notebook_dir).expanduser()
    if not folder.is_dir():
        raise LabError(f"notebook directory {str(folder)!r} does not exist; pass an existing folder with --notebook-dir")
    folder = folder.resolve()
    token = token or make_token()
    root = (os.geteuid() == 0) if is_root is None else is_root
    slurm = in_slurm(env)
    # the profile's tunnel form is the site's rule, so it holds with a login host given as an option too
    site = profile_login(args.profile) if slurm and args.profile else NO_LOGIN
    to_node = slurm and (args.tunnel or site.tunnel) == TUNNEL_TO_NODE
    node = node_name(env) if slurm else LOCALHOST
    # the node's name may mean 127.0.1.1 on the node itself; a tunnel to the node itself ends at its loopback
    ip = netcheck.address(node) if slurm and not to_node else LOCALHOST
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
        port = free_port(preferred)
    transport = getattr(args, "kernel_transport", "") or KERNELS_IPC
    argv = lab_argv(str(folder), port, ip, allow_root=root, python=args.python, transport=transport)
    lines = [f"JupyterLab for {folder}"]
    if transport == KERNELS_TCP:
        lines.append(f"note: kernel transport tcp: {TCP_KERNELS_NOTE}.")
    if slurm:
        typed = option_login(args)
        login, ssh_port, jump, _ = typed if typed.host else site
        url = lab_url(args.local_port, token)
        lines.append(f"Running in Slurm job {env.get('SLURM_JOB_ID')} on node {node}, address {ip}, port {port}.")
        if ip == "0.0.0.0":
            lines.append(f"warning: found no address of {node} that other machines can reach; JupyterLab listens on "
                         "every address of this node (the token still protects it)")
        host = node if ip == "0.0.0.0" else f"[{ip}]" if ":" in ip else ip
        if login:
            lines += ["1. On your own computer, open the tunnel and leave it running:",
                      "   " + tunnel_command(host, port, login, login_user(env), args.local_port,
                                             login_port=ssh_port, jump_host=jump, node=node if to_node else ""),
                      "2. Then open this address in your browser:", "   " + url]
        else:
            lines += no_login_advice(args.profile, env) + ["The address, once tunnelled:", "   " + url]
    else:
        url = f"http://{LOCALHOST}:{port}/lab?token={token}"
        lines += ["Open this address in your browser:", "   " + url]
    lines.append(stop_advice(env, sys.stdin.isatty() if terminal is None else terminal))
    return LabPlan(argv, lab_env(token, env), url, lines, ip, port)


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
    JupyterLab's ``JUPYTER_RUNTIME_DIR``. A ``$TMPDIR`` so long that the kernels' Unix sockets in the folder could
    not be made (macOS's /var/folders/…/T/) is passed over for /tmp (see :data:`RUNTIME_PATH_MAX`)."""
    base = env.get("TMPDIR") or ""
    if not os.path.isdir(base) or len(os.path.join(base, "jupyter.XXXXXXXX")) > RUNTIME_PATH_MAX:
        base = "/tmp"  # (mkdtemp adds 8 characters to the prefix)
    try:
        runtime = Path(tempfile.mkdtemp(prefix="jupyter.", dir=base))
        (runtime / "jupyter").mkdir(mode=0o700)
        return runtime
    except OSError as exc:
        raise LabError(f"cannot make JupyterLab's private runtime folder in {base} ({exc.strerror or exc}); set "
                       "TMPDIR to a folder on this node that you can write to") from None


def runtime_env(env: Mapping[str, str], runtime: Path) -> dict[str, str]:
    """``env`` pointing JupyterLab and its kernels at ``runtime``. Inside a job ``XDG_RUNTIME_DIR`` too (one sbatch
    copied from the login node often names a folder that does not exist on the compute node); a laptop's own is
    left alone."""
    out = dict(env, JUPYTER_RUNTIME_DIR=str(runtime / "jupyter"))
    if in_slurm(env):
        out["XDG_RUNTIME_DIR"] = str(runtime)
    return out


class Supervisor:
    """JupyterLab as this process's child: started, watched until it answers, and waited for.

    Signals while it runs: SIGTERM (scancel, the time limit: Slurm sends it to every process of the job, and
    SIGKILL a few seconds later) removes the runtime folder at once and is passed on; SIGHUP is passed on;
    Ctrl-C is left to JupyterLab, which the terminal sends it to as well and which asks whether to stop. Either
    stop, SIGTERM or Ctrl-C, ends the start quietly: JupyterLab ending then is no error, and no other port is tried."""

    def __init__(self, runtime: Path) -> None:
        self.runtime = runtime
        self.child: subprocess.Popen[Any] | None = None
        self.stopping = False  # a SIGTERM or Ctrl-C came: no new start, no error

    def __enter__(self) -> "Supervisor":
        self._saved = {sig: signal.signal(sig, handler) for sig, handler in (
            (signal.SIGTERM, self._terminate), (signal.SIGHUP, self._pass_on), (signal.SIGINT, self._leave))}
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        shutil.rmtree(self.runtime, ignore_errors=True)

    def _terminate(self, signum: int, _frame: object) -> None:
        self.stopping = True
        shutil.rmtree(self.runtime, ignore_errors=True)
        self._pass_on(signum, _frame)

    def _pass_on(self, signum: int, _frame: object) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def _leave(self, _signum: int, _frame: object) -> None:
        """Ctrl-C: a stop, left to JupyterLab (a handler, not SIG_IGN: an ignored signal would stay ignored in
        JupyterLab)."""
        self.stopping = True

    def start(self, p: LabPlan) -> bool:
        """Start JupyterLab as ``p`` says; True once it answers on its port, False when it stopped first (its
        status is then in ``self.child.returncode``). Raises LabError when it gives no answer in time."""
        try:
            self.child = subprocess.Popen(p.argv, env=runtime_env(p.env, self.runtime))
        except OSError as exc:
            raise LabError(f"cannot start {p.argv[0]}: {exc.strerror or exc}; give a Python that has JupyterLab "
                           "with --python") from None
        deadline = time.monotonic() + START_TIMEOUT
        while self.child.poll() is None:
            if netcheck.answers(p.address, p.port, str(self.runtime / "jupyter")):
                return True
            if time.monotonic() > deadline:
                self.child.terminate()
                self.child.wait()
                raise LabError(f"JupyterLab did not answer on port {p.port} within {START_TIMEOUT:.0f} seconds; "
                               "read its messages above")
            time.sleep(POLL_INTERVAL)
        return False

    def wait(self) -> int:
        """JupyterLab's exit status once it has ended (128 + N when signal N ended it, as a shell says)."""
        status = self.child.wait() if self.child is not None else 0
        return 128 - status if status < 0 else status


def serve(args: argparse.Namespace, env: Mapping[str, str], runtime: Path) -> int:
    """Start JupyterLab, print how to reach it once it answers, and wait until it ends; returns its exit status.
    When another program took the port first, try another (never one given with --port)."""
    token = make_token()
    preferred: int | None = PREFERRED_PORT
    with Supervisor(runtime) as lab:
        for attempt in range(1, START_TRIES + 1):
            p = plan(args, env, token=token, preferred=preferred)
            if lab.start(p):
                print("\n".join(p.lines), flush=True)
                return lab.wait()
            status = lab.wait()
            if status == 0 or lab.stopping or netcheck.free(p.address, p.port):
                break  # it ended for a reason of its own
            if args.port:
                raise LabError(f"another program took port {p.port} as JupyterLab started; choose another with "
                               "--port, or leave --port out to get a free one")
            if attempt < START_TRIES:
                print(f"Another program took port {p.port} before JupyterLab could use it; trying another port.",
                      file=sys.stderr, flush=True)
                preferred = None  # any free port the system picks, not 8888 again
        if status != 0 and not lab.stopping:
            print(f"error: JupyterLab stopped with exit status {status} before it answered; read its messages "
                  "above", file=sys.stderr)
        return status


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
    p.add_argument("--tunnel", default=os.environ.get("HPCW_TUNNEL", ""),
                   choices=(TUNNEL_THROUGH_LOGIN, TUNNEL_TO_NODE),
                   help="the tunnel's form inside a job: login, ssh to the login host, which forwards to the node; "
                        "node, ssh to the node itself through the login host (ssh -J), where login nodes cannot "
                        "reach compute nodes' ports (default: $HPCW_TUNNEL, else the profile's tunnel, else login)")
    p.add_argument("--kernel-transport", default=os.environ.get("HPCW_KERNEL_TRANSPORT", KERNELS_IPC),
                   choices=(KERNELS_IPC, KERNELS_TCP),
                   help="how JupyterLab talks to its kernels: ipc, Unix sockets in a folder only you can open; tcp, "
                        "ports on 127.0.0.1 that every user of the machine can connect to, for kernels that cannot "
                        "use Unix sockets (default: $HPCW_KERNEL_TRANSPORT, else ipc)")
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
    if args.tunnel not in ("", TUNNEL_THROUGH_LOGIN, TUNNEL_TO_NODE):  # (argparse does not check a default)
        print(f"error: HPCW_TUNNEL={args.tunnel!r} is not a tunnel form; set it to {TUNNEL_THROUGH_LOGIN} or "
              f"{TUNNEL_TO_NODE}, or unset it", file=sys.stderr)
        return 2
    if args.kernel_transport not in (KERNELS_IPC, KERNELS_TCP):  # (argparse does not check a default either)
        print(f"error: HPCW_KERNEL_TRANSPORT={args.kernel_transport!r} is not a kernel transport; set it to "
              f"{KERNELS_IPC} or {KERNELS_TCP}, or unset it", file=sys.stderr)
        return 2
    if args.python == sys.executable and importlib.util.find_spec("jupyterlab") is None:
        print("error: JupyterLab is not installed in this Python; run 'make venv' (or pip install jupyterlab)",
              file=sys.stderr)
        return 2
    try:
        p = plan(args, os.environ)
        if args.dry_run:
            print(" ".join(p.argv))
            return 0
        make_output_private()  # before the token is printed
        return serve(args, os.environ, private_runtime(os.environ))
    except HpcWidgetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
