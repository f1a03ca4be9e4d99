"""Job scripts a script writes in its own text and hands to sbatch: ``sbatch <<EOF … EOF`` (also after ``cat <<EOF |``
and inside ``JOBID=$(sbatch --parsable <<EOF …)``), ``cat > job.sh <<EOF … EOF`` followed by ``sbatch job.sh``, and
the ``#!/bin/sh`` script ``sbatch --wrap="…"`` makes. A driver that submits a sweep from a loop is written this way,
and its job script is the one that runs on the cluster.

:func:`submitted_scripts` finds them and :func:`job_text` gives the text sbatch reads (the options on sbatch's command
line included); :func:`lint` checks each as the job script it is, its findings at the driver's lines. The rules here
check what only the driver shows: what the submitting shell puts into a here-document before sbatch reads it
(HPC542), what it does not (HPC543), and a name it fills in that nothing sets (HPC544).

In a here-document with an unquoted delimiter (``<<EOF``) bash expands ``$NAME``, ``${…}``, ``$(…)`` and backticks
when the command runs, on the login node; ``\\$``, ``\\``` and ``\\\\`` stand for the character after the backslash
(bash(1), Here Documents). With a quoted delimiter (``<<'EOF'``) the lines reach sbatch as written.
"""

from __future__ import annotations

import dataclasses
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Iterator

from ..parse.lexer import compound_body
from ..parse.script import _closing_quote
from ..spec._words import Verbatim
from ..spec.slurm import SBATCH_SHORT, sbatch_long_option, sbatch_option
from . import Context, Fix, rule
from .catalogue import _Inner, _past_parens, cached

#: a name bash expands: $NAME or ${NAME…}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: variables only the job has: Slurm's own and the GPUs it gives a step
_JOB_VARIABLE = re.compile(r"SLURMD?_[A-Z0-9_]+|(?:CUDA|ROCR|HIP)_VISIBLE_DEVICES")
#: commands whose output describes the machine they run on or the job's allocation: in $(…) of an unquoted
#: here-document they run on the login node, when sbatch is called
_ASKS_THE_NODE = re.compile(r"\b(?:hostname|scontrol|nproc|nvidia-smi|rocm-smi|squeue|srun|lscpu|ip\s+(?:-\d\s+)?a"
                            r"|ifconfig|free)\b")


@dataclass(frozen=True)
class Submitted:
    """A job script written into a script's own text and submitted by an ``sbatch`` of that script."""

    sbatch_line: int        #: the line of the sbatch that submits it
    start: int              #: the first line of the here-document's body in the script
    body: str               #: the body as written
    expands: bool           #: an unquoted delimiter: the submitting shell expands ``$…`` in it
    strip_tabs: bool        #: ``<<-``: leading tabs are dropped
    doc_line: int = 0       #: the line of the here-document's operator (``<<EOF``)
    file: str = ""          #: the file ``cat > FILE`` writes it to ("" when sbatch reads it on its input)
    #: sbatch's own options on its command line (before the script), as written there: they override the script's
    options: tuple[Any, ...] = ()
    #: made by sbatch --wrap: a #!/bin/sh line and the command (:attr:`body` holds both; line 2 is the sbatch's)
    wrap: bool = False

    @property
    def where(self) -> str:
        """How the driver gives it to sbatch, for a finding's message."""
        if self.wrap:
            return f"the job script sbatch --wrap makes on line {self.sbatch_line}"
        if self.file:
            return f"the job script written to {self.file} on line {self.doc_line} and submitted on line " \
                   f"{self.sbatch_line}"
        return f"the job script sbatch reads from the here-document on line {self.doc_line}"


@dataclass(frozen=True)
class Expansion:
    """What the submitting shell replaces in an unquoted here-document: ``$NAME``/``${NAME…}`` (``kind`` "var"),
    ``$(…)`` or backticks ("command"), ``$((…))`` ("arithmetic"), ``$1``, ``$@`` … ("parameter")."""

    start: int              #: offset in the body
    end: int
    kind: str
    name: str = ""          #: the variable's name ("var"), or the command's text ("command")


