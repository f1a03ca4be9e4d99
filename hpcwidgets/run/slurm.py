"""Submit a batch script to Slurm and follow the job: state, wait, cancel, output, info.

Every call runs a Slurm client program with an argument vector (never a shell string) in the environment
:func:`hpcwidgets.run.practice_cluster.client_env` returns: your own ``SLURM_CONF`` when set, else the
practice cluster's configuration when it is up, else the system's.

>>> job = submit("#!/bin/bash\\n#SBATCH -t 1\\necho hello\\n")     # doctest: +SKIP
>>> job.wait(timeout=60)                                             # doctest: +SKIP
'COMPLETED'
>>> job.output(tail=1)                                               # doctest: +SKIP
'hello\\n'

Rejections by sbatch become :class:`~hpcwidgets.errors.RunError` whose message says what to change
(:func:`explain_sbatch_error`); sbatch's own words follow it.

The helpers :func:`normalize_state`, :func:`resolve_output_pattern`, :func:`script_directives` and
:func:`explain_sbatch_error` are pure (no I/O).
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..errors import RunError
from .practice_cluster import client_env

#: states after which a job never changes again
FINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
    "DEADLINE", "REVOKED", "SPECIAL_EXIT",
})
#: every state name Slurm reports, keyed by squeue's short code
STATE_CODES: dict[str, str] = {
    "PD": "PENDING", "R": "RUNNING", "CG": "COMPLETING", "CF": "CONFIGURING", "CD": "COMPLETED",
    "F": "FAILED", "CA": "CANCELLED", "TO": "TIMEOUT", "OOM": "OUT_OF_MEMORY", "NF": "NODE_FAIL",
    "PR": "PREEMPTED", "BF": "BOOT_FAIL", "DL": "DEADLINE", "RV": "REVOKED", "SE": "SPECIAL_EXIT",
    "S": "SUSPENDED", "ST": "STOPPED", "RQ": "REQUEUED", "RH": "REQUEUE_HOLD", "RF": "REQUEUE_FED",
    "RD": "RESV_DEL_HOLD", "RS": "RESIZING", "SI": "SIGNALING", "SO": "STAGE_OUT",
}
_STATE_NAMES = frozenset(STATE_CODES.values())

#: seconds any single Slurm client call may take before it counts as hung
CALL_TIMEOUT = 60.0

#: a line of ``sbatch --parsable``: ``ID`` or ``ID;CLUSTER``
_PARSABLE = re.compile(r"(\d+(?:_\d+)?)(?:;\S+)?")
#: sbatch's own sentence (without --parsable, or printed again by a site wrapper); a federation adds "on cluster X"
_SUBMITTED = re.compile(r"\bSubmitted batch job (\d+)\b")
#: what to do when sbatch took the job but its id could not be read
UNREAD_ID_FIX = "check `squeue -u $USER` before submitting again: the job is probably queued already"


# ---------------------------------------------------------------------------------------------------
# pure helpers

def normalize_state(text: str) -> str:
    """One canonical upper-case state name from squeue/sacct/scontrol text.

    ``"CANCELLED by 0"`` → ``CANCELLED``; ``"CA"`` → ``CANCELLED``; sacct's truncated ``"OUT_OF_ME+"`` →
    ``OUT_OF_MEMORY``; empty text → ``UNKNOWN``. Unrecognised words are returned upper-cased.
    """
    words = text.strip().split()
    if not words:
        return "UNKNOWN"
    word = words[0].upper()
    if word in _STATE_NAMES:
        return word
    if word in STATE_CODES:
        return STATE_CODES[word]
    if word.endswith("+"):  # sacct marks a value cut to its column width (or "CANCELLED by UID") with '+'
        stem = word.rstrip("+")
        matches = [name for name in _STATE_NAMES if name.startswith(stem)]
        if stem and len(matches) == 1:
            return matches[0]
        if stem in _STATE_NAMES:
            return stem
    return word


_PATTERN = re.compile(r"%(\d*)([jxAauNnst%])")


def resolve_output_pattern(pattern: str, *, job_id: str | int, job_name: str = "", user: str = "",
                           node: str = "", array_job_id: str | int | None = None,
                           array_task_id: str | int | None = None, cwd: str | os.PathLike | None = None) -> str:
    """Expand an sbatch ``--output``/``--error`` file name pattern the way Slurm does for the batch step.

    ``%j`` job id, ``%x`` job name, ``%A`` array master job id (the job id for a plain job), ``%a`` array
    task id (4294967294 for a plain job, as Slurm writes), ``%u`` user name, ``%N`` host name of the first
    node, ``%n`` node index (0), ``%s`` step (``batch``), ``%t`` task (0), ``%%`` a literal ``%``. A number
    after ``%`` pads numeric values with zeros (``%5j`` → ``00042``). A pattern containing a backslash is
    not expanded; its backslashes are dropped. A relative result is joined to ``cwd`` when given (the job's
    working directory). Unknown ``%`` sequences are kept as written.
    """
    job_id = str(job_id)
    if "\\" in pattern:
        result = pattern.replace("\\", "")
    else:
        values = {
            "j": job_id,
            "x": job_name,
            "A": str(array_job_id) if array_job_id is not None else job_id,
            "a": str(array_task_id) if array_task_id is not None else "4294967294",
            "u": user,
            "N": node,
            "n": "0",
            "s": "batch",
            "t": "0",
        }

        def one(m: re.Match[str]) -> str:
            width, key = m.group(1), m.group(2)
            if key == "%":
                return "%"
            value = values[key]
            if width and value.isdigit():
                return value.zfill(int(width))
            return value

        result = _PATTERN.sub(one, pattern)
    if cwd is not None and not os.path.isabs(result):
        return os.path.join(os.fspath(cwd), result)
    return result


def script_directives(script: str) -> list[str]:
    """The option words of a script's ``#SBATCH`` lines, read the way sbatch reads them.

    Reading stops at the first line that is neither blank nor a comment; later ``#SBATCH`` lines are
    ignored by sbatch and so here. A trailing ``# comment`` on a directive line is dropped.
    """
    words: list[str] = []
    for number, line in enumerate(script.splitlines()):
        stripped = line.strip()
        if number == 0 and stripped.startswith("#!"):
            continue
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        if not stripped.startswith("#SBATCH"):
            continue
        rest = stripped[len("#SBATCH"):]
        if rest and not rest[0].isspace():
            continue  # "#SBATCHX" is a comment, not a directive
        try:
            words += shlex.split(rest, comments=True)
        except ValueError:
            words += rest.split("#", 1)[0].split()
    return words


def option_value(words: list[str], long: str, short: str = "") -> str | None:
    """The value of the last ``--long=V``/``--long V``/``-s V``/``-sV`` in ``words``, or None."""
    found = None
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if w.startswith(long + "="):
            found = w[len(long) + 1:]
        elif w == long or (short and w == short):
            if nxt is not None:
                found = nxt
                i += 1
        elif short and w.startswith(short) and not w.startswith("--") and len(w) > len(short):
            found = w[len(short):]
        i += 1
    return found


_EXPLANATIONS: list[tuple[str, str]] = [
    ("requested node configuration is not available",
     "the job asks for more GPUs/CPUs/memory per node than any node in {partition} has; lower --gres/--gpus*, "
     "-c/--cpus-per-task, --ntasks-per-node or --mem (see the nodes with: sinfo -N -o '%N %c %m %G')"),
    ("requested time limit is invalid",
     "the --time limit is longer than {partition} allows; shorten -t/--time (see the limit with: sinfo -o '%P %l')"),
    ("node count specification invalid",
     "the job asks for more nodes (-N/--nodes) than {partition} has; lower -N"),
    ("invalid partition",
     "the partition named with -p/--partition does not exist; list the partitions with: sinfo -s"),
    ("invalid generic resource",
     "the --gres value names a resource this cluster does not have; write it as gpu:N or gpu:TYPE:N "
     "(see what exists with: sinfo -o '%P %G')"),
    ("does not look like a batch script",
     "the script's first line must be an interpreter line such as #!/bin/bash"),
    ("dos line breaks",
     "the script has Windows (CRLF) line endings; convert it with dos2unix or save it with Unix line endings"),
    ("mutually exclusive",
     "two options that exclude each other are both set (for example --mem with --mem-per-cpu); keep one"),
    ("invalid time limit specification",
     "the --time value is malformed; use M, M:S, H:M:S, D-H, D-H:M or D-H:M:S"),
    ("invalid account",
     "the -A/--account value is not an account you may use; ask your site which accounts you have"),
    ("invalid qos",
     "the -q/--qos value is not a QOS you may use; remove it or ask your site which QOS exist"),
    ("unable to contact slurm controller",
     "Slurm's controller cannot be reached; check SLURM_CONF, or start the practice cluster with: "
     "hpcwidgets practice-cluster up"),
    ("unrecognized option",
     "sbatch does not know one of the options; check its spelling (sbatch --help lists them)"),
    ("invalid option",
     "sbatch does not know one of the options; check its spelling (sbatch --help lists them)"),
]


def explain_sbatch_error(stderr: str, partition: str = "") -> str:
    """What to change, given sbatch's error text; empty when the error is not one this function knows."""
    text = stderr.lower()
    where = f"partition {partition}" if partition else "the partition"
    for needle, fix in _EXPLANATIONS:
        if needle in text:
            return fix.format(partition=where)
    if "memory specification can not be satisfied" in text:
        return f"the job asks for more memory (--mem) per node than any node in {where} has; lower --mem"
    return ""


