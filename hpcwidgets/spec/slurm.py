"""Slurm batch jobs (``sbatch`` directives and the script body) and job steps (``srun``)."""

from __future__ import annotations

import dataclasses
import functools
import operator
import re
from dataclasses import dataclass
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import Problem
from ._meta import FieldInfo, Spec, TextForm, opt
from .common import EnvVar, extra_problems, list_items
from .units import is_number, non_ascii_digits, parse_mem, parse_time

MAIL_TYPES = ("NONE", "BEGIN", "END", "FAIL", "REQUEUE", "ALL", "INVALID_DEPEND", "STAGE_OUT",
              "TIME_LIMIT", "TIME_LIMIT_90", "TIME_LIMIT_80", "TIME_LIMIT_50", "ARRAY_TASKS")
#: the #SBATCH line between the components of a heterogeneous job (packjob: its deprecated name)
HETJOB_SEPARATORS = ("hetjob", "packjob")


def is_hetjob_word(word: str) -> bool:
    """Whether sbatch reads ``word`` of an #SBATCH line as the separator word: ``hetjob`` or ``packjob`` in any
    case, unquoted (``HETJOB`` too; ``"hetjob"`` and ``hetjobs`` are not). Slurm 22.05, checked with
    ``sbatch --test-only``: as the line's first word it starts the next component and the rest of the line is
    not read; after an option (``-n 1 hetjob``) it starts nothing, and sbatch reads nothing more of that line."""
    return word.lower() in HETJOB_SEPARATORS
#: the problem of a word after #SBATCH that is not an option (lint's HPC310 reports it from the script's line)
STRAY_DIRECTIVE = "write the option as it follows #SBATCH"
#: what the problem for an option typed with a typographic dash says (the linter's HPC515 reports those itself)
TYPED_DASH = "starts with a typographic dash"
#: dashes a word processor writes for "-" or "--" (en/em dash, minus sign, hyphen variants)
TYPED_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_TYPED_DASH = re.compile(f"[{TYPED_DASHES}]")


def keyboard_option(raw: str) -> str:
    """An option name as typed on a keyboard: ``–-time`` → ``--time``, ``—nv`` → ``--nv``, ``–nv`` → ``--nv`` (a
    word processor's "--"), ``–l`` → ``-l``, and the dashes inside the name too (``−−cpus−per-task``)."""
    rest = raw.lstrip(TYPED_DASHES + "-")
    dashes = raw[:len(raw) - len(rest)]
    rest = _TYPED_DASH.sub("-", rest)
    if "\u2014" in dashes or len(dashes) > 1 or len(re.match(r"[A-Za-z0-9_]*", rest).group(0)) > 1:
        return "--" + rest
    return "-" + rest


#: interpreters that read a job script as the shell language of the models (csh, Python, R, Julia … do not)
SHELL_INTERPRETERS = frozenset({"sh", "bash", "dash", "ksh", "ksh93", "mksh", "zsh", "ash", "busybox"})


