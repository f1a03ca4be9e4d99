"""A real two-node Slurm cluster on this one machine, for practising and for integration tests.

``up()`` installs Slurm and munge with apt when they are missing, writes a private configuration into
ONE state directory and starts the daemons from it; ``down()`` stops exactly the daemons it started;
``status()`` reports what runs. Nothing outside the state directory is touched except two things, both
idempotent: missing Debian packages are installed, and the node names ``n1``/``n2`` are added to
``/etc/hosts`` (one line, marked with a comment) because ``scontrol show hostnames`` hands them to job
scripts, which must be able to reach the head node by that name.

The state directory is ``/var/lib/hpcwidgets-practice`` unless the environment variable
``HPCW_CLUSTER_DIR`` names another one. It holds::

    slurm.conf gres.conf       the cluster's configuration (SLURM_CONF points at slurm.conf)
    munge/                     a private munge key, socket, PID file and log (munged runs as user munge)
    state/ spool/n1 spool/n2   slurmctld's saved state and each slurmd's spool
    run/                       PID files written by the daemons
    log/                       daemon logs and the job completion file read by ``sacct -c``
    dev/                       fake GPU device nodes (character devices 195:N, two per node)

Client programs find this cluster through ``SLURM_CONF``. The commands of this package do that for you:
:func:`client_env` sets ``SLURM_CONF`` when it is unset and the practice cluster is up. In your own shell
run ``eval "$(python -m hpcwidgets.run.practice_cluster env)"`` or copy the ``export`` line ``up`` prints.

Command line: ``hpcwidgets practice-cluster up|down|status|env`` or
``python -m hpcwidgets.run.practice_cluster up|down|status|env``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..errors import RunError

#: Debian packages, by purpose. ``up`` installs whichever are missing.
PACKAGES: dict[str, tuple[str, ...]] = {
    "slurm": ("munge", "slurmctld", "slurmd", "slurm-client"),
    "charliecloud": ("charliecloud-runtime", "charliecloud-builders", "debootstrap"),
}

DEFAULT_DIR = Path("/var/lib/hpcwidgets-practice")
DIR_ENV = "HPCW_CLUSTER_DIR"

CLUSTER_NAME = "practice"
PARTITION = "debug"
MAX_TIME = "01:00:00"
NODES: tuple[str, ...] = ("n1", "n2")
#: slurmctld's port; node i's slurmd listens on PORT + 1 + i. ``HPCW_CLUSTER_PORT`` overrides it (to run a
#: second practice cluster beside the first, as the tests do)
DEFAULT_PORT = 17817
PORT_ENV = "HPCW_CLUSTER_PORT"
CPUS_PER_NODE = 2
MEMORY_MB = 3900
GPUS_PER_NODE = 2
#: major number of NVIDIA character devices; the fake GPUs are device nodes with this major
GPU_MAJOR = 195

HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARKER = "# hpcwidgets practice cluster"

#: seconds ``up`` waits for both nodes to become idle
START_TIMEOUT = 45.0
#: seconds ``down`` waits for a daemon to exit after SIGTERM before SIGKILL
STOP_TIMEOUT = 10.0


def cluster_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The state directory: ``$HPCW_CLUSTER_DIR`` (of ``environ``, default ``os.environ``) or :data:`DEFAULT_DIR`."""
    value = (os.environ if environ is None else environ).get(DIR_ENV, "")
    return Path(value).resolve() if value else DEFAULT_DIR


def cluster_port(environ: Mapping[str, str] | None = None) -> int:
    """slurmctld's port: ``$HPCW_CLUSTER_PORT`` or :data:`DEFAULT_PORT`."""
    value = (os.environ if environ is None else environ).get(PORT_ENV, "")
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 1024 <= int(value) <= 65000:
        raise RunError(f"{PORT_ENV}={value!r} is not a port number between 1024 and 65000; fix or unset it")
    return int(value)