def read_job_id(output: str) -> str:
    """The job id in what a successful ``sbatch`` printed, or "" when none can be read.

    ``sbatch --parsable`` prints ``ID`` or ``ID;CLUSTER``; without it, or through a site's wrapper that adds
    notices before or after, the id sits in a ``Submitted batch job ID`` line. The last line that is the
    parsable form wins (a wrapper's notice comes first), else the last ``Submitted batch job`` sentence.
    Looser patterns are not tried: a notice such as "job 3 of 10" must not become the id.
    """
    lines = [line.strip() for line in output.splitlines()]
    for line in reversed(lines):
        m = _PARSABLE.fullmatch(line)
        if m:
            return m.group(1)
    found = _SUBMITTED.findall(output)
    return found[-1] if found else ""


# ---------------------------------------------------------------------------------------------------
# running client programs

def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    out = client_env()
    if extra:
        out.update({str(k): str(v) for k, v in extra.items()})
    return out


def _run(argv: list[str], *, env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
         stdin: str | None = None, timeout: float = CALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    full_env = _env(env)
    conf = full_env.get("SLURM_CONF", "")
    if conf and not os.path.isfile(conf):
        # Slurm's clients would retry for a minute before saying so
        raise RunError(f"SLURM_CONF names {conf!r}, which does not exist; point it at your cluster's "
                       "slurm.conf, unset it, or start the practice cluster with: hpcwidgets practice-cluster up",
                       argv=argv)
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=full_env, cwd=cwd,
                              timeout=timeout)
    except FileNotFoundError:
        raise RunError(f"{argv[0]} is not installed or not on PATH; load your site's Slurm module, or start "
                       "the practice cluster with: hpcwidgets practice-cluster up", argv=argv) from None
    except subprocess.TimeoutExpired as exc:
        raise RunError(f"{argv[0]} did not answer within {timeout:.0f} s; the Slurm controller may be down "
                       "(check SLURM_CONF and `scontrol ping`)", argv=argv,
                       stderr=str(exc.stderr or ""), timed_out=True) from None