def expansions(body: str) -> tuple[list[Expansion], list[int]]:
    """The expansions bash makes in an unquoted here-document ``body``, outermost only, and the offsets of the
    backslashes that only escape the character after them (``\\$``, ``\\```, ``\\\\``)."""
    found: list[Expansion] = []
    escapes: list[int] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == "\\" and i + 1 < n and body[i + 1] in "$`\\":
            escapes.append(i)
            i += 2
            continue
        if c == "`":
            close = _closing_quote(body, i + 1, "`")
            end = n if close < 0 else close + 1
            found.append(Expansion(i, end, "command", body[i + 1:end - 1]))
            i = end
            continue
        if c != "$" or i + 1 >= n:
            i += 1
            continue
        nxt = body[i + 1]
        if body.startswith("$((", i):
            end = _past_parens(body, i + 1)
            found.append(Expansion(i, end, "arithmetic", body[i + 3:end - 2]))
        elif nxt == "(":
            end = _past_parens(body, i + 1)
            found.append(Expansion(i, end, "command", body[i + 2:end - 1]))
        elif nxt == "{":
            close = body.find("}", i + 2)
            end = n if close < 0 else close + 1
            m = _NAME.match(body, i + 2)
            found.append(Expansion(i, end, "var" if m else "parameter", m.group() if m else ""))
        elif nxt.isdigit() or nxt in "@*#?$!-":
            end = i + 2
            found.append(Expansion(i, end, "parameter", nxt))
        else:
            m = _NAME.match(body, i + 1)
            if m is None:
                i += 1
                continue
            end = m.end()
            found.append(Expansion(i, end, "var", m.group()))
        i = end
    return found, escapes


def submitted_scripts(ctx: Context) -> tuple[Submitted, ...]:
    """Every job script ``ctx``'s script writes as a here-document and submits (see the module's docstring)."""
    return cached(ctx, "submitted", lambda: tuple(_find(ctx.parsed)))


def scripts_submitted_by(parsed: Any) -> tuple[Submitted, ...]:
    """Every job script the script ``parsed`` (a :class:`~hpcwidgets.parse.script.ParsedScript`) writes as a
    here-document and submits, outside lint (the command line's --from)."""
    return tuple(_find(parsed))


def _find(parsed: Any) -> Iterator[Submitted]:
    from .catalogue import _simple_commands
    from .directives import _submitted_script
    commands = [c for c in _simple_commands(parsed.lexed.code) if not isinstance(c, _Inner)]
    written: list[tuple[Any, Any, str]] = []   # (cat command, its here-document, the file it writes)
    for k, cmd in enumerate(commands):
        yield from _in_substitutions(parsed, cmd, written)
        doc = _stdin_heredoc(cmd)
        if _is_sbatch(cmd) and _wraps(cmd):
            wrapped = _wrapped(cmd)
            if wrapped is not None:
                yield wrapped
            continue
        if _is_sbatch(cmd):
            if doc is not None and _submitted_script(list(cmd.words)) is None and not _wraps(cmd):
                yield _submitted(parsed, cmd, doc)
                continue
            yield from _written_and_submitted(parsed, cmd, written)
            continue
        if doc is None or str(cmd.name).rsplit("/", 1)[-1] not in ("cat", "tee"):
            continue
        if cmd.joined_by == "|" and k + 1 < len(commands) and _is_sbatch(commands[k + 1]) \
                and _submitted_script(list(commands[k + 1].words)) is None and not _wraps(commands[k + 1]):
            yield _submitted(parsed, commands[k + 1], doc)
            continue
        out = _written_file(cmd)
        if out is not None:
            written.append((cmd, doc, parsed.resolve(out, cmd.line)))


#: a command substitution that runs sbatch: JOBID=$(sbatch --parsable <<EOF … EOF), the usual way to keep the job's id
_SBATCH_IN_SUBSTITUTION = re.compile(r"\$\(\s*(?:\S*/)?sbatch\b")


def _written_and_submitted(parsed: Any, sbatch: Any, written: list[tuple[Any, Any, str]], line: int = 0
                           ) -> Iterator[Submitted]:
    """The job script an ``sbatch FILE`` submits when the driver wrote FILE with ``cat > FILE <<EOF`` before it (the
    last such write)."""
    from .directives import _submitted_script
    found = _submitted_script(list(sbatch.words))
    if found is None:
        return
    target = parsed.resolve(str(found[0].value), line or sbatch.line)
    for _cat, doc, file in reversed(written):
        if file == target:
            yield _submitted(parsed, sbatch, doc, found[0].raw, line)
            return


