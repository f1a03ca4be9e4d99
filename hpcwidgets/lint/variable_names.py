"""Rules about variables written by name where their value was meant (``cd SCRATCH/project`` for
``cd "$SCRATCH/project"``), and by value where their name was meant (``unset $HF_HOME`` for ``unset HF_HOME``).

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Iterator

from ..render.quote import is_plain
from ..spec._words import Verbatim
from . import Context, Fix, rule
from .catalogue import _Inner, _code_in_order, _functions, _simple_commands, cached

#: variables a batch job has without setting them: Slurm's own (SLURM_JOB_ID, SLURM_TMPDIR, SLURMD_NODENAME …) …
_SLURM_NAME = re.compile(r"SLURMD?_[A-Z0-9_]*[A-Z0-9]")
#: … and the login's and the usual site ones
_SITE_NAMES = frozenset({"HOME", "USER", "SCRATCH", "WORK", "TMPDIR"})

#: how a variable of the script's own is spelled (NPROC, ltp_dir): upper case, or lower case with an underscore;
#: a lower-case word such as data or logs is as likely a file's name as a variable's
_OWN_NAME = re.compile(r"[A-Z][A-Z0-9_]+|[a-z][a-z0-9]*_[a-z0-9_]*")

#: words that are values in their own right (--log-level DEBUG, --flag TRUE) even where the script also has a variable
#: of that name (DEBUG=1)
_VALUE_WORDS = frozenset({"DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "TRUE", "FALSE", "YES", "NO", "ON",
                          "OFF", "NONE", "ALL"})

#: commands whose arguments are names, patterns, programs or text, never values: the builtins that take variable
#: names (export NAME, read NAME, printenv NAME, getopts OPTS NAME …), the text tools (env | grep SLURM_), and the
#: printers (echo SLURM_JOB_ID is …)
_NAME_TAKERS = frozenset({
    "export", "unset", "declare", "typeset", "local", "readonly", "read", "readarray", "mapfile", "printenv", "getopts",
    "set", "shopt", "let", "eval", "alias", "test", "[", "compgen", "type", "hash", "command", "builtin", "which",
    "trap", "kill", "wait", "module", "ml",
    "grep", "egrep", "fgrep", "rg", "sed", "awk", "gawk", "mawk", "perl", "tr", "cut", "sort", "jq", "yq",
    "echo", "printf", "print", "logger", ":"})

#: container programs whose -e NAME / --env NAME passes the caller's variable on (docker, podman and NERSC's
#: podman-hpc, nerdctl, enroot)
_PASSING_ON = ("docker", "podman", "podman-hpc", "nerdctl", "enroot")

#: options whose value is a variable's name or a list of them, with the programs that read them so (none: any):
#: srun/sbatch --export=NAME,…, pyxis's --container-env, ch-run --unset-env, env -u NAME, mpirun -x NAME, MPICH's and
#: Intel MPI's -genv/-genvlist/-envlist, -e NAME of the programs in _PASSING_ON
_NAME_OPTIONS: dict[str, tuple[str, ...]] = {
    "--export": (), "--container-env": (), "--unset-env": (), "--set-env": (), "-genv": (), "-genvlist": (),
    "-env": (), "-envlist": (), "-u": ("env",), "--unset": ("env",), "-x": ("mpirun", "mpiexec", "orterun"),
    "-e": _PASSING_ON, "--env": _PASSING_ON}

#: Slurm's options whose value is a list of values, with the programs that read them so (none: any): a job id or a
#: count is one part of it (--dependency=afterok:A:B?afterany:C+60, --gres=gpu:a100:N), each part checked by itself
_LIST_OPTIONS: dict[str, tuple[str, ...]] = {
    "--dependency": (), "-d": ("sbatch", "srun", "salloc"), "--gres": (), "--gpus": (), "--gpus-per-node": (),
    "--gpus-per-task": (), "--gpus-per-socket": (), "--tres-per-task": (), "-G": ("sbatch", "srun", "salloc")}
#: what separates the parts of such a list: job ids after afterok:, dependencies (, for all, ? for any), +minutes
_LIST_SEPARATORS = re.compile(r"[^:,?+]+")

#: a variable's value handed to a builtin that takes names (printenv "$var", unset ${var}): the value is a name
_HANDED_AS_NAME = (r"(?<![\w-])(?:printenv|unset|export|declare|typeset|local|readonly|read|getopts)\s[^\n;|&]*"
                   r"\$\{{?{name}\b")

#: a variable's value made into a variable reference for eval to expand (eval "LR=\$$KEY", eval echo \${$KEY}):
#: the value is a name
_EVAL_AS_NAME = r"(?<![\w-])eval\s[^\n;|&]*\\\$\{{?\$\{{?{name}\b"

#: the start of an option or setting whose value follows its ``=`` (--out=…, trainer.default_root_dir=…)
_KEY = re.compile(r"[-+]*[A-Za-z_][\w.-]*")

#: a word whose only special characters are unquoted ``?`` and ``*`` (and ``$NAME`` references): bash passes it on as
#: written unless a file's name matches it (``SCRATCH/data/*.npz``; Slurm's ``--dependency=afterok:$A?afterany:B``,
#: where ``?`` means "or")
_GLOB_ONLY = re.compile(r"(?:[\w./:,+=@%^?*-]|\$[A-Za-z_]\w*|\$\{[A-Za-z_]\w*\})*[?*](?:[\w./:,+=@%^?*-]|\$[A-Za-z_]\w*|"
                        r"\$\{[A-Za-z_]\w*\})*")
_GLOB_CHAR = re.compile(r"[?*]")


@rule("HPC535", "variable-name-without-dollar", "warning",
      summary="a variable's name written without its $ where its value was meant (cd SCRATCH/project, "
              "--seed SLURM_ARRAY_TASK_ID, out=ltp_dir)",
      why="Without the $ the shell passes the name as text: cd SCRATCH/project looks for a folder named SCRATCH in the "
          "working directory, --output-dir SLURM_TMPDIR/run writes into a new folder called SLURM_TMPDIR next to the "
          "script (or fills the quota of a home directory) instead of the node's local disk, and --seed "
          "SLURM_ARRAY_TASK_ID gives every array task the same text (or stops argparse, which wants a number). The "
          "job runs on, with the wrong path or value. Reported for Slurm's variables (SLURM_*), HOME, USER, SCRATCH, "
          "WORK, TMPDIR and the names the script sets itself (upper case, or lower case with an underscore), where a "
          "value goes: a program's argument (a glob too, SCRATCH/data/*.npz), the value of --option=… (each part of a "
          "list such as --dependency=afterok:JOBID?afterany:OTHER or --gres=gpu:NGPU), a host before its port "
          "(--rdzv-endpoint=MASTER_ADDR:29500), or the right side of an assignment, each part of a colon-separated "
          "list there too (export LD_LIBRARY_PATH=LD_LIBRARY_PATH:/opt/lib drops the search path it meant to "
          "extend). Names "
          "meant as names are left alone: export/unset/read/printenv/declare NAME, --export=NAME lists, env -u, "
          "mpirun -x NAME, [[ -v NAME ]], what echo, grep, sed and awk get, python -c code, here-documents, a "
          "declare -n name reference, and a variable that holds a name for ${!NAME}, eval \"X=\\$$NAME\" or "
          "printenv \"$NAME\", and a folder named after a variable set to that folder in the working directory "
          "(export APPTAINER_CACHEDIR=$PWD/APPTAINER_CACHEDIR, then mkdir -p APPTAINER_CACHEDIR: the same path).",
      fix="Write the $ (and quote the word): cd \"$SCRATCH/project\", --seed \"$SLURM_ARRAY_TASK_ID\"; a glob keeps "
          "its pattern outside the quotes: \"$SCRATCH/data/\"*.npz. The fix does that for a word written plainly or "
          "in double quotes on one line.",
      bad="""#!/bin/bash