def _failed(what: str, argv: list[str], proc: subprocess.CompletedProcess[str], fix: str = "") -> RunError:
    said = (proc.stderr or proc.stdout).strip()
    head = f"{what}: {fix}" if fix else f"{what} (exit {proc.returncode})"
    return RunError(f"{head}\n{argv[0]} said: {said}" if said else head, argv=argv,
                    returncode=proc.returncode, stderr=proc.stderr)


def _script_source(script: str | os.PathLike) -> tuple[str, str | None]:
    """(script text, path or None). Text is recognised by a newline or a leading ``#!``."""
    if isinstance(script, os.PathLike):
        path = os.fspath(script)
    elif "\n" in script or script.startswith("#!"):
        return script, None
    else:
        path = script
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace"), path
    except FileNotFoundError:
        raise RunError(f"no job script at {path!r}; pass an existing file or the script's text "
                       "(text must start with #! or contain a newline)") from None
    except IsADirectoryError:
        raise RunError(f"{path!r} is a directory, not a job script") from None


def _default_partition(env: Mapping[str, str] | None) -> str:
    proc = _run(["sinfo", "-h", "-o", "%P"], env=env)
    for line in proc.stdout.split():
        if line.endswith("*"):
            return line.rstrip("*")
    return ""


def _sbatch(script: str | os.PathLike, extra: list[str], env: Mapping[str, str] | None,
            cwd: str | os.PathLike | None) -> tuple[subprocess.CompletedProcess[str], list[str], str, str | None]:
    text, path = _script_source(script)
    argv = ["sbatch", *extra]
    if path is not None:
        argv.append(path)
    proc = _run(argv, env=env, cwd=cwd, stdin=None if path is not None else text)
    return proc, argv, text, path


