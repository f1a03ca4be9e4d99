"""Rules about the program word of a step: what srun or a container runtime is asked to run.

srun, ``apptainer exec`` and ``ch-run`` hand the word after their own options (and the image) to ``execve`` as the
program's name, with no shell in between: the word is never split into a program and its arguments.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Iterator

from . import Context, rule
from .catalogue import fix_for, steps, with_chain

#: what only a shell reads: a list, a pipe, a redirection, a command substitution
_SHELL_SYNTAX = re.compile(r"[;|&<>`]|\$\(")
#: a word that is one variable's value ("$CMD", "${CMD}")
_LONE_VARIABLE = re.compile(r'"\$(?:\w+|\{\w+\})"')
#: a command substitution in a word: the word is what the command prints, whatever the text inside looks like
_SUBSTITUTION = re.compile(r"`|\$\(")

#: a program written with its file's extension (a script), so that words after it are its arguments
_SCRIPT_NAME = re.compile(r"\.(?:sh|bash|py|pl|R|jl|x|exe)$")


def _command_in_one_word(text: str) -> list[str] | None:
    """The words of ``text`` when it reads as a program and its arguments (``python train.py``, ``./run.sh $ip``),
    None when it may be one path with spaces in it (``/data/my runs/go.sh``). A program named without a ``/`` is
    looked up on PATH, where no program has a space in its name; after a path, a word that starts an option, a
    variable or another absolute path, or a path ending in a script's extension, begins an argument."""
    if any(c in text for c in "'\"\\"):
        # quotes or backslashes inside ("python -c 'print(1)'"): the words as a shell would split them
        try:
            pieces = shlex.split(text)
        except ValueError:  # a quote left open: the words at the blanks, for the message (no fix: see _no_fix)
            pieces = text.split()
    else:
        pieces = text.split()
    if len(pieces) < 2 or text != text.strip():
        return None
    first, rest = pieces[0], pieces[1:]
    if "/" not in first or _SCRIPT_NAME.search(first) or any(p.startswith(("-", "$", "/")) for p in rest):
        return pieces
    return None


@rule("HPC533", "command-quoted-as-one-word", "error",
      summary="a program and its arguments quoted as one word after srun or a container runtime",
      why="srun, apptainer exec and ch-run pass the word after their options (and the image) to execve as the name of "
          "the program, with no shell to split it: srun \"./run.sh $ip\" looks for a file named './run.sh 10.0.0.1', "
          "and every task fails with 'execve(): ./run.sh 10.0.0.1: No such file or directory' (apptainer: "
          "'executable file not found in $PATH'). The same holds for \"$CMD\" holding a command. A quoted word that "
          "may be one path with spaces in it (\"$HOME/my runs/go.sh\") is left alone, and so are bash -c \"…\" and the "
          "arguments of apptainer run, which go to the image's runscript.",
      fix="Write the program and its arguments as separate words: srun ./run.sh \"$ip\" (for a command held in a "
          "variable, a bash array: srun \"${cmd[@]}\"; for shell commands such as \"sleep 5; echo done\", "
          "srun bash -c \"sleep 5; echo done\").",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node_ip=$(srun --nodes=1 --ntasks=1 hostname --ip-address)
srun "./torchrun.sh $head_node_ip"
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node_ip=$(srun --nodes=1 --ntasks=1 hostname --ip-address)
srun ./torchrun.sh "$head_node_ip"
""")
def _command_quoted_as_one_word(ctx: Context) -> Iterator[Any]:
    for step in steps(ctx):
        chain = step.chain
        runner = _runner(chain)
        if not runner or not chain.program or step.wrapper or step.through:
            continue
        first = str(chain.program[0])
        word = next((w for w in step.command.words if w.quoted and str(w.value) == first), None)
        if word is None or _SUBSTITUTION.search(word.raw) or _SUBSTITUTION.search(ctx.parsed.resolve(first, step.line)):
            continue  # "$(which python)": what the command prints, one word, is the program's name
        held = _LONE_VARIABLE.fullmatch(word.raw) is not None  # "$CMD": a command held in a variable
        # split as written ("./run.sh $ip" → ./run.sh "$ip"), or for a variable, what it holds
        pieces = _command_in_one_word(ctx.parsed.resolve(first, step.line) if held else first)
        if pieces is None:
            continue
        how = (f"{word.raw} is one word holding '{' '.join(pieces)}'" if held else f"{word.raw} is one word")
        fails = ("every task fails with 'No such file or directory'" if runner == "srun" else
                 "it stops with 'executable file not found in $PATH'" if runner.endswith(" exec")
                 else "it stops with 'No such file or directory'")
        if held:
            yield (step.line, f"{how}: {runner} takes it whole as the program's name, so {fails}; hold the command in "
                              f"a bash array (cmd=({' '.join(pieces)})) and write \"${{cmd[@]}}\"")
            continue
        if _SHELL_SYNTAX.search(first):
            # "sleep 5; echo done": shell text, which only a shell runs; words after it would become bash -c's $0,
            # $1 … and not reach the commands, so then there is no mechanical fix
            fix = None if len(chain.program) > 1 else fix_for(ctx, "run the commands with bash -c", step,
                                                              with_chain(chain, program=("bash", "-c", first)))
            inside = "" if fix else " (with the words after it inside the quotes: after bash -c they would be $0, $1 …)"
            yield (step.line, f"{how}: {runner} takes it whole as the program's name, so {fails}; these are shell "
                              f"commands: run them with bash -c {word.raw}{inside}", fix)
            continue
        fix = None if _no_fix(first) else fix_for(ctx, "write the program and its arguments as separate words", step,
                                                 with_chain(chain, program=(*pieces, *chain.program[1:])))
        yield (step.line, f"{how}: {runner} takes it whole as the program's name, so {fails}; write the program and "
                          f"its arguments as separate words ({' '.join(_as_words(pieces))})", fix)


def _no_fix(text: str) -> bool:
    """Whether the words of ``text`` cannot be told apart for a fix: a quote left open inside it."""
    try:
        shlex.split(text)
    except ValueError:
        return True
    return False


def _as_words(pieces: list[str]) -> list[str]:
    """The pieces as a person would write them apart: a word with a variable in it double-quoted."""
    return [f'"{p}"' if "$" in p else p for p in pieces]


def _runner(chain: Any) -> str:
    """What hands the step's program word to execve: the container runtime (apptainer exec, ch-run) or srun; ""
    when a launcher (torchrun) comes first or the word is an argument (apptainer run passes it to the runscript)."""
    if chain.launcher is not None:
        return ""
    c = chain.container
    if c is None:
        return "srun" if chain.srun is not None else ""
    if c.kind == "apptainer.run":
        return f"{c.binary} exec" if c.action == "exec" else ""
    return "ch-run" if c.kind == "charliecloud.run" else ""