def _in_substitutions(parsed: Any, cmd: Any, written: list[tuple[Any, Any, str]]) -> Iterator[Submitted]:
    """The job scripts an sbatch inside a ``$(…)`` of ``cmd``'s words or assignments submits: its here-document, or
    a file the driver wrote before (``JOBID=$(sbatch --parsable job.sh)``)."""
    from ..errors import ParseError
    from ..parse.lexer import lex_script
    from .directives import _submitted_script
    for word in [*cmd.words, *(w for _, w in cmd.assignments)]:
        m = _SBATCH_IN_SUBSTITUTION.search(word.raw)
        if m is None:
            continue
        inner = word.raw[m.start() + 2:word.raw.rfind(")")]
        try:
            code = lex_script(inner).code
        except ParseError:
            continue
        above = word.line - 1 + word.raw.count("\n", 0, m.start())  # the lines above the substitution's first
        for inner_cmd in code:
            if inner_cmd.kind != "simple" or not _is_sbatch(inner_cmd):
                continue
            doc = _stdin_heredoc(inner_cmd)
            if doc is not None and _submitted_script(list(inner_cmd.words)) is None and not _wraps(inner_cmd):
                yield _submitted(parsed, inner_cmd, dataclasses.replace(doc, line=above + doc.line),
                                 line=above + inner_cmd.line)
            elif doc is None:
                yield from _written_and_submitted(parsed, inner_cmd, written, above + inner_cmd.line)


def _is_sbatch(cmd: Any) -> bool:
    return bool(cmd.words) and str(cmd.name).rsplit("/", 1)[-1] == "sbatch"


def _wraps(cmd: Any) -> bool:
    return any(str(w.value) == "--wrap" or str(w.value).startswith("--wrap=") for w in cmd.words)


def _wrapped(cmd: Any) -> Submitted | None:
    """The job script ``sbatch --wrap=COMMAND`` makes (``#!/bin/sh`` and the command), as an unquoted here-document
    would give it: what the submitting shell expands in the command's text (inside double quotes or none) is
    filled in then, and a ``$`` written in single quotes reaches the job."""
    words = list(cmd.words)
    for k, word in enumerate(words):
        text = str(word.value)
        if text.startswith("--wrap="):
            value, raw = text[len("--wrap="):], word.raw[len("--wrap="):]
        elif text == "--wrap" and k + 1 < len(words):
            value, raw = str(words[k + 1].value), words[k + 1].raw
        else:
            continue
        held = words[k + 1] if text == "--wrap" else word
        if isinstance(held.value, Verbatim):  # "…$(hostname)…": as written, for the expansions the driver makes
            value = raw[1:-1] if len(raw) > 1 and raw[0] == raw[-1] == '"' else raw
        return Submitted(cmd.line, cmd.line - 1, f"#!/bin/sh\n{value}\n", True, False, cmd.line,
                         options=tuple(words[1:]), wrap=True)
    return None


def _stdin_heredoc(cmd: Any) -> Any:
    """The here-document on ``cmd``'s standard input (the last one given, as bash reads), or None."""
    doc = None
    for r in cmd.redirects:
        if r.op in ("<<", "<<-") and r.fd in (None, 0) and r.heredoc is not None:
            doc = r
        elif r.op in ("<", "<<<") and r.fd in (None, 0):
            doc = None
    return doc


def _written_file(cmd: Any) -> str | None:
    """The file ``cat > FILE`` (or ``tee FILE``) writes, as written; None when it writes none."""
    out = None
    for r in cmd.redirects:
        if r.op in (">", ">|") and r.fd in (None, 1):
            out = str(r.target.value)
    if str(cmd.name).rsplit("/", 1)[-1] == "tee":
        files = [str(w.value) for w in cmd.words[1:] if not str(w.value).startswith("-")]
        out = files[0] if len(files) == 1 else out
    return out


def _submitted(parsed: Any, sbatch: Any, doc: Any, file: str = "", line: int = 0) -> Submitted:
    """The job script ``doc``'s body is, submitted by the sbatch command ``sbatch`` (at ``line`` when given: an sbatch
    read from a command substitution counts its lines from there)."""
    source = parsed.source
    starts = _line_starts(source)
    # the body is an exact slice of the script, below the line of its operator (an empty one: right below it)
    below = starts[min(doc.line, len(starts) - 1)]
    first = bisect_right(starts, source.find(doc.heredoc, below)) if doc.heredoc else doc.line + 1
    words = list(sbatch.words[1:])
    if file:
        words = words[:next((k for k, w in enumerate(words) if w.raw == file), len(words))]
    return Submitted(line or sbatch.line, first, doc.heredoc, doc.expands, doc.op == "<<-", doc.line, file,
                     tuple(words))


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    return starts