#SBATCH --array=0-9
cd SCRATCH/project || exit 1
python train.py --seed SLURM_ARRAY_TASK_ID
""",
      good="""#!/bin/bash
#SBATCH --array=0-9
cd "$SCRATCH/project" || exit 1
python train.py --seed "$SLURM_ARRAY_TASK_ID"
""")


def _name_without_dollar(ctx: Context) -> Iterator[Any]:
    own = _own_names(ctx)
    indirect = "${!" in ctx.parsed.source
    functions = _functions(ctx)
    by_line: dict[int, list[tuple[Any, str, str, str]]] = {}
    unfixable: set[int] = set()
    before: dict[int, str] = {}   # by line: the parts of a colon-separated list before the one reported
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        command = cmd.cmd if isinstance(cmd, _Inner) else cmd
        program = str(command.words[0].value) if command.words else ""
        name = program.rsplit("/", 1)[-1]
        hits = [(word, "", str(word.value)) for target, word in command.assignments
                if not _names_a_name(ctx, command, target, indirect)]
        if name not in _NAME_TAKERS and not (indirect and name in functions):  # a function reading ${!1} takes names
            # the command word names a program or a function; only a path there (SCRATCH/venv/bin/python) holds a value
            hits += _value_words(command.words, skip_program="/" not in program)
        assigned = {id(word) for _, word in command.assignments}
        for word, prefix, value in hits:
            parts, value, named = _name_in(value, own, id(word) in assigned)
            if named and named not in _folders_named_as_set(ctx):
                # a word of a bash -c script is reported at the line of the command that runs it, with no fix
                line = cmd.line if isinstance(cmd, _Inner) else word.line
                prefix += parts
                if parts and line not in by_line:
                    before[line] = parts
                by_line.setdefault(line, []).append((word, prefix, value, named))
                if isinstance(cmd, _Inner):
                    unfixable.add(line)
    for line, hits in by_line.items():
        yield _finding(ctx, line, hits, own, fixable=line not in unfixable, before=before.get(line, ""))


def _value_words(words: Any, skip_program: bool) -> list[tuple[Any, str, str]]:
    """``(word, prefix, value)`` for the values among a command's ``words`` (past its program with
    ``skip_program``): each argument, and of ``--opt=VALUE`` (or ``key=VALUE``) the part after ``=`` with ``--opt=``
    as its prefix; not a name list (--export=NAME,…, the word after mpirun -x or env -u) nor shell text kept as
    written. The value of a list option (--dependency afterok:A:B) comes as its parts, each with the text before it
    in its prefix."""
    out = []
    programs: set[str] = set()
    previous = ""
    for at, word in enumerate(words):
        value = str(word.value)
        after_name_option = _reads(previous, programs, _NAME_OPTIONS)
        after_list_option, previous = _reads(previous, programs, _LIST_OPTIONS), value
        programs.add(value.rsplit("/", 1)[-1])
        if isinstance(word.value, Verbatim):
            # shell text kept as written ($(…), $X, {a,b}) is not read; a glob is read as the text bash passes on
            value = word.raw if not word.quoted and _GLOB_ONLY.fullmatch(word.raw) else ""
        if after_name_option or not value or (skip_program and at == 0):
            continue
        key, eq, rest = value.partition("=")
        if after_list_option:
            out += _list_parts(word, "", value)
        elif not eq or not _KEY.fullmatch(key):
            out.append((word, "", value))
        elif _reads(key, programs, _LIST_OPTIONS):
            out += _list_parts(word, key + "=", rest)
        elif not _reads(key, programs, _NAME_OPTIONS):
            out.append((word, key + "=", rest))
    return out


def _list_parts(word: Any, prefix: str, value: str) -> list[tuple[Any, str, str]]:
    """``(word, prefix, part)`` for each part of the list ``value`` (afterok, A and B of afterok:A:B), the text
    before the part added to ``prefix``."""
    return [(word, prefix + value[:m.start()], m.group()) for m in _LIST_SEPARATORS.finditer(value)]


def _reads(option: str, programs: set[str], table: dict[str, tuple[str, ...]]) -> bool:
    """Whether ``option`` is one of ``table`` (options and the programs that read them so) in a command that runs
    ``programs``."""
    readers = table.get(option)
    return readers is not None and (not readers or not programs.isdisjoint(readers))


#: a part of a colon-separated value (LD_LIBRARY_PATH=LD_LIBRARY_PATH:/opt/lib, --rdzv-endpoint=MASTER_ADDR:29500)
_COLON_PART = re.compile(r"[^:]+")


def _name_in(value: str, own: dict[str, int], assigned: bool) -> tuple[str, str, str]:
    """``(parts, value, name)`` for the first variable this rule reports written without its $ in ``value``: at its
    start, before its first ``/`` (SCRATCH/data); in the value of an assignment also at the start of a part of a
    colon-separated list (PATH=PATH:$HOME/bin, LIBS=/opt/lib:LD_LIBRARY_PATH), ``parts`` then the text of the parts
    before it ("/opt/lib:") and ``value`` the rest; and anywhere a host and port (MASTER_ADDR:29500). ``name`` is ""
    where there is none. A URL's parts (docker://USER/…) are no list, and in a program's argument a word before a
    colon may be anything (a bind's source folder, a tag), so only a port after it says the name was a host's."""
    named = _reported_name(value.split("/", 1)[0], own)
    if named or ":" not in value or "://" in value:
        return "", value, named
    if not assigned:
        host = _HOST_PORT.fullmatch(value)
        return "", value, (_reported_name(host.group(1), own) if host else "")
    for part in _COLON_PART.finditer(value):
        named = _reported_name(part.group().split("/", 1)[0], own)
        if named:
            return value[:part.start()], value[part.start():], named
    return "", value, ""


#: a host and a port: MASTER_ADDR:29500
_HOST_PORT = re.compile(r"([A-Za-z_]\w*):[0-9]+")


def _reported_name(name: str, own: dict[str, int]) -> str:
    """``name`` when it is a variable this rule reports written without its $, else ""."""
    if name in _SITE_NAMES or _SLURM_NAME.fullmatch(name):
        return name
    return name if name in own and name not in _VALUE_WORDS else ""


def _own_names(ctx: Context) -> dict[str, int]:
    """The variables the script sets or exports itself (assignments anywhere, ``export NAME``, ``for NAME in``),
    each with the line it is first set on, among those spelled as variables are (:data:`_OWN_NAME`)."""
    def make() -> dict[str, int]:
        out: dict[str, int] = {}
        for cmd, _, _ in _code_in_order(ctx):
            if cmd.kind == "compound":
                m = re.match(r"\s*for\s+([A-Za-z_]\w*)\s+in\b", cmd.text)
                names = [m.group(1)] if m else []
            else:
                names = [n for n, _ in cmd.assignments]
                exports_functions = any(re.fullmatch(r"-\w*f\w*", str(w.value)) for w in cmd.words[1:])  # export -f
                if cmd.name in ("export", "declare", "typeset", "local", "readonly") and not exports_functions:
                    names += [str(w.value) for w in cmd.words[1:] if re.fullmatch(r"[A-Za-z_]\w*", str(w.value))]
            for n in names:
                if _OWN_NAME.fullmatch(n):
                    out.setdefault(n, cmd.line)
        return out
    return cached(ctx, "own_variable_names", make)


#: a value that is the folder of its variable's own name in the working directory: NAME=$PWD/NAME, ${PWD}/NAME,
#: $(pwd)/NAME or ./NAME (a trailing / too), with ``{name}`` for the name
_OWN_FOLDER = r"(?:\$PWD|\$\{{PWD\}}|\$\(pwd\)|\.)/{name}/?"


def _folders_named_as_set(ctx: Context) -> frozenset[str]:
    """The variables the script sets only to the folder of their own name in the working directory
    (``export APPTAINER_CACHEDIR=${PWD}/APPTAINER_CACHEDIR``): there the bare name (``mkdir -p APPTAINER_CACHEDIR``)
    is the same folder, written on purpose."""
    def make() -> frozenset[str]:
        values: dict[str, list[str]] = {}
        for cmd, _, _ in _code_in_order(ctx):
            for name, word in cmd.assignments if cmd.kind != "compound" else ():
                written = word.raw.strip("\"'") if isinstance(word.value, Verbatim) else str(word.value)
                values.setdefault(name, []).append(written)
        return frozenset(name for name, seen in values.items()
                         if all(re.fullmatch(_OWN_FOLDER.format(name=re.escape(name)), v) for v in seen))
    return cached(ctx, "variables_set_to_their_own_folder", make)


def _names_a_name(ctx: Context, cmd: Any, target: str, indirect: bool) -> bool:
    """Whether the assignment to ``target`` holds a variable's name on purpose: a name reference (declare -n,
    local -n), an integer (declare -i, whose value bash evaluates as arithmetic, where names are variables), or a
    variable the script reads indirectly (${!target}, eval "x=\\$$target") or hands to a builtin that takes a name
    (printenv "$target", unset $target)."""
    if cmd.name in ("declare", "typeset", "local") and any(re.fullmatch(r"-\w*[ni]\w*", str(w.value))
                                                           for w in cmd.words[1:]):
        return True
    if indirect and f"${{!{target}}}" in ctx.parsed.source:
        return True
    return any(re.search(pattern.format(name=re.escape(target)), ctx.parsed.source)
               for pattern in (_HANDED_AS_NAME, _EVAL_AS_NAME))


def _finding(ctx: Context, line: int, hits: list[tuple[Any, str, str, str]], own: dict[str, int],
             fixable: bool, before: str = "") -> tuple[Any, ...]:
    """HPC535's finding on ``line``, whose ``hits`` ``(word, prefix, value, name)`` hold a variable's ``name``
    without its $ (``value`` is the part of the word after ``prefix``: ``--out=``, or nothing); with one fix for
    them all where each word is written out on that line."""
    _, _, value, name = hits[0]
    where = f" (set on line {own[name]})" if name in own else ""
    others = [h[2] for h in hits[1:]]
    also = f" (and {', '.join(others)} the same way)" if others else ""
    glob = isinstance(hits[0][0].value, Verbatim)
    # ``before``: the parts of a colon-separated list before the one reported, shown with it (/opt/lib:LIB_DIR)
    message = (f"{before}{value}: the $ before {name} is missing, so the word is the text '{before}{value}', not the "
               f"value of ${name}{where}, and the job runs on with a wrong path or value{also}; write "
               f"{_with_dollar(before, value, glob)}")
    fix = _dollar_fix(ctx, line, hits) if fixable else None
    return (line, message, fix) if fix else (line, message)


def _with_dollar(prefix: str, value: str, glob: bool) -> str:
    """``prefix`` and ``value`` written with the ``$`` before ``value`` and in double quotes, as the renderer quotes
    such a word; a ``glob`` (``SCRATCH/data/*.npz``) keeps its pattern outside the quotes: ``"$SCRATCH/data/"*.npz``."""
    pattern = _GLOB_CHAR.search(value) if glob else None
    at = pattern.start() if pattern else len(value)
    return f'"{prefix}${value[:at]}"{value[at:]}'


def _dollar_fix(ctx: Context, line_no: int, hits: list[tuple[Any, str, str, str]]) -> Fix | None:
    """Line ``line_no`` with ``$`` put before each value of ``hits`` and its word (prefix and value) in double quotes,
    as the renderer quotes such a word; None unless every word is written plainly (or in double quotes) there."""
    line = ctx.parsed.lines[line_no - 1]
    edits = []
    for word, prefix, value, _ in hits:
        raw, at = word.raw, word.col - 1
        inner = raw[1:-1] if len(raw) > 1 and raw[0] == raw[-1] == '"' else raw
        glob = isinstance(word.value, Verbatim)
        if word.line != line_no or inner != prefix + value or line[at:at + len(raw)] != raw \
                or not is_plain(_GLOB_CHAR.split(inner, 1)[0] if glob else inner):
            return None
        edits.append((at, at + len(raw), _with_dollar(prefix, value, glob)))
    for start, end, text in sorted(edits, reverse=True):
        line = line[:start] + text + line[end:]
    shown = ", ".join(f"${h[2]}" for h in hits)
    return Fix(f"write {shown}", line_no, line_no, text=line)


#: a word that is one parameter reference and nothing else, quoted or not: $NAME, ${NAME}, "$NAME", "${NAME}"
_WHOLE_REFERENCE = re.compile(r'("?)\$(?:([A-Za-z_]\w*)|\{([A-Za-z_]\w*)\})\1')

#: a value that may be a list of variables' names: names, and references whose value the script cannot tell
#: ($1, $(…), ${!prefix@}), apart or in an array's parentheses
_MAY_BE_NAMES = re.compile(r"[\s()]*(?:(?:[A-Za-z_]\w*|\$(?:\{[^}\s]*\}|[\w@*#?]+|\([^)]*\)))[\s()]*)*")


@rule("HPC537", "unset-value-instead-of-name", "warning",
      summary="unset $NAME: the variable named by NAME's value is unset, not NAME (unset HF_HOME was meant)",
      why="unset takes names. With the $, bash first replaces $HF_HOME by its value and then unsets the variable (or "
          "function) of that name: a path or a list such as 0,1 names none, so bash 5 unsets nothing and says "
          "nothing (with unset -v it fails: 'not a valid identifier', and set -e stops the job there), and an "
          "empty value unsets nothing either. The program then still reads the value the line was meant to remove. "
          "Reported where the variable holds a value: the script sets it to a path, number or other text that is "
          "no list of names, or never sets it (it comes from the environment: HF_HOME, CUDA_VISIBLE_DEVICES). Left "
          "alone: a variable that holds names (vars=\"A B\"; unset $vars, or a for loop over names), one whose value "
          "the script cannot tell (read, $1, $(…)), ${!prefix@}, and unset -f.",
      fix="Write the name without $: unset HF_HOME (the fix does so for a word written on its line).",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
unset $HF_HOME
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
unset HF_HOME
srun python train.py
""")
def _unset_value(ctx: Context) -> Iterator[Any]:
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        command = cmd.cmd if isinstance(cmd, _Inner) else cmd
        words = list(command.words)
        if not words or str(words[0].value) != "unset":
            continue
        options = list(itertools.takewhile(lambda w: str(w.value).startswith("-"), words[1:]))
        if any("f" in str(w.value) for w in options):
            continue  # unset -f removes functions
        for word in words[1 + len(options):]:
            # a bash -c script's text keeps the \$ of a reference each task expands (srun bash -c "unset \$X")
            m = _WHOLE_REFERENCE.fullmatch(word.raw.replace("\\$", "$", 1) if isinstance(cmd, _Inner) else word.raw)
            name = m and (m.group(2) or m.group(3))
            if not name or _may_hold_names(ctx, name):
                continue
            effect = ("fails there ('not a valid identifier')" if any("v" in str(w.value) for w in options)
                      else "silently unsets nothing")
            message = (f"unset {m.group(0)} unsets the variable whose name is the value of {name}, not {name} itself: "
                       f"for a path or a list such as 0,1 bash {effect}, and {name} stays set; write unset {name}")
            if isinstance(cmd, _Inner):
                yield cmd.line, message
                continue
            line = ctx.parsed.lines[word.line - 1]
            at = word.col - 1
            if line[at:at + len(word.raw)] != word.raw:
                yield word.line, message
                continue
            yield word.line, message, Fix(f"unset {name}", word.line, word.line,
                                          text=line[:at] + name + line[at + len(word.raw):])


def _may_hold_names(ctx: Context, name: str) -> bool:
    """Whether the script may give ``name`` a list of variables' names: an assignment or a for loop whose value is
    names (or references it cannot tell, $1, $(…)), or a command that sets it from input (read, mapfile, getopts,
    a name reference). A variable the script never sets comes from the environment with a value."""
    for cmd, _, _ in _code_in_order(ctx):
        if cmd.kind == "compound":
            m = re.match(r"\s*for\s+" + name + r"\s+in\s+([^;\n]*)", cmd.text)
            if m and _MAY_BE_NAMES.fullmatch(m.group(1).replace('"', "").replace("'", "")):
                return True
            continue
        values = [w.raw for target, w in cmd.assignments if target == name]
        values += [str(w.value).partition("=")[2] for w in cmd.words[1:]
                   if cmd.name in ("export", "declare", "typeset", "local", "readonly")
                   and str(w.value).startswith(name + "=")]
        if any(_MAY_BE_NAMES.fullmatch(v.replace('"', "").replace("'", "")) for v in values):
            return True
        if cmd.name in ("read", "readarray", "mapfile", "getopts", "declare", "typeset", "local") \
                and any(str(w.value) == name for w in cmd.words[1:]):
            return True
    return False
