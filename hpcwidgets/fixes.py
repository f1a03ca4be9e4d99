"""Apply the linter's mechanical fixes to script text.

Fixes are data (:class:`hpcwidgets.lint.Fix`); turning them into text needs the quoting contract,
so it lives here, above both the linter and the renderer. Fixes are applied one rule at a time and the
script is linted again after each round, so overlapping fixes (two rules on one step) compose.

A fix that only adds options to a step (``--nv``) comes as its line with them inserted (``Fix.text``, see
:func:`hpcwidgets.lint.catalogue.insertion_fix`): those words are plain or double-quoted ``$NAME`` text, which the
linter reads back before it offers the fix, so no quoting is needed here, and the rest of the line stays as written.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from .lint import Finding, Fix, lint
from .render.command import wrap
from .render.quote import quote

MAX_ROUNDS = 25


def fix_text(fix: Fix, indent: str = "", one_line: bool = False) -> str:
    """The replacement lines for one fix (no trailing newline); with ``one_line`` the command stays on one
    line however long (a command the user wrote on one line keeps that layout)."""
    if fix.text is not None:
        return fix.text
    env = []
    words = list(fix.words)
    while words and "=" in words[0] and words[0].split("=", 1)[0].isidentifier() and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        env.append(f"{name}={quote(value)}")
    quoted = env + [quote(w) for w in words]
    body = " ".join(quoted) if one_line else wrap(quoted, group_starts=set(fix.groups), indent=indent + "  ")
    lines = [indent + line for line in fix.before] + [indent + body]
    return "\n".join(lines)


def apply_fix(text: str, fix: Fix) -> str:
    """``text`` with lines ``fix.start``–``fix.end`` replaced by the fix (ValueError when they do not exist)."""
    lines = text.split("\n")
    start, end = fix.start - 1, fix.end - 1
    if not (0 <= start <= end < len(lines)):
        raise ValueError(f"fix for lines {fix.start}-{fix.end} does not fit a {len(lines)}-line script")
    first = lines[start]
    indent = first[: len(first) - len(first.lstrip())]
    replacement = fix_text(fix, indent, one_line=start == end).split("\n")
    if fix.cols != (0, 0) and fix.text is None:
        # only the command's own words change: what precedes them on the first line (exec, cd x &&) and
        # follows them on the last (> log 2>&1, | tee log, a comment) stays as written
        head, tail = first[: fix.cols[0] - 1], lines[end][fix.cols[1] - 1:]
        body = len(fix.before)  # the command's first line comes after the inserted ones
        replacement[body] = head + replacement[body][len(indent):]
        replacement[-1] += tail
        return "\n".join(lines[:start] + replacement + lines[end + 1:])
    # keep a trailing comment of the last line (e.g. a '# hpcw: disable=' suppression) on the new last line
    comment = _trailing_comment(text, fix.start, fix.end)
    if comment and not any(comment in line for line in replacement):  # not when the fix kept it (HPC519)
        replacement[-1] = f"{replacement[-1]}  {comment}"
    return "\n".join(lines[:start] + replacement + lines[end + 1:])


def _trailing_comment(text: str, start: int, end: int) -> str:
    """The ``# comment`` after the last command of lines ``start``–``end`` ("" when none or unreadable)."""
    from .errors import ParseError
    from .parse.lexer import lex_script
    try:
        script = lex_script(text)
    except ParseError:
        return ""
    found = [c.comment for c in script.commands if c.is_code and start <= c.line and c.end_line == end and c.comment]
    return found[-1] if found else ""


class FixResult(NamedTuple):
    """What :func:`fix` did: the new ``text``, the findings ``fixed``, and why fixes wait (``waiting``, "" when none
    does; :func:`held_back`)."""

    text: str
    fixed: list[Finding]
    waiting: str


def fix_script(text: str, profile: Any = None, *, path: str = "", select: Any = (),
               ignore: Any = ()) -> tuple[str, list[Finding]]:
    """The new text and the findings fixed: :func:`fix` without the reason fixes wait."""
    result = fix(text, profile, path=path, select=select, ignore=ignore)
    return result.text, result.fixed


