"""JupyterLab on a compute node: a Slurm job that starts the server and says how to reach it.

The job script (see :func:`hpcwidgets.render.jupyter.render_jupyter_job`) picks a free port on the
node and makes a random token when it runs, then prints the SSH tunnel command and the URL to the
job log. This model holds only what a person chooses: resources, the container (if any), the
notebook directory, the login host and user for the tunnel (with the login node's ssh port and a jump
host where the site needs them), where the tunnel ends (the login node, or the compute node itself),
the port range, the local port, and how many idle minutes stop the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import Problem
from ._meta import Spec, opt
from ._words import Verbatim
from .apptainer import ApptainerRun
from .charliecloud import ChRun
from .common import bind_destination, jump_host_field, login_port_field
from .slurm import SlurmJob, node_range
from .ssh import USER, jump_host_problem, login_host_problem
from .units import format_mem, format_time, parse_time

#: the job's private runtime folder, made when it runs (bound into an Apptainer container)
RUNTIME = "$jl_runtime"
#: the start line's word that adds --allow-root when the job runs as root (CI); empty otherwise, safe under set -u
ALLOW_ROOT = Verbatim('${jl_extra[@]+"${jl_extra[@]}"}')

#: the tunnel's forms: ssh to the login node, which forwards to the node's port; or ssh to the compute node itself
#: with the login node as a jump host, for sites whose login nodes cannot reach compute nodes' ports but let you ssh
#: to a node where you have a job (pam_slurm_adopt)
TUNNEL_THROUGH_LOGIN = "login"
TUNNEL_TO_NODE = "node"

#: how often, in seconds, JupyterLab looks for idle kernels and terminals (its default, 300, would add up to five
#: minutes to every idle limit)
CULL_INTERVAL = 60
#: what the idle stop does to a terminal, which the job's log repeats with its minutes: Jupyter Server measures a
#: terminal's idleness from its last input or output alone, whether a tab shows it or not
TERMINALS_NOTE = ("a terminal with no typing and no output for that long is shut down even while its tab is open, "
                  "and a command running quietly in it ends with it: run long work as a batch job of its own")

#: the first line of the job's own commands: a script read back keeps what comes before it as set-up lines
FIRST_LINE = "# --- Private files: only you can read what this job writes (its log will hold the token) ---"

_ADDRESS = "the job listens on one address of the node that the login node can reach, and prints the tunnel to it"
_PORT = "the job picks a free port from port_min..port_max"
_RETRIES = "the job sets port_retries=0 so the printed tunnel points at the real port"
_TOKEN = "the job makes a random token when it starts"
_FOLDER = "use the notebook_dir field"
#: extra arguments the job sets itself: a person's value would contradict the printed tunnel or leak the token
#: (JupyterLab 3 and later read the NotebookApp spellings too, as the older servers' names for the same settings)
RESERVED_ARGS = {
    "--ip": _ADDRESS, "--ServerApp.ip": _ADDRESS, "--NotebookApp.ip": _ADDRESS,
    "--port": _PORT, "--ServerApp.port": _PORT, "--NotebookApp.port": _PORT,
    "--port-retries": _RETRIES, "--ServerApp.port_retries": _RETRIES, "--NotebookApp.port_retries": _RETRIES,
    "--IdentityProvider.token": _TOKEN, "--ServerApp.token": _TOKEN, "--NotebookApp.token": _TOKEN,
    "--notebook-dir": _FOLDER, "--ServerApp.root_dir": _FOLDER, "--NotebookApp.notebook_dir": _FOLDER,
}

_CROSS_ORIGIN = ("it lets web pages of other sites use the server through your browser, with your token; the "
                 "tunnel's http://localhost address needs no such permission")
#: settings that weaken the server or take it off the port the job waits on, with the value that leaves them off
#: (Jupyter's default: the setting does no harm then) and why any other value is refused
_UNSAFE_SETTINGS = {
    "disable_check_xsrf": (("false", "0"), "it turns off Jupyter's protection against cross-site request forgery: "
                                           "a web page open in your browser could then send the server requests as "
                                           "you, and run code"),
    "allow_origin": (("",), _CROSS_ORIGIN),
    "allow_origin_pat": (("",), _CROSS_ORIGIN),
    "sock": (("",), "the server would listen on a Unix socket instead of the port the job waits on and the tunnel "
                    "forwards to, so the job would give up after its wait and stop it"),
}
_UNSAFE_ARGS = {f"--{app}.{trait}": rule for trait, rule in _UNSAFE_SETTINGS.items()
                for app in ("ServerApp", "NotebookApp")}

_IDLE = "the job sets it from idle_minutes (0 turns the idle stop off, and then this option is yours to set)"
_PRIVATE = ("the job runs the kernels over Unix sockets in its private folder: over TCP, any user of the node could "
            "read every cell's code and output from a kernel's port; for a kernel that cannot use Unix sockets, set "
            "kernel_transport to tcp instead (it says what that gives up)")

#: the option that makes JupyterLab talk to its kernels over Unix sockets (Jupyter's ipc transport) in its runtime
#: folder, which only you can enter; over TCP, even on 127.0.0.1, any user of the node can subscribe to a kernel's
#: output channel and read every cell's code and output (a kernel's key only signs messages)
PRIVATE_KERNELS = "--KernelManager.transport=ipc"
#: the kernels' transports: Unix sockets in the private folder (ipc), or ports on the node's loopback (tcp)
KERNELS_IPC = "ipc"
KERNELS_TCP = "tcp"
#: the option that puts the kernels on the node's loopback ports, for kernels that cannot use Unix sockets
SHARED_KERNELS = "--KernelManager.transport=tcp"
#: what running the kernels over TCP gives up, said where the choice is made, in the job's log and in the notes
TCP_KERNELS_NOTE = ("the kernels then listen on TCP ports of the node's 127.0.0.1, which every user logged in to "
                    "the node can connect to. The key in each kernel's connection file (which stays in the private "
                    "folder) signs the messages, so without it no one can send the kernel code to run; but it does not "
                    "encrypt them: anyone on the node can subscribe to a kernel's output channel and read every "
                    "cell's code and output, and can flood its ports. Use tcp only for a kernel that cannot use Unix "
                    "sockets, on a node no one else uses (--exclusive) where you can")


def kernel_args(transport: str) -> list[str]:
    """JupyterLab's option for the kernels' ``transport`` (:data:`KERNELS_IPC` or :data:`KERNELS_TCP`)."""
    return [SHARED_KERNELS if transport == KERNELS_TCP else PRIVATE_KERNELS]


#: the longest path the private runtime folder may have: a Unix socket's path holds at most 103 bytes (macOS; Linux
#: allows 107), and a kernel's sockets are FOLDER/jupyter/kernel-<36-character id>-ipc-<1 to 5>
RUNTIME_PATH_MAX = 103 - len("/jupyter/kernel-") - 36 - len("-ipc-0")


def idle_args(minutes: int) -> list[str]:
    """JupyterLab's settings that stop it after ``minutes`` without use (none for 0).

    The server stops itself once it has had no kernels and no activity for that long
    (``ServerApp.shutdown_no_activity_timeout``); a kernel counts as activity while it runs, so kernels idle for
    that long are shut down first (``MappingKernelManager.cull_idle_timeout``), but never one running code
    (``cull_busy`` stays off) nor one a browser tab is connected to (``cull_connected=False``): an open JupyterLab
    tab polls the server, which counts as use and keeps it running anyway, so shutting the tab's kernel down would
    only lose its state. A closed tab or a sleeping laptop drops the connection (the server's websocket pings go
    unanswered). Terminals idle that long are shut down too (``TerminalManager.cull_inactive_timeout``), and a
    running terminal keeps the server from stopping, so that is needed; but unlike a kernel's, a terminal's idleness
    is only the time since its last input or output (Jupyter Server has no setting like ``cull_connected`` for
    terminals): one whose tab is open is shut down as well, with the shell and whatever runs quietly in it. The job's
    log and the field's help say so (:data:`TERMINALS_NOTE`). Shutting a kernel down is activity too, so an unused
    server with an idle kernel stops after up to twice ``minutes``."""
    if not minutes:
        return []
    seconds = int(minutes) * 60
    return [f"--ServerApp.shutdown_no_activity_timeout={seconds}",
            f"--MappingKernelManager.cull_idle_timeout={seconds}",
            f"--MappingKernelManager.cull_interval={CULL_INTERVAL}", "--MappingKernelManager.cull_connected=False",
            f"--TerminalManager.cull_inactive_timeout={seconds}", f"--TerminalManager.cull_interval={CULL_INTERVAL}"]


#: Apptainer options that run the container in a network namespace of its own (--network and --network-args
#: only configure the one --net makes; --netns-path joins an existing one)
_OWN_NETWORK = ("-n", "--net", "--network", "--network-args", "--netns-path")


def _reserved(option: str, idle: bool) -> str:
    """What the job does instead of JupyterLab's option ``option`` (``--Class.trait`` or an alias), or "" when it is
    the person's to set; ``idle``: whether the job stops an idle server. A setting of a class applies to its
    subclasses too, and a subclass's wins (``--AsyncMappingKernelManager.cull_idle_timeout``, the class Jupyter
    Server 2 runs, beats the job's ``MappingKernelManager`` one), so those settings are known by their class
    name's ending."""
    if option in RESERVED_ARGS:
        return RESERVED_ARGS[option]
    cls, _, trait = option[2:].rpartition(".")
    if option == "--transport" or (trait in ("transport", "ip") and cls.endswith(("KernelManager",
                                                                                   "ConnectionFileMixin"))):
        return _PRIVATE
    if idle and (trait == "shutdown_no_activity_timeout"
                 or (trait.startswith("cull_") and cls.endswith(("KernelManager", "TerminalManager")))):
        return _IDLE
    return ""