@dataclass(frozen=True)
class Layout:
    """Every path of one practice cluster, derived from its state directory."""

    root: Path

    @property
    def slurm_conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def gres_conf(self) -> Path:
        return self.root / "gres.conf"

    @property
    def munge_dir(self) -> Path:
        return self.root / "munge"

    @property
    def munge_key(self) -> Path:
        return self.munge_dir / "munge.key"

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket.2"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def spool_root(self) -> Path:
        return self.root / "spool"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def dev_dir(self) -> Path:
        return self.root / "dev"

    @property
    def jobcomp_file(self) -> Path:
        return self.log_dir / "jobcomp.txt"

    def gpu_devices(self, node: str) -> list[tuple[Path, int]]:
        """The fake GPU device nodes of ``node`` with their minor numbers."""
        index = list(NODES).index(node)
        first = index * GPUS_PER_NODE
        return [(self.dev_dir / f"nvidia{m}", m) for m in range(first, first + GPUS_PER_NODE)]


@dataclass(frozen=True)
class Daemon:
    """One daemon of the cluster: how to start it and how to recognise its process."""

    name: str  # "munged", "slurmctld", "slurmd n1", …
    program: str  # executable name as it appears in /proc/PID/cmdline
    pid_file: Path
    log_file: Path
    argv: tuple[str, ...]
    #: a word the process's command line must contain for it to count as ours
    marker: str


def daemons(layout: Layout) -> list[Daemon]:
    """The daemons in start order (stop in reverse)."""
    m = layout.munge_dir
    conf = str(layout.slurm_conf)
    out = [Daemon(
        "munged", "munged", m / "munged.pid", m / "munged.log",
        ("runuser", "-u", "munge", "--", "munged", f"--socket={layout.munge_socket}",
         f"--key-file={layout.munge_key}", f"--pid-file={m / 'munged.pid'}",
         f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}"),
        f"--socket={layout.munge_socket}")]
    out.append(Daemon("slurmctld", "slurmctld", layout.run_dir / "slurmctld.pid",
                      layout.log_dir / "slurmctld.log", ("slurmctld", "-f", conf), conf))
    for node in NODES:
        out.append(Daemon(f"slurmd {node}", "slurmd", layout.run_dir / f"slurmd.{node}.pid",
                          layout.log_dir / f"slurmd.{node}.log", ("slurmd", "-N", node, "-f", conf), conf))
    return out


# ---------------------------------------------------------------------------------------------------
# configuration text (pure)

def slurm_conf_text(layout: Layout, hostname: str, port: int = DEFAULT_PORT) -> str:
    """The cluster's slurm.conf; slurmctld listens on ``port``, the slurmds on the next ports."""
    r = layout
    lines = [
        "# Written by hpcwidgets.run.practice_cluster; rewritten by `up`, do not edit.",
        f"ClusterName={CLUSTER_NAME}",
        f"SlurmctldHost={hostname}(127.0.0.1)",
        f"SlurmctldPort={port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"AuthInfo=socket={r.munge_socket}",
        f"StateSaveLocation={r.state_dir}",
        f"SlurmdSpoolDir={r.spool_root}/%n",
        f"SlurmctldPidFile={r.run_dir}/slurmctld.pid",
        f"SlurmdPidFile={r.run_dir}/slurmd.%n.pid",
        f"SlurmctldLogFile={r.log_dir}/slurmctld.log",
        f"SlurmdLogFile={r.log_dir}/slurmd.%n.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "GresTypes=gpu",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # without a default every job would take the whole node's memory and jobs would run one at a time
        f"DefMemPerCPU={MEMORY_MB // CPUS_PER_NODE // 2}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={r.jobcomp_file}",
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        # reject at submission what a partition can never run (the default leaves such jobs pending forever)
        "EnforcePartLimits=ALL",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=60",
        "InactiveLimit=30",
        "MinJobAge=300",
        "KillWait=5",
        "Waittime=0",
        "MaxJobCount=10000",
        "",
    ]
    for i, node in enumerate(NODES):
        lines.append(f"NodeName={node} NodeHostname={hostname} NodeAddr=127.0.0.1 Port={port + 1 + i} "
                     f"CPUs={CPUS_PER_NODE} RealMemory={MEMORY_MB} Gres=gpu:{GPUS_PER_NODE} State=UNKNOWN")
    lines.append(f"PartitionName={PARTITION} Nodes={','.join(NODES)} Default=YES MaxTime={MAX_TIME} State=UP")
    return "\n".join(lines) + "\n"


