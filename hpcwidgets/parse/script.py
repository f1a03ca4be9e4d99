"""Job scripts → what sbatch, bash and the launchers will actually do.

:func:`read_script` reads a whole script into a :class:`ParsedScript`: the Slurm job sbatch sees
(only the ``#SBATCH`` lines before the first command count), the variables and modules the script
itself sets on the way (not those inside a loop, an if or a function body), and every launch step,
top-level or inside such a body, split into its layers (``srun`` → container → ``torchrun`` →
program), each with its source lines. The linter works on this; :func:`parse_script` turns it into a
:class:`~hpcwidgets.spec.workflow.Workflow`.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

from ..errors import ParseError
from ..spec._words import Verbatim, word_pieces
from ..spec.common import ARRAY_WORD, LIST_WORD
from ..spec.slurm import (GPU_COUNTS, SBATCH_ALIASES, SBATCH_SHORT, SWITCHED_OFF, Comment, SlurmJob, is_hetjob_word,
                          is_shell, sbatch_long_option, sbatch_option, shebang_program)
from .argv import Chain, Expansion, parse_argv, parse_chain, recognise
from .lexer import (Command, Script, Word, case_branches, compound_body, directive_words, first_command_line,
                    if_branches, lex_command, lex_script, remember_last)

_SUPPRESS = re.compile(r"hpcw:\s*(disable|disable-file|disable-next)\s*=\s*([A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)")
_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
#: the shells whose ``-c`` script the readers look into
_C_SHELLS = ("bash", "sh")


def shell_c_script(words: Sequence[Any]) -> int | None:
    """The index of the script word of ``bash -c 'SCRIPT'`` when ``words`` start with such a call (``-c`` among the
    short options before the script: ``bash -lc``, ``bash -l -c``, ``sh -ec``), else None. As bash reads it: the
    first word after the options is the script."""
    start = 1 if words and str(words[0]).rsplit("/", 1)[-1] == "env" else 0  # /usr/bin/env bash -c …
    if len(words) <= start or str(words[start]).rsplit("/", 1)[-1] not in _C_SHELLS:
        return None
    command, i = False, start + 1
    while i < len(words):
        word = str(words[i])
        if word in ("-o", "+o"):
            i += 2  # -o pipefail
            continue
        if not re.fullmatch(r"[-+][A-Za-z]+", word):
            break
        command = command or (word[0] == "-" and "c" in word)
        i += 1
    return i if command and i < len(words) else None


def c_script_in(words: Sequence[Any]) -> int | None:
    """The index of the script word of the first ``bash -c`` call among a command's ``words`` (after srun, in a
    container …: see :func:`shell_c_script`), or None."""
    values = [str(w) for w in words]
    for i, word in enumerate(values[:-1]):
        if word.rsplit("/", 1)[-1] in _C_SHELLS:
            at = shell_c_script(values[i:])
            if at is not None:
                return i + at
    return None


#: torch's deprecated launcher module, recognised so that its steps are checked too
LEGACY_LAUNCH = ("torch.distributed.launch",)
#: a whole word that is an unquoted expansion: bash splits it into words (srun $CMD, python t.py $ARGS)
_SPLIT_WORD = re.compile(r"\$(?:\{?[A-Za-z_][A-Za-z0-9_]*\}?|[@*]|\{[A-Za-z_][A-Za-z0-9_]*\[[@*]\]\})")
#: variables Slurm sets, which never hold spaces, and bash's own numbers ($RANDOM, $SECONDS …), which bash always sets
_NEVER_SPLIT = re.compile(r"\$\{?(?:SLURM_[A-Z_]+|RANDOM|SRANDOM|SECONDS|LINENO|BASHPID|PPID|UID|EUID)\}?")


@dataclass(frozen=True)
class Directive:
    """One ``#SBATCH`` option as sbatch reads it."""

    line: int
    flag: str
    value: str
    field: str          # the SlurmJob field it sets, "" when the job model has none
    applied: bool       # False for directives after the first command (sbatch ignores them)
    component: int = 0  # the component of a heterogeneous job (after the n-th "#SBATCH hetjob")


class _AtCommand:
    """Where a reading of a command sits in the script: the lines of its :attr:`command`."""

    command: Command

    @property
    def line(self) -> int:
        return self.command.line

    @property
    def end_line(self) -> int:
        return self.command.end_line


@dataclass(frozen=True)
class Step(_AtCommand):
    """A launch found in the script, split into layers."""

    command: Command
    chain: Chain
    env: tuple[tuple[str, str], ...] = ()   # NAME=value written before the command
    wrapper: str = ""                        # "bash -c" when the launch sits inside srun bash -c "…"
    wrapper_word: Word | None = None         # the -c script word, to see how it is quoted
    in_compound: bool = False                # inside a loop, an if, a function …
    #: the words read through a variable that holds the launch (``srun $CMD``, ``bash -c "$LAUNCHER …"``): each
    #: as written, with the line of the assignment that gives it its value (see :func:`read_script`)
    through: tuple[tuple[str, int], ...] = ()
    #: the wrapper words read past after srun or a container (``srun env -u X torchrun``, see :data:`WRAPPERS`),
    #: which no layer of :attr:`chain` holds: a fix that rebuilds the step from it would drop them
    looked_through: tuple[str, ...] = ()

    @property
    def under_srun(self) -> bool:
        return self.chain.srun is not None

    @property
    def words(self) -> tuple[Word, ...]:
        return self.command.words


@dataclass(frozen=True)
class HeldCommand(_AtCommand):
    """A command read through the variables that hold its words (see :func:`_read_through`)."""

    command: Command
    argv: tuple[Any, ...]                    # its words as bash splits them
    in_compound: bool = False
    through: tuple[tuple[str, int], ...] = ()  # as in :attr:`Step.through`


@dataclass(frozen=True)
class Variable:
    name: str
    value: str
    line: int
    exported: bool
    appended: bool = False   # NAME+=value: the value is added to the one before


@dataclass(frozen=True)
class ParsedScript:
    source: str
    path: str
    lexed: Script
    job: SlurmJob
    directives: tuple[Directive, ...]
    first_command: int
    variables: tuple[Variable, ...]
    modules: tuple[tuple[str, int], ...]
    steps: tuple[Step, ...]
    problems: tuple[tuple[int, str], ...] = ()          # (line, message): directives that could not be read
    suppressed: dict[int, frozenset[str]] = field(default_factory=dict)
    suppressed_file: frozenset[str] = frozenset()
    #: the steps with launches held in variables read through them (None: no step has one); see :attr:`steps_as_run`
    split_steps: tuple[Step, ...] | None = None
    #: commands that are no step the models read but run a launch held in a variable (``$LAUNCHER train.py``
    #: with ``LAUNCHER="accelerate launch …"``): each as :class:`HeldCommand`, its words as bash splits them
    held_commands: tuple[HeldCommand, ...] = ()
    #: the comments on and among the #SBATCH lines sbatch reads, each with the line it is written on, and kept with
    #: the directive it belongs to (see :func:`_directive_comments`); the readers of a model take them into it
    directive_comments: tuple[tuple[int, Comment], ...] = ()

    @property
    def steps_as_run(self) -> tuple[Step, ...]:
        """The launch steps as bash runs them, which the linter checks: a step word that is an unquoted ``$CMD``
        holding a launch (``LAUNCHER="torchrun …"; srun $LAUNCHER train.py``) is split into the words it holds,
        and a double-quoted ``bash -c "$LAUNCHER …"`` script gets the text the batch shell puts in it. The
        command as written stays in each step's :attr:`Step.command`; :attr:`steps` keeps the script's own form
        (what :func:`~hpcwidgets.parse.parse_script` reads back into a model, which must not lose ``$CMD``)."""
        return self.steps if self.split_steps is None else self.split_steps

    @property
    def lines(self) -> list[str]:
        return self.source.splitlines()

    @property
    def heterogeneous(self) -> bool:
        """True for a heterogeneous job (``#SBATCH hetjob`` between components): :attr:`job` is its first
        component, and the later components' directives are kept, as written, in ``job.extra_directives``."""
        return any(d.component for d in self.directives)

    def directive(self, field_name: str) -> Directive | None:
        """The applied directive of the job's (first) component that set ``field_name`` (the last one wins,
        as in sbatch)."""
        found = None
        for d in self.directives:
            if d.applied and d.field == field_name and not d.component:
                found = d
        return found

    def directive_line(self, field_name: str, default: int = 1) -> int:
        d = self.directive(field_name)
        return d.line if d else default

    def variable(self, name: str, before: int | None = None) -> Variable | None:
        """The last assignment of ``name`` (before line ``before`` when given)."""
        return _last_assignment(self.variables, name, before)

    def resolve(self, value: str, before: int | None = None, depth: int = 6) -> str:
        """``value`` with the script's own variables substituted (``$IMG`` → ``/path/img.sif``).

        Variables the script does not set (``$SCRATCH``, ``$SLURM_JOB_ID``) are left as they are, and so are those
        whose value is known only when the job runs (``$(hostname)``). A ``~`` an assignment starts with (or has
        after a ``:``), unquoted, is the home folder, as bash expands it there (bash(1), Tilde Expansion):
        ``IMG=~/containers/x.sif`` gives ``$HOME/containers/x.sif``; ``~user`` (another user's) stays a reference.
        """
        return _resolve(self.variables, value, before, depth)

    def resolve_written(self, value: str, before: int | None = None) -> str:
        """``value`` with the script's variables replaced by the text their assignments give them, also those
        whose value the reader keeps as written: with ``head=${nodes[0]}``, ``$head`` gives ``${nodes[0]}``, with
        ``h=$(hostname)``, ``$(hostname)``. It says where a value comes from (an element of an array, a command's
        output), for a rule that asks that. :meth:`resolve` leaves such a variable a reference: its value is known
        only when the job runs, and its callers take a reference left as it is for a value they cannot know."""
        return _resolve(self.variables, value, before, as_written=True)

    def may_split(self, word: Word, line: int) -> bool:
        """True when ``word`` is an unquoted whole-word expansion (``$ARGS``, ``$@``) that bash may split
        into several words, or drop when empty: a renderer that quotes it would pass one word instead.
        Variables the script sets to one plain word, and Slurm's own, are safe."""
        if word.raw.startswith('"') and LIST_WORD.fullmatch(word.raw):
            return True  # "${OPTS[@]}", "$@": one word per element, however many there are
        if word.quoted or not _SPLIT_WORD.fullmatch(word.raw) or _NEVER_SPLIT.fullmatch(word.raw):
            return False
        if any(s.line <= line <= s.end_line and word.raw in dict(s.through) for s in self.split_steps or ()):
            return True  # the launch it holds was read into several words
        value = self.resolve(word.raw, line)
        if value == word.raw or value == "" or re.search(r"[\s*?\[]", value) is not None:
            return True
        # set from variables the reader cannot know (M=$X; a=$(hostname); M=$a): as empty, or as many words, as they
        return not _REF.sub("", value) and not all(_NEVER_SPLIT.fullmatch(m.group(0)) for m in _REF.finditer(value))

    def is_suppressed(self, code: str, line: int) -> bool:
        if code in self.suppressed_file:
            return True
        return code in self.suppressed.get(line, frozenset())

    def code_commands(self) -> Iterator[Command]:
        return iter(self.lexed.code)