def _extra_arg_problems(args: tuple[str, ...], idle: bool) -> list[str]:
    """Why each of JupyterLab's extra arguments ``args`` cannot be used in the job: the settings the job makes
    itself (:func:`_reserved`), and those that weaken the server (unless given their harmless default, e.g.
    ``--ServerApp.disable_check_xsrf=False``). A setting's value may follow as the next word, as traitlets reads
    it."""
    out = []
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        reason = _reserved(key, idle)
        if reason:
            out.append(f"remove {arg!r}: {reason}")
        elif key in _UNSAFE_ARGS:
            if not eq and i + 1 < len(args) and not args[i + 1].startswith("-"):
                value, arg = args[i + 1], f"{arg} {args[i + 1]}"
            harmless, why = _UNSAFE_ARGS[key]
            if value.strip("'\"").lower() not in harmless:
                out.append(f"remove {arg!r}: {why}")
    return out


def own_network_option(extra: tuple[str, ...]) -> str:
    """The first of Apptainer's ``extra`` options that gives the container a network of its own, or ""."""
    for word in extra:
        name, eq, value = word.partition("=")
        if name in _OWN_NETWORK and not (name in ("-n", "--net") and eq and value.lower() in ("false", "0")):
            return word
    return ""


#: what starts a Jupyter server: ``jupyter lab|notebook|server``, ``jupyter-lab`` …, ``python -m jupyterlab`` …
_JUPYTER_SUBCOMMANDS = ("lab", "notebook", "server", "nbclassic")
_JUPYTER_PROGRAMS = ("jupyter-lab", "jupyter-notebook", "jupyter-server", "jupyter-nbclassic")
_JUPYTER_MODULES = ("jupyterlab", "notebook", "jupyter_server", "nbclassic")
_PYTHON = re.compile(r"python(\d+(\.\d+)*)?")
#: what follows ``jupyter lab`` (``notebook``, ``server``, ``python -m jupyterlab`` …) when no server starts: its
#: tools (``jupyter server list``, ``jupyter lab build``, ``jupyter notebook password``) and the options that
#: only print something
_NOT_A_SERVER = frozenset({"list", "stop", "password", "build", "clean", "path", "paths", "workspaces", "licenses",
                           "extension", "labextension", "serverextension", "--version", "--help", "-h", "--help-all",
                           "--generate-config", "--show-config", "--show-config-json"})