def gres_conf_text(layout: Layout) -> str:
    """gres.conf: each node's two fake GPUs, as files (file-less Count= GRES is rejected)."""
    lines = ["# Written by hpcwidgets.run.practice_cluster; fake GPUs are character devices 195:N."]
    for node in NODES:
        devs = layout.gpu_devices(node)
        first, last = devs[0][1], devs[-1][1]
        lines.append(f"NodeName={node} Name=gpu File={layout.dev_dir}/nvidia[{first}-{last}]")
    return "\n".join(lines) + "\n"


def env(directory: Path | None = None) -> dict[str, str]:
    """The variables a Slurm client needs to talk to the practice cluster."""
    return {"SLURM_CONF": str(Layout(directory or cluster_dir()).slurm_conf)}


def client_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for running Slurm client commands.

    A copy of ``base`` (default ``os.environ``). When it has no ``SLURM_CONF`` and the practice cluster
    is up, ``SLURM_CONF`` is set to the practice cluster's configuration; otherwise the system's Slurm
    configuration applies as usual.
    """
    out = dict(os.environ if base is None else base)
    if not out.get("SLURM_CONF"):
        layout = Layout(cluster_dir(out))
        ctld = next(d for d in daemons(layout) if d.name == "slurmctld")
        if layout.slurm_conf.is_file() and _running_pid(ctld) is not None:
            out["SLURM_CONF"] = str(layout.slurm_conf)
    return out


# ---------------------------------------------------------------------------------------------------
# processes

def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [w.decode(errors="replace") for w in raw.split(b"\0") if w]


def _is_ours(pid: int, d: Daemon) -> bool:
    """Whether process ``pid`` is daemon ``d`` of this cluster (not a recycled PID, not another cluster)."""
    words = _cmdline(pid)
    if not words or os.path.basename(words[0]) != d.program:
        return False
    if d.marker not in words:
        return False
    if d.program == "slurmd":
        node = d.name.split()[1]
        return any(words[i] == "-N" and i + 1 < len(words) and words[i + 1] == node for i in range(len(words)))
    return True


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _running_pid(d: Daemon) -> int | None:
    """The PID of daemon ``d`` if its PID file names a live process that is really it."""
    pid = _read_pid(d.pid_file)
    return pid if pid is not None and _is_ours(pid, d) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); treat it as gone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _stop(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    _stop_all([pid], timeout)


def _stop_all(pids: list[int], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to each, SIGKILL to those still there after ``timeout`` seconds; one already gone is skipped."""
    def signal_all(sig: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGKILL):
        signal_all(sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(_alive(pid) for pid in pids):
                return
            time.sleep(0.1)


def _ancestors() -> set[int]:
    """This process and its parents: a caller running inside a job is never one of its strays."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat_line = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat_line.rsplit(")", 1)[1].split()[1])
    return pids


def _stray_steps(layout: Layout) -> list[int]:
    """Processes of this cluster's jobs, to stop once every daemon is gone: the slurmstepd processes its slurmd
    started and the programs they ran (both carry its SLURM_CONF; the programs also a SLURM_JOB_ID), and batch
    scripts (their command line names a file in the cluster's spool)."""
    mine = f"SLURM_CONF={layout.slurm_conf}".encode()
    spool = f"{layout.spool_root}/"
    skip = _ancestors()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        pid = int(entry.name)
        words = _cmdline(pid)
        if not words:
            continue
        if any(word.startswith(spool) for word in words[1:3]):
            found.append(pid)
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if mine in environ and (words[0].startswith("slurmstepd")
                                or any(v.startswith(b"SLURM_JOB_ID=") for v in environ)):
            found.append(pid)
    return found


# ---------------------------------------------------------------------------------------------------
# status

@dataclass(frozen=True)
class ClusterStatus:
    """What runs: each daemon's PID (None when stopped) and the lines ``sinfo`` printed."""

    directory: Path
    slurm_conf: Path
    daemons: dict[str, int | None] = field(default_factory=dict)
    sinfo: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        """All daemons run."""
        return bool(self.daemons) and all(pid is not None for pid in self.daemons.values())

    @property
    def stopped(self) -> bool:
        """No daemon runs."""
        return all(pid is None for pid in self.daemons.values())

    def __str__(self) -> str:
        lines = [f"practice cluster in {self.directory}"]
        for name, pid in self.daemons.items():
            lines.append(f"  {name:<10} {'pid ' + str(pid) if pid is not None else 'stopped'}")
        if self.sinfo:
            lines.append("  sinfo:")
            lines += [f"    {line}" for line in self.sinfo]
        if self.running:
            lines.append(f"export SLURM_CONF={shlex.quote(str(self.slurm_conf))}")
        return "\n".join(lines)


def _sinfo(layout: Layout) -> list[str]:
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %P %T %c %m %G"], capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": str(layout.slurm_conf)}, timeout=30)
    if proc.returncode != 0:
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def status(directory: Path | None = None) -> ClusterStatus:
    """Report which daemons run (verified PIDs) and, when slurmctld runs, what ``sinfo`` says."""
    layout = Layout(directory or cluster_dir())
    pids = {d.name: _running_pid(d) for d in daemons(layout)}
    lines: list[str] = []
    if pids.get("slurmctld") is not None and shutil.which("sinfo"):
        lines = _sinfo(layout)
    return ClusterStatus(layout.root, layout.slurm_conf, pids, tuple(lines))


