"""Run a container command model on this machine and stream its output as it arrives.

:func:`run_container` executes exactly the argument vector the render layer shows
(:func:`hpcwidgets.spec.argv.argv`) for a :class:`~hpcwidgets.spec.charliecloud.ChRun` or an
:class:`~hpcwidgets.spec.apptainer.ApptainerRun`, without a shell:

* the model is validated first (:class:`~hpcwidgets.errors.ValidationError` lists every problem);
* ``$NAME`` / ``${NAME}`` references in values were written for a shell, so they are expanded here from
  the environment the program gets, with the same meaning as in a rendered script
  (:func:`hpcwidgets.render.quote.expand`; ``\\$`` stays a literal dollar). Shell text kept verbatim from a
  parsed script (:class:`~hpcwidgets.spec.Verbatim`, e.g. ``$(pwd)``) cannot run without a shell and is
  refused;
* the environment is this process's, plus the model's environment fields (``APPTAINER_CACHEDIR``, …),
  plus ``env``; ``USER`` is set when missing (ch-run refuses to start without it) and
  ``PYTHONUNBUFFERED=1`` unless set, so Python programs in the container print lines as they go;
* standard output and standard error are read line by line as they arrive: each line goes to
  ``on_line`` (or is printed) and is collected;
* the program runs in a session of its own, so a timeout (or an interrupt) stops it and everything it
  started.

>>> from hpcwidgets.spec.charliecloud import ChRun
>>> run = run_container(ChRun(image="/var/tmp/hpcw-images/trainer",
...                           command=("python", "-c", "print(1 + 1)")))      # doctest: +SKIP
2
>>> run.returncode, run.output                                               # doctest: +SKIP
(0, '2\\n')
"""

from __future__ import annotations

import os
import pwd
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, IO, Mapping

from ..errors import RunError
from ..render.quote import expand, join
from ..spec.argv import argv as model_argv
from ..spec.argv import env_assignments
from ..spec._words import Verbatim
from ..spec.apptainer import ApptainerRun
from ..spec.charliecloud import ChRun

#: lines of output quoted in an error message
TAIL_LINES = 20
#: seconds a stopped program gets to exit after SIGTERM before SIGKILL
KILL_GRACE = 5.0

#: what to do when a runtime is not installed, by program name
_INSTALL_HINTS = {
    "ch-run": "ch-run is not installed: apt-get install charliecloud-runtime, or use the practice cluster "
              "(`hpcwidgets practice-cluster up` installs it)",
    "apptainer": "apptainer is not installed on this machine; run on your cluster (module load apptainer), "
                 "or use a ChRun model with Charliecloud here",
    "singularity": "singularity is not installed on this machine; run on your cluster (module load singularity "
                   "or apptainer), or use a ChRun model with Charliecloud here",
}


@dataclass(frozen=True)
class ContainerRun:
    """What one :func:`run_container` call ran and what it printed.

    ``argv`` is the vector executed (references expanded); ``output`` the text the program printed
    (standard output and standard error interleaved as they arrived, unless ``merge_stderr=False``, in
    which case ``output`` is standard output only and ``stderr`` holds the rest); ``seconds`` the wall time.
    """

    argv: tuple[str, ...]
    returncode: int
    output: str
    seconds: float
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_container(model: ChRun | ApptainerRun, *, on_line: Callable[[str], None] | None = None,
                  env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
                  timeout: float | None = None, check: bool = True, merge_stderr: bool = True) -> ContainerRun:
    """Run a ``ChRun`` or ``ApptainerRun`` model here, streaming its output line by line.

    ``on_line`` receives each line (without its trailing newline) as soon as the program prints it, in
    the calling thread; without it lines are written to ``sys.stdout`` (standard error lines to
    ``sys.stderr`` when ``merge_stderr=False``). ``env`` adds or replaces environment variables (its
    values are used as given, not expanded); ``cwd`` is the host directory to start in.

    Raises :class:`~hpcwidgets.errors.ValidationError` for an invalid model and
    :class:`~hpcwidgets.errors.RunError` when the runtime is missing, a value needs a shell, the program
    does not finish within ``timeout`` seconds (it is stopped, with everything it started), or, with
    ``check``, it exits with a non-zero status (the message quotes the last lines of output).
    """
    if not isinstance(model, (ChRun, ApptainerRun)):
        raise TypeError(f"run_container runs a ChRun or ApptainerRun model, not {type(model).__name__}; "
                        "build one with hpcwidgets.ChRun(...) or ApptainerRun(...)")
    model.validate()
    base = _base_env(env)
    words = model_argv(model)
    assignments = env_assignments(model)
    _refuse_verbatim(words, assignments)
    words = [expand(w, base) for w in words]
    child_env = dict(base)
    child_env.update({name: expand(value, base) for name, value in assignments})
    if env:
        child_env.update(env)
    if not child_env.get("USER"):
        child_env["USER"] = _user_name()
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    program = shutil.which(words[0], path=child_env.get("PATH", os.defpath))
    if program is None:
        raise RunError(_INSTALL_HINTS.get(os.path.basename(words[0]),
                                          f"{words[0]} is not installed on this machine (not found on PATH); "
                                          "install it or run this where it is"), argv=words)
    return _execute(words, program, child_env, cwd, timeout, check, merge_stderr, on_line)