def server_start(words: list[str]) -> int | None:
    """Where in ``words`` a Jupyter server is started (the index of its program), or None. Besides the
    ``jupyter`` commands, ``python -m jupyterlab`` counts: the job itself starts JupyterLab that way when
    ``python`` names an interpreter."""
    for i, word in enumerate(words):
        base = word.rsplit("/", 1)[-1]
        rest = words[i + 1:]
        if (base == "jupyter" and rest[:1] and rest[0] in _JUPYTER_SUBCOMMANDS) or base in _JUPYTER_PROGRAMS:
            after = rest[1:2] if base == "jupyter" else rest[:1]
        elif _PYTHON.fullmatch(base) and rest[:1] == ["-m"] and len(rest) > 1 and (
                rest[1] in _JUPYTER_MODULES or (rest[1] == "jupyter" and rest[2:3] and rest[2] in _JUPYTER_SUBCOMMANDS)):
            after = rest[2:3] if rest[1] in _JUPYTER_MODULES else rest[3:4]
        else:
            continue
        return None if after and after[0] in _NOT_A_SERVER else i
    return None


_REF = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})")


#: the memory (MiB) a Jupyter job asks for when the profile leaves room for it (:meth:`JupyterJob.fit_mem`)
DEFAULT_MEM_MIB = 8 * 1024
DEFAULT_JOB = SlurmJob(job_name="jupyter", time="02:00:00", cpus_per_task=2, output="jupyter-%j.log")