# ---------------------------------------------------------------------------------------------------
# up

def _require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise RunError(f"starting and stopping the practice cluster needs root ({action}); "
                       "run it with sudo or as root")


def missing_packages(groups: tuple[str, ...] = tuple(PACKAGES)) -> list[str]:
    """Packages of the given groups that dpkg does not list as installed."""
    missing = []
    for group in groups:
        for pkg in PACKAGES[group]:
            proc = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg],
                                  capture_output=True, text=True)
            if proc.returncode != 0 or proc.stdout.strip() != "installed":
                missing.append(pkg)
    return missing


def install_packages(groups: tuple[str, ...] = tuple(PACKAGES)) -> list[str]:
    """Install the missing packages of ``groups`` with apt-get; returns what was installed."""
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        raise RunError("the practice cluster needs a Debian-like system with apt-get and dpkg; "
                       "install Slurm and munge yourself and point SLURM_CONF at your cluster")
    missing = missing_packages(groups)
    if not missing:
        return []
    _require_root("installing " + " ".join(missing))
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
        proc = subprocess.run(argv, capture_output=True, text=True, env=apt_env)
        if proc.returncode != 0:
            raise RunError(f"{' '.join(argv)} failed (exit {proc.returncode}); check the network and apt "
                           f"sources, then run `up` again:\n{proc.stderr.strip()[-2000:]}",
                           argv=argv, returncode=proc.returncode, stderr=proc.stderr)
    return missing


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def _make_devices(layout: Layout) -> None:
    layout.dev_dir.mkdir(parents=True, exist_ok=True)
    for node in NODES:
        for path, minor in layout.gpu_devices(node):
            want = os.makedev(GPU_MAJOR, minor)
            if path.exists() or path.is_symlink():
                st = path.lstat()
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == want:
                    continue
                path.unlink()
            os.mknod(path, 0o666 | stat.S_IFCHR, want)


def _ensure_hosts(names: tuple[str, ...] = tuple(NODES)) -> None:
    """Make the node names resolve to 127.0.0.1 by adding one marked line to /etc/hosts."""
    text = HOSTS_FILE.read_text() if HOSTS_FILE.exists() else ""
    known = set()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        known.update(words[1:])
    todo = [n for n in names if n not in known]
    if not todo:
        return
    sep = "" if not text or text.endswith("\n") else "\n"
    with HOSTS_FILE.open("a", encoding="utf-8") as fh:
        fh.write(f"{sep}127.0.0.1 {' '.join(todo)}  {HOSTS_MARKER}\n")