def _last_assignment(variables: Any, name: str, before: int | None = None) -> Variable | None:
    found = None
    for v in variables:
        if v.name == name and (before is None or v.line < before):
            found = v
    return found


def _resolve(variables: Any, value: str, before: int | None = None, depth: int = 6, as_written: bool = False) -> str:
    """``value`` with the top-level ``variables`` substituted (see :meth:`ParsedScript.resolve`); ``as_written``
    also puts in the text of those kept as written (see :meth:`ParsedScript.resolve_written`)."""
    if isinstance(value, Verbatim) or "$" not in value or depth <= 0:
        return value

    def sub(m: re.Match[str]) -> str:
        var = _last_assignment(variables, m.group(1) or m.group(2), before)
        if var is None:
            return m.group(0)
        held: str | None = var.value
        if isinstance(held, Verbatim):
            held = _assigned_text(held) if as_written else None if var.appended else _home_expanded(held)
        if held is None:
            return m.group(0)
        return _resolve(variables, held, var.line, depth - 1, as_written)
    return _REF.sub(sub, value)


def _home_expanded(value: Verbatim) -> str | None:
    """The value an assignment kept as written gives its variable when it holds a tilde bash expands to the home
    folder (``~/x.sif`` gives ``$HOME/x.sif``): an unquoted ``~`` at the start of the value or after an unquoted
    ``:``, followed by ``/``, ``:`` or the end; quotes removed, expansions left as written (``~/$(date +%F).sif``
    gives ``$HOME/$(date +%F).sif``: a path under the home folder whose name the job knows). None for any other
    value (``~user/x``, an array): it is known only when the job runs."""
    if "~" not in value or value.startswith("("):
        return None
    out: list[str] = []
    pieces = list(word_pieces(value))
    expanded = False
    for k, (_, kind, text, _) in enumerate(pieces):
        after_quote = pieces[k - 1][3] if k else ""  # the quote open before this piece
        if kind == "quote":
            continue
        if kind == "exp":
            out.append(text)
            continue
        if text == "$" or (text == "~" and after_quote):
            return None  # a quoted $ or ~ is a character of the value, which the text given back cannot tell
        if text == "~" and not after_quote and (k == 0 or (pieces[k - 1][2] == ":" and not pieces[k - 1][3]
                                                           and pieces[k - 1][1] == "lit")):
            following = pieces[k + 1][2] if k + 1 < len(pieces) else ""
            if following not in ("", "/", ":") or (k + 1 < len(pieces) and pieces[k + 1][1] != "lit"):
                return None  # ~user, ~+, ~- or ~$NAME: not the job's own home folder
            out.append("$HOME")
            expanded = True
            continue
        out.append(text)
    return "".join(out) if expanded else None


def _assigned_text(value: Verbatim) -> str | None:
    """The text an assignment kept as written gives its variable, quotes removed and expansions left as written
    (``"$(hostname)"`` gives ``$(hostname)``); None for an array, whose elements are no one value."""
    if value.startswith("("):
        return None
    return "".join(text for _, kind, text, _ in word_pieces(value) if kind != "quote")


def _expansion(word: Word, line: int, in_compound: bool, variables: list[Variable],
               branches: list[tuple[str, Any, int]]) -> Any:
    """A step's word as :func:`~hpcwidgets.parse.argv.parse_chain` reads it: an unquoted ``$NAME`` / ``${NAME}``
    becomes an :class:`~hpcwidgets.parse.argv.Expansion` holding the values the script gives the variable
    there: its last top-level assignment before the line (or nothing, when there is none) and every assignment
    inside an ``if``, a loop or a function (before the line, or anywhere when the step is itself in one). A
    variable the script never sets, or sets to what the reader cannot tell (``$(…)``), has unknown values."""
    a = ARRAY_WORD.fullmatch(word.raw)
    if a is not None:
        return _array_expansion(word, a.group("array"), line, in_compound, variables, branches)
    m = _REF.fullmatch(word.raw)
    if word.raw == '"$@"':
        return Expansion(word.raw, word.raw, None)  # the script's arguments: any number of words, not known here
    if word.quoted or word.verbatim or m is None:
        return word.value
    name = m.group(1) or m.group(2)
    top = _last_assignment(variables, name, line)
    more = [(value, at) for n, value, at in branches if n == name and (at < line or in_compound)]
    if top is None and not more:
        return Expansion(word.value, word.raw, None)
    found = []
    for value, at in [(top.value, top.line) if top is not None else ("", 0)] + more:
        if isinstance(value, Verbatim):
            return Expansion(word.value, word.raw, None)
        found.append(str(_resolve(variables, value, at)))
    return Expansion(word.value, word.raw, tuple(found), top is not None and not more)


def _array_expansion(word: Word, name: str, line: int, in_compound: bool, variables: list[Variable],
                     branches: list[tuple[str, Any, int]]) -> Expansion:
    """``"${OPTS[@]}"`` as an :class:`~hpcwidgets.parse.argv.Expansion`: bash passes each element of the array
    as a word, so an array of options (``OPTS=(--nv -B /data)``) before the image is options. Its values are
    the elements, joined, of each assignment of the array the step may see; it is never spliced into the
    model's fields (an element may hold spaces), only kept as written."""
    top = _last_assignment(variables, name, line)
    assigned = [top.value] if top is not None else []
    assigned += [value for n, value, at in branches if n == name and (at < line or in_compound)]
    found = []
    for value in assigned:
        elements = _array_elements(value)
        if elements is None:
            return Expansion(word.raw, word.raw, None)
        found.append(" ".join(elements))
    return Expansion(word.raw, word.raw, tuple(found) or None)


def _array_elements(value: Any) -> list[str] | None:
    """The elements of an assigned value: ``(a "b c")`` → a, b c; a plain value is one element; None when the
    reader cannot tell (a command substitution, or text the lexer refuses)."""
    text = str(value)
    if not isinstance(value, Verbatim):
        return [text]
    if not (text.startswith("(") and text.endswith(")")) or "$(" in text or "`" in text:
        return None
    inner = text[1:-1].strip()
    if not inner:
        return []
    try:
        # an array may span lines: its newlines (and line continuations) only separate elements
        return [str(w.value) for w in lex_command(re.sub(r"\\?\n", " ", inner)).words]
    except ParseError:
        return None


# --------------------------------------------------------------------------------------------
# launches held in variables