def loop_values(parsed: Any, line: int) -> dict[str, str | None]:
    """For each ``for NAME in WORDS`` loop around ``line``, its variable and the first value it takes: the first
    element of an array the script assigns (``for lr in "${lrs[@]}"``), None when it is not known (``$(seq 1 4)``,
    ``$@``, an array the script does not set)."""
    values: dict[str, str | None] = {}

    def walk(commands: Any) -> None:
        for cmd in commands:
            if cmd.kind != "compound" or not cmd.line <= line <= cmd.end_line:
                continue
            words = [str(w.value) for w in cmd.words]
            if len(words) > 3 and words[0] == "for" and words[2] == "in" and words[3] != "do" \
                    and _NAME.fullmatch(words[1]):
                values[words[1]] = _first_item(parsed, cmd.words[3], cmd.line)
            walk(compound_body(cmd))
    walk(parsed.lexed.code)
    return values


#: a whole array: ${NAME[@]} or ${NAME[*]} (quoted or not)
_WHOLE_ARRAY = re.compile(r'"?\$\{([A-Za-z_][A-Za-z0-9_]*)\[[@*]\]\}"?')


def _first_item(parsed: Any, word: Any, line: int) -> str | None:
    """The first value a ``for`` loop's first word gives its variable, None when lint cannot tell."""
    from ..parse.script import _array_elements
    if "$" not in word.raw and "`" not in word.raw and not any(c in word.raw for c in "*?[{"):
        return str(word.value)
    m = _WHOLE_ARRAY.fullmatch(word.raw)
    var = parsed.variable(m.group(1), before=line) if m else None
    items = _array_elements(var.value) if var is not None and not var.appended else None
    return items[0] if items and "$" not in items[0] and "`" not in items[0] else None


@dataclass(frozen=True)
class JobText:
    """A submitted job script as sbatch reads it (see :func:`job_text`), and where its lines are in the driver."""

    text: str
    #: lines of ``text`` whose #SBATCH value the driver fills in with something lint cannot know
    unknown: frozenset[int]
    #: the lines ``text`` has from sbatch's command line: ``count`` of them below line ``after``
    after: int = 0
    count: int = 0

    def from_options(self, line: int) -> bool:
        """Whether ``line`` of :attr:`text` holds an option given on sbatch's command line."""
        return self.after < line <= self.after + self.count

    def body_line(self, line: int) -> int:
        """The line of the here-document's body that ``line`` of :attr:`text` is (an option's line: the one above)."""
        return line if line <= self.after else max(line - self.count, self.after)


#: sbatch options that change how sbatch runs, not the job: left out of the job script lint reads
_CLIENT_OPTIONS = frozenset({"--parsable", "--wait", "--test-only", "--quiet", "--verbose", "--wrap", "--help",
                             "--usage", "--version"})


def job_text(parsed: Any, sub: Submitted) -> JobText:
    """The job script as sbatch reads it, as far as the driver tells: with tabs stripped for ``<<-``, and in an
    unquoted here-document the escapes undone and each variable the driver sets (or a ``for`` loop around the
    sbatch runs over, by its first value) put in. The options on sbatch's command line, which override the
    script's, are written as #SBATCH lines below the script's own (whose lines for the same options become blank
    comments). Also the ``#SBATCH`` lines that keep an expansion whose value the driver does not tell (``$1``,
    ``$(date)``, a variable set elsewhere): sbatch reads a value there that lint cannot know."""
    body = sub.body
    if sub.strip_tabs:
        body = "\n".join(line.lstrip("\t") for line in body.split("\n"))
    unknown: set[int] = set()
    if sub.expands:
        found, escapes = expansions(body)
        loops = loop_values(parsed, sub.sbatch_line)
        edits: list[tuple[int, int, str]] = [(at, at + 1, "") for at in escapes]
        for e in found:
            value = _driver_value(parsed, sub, loops, e)
            if value is None:
                if _directive_at(body, e.start):
                    unknown.add(body.count("\n", 0, e.start) + 1)
            elif "\n" not in value:
                edits.append((e.start, e.end, value))
        out = []
        at = 0
        for start, end, text in sorted(edits):
            out.append(body[at:start])
            out.append(text)
            at = end
        out.append(body[at:])
        body = "".join(out)
    given, given_unknown = _command_line_directives(parsed, sub)
    if not given:
        return JobText(body, frozenset(unknown))
    lines = body.split("\n")
    head = _directive_block_end(lines)
    for k in range(head):
        words = lines[k].split()
        if len(words) > 1 and words[0] == "#SBATCH" and _long(words[1]) in {_long(g.split()[1]) for g in given}:
            lines[k] = "#"  # overridden by the command line: sbatch reads the command line's value
    lines[head:head] = given
    moved = {line + len(given) if line > head else line for line in unknown}
    return JobText("\n".join(lines), frozenset(moved | {head + k + 1 for k in given_unknown}), head, len(given))


