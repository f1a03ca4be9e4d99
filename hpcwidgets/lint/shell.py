"""Rules about shell slips in a job script: variables each task should expand, assignments and line
continuations bash reads otherwise, quotes and dashes, the script's own path in the spool, array tasks, installs at
job start, modules, conda, and signals and traps.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import bisect
import itertools
import re
from typing import Any, Iterator

from ..errors import ParseError
from ..parse.lexer import (PATH_PLACEHOLDER, TEMPLATE_PLACEHOLDER, compound_body, directive_words, lex_script,
                           template_placeholder, template_placeholders)
from ..parse.script import launch_words, shell_script_text
from ..spec._words import Verbatim, passed_text
from ..spec.slurm import TYPED_DASHES, SlurmJob, array_task_ids, is_shell, keyboard_option, shebang_program
from . import Context, Fix, rule
from .catalogue import (MPI_LAUNCHERS, NODE_LOCAL, _Inner, _PYTHON, _batch_signal, _code_in_order, _functions, _indent,
                        _shell_c_word, _signal_name, _simple_commands, _typographic_option, all_words, apptainer_env,
                        cached, containers, expanded_refs, handler_of, heterogeneous, is_wait, job_nodes, job_tasks,
                        other_launches, resources_from_command_line, shell_script_word, simple_commands, steps,
                        tasks_per_node, trap_handler_commands, traps_for)
from .environment import batch_shell_filters_twice


def raw_text(cmd: Any) -> str:
    return " ".join(w.raw for w in all_words(cmd))


PER_TASK_VARS = ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID")

#: the commands that only print their words
PRINTERS = ("echo", "printf")
#: those and the one that prints nothing: commands that run nothing of their words
_PRINTERS = (*PRINTERS, ":")


@rule("HPC502", "per-task-variable-expanded-once", "error",
      summary="$SLURM_PROCID / $SLURM_LOCALID / $SLURM_NODEID expanded by the batch shell",
      why="The batch script runs once, as task 0 of the first node: it replaces the variable before srun starts "
          "the tasks, so every task receives 0 (all ranks claim rank 0, all use GPU 0). Inside srun bash -c \"…\" "
          "the double quotes expand it just as early. In srun's own options (srun --output=log_$SLURM_NODEID.txt) "
          "no quoting helps: srun reads them once, before any task starts. Not reported where every task has 0 "
          "anyway: a job of one task, and $SLURM_LOCALID where every step runs one task per node (HPC513 reports a "
          "GPU variable set from it); nor $SLURM_NODEID in a path on node-local storage (/tmp/cache-$SLURM_NODEID), "
          "which names a folder of each node's own either way.",
      fix="Let each task expand it: srun bash -c 'python train.py --rank \"$SLURM_PROCID\"' (single quotes), or "
          "read the variable inside the program (os.environ['SLURM_PROCID']). In srun's --output, --error or "
          "--input, write srun's filename patterns instead: %n (the node's number in the job) for $SLURM_NODEID, "
          "%t (the task's rank) for $SLURM_PROCID; the fix does so.",
      catalogue=(22,),
      bad="""#!/bin/bash
#SBATCH --ntasks=4
srun bash -c "python train.py --rank $SLURM_PROCID"
""",
      good="""#!/bin/bash
#SBATCH --ntasks=4
srun bash -c 'python train.py --rank "$SLURM_PROCID"'
""")
def _per_task(ctx: Context) -> Iterator[Any]:
    if all(same_in_every_task(ctx, name) for name in PER_TASK_VARS):
        return
    for cmd in ctx.parsed.lexed.code:
        # a case/if/for head in the batch shell (case $SLURM_LOCALID in …) is evaluated once, as task 0
        if cmd.kind != "compound" or not re.match(r"\s*(?:case|if|elif|while|until|for)\b", cmd.text):
            continue
        head = cmd.text.split("\n", 1)[0]
        hits = sorted({name for name, _ in expanded_refs(head)
                       if name in PER_TASK_VARS and not same_in_every_task(ctx, name)})
        if hits:
            yield cmd.line, (f"{', '.join('$' + h for h in hits)} is read once by the batch shell (as task 0), so this "
                             "branch is the same for every task; let each task choose (srun bash -c '…' or in the "
                             "program)")
    yield from _expanded_into_a_wrapper(ctx)
    one_task = _one_task_steps(ctx)
    for cmd in simple_commands(ctx):
        if cmd.name in _PRINTERS or any(cmd is c for c in one_task):
            continue
        own = _srun_own_words(cmd)
        found = _in_srun_options(ctx, cmd, own)
        if found is not None:
            yield found
        command = [w for w in all_words(cmd) if not any(w is o for o in own)]  # past srun's own options
        hits = sorted({name for w in command for name, _ in expanded_refs(w.raw)
                       if name in PER_TASK_VARS and not same_in_every_task(ctx, name)})
        if not hits or _only_ignored_node_rank(ctx, cmd) or _set_again_per_task(ctx, cmd) or \
                _set_again_by_torchrun(ctx, cmd) or _names_a_node_local_folder(cmd, hits):
            continue
        names = ", ".join(f"${h}" for h in hits)
        words = [str(v) for v in cmd.argv]
        if words and words[0] == "srun" and any(w in ("bash", "sh", "/bin/bash", "/bin/sh") for w in words):
            yield cmd.line, (f"{names} is inside double quotes, so the batch shell expands it once (to 0) before srun "
                             "starts the tasks; use single quotes around the bash -c script")
        else:
            yield cmd.line, (f"{names} is expanded once by the batch shell (task 0), so every task gets the same value; "
                             f"let each task read it (srun bash -c '…${hits[0]}…' or os.environ in the program)")


def _expanded_into_a_wrapper(ctx: Context) -> Iterator[Any]:
    """HPC502 for a wrapper the batch script writes with an unquoted here-document (cat << EOF > select_gpu) and srun
    runs in front of the program: a $SLURM_LOCALID (…) written there without a backslash is filled in once, when the
    batch shell writes the file, so every task's wrapper holds the same number."""
    from .devices import srun_wrappers
    for step, written, line, text in srun_wrappers(ctx):
        hits = sorted({name for name in PER_TASK_VARS if not same_in_every_task(ctx, name)
                       and re.search(rf"\x00(?:\{{{name}\}}|{name}(?!\w))", text)})
        if hits:
            names = ", ".join(f"${h}" for h in hits)
            yield line, (f"{names} in the here-document written to {written} is filled in by the batch shell when it "
                         f"writes the file (as task 0), so the wrapper srun runs on line {step.line} holds the same "
                         f"value for every task; write \\${hits[0]} there, or quote the delimiter (<< 'EOF')")


def _names_a_node_local_folder(cmd: Any, hits: list[str]) -> bool:
    """Whether ``cmd`` only assigns paths on node-local storage named with $SLURM_NODEID
    (``export MIOPEN_USER_DB_PATH=/tmp/$USER-miopen-$SLURM_NODEID``): the batch shell's 0 names a folder of that name
    on every node, and each node's is its own, so one value for all of them is what the name was for."""
    if hits != ["SLURM_NODEID"] or (cmd.words and cmd.name not in ("export", "declare", "typeset")):
        return False
    return all(NODE_LOCAL.match(word.raw.lstrip("\"'")) for _, word in cmd.assignments
               if any(name == "SLURM_NODEID" for name, _ in expanded_refs(word.raw)))


#: what torchrun sets for each worker it starts, over whatever the environment held
_TORCHRUN_SETS = frozenset({"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                            "ROLE_WORLD_SIZE"})


def _set_again_by_torchrun(ctx: Context, cmd: Any) -> bool:
    """Whether ``cmd`` only exports variables torchrun sets anew for each worker (export RANK=$SLURM_PROCID), in a
    script whose every launch is torchrun: the batch shell's value never reaches a worker, so it is no mistake."""
    names = {name for name, _ in cmd.assignments}
    if not names or not names <= _TORCHRUN_SETS or (cmd.words and cmd.name not in ("export", "declare", "typeset")):
        return False
    launches = steps(ctx)
    return bool(launches) and all(getattr(s.chain.launcher, "kind", "") == "torchrun" for s in launches)


#: srun's options that name the files of the tasks' standard streams, where srun's filename patterns make one file
#: per node or per task
_STREAM_OPTIONS = frozenset({"-o", "--output", "-e", "--error", "-i", "--input"})

#: the srun filename pattern that stands for a per-task variable, and what it gives (srun(1), "IO Redirection");
#: $SLURM_LOCALID has none
_STREAM_PATTERNS = {"SLURM_NODEID": ("%n", "the node's number in the job: one file per node"),
                    "SLURM_PROCID": ("%t", "the task's rank: one file per task")}


def _srun_own_words(cmd: Any) -> list[Any]:
    """The words of srun's own options in ``cmd`` (``-N 2 --output=log_$X`` of ``srun -N 2 --output=log_$X prog``),
    as the srun model reads them (it knows which options take a value); [] for a command that runs no srun."""
    from ..parse.argv import parse_argv
    words = list(cmd.words)
    at = next((k for k, w in enumerate(words) if str(w.value).rsplit("/", 1)[-1] == "srun"), None)
    if at is None:
        return []
    try:
        tail = parse_argv([str(w.value) for w in words[at:]]).model.command
    except ParseError:
        return []
    return words[at + 1:len(words) - len(tail)]


def _own_option_of(words: list[Any]) -> list[tuple[Any, str]]:
    """Each of srun's own option ``words`` with the option it belongs to: ``--output`` for ``--output=F``, ``-o``
    for ``-oF`` and for the ``F`` of ``-o F``."""
    out, option = [], ""
    for word in words:
        text = str(word.value)
        if text.startswith("--"):
            option = text.partition("=")[0]
        elif text.startswith("-"):
            option = text[:2]
        out.append((word, option))
    return out


def _in_srun_options(ctx: Context, cmd: Any, own: list[Any]) -> tuple[Any, ...] | None:
    """HPC502's finding for per-task variables in srun's own options (``srun --output=log_$SLURM_NODEID …``): srun
    reads them once, before any task exists, so no quoting can make them per task; for the files of --output,
    --error and --input, srun's filename patterns do what was meant (%n the node's number in the job, %t the task's
    rank), with a fix where each reference is a plain $NAME or ${NAME} written on the command's lines."""
    hits = [(word, option, name) for word, option in _own_option_of(own) for name, _ in expanded_refs(word.raw)
            if name in PER_TASK_VARS and not same_in_every_task(ctx, name)]
    if not hits:
        return None
    names = sorted({name for _, _, name in hits})
    shown = ", ".join(f"${name}" for name in names)
    options = " and ".join(dict.fromkeys(option for _, option, _ in hits))
    head = (f"{shown} is in srun's own {options}: srun reads its options once, before it starts any task, so the "
            "batch shell's value (0) is the one for every node and task (srun bash -c '…' cannot change that)")
    if not all(option in _STREAM_OPTIONS for _, option, _ in hits):
        return cmd.line, f"{head}; an srun option takes no value per task: let the program read the variable"
    if any(name not in _STREAM_PATTERNS for name in names):
        return cmd.line, (f"{head}; srun's filename patterns have none for a task's number on its node: name the "
                          "file with %t (the task's rank) or %N (the node's name) instead")
    advice = "; ".join(f"{_STREAM_PATTERNS[name][0]} for ${name} ({_STREAM_PATTERNS[name][1]})" for name in names)
    message = f"{head}; write srun's filename pattern instead: {advice}"
    fix = _stream_pattern_fix(ctx, [word for word, _, _ in hits], names)
    return (cmd.line, message, fix) if fix else (cmd.line, message)


def _stream_pattern_fix(ctx: Context, words: list[Any], names: list[str]) -> Fix | None:
    """The lines of ``words`` with each reference to the per-task variables ``names`` replaced by its srun filename
    pattern; None unless every reference there is a plain ``$NAME`` or ``${NAME}`` that bash expands (none in single
    quotes or after a backslash), in a word found where the lexer put it."""
    reference = re.compile(r"\$(?:\{(" + "|".join(names) + r")\}|(" + "|".join(names) + r")(?!\w))")
    lines: dict[int, str] = {}
    # right to left on each line: a replacement shortens its line, and the columns of the words before it stay
    for word in sorted({id(w): w for w in words}.values(), key=lambda w: (w.line, -w.col)):
        text = lines.get(word.line, ctx.parsed.lines[word.line - 1])
        at, raw = word.col - 1, word.raw
        expanded = sum(1 for name, _ in expanded_refs(raw) if name in names)
        if text[at:at + len(raw)] != raw or "'" in raw or "\\" in raw or len(reference.findall(raw)) != expanded:
            return None
        written = reference.sub(lambda m: _STREAM_PATTERNS[m.group(1) or m.group(2)][0], raw)
        lines[word.line] = text[:at] + written + text[at + len(raw):]
    first, last = min(lines), max(lines)
    shown = ", ".join(f"{_STREAM_PATTERNS[name][0]} for ${name}" for name in names)
    return Fix(f"write srun's filename pattern ({shown})", first, last,
               text="\n".join(lines.get(n, ctx.parsed.lines[n - 1]) for n in range(first, last + 1)))


def same_in_every_task(ctx: Context, name: str) -> bool:
    """Whether every task has the value the batch shell gives the per-task variable ``name`` (0: the batch shell is
    task 0 on node 0), so that expanding it there changes nothing: the batch shell is the job's only task (one node,
    no step that starts tasks), or the job and each of its steps run one task; and for $SLURM_LOCALID, every step
    runs one task on each node (torchrun or accelerate then starts the node's workers)."""
    def make() -> dict[str, bool]:
        only_batch = job_nodes(ctx) < 2 and not any(w.rsplit("/", 1)[-1] in ("srun", *MPI_LAUNCHERS)
                                                    for cmd in simple_commands(ctx)
                                                    for w in [str(v) for v in cmd.argv][:3])
        everywhere = only_batch or (job_tasks(ctx) == 1 and _one_task_everywhere(ctx))
        return {n: everywhere or (n == "SLURM_LOCALID" and _one_task_per_node(ctx)) for n in PER_TASK_VARS}
    return cached(ctx, "per_task_same_in_every_task", make)[name]


def _one_task_per_node(ctx: Context) -> bool:
    """Whether every step starts one task on each of its nodes, and no MPI launcher starts tasks of its own."""
    if heterogeneous(ctx) or any(w.rsplit("/", 1)[-1] in MPI_LAUNCHERS for cmd in simple_commands(ctx)
                                 for w in [str(v) for v in cmd.argv][:3]):
        return False
    return all(tasks_per_node(ctx, step) == 1 for step in steps(ctx))


def _one_task_steps(ctx: Context) -> list[Any]:
    """The commands of srun steps that start one task (``srun -N1 -n1 …``, often several in turn or side by side, each
    with a GPU of its own): that task is task 0 on node 0 of its step, the values the batch shell gives its
    ``$SLURM_PROCID``, ``$SLURM_LOCALID`` and ``$SLURM_NODEID``, so expanding them early changes nothing."""
    out = []
    for step in steps(ctx):
        srun, program = step.chain.srun, [str(w).rsplit("/", 1)[-1] for w in step.chain.program[:1]]
        if srun is None or (program and program[0] in MPI_LAUNCHERS):
            continue  # (mpirun under srun starts tasks of its own)
        if srun.ntasks == 1 or (srun.ntasks is None and srun.nodes == 1 and srun.ntasks_per_node == 1):
            out.append(step.command)
    return out


def _one_task_everywhere(ctx: Context) -> bool:
    """Whether every step of a one-task job runs one task: no srun of its own -n or --ntasks-per-node above 1, no
    MPI launcher (mpirun -np 4 starts tasks of its own)."""
    for cmd in simple_commands(ctx):
        if any(w.rsplit("/", 1)[-1] in MPI_LAUNCHERS for w in [str(v) for v in cmd.argv][:3]):
            return False
    for step in steps(ctx):
        srun = step.chain.srun
        if srun is not None and any(v is not None and v != 1 for v in (srun.ntasks, srun.ntasks_per_node, srun.nodes)):
            return False
    return not heterogeneous(ctx)


#: a per-task variable, and the option that a reference right after it gives its value to
_PER_TASK_REF = re.compile(r"\$\{?(?:" + "|".join(PER_TASK_VARS) + r")\b")

_NODE_RANK_BEFORE = re.compile(r"--(?:node|machine)[-_]rank(?:=|\s+)[\"']?$")
#: the options that give a launcher its node's rank: torchrun's, and accelerate's, which it hands on to torchrun
_NODE_RANK_OPTIONS = ("--node-rank", "--node_rank", "--machine_rank", "--machine-rank")


def _only_ignored_node_rank(ctx: Context, cmd: Any) -> bool:
    """Whether the per-task variables of ``cmd`` reach only ``--node-rank`` of torchrun launches (or accelerate's
    ``--machine_rank``, its node rank for torchrun) whose rendezvous is not static: on the line itself, through the
    launch command a variable holds (``LAUNCHER="torchrun --node_rank=$SLURM_NODEID … --rdzv_backend c10d"``, then
    ``srun $LAUNCHER``), or through a variable that holds the rank alone (``NODE_RANK=$SLURM_PROCID``, read nowhere but
    as such an option's value). torch/distributed/run.py reads the node rank for the static backend alone (c10d
    numbers the nodes itself), so the same value on every node changes nothing (HPC105 says to remove the option)."""
    held = _rank_variables(cmd)
    if held:
        readers = [other for other in simple_commands(ctx) if other.line != cmd.line
                   and any(name in held for w in all_words(other) for name, _ in expanded_refs(w.raw))]
        return bool(readers) and not _exported(ctx, held) and all(
            _gives_only_ignored_node_ranks(ctx, other, re.compile(r"\$\{?(?:" + "|".join(held) + r")\b"))
            for other in readers)
    return _gives_only_ignored_node_ranks(ctx, cmd, _PER_TASK_REF)


def _rank_variables(cmd: Any) -> list[str]:
    """The names a plain assignment gives a per-task variable's value alone (``NODE_RANK=$SLURM_NODEID``); [] for
    any other command."""
    if cmd.argv or not cmd.assignments:
        return []
    names = [key for key, word in cmd.assignments if _PER_TASK_REF.fullmatch(word.raw.strip("\"'").rstrip("}"))]
    return names if len(names) == len(cmd.assignments) else []


def _exported(ctx: Context, names: list[str]) -> bool:
    """Whether the script exports any of ``names``: a program may then read it from its environment (Lightning reads
    NODE_RANK), where the batch shell's one value is wrong."""
    return any(str(words[0]) in ("export", "declare", "typeset") and
               any(str(w).split("=", 1)[0] in names for w in words[1:])
               for cmd in simple_commands(ctx) for words in [list(cmd.argv)] if words)


def _gives_only_ignored_node_ranks(ctx: Context, cmd: Any, reference: re.Pattern[str]) -> bool:
    """Whether every ``reference`` in ``cmd`` is the value of a node-rank option, and ``cmd`` is (or holds, through
    the variable it assigns) only launches whose rendezvous ignores it."""
    using = [s for s in steps(ctx)
             if s.line == cmd.line or any(at == cmd.line for _, at in s.through)]
    if not using or not all(_node_rank_ignored(ctx, s) for s in using):
        return False
    words = all_words(cmd)
    if reference is _PER_TASK_REF and sum(len(reference.findall(w.raw)) for w in words) \
            < sum(name in PER_TASK_VARS for w in words for name, _ in expanded_refs(w.raw)):
        return False  # a name in arithmetic, (( SLURM_NODEID )): not a --node-rank value
    for k, w in enumerate(words):
        for m in reference.finditer(w.raw):
            before = w.raw[:m.start()]
            if _NODE_RANK_BEFORE.search(before):
                continue
            if before.strip("\"'") or k == 0 or words[k - 1].raw not in _NODE_RANK_OPTIONS:
                return False
    return True


def _node_rank_ignored(ctx: Context, step: Any) -> bool:
    """Whether the step is a torchrun (or accelerate) launch whose rendezvous backend is one the script names and
    not static."""
    launcher = step.chain.launcher
    if launcher is not None and launcher.kind == "torchrun":
        backend = str(launcher.rdzv_backend or "")
    else:
        accelerate = [o for o in other_launches(ctx) if o.step is step and o.name == "accelerate launch"]
        if len(accelerate) != 1:
            return False
        options = accelerate[0].options
        backend = options.get("--rdzv_backend", options.get("--rdzv-backend", ""))
    backend = ctx.parsed.resolve(backend, step.line).strip("'\" ")
    return backend not in ("", "static") and "$" not in backend  # "": torchrun's default, static


def _set_again_per_task(ctx: Context, cmd: Any) -> bool:
    """Whether ``cmd`` only assigns per-task variables to names (``export NODE_RANK=$SLURM_PROCID``) that every
    other command sets again before it reads them, and that every later srun sets again when they are exported
    (``srun bash -c "export NODE_RANK=\\$SLURM_PROCID; torchrun --node-rank=\\$NODE_RANK …"``): each task then
    uses its own value and the batch shell's is never read."""
    if cmd.kind != "simple" or (cmd.words and (cmd.name != "export" or len(cmd.words) != 1 + len(cmd.assignments))):
        return False
    names = {n for n, w in cmd.assignments if any(m in PER_TASK_VARS for m, _ in expanded_refs(w.raw))}
    if not names:
        return False
    set_again = False
    for other in ctx.parsed.lexed.code:
        if other is cmd or other.kind in ("comment", "directive", "shebang", "blank"):
            continue
        for name in names:
            refs = [m.start() for m in re.finditer(r"\$\{?" + name + r"\b", other.text)]
            sets = [m.start() for m in re.finditer(r"(?<![\w$-])" + name + r"=", other.text)]
            if refs and (not sets or sets[0] > refs[0]):
                return False
            exported = cmd.name == "export" or any(v.name == name and v.exported for v in ctx.parsed.variables)
            if exported and other.line > cmd.line and re.search(r"\bsrun\b", other.text) and not sets:
                return False
            set_again = set_again or bool(sets) and other.line > cmd.line
    return set_again


#: an upper-case name (NPROC, BS) or a lower-case one with an underscore (num_gpus): a variable, not a program
_VARIABLE_NAME = re.compile(r"[A-Z][A-Z0-9_]*|[a-z_][a-z0-9]*_[a-z0-9_]*")

#: commands that do take ``=`` as an argument (``test "$a" = b``, ``echo =====``): never a slip
_TAKES_EQUALS = frozenset({"echo", "printf", "print", "test", "[", "[[", "let", "alias", "declare", "typeset", "local",
                           "export", "readonly", "eval", "exec", "set", "unset", "source", ".", "read", "expr", "bc",
                           "awk", "gawk", "sed", "grep", "logger", "printenv", "env", "command", "builtin", ":",
                           "true", "false", "R"})

#: a value that runs as no command: a number, an arithmetic expansion, a quoted text without expansions
_NO_COMMAND = re.compile(r"[0-9]+(?:\.[0-9]*)?|\$\(\(.*\)\)|'[^']*'|\"[^\"$`\\]*\"")


@rule("HPC520", "spaces-around-assignment", "error",
      summary="NAME = value: spaces around = make bash run NAME as a command instead of assigning it",
      why="Bash assigns only NAME=value written as one word. With a space before the = (NAME = value, NAME =value) "
          "it runs a command called NAME with the rest as its arguments: 'NAME: command not found', exit 127, and "
          "under set -e the job stops there, after its time in the queue; without set -e the script goes on with "
          "NAME unset (an empty --num_processes, a default batch size). With a space after it only (NAME= 4) bash "
          "sets NAME to an empty string for a command called 4. Python-style settings copied into a job script "
          "(num_gpus = 4) are the usual source. A command the script defines as a function, test, [ and [[, let, "
          "(( )) and alias take their = as an argument and are not reported; NAME= before a real command "
          "(IFS= read -r line) is not either, only before a number or a quoted text. After export, declare, "
          "typeset, local or readonly each word is a NAME or a NAME=value of its own: export NAME= value sets NAME "
          "to an empty string and fails on the value ('not a valid identifier', exit status 1, and set -e stops "
          "the job), and export NAME = value leaves NAME unset; a value that is itself a name (export MODE= train) "
          "fails nothing, and NAME is still empty.",
      fix="Remove the spaces around =: NAME=value (the fix does so when the line is one assignment and nothing "
          "else, and after export and its kind when the words are on one line).",
      bad="""#!/bin/bash
#SBATCH --nodes=2
set -e
NUM_PROCESSES = $((SLURM_NNODES * 4))
srun python train.py --num-processes "$NUM_PROCESSES"
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
set -e
NUM_PROCESSES=$((SLURM_NNODES * 4))
srun python train.py --num-processes "$NUM_PROCESSES"
""")
def _spaced_assignment(ctx: Context) -> Iterator[Any]:
    if not ctx.parsed.directives and not ctx.parsed.source.startswith("#!"):
        return  # no #! line and no #SBATCH: maybe no shell script at all (key = value is TOML's, or Python's)
    functions = _functions(ctx)
    for cmd, _, _ in _code_in_order(ctx):
        declared = _spaced_declaration(ctx, cmd, functions)
        if declared:
            yield declared
            continue
        found = _spaced(cmd, functions)
        if found is None:
            continue
        name, value, written = found
        fix = _spaced_fix(ctx, cmd, name, value)
        runs = f"{name} as a command" if not cmd.assignments else f"{value} as a command, with {name} empty"
        advice = (f"remove the spaces: {name}={value}" if " " not in value else
                  f"remove the spaces and quote the value: {name}=\"{value}\"" if not re.search(r"[\"'$`\\]", value)
                  else "remove the spaces and write the value as one word")
        yield (cmd.line, f"{written} is no assignment: bash runs {runs} ('command not found', exit 127; under set -e "
                         f"the job stops here) and {name} stays unset; {advice}", fix)


#: the builtins that take NAME=value arguments and set each NAME (with its attribute: exported, read-only, local)
_DECLARATIONS = frozenset({"export", "declare", "typeset", "local", "readonly"})

#: a shell variable's name: what export, declare, local and readonly take as an argument of its own
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _spaced_declaration(ctx: Context, cmd: Any, functions: dict[str, int]) -> tuple[int, str, Fix | None] | None:
    """HPC520's finding for ``export NAME= value`` or ``export NAME = value`` (also declare, typeset, local,
    readonly): each argument is one NAME or NAME=value, so the builtin sets NAME to an empty string (or leaves it
    unset before a lone =) and fails on the word that follows ('not a valid identifier', status 1). A following
    word that is itself a name (export A= B) is exported too, without an error, and still leaves NAME empty."""
    if cmd.kind != "simple" or len(cmd.words) < 3 or cmd.name not in _DECLARATIONS or cmd.name in functions \
            or cmd.words[0].quoted:
        return None
    words = cmd.words
    k = 1
    while k < len(words) and re.fullmatch(r"[-+][A-Za-z]+", words[k].raw):  # declare -x, local -r
        k += 1
    for i in range(k, len(words) - 1):
        word, after = words[i].raw, words[i + 1].raw
        if word.endswith("=") and _NAME.fullmatch(word[:-1]) and not after.startswith("="):
            if re.match(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^]]*\])?\+?=", after):
                continue  # export A= B=2: two assignments, the first one empty on purpose
            name, value, group = word[:-1], after, words[i:i + 2]
            if _NAME.fullmatch(after):
                effect = (f"{cmd.name} sets {name} to an empty string and takes {after} as a second variable's name "
                          f"(no error, nothing says so)")
            else:
                effect = (f"{cmd.name} sets {name} to an empty string and then fails on {after} ('not a valid "
                          f"identifier', exit status 1; under set -e the job stops here)")
        elif _NAME.fullmatch(word) and (after == "=" or after.startswith("=")):
            name = word
            group = words[i:i + 3] if after == "=" and i + 2 < len(words) else words[i:i + 2]
            value = group[-1].raw if after == "=" else after[1:]
            if not value:
                continue
            effect = (f"{cmd.name} takes {name} without a value, so it stays unset, and then fails on "
                      f"{' '.join(w.raw for w in group[1:])} ('not a valid identifier', exit status 1; under set -e "
                      f"the job stops here)")
        else:
            continue
        written = " ".join(w.raw for w in group)
        joined = f"{name}={value}"
        return (cmd.line, f"{written} after {cmd.name} is no assignment of {value}: {effect}; remove the space: "
                          f"{joined}", _joined_fix(ctx, group, joined))
    return None