def _rejection(proc: subprocess.CompletedProcess[str], argv: list[str], text: str,
               env: Mapping[str, str] | None) -> RunError:
    partition = option_value(script_directives(text), "--partition", "-p") or ""
    if not partition and "unable to contact" not in proc.stderr.lower():
        try:
            partition = _default_partition(env)
        except RunError:
            partition = ""
    fix = explain_sbatch_error(proc.stderr, partition)
    return _failed("sbatch rejected the job", argv, proc, fix)


# ---------------------------------------------------------------------------------------------------
# jobs

@dataclass(frozen=True)
class JobInfo:
    """What Slurm knows about a job: from ``scontrol show job`` while the controller remembers it, later
    from the job completion log (``sacct -c``), which lacks ``stdout`` and ``work_dir``."""

    id: str
    name: str
    state: str
    partition: str
    elapsed: str  # [D-]HH:MM:SS
    nodes: str  # Slurm node list expression, e.g. "n[1-2]"; "" before the job starts
    exit_code: str  # "EXIT:SIGNAL"
    stdout: str = ""
    work_dir: str = ""


@dataclass(frozen=True)
class Job:
    """A submitted batch job. ``Job("123")`` follows any job; :func:`submit` also records the script, its
    path and working directory so :meth:`output_path` still works after Slurm forgets the job."""

    id: str
    script: str = field(default="", repr=False)
    script_path: str | None = None
    cwd: str = ""
    env: Mapping[str, str] | None = field(default=None, repr=False, compare=False)
    #: directories :func:`submit` created for the job's ``--output``/``--error`` files
    created_dirs: tuple[str, ...] = ()
    #: what sbatch printed when the job id could not be read from it (``id`` is then "")
    sbatch_output: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", str(self.id).strip())

    @property
    def missing_id_message(self) -> str:
        """"" for a job with an id; else what to tell the person: sbatch took the job, its id is unknown."""
        if self.id:
            return ""
        said = self.sbatch_output.strip()
        return ("sbatch accepted the job (exit status 0), but its job id could not be read from what it printed"
                + (f" ({said!r})" if said else " (nothing)") + f"; {UNREAD_ID_FIX}")

    def _known_id(self) -> str:
        if not self.id:
            raise RunError(f"this job cannot be followed: {self.missing_id_message}; then use Job(ID)")
        return self.id

    # -- state ------------------------------------------------------------------------------------
    def state(self) -> str:
        """The job's normalised state (see :data:`STATE_CODES`); ``RunError`` if Slurm does not know it."""
        argv = ["squeue", "-h", "-t", "all", "-j", self._known_id(), "-o", "%T"]
        proc = _run(argv, env=self.env)
        if proc.returncode == 0 and proc.stdout.strip():
            return _combine([normalize_state(line) for line in proc.stdout.splitlines() if line.strip()])
        if proc.returncode != 0 and "invalid job id" not in proc.stderr.lower():
            raise _failed(f"squeue could not report job {self.id}", argv, proc)
        argv = ["sacct", "-c", "-n", "-X", "-P", "-j", self.id, "-o", "State"]
        proc = _run(argv, env=self.env)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode == 0 and lines:
            return normalize_state(lines[-1])
        raise _failed(f"Slurm does not know job {self.id}", argv, proc,
                      "neither squeue nor the job completion log (sacct -c) lists it; check the job id "
                      "and that SLURM_CONF names the cluster it ran on")

    def wait(self, timeout: float = 600.0, poll: float = 0.5) -> str:
        """Poll until the job reaches a final state and return it; ``RunError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        state = self.state()
        while state not in FINAL_STATES:
            if time.monotonic() >= deadline:
                raise RunError(f"job {self.id} is still {state} after {timeout:g} s; wait longer, or cancel it "
                               f"with: scancel {self.id}")
            time.sleep(poll)
            state = self.state()
        return state

    def cancel(self) -> None:
        """Ask Slurm to cancel the job (``scancel``); ``RunError`` if it refuses."""
        argv = ["scancel", self._known_id()]
        proc = _run(argv, env=self.env)
        if proc.returncode != 0:
            raise _failed(f"scancel refused to cancel job {self.id}", argv, proc)

    # -- information ------------------------------------------------------------------------------
    def _scontrol(self) -> dict[str, str] | None:
        argv = ["scontrol", "show", "job", self._known_id()]
        proc = _run(argv, env=self.env)
        if proc.returncode != 0:
            if "invalid job id" in proc.stderr.lower():
                return None
            raise _failed(f"scontrol could not show job {self.id}", argv, proc)
        return parse_scontrol(proc.stdout)

    def info(self) -> JobInfo:
        """Name, state, partition, elapsed time, node list, exit code (and stdout path while known)."""
        rec = self._scontrol()
        if rec is not None:
            return JobInfo(id=rec.get("JobId", self.id), name=rec.get("JobName", ""),
                           state=normalize_state(rec.get("JobState", "")), partition=rec.get("Partition", ""),
                           elapsed=rec.get("RunTime", ""), nodes=_nodes(rec.get("NodeList", "")),
                           exit_code=rec.get("ExitCode", ""), stdout=rec.get("StdOut", ""),
                           work_dir=rec.get("WorkDir", ""))
        fields = ["JobID", "JobName", "State", "Partition", "Elapsed", "NodeList", "ExitCode"]
        argv = ["sacct", "-c", "-n", "-X", "-P", "-j", self.id, "-o", ",".join(fields)]
        proc = _run(argv, env=self.env)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode != 0 or not lines:
            raise _failed(f"Slurm does not know job {self.id}", argv, proc,
                          "neither scontrol nor the job completion log (sacct -c) lists it")
        values = dict(zip(fields, lines[-1].split("|")))
        return JobInfo(id=values["JobID"], name=values["JobName"], state=normalize_state(values["State"]),
                       partition=values["Partition"], elapsed=values["Elapsed"], nodes=_nodes(values["NodeList"]),
                       exit_code=values["ExitCode"])

    def output_path(self) -> Path:
        """Where the job's standard output goes.

        From ``scontrol show job`` while the controller remembers the job; afterwards from the script's
        ``--output`` pattern (default ``slurm-%j.out``) resolved against the submission directory.
        """
        rec = self._scontrol()
        if rec is not None and rec.get("StdOut"):
            out = rec["StdOut"]
            if "%" in out:
                out = self._resolve(out, rec)
            return Path(out)
        return Path(self._resolve(None, None))

    def _resolve(self, pattern: str | None, rec: dict[str, str] | None) -> str:
        words = script_directives(self.script)
        array = option_value(words, "--array", "-a")
        if pattern is None:
            pattern = option_value(words, "--output", "-o") or ("slurm-%A_%a.out" if array else "slurm-%j.out")
        base, _, task = self.id.partition("_")
        if rec is not None:
            name = rec.get("JobName", "")
            node = _first_node(rec.get("BatchHost", "") or rec.get("NodeList", ""))
            workdir = rec.get("WorkDir", "") or self.cwd
            base = rec.get("ArrayJobId", base) if rec.get("ArrayJobId") else base
            task = rec.get("ArrayTaskId", task) if rec.get("ArrayTaskId") else task
        else:
            name = option_value(words, "--job-name", "-J") or (
                os.path.basename(self.script_path) if self.script_path else "sbatch")
            node = ""
            workdir = option_value(words, "--chdir", "-D") or self.cwd or os.getcwd()
            if not os.path.isabs(workdir):
                workdir = os.path.join(self.cwd or os.getcwd(), workdir)
            if "%N" in pattern:
                try:
                    node = _first_node(self.info().nodes)
                except RunError:
                    node = ""
        if node and "%N" in pattern:
            node = self._host_name(node)
        # an array task's own job id is known only to the controller; the fallback uses the array's id
        job_id = rec.get("JobId", base) if rec is not None else base
        return resolve_output_pattern(pattern, job_id=job_id, job_name=name, user=_user_name(), node=node,
                                      array_job_id=base if task else None,
                                      array_task_id=task or None, cwd=workdir)

    def _host_name(self, node: str) -> str:
        """A node's host name (what %N expands to), which can differ from its Slurm node name."""
        argv = ["scontrol", "show", "node", node]
        proc = _run(argv, env=self.env)
        if proc.returncode != 0:
            return node
        return parse_scontrol(proc.stdout).get("NodeHostName", node) or node

    def output(self, tail: int | None = None) -> str:
        """The job's standard output so far (the last ``tail`` lines when given)."""
        path = self.output_path()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise RunError(f"job {self.id} has no output file at {path} yet; a PENDING job writes none "
                           "(check job.state()), and a job whose --output directory is missing writes none "
                           "at all") from None
        if tail is None:
            return text
        lines = text.splitlines(keepends=True)
        return "".join(lines[-tail:]) if tail > 0 else ""


