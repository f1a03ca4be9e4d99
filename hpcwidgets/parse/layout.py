"""The layout of a job script kept beside the model read from it (:class:`~hpcwidgets.spec.slurm.ScriptLayout`).

A person who loads a script, changes its time limit and saves it expects a diff of one line. The model alone
cannot give that: it holds what the script means, not how its author spelt it (``-J demo`` or
``--job-name=demo``, the order of the #SBATCH lines, blank lines, a step over nine continuation lines). So the
reader keeps the script's lines and the lines the renderer writes for the model as read, each tagged with the
group it belongs to, and the renderer writes the groups an edit did not touch as they were read
(``_as_laid_out`` in :mod:`hpcwidgets.render.script`).

Groups are found from what the reader knows: the ``#!`` line; each #SBATCH line with the directives it was read
as (``-J demo`` with ``--job-name=demo``, two ``--mail-type`` lines with their merged one); the step's lines with
the step as rendered; the fail-fast lines the template writes again; an export or a module load with its line;
then every other line with a rendered line of the same text. A line left out of every group is kept as it is.
A job read alone has no title: the title line the renderer writes from its name stands for no line as read.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from ..errors import HpcWidgetsError
from ..spec.slurm import HETJOB_SEPARATORS, ScriptLayout, SlurmJob, is_hetjob_word
from .lexer import Command, Script, directive_words
from .script import ParsedScript, _read_directives
from .workflow import GENERATED_BY, STEP_COMMENT

_EXPORT = re.compile(r"\s*export\s+(.*)")
_ASSIGNED = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=")
_MODULE_LOAD = re.compile(r"\s*(?:module\s+(?:load|add)|ml)\s+(\S+)\s*(?:\s#.*)?$")


def with_layout(parsed: ParsedScript, model: Any, step_lines: tuple[int, int],
                absorbed: tuple[Command, ...]) -> Any:
    """``model`` (read from ``parsed``) with its job keeping the script's layout; ``model`` itself for a script
    whose layout cannot be kept: one with CRLF line ends (sbatch refuses them, so the model's own LF lines are
    better), or whose model the renderer cannot write."""
    from ..render import render
    source = parsed.source
    if "\r" in source:
        return model
    lines = source.split("\n")
    flags = ScriptLayout(header=any(line.lstrip().startswith(GENERATED_BY) for line in lines),
                         step_comment=any(line.lstrip().startswith(STEP_COMMENT) for line in lines)).sealed()
    try:
        canonical = render(_with_job_layout(model, flags), validate=False).split("\n")
    except HpcWidgetsError:
        return model
    groups = _Groups(len(lines), len(canonical))
    if lines[0].lstrip("\ufeff").startswith("#!") and canonical[0].startswith("#!"):
        groups.join([0], [0])
    _group_directives(parsed, canonical, groups)
    if step_lines[0] and model.kind != "slurm.job":
        from ..render.workflow import step_text
        _group_run(groups, range(step_lines[0] - 1, step_lines[1]), step_text(model).split("\n"), canonical)
    _group_prologue(absorbed, canonical, groups)
    _group_same_text(lines, canonical, groups)
    _group_named(lines, canonical, groups)
    if model.kind == "slurm.job":
        _group_job_title(canonical, groups)
    layout = flags.replace(source=tuple(lines), canonical=tuple(canonical), source_groups=tuple(groups.source),
                           canonical_groups=tuple(groups.canonical)).sealed()
    return _with_job_layout(model, layout)


def without_layout(model: Any) -> Any:
    """``model`` (a Workflow or a SlurmJob) as the renderer writes it itself, without the layout of the script it
    was read from: what a script read back is to the models (its lines in their order, the renderer's header)."""
    return _with_job_layout(model, None)


def _with_job_layout(model: Any, layout: ScriptLayout | None) -> Any:
    if model.kind == "slurm.job":
        return model.replace(layout=layout)
    return model.replace(job=model.job.replace(layout=layout))


class _Groups:
    """The group of each line as read (``source``) and as rendered (``canonical``); -1 for none yet. Each group's
    members are kept too, so that joining two groups touches their lines alone (a script of thousands of lines
    would otherwise be walked once per join)."""

    def __init__(self, source: int, canonical: int) -> None:
        self.source = [-1] * source
        self.canonical = [-1] * canonical
        self.count = 0
        self._members: dict[int, tuple[list[int], list[int]]] = {}

    def free(self, rows: Any, canonical: bool = False) -> list[int]:
        """The rows of ``rows`` in no group yet."""
        side = self.canonical if canonical else self.source
        return [k for k in rows if side[k] < 0]

    def alone(self, row: int) -> None:
        """Put the rendered line ``row`` in a group of its own that holds no line as read: a change to it is written
        nowhere."""
        self.canonical[row] = self.count
        self._members[self.count] = ([], [row])
        self.count += 1

    def join(self, source: Any, canonical: Any) -> None:
        """Put the lines ``source`` and ``canonical`` in one group, with the groups they are in already."""
        source, canonical = list(source), list(canonical)
        if not source or not canonical:
            return
        found = {self.source[k] for k in source} | {self.canonical[i] for i in canonical}
        found.discard(-1)
        target = min(found) if found else self.count
        self.count += not found
        into = self._members.setdefault(target, ([], []))
        for group in sorted(found - {target}):
            rows, rendered = self._members.pop(group)
            for k in rows:
                self.source[k] = target
            for i in rendered:
                self.canonical[i] = target
            into[0].extend(rows)
            into[1].extend(rendered)
        for k in source:
            if self.source[k] != target:
                self.source[k] = target
                into[0].append(k)
        for i in canonical:
            if self.canonical[i] != target:
                self.canonical[i] = target
                into[1].append(i)


def _group_directives(parsed: ParsedScript, canonical: list[str], groups: _Groups) -> None:
    """Each #SBATCH line sbatch reads with the rendered directives it was read as: the same options, else (a value
    merged with another line's, --mail-type=BEGIN and --mail-type=END) the rendered directive of its option."""
    from ..render.script import directive_rows, option_text
    every = sorted(directive_rows(canonical))
    options = {i: option_text(canonical[i]) for i in every}
    # a heterogeneous job's components, each after its "#SBATCH hetjob", take options of their own: a line is grouped
    # with the rendered lines of its own component only (a later one's --nodes=1 is no line of the first component's)
    rendered_in = _components([options[i] for i in every])
    read_in = _components([_first_word(cmd) for cmd in parsed.lexed.directives])
    later = {d.line for d in parsed.directives if d.component}  # a later component's lines are kept as written
    for cmd, component in zip(parsed.lexed.directives, read_in):
        if parsed.first_command and cmd.line >= parsed.first_command:
            continue  # sbatch ignores it: kept as a set-up line, grouped by its text
        rows = [i for i, at in zip(every, rendered_in) if at == component]
        wanted = _read_as(cmd)
        if wanted and wanted[0] in HETJOB_SEPARATORS:
            wanted = wanted[:1]  # as rendered: in lower case (sbatch reads HETJOB so too), without words after it
        elif cmd.line in later or not wanted[:-1]:
            wanted = wanted[-1:]
        found = []
        for option in wanted:
            exact = [i for i in rows if options[i] == option]
            flag = option.partition("=")[0]
            found += exact or [i for i in rows if options[i] == flag or options[i].startswith(flag + "=")]
        groups.join(range(cmd.line - 1, cmd.end_line), sorted(set(found)))


def _components(first_words: list[str]) -> list[int]:
    """The component of a heterogeneous job each #SBATCH line (given by its first word) belongs to: 0 up to the first
    line that starts with ``hetjob`` (or ``packjob``), which starts component 1, and so on (0 for every line of a job
    of one component)."""
    out, component = [], 0
    for word in first_words:
        component += is_hetjob_word(word)
        out.append(component)
    return out


def _first_word(cmd: Command) -> str:
    """The first word of an #SBATCH line as written ("" for none, or one its words cannot be read from)."""
    try:
        words = directive_words(cmd)
    except HpcWidgetsError:
        return ""
    return words[0].raw if words else ""


def _read_as(cmd: Command) -> list[str]:
    """The options an #SBATCH line is written back as when read alone, and the line's words as written (an option
    kept as written, a later component's line)."""
    from ..render.script import directive_lines
    try:
        words = directive_words(cmd)
        values = _read_directives(Script((cmd,), cmd.text), 0)[0]
        return [*directive_lines(SlurmJob(**values)), " ".join(w.raw for w in words)]
    except (HpcWidgetsError, TypeError):
        return []


def _group_run(groups: _Groups, source: range, text: list[str], canonical: list[str]) -> None:
    """The source lines ``source`` with the rendered lines ``text`` (its last line may carry a comment after it)."""
    n = len(text)
    for i in range(len(canonical) - n + 1):
        if canonical[i:i + n - 1] == text[:-1] and canonical[i + n - 1].startswith(text[-1]):
            groups.join(source, range(i, i + n))
            return


def _group_prologue(absorbed: tuple[Command, ...], canonical: list[str], groups: _Groups) -> None:
    """The script's own fail-fast line (``set -euo pipefail``) with the template's (``set -eo pipefail`` … ``set -u``)."""
    if not absorbed:
        return
    first = next((i for i, line in enumerate(canonical) if line.split("  #", 1)[0] == "set -eo pipefail"), None)
    if first is None:
        return
    rows = [first] + [i for i in range(first + 1, len(canonical)) if canonical[i] == "set -u"][:1]
    groups.join([k for cmd in absorbed for k in range(cmd.line - 1, cmd.end_line)], rows)


def _group_same_text(lines: list[str], canonical: list[str], groups: _Groups) -> None:
    """Every other line with a rendered line of the same text (blank space around it aside): in order first, then
    any left."""
    source = [k for k in groups.free(range(len(lines))) if lines[k].strip()]
    written = [i for i in groups.free(range(len(canonical)), canonical=True) if canonical[i].strip()]
    a, b = [lines[k].strip() for k in source], [canonical[i].strip() for i in written]
    taken: set[int] = set()
    for ka, kb, size in _matching_blocks(a, b):
        for d in range(size):
            groups.join([source[ka + d]], [written[kb + d]])
            taken.add(kb + d)
    left: dict[str, list[int]] = {}
    for j, text in enumerate(b):
        if j not in taken:
            left.setdefault(text, []).append(written[j])
    for k in groups.free(source):
        rows = left.get(lines[k].strip())
        if rows:
            groups.join([k], [rows.pop(0)])


def _matching_blocks(a: list[str], b: list[str]) -> list[tuple[int, int, int]]:
    """difflib's matching blocks of ``a`` and ``b`` as ``(start in a, start in b, size)``, with the lines the two
    share at their start and end matched first: difflib takes time that grows with the square of the lines it
    compares when many are alike (a script of thousands of equal comment lines took seconds), and a script read
    back shares almost all of its lines with its rendering, in order."""
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    blocks = [(0, 0, head)] if head else []
    middle = difflib.SequenceMatcher(None, a[head:len(a) - tail], b[head:len(b) - tail], autojunk=False)
    blocks += [(head + m.a, head + m.b, m.size) for m in middle.get_matching_blocks() if m.size]
    if tail:
        blocks.append((len(a) - tail, len(b) - tail, tail))
    return blocks


def _group_job_title(canonical: list[str], groups: _Groups) -> None:
    """The title line the renderer writes above its ``# Generated by`` line for a job read alone ("# Slurm job NAME",
    from the job's name), when no line as read has its text: a group that stands for no line as read. The job
    reader keeps no title, so the script's own comment in that place (a workflow's title) stays as written; without
    this group, a new job name would change a line of the renderer's own and the whole script would be written in
    the renderer's layout."""
    row = next((i for i, line in enumerate(canonical) if line.startswith(GENERATED_BY)), None)
    if row and canonical[row - 1].startswith("# ") and groups.canonical[row - 1] < 0:
        groups.alone(row - 1)


def _group_named(lines: list[str], canonical: list[str], groups: _Groups) -> None:
    """An export or a module load written otherwise than the renderer writes it (``export DATA=$HOME/data``,
    ``module add gcc``) with the rendered line of the same variable or module."""
    written = groups.free(range(len(canonical)), canonical=True)
    for k in groups.free(range(len(lines))):
        export, module = _EXPORT.fullmatch(lines[k]), _MODULE_LOAD.fullmatch(lines[k])
        if export is not None and not lines[k].endswith("\\"):
            heads = [f"export {name}=" for name in _ASSIGNED.findall(export.group(1))]
            groups.join([k], [i for i in written if canonical[i].startswith(tuple(heads))] if heads else [])
        elif module is not None:  # (the renderer writes a comment at the end of the line two blanks after it)
            groups.join([k], [i for i in written if canonical[i].split("  #", 1)[0] == f"module load {module.group(1)}"])