def _prepare_munge(layout: Layout) -> None:
    import pwd
    try:
        user = pwd.getpwnam("munge")
    except KeyError:
        raise RunError("the munge user does not exist; install the munge package (apt-get install munge)") from None
    m = layout.munge_dir
    m.mkdir(parents=True, exist_ok=True)
    os.chown(m, user.pw_uid, user.pw_gid)
    # munged refuses directories that others can write; clients need to reach the socket
    m.chmod(0o755)
    if not layout.munge_key.exists():
        with open(layout.munge_key, "wb") as fh:
            fh.write(os.urandom(1024))
    os.chown(layout.munge_key, user.pw_uid, user.pw_gid)
    layout.munge_key.chmod(0o400)


def _prepare(layout: Layout, port: int) -> bool:
    """Create the state directory and configuration; returns True when the configuration changed."""
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.root.chmod(0o755)
    for d in (layout.state_dir, layout.run_dir, layout.log_dir, *(layout.spool_root / n for n in NODES)):
        d.mkdir(parents=True, exist_ok=True)
    _make_devices(layout)
    _prepare_munge(layout)
    hostname = socket.gethostname().split(".")[0]
    changed = _write_if_changed(layout.slurm_conf, slurm_conf_text(layout, hostname, port))
    changed |= _write_if_changed(layout.gres_conf, gres_conf_text(layout))
    return changed


def _start(d: Daemon, layout: Layout) -> int:
    """Start one daemon (it forks into the background) and return its verified PID."""
    if shutil.which(d.program) is None and not Path("/usr/sbin", d.program).exists():
        raise RunError(f"{d.program} is not installed; run `up` as root so it can install "
                       f"{' '.join(PACKAGES['slurm'])}")
    d.pid_file.unlink(missing_ok=True)
    start_log = layout.log_dir / f"start-{d.name.replace(' ', '-')}.log"
    child_env = {**os.environ, "SLURM_CONF": str(layout.slurm_conf),
                 "PATH": f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}"}
    with open(start_log, "w", encoding="utf-8") as out:
        proc = subprocess.run(list(d.argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              env=child_env, cwd=layout.root, timeout=60)
    if proc.returncode != 0:
        raise RunError(f"{d.name} did not start (exit {proc.returncode}); read {start_log} and {d.log_file}",
                       argv=list(d.argv), returncode=proc.returncode, stderr=start_log.read_text())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pid = _running_pid(d)
        if pid is not None:
            return pid
        time.sleep(0.1)
    raise RunError(f"{d.name} started but wrote no PID file {d.pid_file} within 15 s; read {d.log_file}",
                   argv=list(d.argv))


def _node_states(layout: Layout) -> dict[str, str]:
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": str(layout.slurm_conf)}, timeout=30)
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1].lower()
    return states


def _wait_idle(layout: Layout, timeout: float) -> None:
    env_ = {**os.environ, "SLURM_CONF": str(layout.slurm_conf)}
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    resumed: set[str] = set()
    while time.monotonic() < deadline:
        states = _node_states(layout)
        usable = ("idle", "mixed", "allocated", "completing")
        if all(states.get(n, "").rstrip("*~#!%$@^-") in usable for n in NODES):
            return
        for node, state in states.items():
            if node in NODES and node not in resumed and any(w in state for w in ("down", "drain")):
                # a node that was down before (for example after `down`) stays down until resumed
                subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"],
                               capture_output=True, text=True, env=env_, timeout=30)
                resumed.add(node)
        time.sleep(0.5)
    logs = ", ".join(str(layout.log_dir / f"slurmd.{n}.log") for n in NODES)
    raise RunError(f"the practice cluster's nodes did not become idle within {timeout:.0f} s "
                   f"(sinfo says: {states or 'nothing'}); read {layout.log_dir / 'slurmctld.log'} and {logs}")