def fix(text: str, profile: Any = None, *, path: str = "", select: Any = (), ignore: Any = ()) -> FixResult:
    """Apply every available fix (of the rules ``select`` and ``ignore`` leave, as for :func:`lint`); return the new
    text, the findings that were fixed and why the others wait (:func:`held_back`, read in the same rounds).
    ``text`` is the script's text: anything else (a file's path, bytes) is an
    :class:`~hpcwidgets.errors.HpcWidgetsError` saying what to pass.

    Each round lints the script again and fixes its first fixable finding together with the other fixable findings
    of the same rule (see :func:`_fixed_together`): fixing one can change how the rule sees the others. With --nv
    added to one of two GPU container steps, HPC201 would take the other for a CPU helper beside it (HPC220) and
    leave it without GPUs; fixed in one round, both get the flag. Every rule is fixed this way, as none is known whose
    fix of one finding makes its fix of another wrong (none did over the test and audit scripts). What it can change
    is the order in which two rules' fixes of one step compose: HPC309 puts --cpus-per-task on every step before
    HPC105 rewrites one of them, which then writes the same options in the model's order.
    """
    if not isinstance(text, str):
        from .errors import HpcWidgetsError
        from .parse import script_text_problem
        raise HpcWidgetsError(script_text_problem(text, "fix_script()", cli="hpcwidgets lint --fix FILE"))
    fixed: list[Finding] = []
    applied: set[tuple[str, Any]] = set()
    late: list[tuple[int, str]] | None = None  # of the text as it now is (None: not read since the last change)
    for _ in range(MAX_ROUNDS):
        # a fix proposed again just as it was applied did not remove its finding (in a script bash cannot read, an
        # insertion may land inside an unclosed quote): applying it again would only repeat it, round after round
        found = lint(text, profile, path=path, select=select, ignore=ignore)
        late = _late_shape(text, [f for f in found if f.code == "HPC501"] if not select and not ignore else None)
        # while sbatch ignores #SBATCH lines that size the job (HPC501), only what comes before the first command is
        # fixed (an #SBATCH line that lost its #): the other fixes read the job from the lines sbatch takes
        first = _first_command_line(text) if late else 0
        findings = [f for f in found if f.fix is not None and _key(f) not in applied
                    and (not late or f.fix.start <= first)]
        if not findings:
            break
        together = _fixed_together(findings)
        applied.update(map(_key, together))
        new = text
        # from the bottom up, so that the lines above each fix keep their numbers
        for finding in sorted(together, key=lambda f: f.fix.start, reverse=True):  # type: ignore[union-attr]
            new = apply_fix(new, finding.fix)  # type: ignore[arg-type]
        if new == text:
            break
        fixed.extend(together)
        text, late = new, None
    return FixResult(text, fixed, _why_held(_late_shape(text) if late is None else late))


#: the SlurmJob fields that size a job: its nodes, tasks and GPUs, which the launch fixes (HPC101, HPC106, HPC113 …)
#: fit the step to
_SHAPE_FIELDS = frozenset({"nodes", "ntasks", "ntasks_per_node", "gpus", "gpus_per_node", "gpus_per_task"})


def _shape_option(line: str, fields: dict[str, str]) -> str:
    """The option of an ``#SBATCH`` line when it sizes the job (``--nodes``, ``-N`` of ``-N4``, ``--gres``), else ""."""
    words = line.split()
    if len(words) < 2 or words[0] != "#SBATCH":
        return ""
    option = words[1].split("=", 1)[0]
    if not option.startswith("--") and len(option) > 2:
        option = option[:2]  # a short option with its value: -N4
    return option if fields.get(option) in _SHAPE_FIELDS else ""


def _late_shape(text: str, late: list[Finding] | None = None) -> list[tuple[int, str]]:
    """The #SBATCH lines sbatch ignores (HPC501's findings, ``late`` where the caller has them) that size the job
    (``(line, option)``): the job the fixes would fit the step to is not the one the author asked for."""
    if late is None:
        late = [f for f in lint(text, select=("HPC501",)) if f.code == "HPC501"]
    if not late:
        return []
    from .parse.script import directive_fields
    fields, lines = directive_fields(), text.split("\n")
    found = [(f.line, _shape_option(lines[f.line - 1], fields)) for f in late if 0 < f.line <= len(lines)]
    return [(line, option) for line, option in found if option]


def _first_command_line(text: str) -> int:
    """The line of the script's first command (0 when it cannot be read)."""
    from .errors import ParseError
    from .parse.lexer import lex_script
    try:
        return next((c.line for c in lex_script(text).code), 0)
    except ParseError:
        return 0


def held_back(text: str) -> str:
    """Why the fixes below the first command of ``text`` wait ("" when none does): #SBATCH lines after the first
    command that size the job, which sbatch ignores (HPC501). The fixes of other rules read the job those lines were
    meant to ask for (its nodes, tasks and GPUs) from what sbatch takes, and would fit the script to the wrong job:
    HPC106 would make a torchrun meant for four nodes a --standalone one. HPC501 has no fix of its own (which lines
    were meant is the author's call: an example block at the end of a file is not), so the author moves them first."""
    return _why_held(_late_shape(text))


def _why_held(late: list[tuple[int, str]]) -> str:
    if not late:
        return ""
    return (f"#SBATCH lines after the first command are ignored by sbatch (HPC501, line {late[0][0]}: {late[0][1]}), "
            "and the fixes depend on the nodes, tasks and GPUs they ask for; move them above the first command (or "
            "delete them) and run --fix again")


def _key(finding: Finding) -> tuple[str, Any]:
    return finding.code, finding.fix


def _fixed_together(findings: list[Finding]) -> list[Finding]:
    """The first of ``findings`` (which all carry a fix) and every later one of the same rule whose fix touches
    none of the lines of those taken before it; a fix left out is found again in the next round."""
    first = findings[0]
    taken = [first]
    for finding in findings[1:]:
        fix = finding.fix
        if finding.code == first.code and all(fix.end < t.fix.start or fix.start > t.fix.end  # type: ignore[union-attr]
                                               for t in taken):
            taken.append(finding)
    return taken