def _joined_fix(ctx: Context, group: Any, joined: str) -> Fix | None:
    """The line with ``joined`` (NAME=value) in place of the words of ``group``, when they are on one line."""
    first, last = group[0], group[-1]
    if first.line != last.line or any("\n" in w.raw for w in group):
        return None
    line = ctx.parsed.lines[first.line - 1]
    start, end = first.col - 1, last.col - 1 + len(last.raw)
    at = start
    for w in group:  # each word where it says it is, with only blanks between them
        gap = line[at:w.col - 1] if w is not first else ""
        if gap.strip() or line[w.col - 1:w.col - 1 + len(w.raw)] != w.raw:
            return None  # not where the words say: leave the line alone
        at = w.col - 1 + len(w.raw)
    return Fix(f"remove the space ({joined})", first.line, first.line, text=line[:start] + joined + line[end:])


def _spaced(cmd: Any, functions: dict[str, int]) -> tuple[str, str, str] | None:
    """``(NAME, value, as written)`` for a command that reads as a spaced assignment (``NAME = value``,
    ``NAME =value``, ``NAME= 4``), else None."""
    if cmd.kind != "simple" or not cmd.words:
        return None
    words = cmd.words
    if len(cmd.assignments) == 1 and not cmd.name == "export" and len(words) == 1:  # NAME= 4
        name, empty = cmd.assignments[0]
        if empty.raw == "" and _VARIABLE_NAME.fullmatch(name) and _NO_COMMAND.fullmatch(words[0].raw):
            return name, words[0].raw, f"{name}= {words[0].raw}"
        return None
    if cmd.assignments or len(words) < 2 or words[0].quoted or words[0].raw in functions:
        return None
    name, second = words[0].raw, words[1].raw
    if name in _TAKES_EQUALS or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return None
    if second == "=" and (_VARIABLE_NAME.fullmatch(name) or re.fullmatch(r"[a-z]+", name)):
        value = " ".join(w.raw for w in words[2:])
        return name, value, f"{name} = {value}".rstrip()
    if second.startswith("=") and _VARIABLE_NAME.fullmatch(name):
        value = " ".join([second[1:]] + [w.raw for w in words[2:]]).strip()
        return name, value, f"{name} {' '.join(w.raw for w in words[1:])}"
    return None


def _spaced_fix(ctx: Context, cmd: Any, name: str, value: str) -> Fix | None:
    """The line with ``NAME=value`` in place of the command, when that is one plain assignment: the command on
    one line, no redirection, and the value one word (``NAME = a b`` would run b with NAME set)."""
    words = cmd.words
    pieces = [w.raw for w in words[1:]] if not cmd.assignments else [words[0].raw]
    single = len(pieces) <= 1 or (len(pieces) == 2 and pieces[0] == "=")
    if not single or cmd.redirects or cmd.end_line != cmd.line or any("\n" in w.raw for w in words):
        return None
    line = ctx.parsed.lines[cmd.line - 1]
    last = words[-1]
    end = last.col - 1 + len(last.raw)
    return Fix(f"remove the spaces around = ({name}={value})", cmd.line, cmd.line,
               text=line[:cmd.col - 1] + f"{name}={value}" + line[end:])


#: Slurm variables sbatch sets only when the job asks for the option named beside each (sbatch(1), "OUTPUT
#: ENVIRONMENT VARIABLES": "Only set if the --cpus-per-task option is specified" and the like; seen on Slurm 22.05),
#: with the test on the job model that says it does. SLURM_GPUS_PER_NODE is HPC107's, the per-node and per-CPU
#: memory variables are in :data:`_MEMORY_OPTIONS`, and SLURM_ARRAY_TASK_ID is left out (arrays are often asked for on
#: the command line: sbatch --array=0-9 job.sh)
_SET_ONLY_WITH: dict[str, tuple[str, Any]] = {
    "SLURM_CPUS_PER_TASK": ("--cpus-per-task", lambda job: job.cpus_per_task is not None),
    "SLURM_NTASKS_PER_NODE": ("--ntasks-per-node", lambda job: job.ntasks_per_node is not None),
    "SLURM_CPUS_PER_GPU": ("--cpus-per-gpu", lambda job: job.cpus_per_gpu is not None),
    "SLURM_GPUS_PER_TASK": ("--gpus-per-task", lambda job: bool(job.gpus_per_task)),
    "SLURM_GPUS": ("--gpus", lambda job: bool(job.gpus)),
    "SLURM_MEM_PER_GPU": ("--mem-per-gpu", lambda job: bool(job.mem_per_gpu)),
    "SLURM_GPUS_ON_NODE": ("GPUs (--gres=gpu:N, --gpus-per-node …)", lambda job: bool(job.gpus_on_each_node
                                                                                     or job.gpus or job.gpus_per_task)),
    "SLURM_JOB_GPUS": ("GPUs (--gres=gpu:N, --gpus-per-node …)", lambda job: bool(job.gpus_on_each_node
                                                                                 or job.gpus or job.gpus_per_task)),
}

#: the memory options (job field → option, the variable it sets). A batch job gets SLURM_MEM_PER_CPU when its memory
#: is asked for per CPU, else SLURM_MEM_PER_NODE when it has a per-node amount (Slurm's env.c,
#: env_array_for_batch_job); the controller clears the per-node amount of a --mem-per-gpu job. So a job that asks
#: for one of them has neither variable of the others. A job that asks for none gets the site's default
#: (DefMemPerCPU or DefMemPerNode), which sets one of the two that the script cannot tell.
_MEMORY_OPTIONS = {"mem": ("--mem", "SLURM_MEM_PER_NODE"), "mem_per_cpu": ("--mem-per-cpu", "SLURM_MEM_PER_CPU"),
                   "mem_per_gpu": ("--mem-per-gpu", "SLURM_MEM_PER_GPU")}

#: a reference that copes with an unset variable (${NAME:-1}, ${NAME-1}, ${NAME:+…}, ${NAME:?message}, ${#NAME}), or
#: a test that reads it ([ -n "$NAME" ], [ "$NAME" != "" ], [[ $NAME ]], test "x$NAME" = x, [[ -v NAME ]])
_COPES_WITH_UNSET = (r"\$\{{#?{name}(?::?[-=+?]|#|%|/)|-v\s+[\"']?{name}\b"
                     r"|(?:\[\[?|\btest\s)[^\]\n;&|]*\$\{{?{name}\b")


@rule("HPC521", "slurm-variable-not-set", "warning",
      summary="a Slurm variable that sbatch sets only for an option the job does not ask for ($SLURM_CPUS_PER_TASK "
              "without --cpus-per-task)",
      why="sbatch sets SLURM_CPUS_PER_TASK only when the job asks for --cpus-per-task (SLURM_NTASKS_PER_NODE only "
          "with --ntasks-per-node, SLURM_CPUS_PER_GPU, SLURM_GPUS_PER_TASK, SLURM_GPUS and SLURM_MEM_PER_GPU only with "
          "their options, SLURM_GPUS_ON_NODE and SLURM_JOB_GPUS only with GPUs). Of the memory variables a job gets "
          "the one of the memory option it asks for: SLURM_MEM_PER_NODE with --mem, SLURM_MEM_PER_CPU with "
          "--mem-per-cpu, and neither with --mem-per-gpu, as the three exclude each other. Without the option the "
          "reference expands to nothing: OMP_NUM_THREADS= is empty, --workers $SLURM_CPUS_PER_TASK leaves the option "
          "without its value (argparse stops the program), $((SLURM_MEM_PER_NODE - 2000)) gives -2000 (and java -Xmx-2000m refuses to "
          "start), and under set -u the script stops at once with 'unbound variable'. Scripts copied from another "
          "job, or edited to drop a directive, do this. Not reported: a memory variable in a job that asks for no "
          "memory (the site's default, DefMemPerCPU or DefMemPerNode, then sets one of them), SLURM_ARRAY_TASK_ID "
          "(arrays are often asked for on the command line), SLURM_GPUS_PER_NODE (HPC107), and any of them in a script "
          "that asks for no resources at all. An option given on the sbatch command line (sbatch -c 8 job.sh) does set "
          "it: then the finding does not apply.",
      fix="Ask for the option in an #SBATCH line (#SBATCH --cpus-per-task=8), or give the reference a default: "
          "${SLURM_CPUS_PER_TASK:-1}; for memory, use the variable of the option the job asks for "
          "($SLURM_MEM_PER_CPU times $SLURM_CPUS_ON_NODE with --mem-per-cpu), or ask for --mem instead.",
      bad="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
python train.py --workers "$SLURM_CPUS_PER_TASK"
""",
      good="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
python train.py --workers "$SLURM_CPUS_PER_TASK"
""")
def _slurm_variable_not_set(ctx: Context) -> Iterator[Any]:
    job, source = ctx.job, ctx.parsed.source
    if heterogeneous(ctx) or resources_from_command_line(job):
        return  # no resource asked for in the script: they come from the sbatch command line, which it does not show
    unset = {}
    for name, (option, asks) in _SET_ONLY_WITH.items():
        if name not in source or asks(job) or any(v.name == name for v in ctx.parsed.variables):
            continue
        kept = " ".join(str(d) for d in job.extra_directives)
        if "tres" in kept or "gpu" in kept or option.split()[0].lstrip("-") in kept:
            continue  # an option the model keeps as written (--tres-per-task=cpu:8 sets SLURM_CPUS_PER_TASK too)
        if re.search(_COPES_WITH_UNSET.format(name=name), source):
            continue  # the script knows it may be unset
        add = f"ask for {option}" if " " in option else f"add #SBATCH {option}=…"
        unset[name] = (f"${name} is set only when the job asks for {option}, which this script does not: here it "
                       f"expands to nothing (under set -u the script stops: unbound variable); {add}, or write "
                       f"${{{name}:-…}} with a default (unless you give it on the sbatch command line)")
    unset.update(_memory_not_set(ctx))
    if not unset:
        return
    seen: set[str] = set()
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if isinstance(cmd, _Inner) or cmd.name in _PRINTERS:
            continue  # a bash -c script runs in the step, which srun's own options may give the variable
        names = [n for w in all_words(cmd) for n, _ in expanded_refs(w.raw) if n in unset and n not in seen]
        for name in dict.fromkeys(names):
            seen.add(name)
            yield cmd.line, unset[name]


def _memory_not_set(ctx: Context) -> dict[str, str]:
    """HPC521's message for each memory variable the script reads that its job's memory option leaves unset
    ($SLURM_MEM_PER_NODE in a --mem-per-cpu job), by name (see :data:`_MEMORY_OPTIONS`)."""
    job, source = ctx.job, ctx.parsed.source
    asked = [field for field in _MEMORY_OPTIONS if getattr(job, field)]
    if len(asked) != 1:
        return {}  # no memory asked for (the site's default sets a variable), or options sbatch refuses together
    flag, given = _MEMORY_OPTIONS[asked[0]]
    line = ctx.parsed.directive_line(asked[0])
    out = {}
    for field, (option, name) in _MEMORY_OPTIONS.items():
        if field == asked[0] or name not in source or any(v.name == name for v in ctx.parsed.variables) \
                or re.search(_COPES_WITH_UNSET.format(name=name), source):
            continue
        out[name] = (f"${name} is set only when the job asks for {option}, but it asks for {flag} (line {line}), "
                     f"which sets ${given} instead: here ${name} expands to nothing (to 0 in arithmetic such as "
                     f"$((…)); under set -u the script stops: unbound variable); work from ${given}, or ask for "
                     f"{option} instead of {flag}")
    return out