def _long(word: str) -> str:
    flag = word.split("=", 1)[0]
    return SBATCH_SHORT.get(flag[:2], "") if not flag.startswith("--") else sbatch_long_option(flag) or flag


def _command_line_directives(parsed: Any, sub: Submitted) -> tuple[list[str], set[int]]:
    """sbatch's command-line options as #SBATCH lines, with the driver's values put in, and the indexes of those
    whose value the driver does not tell."""
    from .directives import sbatch_command_options
    out: list[str] = []
    unknown: set[int] = set()
    loops = loop_values(parsed, sub.sbatch_line)
    options, _ = sbatch_command_options([str(w.value) for w in sub.options])
    for flag, value in options:
        if _long(flag) in _CLIENT_OPTIONS or not sbatch_option(flag):
            continue
        if value is not None:
            value, known = _filled(parsed, sub, loops, value)
            if not known:
                unknown.add(len(out))
        out.append(f"#SBATCH {flag}{('=' if flag.startswith('--') else ' ') + value if value is not None else ''}")
    return out, unknown


def _filled(parsed: Any, sub: Submitted, loops: dict[str, str | None], value: str) -> tuple[str, bool]:
    """``value`` (a word of the driver's, as its shell gives it to sbatch) with the driver's values put in, and
    whether every one was known."""
    found, _ = expansions(value)
    known = True
    for e in reversed(found):
        filled = _driver_value(parsed, sub, loops, e)
        if filled is None:
            known = False
        else:
            value = value[:e.start] + filled + value[e.end:]
    return value, known


def _directive_block_end(lines: list[str]) -> int:
    """The number of lines of the script's head: its #! line and the comments (#SBATCH lines among them) and blank
    lines up to the last #SBATCH line before the first command (1 when it has none: below the #! line)."""
    last = 1 if lines and lines[0].startswith("#!") else 0
    for k, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            last = k + 1
    return last


def _directive_at(body: str, at: int) -> bool:
    """Whether offset ``at`` of ``body`` is on an ``#SBATCH`` line."""
    return body[body.rfind("\n", 0, at) + 1:at].lstrip(" \t").startswith("#SBATCH")


def _driver_value(parsed: Any, sub: Submitted, loops: dict[str, str], e: Expansion) -> str | None:
    """The value the submitting shell gives expansion ``e``, when the driver tells it; else None."""
    if e.kind != "var" or e.end - e.start not in (len(e.name) + 1, len(e.name) + 3):
        return None  # ${X:-default}, ${X/a/b}: a value worked out from it
    if e.name in loops:
        return loops[e.name]
    value = parsed.resolve("${%s}" % e.name, sub.sbatch_line)
    if value == "${%s}" % e.name:
        return None
    # what is left must be references to the environment ($HOME, $SCRATCH), the same on the login node and in the
    # job: not a variable the driver sets itself (X=${X:-default}, a value lint could not follow), nor one with a
    # default or another modifier
    refs, _ = expansions(value)
    plain = all(r.kind == "var" and value[r.start:r.end] in ("$" + r.name, "${%s}" % r.name) and
                not _JOB_VARIABLE.fullmatch(r.name) and parsed.variable(r.name) is None and r.name not in loops
                for r in refs)
    return value if plain else None


# --------------------------------------------------------------------------------------------
# the rules