def _combine(states: list[str]) -> str:
    """One state for a job that squeue lists in several lines (an array)."""
    active = [s for s in states if s not in FINAL_STATES]
    if active:
        return "RUNNING" if "RUNNING" in active else active[0]
    bad = [s for s in states if s != "COMPLETED"]
    return bad[0] if bad else "COMPLETED"


def _nodes(value: str) -> str:
    return "" if value in ("(null)", "None assigned") else value


def _first_node(nodelist: str) -> str:
    """First host of a node list expression like ``n[1-2],gpu7`` (pure: no scontrol call)."""
    nodelist = _nodes(nodelist)
    if not nodelist:
        return ""
    m = re.match(r"([^,\[]+)(?:\[(\d+)[^\]]*\])?", nodelist)
    if not m:
        return nodelist
    return m.group(1) + (m.group(2) or "")


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return os.environ.get("USER", "")


#: keys whose value runs to the end of the line in ``scontrol show job`` (they may contain spaces)
_LINE_KEYS = ("WorkDir", "StdOut", "StdErr", "StdIn", "Command", "Comment", "Reason", "AdminComment")


def parse_scontrol(text: str) -> dict[str, str]:
    """``Key=Value`` pairs of ``scontrol show job`` output (multi-line form)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        key = stripped.split("=", 1)[0]
        if key in _LINE_KEYS and "=" in stripped:
            out[key] = stripped.split("=", 1)[1]
            continue
        for word in stripped.split():
            if "=" in word:
                k, v = word.split("=", 1)
                out.setdefault(k, v)
    return out


# ---------------------------------------------------------------------------------------------------
# submission

def log_directories(script: str, cwd: str | os.PathLike | None = None) -> list[str]:
    """The directories a job's ``--output``/``--error`` files go to, as absolute paths.

    Relative names are taken from the job's working directory (``--chdir``, itself relative to the
    submission directory ``cwd``). A directory whose name holds a ``%`` pattern (``logs/%j/``) or a
    backslash is left out: it is only known once the job has an id.
    """
    words = script_directives(script)
    base = os.path.abspath(os.fspath(cwd)) if cwd is not None else os.getcwd()
    chdir = option_value(words, "--chdir", "-D")
    if chdir and "%" not in chdir:
        base = os.path.join(base, chdir)
    out: list[str] = []
    for long, short in (("--output", "-o"), ("--error", "-e")):
        value = option_value(words, long, short)
        folder = os.path.dirname(value) if value else ""
        if not folder or "%" in folder or "\\" in folder:
            continue
        folder = os.path.normpath(os.path.join(base, folder))
        if folder not in out:
            out.append(folder)
    return out


def _make_log_directories(script: str, cwd: str | os.PathLike | None) -> tuple[str, ...]:
    made = []
    for folder in log_directories(script, cwd):
        if os.path.isdir(folder):
            continue
        try:
            os.makedirs(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise RunError(f"the job's log goes to {folder}/, but {folder} is a file; "
                               "change --output/--error or move the file away") from None
        except OSError as exc:
            raise RunError(f"the job's log goes to {folder}/, which does not exist and cannot be created "
                           f"({exc.strerror}); Slurm does not create it, so the job would fail at launch "
                           "without a log: create it, or change --output/--error") from None
        else:
            made.append(folder)
    return tuple(made)


def submit(script: str | os.PathLike, *, env: Mapping[str, str] | None = None,
           cwd: str | os.PathLike | None = None, make_log_dirs: bool = True) -> Job:
    """Submit a batch script (its text, or a path) with ``sbatch --parsable`` and return the :class:`Job`.

    Text is passed on standard input; a path is passed as an argument. ``env`` adds variables to the
    environment sbatch runs in (and so, with sbatch's default ``--export=ALL``, to the job); ``cwd`` is the
    submission directory, where relative ``--output`` paths land. ``RunError`` says what to change when
    sbatch rejects the job.

    Slurm opens the ``--output``/``--error`` files before the script's first line runs and does not
    create their directory: when it is missing the job fails at launch and leaves no log. So, unless
    ``make_log_dirs`` is false, missing log directories are created first; ``Job.created_dirs`` lists them.

    The id is read with :func:`read_job_id`. When sbatch exits 0 but prints no id that can be read (an odd
    site wrapper), the job was still submitted: the returned Job has ``id == ""`` and ``Job.missing_id_message``
    says so and what to check; it cannot be followed.
    """
    text, _ = _script_source(script)
    created = _make_log_directories(text, cwd) if make_log_dirs else ()
    proc, argv, text, path = _sbatch(script, ["--parsable"], env, cwd)
    if proc.returncode != 0:
        raise _rejection(proc, argv, text, env)
    # exit status 0: the job is queued whatever sbatch printed, so no error from here on (a caller that
    # retried after an error would submit it twice)
    job_id = read_job_id(proc.stdout) or read_job_id(proc.stderr)
    where = os.path.abspath(os.fspath(cwd)) if cwd is not None else os.getcwd()
    said = "" if job_id else "\n".join(t.strip() for t in (proc.stdout, proc.stderr) if t.strip())
    return Job(job_id, script=text, script_path=path, cwd=where, env=dict(env) if env else None,
               created_dirs=created, sbatch_output=said)


def test_only(script: str | os.PathLike, *, env: Mapping[str, str] | None = None,
              cwd: str | os.PathLike | None = None) -> str:
    """Ask sbatch whether and when the job could run (``--test-only``; nothing is submitted).

    Returns sbatch's answer (``"sbatch: Job 12 to start at … on nodes n1 in partition debug"``);
    ``RunError`` with the fix and sbatch's words when the job could never run.
    """
    proc, argv, text, _ = _sbatch(script, ["--test-only"], env, cwd)
    if proc.returncode != 0:
        raise _rejection(proc, argv, text, env)
    return (proc.stderr.strip() or proc.stdout.strip())


# pytest collects module-level names starting with "test"; this one is API, not a test
test_only.__test__ = False  # type: ignore[attr-defined]


def available(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``sbatch`` is installed and a Slurm controller answers (``sinfo`` within 15 s)."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    try:
        proc = _run(["sinfo", "-h", "-o", "%P"], env=env, timeout=15)
    except RunError:
        return False
    return proc.returncode == 0


def partitions(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The names of every partition the reachable Slurm has (``sinfo --all``, hidden ones too), so a form can
    say before submitting that its job names one this cluster does not have; ``RunError`` when sinfo fails."""
    argv = ["sinfo", "--all", "-h", "-o", "%R"]
    proc = _run(argv, env=env, timeout=15)
    if proc.returncode != 0:
        raise _failed("sinfo could not list the partitions", argv, proc)
    return frozenset(line.strip() for line in proc.stdout.splitlines() if line.strip())