# ---------------------------------------------------------------------------------------------------
# helpers

def _base_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment references expand from: this process's, with ``env`` on top."""
    base = dict(os.environ)
    if env:
        base.update(env)
    return base


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (some containers): ch-run only needs a non-empty USER
        return str(os.geteuid())


def _refuse_verbatim(words: list[str], assignments: list[tuple[str, str]]) -> None:
    shell_text = [w for w in words if isinstance(w, Verbatim)]
    shell_text += [v for _, v in assignments if isinstance(v, Verbatim)]
    if shell_text:
        raise RunError(f"{', '.join(repr(str(w)) for w in shell_text)} is shell text kept from a script and "
                       "cannot run without a shell; replace it with a plain value (e.g. the path $(pwd) stands "
                       "for), or run the rendered command in bash", argv=[str(w) for w in words])


def _reader(stream: IO[str], tag: str, lines: "queue.Queue[tuple[str, str | None]]") -> None:
    """Move lines from a pipe into the queue; ``(tag, None)`` marks its end."""
    try:
        for line in iter(stream.readline, ""):
            lines.put((tag, line))
    finally:
        stream.close()
        lines.put((tag, None))


def _execute(words: list[str], program: str, env: dict[str, str], cwd: str | os.PathLike[str] | None,
             timeout: float | None, check: bool, merge_stderr: bool,
             on_line: Callable[[str], None] | None) -> ContainerRun:
    started = time.monotonic()
    try:
        proc = subprocess.Popen(words, executable=program, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                                text=True, encoding="utf-8", errors="replace", bufsize=1,
                                start_new_session=True)
    except OSError as exc:
        raise RunError(f"could not start {join(words)}: {exc}"
                       + (f" (check the working directory {os.fspath(cwd)!r})" if cwd is not None else ""),
                       argv=words) from exc
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    streams = {"out": proc.stdout} if merge_stderr else {"out": proc.stdout, "err": proc.stderr}
    threads = [threading.Thread(target=_reader, args=(s, tag, lines), daemon=True) for tag, s in streams.items()]
    for t in threads:
        t.start()
    collected: dict[str, list[str]] = {"out": [], "err": []}
    open_streams = len(threads)
    deadline = None if timeout is None else started + timeout
    timed_out = False
    try:
        while open_streams:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                timed_out = True
                break
            try:
                tag, line = lines.get(timeout=wait)
            except queue.Empty:
                continue  # the deadline check above ends the loop
            if line is None:
                open_streams -= 1
                continue
            collected[tag].append(line)
            _deliver(line, tag, on_line)
        if timed_out:
            _stop_group(proc)
        else:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:  # output closed but the program still runs
                timed_out = True
                _stop_group(proc)
    except BaseException:  # an interrupt (Ctrl-C, Jupyter's stop button) or a failing on_line: stop the program
        _stop_group(proc)
        raise
    for t in threads:
        t.join(timeout=KILL_GRACE)
    while True:  # lines that arrived between the deadline and the end of the program
        try:
            tag, line = lines.get_nowait()
        except queue.Empty:
            break
        if line is not None:
            collected[tag].append(line)
    seconds = time.monotonic() - started
    output = "".join(collected["out"])
    stderr = "".join(collected["err"])
    tail = _tail(output if merge_stderr else stderr or output)
    if timed_out:
        raise RunError(f"{join(words)} did not finish within {timeout:g} s and was stopped (with everything it "
                       f"started); give it a longer timeout or make the run shorter. Last lines of output:\n{tail}",
                       argv=words, returncode=proc.returncode, stderr=tail)
    if check and proc.returncode != 0:
        raise RunError(f"{join(words)} failed with exit status {proc.returncode}. Last lines of output:\n{tail}",
                       argv=words, returncode=proc.returncode, stderr=tail)
    return ContainerRun(tuple(words), proc.returncode, output, seconds, stderr)


def _deliver(line: str, tag: str, on_line: Callable[[str], None] | None) -> None:
    text = line[:-1] if line.endswith("\n") else line
    if on_line is not None:
        on_line(text)
        return
    out = sys.stderr if tag == "err" else sys.stdout
    out.write(text + "\n")
    out.flush()


def _tail(text: str, n: int = TAIL_LINES) -> str:
    lines = text.rstrip("\n").splitlines()
    if not lines:
        return "(no output)"
    return "\n".join(lines[-n:])


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the program's session, SIGKILL to whatever is left after a grace period."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    _signal_group(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        pass  # it ignored SIGTERM; SIGKILL below ends it
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the whole group has already exited


__all__ = ["ContainerRun", "run_container"]