#: ``$0``, ``${0}``, ``$BASH_SOURCE``, ``${BASH_SOURCE[0]}``: the path the script runs from
_SCRIPT_PATH = r"\$\{?(?:0|BASH_SOURCE(?:\[[^\]]*\])?)\}?"

#: uses of the script's path that look for files next to it: its directory (dirname, also of a
#: readlink -f / realpath, or ${0%/*}), a cd into it, or a path joined onto it ("$0"/../data).
#: Running the script itself again (sbatch "$0", sbatch ${BASH_SOURCE[0]}) is fine: the spool copy is the script.
_SCRIPT_DIR = re.compile(
    r"(?<![\w-])(?:dirname|cd|pushd)\s+(?:--\s+)?[\"']?(?:\$\(\s*(?:readlink\s+-[A-Za-z]*f[A-Za-z]*|realpath)\s+[\"']?)?"
    + _SCRIPT_PATH
    + r"|\$\{(?:0|BASH_SOURCE(?:\[[^\]]*\])?)%%?/"
    + r"|" + _SCRIPT_PATH + r"[\"']?/")


#: a script that knows whether Slurm runs it: the script's own location is then only its fallback outside a job
_OUTSIDE_SLURM_FALLBACK = re.compile(r"\bSLURM_SUBMIT_DIR\b|\bSLURM_JOB_?ID\b")


@rule("HPC503", "script-location-in-batch-job", "error",
      summary="$(dirname \"$0\") or BASH_SOURCE used to find files next to the batch script",
      why="sbatch runs a copy of the script from Slurm's spool directory (e.g. /var/spool/slurmd/job123/), so "
          "$0 and BASH_SOURCE point there: files 'next to the script' are not found. Only the script's directory "
          "counts (dirname, cd, ${0%/*}, \"$0\"/…): running the script itself again (sbatch \"$0\" in a requeue "
          "handler) is fine, as the spool copy is the same script, and so is the script's location as the fallback "
          "for a run outside Slurm (${SLURM_SUBMIT_DIR:-$(dirname \"$0\")}, or an if that tests $SLURM_SUBMIT_DIR "
          "or $SLURM_JOB_ID).",
      fix="Use $SLURM_SUBMIT_DIR (the directory sbatch was run from) or an absolute path.",
      catalogue=(23,),
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
cd "$(dirname "$0")"
python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
cd "$SLURM_SUBMIT_DIR"
python train.py
""")
def _script_dir(ctx: Context) -> Iterator[Any]:
    if not ctx.parsed.directives:
        return
    def through_variables(raw: str, line: int, used: set[int], depth: int = 4) -> str:
        """``raw`` with the script's variables written in as assigned, command substitutions included (the
        lines of the assignments it used go into ``used``)."""
        def sub(m: re.Match[str]) -> str:
            var = ctx.parsed.variable(m.group(1) or m.group(2), line)
            if var is None or depth <= 0:
                return m.group(0)
            used.add(var.line)
            return through_variables(str(var.value), var.line, used, depth - 1)
        return re.sub(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))", sub, raw) if "$" in raw else raw

    reported: set[int] = set()
    for cmd in ctx.parsed.lexed.code:
        if _OUTSIDE_SLURM_FALLBACK.search(cmd.text) and (cmd.kind == "compound" or "SLURM_SUBMIT_DIR" in cmd.text):
            continue  # ${SLURM_SUBMIT_DIR:-$(dirname "$0")}, or an if that uses $0 only when not run by Slurm
        hits = [w for w in all_words(cmd) if _SCRIPT_DIR.search(w.raw)]
        if not hits and not _SCRIPT_DIR.search(raw_text(cmd)):
            # through the script's variables: SELF=$(readlink -f "$0"); cd "$(dirname "$SELF")", unless the
            # assignment itself was reported (DIR=$(dirname "$0"); source "$DIR/env.sh": once, at DIR=)
            for w in all_words(cmd):
                used: set[int] = set()
                text = through_variables(w.raw, cmd.line, used)
                if _SCRIPT_DIR.search(text) and not used & reported and "SLURM_SUBMIT_DIR" not in text:
                    hits.append(w)
            if not hits:
                continue
        if cmd.kind == "simple" and not cmd.words and cmd.assignments and not any(
                re.search(rf"\$\{{?{name}\b", ctx.parsed.source[cmd.offset + len(cmd.text):])
                for name, _ in cmd.assignments):
            continue  # SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd) copied in but never used: nothing is looked up
        reported.add(cmd.line)
        yield (hits[0].line if hits else cmd.line,
               "sbatch runs a copy of the script from its spool directory, so $0 / BASH_SOURCE do not "
               "point next to your script; use $SLURM_SUBMIT_DIR")


@rule("HPC504", "missing-line-continuation", "error",
      summary="a line of a continued command lost its trailing backslash",
      why="Without the backslash the command ends at that line: it runs without the options below, and the "
          "next line ('--bind …', '--nproc-per-node …') runs as a command of its own and fails. Reported for a line "
          "that starts with an option, and for an indented line right after a command whose earlier lines end in "
          "a backslash (apptainer exec --nv \\ / \"$IMG\" / torchrun …: the container gets no command, and the "
          "program then runs on the host). The script of a multi-line srun bash -c '…' is read the same way. A line "
          "ending in \\\\ is not continued either: the pair is an escaped backslash, a word the command gets, and the "
          "end of the line still ends the command. Nor is a line whose backslash a blank follows, or blanks and a "
          "comment (apptainer exec --nv \"$IMG\" \\ # the image): the backslash escapes the blank, the command ends "
          "at the end of the line, and the indented line below runs on the host.",
      fix="End every line of the command except the last with a single backslash (and no space after it). The fix "
          "drops one backslash where a line ends in \\\\ before a line that starts with an option.",
      catalogue=(24,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv
  --bind "$SCRATCH/data:/data" pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv \\
  --bind "$SCRATCH/data:/data" pytorch_2.3.sif python train.py
""")
def _lost_backslash(ctx: Context) -> Iterator[Any]:
    yield from _option_lines(simple_commands(ctx), _same_line, ctx.parsed.lines)
    lines = ctx.parsed.lines
    yield from _blank_after_backslash(ctx, lines)
    cut_off = {s.line: c for s, c in containers(ctx)
               if c.kind == "apptainer.run" and getattr(c, "action", "") == "exec" and c.image
               and not s.chain.program and s.chain.launcher is None}
    yield from _lost_backslash_before_command(ctx.parsed.lexed.code, lines, cut_off, _same_line)
    for step in steps(ctx):  # the script of srun bash -c '…' loses its backslashes the same way
        inner = _inner_script(shell_script_word(step))
        if inner is not None:
            lexed, outer = inner
            yield from _option_lines(tuple(c for c in lexed.code if c.kind == "simple"), outer, None)
            yield from _lost_backslash_before_command(lexed.code, lexed.source.split("\n"), {}, outer)


def _blank_after_backslash(ctx: Context, lines: Any) -> Iterator[Any]:
    """A line whose last word is a backslash and a blank (``"$IMG" \\␠``): the backslash escapes the blank, so the
    command ends there with a one-blank argument, and the indented (or option) line below runs on its own."""
    for cmd, _, _ in _code_in_order(ctx):
        if cmd.kind != "simple" or not cmd.words:
            continue
        last = cmd.words[-1]
        if not re.fullmatch(r"(?:[^\\]|\\.)*\\[ \t]", last.raw) or "\n" in last.raw or last.line >= len(lines):
            continue
        text, below = lines[last.line - 1], lines[last.line]
        end = last.col - 1 + len(last.raw)
        rest = text[end:].strip()
        if (rest and not rest.startswith("#")) or not below.strip() \
                or not (below[:1].isspace() or below.lstrip().startswith("-")):
            continue  # something follows on the line, or the next line starts a command of its own
        if rest and below.lstrip().startswith("-"):
            continue  # reported where the option line starts (_option_lines), which names the comment
        if rest:  # a comment after the blank: bash reads it as one, and the line's end ends the command
            yield (last.line, f"line {last.line} has a comment after its backslash: the backslash escapes the blank "
                              f"before the comment, not the end of the line, so the command ends here (with ' ' as "
                              f"its last argument) and line {last.line + 1} runs as a command of its own; move the "
                              "comment off the command (onto a line of its own above it)")
            continue
        yield (last.line, f"line {last.line} ends with a backslash and then a blank: the backslash escapes the blank, "
                          f"not the end of the line, so the command ends here (with ' ' as its last argument) and "
                          f"line {last.line + 1} runs as a command of its own; delete the blank after the backslash",
               Fix("delete the blank after the backslash", last.line, last.line, text=text.rstrip()))


def _same_line(line: int) -> int:
    return line


def _option_lines(code: tuple[Any, ...], outer: Any, lines: Any) -> Iterator[Any]:
    """Commands that start with an option: the line before lost its backslash (``outer`` maps a line number
    of ``code`` to the script's; ``lines`` are the script's lines when ``code`` is the script itself, None for the
    script of a bash -c word, whose lines are not written out as the shell reads them)."""
    for i, cmd in enumerate(code):
        name = str(cmd.name)
        if len(name) > 1 and name.startswith("-") and not cmd.assignments:
            prev = code[i - 1] if i > 0 else None
            where, fix = "", None
            if prev is not None:
                last = outer(prev.end_line)
                last_text = prev.text.rstrip("\n").rsplit("\n", 1)[-1]
                if _BACKSLASH_COMMENT.search(last_text):
                    where = (f" (on line {last} a comment follows the backslash, so it escapes a space, not the end "
                             "of the line: move the comment off the command)")
                elif _escaped_backslash_end(last_text):
                    where = (f" (line {last} ends in \\\\, an escaped backslash that is passed as an argument, so "
                             "the end of the line still ends the command: end it with a single \\)")
                    if lines is not None and _escaped_backslash_end(lines[last - 1]):
                        fix = Fix(f"drop one backslash at the end of line {last}", last, last,
                                  text=lines[last - 1][:-1])
                else:
                    where = f" (line {last} needs a trailing \\)"
            message = f"this line starts with the option {name}: the previous command ended without a backslash{where}"
            yield (outer(cmd.line), message, fix) if fix else (outer(cmd.line), message)


def _escaped_backslash_end(text: str) -> bool:
    """Whether ``text`` ends in an even run of backslashes (``python train.py \\\\``): each pair is one escaped
    backslash, a word the command gets, so the end of the line is not escaped and ends the command."""
    run = len(text) - len(text.rstrip("\\"))
    return run > 0 and run % 2 == 0


#: a backslash, blanks, then a comment: ``--num_processes=4 \ # all GPUs`` (the backslash escapes the blank)
_BACKSLASH_COMMENT = re.compile(r"\\[ \t]+#")


def _inner_script(word: Any) -> tuple[Any, Any] | None:
    """The script of a ``bash -c`` word that spans lines, lexed, and a map from its line numbers to the outer
    script's; None when it is one line or not one quoted string (its lines then match the word's source)."""
    from ..errors import ParseError
    from ..parse.lexer import lex_script
    from ..parse.script import shell_script_text
    raw = word.raw if word is not None else ""
    if "\n" not in raw:
        return None
    if len(raw) > 1 and raw[0] == raw[-1] == "'" and raw.count("'") == 2:
        text: str | None = raw[1:-1]
    else:
        text = shell_script_text(Verbatim(raw), keep_lines=True)
    if text is None:
        return None
    try:
        lexed = lex_script(text)
    except ParseError:
        return None
    return lexed, lambda k: word.line + k - 1


def _lost_backslash_before_command(code: Any, lines: Any, cut_off: dict[int, Any], outer: Any) -> Iterator[Any]:
    """An indented line right after a command whose lines ended in ``\\`` up to the one before it: the
    backslash of that line was lost (``apptainer exec --nv \\`` / ``  "$IMG"`` / ``  torchrun …``). Also after a
    one-line ``apptainer exec IMAGE`` with no command (``cut_off``: such containers by line), which cannot run on
    its own. ``outer`` maps a line number of ``code`` to the script's."""
    for prev, cmd in zip(code, code[1:]):
        if cmd.kind != "simple" or not cmd.words or prev.joined_by or str(cmd.name).startswith("-"):
            continue  # joined by && or |, or an option line (reported above)
        last = prev.line
        while last <= len(lines) and lines[last - 1].rstrip().endswith("\\") \
                and not _escaped_backslash_end(lines[last - 1].rstrip()):
            last += 1  # a line ending in \\\\ is not continued: the line after it is checked below
        if cmd.line != last + 1 or cmd.line > len(lines) or not (last > prev.line or prev.line in cut_off):
            continue
        if lines[last - 1].split(" #", 1)[0].rstrip().endswith(("&", ";", "|")):
            continue  # the command was ended on purpose (cmd &, cmd;)
        if _indent(lines[cmd.line - 1]) <= _indent(lines[prev.line - 1]):
            continue  # starts a new command at the same depth as the one before
        box = cut_off.get(prev.line)
        why = f"; {box.binary} exec on line {outer(prev.line)} has the image but no command" if box is not None else ""
        escaped = _escaped_backslash_end(lines[last - 1].rstrip())
        ending = ("ends in \\\\ (an escaped backslash, passed as an argument), not in a single" if escaped
                  else "does not end with a")
        yield (outer(cmd.line), f"this line is indented like a continuation of the command above, but line {outer(last)} "
                                f"{ending} backslash, so {cmd.name} runs as a command of its own{why}; "
                                f"end line {outer(last)} with {'a single ' if escaped else ''}\\")