@dataclass(frozen=True)
class JupyterJob(Spec):
    """A batch job running JupyterLab on a compute node, reached through an SSH tunnel.

    The token is never part of this model or the script file: the script makes it at run time.
    """

    kind = "jupyter.job"

    job: SlurmJob = opt(DEFAULT_JOB, label="Slurm job", role="internal",
                        help="Resources for the server: time, partition, CPUs, memory, GPUs. The job log "
                             "(--output) receives the tunnel command and the URL with the token.")
    container: ApptainerRun | ChRun | None = opt(None, label="Container", role="internal",
                                                 placeholder="apptainer exec --nv image.sif",
                                                 help="Run JupyterLab inside this image (Apptainer exec or ch-run); "
                                                      "leave its command empty, the job adds 'jupyter lab …'. "
                                                      "Empty: run it on the node directly.")
    notebook_dir: str = opt("$HOME", label="Notebook directory", role="internal", path=True,
                            help="The folder JupyterLab shows, e.g. $HOME or $SCRATCH/project.")
    login_host: str = opt("", label="Login host", role="internal", placeholder="midway3.rcc.uchicago.edu",
                          help="The cluster's login node your laptop can reach with ssh (the cluster profile names it).")
    login_user: str = opt("$USER", label="Login user", role="internal",
                          help="Your user name on the cluster; $USER is filled in on the node when the job runs.")
    login_port: int | None = login_port_field("The login node's ssh port when it is not 22 (ULHPC: 8022): the tunnel "
                                              "then says ssh -p PORT. Empty for 22 (the cluster profile names it).")
    jump_host: str = jump_host_field("A host ssh goes through to reach the login node (ssh -J): [user@]host[:port], "
                                     "hops joined by commas. Empty for none (the cluster profile names it).")
    port_min: int = opt(20000, label="Lowest port", role="internal", minimum=1024, maximum=65535, advanced=True,
                        help="The job picks a free port on the node between this and the highest port.")
    port_max: int = opt(29999, label="Highest port", role="internal", minimum=1024, maximum=65535, advanced=True,
                        help="Upper end of the port range searched on the node.")
    local_port: int = opt(8888, label="Port on your computer", role="internal", minimum=1024, maximum=65535,
                          help="The tunnel's end on your laptop: you open http://localhost:PORT. Change it if 8888 is busy there.")
    python: str = opt("jupyter", label="Jupyter program or environment", role="internal", path=True,
                      placeholder="$HOME/miniconda3/envs/ml",
                      help="What starts JupyterLab: 'jupyter' (on PATH), a jupyter program's path, a Python "
                           "interpreter (python -m jupyterlab), or an environment directory holding bin/jupyter.")
    helper_python: str = opt("python3", label="Python for set-up", role="internal", advanced=True,
                             help="Any Python 3 on the node (outside the container); makes the token and finds a free port.")
    tunnel: str = opt(TUNNEL_THROUGH_LOGIN, label="Tunnel to", role="internal",
                      choices=(TUNNEL_THROUGH_LOGIN, TUNNEL_TO_NODE),
                      help="login: ssh to the login host, which forwards to the node's port (ssh -L "
                           "LOCAL:NODE:PORT LOGIN). node: ssh to the compute node itself through the login host "
                           "(ssh -J LOGIN -L LOCAL:127.0.0.1:PORT NODE), for sites whose login nodes cannot reach "
                           "compute nodes' ports but let you ssh to a node running your job; JupyterLab then "
                           "listens on the node's loopback only.")
    idle_minutes: int = opt(60, label="Stop after idle minutes", role="internal", minimum=0,
                            help="JupyterLab stops itself, and the job ends, after this many minutes without use, "
                                 "so a forgotten server does not hold the node until the time limit. An open "
                                 "JupyterLab tab counts as use: close it (or let your laptop sleep) when you leave. "
                                 "Kernels no tab is connected to are shut down first (a kernel running code never "
                                 "is); " + TERMINALS_NOTE + ". 0: never.")
    kernel_transport: str = opt(KERNELS_IPC, label="Kernel transport", role="internal", advanced=True,
                                choices=(KERNELS_IPC, KERNELS_TCP),
                                help="How JupyterLab talks to its kernels. ipc: Unix sockets in the job's private "
                                     "folder, which only you can open; ipykernel, and recent IRkernel and IJulia, use "
                                     "them. tcp: for kernels that cannot (Java and Kotlin kernels, some xeus kernels: "
                                     "with ipc they fail to start or never answer, and JupyterLab's log says "
                                     "'Timeout waiting for kernel_info reply'); " + TCP_KERNELS_NOTE + ".")
    extra_args: tuple[str, ...] = opt((), label="Extra JupyterLab arguments", role="internal", advanced=True,
                                      help="Further options for jupyter lab, e.g. --ServerApp.terminals_enabled=False.")

    @classmethod
    def for_profile(cls, profile: Any, **changes: Any) -> "JupyterJob":
        """A Jupyter job filled in from a cluster profile: its login host (with its ssh port, jump host and the
        site's tunnel form, :meth:`login_fields`), and the partition (or QOS and constraint) and account of the
        default entry, with a time and memory that fit it (:meth:`fit_time`, :meth:`fit_mem`), and the variables and
        binds every job of the site needs (:meth:`~hpcwidgets.spec.profile.ClusterProfile.with_site_env`)."""
        job = DEFAULT_JOB.replace(time="", **profile.job_fields(profile.default()))
        base = cls(job=job, **cls.login_fields(profile)).fit_time(profile).fit_mem(profile)
        return profile.with_site_env(base.replace(**changes) if changes else base)

    @staticmethod
    def login_fields(profile: Any) -> dict[str, Any]:
        """The tunnel's fields a cluster profile names: ``login_host``, ``login_port`` and ``jump_host`` (they
        describe one way in, so they are taken together), and ``tunnel`` when the profile names the site's form
        (a profile that names none leaves the job's own, so a form chosen before stays)."""
        fields = {"login_host": getattr(profile, "login_host", "") or "",
                  "login_port": getattr(profile, "login_port", None),
                  "jump_host": getattr(profile, "jump_host", "") or ""}
        tunnel = getattr(profile, "tunnel", None)
        return {**fields, "tunnel": tunnel} if tunnel else fields

    def fit_time(self, profile: Any) -> "JupyterJob":
        """This job with an empty time filled in: the default two hours, or the limit of the partition the job
        runs on when that is shorter (a debug queue would reject two hours). ``jupyter-job --profile`` calls it
        once the partition is known, so ``--set job.partition=gpu`` gets gpu's limit, not the default's."""
        if self.job.time:
            return self
        part = profile.entry_for(self.job)
        limit = part.max_seconds() if part is not None else None
        wanted = parse_time(DEFAULT_JOB.time)
        return self.replace(job=self.job.replace(time=format_time(min(wanted, limit) if limit else wanted)))

    def fit_mem(self, profile: Any) -> "JupyterJob":
        """This job with an empty memory request filled in, as the shipped Jupyter example asks: 8G
        (:data:`DEFAULT_MEM_MIB`), or half a node of the partition the job runs on when that is less, within the
        partition's per-job limit. Without it the job gets the partition's default memory, on many sites 1G or 2G
        per CPU: with 2 CPUs, too little for a kernel that loads a data set (lint's HPC413). Left empty where the
        profile lists the partition but not its nodes' memory (Slurm may grant no --mem there), and where the job
        asks for memory per CPU or per GPU. ``jupyter-job --profile`` calls it once the partition is known."""
        job = self.job
        if job.mem or job.mem_per_cpu or job.mem_per_gpu:
            return self
        part = profile.entry_for(job)
        mem = part.mem_to_ask(DEFAULT_MEM_MIB, share=2, gpus=bool(job.gpus_on_each_node)) if part is not None \
            else format_mem(DEFAULT_MEM_MIB)
        return self.replace(job=job.replace(mem=mem)) if mem else self

    def problems(self) -> list[Problem]:
        out = super().problems()
        # the job supplies the container's command itself; an empty one is not a mistake here
        if self.container is not None and not getattr(self.container, "command", ()):
            out = [p for p in out if p.field != "container.command"]
        return out

    def _check(self) -> list[Problem]:
        out: list[Problem] = []
        if not isinstance(self.login_host, str) or not self.login_host:
            out.append(Problem("login_host", "a login host is needed for the tunnel: the address you ssh to, "
                                             "e.g. midway3.rcc.uchicago.edu (your cluster profile names it)"))
        elif login_host_problem(self.login_host):
            out.append(Problem("login_host", login_host_problem(self.login_host)))
        if isinstance(self.jump_host, str) and self.jump_host and jump_host_problem(self.jump_host):
            out.append(Problem("jump_host", jump_host_problem(self.jump_host)))
        if isinstance(self.login_user, str):
            if not self.login_user:
                out.append(Problem("login_user", "a user name is needed for the tunnel; $USER works on most clusters"))
            elif not (USER.fullmatch(self.login_user) or _REF.fullmatch(self.login_user)):
                out.append(Problem("login_user", f"{self.login_user!r} is not a user name (letters, digits, . _ -) "
                                                 "or a variable like $USER"))
        if isinstance(self.port_min, int) and isinstance(self.port_max, int) and self.port_min > self.port_max:
            out.append(Problem("port_max", f"the highest port ({self.port_max}) is below the lowest ({self.port_min}); "
                                           "swap them"))
        if isinstance(self.notebook_dir, str):
            if not self.notebook_dir:
                out.append(Problem("notebook_dir", "a notebook directory is needed, e.g. $HOME"))
        for name in ("python", "helper_python"):
            value = getattr(self, name)
            if isinstance(value, str) and not value.strip():
                out.append(Problem(name, "cannot be empty: name a program such as 'jupyter' or 'python3'"))
            elif isinstance(value, str) and value.startswith("~") and not self.field_spec(name).info.path:
                # (a path field's ~ is reported by the generic check)
                out.append(Problem(name, f"'~' is not expanded here; write $HOME{value[1:]} instead"))
        if isinstance(self.extra_args, tuple):
            args = tuple(a for a in self.extra_args if isinstance(a, str))
            out += [Problem("extra_args", message) for message in _extra_arg_problems(args, bool(self.idle_minutes))]
        out += self._job_checks()
        out += self._container_checks()
        return out

    def _job_checks(self) -> list[Problem]:
        job = self.job
        if not isinstance(job, SlurmJob):
            return []
        out = []
        if (node_range(job.nodes) or (1, 1))[1] > 1:  # a MIN-MAX range may get several nodes too
            out.append(Problem("job.nodes", "JupyterLab runs on one node; set nodes to 1"))
        if job.array:
            out.append(Problem("job.array", "a Jupyter server is one job, not an array; remove --array"))
        if job.commands:
            out.append(Problem("job.commands", "the Jupyter job writes its own commands; put set-up lines "
                                               "(module load, conda activate) in job.setup instead"))
        if not job.time:
            out.append(Problem("job.time", "set a time limit (e.g. 02:00:00): an idle server otherwise holds the "
                                           "node until the partition's maximum"))
        return out

    def _container_checks(self) -> list[Problem]:
        c = self.container
        out = []
        if c is None:
            return out
        if not isinstance(c, (ApptainerRun, ChRun)):
            return [Problem("container", f"expected an Apptainer exec or a ch-run model, got {type(c).__name__}: "
                                         "a container is a layer of its own; start from a saved job that has one, "
                                         "e.g. hpcwidgets examples jupyter --profile NAME --format json > jupyter.json, "
                                         "then hpcwidgets jupyter-job --from jupyter.json --set container.image=IMAGE")]
        if c.command:
            out.append(Problem("container.command", "leave the container's command empty: the job runs "
                                                    "'jupyter lab …' in it"))
        if isinstance(c, ApptainerRun):
            if c.action != "exec":
                out.append(Problem("container.action", f"use exec, not {c.action}: the job runs jupyter lab in the image"))
            own_network = own_network_option(c.extra if isinstance(c.extra, tuple) else ())
            if own_network:
                why = ("whose loopback is not the node's: JupyterLab would listen on the container's 127.0.0.1, which "
                       "the tunnel to the node's 127.0.0.1 does not reach" if self.tunnel == TUNNEL_TO_NODE else
                       "where the node's address that the tunnel names does not exist, so JupyterLab cannot listen "
                       "on it")
                out.append(Problem("container.extra", f"remove {own_network!r}: it runs the container in a network of "
                                                      f"its own, {why}; without it the container shares the node's "
                                                      "network"))
            hidden_home = c.hides_home
            if hidden_home and self.notebook_dir.startswith(("$HOME", "${HOME}")) and not _bound(c, self.notebook_dir):
                out.append(Problem("notebook_dir", f"{self.notebook_dir!r} is not visible in the container "
                                                   "(--no-home/--contain hide $HOME); add a bind for it"))
        else:
            if c.private_tmp:
                out.append(Problem("container.private_tmp", "the job keeps its runtime files in the folder ch-run "
                                                            "shares at the container's /tmp (the host's $TMPDIR, or "
                                                            "/tmp); drop --private-tmp so JupyterLab can use them"))
            folder = self.notebook_dir
            if folder.startswith(("$HOME", "${HOME}")):
                if not c.home and not _bound(c, folder):
                    out.append(Problem("notebook_dir", f"{folder!r} is not visible in the container: ch-run "
                                                       "mounts $HOME only with --home; turn that on or bind the folder"))
            elif _REF.search(folder) and not _bound(c, folder) and not _under(folder, "/tmp") \
                    and not (c.home and _under(folder, "/home/$USER")):
                # a folder named through a variable ($SCRATCH/project) is the host's; ch-run shows the image's
                out.append(Problem("notebook_dir", f"{folder!r} is not visible in the container: ch-run mounts only "
                                                   "$HOME (with --home) and /tmp from the host; bind the folder in "
                                                   f"(ch-run -b \"{folder}\")"))
            if any(g in ("*", "JUPYTER*", "JUPYTER_*", "JUPYTER_TOKEN") for g in c.unset_env):
                out.append(Problem("container.unset_env", "this removes JUPYTER_TOKEN, which carries the job's token "
                                                          "into the container; unset narrower names"))
        return out


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _bound(c: Any, path: str) -> bool:
    """Whether a bind of ``c`` shows ``path`` in the container: at its destination (``-B "$PWD:$HOME"`` makes
    $HOME visible under --containall), or at its source when it has none."""
    return any(_under(path, bind_destination(b)) for b in c.binds)