def up(directory: Path | None = None, *, port: int | None = None, install: bool = True,
       timeout: float = START_TIMEOUT, image: bool = True) -> ClusterStatus:
    """Bring the practice cluster up (idempotent) and return its status once both nodes are idle.

    ``directory`` defaults to :func:`cluster_dir`, ``port`` (slurmctld's; the slurmds use the next two)
    to :func:`cluster_port`.
    Installs missing packages when ``install`` is true, (re)writes the configuration, starts whichever
    daemons are not running and restarts all of them if the configuration changed while they ran.
    When no Slurm daemon was running, the jobs the controller recovers from its saved state are cancelled and
    the processes of earlier jobs stopped: they died with the daemons, and Slurm would otherwise hold their
    nodes until it noticed (minutes) or run them a second time.
    With ``image`` (the default) it also makes sure the Charliecloud trainer image the ``local``
    examples run in exists (:func:`hpcwidgets.run.images.ensure_trainer_image`; built once, ~1-2 min).
    """
    layout = Layout(directory or cluster_dir())
    _require_root("up")
    if install:
        install_packages()
    changed = _prepare(layout, cluster_port() if port is None else port)
    _ensure_hosts()
    if changed and not status(layout.root).stopped:
        down(layout.root)
    # no Slurm daemon runs: every job the controller recovers from its state files died with them
    fresh = all(_running_pid(d) is None for d in daemons(layout) if d.program != "munged")
    if fresh:
        _stop_all(_stray_steps(layout))
    for d in daemons(layout):
        if _running_pid(d) is None:
            if d.program == "munged":
                layout.munge_socket.unlink(missing_ok=True)
            _start(d, layout)
    _wait_idle(layout, timeout)
    if fresh:
        _cancel_all_jobs(layout)
    if image:
        from .images import ensure_trainer_image
        ensure_trainer_image(progress=lambda line: print(f"trainer image: {line}", file=sys.stderr, flush=True))
    return status(layout.root)


# ---------------------------------------------------------------------------------------------------
# down

def _cancel_all_jobs(layout: Layout) -> None:
    env_ = {**os.environ, "SLURM_CONF": str(layout.slurm_conf)}
    proc = subprocess.run(["squeue", "-h", "-o", "%A"], capture_output=True, text=True, env=env_, timeout=30)
    ids = sorted({line.strip() for line in proc.stdout.splitlines() if line.strip()})
    if proc.returncode != 0 or not ids:
        return
    subprocess.run(["scancel", *ids], capture_output=True, text=True, env=env_, timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        proc = subprocess.run(["squeue", "-h", "-t", "PD,R,CG,S", "-o", "%A"], capture_output=True, text=True,
                              env=env_, timeout=30)
        if proc.returncode != 0 or not proc.stdout.strip():
            return
        time.sleep(0.3)


def down(directory: Path | None = None) -> ClusterStatus:
    """Stop exactly the daemons this cluster started (idempotent); running jobs are cancelled first."""
    layout = Layout(directory or cluster_dir())
    _require_root("down")
    ds = daemons(layout)
    if any(_running_pid(d) is not None for d in ds if d.name == "slurmctld"):
        _cancel_all_jobs(layout)
    for d in reversed(ds):
        pid = _running_pid(d)
        if pid is not None:
            _stop(pid)
        # a stale PID file (its PID gone or reused by another program) is dropped; that process is left alone
        d.pid_file.unlink(missing_ok=True)
    _stop_all(_stray_steps(layout))
    return status(layout.root)


# ---------------------------------------------------------------------------------------------------
# command line

def main(argv: list[str] | None = None) -> int:
    """``practice-cluster up|down|status|env``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="hpcwidgets practice-cluster",
        description="A two-node Slurm cluster (n1, n2; 2 CPUs and 2 fake GPUs each) on this machine. "
                    f"State lives in ${DIR_ENV} or {DEFAULT_DIR}.")
    parser.add_argument("action", choices=["up", "down", "status", "env"],
                        help="up: install if needed and start; down: stop; status: show daemons and nodes; "
                             "env: print the export line for your shell")
    parser.add_argument("--no-install", action="store_true", help="up: fail instead of installing packages")
    parser.add_argument("--no-image", action="store_true",
                        help="up: skip making the Charliecloud trainer image the local examples run in")
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            st = up(install=not args.no_install, image=not args.no_image)
            print(st)
            if not args.no_image:
                from .images import TRAINER_IMAGE, read_marker
                marker = read_marker(TRAINER_IMAGE) or {}
                print(f"trainer image: {TRAINER_IMAGE} (torch {marker.get('packages', {}).get('torch', '?')})")
        elif args.action == "down":
            st = down()
            print(st)
        elif args.action == "status":
            st = status()
            print(st)
            return 0 if st.running else 3
        else:
            for key, value in env().items():
                print(f"export {key}={shlex.quote(value)}")
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