@rule("HPC542", "expanded-when-submitted", "error",
      summary="a here-document handed to sbatch expands, when sbatch is called, a variable or command only the job "
              "can know ($SLURM_JOB_NODELIST, $(hostname), a variable the job script sets)",
      why="In sbatch <<EOF (or cat > job.sh <<EOF before sbatch job.sh) the delimiter is not quoted, so the "
          "submitting shell expands $NAME, ${…}, $(…) and backticks in the lines before sbatch reads them: on the "
          "login node, before the job exists. $SLURM_JOB_NODELIST and the other job variables are empty there, "
          "$(hostname) or $(scontrol show hostnames …) give the login node's answer, and a variable the job script "
          "sets itself (MASTER_ADDR=…, then --rdzv-endpoint=$MASTER_ADDR:29500) is replaced by the submitting "
          "shell's value, usually nothing, before the line that sets it ever runs. The job then starts with an "
          "empty rendezvous host, a wrong rank or the login node's name, and fails or hangs far from the cause. "
          "Not reported for a variable the driver sets or loops over (that is what the unquoted delimiter is for); "
          "in a driver that is itself a batch job, only for variables the job script sets.",
      fix="Write a backslash before each $ (and backtick) the job should expand: \\$SLURM_JOB_NODELIST, "
          "\\$(hostname), \\$MASTER_ADDR; the fix does so for the line. Or quote the delimiter (<<'EOF') when "
          "nothing in the job script needs the driver's values, and pass those it does need with sbatch "
          "--export=ALL,LR=$lr.",
      bad="""#!/bin/bash
for lr in 0.1 0.01; do
sbatch <<EOF
#!/bin/bash
#SBATCH --nodes=2
#SBATCH --time=01:00:00
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=$head:29500 train.py --lr $lr
EOF
done
""",
      good="""#!/bin/bash
for lr in 0.1 0.01; do
sbatch <<EOF
#!/bin/bash
#SBATCH --nodes=2
#SBATCH --time=01:00:00
head=\\$(scontrol show hostnames "\\$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=\\$head:29500 train.py --lr $lr
EOF
done
""")
def _expanded_when_submitted(ctx: Context) -> Iterator[Any]:
    in_a_job = bool(ctx.parsed.directives)
    for sub in submitted_scripts(ctx):
        if not sub.expands:
            continue
        found, _ = expansions(sub.body)
        loops = loop_values(ctx.parsed, sub.sbatch_line)
        assigned = _assigned_in(sub.body)
        early: dict[int, list[tuple[Expansion, str]]] = {}
        for e in found:
            reason = _too_early(ctx, sub, loops, assigned, in_a_job, e)
            if reason:
                early.setdefault(sub.body.count("\n", 0, e.start) + 1, []).append((e, reason))
        lines = sub.body.split("\n")
        for at, items in sorted(early.items()):
            shown = [sub.body[e.start:e.end] for e, _ in items]
            what = ", ".join(f"{_short(text)} ({reason})" for text, (_, reason) in zip(shown, items))
            one = len(items) == 1
            message = (f"{what} in {sub.where} {'is' if one else 'are'} filled in by the submitting shell when sbatch "
                       f"is called, before the job runs; write {', '.join(_short(_escaped(t), 100) for t in shown)} so "
                       f"the job's shell expands {'it' if one else 'them'}")
            yield sub.start + at - 1, message, _escape_fix(sub, lines, at, items)