#: a reference the batch shell expands (``\$NAME`` in the value language is a literal dollar)
_EXPANDED_REF = re.compile(r"(?<!\\)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
#: a piece of a held value the value language cannot hold: a substitution bash made at the assignment
_SUBSTITUTED = re.compile(r"\$\(|`|\$\{(?![A-Za-z_][A-Za-z0-9_]*\})")


def _held_text(name: str, line: int, in_compound: bool, variables: list[Variable],
               branches: list[tuple[str, Any, int]], depth: int = 6) -> tuple[str, int] | None:
    """The text variable ``name`` holds at ``line`` and the line that gives it, when the script gives it one value
    there for sure: its last top-level assignment before the line, a literal or one double-quoted string (not an
    append, ``NAME+=…``), and no assignment of it inside an ``if``, a loop or a function that may run first (for a
    step inside one of those, any such assignment, or a top-level one after the step, which a later call sees).
    References in the text to variables known the same way are replaced by their text, as bash did when it
    assigned it; the others stay references (``$head_node`` set from ``$(…)``). None when not sure."""
    top = _last_assignment(variables, name, line)
    if top is None or top.appended or depth <= 0:
        return None
    if any(n == name and (at < line or in_compound) for n, _, at in branches) or \
            (in_compound and any(v.name == name and v.line >= line for v in variables)):
        return None
    text = shell_script_text(top.value)
    if text is None:
        return None
    return _substituted(text, top.line, False, variables, branches, depth - 1, []), top.line


def _substituted(text: str, line: int, in_compound: bool, variables: list[Variable],
                 branches: list[tuple[str, Any, int]], depth: int, found: list[tuple[str, int]],
                 several: bool = False) -> str:
    """``text`` with the references the batch shell expands replaced by the text of those it surely knows (see
    :func:`_held_text`), with ``several`` only of those holding several words (a launch, options: a one-word value
    stays as written, as the rules read it then); each one replaced is added to ``found`` as written, with its
    assignment's line."""
    def sub(m: re.Match[str]) -> str:
        held = _held_text(m.group(1) or m.group(2), line, in_compound, variables, branches, depth)
        if held is None or (several and len(_split_held(held[0]) or ()) < 2):
            return m.group(0)
        found.append((m.group(0), held[1]))
        return held[0]
    return _EXPANDED_REF.sub(sub, text) if "$" in text else text


def _split_held(text: str) -> list[str] | None:
    """``text`` split into words as bash splits an unquoted expansion of it: at blanks and newlines, with no
    quote removal. A ``$(…)``, ``$((…))``, ``${…}`` or backtick substitution bash made when it assigned the value
    stays within its word (``$((N * 4))`` is one number). None where bash would expand a glob (``*``, ``?``,
    ``[``), or when a substitution is not closed."""
    words: list[str] = []
    current: list[str] = []
    closers: list[str] = []  # the characters that close the substitutions open at this point
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            current.append(text[i:i + 2])
            i += 2
            continue
        if not closers and c in " \t\n":
            if current:
                words.append("".join(current))
                current = []
            i += 1
            continue
        if not closers and c in "*?[":
            return None
        if text.startswith(("$(", "${"), i):
            closers.append(")" if text[i + 1] == "(" else "}")
            current.append(text[i:i + 2])
            i += 2
            continue
        if closers and c == "(":
            closers.append(")")
        elif closers and c == closers[-1]:
            closers.pop()
        elif c == "`":
            if closers and closers[-1] == "`":
                closers.pop()
            else:
                closers.append("`")
        current.append(c)
        i += 1
    if closers:
        return None
    if current:
        words.append("".join(current))
    return words


def _held_word(piece: str) -> Any:
    """A word split from a held value as the command readers take it: text with a substitution bash made is kept
    as written (:class:`Verbatim`); a lone reference to a variable whose value is not known is an
    :class:`~hpcwidgets.parse.argv.Expansion` of unknown values, as it is when written on the step's line."""
    if _SUBSTITUTED.search(piece):
        return Verbatim(piece)
    if _REF.fullmatch(piece):
        return Expansion(piece, piece, None)
    return piece


def _read_through(cmd: Command, in_compound: bool, variables: list[Variable],
                  branches: list[tuple[str, Any, int]]) -> tuple[Command, list[Any], list[tuple[str, int]]] | None:
    r"""``cmd`` as bash runs it when a launch is held in variables, or None when none is.

    A word that is an unquoted ``$NAME``/``${NAME}`` holding two words or more (see :func:`_held_text`) becomes the
    words bash splits its value into (``srun $CMD``); the script of a ``bash -c`` (or ``sh -c``) gets the text of the
    variables the batch shell puts in it (``bash -c "$LAUNCHER --machine_rank \$SLURM_NODEID $SCRIPT"``): the
    command is returned with that word's value replaced, its source (``raw``, line, column) kept. A quoted
    ``"$CMD"`` is one word and stays one. Returns the command, the words to read the step from and the references
    read through (as written, with the line of their assignment)."""
    words: list[Any] = []
    kept: list[Word] = []
    through: list[tuple[str, int]] = []
    c_script = c_script_in([w.value for w in cmd.words])
    for k, w in enumerate(cmd.words):
        m = _REF.fullmatch(w.raw)
        held = _held_text(m.group(1) or m.group(2), cmd.line, in_compound, variables, branches) \
            if m is not None and not w.quoted and not w.verbatim else None
        pieces = _split_held(held[0]) if held is not None else None
        if held is not None and pieces is not None and len(pieces) > 1:
            words += [_held_word(p) for p in pieces]
            kept.append(w)
            through.append((w.raw, held[1]))
            continue
        if k == c_script and not w.verbatim:
            found: list[tuple[str, int]] = []
            script = _substituted(str(w.value), cmd.line, in_compound, variables, branches, 6, found, True)
            if found:
                w = replace(w, value=script)
                through += found
        kept.append(w)
        words.append(_expansion(w, cmd.line, in_compound, variables, branches))
    if not through:
        return None
    return replace(cmd, words=tuple(kept)), words, through


# --------------------------------------------------------------------------------------------
# directives

def directive_fields() -> dict[str, str]:
    """Every spelling of an #SBATCH option the job model holds (``-J``, ``--job-name``) → its SlurmJob field."""
    table: dict[str, str] = {}
    for f in SlurmJob.field_specs():
        if f.info.role == "option" and f.info.flag:
            for s in f.info.spellings:
                table[s] = f.name
    table.update({"--gres": "gpus_per_node", "--gpus-per-node": "gpus_per_node"})
    return table


_COUNT = re.compile(r"[0-9]{1,100}")


def _count(text: str) -> Any:
    """A directive's count as a number when it is one (ASCII digits; ``²`` and 5000-digit runs are not),
    else the text as written, for the job model to report."""
    return int(text) if _COUNT.fullmatch(text) else text


def _gpu_item(item: str) -> list[str]:
    """A ``--gres`` gpu item's parts, as sbatch reads them: ``gpu:a100:2`` → [gpu, a100, 2], ``gpu:a100`` (one a100)
    → [gpu, a100, 1], ``gpu::2`` → [gpu, 2], ``gpu`` → [gpu]."""
    parts = item.split("(")[0].split(":")  # gpu:a100:2(S:0-1): the socket list is not modelled
    if len(parts) == 3 and not parts[1]:
        del parts[1]  # gpu::2 names no type: gpu:2, as the model writes it
    if len(parts) == 2 and not (parts[1].isascii() and parts[1].isdigit()):
        parts.append("1")  # gpu:a100 is one a100, as sbatch reads it (gpu:2 is two of any type)
    return parts


def _typed_gpu_items(items: list[str]) -> str:
    """Several gpu items of distinct named types (``gpu:a100:2``, ``gpu:v100``) as the job model holds them,
    ``a100:2,v100:1``; "" for one item, or any item with no type, a socket list or a count that is no number."""
    if len(items) < 2 or any("(" in item for item in items):
        return ""
    pairs = [_gpu_item(item) for item in items]
    if any(len(p) != 3 or not p[2].isascii() or not p[2].isdigit() for p in pairs) or \
            len({p[1] for p in pairs}) != len(pairs):
        return ""
    counts = ",".join(f"{p[1]}:{p[2]}" for p in pairs)
    return counts if GPU_COUNTS.fullmatch(counts) else ""


def _gpu_request(flag: str, value: str) -> dict[str, Any]:
    """``gpu:4``, ``gpu:a100:4``, ``gpu`` (one), ``a100:2`` (for --gpus*) → GPU fields.

    The other items of a ``--gres`` (``lscratch:200``) are kept, in order, as ``other_gres``: sbatch
    asks for them too, so dropping them would change the job.
    """
    if flag == "--gres":
        out: dict[str, Any] = {}
        other: list[str] = []
        gpus = [item for item in value.split(",") if item.split(":")[0] == "gpu"]
        typed = _typed_gpu_items(gpus)
        if typed:  # gpu:a100:2,gpu:v100:1: GPUs of several types on each node
            out.update({"gpus_per_node": typed, "gpu_type": ""})
        for item in value.split(","):
            parts = item.split(":")
            if parts[0] != "gpu":
                other.append(item)
                continue
            if "gpus_per_node" in out:
                if not typed:
                    other.append(item)  # a second gpu item of no distinct type: kept as written, the model reports it
                continue
            parts = _gpu_item(item)
            out.update({"gpus_per_node": _count(parts[-1]) if len(parts) > 1 else 1,
                        "gpu_type": parts[1] if len(parts) == 3 else ""})
        out["other_gres"] = tuple(other)
        return out
    if "," in value and GPU_COUNTS.fullmatch(value):
        return {"gpus_per_node": value, "gpu_flag": "gpus-per-node"}  # a100:2,v100:1: several types on each node
    typ, _, count = value.rpartition(":")
    out = {"gpus_per_node": _count(count), "gpu_flag": "gpus-per-node"}
    if typ:
        out["gpu_type"] = typ
    return out


#: where each #SBATCH line sbatch reads goes in the job model: its line → the place the comments on it keep (see
#: :class:`~hpcwidgets.spec.slurm.Comment`; None for a line the model does not write back) and the comment at its end
_Placed = dict[int, tuple["str | None", str]]


def _read_directives(script: Script, first: int) -> tuple[dict[str, Any], list[Directive], list[tuple[int, str]],
                                                          _Placed]:
    table = directive_fields()
    values: dict[str, Any] = {}
    out: list[Directive] = []
    extra: list[str] = []
    problems: list[tuple[int, str]] = []
    placed: _Placed = {}
    gpus: dict[str, Any] = {}  # which GPU options were read into the fields (see _read_gpus)
    component = 0
    for cmd in script.directives:
        applied = not first or cmd.line < first
        try:
            lexed = directive_words(cmd)
        except ParseError as exc:
            problems.append((cmd.line, exc.message))
            continue
        words = [w.value.replace("\\$", "$") for w in lexed]
        raws = [w.raw for w in lexed]  # as written: an option the model has no field for is kept so (\#, quotes)
        kept = len(extra)
        at = None  # where the line's first option goes: a field, or the first item kept as written
        cut = next((k for k, raw in enumerate(raws) if is_hetjob_word(raw)), None)
        if cut is not None:
            problems += _hetjob_word_problems(cmd.line, raws, cut)
            separator, words, raws = raws[cut], words[:cut], raws[:cut]  # sbatch reads nothing more of the line
            if cut == 0:
                # a heterogeneous job: what follows describes the next component. The model holds the first; the
                # separator (in lower case: sbatch reads it in any) and everything after it are kept, in order.
                if applied:
                    component += 1
                    extra.append(separator.lower())
                    placed[cmd.line] = (f"extra_directives:{extra[-1]}", _directive_comment(cmd, lexed))
                continue
        if component and applied and raws:
            extra.append(" ".join(raws))
            at = f"extra_directives:{extra[-1]}"
        before = dict(values)  # what the lines above set: a line holding a stray word sets nothing (see below)
        stray = False
        i = 0
        while i < len(words):
            word, start = words[i], i
            if not word.startswith("-"):
                problems.append((cmd.line, f"{word!r} is not an option; #SBATCH lines hold options like --time=01:00:00"))
                stray = True
                i += 1
                continue
            if word.startswith("--"):
                flag, eq, value = word.partition("=")
            else:
                flag, eq, value = word[:2], "", word[2:]
                eq = "=" if value else ""
            name = table.get(flag, "")
            if not name and flag.startswith("--"):
                # getopt_long reads an unambiguous prefix (--tasks) or an alias as its option
                full = sbatch_long_option(flag)
                name = table.get(SBATCH_ALIASES.get(full, full), "") if full else ""
            spec = SlurmJob.field_spec(name) if name else None
            kind = sbatch_option(flag)
            # a switch, or an option whose value may only follow "=": the next word is not its value
            is_bool = (spec is not None and spec.base_type is bool and name != "gpus_per_node") \
                or (not eq and kind in ("switch", "optional"))
            if not eq and not is_bool:
                if i + 1 < len(words) and not words[i + 1].startswith("-"):
                    value = words[i + 1]
                    i += 1
                elif name or kind == "value":
                    problems.append((cmd.line, _missing_value(flag)))
                    i += 1
                    continue
                else:
                    is_bool = True  # an option sbatch does not have (lint reports it), followed by no value
            i += 1
            out.append(Directive(cmd.line, flag, value, name, applied, component))
            if not applied or component:
                continue
            if not name or (is_bool and eq and value):
                # kept as written, e.g. --exclusive=user (not the switch --exclusive) or a value holding \# or a space;
                # -L SCRATCH stays two words: "-L=SCRATCH" would make the value "=SCRATCH"
                raw = raws[start]
                extra.append(raw if start == i - 1 else f"{raw}={raws[i - 1]}" if flag.startswith("--")
                             else f"{raw} {raws[i - 1]}")
            elif name == "gpus_per_node":
                raw = raws[start]
                written = raw if start == i - 1 else f"{raw}={raws[i - 1]}"
                for line, place in _read_gpus(flag, value, written, values, extra, gpus, cmd.line):
                    if placed.get(line, (None, ""))[0] == "gpus_per_node":
                        placed[line] = (place, placed[line][1])
            elif is_bool:
                values[name] = True
            elif spec is not None and spec.base_type is int:
                values[name] = _count(value)
            elif name == "mail_type" and name in values:
                values[name] = merge_mail_types(values[name], value)  # sbatch ORs them: BEGIN, then END mails on both
            else:
                values[name] = value
            if at is None and len(extra) > kept:
                at = f"extra_directives:{extra[-1]}"
            elif at is None and values.get(name) != "":  # (an option given no value, --nodes=, writes no line)
                at = name
        if stray and applied and not component:
            # a value with spaces (--account=<<needs to be filled>>) or a stray word: the whole line is kept as one
            # item, as written, for the person to repair in place (a line of words alone makes the job refused)
            values = before
            del extra[kept:]
            extra.append(" ".join(raws))
            at = f"extra_directives:{extra[-1]}"
        if applied:
            placed[cmd.line] = (at, _directive_comment(cmd, lexed))
    if extra:
        values["extra_directives"] = tuple(extra)
    return values, out, problems, placed


#: what the value is, and one to show, of an sbatch option no SlurmJob field holds as it is written, for a directive
#: that gives none (``#SBATCH -i``); the options of the fields take both from the field's label and placeholder
_OTHER_VALUE_EXAMPLES = {
    "--input": ("the file the job reads as its standard input", "job.in"),
    "--gres": ("the generic resources of each node", "gpu:1"),  # the GPU fields and other_gres make it
    "--dependency": ("the jobs to wait for", "afterok:JOBID"),
    "--nodelist": ("the nodes the job must have", "n1"),
    "--exclude": ("the nodes the job must not run on", "n1"),
    "--begin": ("when the job may start", "now+1hour"),
    "--signal": ("the signal and how long before the end", "B:USR1@300"),
}
#: the last word of a label that names a form's control rather than the value (Mail on, Mail to)
_CONTROL_WORDS = ("on", "to", "for", "with")


def _value_example(long: str) -> tuple[str, str]:
    """What the value of the sbatch option ``long`` is and one to show: for an option a SlurmJob field holds, from
    the field's metadata (its label, or the help's first clause where the label names a control, and its
    placeholder); ("", "…") for an option nothing describes."""
    if long in _OTHER_VALUE_EXAMPLES:
        return _OTHER_VALUE_EXAMPLES[long]
    name = directive_fields().get(long, "")
    f = SlurmJob.field_spec(name) if name else None
    if f is None or f.base_type is bool:
        return "", "…"
    label = f.info.label
    if label.rsplit(" ", 1)[-1] in _CONTROL_WORDS:
        what = re.split(r"[:.;]", f.info.help, maxsplit=1)[0]
        what = what[:1].lower() + what[1:]
        what = what if re.match(r"(?:when|where|what|which|how)\b", what) else f"the {what}"
    else:
        first = label.split(" ", 1)[0]
        # a word written in capitals (QOS, CPUs, GPUs) keeps them
        noun = label if first[1:2].isupper() else label[:1].lower() + label[1:]
        what = f"the number of {noun}" if f.base_type is int else f"the {noun}"
    return what, f.info.placeholder or "…"


def _missing_value(flag: str) -> str:
    """What a directive that gives ``flag`` no value is told: what the value is, and one written in its place
    (``-i`` keeps a blank before it: getopt keeps -i=job.in's "=" in the value)."""
    long = SBATCH_SHORT.get(flag) or sbatch_long_option(flag) or flag
    long = SBATCH_ALIASES.get(long, long)
    what, value = _value_example(long)
    named = f"{flag} ({long})" if long != flag else flag
    example = f"{flag}={value}" if flag.startswith("--") else f"{flag} {value}"
    return f"{named} needs a value{': ' + what if what else ''}, e.g. {example}"


def _read_gpus(flag: str, value: str, written: str, values: dict[str, Any], extra: list[str], seen: dict[str, Any],
               line: int) -> list[tuple[int, str | None]]:
    """Read a ``--gres`` or ``--gpus-per-node`` directive into the GPU fields of ``values`` as sbatch reads them;
    ``seen`` says what earlier lines gave (it is updated). sbatch keeps only the last ``--gres`` (slurm_opt.c
    ``arg_set_gres`` replaces the value), so a later one replaces every item of an earlier one, and that earlier line
    is no longer the model's (the layout of the script keeps it as written). A ``--gres`` with a GPU item beside
    ``--gpus-per-node`` (in either order) is kept as written (``written``) in ``extra``, so both still reach sbatch
    and Slurm does with them what it did (lint's HPC307 says which count it keeps); the GPU fields hold the
    ``--gpus-per-node`` request. Returns the earlier lines whose directive went elsewhere, each with its new place
    (None: no field writes it; see :func:`_directive_comments`)."""
    flag = sbatch_long_option(flag) or flag  # --gpus-per=4 is --gpus-per-node, as getopt_long reads a prefix
    request = _gpu_request(flag, value)
    moved: list[tuple[int, str | None]] = []
    if flag == "--gres" and "gres" in seen:  # an earlier --gres, which this one replaces
        earlier, kept, in_extra = seen.pop("gres")
        moved.append((earlier, None))
        if in_extra:
            extra.remove(kept)
        else:
            for key in ("gpus_per_node", "gpu_type", "other_gres"):
                values.pop(key, None)
    if flag == "--gres" and "gpus_per_node" in request and "per_node" in seen:
        extra.append(written)
        seen["gres"] = (line, written, True)
        return moved
    if flag == "--gpus-per-node" and "gres" in seen and not seen["gres"][2] and "gpus_per_node" in values:
        earlier, kept, _ = seen["gres"]
        seen["gres"] = (earlier, kept, True)
        extra.append(kept)
        moved.append((earlier, f"extra_directives:{kept}"))
        for key in ("gpus_per_node", "gpu_type", "other_gres"):
            values.pop(key, None)
    values.update(request)
    if flag == "--gres":
        seen["gres"] = (line, written, False)
    else:
        seen["per_node"] = line
    return moved


def _directive_comment(cmd: Command, words: tuple[Word, ...]) -> str:
    """The comment at the end of an #SBATCH line: from the ``#`` sbatch stops reading the line at (after its last
    word; see :func:`~hpcwidgets.parse.lexer.directive_words`), "" when there is none."""
    line = cmd.text.split("\n", 1)[0]
    end = words[-1].col - 1 + len(words[-1].raw) if words else len("#SBATCH")
    start = line.find("#", end)
    return line[start:].rstrip() if start >= 0 else ""


def _directive_comments(script: Script, first: int, placed: _Placed) -> tuple[tuple[int, Comment], ...]:
    """The comments of the script's #SBATCH lines (sbatch reads those before the first command), each with the line
    it is written on, kept where they belong in the job model (:class:`~hpcwidgets.spec.slurm.Comment`): the
    comment at the end of a directive with the field (or the item kept as written) it sets; a comment line among
    the directives above the next one, in order; those above the first directive (the script's heading) above them
    all. Comment lines after the last directive stay where they are (a heading for the commands below), but for
    #SBATCH lines switched off there (``##SBATCH --gres=gpu:2``), which a person switches back on, and a run of
    comment lines right below the last of these lines that ends in a blank line or the script's end (a note on that
    line: "change the line above to …"): those stay below the directives. A directive the model does not write back
    leaves its comment to the next one."""
    head = [c for c in script.commands if c.kind in ("comment", "directive") and (not first or c.line < first)]
    last = max((k for k, c in enumerate(head) if c.kind == "directive" or SWITCHED_OFF.match(c.text.strip())),
               default=-1)
    if last >= 0:
        last = _note_below(script, head, last)
    out: list[tuple[int, Comment]] = []
    waiting: list[tuple[int, str]] = []  # comment lines above the next directive the model writes
    seen = False  # a directive came before
    for cmd in head[:last + 1]:
        if cmd.kind == "comment":
            waiting.append((cmd.line, cmd.text.strip()))
            continue
        at, comment = placed.get(cmd.line, (None, ""))
        if at is not None or not seen:
            out += [(line, Comment(text, at if seen else "", above=True)) for line, text in waiting]
            waiting = []
        seen = True
        if comment and at is not None:
            out.append((cmd.line, Comment(comment, at)))
        elif comment:
            waiting.append((cmd.line, comment))
    return tuple(out + [(line, Comment(text, "")) for line, text in waiting])


def _note_below(script: Script, head: list[Command], last: int) -> int:
    """The index in ``head`` of the last comment line of the run right below ``head[last]`` (no blank line between),
    when the run ends in a blank line or the script's end; else ``last``. A run that goes straight on into a
    command (``# load the toolchain`` above ``module load gcc``) is that command's heading, and stays with it."""
    end = last
    while end + 1 < len(head) and head[end + 1].kind == "comment" and head[end + 1].line == head[end].end_line + 1:
        end += 1
    if end == last:
        return last
    below = next((c for c in script.commands if c.line > head[end].end_line), None)
    return end if below is None or below.kind == "blank" else last


def _hetjob_word_problems(line: int, raws: list[str], cut: int) -> list[tuple[int, str]]:
    """What sbatch makes of the word ``hetjob`` (or ``packjob``) at ``raws[cut]`` of an #SBATCH line: first on
    the line it starts the next component and the rest of the line is not read; after an option it starts
    nothing, and neither it nor what follows is read (Slurm 22.05, ``sbatch --test-only``)."""
    word, rest = raws[cut], " ".join(raws[cut + 1:])
    if cut == 0:
        return [(line, f"sbatch reads nothing after {word} on its line, so {rest} is ignored; "
                       "write it on the next #SBATCH line")] if rest else []
    return [(line, f"{word!r} after an option starts no new component: sbatch ignores it"
                   + (f" and the rest of the line ({rest})" if rest else "")
                   + f"; write #SBATCH {word.lower()} on a line of its own to start one, or remove it")]


#: what ``--mail-type=ALL`` stands for (sbatch's documentation; the time limits and ARRAY_TASKS are not in it)
_MAIL_ALL = frozenset({"BEGIN", "END", "FAIL", "INVALID_DEPEND", "REQUEUE", "STAGE_OUT"})


def merge_mail_types(first: str, then: str) -> str:
    """One ``--mail-type`` value for two directives, as sbatch reads them: it ORs each directive's types
    (slurm_opt.c ``opt->mail_type |= parse_mail_type(arg)``). The types keep the order they first appear in,
    once each; ALL absorbs the types it stands for. A directive holding NONE adds nothing (parse_mail_type
    returns 0 for it, whatever comes before or after NONE in that value), so it does not clear the others:
    the result is NONE only when no directive asks for a type. Unknown words are kept, for the job model to
    report; a value with a ``$`` is not merged (the model reports it as it is)."""
    if "$" in first or "$" in then:
        return then
    kept: list[str] = []
    for value in (first, then):
        items = [t.strip() for t in value.split(",") if t.strip()]
        if any(t.upper() == "NONE" for t in items):
            continue
        for t in items:
            if t.upper() not in (k.upper() for k in kept):
                kept.append(t)
    if any(t.upper() == "ALL" for t in kept):
        kept = [t for t in kept if t.upper() not in _MAIL_ALL]
    return ",".join(kept) or "NONE"


# --------------------------------------------------------------------------------------------
# commands

def _module_names(cmd: Command) -> list[str] | None:
    argv = [str(v) for v in cmd.argv]
    if len(argv) >= 2 and argv[0] == "module" and argv[1] in ("load", "add"):
        return argv[2:]
    if argv[:1] == ["ml"] and len(argv) > 1 and argv[1] in ("load", "add"):
        return argv[2:]  # ml load NAME: ml with module's own subcommand
    if argv and argv[0] == "ml" and len(argv) > 1 and not argv[1].startswith("-") and argv[1] not in ("purge", "list", "av", "avail", "spider", "show", "unload", "save", "restore"):
        return argv[1:]
    return None


@dataclass(frozen=True)
class _Wrapper:
    """The options of a program that runs the command after them unchanged (``env -u X``, ``uv run --no-sync``,
    ``numactl -C 0-3``), as the program itself reads them (its ``--help`` or source): which take a value, as
    the next word or attached (``-n5``, ``--name=x``), and which do not. An option missing from both makes
    :func:`launch_words` stop at the wrapper: a guess could read a value as the command, or the command as a
    value, and a rule would then judge a launch that is not there."""

    takes: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()  # long options whose value is only ever attached (--opt[=VALUE])
    positional: int = 0                     # words it reads before the command (taskset's CPU list)
    assigns: bool = False                   # NAME=value words before the command (env)
    numeric: bool = False                   # -N as an option (nice -10)
    dashdash: bool = True                   # -- ends its options (getopt and clap do; conda's argparse: no)


def _w(takes: str = "", flags: str = "", **kw: Any) -> _Wrapper:
    return _Wrapper(frozenset(takes.split()), frozenset(flags.split()), **kw)


_CONDA = _w("-n --name -p --prefix --cwd", "--no-capture-output --live-stream -v --verbose --dev "
            "--debug-wrapper-scripts", dashdash=False)

#: programs that run the command after their options as it is (a word with a space: program and subcommand);
#: the job-script reader, the lint rules and the build-file linter all read past them with :func:`launch_words`
WRAPPERS: dict[str, _Wrapper] = {
    "exec": _w("-a", "-c -l"),
    "time": _w("-o --output -f --format", "-p -v --verbose -a --append -q --quiet --portability"),
    "nohup": _w(),
    "command": _w("", "-p"),
    "env": _w("-u --unset -C --chdir", "-i --ignore-environment - -v --debug",
              optional=frozenset({"--default-signal", "--ignore-signal", "--block-signal"}), assigns=True),
    "sudo": _w("-u --user -g --group -C --close-from -D --chdir -h --host -p --prompt -U --other-user",
               "-E --preserve-env -H --set-home -n --non-interactive -S --stdin -k --reset-timestamp -b "
               "--background -i --login -s --shell", optional=frozenset({"--preserve-env"})),
    "nice": _w("-n --adjustment", numeric=True),
    "ionice": _w("-c --class -n --classdata", "-t --ignore"),
    "numactl": _w("-i --interleave -p --preferred -m --membind -N --cpunodebind -C --physcpubind "
                  "-w --weighted-interleave -P --preferred-many", "-l --localalloc -a --all -b --balancing"),
    "stdbuf": _w("-i --input -o --output -e --error"),
    "taskset": _w("", "-a --all-tasks -c --cpu-list", positional=1),
    "timeout": _w("-k --kill-after -s --signal", "--preserve-status --foreground -v --verbose", positional=1),
    "uv run": _w("--with --with-editable --with-requirements --env-file --extra --no-extra --group --no-group "
                 "--only-group --package --no-install-package -p --python --index --default-index -i --index-url "
                 "--extra-index-url -f --find-links --index-strategy --keyring-provider --resolution --prerelease "
                 "--fork-strategy --exclude-newer --no-build-isolation-package -C --config-setting --link-mode "
                 "-P --upgrade-package --reinstall-package --refresh-package --no-binary-package --no-build-package "
                 "--cache-dir --directory --project --config-file --color --allow-insecure-host --python-platform",
                 "--no-sync --frozen --locked --isolated --active --no-active --no-project --no-dev --dev "
                 "--all-extras --all-groups --no-default-groups --only-dev --no-editable --exact --no-env-file "
                 "--all-packages --offline --no-cache -n -q --quiet -v --verbose --native-tls --no-config "
                 "--no-progress --no-python-downloads --managed-python --no-managed-python --compile-bytecode "
                 "--no-build-isolation --no-build --no-binary --reinstall --upgrade -U --refresh --no-index "
                 "--no-sources --no-install-project --no-install-workspace --no-install-local"),
    "conda run": _CONDA,
    "mamba run": _CONDA,
    "micromamba run": _w("-n --name -p --prefix -r --root-prefix -a --attach --cwd -e --env --label --log-level "
                         "--rc-file", "-d --detach --clean-env -v --verbose -q --quiet --no-rc --no-env",
                         dashdash=False),
    "pixi run": _w("--manifest-path -e --environment --concurrent-solves --concurrent-downloads --auth-file "
                   "--pypi-keyring-provider --color", "--locked --frozen --no-install --no-lockfile-update "
                   "--revalidate --clean-env --skip-deps -n --dry-run --force-activate --no-progress -v --verbose "
                   "-q --quiet --tls-no-verify --as-is --no-completion -x --executable"),
    "poetry run": _w("-C --directory -P --project", "-q --quiet -v --verbose -n --no-interaction --ansi --no-ansi "
                     "--no-plugins --no-cache", dashdash=False),
}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def _wrapper_at(words: list[str], i: int) -> tuple[_Wrapper, int] | None:
    """The wrapper ``words[i:]`` starts with (its program written with a path or not) and how many words name it."""
    name = words[i].rsplit("/", 1)[-1]
    if i + 1 < len(words) and f"{name} {words[i + 1]}" in WRAPPERS:
        return WRAPPERS[f"{name} {words[i + 1]}"], 2
    return (WRAPPERS[name], 1) if name in WRAPPERS else None


def _option_words(wrapper: _Wrapper, words: list[str], i: int) -> int | None:
    """How many words the option at ``words[i]`` uses (0: not an option, the wrapper's options end there);
    None for an option the table does not know."""
    w = words[i]
    if w == "--":
        return 1 if wrapper.dashdash else None
    if not w.startswith("-") or w == "-" and "-" not in wrapper.flags:
        return 0
    if w in wrapper.flags:
        return 1
    if w in wrapper.takes:
        return 2 if i + 1 < len(words) else None
    if w.startswith("--"):
        name = w.split("=", 1)[0]
        return 1 if "=" in w and (name in wrapper.takes or name in wrapper.optional) else None
    if wrapper.numeric and w[1:].isdigit():
        return 1
    for k in range(1, len(w)):  # a cluster of short options: -ac, -vv, -oL, -n5, -uNAME
        short = "-" + w[k]
        if short in wrapper.takes:
            return 1 if k + 1 < len(w) else 2 if i + 1 < len(words) else None
        if short not in wrapper.flags:
            return None
    return 1


def _past_wrapper(words: list[str], i: int) -> int | None:
    """The index of the command the wrapper at ``words[i]`` runs; None when it cannot be told."""
    found = _wrapper_at(words, i)
    if found is None:
        return None
    wrapper, i = found[0], i + found[1]
    while i < len(words):
        used = _option_words(wrapper, words, i)
        if used is None:
            return None
        if not used:
            break
        i += used
        if words[i - 1] == "--":
            break
    i += wrapper.positional
    while wrapper.assigns and i < len(words) and _ASSIGNMENT.match(words[i]):
        i += 1
    return i


def launch_words(words: list[str]) -> list[str]:
    """Words from where the command a line runs starts, past the wrappers that run it unchanged (``time``,
    ``exec``, ``env -u X A=1``, ``uv run --no-sync``, ``numactl -C 0-3``…: see :data:`WRAPPERS`). A wrapper
    with an option the table does not know stops there: its words are returned from it on, which start no
    launch. Empty when a wrapper runs nothing (``exec >log``, ``time`` alone)."""
    text = [str(w) for w in words]
    i = 0
    while i < len(text):
        after = _past_wrapper(text, i)
        if after is None:
            break
        i = after
    return list(words[i:])


def _wrapped_shell(chain: Chain) -> tuple[int, str] | None:
    """``bash -c 'SCRIPT'`` at the innermost layer → (index of the script word, script text)."""
    idx = shell_c_script([str(w) for w in chain.program])
    return (idx, chain.program[idx]) if idx is not None else None


#: the escapes bash removes inside double quotes (a backslash-newline is a line continuation); ``\$NAME`` is
#: kept, so that a reference each task expands reads as it does from a plain word (a literal ``\$`` there)
_DQ_ESCAPE = re.compile(r'\\([`"\\\n]|\$(?![A-Za-z_{]))')


def shell_script_text(value: str, *, keep_lines: bool = False) -> str | None:
    """The script ``bash -c`` receives from the word whose value is ``value``, or None when it cannot be told.

    A plain value is the text itself. A word kept verbatim because it holds ``$(…)`` or a backtick is read
    when it is one double-quoted string: its escapes removed, the rest as written (what the batch shell
    substitutes stays a reference, which is all a reader needs to know of it). ``$(…)`` reads the same whether
    the batch shell or each task runs it; a rule that must tell them apart looks at the word's source.
    With ``keep_lines`` a backslash-newline stays: the outer shell removes it, but it continues the line just
    the same in the script, whose lines then match the word's source line for line.
    """
    if not isinstance(value, Verbatim):
        return str(value)
    text = str(value)
    if not _one_double_quoted(text):
        return None
    return _DQ_ESCAPE.sub(lambda m: m.group(0) if keep_lines and m.group(1) == "\n"
                          else "" if m.group(1) == "\n" else m.group(1), text[1:-1])


def _one_double_quoted(text: str) -> bool:
    """Whether ``text`` is one double-quoted string (``"a $(b "c") d"``), not several pieces (``"a"$(b)"c"``)."""
    if len(text) < 2 or text[0] != '"':
        return False
    i, depth = 1, 0  # depth: open $( … ) inside the string, where quotes nest
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if text.startswith("$(", i):
            depth, i = depth + 1, i + 2
            continue
        if depth and c == ")":
            depth -= 1
        elif depth and c in "'\"":
            end = text.find(c, i + 1) if c == "'" else _closing_quote(text, i + 1)
            if end < 0:
                return False
            i = end
        elif not depth and c == '"':
            return i == len(text) - 1
        i += 1
    return False


def _closing_quote(text: str, start: int, quote: str = '"') -> int:
    """The index of the ``quote`` (``"`` or a backtick) that closes a string opened just before ``start`` (-1:
    none); a backslash escapes the character after it."""
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


def _step_for(cmd: Command, words: list[str], env: tuple[tuple[str, str], ...], in_compound: bool,
              wrappers: bool = False) -> Step | None:
    """The launch ``words`` start, or None. With ``wrappers``, a wrapper after srun or a container is read past
    (:func:`_through_wrappers`): what the linter checks; without, the step as a model can write it back."""
    launch = launch_words(words)
    tune = _tune_run(launch) if wrappers else None
    if tune is not None:
        return Step(cmd, tune, env, in_compound=in_compound, looked_through=("tune", "run"))
    module = python_module(launch) if wrappers and _runs_a_known_module(launch) else None
    if module is not None:
        launch = module[0]  # python -u -m torch.distributed.run: the launcher, its interpreter's options read past
    if not launch or recognise(launch) is None:
        legacy = _legacy_launcher(launch)
        if legacy is None:
            return None
        return Step(cmd, Chain(launcher=legacy.model, notes=legacy.notes), env, in_compound=in_compound)
    try:
        chain = parse_chain(launch, source_line=cmd.line)
    except ParseError:
        return None
    looked: tuple[str, ...] = module[1] if module is not None else ()
    if wrappers:
        chain, more = _through_wrappers(chain, cmd.line)
        looked += more
        # env NAME=value after srun sets NAME for what it runs, as NAME=value before the command would
        env += tuple((w.split("=", 1)[0], w.split("=", 1)[1]) for w in looked if _ASSIGNMENT.match(w))
    if chain.srun is None and chain.container is None and chain.launcher is None:
        return None  # apptainer pull/build …: a command, not a launch
    wrapper = _wrapped_shell(chain)
    if wrapper is not None and chain.launcher is None:
        idx, text = wrapper
        script = shell_script_text(text)
        try:
            inner = lex_script(script) if script is not None else None
        except ParseError:
            inner = None
        if inner is not None:
            for icmd in inner.code:
                ichain = _inner_chain(launch_words([str(v) for v in icmd.argv]), cmd.line)
                if ichain is None:
                    continue
                word = next((w for w in cmd.words if w.value == text), None)
                merged = Chain(chain.srun, chain.container or ichain.container, ichain.launcher,
                               ichain.program, chain.notes + ichain.notes)
                return Step(cmd, merged, env, "bash -c", word, in_compound, looked_through=looked)
    return Step(cmd, chain, env, in_compound=in_compound, looked_through=looked)


def _wrapped(program: tuple[Any, ...]) -> bool:
    """Whether a step's program starts with a wrapper :func:`_through_wrappers` may read past (or ``tune run``):
    only then is the step read again for the linter."""
    words = [str(w) for w in program[:2]]
    return bool(words) and (words[0] == "tune" or _wrapper_at(words, 0) is not None
                            or _runs_a_known_module(list(program)) or _script_wrapper([str(w) for w in program[:3]]) > 0)


def _runs_a_known_module(words: list[Any]) -> bool:
    """``python -u -m torch.distributed.run …``: a launch the models know once the interpreter's options are read
    past (see :func:`python_module`)."""
    module = python_module(words)
    return module is not None and recognise(module[0]) is not None


def _through_wrappers(chain: Chain, line: int) -> tuple[Chain, tuple[str, ...]]:
    """``chain`` read past the wrappers its program starts with when they run a container, a launcher or a
    ``bash -c`` script (``srun env -u X torchrun …``, ``srun uv run apptainer exec … torchrun``), and the
    wrapper words read past. A program that is none of these keeps its words: nothing is gained by reading
    past its wrapper, and the step stays one a fix can rebuild."""
    looked: tuple[str, ...] = ()
    while chain.launcher is None and chain.program:
        program = [str(w) for w in chain.program]
        tune = _tune_run(list(chain.program))
        if tune is not None:
            chain = replace(chain, launcher=tune.launcher, program=(), notes=chain.notes + tune.notes)
            return chain, looked + ("tune", "run")
        module = python_module(program) if _runs_a_known_module(program) else None
        if module is not None:
            inner = _inner_chain(module[0], line)  # python -u -m torch.distributed.run
            if inner is None or inner.srun is not None or (inner.container and chain.container):
                break
            chain = Chain(chain.srun, chain.container or inner.container, inner.launcher, inner.program,
                          chain.notes + inner.notes, chain.expanded + inner.expanded)
            looked += module[1]
            continue
        rest = launch_words(program)
        if len(rest) == len(program):
            rest = program[_script_wrapper(program):]
        if not rest or len(rest) == len(program):
            break
        words = list(chain.program[len(program) - len(rest):])
        inner = _inner_chain(words, line)
        if inner is not None and inner.srun is None and not (inner.container and chain.container):
            chain = Chain(chain.srun, chain.container or inner.container, inner.launcher, inner.program,
                          chain.notes + inner.notes, chain.expanded + inner.expanded)
        elif shell_c_script(rest) is not None:
            chain = replace(chain, program=tuple(words))
        else:
            break
        looked += tuple(program[:len(program) - len(rest)])
    return chain, looked


def _script_wrapper(program: list[str]) -> int:
    """How many words name a script of the user's that runs the command after it (``./select_gpu python …``,
    ``bash wrap.sh apptainer exec …``: a wrapper that sets a variable for its task, then ``exec "$@"``): a path to a
    file (``./x``, ``dir/x``, ``x.sh``), itself or after ``bash``/``sh``, followed by a word that is no option.
    0 for anything else. Only read past when the words after it start a launch the reader knows."""
    at = 1 if program and program[0].rsplit("/", 1)[-1] in ("bash", "sh") else 0
    if len(program) < at + 2:
        return 0
    script, after = program[at], program[at + 1]
    if script.startswith("-") or after.startswith("-") or not ("/" in script or script.endswith((".sh", ".bash"))):
        return 0
    return at + 1


def _inner_chain(words: list[str], line: int) -> Chain | None:
    """A launch read from a ``bash -c`` script: a command the reader knows, or the deprecated
    ``python -m torch.distributed.launch`` (read as torchrun, as at the top level, so that the rules about
    launchers per node, workers per GPU and node ranks see it there too); None for anything else. A launcher run
    through python with interpreter options (``python -u -m torch.distributed.run``) is read past them."""
    if _runs_a_known_module(words):
        words = python_module(words)[0]  # type: ignore[index]
    if words and recognise(words) is not None:
        try:
            return _through_wrappers(parse_chain(words, source_line=line), line)[0]
        except ParseError:
            return None
    legacy = _legacy_launcher(words)
    return _tune_run(words) if legacy is None else Chain(launcher=legacy.model, notes=legacy.notes)


#: CPython's options that take no value (``python -u``, clustered as ``-uB``), and those that take one (``-X dev``,
#: ``-Wignore``): none of them changes which module ``-m`` runs
_PYTHON_SWITCHES = frozenset("bBdEiIOPqRsSuvx")
_PYTHON_VALUED = frozenset("XW")


def python_module(words: list[Any]) -> tuple[list[Any], tuple[str, ...]] | None:
    """``python3.11 -u -X faulthandler -m MODULE ARGS`` as ``[python3, -m, MODULE, ARGS…]`` (the spelling the
    models know), with the words that were left out (the interpreter's options, and its name when it was not
    python or python3); None when ``words`` run no module, or when the interpreter is written plainly already."""
    if not words:
        return None
    name = str(words[0]).rsplit("/", 1)[-1]
    m = re.fullmatch(r"python(3?)(?:\.\d+)?", name)
    if m is None:
        return None
    plain = "python" + m.group(1)
    skipped: list[str] = [] if name == plain else [str(words[0])]
    i = 1
    while i < len(words):
        word = str(words[i])
        if word == "-m":
            module_at = i + 1
            break
        if word.startswith("--check-hash-based-pycs"):
            skipped += [word] if "=" in word else [word, str(words[i + 1]) if i + 1 < len(words) else ""]
            i += 1 if "=" in word else 2
            continue
        if not re.fullmatch(r"-[A-Za-z]+.*", word):
            return None  # a script, -c CODE, or an option CPython does not have
        letters, module_at = word[1:], None
        for k, c in enumerate(letters):
            if c == "m":  # -um torch.distributed.run, or -mtorch.distributed.run
                rest = letters[k + 1:]
                if k:
                    skipped.append("-" + letters[:k])
                if rest:
                    return [plain, "-m", rest, *words[i + 1:]], tuple(skipped)
                module_at = i + 1
                break
            if c in _PYTHON_VALUED:
                taken = 0 if letters[k + 1:] else 1
                skipped += [word] + [str(w) for w in words[i + 1:i + 1 + taken]]
                i += taken
                break
            if c not in _PYTHON_SWITCHES:
                return None
        else:
            skipped.append(word)
        if module_at is not None:
            break
        i += 1
    else:
        return None
    if module_at >= len(words) or not skipped:
        return None
    return [plain, "-m", *words[module_at:]], tuple(skipped)


def _legacy_launcher(words: list[str]) -> Any:
    """``python -m torch.distributed.launch …`` (deprecated) read as a torchrun launcher."""
    words = (python_module(words) or (words, ()))[0]
    if len(words) >= 3 and str(words[0]).split("/")[-1].startswith("python") and words[1] == "-m" \
            and words[2] in LEGACY_LAUNCH:
        try:
            parsed = parse_argv(["torchrun", *words[3:]])
        except ParseError:
            return None
        return type(parsed)(parsed.model, parsed.notes + ("python -m torch.distributed.launch is deprecated; use torchrun",))
    return None


def _tune_run(words: list[Any]) -> Chain | None:
    """torchtune's ``tune run [torchrun options] RECIPE …`` read as the torchrun launch it starts: it copies
    torchrun's own argument parser and calls ``torch.distributed.run.run`` (torchtune/_cli/run.py) when it is
    given more than one node or process per node (else it runs the recipe in one process). For the linter
    only: the model has no ``tune run``, and a fix would write ``torchrun`` in its place."""
    if [str(w) for w in words[:2]] != ["tune", "run"]:
        return None
    try:
        parsed = parse_argv(["torchrun", *words[2:]])
    except ParseError:
        return None
    model = parsed.model
    if str(model.nnodes or "1") in ("1", "1:1") and str(model.nproc_per_node or "1") == "1":
        return None
    return Chain(launcher=model, notes=parsed.notes)


def runs_in_a_shell(text: str) -> bool:
    """Whether sbatch runs the script with a shell hpcwidgets reads (bash, sh …: :data:`SHELL_INTERPRETERS`):
    a job script may be a Python, R, Julia or csh program whose ``#SBATCH`` lines are comments in its language."""
    return is_shell(shebang_program(text))


def directives_only(text: str) -> str:
    """A script in another language reduced to what sbatch reads of it: the ``#!`` line, its ``#SBATCH`` lines and
    other comments and blank lines in place, every other line a no-op ``:`` (sbatch stops reading ``#SBATCH``
    lines at the first of them, whatever the language), so line numbers stay those of the file."""
    lines = text.split("\n")
    return "\n".join(line if not line.strip() or line.lstrip().startswith("#") or k == 0 else ":"
                     for k, line in enumerate(lines))


#: a line that ends the batch shell's reading: exec of a program (not exec >log, which only redirects) or exit
_LAST_LINE = re.compile(r"(?:exec\s+(?![0-9]*[<>&])\S|exit\b)")


def branch_conditions(commands: Sequence[Command], offset: int,
                      read: dict[tuple[int, str], Any] | None = None) -> tuple[tuple[str, bool], ...]:
    """The conditions the command at ``offset`` (in the script) runs under, outermost first, each as
    ``(condition text, whether it must hold)``: those of the ``if`` branches around it (in a ``then`` branch its own
    condition holds and the earlier ones of its ``if`` do not; in the ``else`` none holds), those of the ``case``
    items around it (``case SUBJECT in PATTERNS``: its own item's patterns match, the earlier items' do not), and
    the command a list starts with before it (``TEST && command``: TEST holds; ``TEST || command``: it does not).
    ``commands``: the script's (``ParsedScript.lexed.commands``);
    ``read``: what was read of the compounds so far (their branches and bodies, by offset and text), for a caller
    that asks for many commands: each compound is then lexed once."""
    read = {} if read is None else read
    out: list[tuple[str, bool]] = []
    seen: set[tuple[int, str]] = set()
    while True:
        around = next((c for c in _compounds(commands) if c.offset <= offset < c.offset + len(c.text)), None)
        if around is None:
            return tuple(out + _list_condition(commands, offset))
        # by offset and text: a function's body ({ … }) starts where the function does, blanked header and all
        key = (around.offset, around.text)
        if key in seen:
            return tuple(out)  # (a body that gave back its compound unchanged would be walked for ever)
        seen.add(key)
        if key not in read:
            read[key] = (if_branches(around) or case_branches(around), compound_body(around))
        branches, commands = read[key]
        earlier: list[tuple[str, bool]] = []
        for condition, start, end in branches:
            if start <= offset < end:
                out += earlier + ([(condition, True)] if condition else [])
                break
            earlier.append((condition, False))


@remember_last
def _compounds(commands: Sequence[Command]) -> tuple[Command, ...]:
    """The compound commands of ``commands``."""
    return tuple(c for c in commands if c.kind == "compound")


@remember_last
def _offsets(commands: Sequence[Command]) -> tuple[list[int], bool]:
    """The offsets of ``commands``, and whether they rise (the script's do: a command is then found by halves)."""
    offsets = [c.offset for c in commands]
    return offsets, all(a <= b for a, b in zip(offsets, offsets[1:]))


def _index_at(commands: Sequence[Command], offset: int) -> int:
    """The index of the first command of ``commands`` at ``offset``; -1 when none is."""
    offsets, rising = _offsets(commands)
    if rising:
        at = bisect_left(offsets, offset)
        return at if at < len(offsets) and offsets[at] == offset else -1
    return next((k for k, o in enumerate(offsets) if o == offset), -1)


def _list_condition(commands: Sequence[Command], offset: int) -> list[tuple[str, bool]]:
    """``[(TEST, True)]`` for the command at ``offset`` where a list starts with TEST and ``&&`` joins it to the
    command (``[ "$SLURM_NNODES" -gt 1 ] && srun …``), ``[(TEST, False)]`` where ``||`` does; [] otherwise."""
    at = _index_at(commands, offset)
    if at <= 0:
        return []
    test = commands[at - 1]
    if test.joined_by not in ("&&", "||") or (at > 1 and commands[at - 2].joined_by in ("&&", "||", "|", "|&")):
        return []  # no list, or a longer one (A && B && step): its start is not the step's one condition
    condition = test.text.strip()[:-2].strip()
    return [(condition, test.joined_by == "&&")]


def reachable_text(text: str) -> str:
    """``text`` with the lines after a top-level ``exec PROGRAM`` or ``exit`` emptied (line numbers kept): bash never
    reads them. A script that runs itself with another interpreter keeps that program there (a Julia or Python
    job script behind a bash header: ``exec julia "${BASH_SOURCE[0]}"``). Only a line at the start of a line,
    outside any block or here-document, counts: the text up to it must read as complete shell code."""
    lines = text.split("\n")
    for k, line in enumerate(lines):
        if not _LAST_LINE.match(line) or k + 1 == len(lines) or not "".join(lines[k + 1:]).strip():
            continue
        try:
            lex_script("\n".join(lines[:k + 1]))
        except ParseError:
            continue  # inside an if, a loop or a here-document: not the end of the script
        return "\n".join(lines[:k + 1] + [""] * (len(lines) - k - 1))
    return text


def read_script(text: str, path: str = "") -> ParsedScript:
    """Read a job script. Only :class:`~hpcwidgets.errors.ParseError` is raised (with line and column)."""
    script = lex_script(text, path)
    first = first_command_line(script)
    values, directives, problems, placed = _read_directives(script, first)
    variables: list[Variable] = []
    modules: list[tuple[str, int]] = []
    steps: list[Step] = []
    split_steps: list[Step] = []   # the same, with launches held in variables read through them
    held_commands: list[HeldCommand] = []
    suppressed: dict[int, set[str]] = {}
    suppressed_file: set[str] = set()
    pending: set[str] = set()
    # what the script assigns: top-level (the script's own set-up) and inside an if, a loop or a function body
    branches: list[tuple[str, Any, int]] = []
    lines = text.split("\n")
    for cmd, in_compound in _walk(script.commands):
        if cmd.is_code and cmd.kind != "compound":
            if in_compound:
                branches += [(name, word.value, cmd.line) for name, word in cmd.assignments]
            else:
                variables += [Variable(name, word.value, cmd.line, cmd.name == "export",
                                       lines[word.line - 1][word.col - 3:word.col - 1] == "+=")
                              for name, word in cmd.assignments]

    for cmd, in_compound in _walk(script.commands):
        comment = cmd.comment or ""
        for m in _SUPPRESS.finditer(comment):
            codes = {c.strip() for c in m.group(2).split(",")}
            if m.group(1) == "disable-file":
                suppressed_file |= codes
            elif cmd.kind == "comment" or m.group(1) == "disable-next":
                pending |= codes
            else:
                for line in range(cmd.line, cmd.end_line + 1):
                    suppressed.setdefault(line, set()).update(codes)
        if not cmd.is_code and cmd.kind != "directive":
            continue
        if pending:  # the comment alone on the line before: for this command or #SBATCH line, and no later one
            for line in range(cmd.line, cmd.end_line + 1):
                suppressed.setdefault(line, set()).update(pending)
            pending = set()
        if not cmd.is_code:
            continue
        if cmd.kind == "compound":
            continue  # its commands come next, from _walk
        exported = cmd.name == "export"
        names = _module_names(cmd)
        # what a loop, an if or a function body sets is not the script's own top-level set-up (variables: above)
        if not in_compound and names is not None:
            modules += [(n, cmd.line) for n in names]
        if names is not None or not cmd.words:
            continue
        env = tuple((n, w.value) for n, w in cmd.assignments) if not exported else ()
        words = [_expansion(w, cmd.line, in_compound, variables, branches) for w in cmd.words]
        step = _step_for(cmd, words, env, in_compound)
        if step is not None:
            steps.append(step)
        split = _as_run(cmd, env, in_compound, variables, branches)
        if isinstance(split, HeldCommand):
            held_commands.append(split)
            split = None
        if split is None and (step is not None and step.chain.launcher is None and _wrapped(step.chain.program)
                              or step is None and ([str(w) for w in launch_words(words)[:2]] == ["tune", "run"]
                                                   or _runs_a_known_module(launch_words(words)))):
            split = _step_for(cmd, words, env, in_compound, wrappers=True)
        split = split or step
        if split is not None:
            split_steps.append(split)

    values["modules"] = tuple(n for n, _ in modules)
    job = SlurmJob(**values)
    return ParsedScript(text, path, script, job, tuple(directives), first, tuple(variables), tuple(modules),
                        tuple(steps), tuple(problems), {k: frozenset(v) for k, v in suppressed.items()},
                        frozenset(suppressed_file),
                        tuple(split_steps) if any(s.through or s.looked_through for s in split_steps) else None,
                        tuple(held_commands), _directive_comments(script, first, placed))


def _as_run(cmd: Command, env: tuple[tuple[str, str], ...], in_compound: bool, variables: list[Variable],
            branches: list[tuple[str, Any, int]]) -> Step | HeldCommand | None:
    """The command ``cmd`` as bash runs it, read through the variables that hold its words (see
    :func:`_read_through`): the step it starts, else the command's words as a :class:`HeldCommand` (a launcher
    the models do not read, such as ``accelerate launch``); None when no variable holds any of its words."""
    through = _read_through(cmd, in_compound, variables, branches)
    if through is None:
        return None
    seen, words, refs = through
    step = _step_for(seen, words, env, in_compound, wrappers=True)
    if step is None:
        return HeldCommand(cmd, tuple(words), in_compound, tuple(refs))
    return replace(step, through=tuple(refs))


def _walk(commands: tuple[Command, ...], inside: bool = False) -> Iterator[tuple[Command, bool]]:
    """Every command in source order, each compound followed by the commands of its body (loops,
    ifs, ``case`` items, ``{ … }``, subshells and function bodies, nested ones too), flagged as inside
    a compound: a launch there runs as well (a function's when it is called), so lint checks it.
    (The lexer bounds how deep blocks nest, which bounds this recursion.)"""
    for cmd in commands:
        yield cmd, inside
        if cmd.kind == "compound":
            yield from _walk(compound_body(cmd), True)


def read_command(text: str) -> Step:
    """One command line (continuations allowed) read as a launch step."""
    cmd = lex_command(text)
    step = _step_for(cmd, [w.value for w in cmd.words], tuple((n, w.value) for n, w in cmd.assignments), False)
    if step is None:
        raise ParseError("not a launch this reader knows (srun, apptainer/singularity exec|run|shell, ch-run, torchrun)",
                         cmd.line, cmd.col)
    return step