def shebang_program(text: str) -> str:
    """The program a script's ``#!`` line runs it with (``#!/usr/bin/env python3 -u`` → ``python3``), "" when the
    text has no ``#!`` line."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    if not first.startswith("#!"):
        return ""
    words = first[2:].split()
    if words and words[0].rsplit("/", 1)[-1] == "env":
        words = words[1:]
        while words and (words[0].startswith("-") or "=" in words[0]):  # env -S, env -u NAME, env NAME=value
            words = words[2:] if words[0] in ("-u", "--unset") else words[1:]
    return words[0].rsplit("/", 1)[-1] if words else ""


def is_shell(program: str) -> bool:
    """Whether ``program`` (a ``#!`` line's, see :func:`shebang_program`) reads shell scripts: "" (no ``#!`` line)
    counts as one, as readers take such a script for a shell script."""
    return not program or program in SHELL_INTERPRETERS or re.fullmatch(r"(?:ba|z|k|da)?sh[0-9.]*", program) is not None


#: the shell options a generated script starts with (see render/script.py)
FAIL_FAST = ("strict", "errexit", "off")
#: one index item of ``--array`` as slurmctld reads it (job_mgr.c ``_parse_array_tok``): N, N-M or N-M:STEP, each
#: number optionally in brackets ([0-3]); commas separate the items, and empty items (``1,2,``) are skipped. The
#: step may be negative here only so that the problem can say what is wrong with it (sbatch wants 1 or more).
_ARRAY_ITEM_LOOSE = re.compile(r"\[?([0-9]+)\]?(?:-([0-9]+)\]?(?::(-?[0-9]+))?)?")


def array_problem(spec: str) -> str:
    """What sbatch refuses in an ``--array`` value ("Invalid job array specification"), with the fix; "" when it
    reads it. The indexes come before the first ``%``; after it, the most tasks that run at once (empty: no
    limit, as ``0-99%`` is read). The site's MaxArraySize (1001 by default) is not checked: it is the site's."""
    foreign = non_ascii_digits(spec)
    if foreign:
        return f"{spec!r}: {foreign}"
    body, pct, limit = spec.partition("%")
    if pct and not is_number(limit) and limit != "":
        return f"{spec!r}: after % comes how many tasks may run at once, a number (e.g. {body}%4)"
    items = [item for item in body.split(",") if item]
    if not items:
        return f"{spec!r} names no index; write e.g. 0-15, 1,3,5 or 0-15:4"
    for item in items:
        m = _ARRAY_ITEM_LOOSE.fullmatch(item)
        if m is None:
            return f"{spec!r} is not an array spec; use e.g. 0-15, 1,3,5, 0-15:4 or 0-15%4"
        low, high, step = m.groups()
        if high is not None and int(high) < int(low):
            return f"{spec!r}: the range {item} counts down; write {high}-{low}"
        if step is not None and int(step) < 1:
            return f"{spec!r}: the step of {item} must be 1 or more, e.g. {low}-{high}:1"
        if int(high or low) > MAX_ARRAY_INDEX:
            return (f"{spec!r}: index {int(high or low)} is above what any Slurm takes: an index must be below the "
                    f"site's MaxArraySize, at most {MAX_ARRAY_INDEX + 1} (1001 by default), so sbatch refuses it; "
                    "number the tasks from 0 and map them to your values in the script")
    return ""


#: the largest index of a job array any Slurm takes: MaxArraySize is at most 4000001 (slurm.conf(5)), and an index
#: must be below it
MAX_ARRAY_INDEX = 4000000


class ArrayTaskIds(Sequence[int]):
    """The task ids of an ``--array`` value, in its order, held as ranges: ``0-3999999`` is four million ids and
    takes no memory for them."""

    def __init__(self, ranges: list[range]) -> None:
        self._ranges = ranges

    def __len__(self) -> int:
        return sum(len(r) for r in self._ranges)

    def __iter__(self) -> Iterator[int]:
        for r in self._ranges:
            yield from r

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        for r in self._ranges:
            if index < len(r):
                return r[index]
            index -= len(r)
        raise IndexError("array task index out of range")

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (ArrayTaskIds, list)) else NotImplemented

    def __repr__(self) -> str:
        return f"ArrayTaskIds({self._ranges!r})"


def array_task_ids(spec: str) -> ArrayTaskIds | None:
    """The task ids a ``--array`` value creates, as sbatch reads it (``0-6:2%2`` → 0, 2, 4, 6; ``1,2,`` → 1, 2);
    None when sbatch refuses it (:func:`array_problem` says why)."""
    if not isinstance(spec, str) or array_problem(spec):
        return None
    ranges: list[range] = []
    for item in spec.partition("%")[0].split(","):
        if item:
            low, high, step = _ARRAY_ITEM_LOOSE.fullmatch(item).groups()
            ranges.append(range(int(low), int(high or low) + 1, int(step or 1)))
    return ArrayTaskIds(ranges)


#: the signal names sbatch's --signal takes (Slurm 22.05 ``sig_name2num``; any case, SIG before it optional), and
#: any signal number above 0
_SIGNAL_NAMES = ("HUP", "INT", "QUIT", "ABRT", "KILL", "ALRM", "TERM", "USR1", "USR2", "URG", "CONT", "STOP", "TSTP",
                 "TTIN", "TTOU", "XCPU")
_SIGNAL = re.compile(r"(?:([A-Za-z]*):)?([^@]*)(?:@(.*))?", re.S)
#: --gres-flags values (22.05: enforce-binding, disable-binding; 23.11 added the two *-per-sharing ones), any case
GRES_FLAGS = ("enforce-binding", "disable-binding", "one-task-per-sharing", "multiple-tasks-per-sharing")


def signal_problem(value: str) -> str:
    """What sbatch refuses in ``--signal=[{R|B}:]SIG[@SECONDS]`` ("Invalid --signal specification"), with the
    fix; "" when it reads it."""
    foreign = non_ascii_digits(f"--signal={value}")
    if foreign:
        return f"--signal={value}: {foreign}"
    m = _SIGNAL.fullmatch(value)
    flags, sig, when = m.groups() if m else ("", value, None)
    if flags is not None and flags.upper() not in ("B", "R", "RB", "BR"):
        return (f"--signal={value}: before the colon comes B (the batch shell only), R (allow a reservation) or "
                f"both; write --signal=B:{sig}{'@' + when if when is not None else ''}")
    name = sig.upper()[3:] if sig.upper().startswith("SIG") else sig.upper()
    if not (name in _SIGNAL_NAMES or (is_number(sig.lstrip("+")) and int(sig) > 0)):
        return (f"--signal={value}: sbatch knows no signal {sig!r}; use a number or one of "
                f"{', '.join(_SIGNAL_NAMES)} (e.g. USR1)")
    if when is not None and when != "" and not (is_number(when) and int(when) <= 65535):
        digits = "".join(re.findall("[0-9]", when))
        example = str(min(int(digits), 65535)) if digits else "90"
        return (f"--signal={value}: the time after @ is a number of seconds (0-65535), without a unit; "
                f"write @{example}")
    return ""


def gres_flags_problem(value: str) -> str:
    """What sbatch refuses in ``--gres-flags`` ("Invalid --gres-flags specification"), with the fix; "" otherwise."""
    bad = [v for v in value.split(",") if v.lower() not in GRES_FLAGS]
    if not bad:
        return ""
    fixed = [v.replace("_", "-") for v in bad]
    if all(f.lower() in GRES_FLAGS for f in fixed):
        return f"--gres-flags={value}: the value is written with dashes; write --gres-flags={value.replace('_', '-')}"
    return f"--gres-flags={value}: sbatch knows {', '.join(GRES_FLAGS[:2])} (and, from Slurm 23.11, {', '.join(GRES_FLAGS[2:])})"


#: checks of the values of options the model keeps as written (``extra_directives``), by option
_EXTRA_VALUE_CHECKS = {"--signal": signal_problem, "--gres-flags": gres_flags_problem}


#: sbatch's own options and what follows them: "value" (required), "optional" (only as --opt=value;
#: a separate word is not its value) or "switch" (none). Slurm 22.05 to 24.11; site plugins may add more.
SBATCH_OPTIONS: dict[str, str] = {
    **dict.fromkeys((
        "--account", "--acctg-freq", "--array", "--batch", "--bb", "--bbf", "--begin", "--chdir",
        "--cluster-constraint", "--clusters", "--comment", "--constraint", "--container", "--container-id",
        "--core-spec", "--cores-per-socket", "--cpu-freq", "--cpus-per-gpu", "--cpus-per-task", "--deadline",
        "--delay-boot", "--dependency", "--distribution", "--error", "--exclude", "--export-file", "--extra",
        "--extra-node-info", "--gid", "--gpu-bind", "--gpu-freq", "--gpus", "--gpus-per-node", "--gpus-per-socket",
        "--gpus-per-task", "--gres", "--gres-flags", "--hint", "--input", "--job-name", "--kill-on-invalid-dep",
        "--licenses", "--mail-type", "--mail-user", "--mcs-label", "--mem", "--mem-bind", "--mem-per-cpu",
        "--mem-per-gpu", "--mincpus", "--network", "--nodefile", "--nodelist", "--nodes", "--ntasks",
        "--ntasks-per-core", "--ntasks-per-gpu", "--ntasks-per-node", "--ntasks-per-socket", "--open-mode",
        "--output", "--partition", "--power", "--prefer", "--priority", "--profile", "--qos", "--reservation",
        "--segment", "--signal", "--sockets-per-node", "--switches", "--thread-spec", "--threads-per-core",
        "--time", "--time-min", "--tmp", "--tres-bind", "--tres-per-task", "--uid", "--wait-all-nodes", "--wckey",
    ), "value"),
    **dict.fromkeys(("--exclusive", "--get-user-env", "--nice", "--no-kill", "--oom-kill-step",
                     "--propagate", "--wrap"), "optional"),
    # slurm_opt.c declares --export with a required argument: "--export ALL" is the option and its value
    "--export": "value",
    **dict.fromkeys(("--contiguous", "--help", "--hold", "--ignore-pbs", "--no-requeue", "--overcommit",
                     "--oversubscribe", "--parsable", "--quiet", "--reboot", "--requeue", "--spread-job",
                     "--test-only", "--usage", "--use-min-nodes", "--verbose", "--version", "--wait"), "switch"),
    # Slurm 24.05 and later: a step manager on the batch node (slurm_opt.c's slurm_opt_stepmgr)
    "--stepmgr": "switch",
    # names Slurm's option table keeps besides the documented ones (sbatch 22.05 accepts each)
    **dict.fromkeys(("--tasks-per-node", "--ntasks-per-tres", "--cluster", "--context"), "value"),
}
#: older spellings sbatch still accepts, by the option they stand for (same meaning, same value)
SBATCH_ALIASES: dict[str, str] = {
    "--tasks-per-node": "--ntasks-per-node", "--ntasks-per-tres": "--ntasks-per-gpu", "--cluster": "--clusters",
}
#: sbatch's one-letter options, by the long option they stand for
SBATCH_SHORT: dict[str, str] = {
    "-A": "--account", "-a": "--array", "-B": "--extra-node-info", "-b": "--begin", "-C": "--constraint",
    "-c": "--cpus-per-task", "-D": "--chdir", "-d": "--dependency", "-e": "--error", "-F": "--nodefile",
    "-G": "--gpus", "-H": "--hold", "-h": "--help", "-i": "--input", "-J": "--job-name", "-k": "--no-kill",
    "-L": "--licenses", "-M": "--clusters", "-m": "--distribution", "-N": "--nodes", "-n": "--ntasks",
    "-O": "--overcommit", "-o": "--output", "-p": "--partition", "-Q": "--quiet", "-q": "--qos",
    "-S": "--core-spec", "-s": "--oversubscribe", "-t": "--time", "-V": "--version", "-v": "--verbose",
    "-W": "--wait", "-w": "--nodelist", "-x": "--exclude",
}


def sbatch_long_option(flag: str) -> str:
    """The long option sbatch reads ``flag`` as: the option itself, or, as getopt_long does, the one
    option that ``flag`` is an unambiguous prefix of (``--tasks`` is ``--tasks-per-node``, ``--mem``
    stays ``--mem``). ``""`` when sbatch has no such option or the prefix fits several (sbatch refuses
    both: "unrecognized option", "option '--ntasks-per' is ambiguous"). Aliases are returned as
    written; :data:`SBATCH_ALIASES` says what they stand for."""
    if flag in SBATCH_OPTIONS:
        return flag
    if not flag.startswith("--") or len(flag) < 3 or "=" in flag:
        return ""
    found = [name for name in SBATCH_OPTIONS if name.startswith(flag)]
    return found[0] if len(found) == 1 else ""


def sbatch_option(flag: str) -> str:
    """``value``, ``optional`` or ``switch`` for an sbatch option (long, short, an alias or an
    unambiguous prefix, as sbatch reads them); ``""`` when sbatch has no such option (a typo, or an
    option a site plugin adds)."""
    short = SBATCH_SHORT.get(flag)
    if short:
        return SBATCH_OPTIONS[short]
    return SBATCH_OPTIONS.get(sbatch_long_option(flag), "")


_GPU_TYPE = re.compile(r"[A-Za-z0-9_.-]+")
#: ``--nodes=MIN-MAX``: sbatch starts the job on at least MIN and at most MAX nodes
NODE_RANGE = re.compile(r"([0-9]{1,10})-([0-9]{1,10})")
#: ``--gpus=TYPE:COUNT`` (several types comma-separated: a100:2,v100:2)
#: the most of anything Slurm counts (nodes, tasks, CPUs, GPUs): it reads a count as a signed 32-bit number, and
#: misreads or refuses a larger one ('"2147483648" is not a valid node count')
MAX_COUNT = 2**31 - 1

GPU_COUNTS = re.compile(r"[A-Za-z0-9_.-]+:[0-9]{1,10}(?:,[A-Za-z0-9_.-]+:[0-9]{1,10})*")
#: one further ``--gres`` item: NAME[:TYPE][:COUNT] (lscratch:200, mps:50, shard:2)
_GRES_ITEM = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.-]+)*")
#: the text forms of counts sbatch also reads (``_check`` judges what such text asks for)
NODE_RANGE_FORM = TextForm(NODE_RANGE, "a range MIN-MAX (2-4)")
GPU_COUNTS_FORM = TextForm(GPU_COUNTS, "TYPE:COUNT (a100:4)")
#: a count srun reads from a variable (``-c $SLURM_CPUS_PER_TASK``, ``${N:-1}``): srun's options are
#: shell words, expanded before srun reads them, unlike #SBATCH lines
REFERENCE_FORM = TextForm(re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*(?::?[-=?+][^}]*)?\})"),
                          "a variable ($SLURM_CPUS_PER_TASK)")
#: a count the shell computes in a script read back (``srun -n $((SLURM_NNODES * 4))``, ``-N $(expr $N / 8)``)
COMPUTED_FORM = TextForm(re.compile(r"\$\((?:.|\n)*\)"), "a count the shell computes", verbatim_only=True)
#: the GPU count fields that take ``TYPE:COUNT`` (``--gpus=a100:4``, ``--gpus-per-task=rtx8000:1``,
#: ``--gpus-per-node=a100:2,v100:1``), by label
_TYPED_GPU_COUNTS = (("gpus", "GPUs in total"), ("gpus_per_task", "GPUs per task"), ("gpus_per_node", "GPUs per node"))
_MODULE = re.compile(r"[A-Za-z0-9_.+/@-]+")
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*|\()")
_SPACE = re.compile(r"\s")
#: what no #SBATCH line can hold (NUL is refused for every text field)
_CONTROL = re.compile(r"[\x01-\x1f\x7f]")
_PLAIN = {str}


def _whole(value: Any) -> int:
    """``value`` when it is a whole number above 0, else 0: text, None, booleans and negative numbers
    are never computed with (``problems()`` reports them)."""
    return value if value.__class__ is int and value > 0 else 0


#: the same, for the profile's checks of a job
whole_count = _whole


def node_range(value: Any) -> tuple[int, int] | None:
    """Least and most nodes of a ``--nodes`` value: ``2`` → (2, 2), ``"2-4"`` → (2, 4); None for anything else."""
    if value.__class__ is int:
        return value, value
    if isinstance(value, str):
        m = NODE_RANGE.fullmatch(value)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def gpu_total(value: Any) -> int:
    """GPUs a ``--gpus`` (or ``--gpus-per-task``) value asks for: ``8`` → 8, ``"a100:4"`` → 4,
    ``"a100:2,v100:2"`` → 4; 0 for anything else."""
    if isinstance(value, str) and GPU_COUNTS.fullmatch(value):
        return sum(int(item.rpartition(":")[2]) for item in value.split(","))
    return _whole(value)


def binds_per_task(gpu_bind: Any) -> bool:
    """Whether a ``--gpu-bind`` value keeps the binding ``--gpus-per-task`` implies (``per_task``: each task sees
    only its own GPUs, numbered from 0): none given, ``verbose``, or ``per_task:N``; not ``closest``, ``none``,
    ``map_gpu`` …"""
    kinds = [k for k in str(gpu_bind or "").split(",") if k and k != "verbose"]
    return not kinds or kinds[0].startswith("per_task")


#: the file name patterns sbatch fills in for what a script would reach through a variable
_PATTERN_FOR = {"SLURM_ARRAY_TASK_ID": "%a", "SLURM_ARRAY_JOB_ID": "%A", "SLURM_JOB_ID": "%j", "SLURM_JOBID": "%j",
                "SLURM_JOB_NAME": "%x", "USER": "%u", "SLURM_JOB_USER": "%u", "SLURMD_NODENAME": "%N"}


#: a character that would end a comment's line, or hide what follows it (a tab is kept: authors align with it)
_COMMENT_BREAK = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def comment_line(text: str, *, own_line: bool = False) -> str:
    """A comment as it is written into a script: from its ``#`` (one is put in front of text without it), on one
    line, so that no text of a comment can become a command; on a line of its own (``own_line``), one that would
    read as an #SBATCH directive is written as a comment about one (``# #SBATCH …``)."""
    text = str(text).rstrip()
    text = text if text.startswith("#") else f"# {text}".rstrip()
    if own_line and text.startswith("#SBATCH"):
        text = "# " + text
    return _COMMENT_BREAK.sub(" ", text) if _COMMENT_BREAK.search(text) else text


#: the place of a workflow's step, for the comment its author wrote on it (``Comment.at``)
STEP = "step"
#: a comment line that is an #SBATCH line switched off (``##SBATCH --gres=gpu:2``, ``# SBATCH -t 5``, ``#xSBATCH …``)
SWITCHED_OFF = re.compile(r"#[#\s]*[A-Za-z]*SBATCH[ \t]+-", re.IGNORECASE)


@dataclass(frozen=True)
class Comment(Spec):
    """A comment of a job script read back, with the line it belongs to, so that writing the script back keeps it
    there: ``#SBATCH --time=01:00:00  # one hour`` keeps its note when the value is written anew, and ``## resources``
    stays above ``--nodes``. Forms and command-line options do not show comments: they follow their lines, whatever a
    person changes. A comment whose line is gone (a field emptied in a form) is written among the set-up lines, where
    a reader of the script keeps it as one (and a form shows it), rather than lost."""

    kind = "slurm.comment"

    text: str = opt(label="Comment", role="internal", help="The comment as its author wrote it, from its # on.")
    at: str = opt("", label="Line", role="internal",
                  help="The line it belongs to: a job field whose #SBATCH line it is on or above (time, "
                       "gpus_per_node), or fail_fast for set -eo pipefail; extra_directives:ITEM, modules:NAME or "
                       "env:NAME for a directive kept as written, a module load or an exported variable; step for a "
                       "workflow's step; empty for the #SBATCH lines as a whole (above them, or below them).")
    above: bool = opt(False, label="On a line of its own", role="internal",
                      help="Written on a line of its own just above its line (for an empty Line: above the #SBATCH "
                           "lines), rather than at the end of it (below them).")

    def _check(self) -> list[Problem]:
        if isinstance(self.text, str) and _COMMENT_BREAK.search(self.text):
            return [Problem("text", f"{self.text!r} holds a line break or another control character, which a comment "
                                    "line cannot carry (it would be written as a space); remove it")]
        return []


@dataclass(frozen=True)
class ScriptLayout(Spec):
    """How a job script read back was laid out, so that writing it back keeps its author's text: saving after one
    edit then changes the lines of the fields edited and nothing else (the order and spelling of its #SBATCH lines,
    its blank lines, its step's continuation lines, the absence of the renderer's own comments).

    It holds the script as read (``source``) and the script the renderer wrote for the model as read
    (``canonical``), each line tagged with a group: a source line and the canonical lines it was read as (an #SBATCH
    line and the directive of its field, the step's lines and the step as rendered, an export and its line) share
    one. The renderer compares its text for the model as it is now with ``canonical``: a group whose canonical lines
    are unchanged is written as its source lines, an edited one as its new lines in the old lines' place. Where an
    edit reaches a line of the canonical script that no source line stands for, the layout no longer matches and the
    renderer writes its own script. A field emptied takes the comment on its line with it, and the comment lines of
    their own above it stay where they are (a :class:`Comment` whose line is gone goes among the set-up lines only in
    the renderer's own layout). Forms and command-line options never show it."""

    kind = "slurm.layout"

    source: tuple[str, ...] = opt((), label="Lines as read", role="internal",
                                  help="The script's lines as read (its text split at its line breaks).")
    canonical: tuple[str, ...] = opt((), label="Lines as rendered", role="internal",
                                     help="The lines the renderer wrote for the model as read.")
    source_groups: tuple[int, ...] = opt((), label="Groups of the lines as read", role="internal",
                                         help="For each line as read, its group; -1 for a line no field writes (a "
                                              "blank line, a comment, a set-up line), kept as it is.")
    canonical_groups: tuple[int, ...] = opt((), label="Groups of the lines as rendered", role="internal",
                                            help="For each line as rendered, its group; -1 for a line no line as "
                                                 "read stands for.")
    header: bool = opt(True, label="Generated header", role="internal",
                       help="Whether the script has the renderer's title and \"Generated by\" comments (a person's "
                            "script gets none).")
    step_comment: bool = opt(True, label="Step comment", role="internal",
                             help="Whether the renderer writes its comment naming the step's layers above the step.")
    digest: str = opt("", label="Digest", role="internal",
                      help="A digest of the fields above, set by the reader: a layout changed since (a saved model "
                           "edited by hand) no longer says how the script was laid out, and is not followed.")

    def sealed(self) -> "ScriptLayout":
        """This layout with its digest set (the reader seals the layouts it makes)."""
        return self.replace(digest=self._digest())

    @property
    def intact(self) -> bool:
        """Whether the layout is one the reader made, unchanged: its digest matches and its groups tag every line."""
        return (len(self.source_groups) == len(self.source) and len(self.canonical_groups) == len(self.canonical)
                and self.digest == self._digest())

    def _digest(self) -> str:
        import hashlib
        import json
        fields = [self.source, self.canonical, self.source_groups, self.canonical_groups, self.header,
                  self.step_comment]
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()[:32]


@functools.cache
def _directive_text_fields(cls: type) -> tuple[tuple[str, ...], Any]:
    """Names of the text fields written after ``#SBATCH`` (no shell reads those lines), and a getter
    of their values."""
    names = tuple(f.name for f in cls.field_specs() if f.info.flag and f.base_type is str and not f.is_tuple)
    return names, operator.attrgetter(*names)


@dataclass(frozen=True)
class SlurmJob(Spec):
    """An ``sbatch`` job: resource directives plus the script body around the job steps.

    GPUs are requested per node: ``gpus_per_node`` with ``gpu_type`` renders as ``--gres=gpu[:type]:N``
    (or ``--gpus-per-node`` when ``gpu_flag`` says so), the form every Slurm version understands.
    """

    kind = "slurm.job"

    job_name: str = opt("", label="Job name", flag="--job-name", short="-J", placeholder="train",
                        help="A short name shown by squeue and usable in output patterns as %x.")
    partition: str = opt("", label="Partition", flag="--partition", short="-p", placeholder="gpu",
                         help="The queue to submit to; the cluster profile lists them with their limits.")
    account: str = opt("", label="Account", flag="--account", short="-A", placeholder="myproject",
                       help="The allocation to charge.")
    qos: str = opt("", label="QOS", flag="--qos", short="-q", placeholder="normal", advanced=True,
                   help="Quality of service, if your site uses one.")
    nodes: int | None = opt(None, label="Nodes", flag="--nodes", short="-N", minimum=1,
                            maximum=MAX_COUNT, text_forms=(NODE_RANGE_FORM,),
                            placeholder="1",
                            help="How many nodes (machines) the job gets: N, or MIN-MAX to start on whatever is free.")
    ntasks: int | None = opt(None, label="Tasks", flag="--ntasks", short="-n", placeholder="4", minimum=1,
                             maximum=MAX_COUNT,
                             help="Total number of tasks (processes) srun starts by default.")
    ntasks_per_node: int | None = opt(None, label="Tasks per node", flag="--ntasks-per-node", minimum=1,
                                      maximum=MAX_COUNT,
                                      aliases=("--tasks-per-node",), placeholder="1",
                                      help="Tasks per node. With torchrun use 1: torchrun itself starts one process per GPU.")
    cpus_per_task: int | None = opt(None, label="CPUs per task", flag="--cpus-per-task", short="-c", minimum=1,
                                    maximum=MAX_COUNT,
                                    placeholder="8",
                                    help="CPU cores for each task (for torchrun: for all its workers on the node).")
    gpus_per_node: int | None = opt(None, label="GPUs per node", role="internal", minimum=0,
                                    maximum=MAX_COUNT, text_forms=(GPU_COUNTS_FORM,),
                                    placeholder="1",
                                    help="GPUs on each node, written as --gres=gpu[:type]:N; several types as "
                                         "TYPE:COUNT,TYPE:COUNT (a100:2,v100:1), written as --gres=gpu:a100:2,gpu:v100:1.")
    gpu_type: str = opt("", label="GPU type", role="internal", placeholder="a100",
                        help="A GPU model the site names in its gres (e.g. a100, v100); empty for any.")
    other_gres: tuple[str, ...] = opt((), label="Other generic resources", role="internal", advanced=True,
                                      placeholder="lscratch:200",
                                      help="Further --gres items the site offers, NAME[:TYPE]:COUNT (e.g. lscratch:200 for "
                                           "node-local scratch); written after the GPUs in the same --gres.")
    gpu_flag: str = opt("gres", label="GPU request style", role="internal", choices=("gres", "gpus-per-node"),
                        advanced=True, help="--gres=gpu:N (works everywhere) or --gpus-per-node=N.")
    gpus: int | None = opt(None, label="GPUs in total", flag="--gpus", short="-G", minimum=0,
                           maximum=MAX_COUNT, advanced=True,
                           text_forms=(GPU_COUNTS_FORM,), placeholder="1",
                           help="GPUs for the whole job, placed anywhere; prefer GPUs per node for torchrun jobs.")
    gpus_per_task: int | None = opt(None, label="GPUs per task", flag="--gpus-per-task", minimum=1,
                                    maximum=MAX_COUNT, advanced=True,
                                    text_forms=(GPU_COUNTS_FORM,), placeholder="1", help="GPUs bound to each task.")
    cpus_per_gpu: int | None = opt(None, label="CPUs per GPU", flag="--cpus-per-gpu", minimum=1,
                                   maximum=MAX_COUNT, advanced=True,
                                   placeholder="8",
                                   help="CPU cores per allocated GPU (not together with CPUs per task).")
    mem: str = opt("", label="Memory per node", flag="--mem", placeholder="16G",
                   help="Memory per node: a whole number with K, M, G or T (bare number = MiB; 0 = all of it).")
    mem_per_cpu: str = opt("", label="Memory per CPU", flag="--mem-per-cpu", placeholder="4G", advanced=True,
                           help="Memory per allocated CPU (excludes Memory per node).")
    mem_per_gpu: str = opt("", label="Memory per GPU", flag="--mem-per-gpu", placeholder="32G", advanced=True,
                           help="Memory per allocated GPU (excludes the other memory options).")
    time: str = opt("", label="Time limit", flag="--time", short="-t", placeholder="01:00:00",
                    help="Wall-clock limit: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S.")
    constraint: str = opt("", label="Constraint", flag="--constraint", short="-C", placeholder="a100", advanced=True,
                          help="Node features required, e.g. a100 or 'v100|a100'.")
    exclusive: bool = opt(False, label="Exclusive", flag="--exclusive", advanced=True,
                          help="Do not share the nodes with other jobs.")
    array: str = opt("", label="Array", flag="--array", short="-a", placeholder="0-15%4",
                     help="Run many copies: indexes like 0-15, 1,3,5 or 0-15:4, optionally %N to limit how many run at once.")
    output: str = opt("", label="Output file", flag="--output", short="-o", path=True, placeholder="%x-%j.out",
                      help="Where stdout goes; %j = job id, %x = job name, %A/%a = array job/task, %N = node.")
    error: str = opt("", label="Error file", flag="--error", short="-e", path=True, advanced=True,
                     placeholder="%x-%j.err",
                     help="Where stderr goes (default: together with output).")
    chdir: str = opt("", label="Working directory", flag="--chdir", short="-D", path=True, advanced=True,
                     placeholder="/scratch/run1",
                     help="Directory the script starts in (default: where you ran sbatch).")
    mail_type: str = opt("", label="Mail on", flag="--mail-type", placeholder="END,FAIL", advanced=True,
                         help="When to send mail: comma-separated NONE, BEGIN, END, FAIL, ALL, TIME_LIMIT_90, …")
    mail_user: str = opt("", label="Mail to", flag="--mail-user", placeholder="you@example.org", advanced=True,
                         help="Address for job mail.")
    extra_directives: tuple[str, ...] = opt((), label="Other directives", role="internal", advanced=True,
                                            help="Further #SBATCH options written as they are, e.g. --signal=USR1@90; "
                                                 "hetjob starts the next component of a heterogeneous job.")
    # --- script body -------------------------------------------------------------------------
    modules: tuple[str, ...] = opt((), label="Modules", role="internal", placeholder="apptainer",
                                   help="Environment modules to load (module load …).")
    env: tuple[EnvVar, ...] = opt((), label="Job variables", role="internal",
                                  help="Variables exported after the modules load, for all the script runs (NAME=value).")
    setup: tuple[str, ...] = opt((), label="Set-up lines", role="internal",
                                 help="Shell lines run before the steps (e.g. mkdir -p \"$OUTPUT_DIR\"). Written as they are.")
    commands: tuple[str, ...] = opt((), label="Commands", role="internal",
                                    help="The job's own shell lines when no workflow composes the steps.")
    shell: str = opt("/bin/bash", label="Shell", role="internal", advanced=True, placeholder="/bin/bash -l",
                     help="The program on the script's #! line, with its options: /bin/bash -l runs a login shell, "
                          "which some sites need for module to be defined.")
    fail_fast: str = opt("strict", label="Fail fast", role="internal", choices=FAIL_FAST, advanced=True,
                         help="strict: set -eo pipefail, then set -u after the module loads (an error or an unset "
                              "variable stops the job); errexit: only set -eo pipefail; off: neither. A script read "
                              "back keeps its own shell options.")
    comments: tuple[Comment, ...] = opt((), label="Comments", role="internal", advanced=True,
                                        help="The comments of a script read back on or around the lines the model "
                                             "writes itself (#SBATCH lines, module loads, exports, the step), each "
                                             "kept with its line (comments among the set-up lines stay in them).")
    # how the script was written, not what the job is: two jobs that differ only in it are equal (compare=False),
    # so a script read back still equals the model it was rendered from
    layout: ScriptLayout | None = dataclasses.field(default=None, compare=False, metadata={"hpcw": FieldInfo(
        label="Layout as read", role="internal", advanced=True,
        help="The layout of a script read back, which writing it back keeps (see ScriptLayout); None for a job made "
             "in a form or in code.")})

    def advice(self) -> list[Problem]:
        """What sbatch accepts but is better written otherwise: never a reason to refuse the job (``problems()``
        and ``validate()`` leave it out, so a script read back renders as it was). The linter reports it (HPC306:
        a job name with spaces); a form may show it as a warning."""
        if isinstance(self.job_name, str) and " " in self.job_name:
            return [Problem("job_name", f"{self.job_name!r}: job names with spaces break output patterns; use - or _")]
        return []

    def gres(self) -> str:
        """The GPU items of ``--gres`` (``gpu:a100:4``; several types ``gpu:a100:2,gpu:v100:1``); "" without GPUs
        per node. ``other_gres`` follows them."""
        per_node = self.gpus_per_node
        if not per_node:
            return ""
        if self.gpu_type:
            return f"gpu:{self.gpu_type}:{per_node}"
        if per_node.__class__ is str and "," in per_node and GPU_COUNTS.fullmatch(per_node):
            return "gpu:" + per_node.replace(",", ",gpu:")  # a100:2,v100:1: one gpu item per type
        return f"gpu:{per_node}"

    @property
    def node_count(self) -> int:
        """Nodes the job gets at least: the MIN of a MIN-MAX range; 1 when unset or not a count."""
        span = node_range(self.nodes)
        return span[0] if span is not None and span[0] > 0 else 1

    @property
    def gpus_on_each_node(self) -> int:
        """GPUs per node however they were asked for (0 when none). GPUs in total over a node range are
        spread over its MIN nodes: the most a node may get."""
        per_node = gpu_total(self.gpus_per_node)  # a100:2,v100:1 is three GPUs on each node
        if per_node:
            return per_node
        total = gpu_total(self.gpus)
        if total:
            return -(-total // self.node_count)
        per_task = gpu_total(self.gpus_per_task)  # --gpus-per-task=rtx8000:1 is one GPU per task
        if per_task:
            tasks = _whole(self.ntasks)
            per_node_tasks = _whole(self.ntasks_per_node) or (-(-tasks // self.node_count) if tasks else 1)
            return per_task * per_node_tasks
        return 0

    def _text_counts(self) -> list[Problem]:
        """What text in ``nodes``, ``gpus`` and ``gpus_per_task`` asks for, when it has one of their
        text forms (MIN-MAX, TYPE:COUNT); the generic check reports text of any other shape."""
        if str not in set(map(type, (self.nodes, self.gpus, self.gpus_per_task, self.gpus_per_node))):
            return []  # the usual job: every count is a number or unset, so there is no text to read
        out: list[Problem] = []
        span = node_range(self.nodes) if isinstance(self.nodes, str) else None
        if span is not None:
            if span[0] < 1:
                out.append(Problem("nodes", f"Nodes: the range {self.nodes!r} must start at 1 or more, e.g. 1-{max(span[1], 1)}"))
            elif span[1] < span[0]:
                out.append(Problem("nodes", f"Nodes: in {self.nodes!r} the most is below the least; write {span[1]}-{span[0]}"))
        for name, label in _TYPED_GPU_COUNTS:
            value = getattr(self, name)
            if (isinstance(value, str) and GPU_COUNTS.fullmatch(value)
                    and any(int(item.rpartition(":")[2]) < 1 for item in value.split(","))):
                out.append(Problem(name, f"{label}: {value!r} asks for no GPUs; give each type a count of 1 or more"))
        return out

    def _gpus_and_per_node(self) -> list[Problem]:
        """GPUs in total together with GPUs per node, as Slurm checks them (sbatch and test39.4 of its test suite):
        the total is a whole number of nodes' worth (``--gpus=8 --gpus-per-node=8`` on one node, LUMI's way), and
        that number of nodes is one the job may have."""
        if self.gpus is None:
            return []  # no GPUs in total (gpu_total(None) is 0): nothing to compare
        total, per_node = gpu_total(self.gpus), gpu_total(self.gpus_per_node)
        if not total or not per_node:
            return []
        if total < per_node or total % per_node:
            fits = sorted({max(total // per_node, 1) * per_node, -(-total // per_node) * per_node})
            return [Problem("gpus", f"{total} GPUs in total is not a whole number of nodes with {per_node} GPUs each: "
                                    f"sbatch refuses it; ask for {' or '.join(map(str, fits))} in total, or leave "
                                    "GPUs in total out")]
        needed, span = total // per_node, node_range(self.nodes)
        if span is not None and not span[0] <= needed <= span[1]:
            return [Problem("gpus", f"{total} GPUs in total at {per_node} per node take {needed} node(s), but the job "
                                    f"has {self.nodes}: sbatch refuses it; ask for {per_node * span[0]} GPUs in total "
                                    f"(or --nodes={needed})")]
        return []

    def _extra_values(self) -> list[Problem]:
        """The values sbatch refuses of options kept as written (``--signal=USR1@60s``, ``--gres-flags=enforce_binding``),
        in the job's first component (a later component's lines are kept whole, as written)."""
        out = []
        for d in list_items(self.extra_directives):
            if not isinstance(d, str) or is_hetjob_word(d):
                break
            flag, eq, value = d.partition("=")
            check = _EXTRA_VALUE_CHECKS.get(sbatch_long_option(flag)) if eq else None
            found = check(value) if check is not None and "$" not in value else ""
            if found:
                out.append(Problem("extra_directives", found))
        return out

    def _shell_problems(self) -> list[Problem]:
        """The #! line names a shell (see :meth:`_shell_line_problems` for how it is written)."""
        if self.shell == "/bin/bash":
            return []  # the default: an absolute bash, which every check below accepts
        problems = self._shell_line_problems()
        if not problems and isinstance(self.shell, str) and not is_shell(shebang_program("#!" + self.shell)):
            problems.append(Problem("shell", f"{self.shell!r} is not a shell, but the script's lines are shell "
                                             "commands; write /bin/bash (or /bin/bash -l)"))
        return problems

    def _shell_line_problems(self) -> list[Problem]:
        """The #! line: an absolute program (``/usr/bin/env bash`` included) and, while the script
        starts with ``set -o pipefail``, a bash."""
        if self.shell == "/bin/bash" or not isinstance(self.shell, str):
            return []
        words = self.shell.split()
        if not words or not words[0].startswith("/") or "\n" in self.shell:
            return [Problem("shell", f"{self.shell!r}: write the shell's absolute path, e.g. /bin/bash or /bin/bash -l")]
        program = words[1] if words[0].endswith("/env") and len(words) > 1 else words[0]
        if self.fail_fast != "off" and program.rpartition("/")[2] != "bash":
            return [Problem("shell", f"{self.shell!r}: the script uses bash (set -o pipefail); write /bin/bash, "
                                     "or set Fail fast to off")]
        return []

    def _check(self) -> list[Problem]:
        out: list[Problem] = self._shell_problems()
        names, values = _directive_text_fields(type(self))
        texts = values(self)
        # the usual values: plain text without a reference or a control character, so no directive check can apply
        # (printable text holds none of them, told by one C test before the search)
        plain = set(map(type, texts)) <= _PLAIN and "$" not in (joined := "".join(texts)) \
            and (joined.isprintable() or not _CONTROL.search(joined))
        if not plain:
            out += self._directive_text_problems(names, texts)
        if self.time:
            try:
                parse_time(self.time)
            except ValueError as exc:
                out.append(Problem("time", str(exc)))
            else:
                if self.time != self.time.strip():
                    out.append(Problem("time", f"{self.time!r} has blanks around it, and sbatch refuses it ('Invalid "
                                               f"--time specification'); write {self.time.strip()!r}"))
        if self.mem_per_cpu or self.mem_per_gpu:
            out += self._mem_problems([name for name in _MEM_FIELDS if getattr(self, name)])
        elif self.mem:  # the usual job: one memory option, read as sbatch reads it (nothing it could exclude)
            try:
                parse_mem(self.mem)
            except ValueError as exc:
                out.append(Problem("mem", str(exc)))
        # each check of the seldom-set fields finds nothing while they hold their defaults (the very objects): one
        # comparison in C instead of a test per check; text counts (nodes=2-4, gpus_per_node=a100:2) are read too
        seldom_unset = all(map(operator.is_, _SELDOM_FIELDS(self), _SELDOM_DEFAULTS))
        if not seldom_unset or isinstance(self.nodes, str) or isinstance(self.gpus_per_node, str):
            out += self._count_problems()
        # with every directive's text plain ASCII (no control character), the job name has no blank but a space
        if not (plain and joined.isascii()) and isinstance(self.job_name, str) \
                and _SPACE.search(self.job_name.replace(" ", "")):
            out.append(Problem("job_name", f"{self.job_name!r}: a job name cannot hold a line break, a tab or another "
                                           "blank than a space (an #SBATCH line ends at the line break); use - or _"))
        if not seldom_unset:
            out += self._directive_and_env_problems()
        modules = self.modules
        # the usual modules: names of module characters, none starting with - (one C-level pass over them)
        if modules and not (modules.__class__ is tuple and _PLAIN.issuperset(map(type, modules))
                            and all(map(_MODULE_NAME.fullmatch, modules))):
            out += self._module_problems()
        if not seldom_unset:
            out += self._gres_problems()
        return out

    def _directive_text_problems(self, names: tuple[str, ...], texts: tuple[Any, ...]) -> list[Problem]:
        """Text an #SBATCH line cannot carry: a control character, or a reference no shell expands there."""
        out = []
        for name, value in zip(names, texts):
            if not value or not isinstance(value, str):
                continue  # most are empty; another type is the generic check's
            if name != "job_name" and _CONTROL.search(value):
                out.append(Problem(name, f"{value!r} holds a line break or another control character, which an "
                                         "#SBATCH line cannot carry (it would be written as a space); remove it"))
            elif "$" in value:
                ref = _VARIABLE.search(value)
                shown = "$" if ref is None else "$(…)" if ref.group(0) == "$(" else ref.group(0)
                pattern = _PATTERN_FOR.get(shown.strip("${}"))
                if name in ("output", "error", "input"):
                    how = (f"the pattern sbatch fills in for it: {pattern}" if pattern else
                           "a file name pattern such as %u, %x, %j (%A_%a in an array)")
                else:
                    how = f"sbatch's command line, where your shell expands it (sbatch --{name.replace('_', '-')}=… job.sh)"
                out.append(Problem(name, f"{value!r}: #SBATCH lines are not read by the shell, so {shown} is not "
                                         f"expanded; use a fixed value or {how}"))
        return out

    def _mem_problems(self, names: Any) -> list[Problem]:
        """The memory options given (``names``): each as sbatch reads it, and no more than one of them."""
        out = []
        for name in names:
            try:
                parse_mem(getattr(self, name))
            except ValueError as exc:
                out.append(Problem(name, str(exc)))
        if len(names) > 1:
            flags = ", ".join("--" + n.replace("_", "-") for n in names)
            out.append(Problem(names[1], f"{flags} exclude each other; keep one"))
        return out

    def _count_problems(self) -> list[Problem]:
        """CPUs, GPUs, tasks and nodes against each other, and the array and mail type."""
        out: list[Problem] = []
        if self.cpus_per_gpu and self.cpus_per_task:
            out.append(Problem("cpus_per_gpu", "--cpus-per-gpu cannot be combined with --cpus-per-task; keep one"))
        if isinstance(self.array, str) and self.array and array_problem(self.array):
            out.append(Problem("array", array_problem(self.array)))
        if self.gpu_type and not self.gpus_per_node:
            out.append(Problem("gpu_type", "a GPU type needs GPUs per node (e.g. 1)"))
        if isinstance(self.gpus_per_node, str) and GPU_COUNTS.fullmatch(self.gpus_per_node):
            if self.gpu_type:
                out.append(Problem("gpu_type", f"GPUs per node {self.gpus_per_node!r} names its types itself; "
                                               "leave GPU type empty"))
        if isinstance(self.gpu_type, str) and self.gpu_type and not _GPU_TYPE.fullmatch(self.gpu_type):
            out.append(Problem("gpu_type", f"{self.gpu_type!r} is not a GPU type name (letters, digits, _ . -)"))
        out += self._gpus_and_per_node()
        out += self._text_counts()
        # each check below is about a task count (_whole(None) is 0): without one, none applies
        tasks = _whole(self.ntasks) if self.ntasks is not None else 0
        per_node, span = (_whole(self.ntasks_per_node), node_range(self.nodes)) if tasks else (0, None)
        if tasks and per_node and span is not None and span[1] > 0 and tasks > per_node * span[1]:
            where = f"{self.nodes} node(s)" if span[0] == span[1] else f"at most {span[1]} nodes ({self.nodes})"
            out.append(Problem("ntasks", f"{tasks} tasks do not fit in {where} × {per_node} tasks per node; "
                                        f"ask for at most {per_node * span[1]} tasks, or more nodes"))
        elif tasks and span is not None and span[0] > tasks:
            # sbatch: "can't run 1 processes on 2 nodes, setting nnodes to 1"
            out.append(Problem("ntasks", f"{tasks} task{'s' if tasks > 1 else ''} on {self.nodes} nodes: a node needs "
                                         f"a task, so sbatch lowers the nodes to {tasks}; ask for at least {span[0]} "
                                         "tasks, or fewer nodes"))
        elif tasks and per_node and (span == (1, 1) or self.nodes is None) and tasks < per_node:
            out.append(Problem("ntasks", f"--ntasks={tasks} wins over --ntasks-per-node={per_node} on one node (sbatch "
                                         f"takes the latter as a maximum): the job gets {tasks} task"
                                         f"{'s' if tasks > 1 else ''}, not {per_node}; drop one of the two"))
        if isinstance(self.mail_type, str) and self.mail_type:
            bad = [t for t in self.mail_type.split(",") if t.strip().upper() not in MAIL_TYPES]
            if bad:
                out.append(Problem("mail_type", f"unknown mail type {', '.join(bad)}; use {', '.join(MAIL_TYPES[:6])}, …"))
        return out

    def _directive_and_env_problems(self) -> list[Problem]:
        """The other directives' words and values, and variables the job exports twice."""
        out: list[Problem] = []
        if self.extra_directives:  # an empty (or falsy) value has no items to check
            out += self._extra_values()
            for d in list_items(self.extra_directives):
                if isinstance(d, str) and d and d[0] in TYPED_DASHES:
                    name, eq, value = d.partition("=")
                    out.append(Problem("extra_directives", f"{d!r} {TYPED_DASH} (copied from a document?): "
                                                           f"type it on the keyboard, {keyboard_option(name)}{eq}{value}"))
                elif isinstance(d, str) and not d.startswith("-") and not is_hetjob_word(d):
                    out.append(Problem("extra_directives", f"{d!r}: {STRAY_DIRECTIVE}, e.g. --signal=USR1@90"))
        if self.env:
            names = [e.name for e in list_items(self.env) if isinstance(e, EnvVar)]
            for name in sorted({n for n in names if names.count(n) > 1}):
                out.append(Problem("env", f"{name} is exported more than once; keep one value"))
        return out

    def _module_problems(self) -> list[Problem]:
        out = []
        for m in list_items(self.modules):
            if isinstance(m, str) and m.startswith("-"):
                out.append(Problem("modules", f"{m!r} starts with -, so module load reads it as one of its options; "
                                              "give the module's name (options such as --force go in a set-up line)"))
            elif isinstance(m, str) and not _MODULE.fullmatch(m):
                out.append(Problem("modules", f"{m!r} is not a module name (e.g. apptainer or cuda/12.1)"))
        return out

    def _gres_problems(self) -> list[Problem]:
        out = []
        for item in list_items(self.other_gres):
            if not isinstance(item, str):
                continue
            if "$" in item:
                out.append(Problem("other_gres", f"{item!r}: #SBATCH lines are not read by the shell, so ${{…}} is not "
                                                 "expanded; write the amount itself, e.g. lscratch:200"))
            elif not _GRES_ITEM.fullmatch(item):
                out.append(Problem("other_gres", f"{item!r} is not a generic resource; write NAME[:TYPE]:COUNT, e.g. lscratch:200"))
            elif item.partition(":")[0] == "gpu" and self.gpus_per_node and self.gpu_flag == "gres":
                out.append(Problem("other_gres", f"--gres asks for GPUs twice ({self.gres()} and {item}); "
                                                 "ask for them once, with the count each node needs"))
            elif item.partition(":")[0] == "gpu":
                out.append(Problem("other_gres", f"{item!r}: ask for GPUs with GPUs per node (and GPU type), not among "
                                                 "the other generic resources"))
        return out


#: the memory options, in the order their problems are reported
_MEM_FIELDS = ("mem", "mem_per_cpu", "mem_per_gpu")
#: a module name that module load cannot take for one of its options
_MODULE_NAME = re.compile(f"(?!-)(?:{_MODULE.pattern})")
#: the fields only seldom-set checks read (CPUs per GPU, arrays, GPU types and totals, task counts, mail, other
#: directives, exported variables, other generic resources), and their defaults, from the field metadata
_SELDOM = ("cpus_per_gpu", "array", "gpu_type", "gpus", "gpus_per_task", "ntasks", "mail_type", "extra_directives",
           "env", "other_gres")
_SELDOM_FIELDS = operator.attrgetter(*_SELDOM)
_SELDOM_DEFAULTS = tuple(SlurmJob.field_spec(name).default for name in _SELDOM)

#: the options NVIDIA's pyxis SPANK plugin adds to srun (pyxis args.c, spank_opts[]): SPANK options join srun's
#: own getopt_long table, so a value follows "=" or comes as the next word (--container-image /x.sqsh)
PYXIS_VALUE_OPTIONS = frozenset({"--container-image", "--container-mounts", "--container-workdir", "--container-name",
                                 "--container-save", "--container-env"})
#: pyxis's switches (no value: the next word is srun's command)
PYXIS_SWITCHES = frozenset({"--container-mount-home", "--no-container-mount-home", "--container-remap-root",
                            "--no-container-remap-root", "--container-entrypoint", "--no-container-entrypoint",
                            "--container-entrypoint-log", "--container-writable", "--container-readonly"})


@dataclass(frozen=True)
class Srun(Spec):
    """A job step: ``srun [options]`` in front of the command it launches."""

    kind = "slurm.srun"
    #: srun options the model has no field for that take the next word as their value (kept in ``extra``
    #: with it): sbatch's own, srun's -W/--wait=SECONDS, --relative, --epilog…, and pyxis's --container-image…
    other_value_options = frozenset(
        {flag for flag, takes in SBATCH_OPTIONS.items() if takes == "value"}
        | {s for s, flag in SBATCH_SHORT.items() if SBATCH_OPTIONS.get(flag) == "value"}
        | {"--accel-bind", "--epilog", "--prolog", "--task-epilog", "--task-prolog", "--relative", "--jobid",
           "--het-group", "--pack-group", "--slurmd-debug", "--wait", "--threads", "-W", "-T", "-r",
           "--bcast-exclude", "--tree-width"}
        | PYXIS_VALUE_OPTIONS)
    #: options the model has no field for that are known switches (kept in ``extra`` without a note)
    other_switch_options = PYXIS_SWITCHES | frozenset({
        "-v", "--verbose", "-Q", "--quiet", "-u", "--unbuffered", "-X", "--disable-status", "-E", "--preserve-env",
        "-O", "--overcommit", "-s", "--oversubscribe", "-Z", "--no-allocate", "-H", "--hold"})
    #: short options whose value is optional, so it can only be attached (getopt's "K::"): -K1, -k, -I60. In a
    #: cluster such an option takes the rest of the word as its value (-lK0 is -l -K0)
    attached_value_options = frozenset({"-K", "-k", "-I"})

    program: str = opt("srun", label="Program", role="program", choices=("srun",), help="Slurm's step launcher.")
    nodes: int | None = opt(None, label="Nodes", flag="--nodes", short="-N", minimum=1, maximum=MAX_COUNT,
                            text_forms=(NODE_RANGE_FORM, REFERENCE_FORM, COMPUTED_FORM),
                            help="Nodes for this step (default: all of the job's).")
    ntasks: int | None = opt(None, label="Tasks", flag="--ntasks", short="-n", minimum=1, maximum=MAX_COUNT,
                             text_forms=(REFERENCE_FORM, COMPUTED_FORM),
                             help="Tasks for this step (default: the job's).")
    ntasks_per_node: int | None = opt(None, label="Tasks per node", flag="--ntasks-per-node", minimum=1,
                                      maximum=MAX_COUNT,
                                      aliases=("--tasks-per-node",), text_forms=(REFERENCE_FORM, COMPUTED_FORM),
                                      help="Tasks per node for this step: 1 in front of torchrun (it starts the workers), one per rank for MPI.")
    cpus_per_task: int | None = opt(None, label="CPUs per task", flag="--cpus-per-task", short="-c", minimum=1,
                                    maximum=MAX_COUNT,
                                    text_forms=(REFERENCE_FORM, COMPUTED_FORM),
                                    help="Pass the job's value again: srun of Slurm 22.05–23.02 does not inherit it.")
    gpus_per_task: int | None = opt(None, label="GPUs per task", flag="--gpus-per-task", minimum=1,
                                    maximum=MAX_COUNT, advanced=True,
                                    text_forms=(GPU_COUNTS_FORM, REFERENCE_FORM, COMPUTED_FORM),
                                    help="GPUs bound to each task of the step.")
    mpi: str = opt("", label="MPI plugin", flag="--mpi", choices=("none", "pmix", "pmix_v3", "pmix_v4", "pmix_v5", "pmi2", "cray_shasta"),
                   help="The process-management interface for MPI programs (pmix for containers in the hybrid model).")
    cpu_bind: str = opt("", label="CPU binding", flag="--cpu-bind", advanced=True, help="e.g. cores, none, verbose.")
    gpu_bind: str = opt("", label="GPU binding", flag="--gpu-bind", advanced=True, help="e.g. closest, none, single:1.")
    label: bool = opt(False, label="Label output", flag="--label", short="-l", advanced=True,
                      help="Prefix each output line with its task number.")
    kill_on_bad_exit: bool = opt(False, label="Kill on bad exit", flag="--kill-on-bad-exit", short="-K", advanced=True,
                                 help="End the whole step when one task fails (avoids hung collectives).")
    extra: tuple[str, ...] = opt((), label="Other options", advanced=True,
                                 help="Further srun options written as they are.")
    command: tuple[str, ...] = opt((), label="Command", role="rest",
                                   help="What the step runs on every task (in a workflow: the container and launcher layers).")

    def _check(self) -> list[Problem]:
        return extra_problems(self.extra, self.other_value_options, "srun")