@rule("HPC505", "double-dollar", "error",
      summary="$$NAME: the shell's process id followed by text, not the variable",
      why="$$ is the process id, so $$SCRATCH becomes something like 12345SCRATCH: paths point nowhere.",
      fix="Write $NAME (or ${NAME}).",
      catalogue=(25,),
      bad="""#!/bin/bash
mkdir -p $$SCRATCH/output
""",
      good="""#!/bin/bash
mkdir -p "$SCRATCH/output"
""")
def _double_dollar(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        if any(name == "$$" for w in all_words(cmd) for name, _ in expanded_refs(w.raw)):
            m = re.search(r"\$\$\{?([A-Za-z_][A-Za-z0-9_]*)", raw_text(cmd))
            shown = f"$${m.group(1)}" if m else "$$NAME"
            yield cmd.line, f"{shown} is the process id followed by text; write ${shown[2:].lstrip('{')}"


#: a positional parameter written where a number was meant: ${8888} (argument 8888) and $8888 ($8, then 888)
_POSITIONAL_NUMBER = re.compile(r"\$\{([0-9]{3,})\}|\$([0-9])([0-9]{2,})")


@rule("HPC540", "positional-parameter-for-a-number", "error",
      summary="${8888} or $8888 where the number 8888 was meant: bash reads a script argument there",
      why="A $ before digits names one of the script's arguments, not a number: ${8888} is argument 8888, which no "
          "job has, so it is empty, and $8888 is $8 (the eighth argument, empty unless given) followed by 888. "
          "jupyter lab --port=${8888} gets --port= and stops at once, and --port=$8888 gets port 888, which a user "
          "may not open; a count or a seed written so reaches the program empty or wrong, and the job runs on. "
          "Reported for three or more digits, outside single quotes: ${1} to ${99} and $1 to $99 are left alone, "
          "as a script may take that many arguments.",
      fix="Write the number itself (--port=8888), or set a variable to it once and use that (port=8888; "
          "--port=\"$port\").",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"
jupyter lab --no-browser --port=${8888} --ServerApp.port_retries=0
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"
port=8888
jupyter lab --no-browser --port="$port" --ServerApp.port_retries=0
""")
def _positional_for_number(ctx: Context) -> Iterator[Any]:
    for cmd, _, _ in _code_in_order(ctx):
        if cmd.kind == "compound":
            continue
        for word in all_words(cmd):
            raw = word.raw
            if "$" not in raw:
                continue
            quoted = _single_quoted(raw)
            for m in _POSITIONAL_NUMBER.finditer(raw):
                if any(a <= m.start() <= b for a, b in quoted) or _escaped(raw, m.start()):
                    continue
                if m.group(1):
                    number = m.group(1)
                    what = f"${{{number}}} is the script's argument number {int(number)}, which no job has, so it is empty"
                else:
                    number = m.group(2) + m.group(3)
                    what = (f"${number} is ${m.group(2)} (the script's argument number {m.group(2)}, empty unless "
                            f"sbatch was given that many) followed by the text {m.group(3)}")
                yield (word.line, f"{what}, not the number {number}; write {number} without the $ (or set a variable "
                                  "to it and use that)")
                break


#: what a comparison in [ … ] compares against: a number or a variable (not a file's path, as in [ … ] > /dev/null)
_COMPARED = re.compile(r'"?(?:-?[0-9]+|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)"?')


@rule("HPC541", "redirection-in-test", "error",
      summary="[ \"$N\" > 0 ] or test $a < $b: in [ ] and test, > and < are redirections, not comparisons",
      why="Inside single brackets (and after test) bash reads > and < as redirections before the command runs: "
          "[ \"$SLURM_CPUS_PER_TASK\" > 0 ] creates an empty file named 0 in the working directory and tests only "
          "whether the value is not empty, so it holds for every job, and [ \"$a\" < \"$b\" ] reads a file named "
          "by $b's value, and fails when there is none. The branch it guards runs (or not) whatever the numbers "
          "are. Reported where the word after > or < is a number or a variable; [ … ] > /dev/null is left alone.",
      fix="Compare numbers with -gt, -lt, -ge, -le: [ \"$N\" -gt 0 ], or in arithmetic: (( N > 0 )).",
      bad="""#!/bin/bash
#SBATCH --cpus-per-task=8
if [ "$SLURM_CPUS_PER_TASK" > 1 ]; then export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi
python train.py
""",
      good="""#!/bin/bash
#SBATCH --cpus-per-task=8
if [ "$SLURM_CPUS_PER_TASK" -gt 1 ]; then export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi
python train.py
""")
def _redirection_in_test(ctx: Context) -> Iterator[Any]:
    for cmd, _, _ in _code_in_order(ctx):
        if cmd.kind != "simple" or not cmd.words or str(cmd.words[0].value) not in ("[", "test"):
            continue
        for r in cmd.redirects:
            if r.fd is None and r.op in (">", "<") and _COMPARED.fullmatch(r.target.raw):
                op = "-gt" if r.op == ">" else "-lt"
                effect = (f"creates an empty file named {r.target.raw}, and the test then holds for any value that "
                          "is not empty" if r.op == ">" else
                          f"reads a file named {r.target.raw} (and fails where there is none)")
                shown = "[ … ]" if str(cmd.words[0].value) == "[" else "test …"
                yield (r.line, f"{r.op} in {shown} is a redirection, not a comparison: it {effect}; compare numbers "
                               f"with {op} (or in (( … )))")
                break


def _escaped(raw: str, at: int) -> bool:
    """Whether the character at ``at`` of a word's source is escaped by an odd run of backslashes before it."""
    run = len(raw[:at]) - len(raw[:at].rstrip("\\"))
    return run % 2 == 1


#: what a person writes for the shell to expand: $(…), `…`, ${X:-y} and the other ${X…} operators, ${UPPER} and $NAME
#: (a lower-case ${name} and ${a.b}, ${now:%Y}, ${oc.env:X} are Hydra/OmegaConf interpolations, meant to stay literal)
_SHELL_TEXT = re.compile(r"\$\(|`[A-Za-z_][^`]*`|\$\{[A-Za-z_][A-Za-z0-9_]*(?::[-=+?]|[-=+?%#/^,\[])|\$\{[A-Z_][A-Z0-9_]*\}"
                         r"|\$[A-Za-z_][A-Za-z0-9_]*")

#: programs whose arguments are data to them: text in single quotes reaches them as written
_TAKES_DATA = re.compile(r"(?:python[0-9.]*|torchrun|accelerate|deepspeed|apptainer|singularity|ch-run|srun|mpirun|mpiexec)")

#: the program an argument is for: the innermost of these before it
_RECEIVER = re.compile(r"python[0-9.]*|torchrun|accelerate|deepspeed|mpirun|mpiexec|ch-run|apptainer|singularity")

#: a short-option cluster that takes code as its value (bash -c, bash -lc, python -c): that code is expanded later
_CODE_OPTION = re.compile(r"-[A-Za-z]*c[A-Za-z]*")


def _single_quoted(raw: str) -> list[tuple[int, int]]:
    """Start and end indexes of the '…' pieces of a word's source (not inside "…", not $'…')."""
    out, i, double = [], 0, False
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            double = not double
        elif c == "'" and not double:
            end = raw.find("'", i + 1)
            if end < 0:
                break
            if not raw[i - 1:i] == "$":
                out.append((i, end))
            i = end + 1
            continue
        i += 1
    return out


@rule("HPC514", "shell-text-in-single-quotes", "warning",
      summary="a program's argument holds $NAME, $(…) or ${X:-y} in single quotes, so it receives the text itself",
      why="Single quotes keep everything literal: python train.py --out '$SCRATCH/run' writes into a folder named "
          "$SCRATCH under the working directory, and --data '$(pwd)/data' asks for a folder named $(pwd). The job "
          "runs, with the wrong paths or values. Scripts of srun bash -c '…' and python -c '…' are expanded later on "
          "purpose and are not reported, nor are Hydra/OmegaConf interpolations such as '${now:%Y-%m-%d}'.",
      fix="Use double quotes (\"$SCRATCH/run\"). In a form, a field expands only $NAME and ${NAME}: set anything "
          "else in a set-up line (LR=${LR:-0.1}) and pass $LR.",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
python train.py --output-dir '$SCRATCH/run'
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
python train.py --output-dir "$SCRATCH/run"
""")
def _shell_text_in_single_quotes(ctx: Context) -> Iterator[Any]:
    seen: set[int] = set()
    for cmd in (*simple_commands(ctx), *(step.command for step in steps(ctx))):
        if id(cmd) in seen:
            continue
        seen.add(id(cmd))
        words = cmd.words
        if not words or not _TAKES_DATA.fullmatch(str(words[0].value).rsplit("/", 1)[-1]):
            continue
        hits = []
        for prev, word in zip((None, *words), words):
            if "'" not in word.raw or ("$" not in word.raw and "`" not in word.raw):
                continue
            if prev is not None and _CODE_OPTION.fullmatch(str(prev.raw)):
                continue  # bash -c '…', python -c '…': code, expanded when it runs
            if _ch_run_expands_it(words, word):
                continue  # ch-run --set-env='PATH=/opt/bin:$PATH': ch-run expands it, as documented
            for start, end in _single_quoted(word.raw):
                if _SHELL_TEXT.search(word.raw, start + 1, end):
                    hits.append((word, start, end))
        if not hits:
            continue
        word, start, end = hits[0]
        text = word.raw[start + 1:end]
        before = [str(w.value).rsplit("/", 1)[-1] for w in words[:words.index(word)]]
        name = next((b for b in reversed(before) if _RECEIVER.fullmatch(b)), before[0])
        yield (word.line, f"'{text}' is in single quotes, so {name} receives the text {text} itself; use double "
                          f"quotes (\"{text}\") for the shell to expand it", _double_quote_fix(ctx, hits))


def _ch_run_expands_it(words: list[Any], word: Any) -> bool:
    """Whether ``word`` is a ch-run ``--set-env=NAME=…`` (without --env-no-expand) whose every ``$`` starts a
    ':'-separated item that is only a variable name: ch-run itself replaces such an item by the variable's value
    in the container (after a bare --set-env, the image's), which is why Charliecloud's manual single-quotes it."""
    at = words.index(word)
    values = [str(w.value) for w in words]
    runs = [k for k in range(at) if values[k].rsplit("/", 1)[-1] == "ch-run"]
    if not runs:
        return False
    options = values[runs[-1] + 1:]
    end = options.index("--") if "--" in options else len(options)
    if at - runs[-1] - 1 >= end or "--env-no-expand" in options[:end]:
        return False
    text = passed_text(word.raw)
    assignment = text[len("--set-env="):] if text.startswith("--set-env=") else ""
    if "=" not in assignment:
        return False
    items = assignment.split("=", 1)[1].split(":")
    return all(item.count("$") == (_CH_RUN_LOOKUP.fullmatch(item) is not None) for item in items)


#: a --set-env item ch-run replaces by a variable's value: $ and a name, nothing else
_CH_RUN_LOOKUP = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")


def _double_quote_fix(ctx: Context, hits: list[tuple[Any, int, int]]) -> Fix | None:
    """The line with the single-quoted pieces in double quotes, when they are on one line and hold nothing that
    double quotes would read differently (a quote or a backslash)."""
    line_no = hits[0][0].line
    line = ctx.parsed.lines[line_no - 1]
    edits = []
    for word, start, end in hits:
        at = word.col - 1
        inner = word.raw[start + 1:end]
        if word.line != line_no or "\n" in word.raw or line[at:at + len(word.raw)] != word.raw or any(c in inner for c in '"\\'):
            return None
        edits.append((at + start, at + end))
    for a, b in reversed(edits):
        line = f'{line[:a]}"{line[a + 1:b]}"{line[b + 1:]}'
    return Fix("put the expansions in double quotes", line_no, line_no, text=line)


_LAUNCH_BLOCKING = re.compile(r"(^|[^A-Za-z0-9_])CUDA_LAUNCH_BLOCKING=[\"']?1\b")


#: dashes a word processor or a slide puts where a hyphen was typed (en dash, em dash, minus sign)
#: quotes a word processor puts where straight quotes were typed
_TYPOGRAPHIC_QUOTES = {"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"}


_TYPOGRAPHIC = re.compile(f"[{TYPED_DASHES}{''.join(_TYPOGRAPHIC_QUOTES)}]")


def _reads(line: str) -> bool:
    """Whether bash can read ``line`` on its own (its quotes closed)."""
    from ..errors import ParseError
    from ..parse.lexer import lex_script
    try:
        lex_script(line)
    except ParseError:
        return False
    return True


def _straight(raw: str) -> str:
    return "".join(_TYPOGRAPHIC_QUOTES.get(c, c) for c in raw)


@rule("HPC515", "typographic-dash-or-quote", "error",
      summary="an option starts with an en or em dash, or a word is wrapped in curly quotes (text copied from slides)",
      why="Slides, PDFs and word processors turn -- into an en dash (–) and straight quotes into curly ones (“ ”). "
          "Neither means anything to bash, sbatch or the programs: –-nodes=2 is an argument, not an option (sbatch "
          "stops, apptainer takes it for the image), #!/bin/bash –l runs no shell at all, and “$SCRATCH/data” "
          "is a path with quote marks in its name.",
      fix="Type the dashes and quotes again on the keyboard: --nodes=2, -l, \"$SCRATCH/data\".",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
srun \u2013-ntasks=1 apptainer exec --nv pytorch_2.3.sif python train.py --data \u201c$SCRATCH/data\u201d
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
srun --ntasks=1 apptainer exec --nv pytorch_2.3.sif python train.py --data "$SCRATCH/data"
""")
def _typographic(ctx: Context) -> Iterator[Any]:
    from ..errors import ParseError
    from ..parse.lexer import directive_words
    if not _TYPOGRAPHIC.search(ctx.parsed.source):
        return  # most scripts: nothing to look at word by word
    lines = ctx.parsed.lines
    bad: dict[int, list[tuple[int, str, str]]] = {}  # line -> (column, as written, as typed on a keyboard)
    if lines and lines[0].startswith("#!"):
        for m in re.finditer(rf"(?<=\s)[{TYPED_DASHES}]\S*", lines[0]):
            bad.setdefault(1, []).append((m.start() + 1, m.group(0), keyboard_option(m.group(0))))
    words: list[Any] = []
    shown: set[int] = set()  # the words echo and printf print: curly quotes there are text to show
    for cmd in ctx.parsed.lexed.commands:
        if cmd.kind == "directive":
            try:
                words += directive_words(cmd)
            except ParseError:
                continue
        elif cmd.is_code:
            found = all_words(cmd)
            if cmd.kind == "simple" and cmd.words and str(cmd.words[0].value) in ("echo", "printf"):
                shown.update(id(w) for w in cmd.words[1:])
            words += found
    for w in words:
        raw = str(w.raw)
        if _typographic_option(raw):
            bad.setdefault(w.line, []).append((w.col, raw.split("=", 1)[0], keyboard_option(raw.split("=", 1)[0])))
        elif (raw[:1] in _TYPOGRAPHIC_QUOTES or raw[-1:] in _TYPOGRAPHIC_QUOTES) and id(w) not in shown:
            bad.setdefault(w.line, []).append((w.col, raw, _straight(raw)))
    for line_no, items in sorted(bad.items()):
        written, typed = items[0][1], items[0][2]
        what = ("starts with a typographic dash, not a hyphen, so it is not an option" if written[0] in TYPED_DASHES
                else "has a typographic dash in its name, so no program knows the option" if written[0] == "-"
                else "is wrapped in typographic quotes, which the shell keeps as part of the value")
        text = lines[line_no - 1]
        for col, old, new in sorted(items, reverse=True):
            if text[col - 1:col - 1 + len(old)] != old:
                text = ""
                break
            text = text[:col - 1] + new + text[col - 1 + len(old):]
        fix = Fix("type the dashes and quotes on the keyboard", line_no, line_no, text=text) \
            if text and _reads(text) else None  # not a quote left open (“basel, its closing one on no line)
        more = f" (and {len(items) - 1} more on this line)" if len(items) > 1 else ""
        yield line_no, f"{written} {what}; write {typed}{more} (copied from slides or a document?)", fix


@rule("HPC506", "cuda-launch-blocking", "warning",
      summary="CUDA_LAUNCH_BLOCKING=1 left on in a job",
      why="It makes every CUDA kernel launch wait for the previous one: a debugging switch that slows training "
          "several times over.",
      fix="Remove it (set it only while debugging a CUDA error).",
      catalogue=(29,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
export CUDA_LAUNCH_BLOCKING=1
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
python train.py
""")
def _launch_blocking(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        names = [n for n, w in cmd.assignments if n.endswith("CUDA_LAUNCH_BLOCKING") and str(w.value) == "1"]
        if names or _LAUNCH_BLOCKING.search(raw_text(cmd)):
            yield cmd.line, "CUDA_LAUNCH_BLOCKING=1 serialises every kernel launch and slows training; remove it"


#: what makes ``conda activate`` work in a script: conda's shell hook or conda.sh, an activate script, a shell
#: start-up file that runs conda init's lines
_CONDA_SETUP = re.compile(r"\b(?:conda|mamba|micromamba)(?:\.exe)?\s+shell\b|conda\.sh\b|/activate\b|\.bashrc\b"
                          r"|\.bash_profile\b|\.profile\b")

#: modules that set conda up when loaded (site Anaconda, Miniforge … modules)
_CONDA_MODULE = re.compile(r"(?i)conda|mamba|miniforge|python")


@rule("HPC512", "conda-activate-without-setup", "info",
      summary="conda activate in a batch script that never sets conda up",
      why="conda activate is a shell function that conda init adds to interactive shells; a batch script is not "
          "one, so unless a module loaded before sbatch exported that function (some site modules do), conda stops "
          "with 'Run conda init before conda activate' and the job runs with the wrong Python (or stops under set -e). "
          "Not reported after a file is sourced (source env.sh): it may set conda up.",
      fix="Set conda up first: eval \"$(conda shell.bash hook)\" (or source the conda.sh of your installation, or "
          "load the site's conda module), then conda activate ENV.",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
conda activate myenv
python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
eval "$(conda shell.bash hook)"
conda activate myenv
python train.py
""")
def _conda_activate(ctx: Context) -> Iterator[Any]:
    shebang = ctx.parsed.source.split("\n", 1)[0]
    if shebang.startswith("#!") and re.search(r"\s-\w*[li]|--login", shebang):
        return  # a login or interactive shell reads the start-up files where conda init wrote its lines
    if any(_CONDA_MODULE.search(name) for name, _ in ctx.parsed.modules):
        return
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        if words[:2] != ["conda", "activate"]:
            if _CONDA_SETUP.search(cmd.text) or (words[:1] in (["source"], ["."]) and len(words) > 1):
                return  # set up, or a sourced file that may do it (NYU Greene's env.sh sources conda.sh)
            continue
        yield (cmd.line, "conda activate needs conda's shell function, which a batch script does not define itself: "
                         "unless your environment exports it, conda stops with 'Run conda init before conda activate'; "
                         "add eval \"$(conda shell.bash hook)\" before it")
        return


#: the variables that name the GPUs a program may use: Slurm sets CUDA_VISIBLE_DEVICES (and, on AMD GPUs,
#: ROCR_VISIBLE_DEVICES) to the allocated ones; HIP_VISIBLE_DEVICES narrows ROCm's further
VISIBLE_DEVICES_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


#: GPUs named by UUID, as nvidia-smi -L prints them: GPU-8932f937-…, a MIG slice as MIG-<uuid> or, on drivers before
#: R470, MIG-GPU-<uuid>/<GPU instance>/<compute instance>; a comma-separated list of them
_DEVICE_UUIDS = re.compile(r"(?:(?:MIG-(?:GPU-)?|GPU-)[0-9A-Fa-f][0-9A-Fa-f-]*(?:/\d+/\d+)?)"
                           r"(?:,(?:MIG-(?:GPU-)?|GPU-)[0-9A-Fa-f][0-9A-Fa-f-]*(?:/\d+/\d+)?)*")


@rule("HPC513", "fixed-visible-gpus", "warning",
      summary="CUDA_VISIBLE_DEVICES (or ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES) is set to a fixed list that is "
              "not the job's GPUs",
      why="Slurm sets CUDA_VISIBLE_DEVICES (on AMD GPUs also ROCR_VISIBLE_DEVICES) to the GPUs it allocated. A fixed "
          "list of another size hides GPUs the job pays for (0 of 4) or names GPUs the job does not have, which then "
          "fail to initialise; HIP_VISIBLE_DEVICES narrows what ROCm shows in the same way. A list of the right size "
          "fails too when it names the node's GPUs by their numbers on the node (4,5,6,7): device cgroups show the "
          "job its own GPUs numbered from 0. And on a node shared with other jobs, where a site does not confine "
          "jobs to their GPUs, 0,1 may be another job's (reported when the profile says the nodes have more GPUs). "
          "export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID in the batch shell of a job that runs one task per node is "
          "the fixed list 0: the batch shell expands it as task 0, and each task's own value is 0 too, so a launcher's "
          "workers but the first find no GPU. A list set for one command (CUDA_VISIBLE_DEVICES=0,1,2,3 torchrun …, "
          "or after env) does the same to that command. A plain CUDA_VISIBLE_DEVICES=0,1 without export does it "
          "to every later command: Slurm puts the variable in the job's environment, and bash passes on a change "
          "to a variable it was given, so it is read as export is (ROCR_VISIBLE_DEVICES too; HIP_VISIBLE_DEVICES, "
          "which Slurm does not set, only after the script exports it; not after unset). (With HIP_VISIBLE_DEVICES "
          "also set, HPC524 reports the pair.) A GPU named by its UUID (GPU-…, a MIG slice's MIG-…, as "
          "nvidia-smi -L prints them) is one device of one node: Slurm picks the job's GPUs or slices as it starts "
          "the job, so the one named is the job's only by chance, and otherwise hidden from it or another job's.",
      fix="Remove the line (or the NAME=list before the command) and let Slurm's value stand (or request as many "
          "GPUs as the program uses).",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:4
export CUDA_VISIBLE_DEVICES=0
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:4
python train.py
""")
def _fixed_visible_gpus(ctx: Context) -> Iterator[Any]:
    gpus = ctx.job.gpus_on_each_node
    if not isinstance(gpus, int) or not gpus:
        return
    prefixed = _prefix_settings(ctx)
    plain = dict((id(v), why) for v, why in _plain_exported_settings(ctx))
    for name in VISIBLE_DEVICES_VARS:
        # exported by the batch shell, assigned where it is exported already (Slurm's CUDA_VISIBLE_DEVICES), or set
        # for one command (CUDA_VISIBLE_DEVICES=0,1 torchrun …): the same list
        exports = sorted([v for v in ctx.parsed.variables if v.name == name and v.exported]
                         + [v for v, _ in _plain_exported_settings(ctx) if v.name == name]
                         + [v for v in prefixed if v.name == name], key=lambda v: v.line)
        if len(exports) > 1:
            continue  # set again and again: one GPU per background run (export CUDA_VISIBLE_DEVICES=1; python … &)
        if name == "ROCR_VISIBLE_DEVICES" and batch_shell_filters_twice(ctx) is not None:
            continue  # HIP_VISIBLE_DEVICES (or CUDA_) indexes what it leaves: HPC524 says what that does
        for var in exports:
            value = str(var.value).strip("'\"")
            # without export, but exported all the same: say so, as the line reads as the shell's own variable
            written = f"{name}={value}" + (f" (no export, but {plain[id(var)]}, so every later command gets this "
                                           "value)" if plain.get(id(var)) else "")
            set_by = "Slurm already sets it to the allocated GPUs" if name != "HIP_VISIBLE_DEVICES" else \
                "Slurm hands the program the allocated GPUs without it"
            remove = "remove the line" if var.exported else f"remove {name}={value} from the command"
            per_task = _fixed_per_task_value(ctx, var)
            if per_task and gpus > 1:
                yield (var.line, f"{written} is {name}=0 in every task (the batch shell expands "
                                 f"{per_task} once, as task 0, and the job runs one task per node): it names 1 GPU "
                                 f"but the job requests {gpus} per node, so the other {gpus - 1} stay hidden (a "
                                 f"launcher's workers 1 to {gpus - 1} find no GPU); {set_by}: remove the line")
            if _DEVICE_UUIDS.fullmatch(value):
                mig = "MIG-" in value.upper()
                what = "MIG slice" if mig else "GPU"
                yield (var.line, f"{written} names a {what} by its UUID, one device of one node, but Slurm picks the "
                                 f"job's {what}s when it starts (Slurm sets the variable to theirs"
                                 f"{', the slices by UUID' if mig else ''}): where the job is not given that one, "
                                 f"the program finds no {what} (device cgroups hide the others) or uses another "
                                 f"job's; {set_by}: {remove}")
                continue
            if not re.fullmatch(r"\d+(?:,\d+)*", value):
                continue
            ids = [int(k) for k in value.split(",")]
            listed = len(ids)
            if listed != gpus:
                yield (var.line, f"{written} names {listed} GPU{'s' if listed > 1 else ''} but the job "
                                 f"requests {gpus} per node: {set_by}; {remove}")
            elif max(ids) >= gpus:
                yield (var.line, f"{written} names GPU {max(ids)}, but where Slurm confines the job to its "
                                 f"GPUs (device cgroups) they are numbered 0-{gpus - 1}, so the program finds no such "
                                 f"GPU; {set_by}: {remove}")
            elif not ctx.job.exclusive and _node_gpus(ctx) > gpus:
                yield (var.line, f"{written} names GPUs by number, but the job has {gpus} of the node's "
                                 f"{_node_gpus(ctx)}: where Slurm does not confine it (no device cgroups) these may be "
                                 f"another job's GPUs; {set_by}: remove the line")


#: the GPU variables Slurm puts in the environment of a job that asks for GPUs, the batch shell's included (with the
#: GPUs of the job's first node): CUDA_VISIBLE_DEVICES, and on AMD GPUs ROCR_VISIBLE_DEVICES. bash marks a variable
#: it inherits for export, so a plain NAME=list there changes what every later command is given, as export would.
SLURM_GPU_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")


def _plain_exported_settings(ctx: Context) -> list[tuple[Any, str]]:
    """The batch shell's assignments without ``export`` that every later command sees all the same, because the
    variable is exported when they run: ``CUDA_VISIBLE_DEVICES=0,1`` on its own line (or after declare, typeset or
    readonly) where Slurm put the variable in the job's environment (:data:`SLURM_GPU_VARS`, for a job that asks for
    GPUs, with no ``unset NAME`` or ``export -n NAME`` before it), or where the script exported the name before
    (``export NAME``, ``declare -x NAME``); and ``declare -x NAME=…``. As exported
    :class:`~hpcwidgets.parse.script.Variable` (``export`` lines themselves are in the parsed script's variables),
    each with what made it exported, as messages say it. Cached: the rule reads it once per variable name.
    What an if, a loop or a function sets is not read."""
    return cached(ctx, "plain_exported_settings", lambda: _read_plain_exported_settings(ctx))


def _read_plain_exported_settings(ctx: Context) -> list[tuple[Any, str]]:
    """:func:`_plain_exported_settings`, not cached."""
    from ..parse.script import Variable
    gpus = ctx.job.gpus_on_each_node
    slurm = "Slurm's variable is in the job's environment"
    exported = {name: slurm for name in SLURM_GPU_VARS if isinstance(gpus, int) and gpus}
    out: list[tuple[Any, str]] = []
    for cmd in simple_commands(ctx):
        words = [str(w.value) for w in cmd.words]
        on = "".join(w[1:] for w in words[1:] if re.fullmatch(r"-[A-Za-z]+", w))
        off = "".join(w[1:] for w in words[1:] if re.fullmatch(r"\+[A-Za-z]+", w))
        names = [w.split("=", 1)[0] for w in words[1:] if _NAME.fullmatch(w.split("=", 1)[0])]
        by_script = f"line {cmd.line} exports it"
        if cmd.name == "unset" and "f" not in on:
            exported.update(dict.fromkeys(names, ""))
        elif cmd.name == "export" and "f" not in on:
            exported.update(dict.fromkeys(names, "" if "n" in on else by_script))
        elif cmd.name in ("declare", "typeset") and "x" in on + off:
            exported.update(dict.fromkeys(names, by_script if "x" in on else ""))
        if cmd.name == "export" or words and cmd.name not in ("declare", "typeset", "readonly"):
            continue  # NAME=value before a program sets it for that program alone (_prefix_settings)
        declared = cmd.name in ("declare", "typeset") and "x" in on  # declare -x NAME=…: an export of its own
        out += [(Variable(name, str(word.value), cmd.line, True), "" if declared else exported[name])
                for name, word in cmd.assignments if exported.get(name)]
    return out


#: the variables Apptainer reads binds from, as --bind takes them (a comma-separated list of src[:dst[:opts]]); it also
#: reads the SINGULARITY_ names, which SingularityCE reads
CONTAINER_BIND_VARIABLES = ("APPTAINER_BIND", "APPTAINER_BINDPATH", "SINGULARITY_BIND", "SINGULARITY_BINDPATH")


def environment_binds(ctx: Context, step: Any, c: Any) -> list[tuple[str, int, Any]]:
    """The binds the environment adds to a step's apptainer (or singularity) layer, ``c``: each entry of
    APPTAINER_BIND and the other :data:`CONTAINER_BIND_VARIABLES` the apptainer process is given (exported above
    the step, set before its command, or passed by srun --export: :func:`~hpcwidgets.lint.catalogue.apptainer_env`),
    as (variable, line where it is set, :class:`~hpcwidgets.spec.common.Bind`). A value the script exports is read
    through its variables as bash leaves it (``export APPTAINER_BIND=~`` is ``$HOME``, a quoted ``"~"`` stays ``~``).
    [] for another runtime (ch-run reads no such variable)."""
    from ..spec.common import Bind
    if getattr(c, "kind", "") not in ("apptainer.run", "apptainer.instance"):
        return []
    out: list[tuple[str, int, Any]] = []
    for name in CONTAINER_BIND_VARIABLES:
        value = apptainer_env(ctx, step, name)
        if not value:
            continue
        var = ctx.parsed.variable(name, step.line)
        line = step.line
        if dict(step.env).get(name) is None and var is not None and var.exported and str(var.value) == value:
            line = var.line
            value = ctx.parsed.resolve("${" + name + "}", step.line)
        out += [(name, line, Bind.from_token(part.strip())) for part in str(value).split(",") if part.strip()]
    return out


#: a value that is one per-task variable and nothing else ($SLURM_LOCALID, ${SLURM_LOCALID})
_PER_TASK_VALUE = re.compile(r"\$\{?(" + "|".join(PER_TASK_VARS) + r")\}?")


def _prefix_settings(ctx: Context) -> list[Any]:
    """The variables a command of the batch shell sets for itself alone (``NAME=value program``, ``env NAME=value
    program``), as :class:`~hpcwidgets.parse.script.Variable` that are not exported (the script's own variables are
    not changed)."""
    from ..parse.script import Variable
    out: list[Any] = []
    for cmd in simple_commands(ctx):
        if not cmd.words or cmd.name in _DECLARATIONS:
            continue
        out += [Variable(name, str(word.value), cmd.line, False) for name, word in cmd.assignments]
        if cmd.name == "env":
            words = [str(w.value) for w in cmd.words[1:]]
            k = 0
            while k < len(words):
                m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", words[k], re.DOTALL)
                if m:
                    out.append(Variable(m.group(1), m.group(2), cmd.line, False))
                elif words[k] in ("-u", "--unset", "-C", "--chdir", "-S", "--split-string"):
                    k += 1  # env -u NAME: the option's value
                elif not words[k].startswith("-"):
                    break  # the program env runs
                k += 1
    return out


def _fixed_per_task_value(ctx: Context, var: Any) -> str:
    """The per-task variable (``$SLURM_LOCALID``) that the batch shell's ``export NAME=$SLURM_LOCALID`` (or a plain
    assignment to an exported NAME) holds when
    its value, 0, is what every task has and gets (:func:`same_in_every_task`, and no step sets NAME again), or "".
    Where the tasks' values differ it is HPC502's."""
    m = _PER_TASK_VALUE.fullmatch(str(var.value).strip("'\""))
    if m is None or not same_in_every_task(ctx, m.group(1)):
        return ""
    if not var.exported:
        return ""  # NAME=$SLURM_LOCALID before a program
    cmd = next((c for c in simple_commands(ctx) if c.line == var.line and any(n == var.name for n, _ in c.assignments)
                and (c.name in _DECLARATIONS or not c.words)), None)
    return f"${m.group(1)}" if cmd is not None and not _set_again_per_task(ctx, cmd) else ""


def _node_gpus(ctx: Context) -> int:
    """The GPUs of each node of the partition the job runs on, by the profile (0 when unknown)."""
    part = ctx.profile.entry_for(ctx.job) if ctx.profile is not None else None
    return part.gpus_per_node if part is not None and isinstance(part.gpus_per_node, int) else 0


#: pip's --no-index (local wheels only: --find-links DIR or the site's wheelhouse), up to the command's end
_NO_INDEX = re.compile(r"^[^;&|\n]*?\s--no-index\b")

#: an install command: pip, python -m pip (past the interpreter's own options: python3 -u -m pip, python3 -X utf8 -W
#: ignore -m pip), conda, mamba
_INSTALL = re.compile(r"(^|[\s'\"(;&|])(pip3?|python[0-9.]*(?:\s+(?:-[bBdEIOPqRsSuv]+|-[XW]\s*[^\s-]\S*))*\s+-m\s*pip"
                      r"|conda|mamba|micromamba)"
                      r"\s+install\b")


_EXPORT_ENV_SET = re.compile(r"^\s*(?:unset\s+(?:-v\s+)?SLURM_EXPORT_ENV\b|(?:export\s+)?SLURM_EXPORT_ENV=)", re.MULTILINE)


@rule("HPC516", "export-none-reaches-srun", "warning",
      summary="#SBATCH --export=NONE also empties the environment of every srun step",
      why="sbatch hands --export=NONE on to the job as SLURM_EXPORT_ENV=NONE, and srun reads that variable as its own "
          "--export. So the steps start without what the script set up before them: the module loads (apptainer: "
          "command not found), exported variables (APPTAINER_CACHEDIR, MASTER_PORT) and the activated environment. "
          "Sites that recommend --export=NONE (to keep the login shell's environment out) pair it with "
          "unset SLURM_EXPORT_ENV.",
      fix="Add unset SLURM_EXPORT_ENV after the #SBATCH lines (or give srun --export=ALL).",
      bad="""#!/bin/bash
#SBATCH --export=NONE
#SBATCH --gres=gpu:1
module load apptainer
srun apptainer exec --nv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --export=NONE
#SBATCH --gres=gpu:1
unset SLURM_EXPORT_ENV
module load apptainer
srun apptainer exec --nv pytorch_2.3.sif python train.py
""")
def _export_none_reaches_srun(ctx: Context) -> Iterator[Any]:
    export = next((d for d in ctx.parsed.directives if d.flag == "--export" and d.applied and not d.component), None)
    if export is None or export.value.split(",", 1)[0].upper() != "NONE":
        return
    for step in steps(ctx):
        srun = step.chain.srun
        if srun is None or any(str(e).startswith("--export") for e in srun.extra):
            continue
        if _EXPORT_ENV_SET.search("\n".join(ctx.parsed.lines[:step.line - 1])):
            return
        lines = ctx.parsed.lines
        first = lines[step.line - 1]
        indent = first[:len(first) - len(first.lstrip())]
        fix = Fix("unset SLURM_EXPORT_ENV before the step", step.line, step.line,
                  text=f"{indent}unset SLURM_EXPORT_ENV  # --export=NONE is for the batch shell, not the steps\n{first}")
        yield (step.line, f"--export=NONE (line {export.line}) reaches this srun as SLURM_EXPORT_ENV=NONE: the step "
                          "starts without the module loads and exports above it; add unset SLURM_EXPORT_ENV after "
                          "the #SBATCH lines", fix)
        return


@rule("HPC507", "install-at-job-start", "warning",
      summary="packages are installed with pip/conda every time the job runs",
      why="Installing at job start downloads and resolves packages on a compute node on every run: slow, fragile "
          "when the index is unreachable, and the versions drift between runs. (pip install --no-index from a local "
          "wheelhouse, e.g. into a virtual environment in $SLURM_TMPDIR as some sites document, downloads nothing "
          "and is not reported.)",
      fix="Install once into the image (a %post section or RUN line) or into an environment prepared beforehand, "
          "with pinned versions.",
      catalogue=(31,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
pip install --user wandb transformers
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
python train.py
""")
def _install(ctx: Context) -> Iterator[Any]:
    previous = None
    for cmd in ctx.parsed.lexed.code:
        before, previous = previous, cmd
        if cmd.name in _PRINTERS or _only_when_missing(cmd, before):
            continue
        m = _INSTALL.search(raw_text(cmd))
        if m and m.group(2).startswith(("pip", "python")) and _NO_INDEX.search(raw_text(cmd)[m.end():]):
            continue  # from local wheels only (--no-index): nothing is downloaded
        if m:
            tool = "pip" if m.group(2).startswith("python") else m.group(2)  # python3 -m pip install: pip's
            yield cmd.line, f"{tool} install runs on every job; install once into the image or a prepared environment"


#: a test that a file or folder is missing: ! -d X, ! -e X, ! -f X (in [ ], [[ ]] or test), or a command that fails
#: (if ! python -c "import x"; then …)
_MISSING = re.compile(r"!\s*(?:-[defs]\s|\[\[?\s+-[defs]\s|test\s+-[defs]\s|[^\s\[\]!=])|\[\[?\s+!\s+-[defs]\s|"
                      r"\btest\s+!\s+-[defs]\s")
#: a test that a file or folder is there: [ -d X ], [[ -e X ]], test -f X
_PRESENT = re.compile(r"^\s*(?:\[\[?|test)\s+-[defs]\s")


def _only_when_missing(cmd: Any, before: Any) -> bool:
    """Whether ``cmd`` runs only when what it installs is missing: an ``if`` whose condition tests that a file or
    folder is not there (``if [ ! -d "$VENV" ]; then … pip install …; fi``) or that a command fails (``if ! python -c
    "import x"``), or a command after ``[ -d X ] ||``. A job that installs once, into a lasting environment, and
    reuses it after: set-up, not an install at every start."""
    if cmd.kind == "compound" and cmd.words and str(cmd.words[0].value) == "if":
        condition = cmd.text.split("then", 1)[0]
        return bool(_MISSING.search(condition.split("if", 1)[-1]))
    return before is not None and before.joined_by == "||" and bool(_PRESENT.match(before.text))


#: ``${NAME[INDEX]}`` where INDEX uses the task id: ``$SLURM_ARRAY_TASK_ID``, ``$SLURM_ARRAY_TASK_ID-1``,
#: ``$((SLURM_ARRAY_TASK_ID / 2))``, ``SLURM_ARRAY_TASK_ID / 3 % 2`` (bash reads an indexed array's subscript as
#: arithmetic, so the bare name works); group 1 the array, group 2 the index as written
_BY_TASK_ID = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\[([^\[\]\n]*\bSLURM_ARRAY_TASK_ID\b[^\[\]\n]*)\]\}")

#: one word of bash integer arithmetic as :func:`task_index` reads it: a decimal number (no leading 0, which bash
#: reads as octal), the task id (bare, $NAME or ${NAME}), an operator or a parenthesis; anything else is not read
_ARITH_WORD = re.compile(r"\s*(?:(0|[1-9][0-9]*)(?![0-9A-Za-z_#])|(\$\{SLURM_ARRAY_TASK_ID\}|\$?SLURM_ARRAY_TASK_ID\b)"
                         r"|([-+*/%()]))")
#: bash's integers are 64-bit: a value outside them wraps, which is not worth following
_ARITH_LIMIT = 2 ** 63


def _c_div(a: int, b: int) -> int:
    """Bash's ``/``: the quotient truncated toward zero (-7 / 2 is -3)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def task_index(expr: str) -> Any:
    """A function of the array task id computing the bash arithmetic ``expr`` (an indexed array's subscript,
    ``SLURM_ARRAY_TASK_ID / 3 % 2``): only integer literals, the task id, + - * / % (as bash: / truncates toward
    zero, % takes the sign of the left side) and parentheses; ``$((…))`` inside counts as parentheses. The function
    returns None for a task where bash would stop (division by zero). None when ``expr`` holds anything else (another
    variable, ``**``, ``++``/``--``, a shift, an octal or hex number): what it computes is then not worked out."""
    text = expr.replace("$((", "((")
    if "++" in text or "--" in text:
        return None  # bash's increments (and its reading of 5--3): not worth following
    words: list[tuple[str, Any]] = []
    at = 0
    while at < len(text):
        m = _ARITH_WORD.match(text, at)
        if m is None or m.end() == at:
            if text[at:].strip() == "":
                break
            return None
        at = m.end()
        if m.group(1) is not None:
            if len(m.group(1)) > 19 or int(m.group(1)) >= _ARITH_LIMIT:
                return None
            words.append(("n", int(m.group(1))))
        elif m.group(2) is not None:
            words.append(("id", None))
        else:
            words.append((m.group(3), None))
    if not words or len(words) > 200:
        return None  # nothing, or more than an index holds (and deeper than the reading below should go)
    pos = 0

    def peek() -> str:
        return words[pos][0] if pos < len(words) else ""

    def take() -> tuple[str, Any]:
        nonlocal pos
        pos += 1
        return words[pos - 1]

    def primary() -> Any:
        kind, value = take() if pos < len(words) else ("", None)
        if kind == "n":
            return lambda i: value
        if kind == "id":
            return lambda i: i
        if kind == "(":
            inner = sum_()
            if inner is None or peek() != ")":
                return None
            take()
            return inner
        return None

    def unary() -> Any:
        if peek() in ("+", "-"):
            sign = take()[0]
            inner = unary()
            if inner is None:
                return None
            return inner if sign == "+" else (lambda i: None if inner(i) is None else -inner(i))
        return primary()

    def binary(left: Any, op: str, right: Any) -> Any:
        def run(i: int) -> int | None:
            a, b = left(i), right(i)
            if a is None or b is None or (op in "/%" and b == 0):
                return None  # bash stops: "division by 0"
            out = a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else _c_div(a, b) if op == "/" \
                else a - b * _c_div(a, b)
            return out if -_ARITH_LIMIT <= out < _ARITH_LIMIT else None
        return run

    def product() -> Any:
        left = unary()
        while left is not None and peek() in ("*", "/", "%"):
            op = take()[0]
            right = unary()
            left = None if right is None else binary(left, op, right)
        return left

    def sum_() -> Any:
        left = product()
        while left is not None and peek() in ("+", "-"):
            op = take()[0]
            right = product()
            left = None if right is None else binary(left, op, right)
        return left

    found = sum_()
    return found if found is not None and pos == len(words) else None

_ARRAY_LITERAL = re.compile(r"\((.*)\)", re.S)


#: a write to a shell variable: ``NAME=``, ``NAME+=``, ``NAME[i]=``, ``NAME[i]+=`` (group 2: the index, group 3: ``+``)
_VAR_WRITE = re.compile(r"(?:^|(?<=[\s;&|(){}!]))([A-Za-z_][A-Za-z0-9_]*)(\[[^\]\n]*\])?(\+?)=")

#: commands that fill an array from their input or arguments (readarray/mapfile NAME, read -a NAME, unset NAME)
_ARRAY_FILLERS = re.compile(r"(?:^|[\s;&|(){}!])(readarray|mapfile|read|unset)\b([^;&|\n]*)")

#: ``{1..9}``, ``{01..10..2}``, ``{a..e}``: a bash sequence expression
_BRACE_SEQ = re.compile(r"(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?|([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?\d+))?")


def _array_writes(ctx: Context) -> set[str]:
    """Names the script changes other than by a plain top-level ``NAME=(…)``: appended to (``+=``),
    assigned by index (``NAME[i]=``), filled by readarray/mapfile/read -a, unset, or assigned inside a
    loop, an if or a function (their length is then known only when the job runs)."""
    def make() -> set[str]:
        out: set[str] = set()
        for cmd in ctx.parsed.lexed.code:
            text = cmd.text
            for m in _VAR_WRITE.finditer(text):
                if cmd.kind != "simple" or m.group(2) or m.group(3):
                    out.add(m.group(1))
            for m in _ARRAY_FILLERS.finditer(text):
                words = [w for w in m.group(2).split() if not w.startswith(("-", "<", ">"))]
                if m.group(1) == "read":
                    opts = re.findall(r"(?:^|\s)-([A-Za-z]*a)\s*([A-Za-z_][A-Za-z0-9_]*)", m.group(2))
                    out.update(name for _, name in opts)
                else:
                    out.update(re.sub(r"\[.*", "", w.strip("'\"")) for w in words)
        return out
    return cached(ctx, "array_writes", make)


def _brace_count(word: str) -> int | None:
    """How many words bash's brace expansion makes of an unquoted ``word`` (``lr{1,2}`` → 2, ``{0..9}`` → 10,
    ``{a,b}{1..3}`` → 6); None when it cannot tell."""
    depth, start = 0, -1
    for i, c in enumerate(word):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth:
                continue
            inner, rest = word[start + 1:i], word[i + 1:]
            parts, level, last = [], 0, 0
            for j, d in enumerate(inner):
                level += (d == "{") - (d == "}")
                if d == "," and level == 0:
                    parts.append(inner[last:j])
                    last = j + 1
            parts.append(inner[last:])
            seq = _BRACE_SEQ.fullmatch(inner)
            if len(parts) > 1:
                counts = [_brace_count(p) for p in parts]
                if any(n is None for n in counts):
                    return None
                here = sum(counts)  # type: ignore[arg-type]
            elif seq:
                lo, hi, step = (int(seq.group(1)), int(seq.group(2)), seq.group(3)) if seq.group(1) is not None \
                    else (ord(seq.group(4)), ord(seq.group(5)), seq.group(6))
                step_n = abs(int(step)) if step else 1
                here = abs(hi - lo) // (step_n or 1) + 1
            elif "{" in inner:
                return None  # {a{1,2}}: the outer braces stay, the inner expand; not worth guessing
            else:
                continue  # {x} or {}: bash keeps it as written, try braces further on
            after = _brace_count(rest)
            return None if after is None else here * after
    return None if depth else 1


def _literal_arrays(ctx: Context) -> dict[str, tuple[int, int]]:
    """Shell arrays written out as literals and never changed afterwards: name → (number of values, line).

    Brace expressions count as bash expands them (``({0..9})`` is ten values). An array that is appended
    to, assigned by index, filled by readarray, or assigned in a loop is left out: its length is known only
    when the job runs.
    """
    import shlex
    out: dict[str, tuple[int, int]] = {}
    changed = _array_writes(ctx)
    for v in ctx.parsed.variables:
        m = _ARRAY_LITERAL.fullmatch(str(v.value).strip())
        if v.name in changed or not m or "$" in m.group(1) or "`" in m.group(1) \
                or any(c in m.group(1) for c in "*?["):
            out.pop(v.name, None)  # computed (from a file, a glob, a command): its length is unknown
            continue
        body = m.group(1)
        try:
            words = shlex.split(body, comments=True)
        except ValueError:
            out.pop(v.name, None)
            continue
        if "{" in body:
            if any(q in body for q in "'\"\\"):
                out.pop(v.name, None)  # quoted braces stay as written, unquoted ones expand: not worth guessing
                continue
            counts = [_brace_count(w) for w in words]
            if any(n is None for n in counts):
                out.pop(v.name, None)
                continue
            out[v.name] = (sum(counts), v.line)  # type: ignore[arg-type]
            continue
        out[v.name] = (len(words), v.line)
    return out


@rule("HPC508", "array-task-without-value", "error",
      summary="job-array tasks index past the end of the list they take their value from",
      why="Bash arrays count from 0. With --array=1-3 over a list of three values, task 3 reads past the end and "
          "gets an empty value (the program runs with a missing argument or its default), and the first value "
          "is never used. The index may be arithmetic (bash evaluates an indexed array's subscript as an integer "
          "expression): ${SEEDS[$((SLURM_ARRAY_TASK_ID / 2))]} or ${SEEDS[SLURM_ARRAY_TASK_ID / 2]} is worked out "
          "for every task of --array (+ - * / % and parentheses, / truncating as bash does; an index with anything "
          "else is left alone). In a grid as hpcwidgets writes it (x=${x_values[SLURM_ARRAY_TASK_ID / 3 % 2]}), "
          "task i takes combination i and % keeps every index in its list, so tasks past the last combination run "
          "earlier ones again. Line numbers count from 1: with --array=0-9, task 0 asks sed -n "
          "\"${SLURM_ARRAY_TASK_ID}p\" (or awk NR==…, head -n … | tail -1) for line 0 and gets nothing.",
      fix="Make the array indexes match the list: --array=0-(N-1) for N values of a bash array (for a grid, N is "
          "the product of its lists' lengths), --array=1-N for N lines of a file (or shift the index in the script).",
      bad="""#!/bin/bash
#SBATCH --array=1-3
LRS=(0.1 0.01 0.001)
python train.py --lr "${LRS[$SLURM_ARRAY_TASK_ID]}"
""",
      good="""#!/bin/bash
#SBATCH --array=0-2
LRS=(0.1 0.01 0.001)
python train.py --lr "${LRS[$SLURM_ARRAY_TASK_ID]}"
""")
def _array_past_end(ctx: Context) -> Iterator[Any]:
    spec = ctx.job.array
    ids = array_task_ids(spec) if isinstance(spec, str) and spec else None
    if not ids:
        return
    arrays = _literal_arrays(ctx)
    throttle = spec[spec.index("%"):] if "%" in spec else ""  # kept in the advice: it is not part of the ids
    for number, line in enumerate(ctx.parsed.lines, start=1):
        if line.lstrip().startswith("#"):
            continue
        for m in _BY_TASK_ID.finditer(line):
            name = m.group(1)
            if name not in arrays or arrays[name][1] > number:
                continue
            index = task_index(m.group(2))
            if index is None:
                continue  # an index it cannot work out: nothing is said
            n = arrays[name][0]
            read = [index(i) for i in ids]
            if any(k is None for k in read):
                continue  # bash stops on a division by zero: another kind of failure
            missing = [(i, k) for i, k in zip(ids, read) if not 0 <= k < n]
            if not missing or _overwritten_unread(ctx, number, m.group(0)):
                continue
            if n == 0:
                yield number, f"--array={spec}: {name} has no values, so every task gets an empty value"
                continue
            past = [i for i, k in missing if k >= n]
            before = [(i, k) for i, k in missing if k < 0]
            said = []
            if past:
                said.append(f"task{'s' if len(past) > 1 else ''} {_shown(past)} index past {name}, which has "
                            f"{n} value{'s' if n != 1 else ''} (indexes 0-{n - 1}), and get{'' if len(past) > 1 else 's'} "
                            "an empty value")
            wrapped = [(i, k) for i, k in before if k >= -n]
            if wrapped:
                said.append(f"task{'s' if len(wrapped) > 1 else ''} {_shown([i for i, _ in wrapped])} "
                            f"read{'' if len(wrapped) > 1 else 's'} {name}[{wrapped[0][1]}], a negative index that bash "
                            "counts from the end of the list")
            gone = [(i, k) for i, k in before if k < -n]
            if gone:
                said.append(f"task{'s' if len(gone) > 1 else ''} {_shown([i for i, _ in gone])} "
                            f"read{'' if len(gone) > 1 else 's'} {name}[{gone[0][1]}], before the start of the list: "
                            "bash says 'bad array subscript' and the value is empty")
            yield number, f"--array={spec}: {'; '.join(said)}; {_ids_in_range(index, ids, n, m.group(2), throttle)}"
    yield from _grid_past_combinations(ctx, spec, ids, arrays, throttle)
    if 0 in ids:
        yield from _line_zero(ctx, spec)


def _ids_in_range(index: Any, ids: list[int], n: int, expr: str, throttle: str) -> str:
    """The advice of HPC508: the task ids whose index stays within a list of ``n`` values, when they are one range
    (never below 0, which sbatch would refuse). Looked for from 0 up past the job's last id by the list's length
    and the numbers the index adds (``$SLURM_ARRAY_TASK_ID-10`` reaches a value from task 10)."""
    reach = sum(int(k) for k in re.findall(r"[0-9]+", expr)) + n + 1
    last = max(ids) + reach
    if last > 200_000:
        return f"change the index so it stays within 0-{n - 1}"
    good = [i for i in range(last + 1) if (k := index(i)) is not None and 0 <= k < n]
    if not good or good[-1] - good[0] + 1 != len(good):
        return f"change the index so it stays within 0-{n - 1}"
    return f"use --array={good[0]}-{good[-1]}{throttle}"


#: a grid's first pick as the package writes it (:func:`~hpcwidgets.spec.workflow.grid_picks`): ``lr=${lr_values[…]}``
_GRID_PICK = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)=\$\{\1_values\[SLURM_ARRAY_TASK_ID(?: / [0-9]+)? % [0-9]+\]\}\s*")


def _grid_past_combinations(ctx: Context, spec: str, ids: list[int], arrays: dict[str, tuple[int, int]],
                            throttle: str) -> Iterator[Any]:
    """HPC508 for a grid the package writes (:func:`~hpcwidgets.spec.workflow.grid_picks`): task i takes
    combination i, and with % the index never runs past a list, so tasks past the last combination run earlier
    ones again. Said as the model says it (``Workflow`` checks the same)."""
    from ..spec.workflow import grid_picks
    lines = ctx.parsed.lines
    number = 0
    while number < len(lines):
        number += 1
        if not _GRID_PICK.fullmatch(lines[number - 1]):
            continue
        start, names, at = number, [], number
        while at <= len(lines):
            text = lines[at - 1]
            m = _GRID_PICK.fullmatch(text)
            if m is None and text.strip():
                break
            if m is not None:
                names.append(m.group(1))
            at += 1
        number = at - 1
        lists = [arrays.get(f"{name}_values") for name in names]
        if len(names) < 2 or any(found is None or found[1] > start for found in lists):
            continue
        sizes = [found[0] for found in lists]  # type: ignore[index]
        picks = grid_picks([(name, range(size)) for name, size in zip(names, sizes)])
        if [t.strip() for t in lines[start - 1:at - 1] if t.strip()] != picks:
            continue  # not the package's arithmetic: another index, read on its own above
        total = 1
        for size in sizes:
            total *= size
        again = [i for i in ids if i >= total]
        if not total or not again:
            continue
        counts = " × ".join(map(str, sizes))
        yield (start, f"--array={spec} does not run each of the {total} combinations ({' × '.join(names)}: "
                      f"{counts}) once: task i takes combination i, so task{'s' if len(again) > 1 else ''} "
                      f"{_shown(again)} run{'' if len(again) > 1 else 's'} combination"
                      f"{'s' if len(again) > 1 else ''} {_shown([i % total for i in again])} again; "
                      f"use --array=0-{total - 1}{throttle}")


def _overwritten_unread(ctx: Context, number: int, lookup: str) -> bool:
    """Whether line ``number`` is a plain top-level ``NAME=${ARRAY[$SLURM_ARRAY_TASK_ID]}`` whose value is never
    read: the next top-level commands only assign (no program, no command substitution) without reading NAME, up to
    a plain assignment of NAME that does not read it either (val=${A[$ID]} then val=$SLURM_ARRAY_TASK_ID)."""
    code = [c for c in ctx.parsed.lexed.code if c.is_code]
    here = next((k for k, c in enumerate(code) if c.line == number), None)
    if here is None:
        return False

    def only_assigns(cmd: Any) -> bool:
        return cmd.kind == "simple" and not cmd.words and bool(cmd.assignments) and cmd.line == cmd.end_line

    first = code[here]
    if not only_assigns(first) or len(first.assignments) != 1 or str(first.assignments[0][1].value).strip("\"'") \
            != lookup:
        return False
    name = first.assignments[0][0]
    reads = re.compile(r"\$(?:\{[#!]?" + re.escape(name) + r"\b|" + re.escape(name) + r"\b)")
    for cmd in code[here + 1:]:
        if not only_assigns(cmd) or "$(" in cmd.text or "`" in cmd.text or reads.search(cmd.text):
            return False
        if any(n == name for n, _ in cmd.assignments):
            return True
    return False


def _task_id_names(ctx: Context) -> set[str]:
    """SLURM_ARRAY_TASK_ID and the script's variables that are only a copy of it (ID=$SLURM_ARRAY_TASK_ID)."""
    out = {"SLURM_ARRAY_TASK_ID"}
    for v in ctx.parsed.variables:
        m = re.fullmatch(r"[\"']?\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?[\"']?", str(v.value).strip())
        if m and m.group(1) in out:
            out.add(v.name)
    return out


def _line_lookups(names: set[str]) -> list[tuple[str, re.Pattern[str]]]:
    """Commands that take line number $ID of a file, counting from 1: (the command, its pattern)."""
    alternatives = "|".join(map(re.escape, sorted(names)))
    # $ID, ${ID}, or the arithmetic $((ID)) / $(($ID)) that gives the same number
    ref = rf"\$(?:\{{(?:{alternatives})\}}|(?:{alternatives})\b|\(\(\s*\$?\{{?(?:{alternatives})\}}?\s*\)\))"
    return [
        # sed -n "${ID}p", sed -n ${ID}p, sed "${ID}q;d", sed -n "${ID}{p;q}"
        ("sed", re.compile(r"(?<![\w-])sed\b[^|;&\n]*?[\s'\"]" + r"[\"']?" + ref + r"[\"']?\s*[pqd{]")),
        # awk "NR==$ID", awk 'NR=='$ID, awk "NR == ${ID} {print}"; not awk "NR==$ID+1", which adds the 1
        ("awk", re.compile(r"(?<![\w-])awk\b[^|;&\n]*?NR\s*==\s*['\"]?\s*" + ref + r"(?!['\"]?\s*\+)")),
        # head -n $ID file | tail -1 (or tail -n 1)
        ("head", re.compile(r"(?<![\w-])head\s+(?:-n\s*|-)[\"']?" + ref + r"[\"']?[^|;&\n]*\|\s*tail\s+(?:-n\s*)?-?1\b")),
    ]


_AWK_VAR = re.compile(r"(?<![\w-])awk\b[^|;&\n]*?-v\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)=['\"]?(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)")


def _line_zero(ctx: Context, spec: str) -> Iterator[Any]:
    """HPC508 for a 0-based array whose task id is used as a line number (sed, awk, head | tail count from 1)."""
    names = _task_id_names(ctx)
    lookups = _line_lookups(names)
    m = re.fullmatch(r"0-(\d+)((?::\d+)?)((?:%\d+)?)", spec)
    advice = (f"use --array=1-{int(m.group(1)) + 1}{m.group(2)}{m.group(3)}" if m and not m.group(2)
              else "number the tasks from 1, or look up line $((SLURM_ARRAY_TASK_ID + 1))")
    for number, line in enumerate(ctx.parsed.lines, start=1):
        if line.lstrip().startswith("#") or number < ctx.parsed.first_command:
            continue
        what = next((name for name, pattern in lookups if pattern.search(line)), None)
        if what is None:
            for am in _AWK_VAR.finditer(line):
                var = am.group(2).strip("${}")
                if var in names and re.search(r"NR\s*==\s*" + re.escape(am.group(1)) + r"\b(?!\s*\+)",
                                              line[am.end():]):
                    what = "awk"
                    break
        if what is None:
            continue
        outcome = "and sed stops with 'invalid usage of line address 0'" if what == "sed" else "and gets nothing"
        yield (number, f"--array={spec} starts at task 0, but {what} counts lines from 1: task 0 asks for line 0 "
                       f"{outcome}, and each task after it gets the line before its own; {advice}")


def _shown(ids: list[int]) -> str:
    """The first few task ids of a list, for a message."""
    return ", ".join(map(str, ids[:4])) + (", …" if len(ids) > 4 else "")


_SUBMIT_DIR = re.compile(r"^\$(?:\{SLURM_SUBMIT_DIR\}|SLURM_SUBMIT_DIR\b)/?")


def _same_dir(path: str) -> str:
    """A directory name as the job's working directory sees it: ``./logs/``, ``$SLURM_SUBMIT_DIR/logs`` → ``logs``."""
    path = _SUBMIT_DIR.sub("", path.strip().strip("'\""))
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/") or ("/" if path.startswith("/") else "")


@rule("HPC509", "log-directory-created-by-the-job", "error",
      summary="the script creates the directory its --output/--error log goes to, which is too late",
      why="Slurm opens the job's log before the first line of the script runs, and it does not create a missing "
          "directory: the job fails at launch (JobLaunchFailure, exit code 0:53 on Slurm 22.05), leaves no log, "
          "and the script's mkdir never runs. It only works once the directory already exists.",
      fix="Create the directory before submitting (mkdir -p logs && sbatch job.sh; hpcwidgets submit does it "
          "for you) and drop the mkdir from the script, or write the log into the working directory itself "
          "(--output=%x-%j.out).",
      bad="""#!/bin/bash
#SBATCH --output=logs/%x-%j.out
mkdir -p logs
python train.py
""",
      good="""#!/bin/bash
#SBATCH --output=logs/%x-%j.out
python train.py
""")
def _log_dir_made_by_job(ctx: Context) -> Iterator[Any]:
    import posixpath
    logs: dict[str, tuple[str, str]] = {}  # directory -> (field, flag)
    for name, flag in (("output", "--output"), ("error", "--error")):
        value = getattr(ctx.job, name, "")
        folder = _same_dir(posixpath.dirname(value)) if isinstance(value, str) and value else ""
        if folder and folder not in logs and "%" not in folder and "$" not in folder:
            logs[folder] = (name, flag)
    if not logs:
        return
    moved = False  # after a cd, a relative mkdir makes another folder than the log's
    for cmd in ctx.parsed.lexed.code:
        words = [str(w) for w in cmd.argv]
        if words and words[0] in ("cd", "pushd"):
            moved = True
        if not words or posixpath.basename(words[0]) != "mkdir":
            continue
        parents = any(w.startswith("-") and not w.startswith("--") and "p" in w or w == "--parents" for w in words[1:])
        made = [_same_dir(ctx.parsed.resolve(w, cmd.line)) for w in words[1:] if not w.startswith("-")]
        for folder, (name, flag) in logs.items():
            if moved and not folder.startswith("/"):
                continue
            if any(m == folder or (parents and m.startswith(folder + "/")) for m in made):
                yield (ctx.parsed.directive_line(name, cmd.line),
                       f"{flag} writes into {folder}/, which this script creates on line {cmd.line}: Slurm opens the "
                       f"log before the script runs, so when {folder}/ is missing the job fails at launch without a "
                       f"log; create it before submitting (mkdir -p {folder}) and drop the mkdir here")


@rule("HPC510", "bad-module-name", "error",
      summary="module load names something that cannot be a module",
      why="Module names are NAME or NAME/VERSION (letters, digits and _ . + - @). A name written another way "
          "(cuda=12.1, a space inside quotes) matches no module: module load fails, and the job goes on without "
          "the software it needs. Names held in the script's own variables are checked as they are set; names "
          "known only when the job runs are not checked.",
      fix="Write the module as module avail / module spider shows it, e.g. module load cuda/12.1.",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
module load cuda=12.1
python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
module load cuda/12.1
python train.py
""")
def _bad_module(ctx: Context) -> Iterator[Any]:
    for name, line in ctx.parsed.modules:
        names = [name]
        via = ""
        if "$" in name or "`" in name:
            value = ctx.parsed.resolve(name, line)
            if "$" in value or "`" in value:
                continue  # known only when the job runs
            names, via = value.split(), f" {name}"  # the script sets it: check what it holds
        for n in names:
            for p in SlurmJob(modules=(n,)).problems():
                if p.field.split(".", 1)[0] == "modules":
                    yield line, f"module load{via}: {p.message}"


#: programs that run a job's long work: the batch shell waits for them in the foreground
_LONG_RUNNERS = ("srun", "mpirun", "mpiexec", "apptainer", "singularity", "ch-run", "torchrun", "accelerate",
                 "deepspeed")


@rule("HPC511", "signal-trap-foreground-step", "warning",
      summary="a trap waits for a --signal=B:… warning while the job's step runs in the foreground",
      why="--signal=B:USR1@60 sends the signal to the batch shell only, and bash runs a trap only once the "
          "foreground command it is waiting for has exited. With the step in the foreground (srun python train.py), "
          "the handler (checkpoint, requeue, copy results back) runs only after the step ends, which is when the "
          "time limit kills the whole job: the warning is lost. The wait builtin, in contrast, returns as soon as a "
          "trapped signal arrives.",
      fix="Start the step in the background and wait for it: srun python train.py & wait (the handler then runs as "
          "soon as the signal arrives). A handler that only tells the program to checkpoint (scancel --signal=USR1, "
          "kill, a STOP file) must be followed by waiting again, as wait returns when the trap runs: HPC529.",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
srun python train.py &
wait
""")
def _trap_behind_foreground(ctx: Context) -> Iterator[Any]:
    found = _batch_signal(ctx)
    if found is None:
        return
    directive, signal = found
    code = ctx.parsed.lexed.code
    handlers = [t for t in traps_for(ctx, signal) if handler_of(t) and not handler_of(t).startswith("-")]
    if not handlers:
        return
    trap = handlers[-1]
    for i, cmd in enumerate(code):
        if cmd.line <= trap.line or cmd.kind != "simple" or not cmd.words:
            continue
        words = [str(v) for v in cmd.argv]
        if words[0] == "exec" and len(words) > 1:
            return  # the program takes the batch shell's place and gets the signal itself: no trap waits, nothing follows
        work = _long_work(words)
        if work is None:
            continue
        name, script = work
        j = i
        while j < len(code) - 1 and code[j].joined_by in ("|", "|&"):
            j += 1  # a pipeline runs in the background only when its last command is followed by &
        if code[j].joined_by == "&":
            continue
        if script and _waits(ctx):
            continue  # a helper run before or after the work, which the script starts in the background and waits for
        sig = directive.value
        inside = "; a trap inside the script does not help, as B: signals the batch shell alone" if script else ""
        yield (cmd.line, f"#SBATCH --signal={sig} (line {directive.line}) sends {signal} to the batch shell, but {name} "
                         f"runs in the foreground: bash runs the trap of line {trap.line} only after {name} exits, so "
                         f"the handler never runs before the time limit kills the job; start it in the background "
                         f"and wait for it ({name} … & then wait){inside}")
        return


def _long_work(words: list[str]) -> tuple[str, bool] | None:
    """How HPC511 names a command that runs a job's long work, and whether that is a shell script: srun, a launcher,
    a container or python by its name; a script another shell runs (bash train.sh, bash -c) or run by its path
    (./run.sh) as written. None for another command."""
    launch = launch_words(words) or words
    name = launch[0].rsplit("/", 1)[-1]
    if name in _LONG_RUNNERS or _PYTHON.fullmatch(name):
        return name, False
    if name and is_shell(name):
        for w in launch[1:]:
            if not w.startswith("-"):
                return f"{name} {w}", True
            if not w.startswith("--") and "c" in w:
                return f"{name} {w}", True  # bash -c '…', bash -lc '…'
        return None  # a shell reading its commands from standard input (bash <<EOF): not read here
    if name.endswith((".sh", ".bash")) or launch[0].startswith("./"):
        return launch[0], True
    return None


@rule("HPC517", "signal-misses-the-batch-shell", "warning",
      summary="--signal without B: while the batch shell traps the signal, or with no job step to receive it; or a "
              "trap that requeues or checkpoints on USR1/USR2 with no --signal to send it",
      why="Without B:, Slurm sends the --signal warning to the job's steps (what srun started) and not to the batch "
          "shell: a trap in the script never runs, so the checkpoint or requeue it was written for never happens; and "
          "a job whose work runs in the batch shell (python train.py without srun) has no step, so nothing receives "
          "the warning at all. A step anywhere counts (in a function, a loop, bash -c, eval \"srun …\", a variable "
          "holding srun), and so does code the linter cannot read that may start one (eval $cmd, bash run.sh, a sourced "
          "script). With no --signal at all, USR1 and USR2 never come: at the time limit Slurm sends SIGTERM, then "
          "SIGKILL after KillWait (sbatch(1), --time), so a trap that requeues or checkpoints on USR1 never runs. "
          "Not reported when the script sends the signal itself (kill -USR1, scancel --signal=USR1, timeout -s "
          "USR1) or traps TERM with the same handler; a --signal given to sbatch on the command line is not seen.",
      fix="Send it to the batch shell with #SBATCH --signal=B:USR1@120 when the script traps it (and start the step "
          "in the background, then wait: HPC511); or run the program as a step (srun python train.py) so it gets "
          "the signal itself (not behind torchrun, accelerate or deepspeed, whose agent dies of USR1: HPC123).",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=USR1@120
#SBATCH --requeue
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
srun python train.py &
wait
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
srun python train.py &
wait
""")
def _signal_misses_batch_shell(ctx: Context) -> Iterator[Any]:
    yield from _trap_without_signal(ctx)
    found = _batch_signal(ctx, batch=False)
    if found is None:
        return
    directive, signal = found
    trap = next((t for t in traps_for(ctx, signal) if not handler_of(t).startswith("-")), None)
    sig = str(directive.value).strip()
    if trap is not None:
        lines = ctx.parsed.lines
        text = lines[directive.line - 1]
        fixed = re.sub(r"(--signal[= ])(?:R:)?", lambda m: m.group(1) + ("RB:" if "R:" in m.group(0) else "B:"),
                       text, count=1)
        fix = Fix("send the signal to the batch shell (B:)", directive.line, directive.line, text=fixed) \
            if fixed != text else None
        prefix = "RB:" if sig.startswith("R:") else "B:"
        yield (directive.line, f"--signal={sig} goes to the job's steps, not to the batch shell, so the trap of line "
                               f"{trap.line} never runs; write --signal={prefix}{sig.split(':')[-1]}", fix)
        return
    if starts_steps(ctx) or runs_unread_code(ctx):
        return  # a step to receive it, or code the linter does not read (eval $cmd, bash run.sh) that may start one
    yield (directive.line, f"--signal={sig} goes to the job's steps, and this job starts none (its commands run in "
                           "the batch shell), so nothing receives the warning; run the program with srun, or use "
                           "B: and forward the signal from a trap")


#: signals a job gets only when something asks for them: Slurm itself sends TERM, then KILL, at the time limit
_WARNING_SIGNALS = ("USR1", "USR2")
#: programs that send a signal they are given by name (kill -USR1, scancel --signal=USR1, timeout -s USR1 …), and
#: the submitters that pass --signal on to a job (sbatch --signal=B:USR1@120 "$0")
_SENDERS = ("kill", "pkill", "killall", "scancel", "timeout", "sbatch", "srun", "salloc")
#: what a trap's handler does when it is there to save the job: requeue or resubmit it, or have the program save
_SAVING_WORDS = re.compile(r"(?i)requeue|resubmit|checkpoint|ckpt")


def _trap_without_signal(ctx: Context) -> Iterator[Any]:
    """HPC517's finding for a trap on USR1 or USR2 that requeues or checkpoints, in a job that no --signal directive
    and no command of the script sends that signal: the handler never runs."""
    if not is_shell(shebang_program(ctx.parsed.source)):
        return
    asked = set()
    for d in ctx.parsed.directives:
        if d.applied and not getattr(d, "component", 0) and d.flag == "--signal":
            asked.add(_signal_name(re.sub(r"^[RB]{1,2}:|@.*$", "", str(d.value).strip())))
    for signal in _WARNING_SIGNALS:
        traps = [t for t in traps_for(ctx, signal) if not handler_of(t).startswith("-")]
        saving = next((t for t in traps if _saves_the_job(ctx, t)), None)
        if signal in asked or saving is None:
            continue
        handlers = {handler_of(t) for t in traps}
        if any(handler_of(t) in handlers for t in traps_for(ctx, "TERM")):
            continue  # the handler runs on the TERM of the time limit as well
        # what the handler passes on (kill -USR1 "$pid") goes to the program, not to the batch shell; a resubmission
        # there with sbatch --signal=B:USR1@… says the job is submitted so
        handler = [(line, w) for t in traps for line, w in trap_handler_commands(ctx, t)]
        commands = [(cmd.line, [str(v) for v in cmd.argv]) for cmd in _simple_commands(ctx.parsed.lexed.code)
                    if cmd.line not in {line for line, _ in handler}]
        commands += [(line, w) for line, w in handler if w and w[0] == "sbatch"]
        if any(_sends(words, signal) for _, words in commands):
            continue  # the script sends it itself (a timer, a watcher, timeout -s USR1, sbatch --signal)
        yield (saving.line, f"the trap on SIG{signal} never runs: no #SBATCH --signal asks Slurm to send {signal}, and "
                            "at the time limit Slurm sends SIGTERM, then SIGKILL, so the job is neither requeued nor "
                            f"checkpointed; add #SBATCH --signal=B:{signal}@120 (B: because the trap is the batch "
                            "shell's; 120 seconds before the limit, or as long as saving takes), unless you pass "
                            "--signal to sbatch when you submit")


def _saves_the_job(ctx: Context, trap: Any) -> bool:
    """Whether the handler of ``trap`` requeues or resubmits the job, or has the program save its state: scontrol
    requeue, sbatch, a signal passed on (kill, scancel --signal), a STOP file (touch), or a function or word named for
    it (checkpoint, ckpt, requeue, resubmit)."""
    for _, words in trap_handler_commands(ctx, trap):
        name = words[0].rsplit("/", 1)[-1] if words else ""
        if name in ("sbatch", "kill", "pkill", "scancel", "touch") or any(_SAVING_WORDS.search(w) for w in words):
            return True
    return bool(_SAVING_WORDS.search(handler_of(trap)))


def _sends(words: list[str], signal: str) -> bool:
    """Whether a command sends ``signal`` by name or number: kill -USR1, kill -s 10, scancel --signal=USR1, timeout -s
    USR1, sbatch --signal=B:USR1@120 (a plain number is a signal only after -s, -n or --signal)."""
    if not words or words[0].rsplit("/", 1)[-1] not in _SENDERS:
        return False
    previous = ""
    for word in words[1:]:
        if previous in ("-s", "-n", "--signal"):
            named = word
        elif word.startswith("--signal="):
            named = word.partition("=")[2]
        elif word.startswith("-") and not word.startswith("--"):
            named = word[1:]
        else:
            named = ""
        previous = word
        if named and _signal_name(re.sub(r"^[RB]{1,2}:|@.*$", "", named)) == signal:
            return True
    return False


#: the programs that start job steps: srun, and the MPI launchers (through srun or daemons of their own)
_STEP_STARTERS = ("srun", *MPI_LAUNCHERS)

#: a sourced file that sets an environment up (conda, a virtualenv, modules, the shell's start-up files, a site's
#: env.sh) rather than running the job's work
_SET_UP_FILE = re.compile(r"(?i)activate|conda\.sh|mamba\.sh|bashrc|bash_profile|(?:^|/)\.?profile$|modules?\.sh|lmod"
                          r"|/init/|venv|setup[-_]?env|(?:^|[/._-])env(?:ironment)?(?:\.sh)?$|\.env$")

#: a command substitution, whose output eval runs (eval "$(conda shell.bash hook)": set-up code a tool prints)
_SUBSTITUTION = re.compile(r"\$\((?:[^()]|\([^()]*\))*\)|`[^`]*`")


def every_command(ctx: Context) -> list[tuple[int, list[str]]]:
    """``(line, words)`` of every command the script runs, past the wrappers that run it unchanged (``time``,
    ``exec``, ``env A=1`` …): at the top level, in functions, loops and ifs, in ``bash -c`` scripts, and read through
    the variables that hold them (``$LAUNCH train.py`` with ``LAUNCH="srun …"``)."""
    def make() -> list[tuple[int, list[str]]]:
        found = [(cmd.line, [str(v) for v in cmd.argv]) for cmd in _simple_commands(ctx.parsed.lexed.code)]
        found += [(held.line, [str(a) for a in held.argv]) for held in ctx.parsed.held_commands]
        return [(line, words) for line, words in ((line, launch_words(w)) for line, w in found) if words]
    return cached(ctx, "every_command", make)


def _eval_text(ctx: Context, line: int, words: list[str]) -> str:
    """The code ``eval`` runs, with the script's variables put in (``cmd="srun …"; eval $cmd``); the output of a
    command substitution (``eval "$(conda shell.bash hook)"``) is left out, as it is set-up code a tool prints."""
    return _SUBSTITUTION.sub("", ctx.parsed.resolve(" ".join(words[1:]), line))


def starts_steps(ctx: Context) -> bool:
    """Whether the script starts a job step that the linter sees: srun or an MPI launcher wherever it runs commands
    (see :func:`every_command`), also in the code an ``eval`` runs."""
    for line, words in every_command(ctx):
        if words[0].rsplit("/", 1)[-1] in _STEP_STARTERS:
            return True
        if words[0] == "eval" and any(w.rsplit("/", 1)[-1] in _STEP_STARTERS
                                      for w in re.split(r"[\s;&|()'\"]+", _eval_text(ctx, line, words))):
            return True
    return any(step.chain.srun is not None for step in steps(ctx))


def runs_unread_code(ctx: Context) -> bool:
    """Whether the script runs code the linter does not read, which may start job steps of its own: an ``eval`` of
    a variable it cannot know, a shell script run by its path or handed to a shell (``bash run.sh``, or its commands
    on standard input), or a sourced file other than an environment's set-up."""
    for line, words in every_command(ctx):
        name = words[0].rsplit("/", 1)[-1]
        if name == "eval":
            unread = "$" in _eval_text(ctx, line, words)
        elif name in ("source", "."):
            unread = len(words) > 1 and not _SET_UP_FILE.search(words[1])
        elif is_shell(name):
            unread = not any(w.startswith("-") and not w.startswith("--") and "c" in w for w in words[1:])
        else:
            unread = name.endswith((".sh", ".bash"))
        if unread:
            return True
    return False


#: signals whose default action ends a process (signal(7): Term or Core), by their name without SIG
_ENDS_A_PROCESS = ("HUP", "USR1", "USR2", "ALRM", "TERM", "XCPU", "VTALRM", "PROF")
#: signals bash may leave alone (bash(1), SIGNALS): QUIT always; INT while it waits for a foreground command, which it
#: lets decide (in wait, or between commands, INT kills it); and it starts background commands with both ignored
_LEFT_ALONE_BY_BASH = ("INT", "QUIT")
#: commands that name a signal to send it, not to handle it
_SIGNAL_SENDERS = ("kill", "pkill", "killall", "scancel", "echo", "printf")
#: a sourced file whose name says it may hold a signal handler (a trap the rule cannot see)
_HANDLER_FILE = re.compile(r"(?i)trap|signal|requeue|handler|preempt|resubmit|checkpoint|util|common|helper|lib|func")


def _waits(ctx: Context) -> bool:
    """Whether the batch shell waits for background work with the wait builtin (where an untrapped INT kills it)."""
    return any(is_wait(cmd) for cmd, _, _ in _code_in_order(ctx))


@rule("HPC530", "batch-signal-without-trap", "warning",
      summary="--signal=B:… sends the signal to a batch shell that has no trap for it, so the shell dies of it (or "
              "nothing happens at all)",
      why="With B: Slurm sends the --signal warning to the batch shell alone. bash leaves USR1, USR2, TERM and the "
          "like at their default action, which ends the process, unless a trap handles them: so the batch shell is "
          "killed by the warning itself, Slurm ends the job and kills its steps, the minutes before the limit are "
          "lost, and what the warning was asked for never happens (no checkpoint, no --requeue). Not reported when "
          "the script runs its program with exec (the program then gets the signal and may handle it), sources a file "
          "whose name says it may hold the handler, or hands the signal's name to a command (a function that may set "
          "the trap). bash ignores QUIT, and INT while it waits for a foreground command (in wait, INT kills it too), and "
          "it passes no signal on: then the warning reaches no one, and the job runs into its time limit as if none "
          "had been asked for.",
      fix="Trap the signal and act on it, with the step started in the background and waited for (HPC511): "
          "trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1, then srun python train.py & wait; or drop B: so Slurm "
          "sends the signal to the steps, for a program that handles it itself (Lightning, or signal.signal in "
          "Python).",
      bad="""#!/bin/bash
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
srun python train.py &
wait
""")
def _batch_signal_without_trap(ctx: Context) -> Iterator[Any]:
    found = _batch_signal(ctx)
    if found is None or not is_shell(shebang_program(ctx.parsed.source)):
        return
    directive, signal = found
    if signal not in _ENDS_A_PROCESS and signal not in _LEFT_ALONE_BY_BASH:
        return  # CHLD, URG, WINCH … are ignored by default; STOP and TSTP stop the shell, which is another story
    if any(words[0] == "trap" and any(_signal_name(w) == signal for w in words[2:])
           for cmd in _simple_commands(ctx.parsed.lexed.code) if not isinstance(cmd, _Inner)
           for words in [[str(v) for v in cmd.argv]] if words):
        return  # a trap in the batch shell, in a function's body too (the script may call it), an if or a loop
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        if not words:
            continue
        if words[0] not in _SIGNAL_SENDERS and any(not w.isdigit() and _signal_name(w) == signal for w in words[1:]):
            return  # handed to a function that may set the trap (requeue_job func_trap USR1, from a sourced file)
        if words[0] == "exec" and len(words) > 1:
            return  # the program takes the shell's place, and the signal
        if words[0] in ("source", ".") and len(words) > 1 and _HANDLER_FILE.search(words[1].rsplit("/", 1)[-1]):
            return
    value = str(directive.value).strip()
    when = re.search(r"@(\d+)$", value)
    seconds = when.group(1) if when else "60"  # sbatch's default
    if signal == "QUIT" or (signal == "INT" and not _waits(ctx)):
        yield (directive.line, f"--signal={value} sends {signal} to the batch shell alone, and nothing in the script "
                               f"traps it: bash neither stops nor passes it on, so the program never sees it and the "
                               f"job runs into its time limit as if no warning had been asked for; trap it and act in "
                               f"the trap (trap '…' {signal}, with the step started in the background and waited for: "
                               "HPC511), or drop B: so the steps receive it")
        return
    yield (directive.line, f"--signal={value} sends {signal} to the batch shell alone, and nothing in the script traps "
                           f"it: it kills bash {seconds} seconds before the time limit, Slurm ends the job with its "
                           f"steps, and no checkpoint or requeue happens; trap it (trap '…' {signal}, with the step "
                           "started in the background and waited for: HPC511), or drop B: so the steps receive it")


#: Python modules run with -m that handle SIGINT themselves (torch's elastic agent, DeepSpeed's launcher): they
#: install their own handler, which takes the place of the ignored one
_HANDLES_INT = re.compile(r"^(?:torch\.distributed\.(?:run|launch)|accelerate|deepspeed|jupyter|ipykernel)")
#: Python code in the script (a here-document) that sets its own SIGINT or SIGQUIT handler, which takes the place of
#: the ignored one
_OWN_INT_HANDLER = re.compile(r"signal\(\s*(?:signal\.)?SIG(?:INT|QUIT)\b")
#: bash's job control, which gives background commands their own process group and leaves their signals alone
_JOB_CONTROL = re.compile(r"^\s*set\s+(?:-\w*m\w*|-o\s+monitor)\b", re.MULTILINE)


def _kill_signal_and_targets(words: list[str]) -> tuple[str, list[str]] | None:
    """The signal ``kill`` sends (by name, SIG-less) and the words naming what it sends it to; None when the command
    is no kill or lists signals (-l)."""
    if not words or words[0] != "kill":
        return None
    signal, rest = "TERM", words[1:]
    if rest and rest[0] in ("-s", "-n") and len(rest) > 1:
        signal, rest = _signal_name(rest[1]), rest[2:]
    elif rest and rest[0].startswith("-") and rest[0] not in ("-l", "-L", "--") and len(rest[0]) > 1:
        signal, rest = _signal_name(rest[0][1:]), rest[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return signal, rest


def _kills(ctx: Context) -> Iterator[tuple[int, list[str]]]:
    """``(line, words)`` of every command the batch shell may run: the script's (function bodies too) and those of
    the handlers its traps set (a function a handler calls comes twice, at its own lines both times)."""
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if isinstance(cmd, _Inner):
            continue
        words = [str(v) for v in cmd.argv]
        yield cmd.line, words
        if words[:1] == ["trap"]:
            yield from trap_handler_commands(ctx, cmd)


def _plain_python(cmd: Any) -> bool:
    """A command that runs the Python interpreter on a script or a module of its own (not a launcher such as
    torchrun, deepspeed or python -m torch.distributed.run, which handle SIGINT themselves)."""
    words = launch_words([str(v) for v in cmd.argv]) or [""]
    if not _PYTHON.fullmatch(words[0].rsplit("/", 1)[-1]):
        return False
    module = next((words[k + 1] for k, w in enumerate(words[:-1]) if w == "-m"), "")
    return not _HANDLES_INT.match(module)


def _background_programs(ctx: Context) -> dict[str, tuple[Any, str]]:
    """Variables holding the process id of a command the batch shell started with & (``pid=$!``): name → (that
    command, the program it runs, past env, time, nohup …)."""
    code = [cmd for cmd, _, _ in _code_in_order(ctx)]
    out: dict[str, tuple[Any, str]] = {}
    for var in ctx.parsed.variables:
        if str(var.value) not in ("$!", "${!}"):
            continue
        started = [c for c in code if c.line < var.line and c.joined_by == "&" and c.kind == "simple" and c.words]
        if started:
            words = launch_words([str(v) for v in started[-1].argv]) or [""]
            out[var.name] = (started[-1], words[0].rsplit("/", 1)[-1])
    return out


@rule("HPC531", "interrupt-sent-to-background-python", "warning",
      summary="kill -INT (or -QUIT) sent to a Python program the batch shell started with &, which ignores it",
      why="A shell without job control, such as a batch script, starts every command it runs with & with SIGINT and "
          "SIGQUIT ignored (bash(1): with job control off, asynchronous commands ignore both), and Python keeps a "
          "signal that was ignored when it started ignored: it installs no KeyboardInterrupt handler. kill -INT $pid, the "
          "usual way to make a training script raise KeyboardInterrupt and save a checkpoint before the time limit, "
          "then does nothing, and the job is killed at the limit without saving. Started in the foreground, the "
          "same program would get the signal, but then bash runs no trap until it ends (HPC511). Launchers that set "
          "their own SIGINT handler (torchrun, python -m torch.distributed.run, deepspeed) are left alone, as is a "
          "script that turns job control on (set -m).",
      fix="Send a signal the program handles instead (kill -TERM $pid, or USR1, with signal.signal(signal.SIGTERM, "
          "…) in the program, or the launcher's own handling: Lightning's SLURMEnvironment, torchrun's SIGTERM), or "
          "turn on job control (set -m) before starting it.",
      bad="""#!/bin/bash
#SBATCH --signal=B:USR1@300
python train.py &
pid=$!
trap 'kill -INT "$pid"' USR1
wait
""",
      good="""#!/bin/bash
#SBATCH --signal=B:USR1@300
python train.py &
pid=$!
trap 'kill -TERM "$pid"' USR1
wait
""")
def _interrupt_to_background_python(ctx: Context) -> Iterator[Any]:
    if _JOB_CONTROL.search(ctx.parsed.source) or _OWN_INT_HANDLER.search(ctx.parsed.source):
        return
    started = _background_programs(ctx)
    if not started:
        return
    for line, words in _kills(ctx):
        found = _kill_signal_and_targets(words)
        if found is None or found[0] not in _LEFT_ALONE_BY_BASH:
            continue
        signal, targets = found
        for target in targets:
            m = re.fullmatch(r'"?\$\{?([A-Za-z_]\w*)\}?"?', target)
            held = started.get(m.group(1)) if m else None
            if held is None:
                continue
            cmd, program = held
            if _plain_python(cmd):
                yield (line, f"kill -{signal} {target} sends SIG{signal} to {program} (line {cmd.line}), which the "
                             f"batch shell started with & and so with SIG{signal} ignored; Python keeps it ignored "
                             "unless the program sets a handler of its own, so no KeyboardInterrupt is raised and "
                             "nothing is saved; send TERM or USR1 and handle it in the program (signal.signal), or "
                             "run set -m before starting it")
                return


#: programs whose arguments may be their own name: a package manager installing itself (pip install --upgrade \ /
#: pip setuptools), and ssh running ssh on a gateway (ssh -t gateway \ / ssh node)
_OWN_NAME_AS_ARGUMENT = frozenset({"pip", "pip3", "conda", "mamba", "micromamba", "uv", "apt", "apt-get", "yum", "dnf",
                                   "spack", "module", "ml", "npm", "cargo", "gem", "brew", "ssh"})


@rule("HPC532", "backslash-where-a-pipe-was-meant", "error",
      summary="a continued command goes on into a line that starts the same program again (where a | was meant), or "
              "a short command such as pwd goes on into lines that start others (ls, nvidia-smi): the backslash joins "
              "commands",
      why="A backslash at the end of a line joins the next line to the command, so samtools view … \"$BAM\" \\ / "
          "samtools sort -o out.bam - runs one samtools view, with samtools, sort, -o … as extra arguments (samtools "
          "takes them for regions): the view output goes to the log and no sorted file is made; the next step that "
          "reads it fails. HPC504 reports the opposite slip, a backslash missing. A launcher continued into the "
          "program it starts (srun … \\ / python train.py, apptainer exec … \\ / torchrun …) is not reported: only "
          "a line that starts the very program of the command above, which no program takes as its own argument "
          "(except package managers installing themselves, pip install --upgrade \\ / pip, and ssh hopping through "
          "a gateway, which are left alone). Also reported: a short command that takes no command (pwd, ls, "
          "nvidia-smi, df, hostname, date, cd …) continued into lines that each start another such command, as in "
          "srun --container-image=… \\ / pwd \\ / ls \\ / nvidia-smi: srun runs one pwd with ls and nvidia-smi "
          "as its arguments, which it refuses or ignores, and none of the others runs. A program that runs the "
          "command it is given (bash -c, xargs, env, time, timeout, parallel, mpirun) and a line holding an option's "
          "value are left alone.",
      fix="End the line before with | (a pipe; the line break after it needs no backslash) if the output was meant "
          "to flow into the next command, or remove the backslash if they are two commands.",
      catalogue=(24,),
      bad="""#!/bin/bash
#SBATCH --cpus-per-task=4
samtools view -b -q 10 "$BAM" \\
    samtools sort -o sorted.bam -
""",
      good="""#!/bin/bash
#SBATCH --cpus-per-task=4
samtools view -b -q 10 "$BAM" |
    samtools sort -o sorted.bam -
""")
def _backslash_for_a_pipe(ctx: Context) -> Iterator[Any]:
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if isinstance(cmd, _Inner) or not cmd.words:
            continue  # a command of a bash -c script: its lines are not the script's
        name = str(cmd.name).rsplit("/", 1)[-1]
        if name in _OWN_NAME_AS_ARGUMENT:
            continue
        words = list(cmd.words)
        found = False
        for prev, word in zip(words, words[1:]):
            if _starts_a_line(prev, word) and word.raw == str(word.value) and word.raw.rsplit("/", 1)[-1] == name:
                found = True
                yield (word.line, f"line {word.line - 1} ends with a backslash, so this line is part of the {name} "
                                  f"command that starts on line {cmd.line}: this {name} never runs, and its words are "
                                  f"passed to the first one as arguments; end line {word.line - 1} with | if its output "
                                  "was meant to feed this command, or remove the backslash")
                break
        if not found:
            yield from _commands_joined_as_arguments(cmd)


#: short commands a job script runs on lines of their own to show where and how it runs; none of them runs a
#: command it is given, except env, which is read only as a line joined to another command, never as that command
_STANDALONE = frozenset({"pwd", "ls", "nvidia-smi", "rocm-smi", "df", "du", "hostname", "date", "echo", "env", "free",
                         "uptime", "cd", "module", "whoami", "uname", "nproc", "lscpu", "printenv"})

#: of those, the ones whose arguments may well be words such as these: a printer's text, env's command, module's
#: own name (module load \ / module)
_ARGUMENTS_MAY_BE_NAMES = frozenset({"echo", "env", "printenv", "module"})


def _starts_a_line(prev: Any, word: Any) -> bool:
    """Whether ``word`` starts a line that a backslash joins to the one ``prev`` is on."""
    return word.line > prev.line + prev.raw.count("\n")


def _program_at(values: list[str]) -> tuple[int, str] | None:
    """Where the program of a command starts in its words (past wrappers such as time or env, srun and a container:
    srun --container-image=IMG pwd → pwd) and what starts it ("" when nothing does); None when it cannot be told or a
    distributed launcher (torchrun) runs it."""
    from ..parse.argv import parse_chain
    start = len(values) - len(launch_words(values))
    try:
        chain = parse_chain(values[start:])
    except ParseError:
        return None
    program = [str(w) for w in chain.program]
    if chain.launcher is not None or not program or values[len(values) - len(program):] != program:
        return None
    at = len(values) - len(program)
    via = " and ".join(layer for layer, model in (("srun", chain.srun), ("the container", chain.container)) if model)
    return at + len(program) - len(launch_words(program)), via


def _commands_joined_as_arguments(cmd: Any) -> Iterator[Any]:
    """HPC532 for a short command (:data:`_STANDALONE`) continued into lines that each start another one."""
    words = list(cmd.words)
    if not any(_starts_a_line(prev, word) for prev, word in zip(words, words[1:])):
        return  # a command on one line (most of them): nothing is joined to it
    found = _program_at([str(w.value) for w in words])
    if found is None or found[0] >= len(words):
        return
    at, via = found
    program = str(words[at].value).rsplit("/", 1)[-1]
    if program not in _STANDALONE or program in _ARGUMENTS_MAY_BE_NAMES:
        return
    joined = [word for prev, word in zip(words[at:], words[at + 1:]) if _starts_a_line(prev, word)]
    if not joined or any(w.raw != str(w.value) or w.raw.rsplit("/", 1)[-1] not in _STANDALONE for w in joined):
        return
    names = ", ".join(w.raw for w in joined)
    if len(joined) == 1:
        joins = f"line {joined[0].line} starts {names}, but line {joined[0].line - 1} ends with a backslash, so it is"
    else:
        joins = (f"lines {joined[0].line}–{joined[-1].line} start {names}, but the line before each ends with a "
                 "backslash, so they are")
    one_step = ""
    if via:  # the commands were meant to run there: one bash -c script keeps them there
        starts = [at] + [words.index(w) for w in joined] + [len(words)]
        script = "; ".join(" ".join(w.raw for w in words[a:b]) for a, b in zip(starts, starts[1:]))
        if "'" not in script:
            one_step = f", or give them one command to run them all under {via}: bash -c '{script}'"
    yield (joined[0].line, f"{joins} part of the {program} command on line {words[at].line}: {program} runs once "
                           f"with {names} as extra words, which it refuses or ignores, and {names} never "
                           f"{'runs' if len(joined) == 1 else 'run'}; remove the backslash"
                           f"{'' if len(joined) == 1 else 'es'} to run each as a command of its own{one_step}")


# --------------------------------------------------------------------------------------------
# HPC536: a template's placeholder left in

@rule("HPC536", "template-placeholder-left-in", "error",
      summary="a <PLACEHOLDER> from a template is left in a command or an #SBATCH line (also a [PLACEHOLDER] there)",
      why="Templates mark what to fill in as <DATA_DIR> or <your project>. Left in a command, bash reads the angle "
          "brackets as redirections: python train.py --data <DATA_DIR> --epochs 10 takes its input from a file named "
          "DATA_DIR and sends its output to a file named --epochs, so the program never runs as meant (the redirection "
          "fails, or the words are gone from its arguments). Left in an #SBATCH line, sbatch passes it on as written: "
          "--account=<project> is refused as an unknown account. A placeholder is < and a name (letters, digits, _ - . "
          "and blanks inside) and >, or < and a path with a word saying what to fill in (path, to, your, or a name "
          "in capitals: <path/to/data.csv>, <your/project>, <DATA_DIR/train.csv>) and >, with no blank just inside "
          "the brackets, so real redirections (< in.txt, > out.log, 2>&1, <<EOF, <<< text, <(cmd), "
          "sort <data/in.txt> out.txt) are left alone, as is one inside quotes in a command (a usage message) and "
          "the free text of #SBATCH --job-name and --comment. On an #SBATCH line a placeholder may also be in square "
          "brackets (--account=[CSC_PROJECT], --mail-user=[your email], --output=[path/to/logs]/%j.out), which "
          "Slurm takes literally too: a name starting with a letter, or such a path, that starts a value or a part "
          "of it (not one inside a word: run[final].out is a file name). Slurm's own brackets hold numbers (a "
          "hostlist, n[01-04]; an array, --array=[0-4]) or --constraint's and --prefer's matching OR ([rack1|rack2]), "
          "and those options and --wrap's command are left alone. Square brackets in a command are not reported: "
          "bash reads them (a glob, a [[ test ]], ${A[0]}), and a usage line's [options] is one of those globs, "
          "passed on as written when no file matches it. A placeholder bash cannot read at all (a > with nothing "
          "after it) is reported by HPC000, which names them all; one in the script of a bash -c, which bash reads "
          "only when the step starts, by this rule.",
      fix="Replace each placeholder with the value it stands for, without the brackets "
          "(--data \"$SCRATCH/data\", --account=proj123).",
      bad="""#!/bin/bash
#SBATCH --account=<project>
#SBATCH --gres=gpu:1
python train.py --data <DATA_DIR> --epochs 10
""",
      good="""#!/bin/bash
#SBATCH --account=proj123
#SBATCH --gres=gpu:1
python train.py --data "$SCRATCH/data" --epochs 10
""")
def _placeholder_left_in(ctx: Context) -> Iterator[Any]:
    for line, name in _placeholders_in_unread_blocks(ctx):
        yield (line, f"{name} left from a template: bash reads the angle brackets as redirections, and with nothing "
                     "after the > it stops the script there with a syntax error ('unexpected token newline'), before "
                     "the block it is in runs; replace it with the value it stands for, without the angle brackets")
    for cmd in ctx.parsed.lexed.directives:
        names = directive_placeholders(cmd)
        if names:
            options = " ".join(w.raw for w in directive_words(cmd))
            kinds = {name[0] for name in names}
            brackets = "angle brackets" if kinds == {"<"} else "square brackets" if kinds == {"["} else "brackets"
            yield (cmd.line, f"{_named(names)} left from a template: sbatch reads the line as written ({options}), "
                             f"so {_placeholder_outcome(options)}; replace {'it' if len(names) == 1 else 'each'} with "
                             f"the value it stands for, without the {brackets}")
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        own = cmd.cmd if isinstance(cmd, _Inner) else cmd
        read = {r.raw for r in cmd.redirects if r.op == "<" and r.fd is None}
        # only where bash reads the < as a redirection: not in quotes, a comment or a here-document's body
        names = list(dict.fromkeys(m.group(0) for m in TEMPLATE_PLACEHOLDER.finditer(own.text)
                                   if m.group(0)[:-1].split(" ")[0] in read))
        unread = [] if own is not cmd else _placeholders_of_unread_c_script(cmd)
        if unread:
            yield (cmd.line, f"{_named(unread)} left from a template in the script given to bash -c: "
                             "bash reads the angle brackets there as redirections, and the one with nothing after "
                             "its > stops that script with a syntax error before it runs anything; replace "
                             f"{'it' if len(unread) == 1 else 'each'} with the value it stands for, without the angle "
                             "brackets")
        elif names:
            first = names[0][1:-1].split(" ")[0]
            yield (cmd.line, f"{_named(names)} left from a template: bash reads the angle brackets as redirections "
                             f"(input from a file named {first}, output into the word after the >), so "
                             f"{cmd.argv[0] if cmd.argv else 'the command'} does not run as meant; replace "
                             f"{'it' if len(names) == 1 else 'each'} with the value it stands for, without the angle "
                             "brackets")


def _placeholders_in_unread_blocks(ctx: Context) -> Iterator[tuple[int, str]]:
    """The placeholders with nothing after them on their line (``DATA_DIR=<llama3_data_dir>``) inside an ``if``, a
    loop or a function whose body cannot be read for them (bash stops there: a > with nothing after it), as
    ``(line, placeholder)``: at the top level they stop the whole script's reading, which HPC000 reports."""
    def walk(commands: Any) -> Iterator[Any]:
        for cmd in commands:
            if cmd.kind == "compound":
                body = compound_body(cmd)
                yield from walk(body) if body else [cmd]
    for cmd in walk(ctx.parsed.lexed.code):
        for k, text in enumerate(cmd.text.split("\n")):
            for m in TEMPLATE_PLACEHOLDER.finditer(text):
                before = text[:m.start()]
                if not text[m.end():].strip(" \t;") and before.count("'") % 2 == 0 and before.count('"') % 2 == 0 \
                        and not before.lstrip().startswith("#"):
                    yield cmd.line + k, m.group(0)


def _placeholder_outcome(options: str) -> str:
    """What sbatch makes of an #SBATCH line that still holds a placeholder, by its option."""
    flag = options.split("=", 1)[0].split()[0] if options.split() else ""
    if flag in ("--mail-user",):
        return "the job runs, but Slurm's mail goes to that text, not to you"
    if flag in ("--output", "--error", "--input", "-o", "-e", "-i", "--chdir", "-D"):
        return ("the job fails to start when no folder of that name exists (Slurm cannot open the path), or writes "
                "into one named with the brackets")
    return "it refuses the job (no such account, partition or QOS) or takes the brackets as part of the value"


#: a template's placeholder on an #SBATCH line in angle brackets: as in a command, and also doubled
#: (--account=<<PROJECT>>), which no #SBATCH line can mean as a here-document
_DIRECTIVE_PLACEHOLDER = template_placeholder(doubled=True)

#: a template's placeholder on an #SBATCH line in square brackets (--account=[CSC_PROJECT], --mail-user=[your
#: email], also doubled): a name starting with a letter (letters, digits, _ - . @ and blanks inside, no blank just
#: inside the brackets), or a path that names what to fill in (--output=[path/to/logs]/%j.out, [/path/to/]; see
#: :data:`~hpcwidgets.parse.lexer.PATH_PLACEHOLDER`), that starts a value or follows its punctuation, not a word
#: (run[final].out is a name). Slurm's own brackets hold numbers: a hostlist (gpu[1,3], n[01-04]) and an array's
#: range (--array=[0-4])
_BRACKETED_PLACEHOLDER = re.compile(rf"(?<![\w\[])\[\[?(?:[A-Za-z][\w.@\- ]*(?<! )|{PATH_PLACEHOLDER})\]\]?(?![\w\]])")

#: sbatch options whose value is free text, kept as written: a name or a comment with <brackets> in it is no mistake
_FREE_TEXT = re.compile(r"(?:--job-name|--comment|-J)(?:=|$)|-J.")

#: sbatch options whose value may hold square brackets of its own: --constraint's and --prefer's matching OR
#: ([rack1|rack2], sbatch(1)), and --wrap's command, where bash reads them (a glob, a [[ test ]])
_BRACKETS_OF_THEIR_OWN = re.compile(r"(?:--constraint|--cluster-constraint|--prefer|--wrap|-C)(?:=|$)|-C.")


def directive_placeholders(cmd: Any) -> list[str]:
    """The template placeholders of an #SBATCH line, in order: in angle brackets outside the free text of --job-name
    and --comment, in square brackets outside those and the options that have brackets of their own; also one with a
    blank inside (``--account=<account name>``), which the line's words split in two. [] for a line with a quote
    left open (sbatch stops at it; HPC310 says so)."""
    try:
        words = directive_words(cmd)
    except ParseError:
        return []
    joined = " ".join(w.raw for w in words)
    starts = list(itertools.accumulate((len(w.raw) + 1 for w in words[:-1]), initial=0))
    found = []
    for pattern, kept in ((_DIRECTIVE_PLACEHOLDER, (_FREE_TEXT,)),
                          (_BRACKETED_PLACEHOLDER, (_FREE_TEXT, _BRACKETS_OF_THEIR_OWN))):
        for m in pattern.finditer(joined):
            option = _option_of(words, bisect.bisect_right(starts, m.start()) - 1)
            if not any(k.match(option) for k in kept):
                found.append((m.start(), m.group(0)))
    return [name for _, name in sorted(found)]


def _option_of(words: Any, at: int) -> str:
    """The option that the word at ``at`` of an #SBATCH line belongs to: that word when it is one, else the nearest
    one before it (-J's value, or a value split at a blank); "" when none comes before it."""
    for word in reversed(words[:at + 1]):
        if word.raw.startswith("-"):
            return word.raw
    return ""


def _placeholders_of_unread_c_script(cmd: Any) -> list[str]:
    """The template placeholders of the script ``bash -c`` runs in ``cmd`` when bash cannot read that script (a
    ``>`` with nothing after it): the rule's other reading goes by the script's redirections, and one that cannot be
    read has none. [] when there is no such script, or it reads."""
    word = _shell_c_word(cmd.words)
    text = shell_script_text(word.value) if word is not None else None
    if not text:
        return []
    try:
        lex_script(text)
    except ParseError:
        return list(dict.fromkeys(name for _, name in template_placeholders(text)))
    return []


def _named(placeholders: list[str]) -> str:
    """``<A> is a placeholder`` or ``<A> and <B> are placeholders``, for HPC536's messages."""
    if len(placeholders) == 1:
        return f"{placeholders[0]} is a placeholder"
    return f"{', '.join(placeholders[:-1])} and {placeholders[-1]} are placeholders"