def _short(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[:most - 3] + "…" + text[-1]


def _too_early(ctx: Context, sub: Submitted, loops: dict[str, str | None], assigned: dict[str, int], in_a_job: bool,
               e: Expansion) -> str:
    """Why the job needs ``e``'s value, which the submitting shell puts in too early ("" when it does not)."""
    if e.kind == "var":
        if e.name in loops or ctx.parsed.variable(e.name, before=sub.sbatch_line) is not None:
            return ""  # the driver's own value: what the unquoted delimiter is for
        at = sub.body.count("\n", 0, e.start) + 1
        if e.name in assigned and assigned[e.name] < at:
            # (on its own line, export X="${X}" hands the driver's value on: meant)
            return f"the job script sets it on line {sub.start + assigned[e.name] - 1}"
        if not in_a_job and _JOB_VARIABLE.fullmatch(e.name):
            return "Slurm sets it in the job; the login node has none"
        return ""
    if e.kind == "command" and not in_a_job:
        inner, _ = expansions(e.name)
        if _ASKS_THE_NODE.search(e.name) or any(i.kind == "var" and (_JOB_VARIABLE.fullmatch(i.name) or
                                                                     i.name in assigned) for i in inner):
            return "the command runs on the login node"
    return ""


#: an assignment at the start of a line of the job script, also after export/declare/local/readonly
_ASSIGNED = re.compile(r"^[ \t]*(?:(?:export|declare|typeset|local|readonly)(?:[ \t]+-\w+)*[ \t]+)?"
                       r"([A-Za-z_][A-Za-z0-9_]*)\+?=", re.M)


def _assigned_in(body: str) -> dict[str, int]:
    """The variables the job script in ``body`` sets, each with the (1-based) line of its first assignment. A line
    that continues the one before (after a backslash) starts no command: ``tau=0.1`` there is an argument."""
    out: dict[str, int] = {}
    lines = body.split("\n")
    for pattern in (_ASSIGNED, _LOOP_OR_READ):
        for m in pattern.finditer(body):
            at = body.count("\n", 0, m.start(1)) + 1
            if at > 1 and lines[at - 2].endswith("\\"):
                continue
            out[m.group(1)] = min(out.get(m.group(1), at), at)
    return out


_LOOP_OR_READ = re.compile(r"^[ \t]*(?:for|read(?:[ \t]+-\w+)*)[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)


def _escaped(text: str) -> str:
    """``text`` (an expansion as written in an unquoted here-document) with a backslash before each ``$`` and
    backtick that is not escaped yet: what the job's shell should see as written."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "$`\\":
            out.append(text[i:i + 2])
            i += 2
            continue
        out.append("\\" + c if c in "$`" else c)
        i += 1
    return "".join(out)


def _escape_fix(sub: Submitted, lines: list[str], at: int, items: list[tuple[Expansion, str]]) -> Fix | None:
    """The line ``at`` of ``sub``'s body with each expansion of ``items`` escaped; None when one runs past it."""
    begin = sum(len(line) + 1 for line in lines[:at - 1])
    text = lines[at - 1]
    if sub.wrap or any(e.end - begin > len(text) for e, _ in items):
        return None  # (the line of an sbatch --wrap holds more than the command)
    for e, _ in sorted(items, key=lambda item: -item[0].start):
        s, t = e.start - begin, e.end - begin
        text = text[:s] + _escaped(text[s:t]) + text[t:]
    line = sub.start + at - 1
    return Fix("write a backslash before each $ the job should expand", line, line, text=text)


@rule("HPC543", "driver-value-not-in-quoted-heredoc", "error",
      summary="a here-document handed to sbatch has a quoted delimiter (<<'EOF'), yet uses a variable of the "
              "submitting script ($lr of its loop) that the job never gets",
      why="With a quoted delimiter (<<'EOF', <<\"EOF\", <<\\EOF) the lines reach sbatch as written: $lr stays the "
          "text $lr, and the job's own shell expands it. The job gets the submitting shell's environment (sbatch "
          "passes it on unless told otherwise) but not its unexported variables, and a for loop's variable or a "
          "plain NAME=value is not exported. So every job of the sweep runs with an empty $lr, which the program "
          "takes as its default or refuses, and the jobs differ only in name.",
      fix="Pass the value on: sbatch --export=ALL,lr=$lr <<'EOF' (or export lr before sbatch). Or unquote the "
          "delimiter (<<EOF) so the submitting shell fills it in, and then write \\$ before each $ the job "
          "should expand itself (HPC542 reports those).",
      bad="""#!/bin/bash
for lr in 0.1 0.01; do
sbatch <<'EOF'
#!/bin/bash
#SBATCH --time=01:00:00
srun python train.py --lr "$lr"
EOF
done
""",
      good="""#!/bin/bash
for lr in 0.1 0.01; do
sbatch --export=ALL,lr="$lr" <<'EOF'
#!/bin/bash
#SBATCH --time=01:00:00
srun python train.py --lr "$lr"
EOF
done
""")
def _driver_value_not_passed(ctx: Context) -> Iterator[Any]:
    for sub in submitted_scripts(ctx):
        if sub.expands:
            continue
        loops = loop_values(ctx.parsed, sub.sbatch_line)
        assigned = _assigned_in(sub.body)
        passed, environment = _passed_names(ctx, sub)
        seen: set[str] = set()
        found, _ = expansions(sub.body)
        for e in found:
            if e.kind != "var" or e.name in assigned or e.name in passed or e.name in seen:
                continue
            if e.name in loops:
                what = f"the loop variable of the submitting script (for {e.name} in …)"
            else:
                var = ctx.parsed.variable(e.name, before=sub.sbatch_line)
                exported = _exported(ctx, e.name, sub.sbatch_line)
                if var is None or exported and environment:
                    continue
                what = f"set by the submitting script on line {var.line}" + \
                    (", and sbatch's --export does not pass it" if exported else " and not exported")
            seen.add(e.name)
            yield (sub.start + sub.body.count("\n", 0, e.start),
                   f"${e.name} in {sub.where} is {what}, but the delimiter is quoted, so the job script gets the "
                   f"text ${e.name} and the job's shell, which has no {e.name}, expands it to nothing; pass it on: "
                   f"sbatch --export=ALL,{e.name}=\"${e.name}\" (or export {e.name} before sbatch)")


def _passed_names(ctx: Context, sub: Submitted) -> tuple[set[str], bool]:
    """The variables the sbatch of ``sub`` passes to the job by name (``--export=ALL,lr=$lr``, ``--export=lr``), and
    whether it passes the submitting shell's environment too (no --export, or one with ALL)."""
    from .catalogue import _simple_commands
    names: set[str] = set()
    environment = True
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if isinstance(cmd, _Inner) or cmd.line != sub.sbatch_line or not _is_sbatch(cmd):
            continue
        words = [str(w.value) for w in cmd.words]
        for k, word in enumerate(words):
            value = word.partition("=")[2] if word.startswith("--export=") else \
                words[k + 1] if word == "--export" and k + 1 < len(words) else ""
            if value:
                items = {item.partition("=")[0] for item in value.split(",") if item}
                names |= items
                environment = "ALL" in items
    return names, environment


def _exported(ctx: Context, name: str, before: int) -> bool:
    """Whether ``name`` is in the environment of the commands before line ``before``: assigned with export, named
    by an ``export NAME`` or ``declare -x``, or set after ``set -a``."""
    from .catalogue import _simple_commands
    var = ctx.parsed.variable(name, before=before)
    if var is not None and var.exported:
        return True
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if isinstance(cmd, _Inner) or cmd.line >= before or not cmd.words:
            continue
        words = [str(w.value) for w in cmd.words]
        if words[0] == "export" and name in (w.partition("=")[0] for w in words[1:]):
            return True
        if words[0] in ("declare", "typeset") and any(w.startswith("-") and "x" in w for w in words[1:]) \
                and name in (w.partition("=")[0] for w in words[1:]):
            return True
        if words[0] == "set" and any(w in ("-a", "-o") for w in words[1:]) and \
                ("-a" in words or "allexport" in words):
            return True
    return False


@rule("HPC544", "driver-variable-never-set", "warning",
      summary="a here-document handed to sbatch uses a lower-case variable that nothing in the submitting script "
              "sets ($task where the loop's variable is task_i)",
      why="In sbatch <<EOF the submitting shell fills in $name before sbatch reads the job script. A name the script "
          "never sets (a loop variable spelt another way, an assignment forgotten or made in another script) is "
          "filled in as nothing: the job runs with --job-name=train-, an empty --lr or an output folder of its "
          "parent, and all jobs of a sweep run the same thing or write over each other. Reported for lower-case "
          "names only (upper-case ones are usually the environment's: $SCRATCH, $WORK) that nothing in the script "
          "sets: no assignment, for, read, getopts, local, declare or export.",
      fix="Use the variable the script sets (the loop's own: ${task_i}), set it before sbatch, or write \\$name if "
          "the job script sets it itself.",
      bad="""#!/bin/bash
for task_i in door drawer; do
sbatch <<EOF
#!/bin/bash
#SBATCH --job-name=train-${task}
#SBATCH --time=01:00:00
srun python main.py env_name=${task_i}
EOF
done
""",
      good="""#!/bin/bash
for task_i in door drawer; do
sbatch <<EOF
#!/bin/bash
#SBATCH --job-name=train-${task_i}
#SBATCH --time=01:00:00
srun python main.py env_name=${task_i}
EOF
done
""")
def _driver_variable_never_set(ctx: Context) -> Iterator[Any]:
    for sub in submitted_scripts(ctx):
        if not sub.expands:
            continue
        found, _ = expansions(sub.body)
        outside = _outside_bodies(ctx)
        assigned = _assigned_in(sub.body)
        seen: set[str] = set()
        for e in found:
            if e.kind != "var" or e.name in seen or e.name.isupper() or not any(c.islower() for c in e.name) \
                    or e.name in assigned or _set_in(outside, e.name):
                continue
            seen.add(e.name)
            yield (sub.start + sub.body.count("\n", 0, e.start),
                   f"${e.name} in {sub.where} is filled in by the submitting shell, and nothing in this script sets "
                   f"{e.name}: the job gets nothing in its place; use the variable the script sets"
                   f"{_near(e.name, outside)}, or set {e.name} before sbatch")


def _outside_bodies(ctx: Context) -> str:
    """The script's text without the bodies of the here-documents it submits (where a job sets its own names)."""
    def make() -> str:
        text = ctx.parsed.source
        for sub in submitted_scripts(ctx):
            text = text.replace(sub.body, "", 1)
        return text
    return cached(ctx, "outside_bodies", make)


def _set_in(text: str, name: str) -> bool:
    """Whether shell ``text`` sets ``name``: an assignment, or a for, read, getopts, local, declare, typeset, export
    or readonly naming it."""
    return bool(re.search(rf"(?<![\w$]){re.escape(name)}\+?=|(?<![\w$])(?:for|read|getopts|local|declare|typeset|"
                          rf"export|readonly|mapfile|readarray)\b[^\n;&|]*(?<![\w$]){re.escape(name)}\b", text))


def _near(name: str, text: str) -> str:
    """`` (task_i?)``: a name the script sets that looks like ``name`` ("" when none does)."""
    import difflib
    names = set(re.findall(r"(?<![\w$])([A-Za-z_][A-Za-z0-9_]*)\+?=", text))
    names |= set(re.findall(r"\bfor\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b", text))
    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    return f" (${{{close[0]}}}?)" if close else ""
