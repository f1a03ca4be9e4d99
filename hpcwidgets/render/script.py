"""Complete sbatch scripts: ``#SBATCH`` directives, a fail-fast prologue and the job's steps.

Scripts come from one Jinja2 template (``templates/job.sh.j2``) rendered with ``StrictUndefined``,
so a misspelled variable is an error, never an empty string. Every value that reaches a shell
word goes through :func:`hpcwidgets.render.quote.quote`.

The prologue is ``set -eo pipefail``, then the module loads, then ``set -u``: environment
modules (Lmod, Tcl modules) read unset variables, so ``-u`` is switched on only after them.
``SlurmJob.fail_fast`` leaves out ``set -u`` (``errexit``) or both (``off``: a script read back
without them keeps its own shell options).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..spec._words import EXPANDED, word_pieces
from ..spec.slurm import (SBATCH_ALIASES, SBATCH_SHORT, STEP, SWITCHED_OFF, ScriptLayout, SlurmJob, comment_line,
                          is_hetjob_word)
from .command import option_words
from .quote import assignment, quote_words


@dataclass(frozen=True)
class Block:
    """A piece of the script body: shell text with an optional comment line above it."""

    text: str
    comment: str = ""


class StepBlock(Block):
    """The block of a workflow's step, which takes the comment its author wrote on it
    (:data:`~hpcwidgets.spec.slurm.STEP`)."""


@functools.cache
def _environment() -> Any:
    import jinja2
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hpcwidgets", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
        auto_reload=False,  # the templates ship inside the package; never stat them per render
    )
    env.globals.clear()  # our templates call no helpers (range, dict, …); each render then skips copying them
    return env


@functools.cache
def _template(name: str) -> Any:
    template = _environment().get_template(name)
    # Jinja keeps a template's globals as a ChainMap over the environment's (empty here, see above), which costs
    # two Python calls per render to copy; a plain dict holds the same nothing
    template.globals = {}
    return template


def fill_template(name: str, **values: Any) -> str:
    """``_template(name).render(**values)``, without Jinja's per-render set-up when the template allows it
    (see :class:`_Layout`)."""
    layout = _layout(name)
    return layout.fill(values) if layout is not None else _template(name).render(values)


#: the value types a layout fills in itself: ``str()`` and ``bool()`` of them are plain and cannot fail
_SCALARS = {str, bool, int}


class _Layout:
    """A template as literal pieces around its variables, one form per combination of its tests' truth values.

    Valid for a template that uses each variable only as ``{{ name }}`` or ``{% if name %}``: its text then
    depends on the variables only through ``str(value)`` at each output and ``bool(value)`` at each test.
    Each form comes from Jinja itself, rendering the template once with a stand-in for every variable (true
    or false as the combination says, and a numbered marker as its text), so the template stays the one
    source of the layout. A render then costs one ``%`` of the form with the values instead of a Jinja
    context, the variable look-ups and a generator. A missing variable or a value of another type goes to
    ``template.render``, which raises for a missing one (StrictUndefined) as before.
    """

    def __init__(self, template: Any, names: tuple[str, ...], tests: tuple[str, ...]) -> None:
        self.template, self.names, self.tests = template, names, tests
        self.forms: dict[tuple[bool, ...], tuple[str, tuple[str, ...]]] = {}

    def fill(self, values: dict[str, Any]) -> str:
        try:
            given = tuple(map(values.__getitem__, self.names))
        except KeyError:
            return self.template.render(values)  # type: ignore[no-any-return]  # raises, naming the variable
        if not set(map(type, given)) <= _SCALARS:
            return self.template.render(values)  # type: ignore[no-any-return]
        truth = tuple(map(bool, map(values.__getitem__, self.tests)))
        form = self.forms.get(truth)
        if form is None:
            form = self.forms[truth] = self._form(truth)
        text, slots = form
        return text % tuple(map(values.__getitem__, slots))

    def _form(self, truth: tuple[bool, ...]) -> tuple[str, tuple[str, ...]]:
        """The template rendered for one combination: ``%``-format text and the variable of each ``%s``."""
        stand_ins = {name: _StandIn(k, name in self.tests and truth[self.tests.index(name)])
                     for k, name in enumerate(self.names)}
        pieces = _MARKER.split(self.template.render(stand_ins))
        text = "%s".join(piece.replace("%", "%%") for piece in pieces[::2])
        return text, tuple(self.names[int(k)] for k in pieces[1::2])


class _StandIn:
    """A variable's value while a layout's form is made: its text is a marker, its truth value the one asked."""

    def __init__(self, number: int, truth: bool) -> None:
        self.text, self.truth = f"\x00{number}\x00", truth

    def __str__(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        return self.truth


_MARKER = re.compile("\x00([0-9]+)\x00")


@functools.cache
def _layout(name: str) -> _Layout | None:
    env = _environment()
    return layout_of(_template(name), env.loader.get_source(env, name)[0])


def layout_of(template: Any, source: str) -> _Layout | None:
    """The layout of a template, or None when it uses a variable any other way than ``{{ name }}`` or
    ``{% if name %}`` (checked on Jinja's own parse of its source), its text holds a NUL (the markers'
    character), or its environment changes what an output writes (``finalize``, autoescaping)."""
    from jinja2 import nodes
    if template.environment.finalize is not None or template.environment.autoescape is not False:
        return None
    names: dict[str, None] = {}
    tests: dict[str, None] = {}

    def plain(body: list[Any]) -> bool:
        for node in body:
            if isinstance(node, nodes.Output):
                for child in node.nodes:
                    if isinstance(child, nodes.Name) and child.ctx == "load":
                        names[child.name] = None
                    elif not isinstance(child, nodes.TemplateData) or "\x00" in child.data:
                        return False
            elif isinstance(node, nodes.If):
                if not (isinstance(node.test, nodes.Name) and node.test.ctx == "load"):
                    return False
                names[node.test.name] = tests[node.test.name] = None
                if not (plain(node.body) and plain(node.elif_) and plain(node.else_)):
                    return False
            else:
                return False
        return True

    if not plain(template.environment.parse(source).body) or not names or set(names) & set(template.globals):
        return None
    return _Layout(template, tuple(names), tuple(tests))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: what sbatch's own tokenizer would split or escape in a directive value (or a control character)
_NEEDS_QUOTES = re.compile(r"[\s\"'#\\\x00-\x1f\x7f]")
#: three or more line breaks, written so the pattern begins with a literal that re finds in C (``\n{3,}`` tries a match
#: at every line break, 7 µs on a script); a search also costs half of ``"\n\n\n" in text`` on text that is not ASCII
_BLANK_RUN = re.compile("\n\n\n+")


def one_line(text: str) -> str:
    """``text`` with control characters (newlines, tabs, …) turned into spaces.

    For text written into a comment or an ``#SBATCH`` line: a line break there would end the
    comment and make the rest of the value a shell command.
    """
    text = str(text)
    # printable text holds no control character (they are all unprintable): one C test, half the cost of the sub
    return text if text.isprintable() else _CONTROL.sub(" ", text)


def script_title(title: str, job_name: str) -> str:
    """The title comment of a script, on one line: ``title``, else "Slurm job NAME" (also what a reader
    compares a title with to tell a default one, so blank space in either never makes them differ)."""
    name = one_line(job_name).strip()
    return one_line(title).strip() or (f"Slurm job {name}" if name else "Slurm job")


def _directive_value(value: Any) -> str:
    """sbatch reads directive values itself (no shell): quote only what its tokenizer would split or
    escape. Its backslash makes the next character literal even inside quotes, so it is doubled."""
    value = str(value)
    if not _NEEDS_QUOTES.search(value):
        return value
    value = one_line(value)
    if _NEEDS_QUOTES.search(value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def _gpu_directive(job: SlurmJob) -> list[str]:
    """``--gres=gpu[:type]:N`` with the other generic resources after the GPUs in the same value
    (``--gres=gpu:v100x:2,lscratch:200``); ``--gpus-per-node`` when ``gpu_flag`` asks for it."""
    others = job.other_gres
    if not isinstance(others, (tuple, list)):
        others = (others,) if others else ()
    items = [str(item) for item in others if item is not None] if others else []  # (usually none: no loop)
    out: list[str] = []
    if job.gpus_per_node:
        if job.gpu_flag == "gpus-per-node":
            typed = f"{job.gpu_type}:{job.gpus_per_node}" if job.gpu_type else str(job.gpus_per_node)
            out.append(f"--gpus-per-node={_directive_value(typed)}")
        else:
            items.insert(0, job.gres())
    if items:
        out.append(f"--gres={_directive_value(','.join(items))}")
    return out


def _generic_directive(f: Any, value: Any) -> list[str]:
    words = option_words(f, value)
    if not words:
        return []
    if value is True:
        return [words[0]]
    flag, _, val = words[0].partition("=")
    return [f"{flag}={_directive_value(val)}"]


def _compile_directives(cls: type) -> Any:
    """Generate ``directives(job) -> list[str]`` for a job class: its option fields in declaration
    order (GPUs where ``gpus_per_node`` is declared), written out once per class like argv."""
    ns: dict[str, Any] = {"_gpu": _gpu_directive, "_generic": _generic_directive, "_value": _directive_value,
                          "_str": str}
    body = ["def directives(job):", "    out = []"]
    for k, f in enumerate(cls.field_specs()):
        if f.name == "gpus_per_node":
            body.append("    out += _gpu(job)")
            continue
        if f.info.role != "option" or not f.info.flag:
            continue
        ns[f"F{k}"] = f
        flag = f.info.flag
        body.append(f"    v = job.{f.name}")
        if f.base_type is bool and not f.is_tuple:
            body += ["    if v is True:", f"        out.append({flag!r})",
                     "    elif v is not False and v is not None:", f"        out += _generic(F{k}, v)"]
        elif f.base_type is int and not f.is_tuple:
            body += ["    if v.__class__ is int:", f"        out.append({flag + '='!r} + _str(v))",
                     "    elif v is not None:", f"        out += _generic(F{k}, v)"]
        elif f.base_type is str and not f.is_tuple:
            body += ["    if v:", f"        out.append({flag + '='!r} + _value(v))"]
        else:
            body += ["    if v:", f"        out += _generic(F{k}, v)"]
    body.append("    return out")
    exec(compile("\n".join(body) + "\n", f"<hpcwidgets directives of {cls.__qualname__}>", "exec"), ns)
    return ns["directives"]


#: the compiled directives function of each job class, by class (see ``_WORDS`` in hpcwidgets.spec.argv)
_DIRECTIVES: dict[type, Any] = {}


def directive_lines(job: SlurmJob) -> list[str]:
    """The options after ``#SBATCH``, in declaration order, GPUs written as ``--gres``."""
    fn = _DIRECTIVES.get(job.__class__)
    if fn is None:
        fn = _DIRECTIVES[job.__class__] = _compile_directives(job.__class__)
    out = fn(job)
    if job.extra_directives:
        out += [one_line(d) for d in job.extra_directives]
    return out  # type: ignore[no-any-return]


@functools.cache
def _field_of_flag(cls: type) -> dict[str, str]:
    """The field each option the directives of ``cls`` are written with comes from (``--gres`` and
    ``--gpus-per-node``: GPUs per node, with the other generic resources)."""
    table = {f.info.flag: f.name for f in cls.field_specs() if f.info.role == "option" and f.info.flag}
    return {**table, "--gres": "gpus_per_node", "--gpus-per-node": "gpus_per_node"}


def module_lines(job: SlurmJob) -> list[str]:
    """Module names, each one shell word by the quoting contract (a name never runs as code)."""
    return quote_words(job.modules)


def export_lines(job: SlurmJob, extra: Iterable[tuple[str, str]] = ()) -> list[str]:
    pairs = [(e.name, e.value) for e in job.env] + list(extra)
    return [assignment(name, value) for name, value in pairs]


@functools.cache
def _version() -> str:
    from .. import __version__
    return __version__


def render_script(job: SlurmJob, blocks: Iterable[Block], *, title: str = "",
                  exports: Iterable[tuple[str, str]] = (), setup: Iterable[str] = (),
                  first: Iterable[Block] = ()) -> str:
    """Assemble the full script around ``blocks`` (the steps); ``first`` comes before the exports and set-up
    lines (a line they may rely on, such as filling in $USER). The comments of a job read back go with their
    lines (see :func:`_commented`).

    The template lays the script out: header, prologue, then the body. The body reaches it as
    finished text, its sections (the exports, the set-up lines, each block with its comment)
    separated by a blank line. A job read back from a script is written in that script's layout instead
    (``job.layout``, see :func:`_as_laid_out`): its lines as read where the model still says what they said.
    """
    sections = [f"# {b.comment}\n{b.text}" if b.comment else b.text for b in first]
    opened = len(sections)
    layout = job.layout
    if layout is not None:
        layout, blocks = _followed(layout, blocks)
    if job.comments is _NO_COMMENTS:  # every job but one read back with its comments: one identity test
        exported = export_lines(job, exports)
        if exported:
            sections.append("export " + "\nexport ".join(exported))
        directives = _each_line("#SBATCH ", directive_lines(job))
        modules = _each_line("module load ", module_lines(job))
    else:
        directives, modules, exported_text, blocks, loose = _commented(job, exports, blocks, layout is not None)
        if exported_text:
            sections.append(exported_text)
        setup = [*loose, *setup]
    lines = [*job.setup, *setup]
    # what runs before the job's work, each export line and each set-up line (a loop: one), for a layout to place an
    # added module load among (see _as_laid_out)
    before_work = [*(line for section in sections[opened:] for line in section.split("\n")), *lines] \
        if layout is not None else []
    if lines:
        sections.append("\n".join(lines))
    for block in blocks:
        sections.append(f"# {block.comment}\n{block.text}" if block.comment else block.text)
    text = fill_template(
        "job.sh.j2",
        shell=one_line(job.shell) or "/bin/bash",
        directives=directives,
        header=layout is None or layout.header,
        title=script_title(title, job.job_name),
        version=_version(),
        modules=modules,
        errexit=job.fail_fast != "off",
        nounset=job.fail_fast == "strict",
        body="\n\n".join(sections),
    )
    if job.comments is not _NO_COMMENTS:
        text = _comment_prologue(text, job)
    if _BLANK_RUN.search(text):
        text = _BLANK_RUN.sub("\n\n", text)
    if not text.endswith("\n") or text.endswith("\n\n"):  # (the usual text ends in one: no copy)
        text = text.rstrip("\n") + "\n"
    # a last line kept as written may end in a continuation (train.py \ then a blank line): keep the blank line it
    # continues into, which bash reads as the end of the command (and without which a reader calls it cut off)
    if text.endswith("\\\n"):
        text += "\n"
    return text if layout is None else _as_laid_out(layout, text, modules, before_work)


#: the default of ``SlurmJob.comments`` (the empty tuple, one object): a job without comments is written without
#: looking for any
_NO_COMMENTS: tuple[Any, ...] = ()


def _commented(job: SlurmJob, exports: Iterable[tuple[str, str]], blocks: Iterable[Block],
               laid_out: bool = False) -> tuple[str, str, str, list[Block], list[str]]:
    """The #SBATCH lines, the module loads, the export lines and the blocks of a job read back with comments, each
    comment on its line or above it (:class:`~hpcwidgets.spec.slurm.Comment`), and the comment lines left: those
    whose line the script no longer has (a field emptied in a form), which go after the set-up lines, where a reader
    of the script keeps them as set-up lines. Each comment is written where a reader takes it back from.

    A job written in the layout of its script (``laid_out``) keeps such comments where they were instead (see
    :func:`_kept_in_place`): the diff of the saved script is then the emptied line alone."""
    waiting: dict[str, list[Any]] = {}
    for comment in job.comments:
        waiting.setdefault(str(comment.at), []).append(comment)
    around = waiting.pop("", [])
    blocks = [_commented_block(b, waiting) if isinstance(b, StepBlock) else b for b in blocks]
    if job.fail_fast != "off":
        waiting.pop("fail_fast", None)  # on the prologue's first line (see _comment_prologue)
    pairs = [(e.name, e.value) for e in job.env] + list(exports)
    export_at, module_at = [f"env:{n}" for n, _ in pairs], [f"modules:{m}" for m in job.modules]
    options = directive_lines(job)
    kept = [f"extra_directives:{d}" for d in job.extra_directives] if job.extra_directives else []
    fields = _field_of_flag(job.__class__)
    at = [fields.get(option.partition("=")[0], "") for option in options[:len(options) - len(kept)]] + kept
    last_export = last_module = last_directive = ""
    if laid_out:
        last_export = _kept_in_place(waiting, "env", export_at)
        last_module = _kept_in_place(waiting, "modules", module_at)
        last_directive = _kept_in_place(waiting, "directive", at, _directive_rank(job.__class__))
    exported = _each_commented("export ", [assignment(n, v) for n, v in pairs], export_at, waiting) + last_export
    modules = _each_commented("module load ", module_lines(job), module_at, waiting) + last_module
    directives = _each_commented("#SBATCH ", options, at, waiting) + last_directive
    # a reader takes the comment lines above the first directive for the directives' heading, and those right below
    # the last (the template puts a blank line after them) for notes on it; without directives, those up to the last
    # #SBATCH line switched off for theirs, any others for set-up lines
    top, bottom = [c for c in around if c.above], [c for c in around if not c.above]
    if directives:
        cut = len(bottom)
    else:
        top, bottom = [], top + bottom
        cut = max((k + 1 for k, c in enumerate(bottom) if SWITCHED_OFF.match(comment_line(c.text, own_line=True))),
                  default=0)
    loose = [comment_line(c.text, own_line=True) for c in bottom[cut:] + [c for left in waiting.values() for c in left]]
    directives = "".join(map(_own_line, top)) + directives + "".join(map(_own_line, bottom[:cut]))
    return directives, modules, exported.rstrip("\n"), blocks, loose


def _kept_in_place(waiting: dict[str, list[Any]], kind: str, at: list[str],
                   rank: dict[str, int] | None = None) -> str:
    """For a job written in the layout of its script: the comments in ``waiting`` at lines of one kind (see
    :func:`_kind_of_line`) that the job no longer has (a field emptied, a module taken out), taken out of ``waiting``.
    One written at the end of its line goes with the line: it spoke of a value the script no longer sets. One on a line
    of its own above it stays, as a line the edit did not touch (a heading, a switched-off ``##SBATCH`` line): it moves
    to above the next line ``at`` of that kind (in the order ``rank`` gives, the order the renderer writes them in;
    without one, the gone line's place among the others is not known and it goes last). Those with no next line are
    returned, as lines, to go after the last line of the kind."""
    present = set(at)
    order = rank or {}
    end = len(order)
    gone = sorted((key for key in waiting if key not in present and _kind_of_line(key) == kind),
                  key=lambda key: order.get(key, end))
    moved: dict[str, list[Any]] = {}
    last: list[Any] = []
    for key in gone:
        above = [c for c in waiting.pop(key) if c.above]
        later = next((line for line in at if order.get(line, end) > order.get(key, end)), None)
        if later is None:
            last += above
        else:
            moved.setdefault(later, []).extend(above)
    for line, comments in moved.items():
        waiting[line] = comments + waiting.get(line, [])
    return "".join(map(_own_line, last))


def _kind_of_line(at: str) -> str:
    """The kind of line a comment's ``at`` names: ``env`` or ``modules`` (an export, a module load), ``step`` or
    ``fail_fast``, else ``directive`` (a field's #SBATCH line, a directive kept as written)."""
    kind = at.partition(":")[0]
    return kind if kind in ("env", "modules", STEP, "fail_fast") else "directive"


@functools.cache
def _directive_rank(cls: type) -> dict[str, int]:
    """The place of each field among the #SBATCH lines the renderer writes (declaration order); a directive kept as
    written (``extra_directives:…``), written after them all, has none."""
    return {f.name: k for k, f in enumerate(cls.field_specs())}


def _comment_prologue(text: str, job: SlurmJob) -> str:
    """``text`` with the comments its author wrote on the fail-fast line (``set -euo pipefail  # why``) at the end of
    the prologue's first line (without a prologue, :func:`_commented` wrote them after the set-up lines)."""
    end = "".join("  " + comment_line(c.text) for c in job.comments if c.at == "fail_fast")
    line = "\nset -eo pipefail\n"  # the template's line: the first line of the script that is no comment
    return text.replace(line, f"{line[:-1]}{end}\n", 1) if end and job.fail_fast != "off" else text


def _commented_block(block: Block, waiting: dict[str, list[Any]]) -> Block:
    """The step's ``block`` with the comments written on it at the end of its last line (taken out of ``waiting``;
    those above it are left there: a reader keeps comment lines above the step as set-up lines)."""
    comments = waiting.get(STEP, [])
    end = [c for c in comments if not c.above]
    if not end or block.text.endswith("\\"):  # a line continued into the next: nothing may follow it on the line
        return block
    waiting[STEP] = [c for c in comments if c.above]
    return Block(block.text + "".join("  " + comment_line(c.text) for c in end), block.comment)


def _each_commented(prefix: str, items: list[str], at: list[str], waiting: dict[str, list[Any]]) -> str:
    """:func:`_each_line` with the comments waiting at each item's line (``at``: the line each item is) written
    above it or at its end; those written are taken out of ``waiting``. Of two lines that are the same (a directive
    kept as written twice), the first takes the comments up to the first at a line's end, as they were read."""
    out = []
    later = Counter(at)
    for item, line in zip(items, at):
        later[line] -= 1
        comments = waiting.pop(line, [])
        if later[line] and comments:
            cut = next((k + 1 for k, c in enumerate(comments) if not c.above), len(comments))
            comments, waiting[line] = comments[:cut], comments[cut:]
        out += [_own_line(c) for c in comments if c.above]
        out.append(prefix + item + "".join("  " + comment_line(c.text) for c in comments if not c.above) + "\n")
    return "".join(out)


def _own_line(comment: Any) -> str:
    """A comment on a line of its own, with its line break."""
    return comment_line(comment.text, own_line=True) + "\n"


def _each_line(prefix: str, items: list[str]) -> str:
    """Each item on a line of its own after ``prefix``: one join, where a ``str.format`` per item costs a C call
    each (nine directives: 1 µs)."""
    return prefix + ("\n" + prefix).join(items) + "\n" if items else ""


def render_job(job: SlurmJob) -> str:
    """A Slurm job on its own: directives, prologue and its ``commands`` lines."""
    blocks = [Block(line) for line in job.commands]
    return render_script(job, blocks)


def _followed(layout: ScriptLayout, blocks: Iterable[Block]) -> tuple[ScriptLayout | None, Iterable[Block]]:
    """The layout a script is written in (None: not one the reader made, or changed since, as in a saved model edited
    by hand) and its blocks, the step's without the renderer's comment when the script had none."""
    if not layout.intact:
        return None, blocks
    if not layout.step_comment:
        blocks = [StepBlock(b.text) if isinstance(b, StepBlock) else b for b in blocks]
    return layout, blocks


def _as_laid_out(layout: ScriptLayout, text: str, modules: str = "", before_work: Sequence[str] = ()) -> str:
    """``text`` (the script the renderer wrote for a job read back) written in the layout of the script it was read
    from (:class:`~hpcwidgets.spec.slurm.ScriptLayout`): the lines that changed since it was read (against
    ``layout.canonical``) replace the lines as read of their group, in their place; every other line as read stays
    as it was. ``text`` itself when a changed line is one that no line as read stands for: the layout no longer
    matches.

    The rules, one function each: which lines changed (:func:`_line_edits`); a group whose words were changed, added
    or taken out gets them so in its lines as read (:func:`_rewritten_in_place`), any other edited group is written
    as rendered in its place (:func:`_group_now`); a line the renderer adds goes after its group's line
    (:func:`_added_after`: a directive among the #SBATCH lines sbatch reads, of its own component in a
    heterogeneous job, nothing after a trailing ``exit`` or into a continued command) and a module load the prologue
    wrote after the script's own module commands (:func:`_after_module_commands`); the script's blank lines separate
    what is added (:func:`_between`)."""
    if not layout.source:
        return text  # the reader's first rendering of the model: nothing to lay out yet
    new = text.split("\n")
    old = list(layout.canonical)
    if new == old:
        return "\n".join(layout.source)
    edits = _line_edits(old, new, layout.canonical_groups)
    if edits is None:
        return text
    anchor = _module_anchor(layout, before_work) if modules and edits.added else None
    loads = _module_loads(edits.added, edits.added_from, new, modules) if anchor is not None else {}
    after = _added_after(layout, edits.members, edits.added)
    if loads and anchor is not None:
        _after_module_commands(layout, edits.members, loads, anchor, after)
    changed = _changed_groups(edits, old)
    rows_of = {group: rows for group, rows in _source_rows(layout).items() if group in changed}
    edited: dict[int, list[str]] = {}
    for group, rows in rows_of.items():
        rewritten = _rewritten_in_place(layout, edits, old, group, rows)
        if rewritten is not None:
            edited.update(rewritten)
            changed.discard(group)
    out = _between([], after.get(-1, []), layout.source[0])
    written: set[int] = set()
    for k, (line, group) in enumerate(zip(layout.source, layout.source_groups)):
        if group < 0 or group not in changed:
            out += edited.get(k, [line])
        elif group not in written:
            written.add(group)
            out += _group_now(edits, old, group, one_line=line.startswith("#SBATCH") and len(rows_of[group]) == 1)
        out += _between(out, after.get(k, []), layout.source[k + 1] if k + 1 < len(layout.source) else None)
    return "\n".join(out)


@dataclass
class _LineEdits:
    """How the lines as rendered now differ from the lines as rendered for the model as read (``layout.canonical``,
    "before"), by the index of each line before: ``becomes``, what each line is now (one line, several, or none);
    ``added``, the lines added before it, and ``added_from``, the index among the lines now of the first of them. With
    ``members``, the indices of the lines before of each group."""

    becomes: list[list[str]]
    added: dict[int, list[str]]
    added_from: dict[int, int]
    members: dict[int, list[int]]


def _line_edits(old: list[str], new: list[str], groups: Sequence[int]) -> _LineEdits | None:
    """The edits from the lines as rendered before (``old``, in ``groups``) to those now (``new``); None when a line
    that no line as read stands for changed (a line of the renderer's own, such as its prologue): the layout can no
    longer say where its new text goes, and the renderer's own text is written."""
    becomes: list[list[str]] = [[line] for line in old]
    added: dict[int, list[str]] = {}
    added_from: dict[int, int] = {}
    # both texts end in a line break, so both end in the empty string after it: the end of the text, no line. Compared
    # as a line it would pair with a blank line inside the other text and put lines the renderer wrote last (a command
    # added at the end) after the end, where no line as rendered stands; left out, they are added before the end
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old[:-1], new[:-1], autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if tag == "insert":
            added[i1], added_from[i1] = new[j1:j2], j1
            continue
        if i2 - i1 == j2 - j1:  # a line changed for each: line by line
            pieces = [[line] for line in new[j1:j2]]
        else:
            pieces = [new[j1:j2]] + [[] for _ in range(i1 + 1, i2)]
        for i, piece in zip(range(i1, i2), pieces):
            if groups[i] < 0 and old[i].strip():
                return None
            if groups[i] < 0 and i > 0 and groups[i - 1] >= 0 and old[i - 1].endswith("\\") \
                    and not _escaped(old[i - 1]) and any(line.strip() for line in piece):
                # text in place of the blank line that ended a command's continuation: the command goes on into it
                becomes[i - 1] = becomes[i - 1] + [line for line in piece if line.strip()]
                continue
            becomes[i] = piece
    members: dict[int, list[int]] = {}
    for i, group in enumerate(groups):
        if group >= 0:
            members.setdefault(group, []).append(i)
    # a directive added between two of the rendered lines one #SBATCH line of several options stands for goes on a
    # line of its own after them, and that line stays as written (-N 1 -n 4 -t 01:00:00, not respelled with --mem)
    for i in sorted(added):
        rows = members.get(groups[i]) if 0 < i < len(groups) and groups[i] >= 0 else None
        if rows and i - 1 in rows and all(old[r].startswith("#SBATCH") for r in rows) \
                and all(line.startswith("#SBATCH") for line in added[i]):
            after = rows[-1] + 1
            lines, start = added.pop(i), added_from.pop(i)
            added[after] = lines + added.get(after, [])
            added_from[after] = min(start, added_from.get(after, start))
    return _LineEdits(becomes, added, added_from, members)


def _source_rows(layout: ScriptLayout) -> dict[int, list[int]]:
    """The rows of each group among the lines as read."""
    rows: dict[int, list[int]] = {}
    for k, group in enumerate(layout.source_groups):
        if group >= 0:
            rows.setdefault(group, []).append(k)
    return rows


def _changed_groups(edits: _LineEdits, old: list[str]) -> set[int]:
    """The groups whose lines are no longer as they were rendered: one of them changed, or a line was added between
    two of them (a directive written into an #SBATCH line that held several options)."""
    return {group for group, rows in edits.members.items()
            if any(edits.becomes[i] != [old[i]] or (i - 1 in rows and i in edits.added) for i in rows)}


def _rewritten_in_place(layout: ScriptLayout, edits: _LineEdits, old: list[str], group: int,
                        rows: list[int]) -> dict[int, list[str]] | None:
    """The lines as read of a changed ``group`` (at ``rows``) with the edit made in them, by row, where it is one the
    lines can take as written; None for any other edit. The rest of the group's text stays as its author wrote it: a
    step's continuation lines, an #SBATCH line's order and spelling.

    Tried in turn: each changed line's one run of words (:func:`_word_changed`; on an #SBATCH line holding several
    options, with an option taken out, :func:`_options_taken_out`); then the words of the whole group
    (:func:`_words_changed`), where the renderer wraps them otherwise than the script did (a launcher line): not for
    #SBATCH lines, which sbatch reads as options, not shell words, nor for lines the renderer writes as read (a job's
    commands), whose new lines are the person's own, as typed. Words taken out with the line break before them leave
    fewer lines: the group's first row then holds them all (None when lines of others stand between its rows)."""
    members = edits.members[group]
    before, now = [old[i] for i in members], _group_lines(edits, group)
    source = [layout.source[k] for k in rows]
    directives = source[0].startswith("#SBATCH")
    rewritten = None
    if not any(i in edits.added and i - 1 in members for i in members):  # no line added inside the group
        kept_before, kept_source = before, source
        if len(rows) == 1 and len(now) < len(before) and directives:
            kept_before, kept_source = _options_taken_out(before, now, source[0]) or (before, source)
        rewritten = _word_changed(kept_before, now, kept_source)
        if rewritten is not None and not directives and not _reads_as(rewritten, kept_source, kept_before, now):
            rewritten = None
    if rewritten is None and not directives and before != source:
        rewritten = _words_changed(before, now, source)
        if rewritten is not None and not _reads_as(rewritten, source, before, now):
            rewritten = None
    if rewritten is None:
        return None
    if len(rewritten) == len(rows):
        return {row: [line] for row, line in zip(rows, rewritten)}
    if rows[-1] - rows[0] != len(rows) - 1:
        return None
    return {rows[0]: rewritten, **{row: [] for row in rows[1:]}}


def _reads_as(lines: list[str], source: list[str], before: list[str], now: list[str]) -> bool:
    """Whether the lines as read ``source`` with an edit made in them (``lines``) read back with the words changed as
    the renderer's lines for the model changed from ``before`` to ``now``: the same words added and taken out, and,
    where the script writes the words in the renderer's order, the same words in the same order. It is the safety net
    of every rewrite in place, which works on the text and cannot see, say, that a word it changed stands inside a
    quoted word spanning lines (``bash -c "…"``), where a quote typed in closes the outer one and a word added after
    it lands inside it. When the words differ the group is written as rendered. An option is compared with its
    value apart (:func:`_options_apart`): ``--nnodes=2`` and ``--nnodes 2`` are one option to the tools."""
    read, was, rendered, rendered_was = (_options_apart(_read_back("\n".join(text)))
                                         for text in (lines, source, now, before))
    if was == rendered_was:
        return read == rendered
    return Counter(read) - Counter(was) == Counter(rendered) - Counter(rendered_was) and \
        Counter(was) - Counter(read) == Counter(rendered_was) - Counter(rendered)


#: characters that end a shell word where they stand unquoted, each read as a word of its own (``2>&1``, ``;``)
_OPERATORS = frozenset(";&|<>()")
#: pattern characters, which bash expands unquoted and passes on as they are quoted
_GLOB = frozenset("*?[")


def _read_back(text: str) -> list[str]:
    """The words bash reads in the shell ``text`` of a command, each as what it passes on (quotes removed, escapes
    and line continuations resolved, comments left out), with each expansion as :data:`EXPANDED` and its text and
    each pattern character bash expands marked so too: ``'$X'`` and ``"$X"`` differ, ``$X`` and ``"$X"`` (two
    spellings the reader takes as one word) do not. Operators are words of their own."""
    words: list[str] = []
    word: list[str] | None = None
    offset = 0
    while offset < len(text):
        start, rest = 0, text[offset:]
        for end, kind, piece, quote in word_pieces(rest):
            escaped = end - start == 2 and kind == "lit"
            start = end
            if kind == "quote":
                word = word or []
            elif kind == "exp":
                word = (word or []) + [EXPANDED + piece]
            elif escaped and piece == "\n":
                continue  # a line continuation (also inside double quotes): bash removes it
            elif quote or escaped:
                word = (word or []) + [piece]
            elif piece in " \t\n" or piece in _OPERATORS or (piece == "#" and word is None):
                if word is not None:
                    words.append("".join(word))
                word = None
                if piece in _OPERATORS:
                    words.append(piece)
                elif piece == "#":  # a comment, up to the end of its line; read on from there
                    line_end = rest.find("\n", end)
                    offset += len(rest) if line_end < 0 else line_end
                    break
            else:
                word = (word or []) + [EXPANDED + piece if piece in _GLOB else piece]
        else:
            offset = len(text)
    if word is not None:
        words.append("".join(word))
    return words


#: an option word read back with its value after an ``=`` (the name holds no expansion)
_READ_OPTION = re.compile(r"(--?[A-Za-z][\w.-]*)=(.+)", re.S)


def _options_apart(words: list[str]) -> list[str]:
    """The words read back (:func:`_read_back`) with each option's value after an ``=`` as a word of its own, as a
    script may write it: ``--nnodes=2`` as ``--nnodes``, ``2``; a step's option that has a one-letter form in that
    form, with its value apart too (``--ntasks=8``, ``--ntasks 8``, ``-n8`` and ``-n 8`` all as ``-n``, ``8``)."""
    out: list[str] = []
    for word in words:
        option = _READ_OPTION.fullmatch(word)
        parts = list(option.groups()) if option else [word]
        parts[0] = _STEP_SHORT.get(parts[0], parts[0])
        if len(parts) == 1 and re.fullmatch(r"-[A-Za-z]\S+", word) and word[:2] in _STEP_SHORTS:
            parts = [word[:2], word[2:]]
        out += parts
    return out


def _group_lines(edits: _LineEdits, group: int) -> list[str]:
    """The lines as rendered now of ``group``, with the lines added between two of its lines."""
    members = edits.members[group]
    lines: list[str] = []
    for i in members:
        if i - 1 in members:
            lines += edits.added.get(i, [])
        lines += edits.becomes[i]
    return lines


def _group_now(edits: _LineEdits, old: list[str], group: int, one_line: bool) -> list[str]:
    """The lines as rendered now of a changed ``group`` that its lines as read cannot take, written in their place;
    for an #SBATCH line as read that held several options (``one_line``), on one line again
    (:func:`_one_directive_line`)."""
    lines = _group_lines(edits, group)
    return _one_directive_line(lines, [old[i] for i in edits.members[group]]) if one_line else lines


def _between(out: list[str], lines: list[str], following: str | None) -> list[str]:
    """``lines`` the renderer added, to go after ``out`` and before the line as read ``following``, without the blank
    lines at their ends that a blank line already there stands for (the script's own blank line separates them)."""
    start, end = 0, len(lines)
    if not out or not out[-1].strip():
        while start < end and not lines[start].strip():
            start += 1
    if following is not None and not following.strip():
        while end > start and not lines[end - 1].strip():
            end -= 1
    return lines[start:end]


def _added_after(layout: ScriptLayout, members: dict[int, list[int]],
                 added: dict[int, list[str]]) -> dict[int, list[str]]:
    """Where the lines the renderer added (``added``: before each index of ``layout.canonical``) go among the lines as
    read, by the index of the line as read they follow (-1: before the first line). Each run of them goes after the
    last line of the nearest group above it (:func:`_below_group_above`), then moves as the rules of
    :func:`_among_directives`, :func:`_before_trailing_exit` and :func:`_past_continuation` say. Lines added inside a
    group are written with it (:func:`_group_now`)."""
    groups = layout.canonical_groups
    last_source = {group: rows[-1] for group, rows in _source_rows(layout).items()}
    ends = _directives_ends(layout, last_source)
    separators = sorted(i for i in directive_rows(layout.canonical) if _separates(layout.canonical[i]))
    last_exit = _trailing_exit(layout.source)
    after: dict[int, list[str]] = {}
    for i, lines in sorted(added.items()):
        if groups[i] >= 0 and i - 1 >= 0 and groups[i - 1] == groups[i]:
            continue
        at = _below_group_above(groups, last_source, i)
        component = min(sum(row < i for row in separators), len(ends) - 1)
        at = _among_directives(lines, at, ends[component], ends[-1])
        at = _before_trailing_exit(at, last_exit)
        at = _past_continuation(layout.source, at)
        after.setdefault(at, []).extend(lines)
    return after


def _below_group_above(groups: Sequence[int], last_source: dict[int, int], i: int) -> int:
    """The line as read that lines added before the rendered line ``i`` follow: the last line as read of the nearest
    group above them, where the renderer wrote them (the first line when none is above them)."""
    above = next((groups[k] for k in range(i - 1, -1, -1) if groups[k] >= 0 and groups[k] in last_source), None)
    return last_source[above] if above is not None else 0


def _directives_ends(layout: ScriptLayout, last_source: dict[int, int]) -> list[int]:
    """The last #SBATCH line as read that sbatch reads of each component of the job: one for a job of one component,
    one more after each ``#SBATCH hetjob`` (or ``packjob``) for a heterogeneous job, whose components take options
    of their own. A component without a line of its own ends where the one before it ends (the first: at the
    ``#!`` line, or -1, before the first line, in a script without one); a later component has at least its
    separator line. An #SBATCH line after the script's first command, which sbatch ignores, is a set-up line and
    no end of the directives."""
    read = directive_rows(layout.canonical)
    groups = {layout.canonical_groups[i] for i in read} - {-1}
    last = max((last_source[g] for g in groups if g in last_source), default=-1)
    # sbatch reads every #SBATCH line above the first command: also one in no group (a line the renderer spells
    # otherwise), which may be a separator
    rows = [k for k in range(last + 1) if layout.source[k].startswith("#SBATCH")]
    ends = [0 if layout.source[0].startswith("#!") else -1]
    for k in rows:
        if _separates(layout.source[k]):
            ends.append(max(k, ends[-1]))
        else:
            ends[-1] = max(k, ends[-1])
    return ends


def _separates(line: str) -> bool:
    """Whether the #SBATCH ``line`` starts the next component of a heterogeneous job: its first word is ``hetjob``
    or ``packjob`` (:func:`~hpcwidgets.spec.slurm.is_hetjob_word`)."""
    words = line[len("#SBATCH"):].split(None, 1) if line.startswith("#SBATCH") else []
    return bool(words) and is_hetjob_word(words[0])


def _among_directives(lines: list[str], at: int, component_end: int, directives_end: int) -> int:
    """An added #SBATCH line goes right after the directives sbatch reads of its component (``component_end``: the
    job's own options, those of its first component, before the first ``#SBATCH hetjob``; after a command it would
    be ignored, after the separator it would be another component's), and no other added line goes above the end of
    all of them (``directives_end``: sbatch stops reading directives at the first command)."""
    if any(line.startswith("#SBATCH") for line in lines):
        return component_end
    return max(at, directives_end)


def _before_trailing_exit(at: int, last_exit: tuple[int, int] | None) -> int:
    """Nothing runs after the script's last ``exit`` (:func:`_trailing_exit`): what is added at or after it goes above
    it, after the last line of code before it."""
    if last_exit is not None and at >= last_exit[0]:
        return last_exit[1]
    return at


def _past_continuation(source: Sequence[str], at: int) -> int:
    """A line as read that ends in a continuation goes on into the next: what is added goes after the command's last
    line (the blank line that ends a continuation on the script's last line), as lines added right after the
    backslash would become the command's arguments."""
    while 0 <= at < len(source) - 1 and source[at].endswith("\\") and not _escaped(source[at]):
        at += 1
    return at


def _after_module_commands(layout: ScriptLayout, members: dict[int, list[int]], loads: dict[int, list[str]],
                           anchor: int, after: dict[int, list[str]]) -> None:
    """Put the module loads the prologue wrote (``loads``, taken out of the added lines by :func:`_module_loads`) into
    ``after``: after the script's last module command (the line as read ``anchor``, see :func:`_module_anchor`), or
    lower where the other rules put them; a load above the script's ``module purge`` would be undone by it. They
    come before the other lines added at the same place, as the prologue comes before the body."""
    placed = _added_after(layout, members, loads)
    at = max(anchor, *placed)
    after[at] = [line for k in sorted(placed) for line in placed[k]] + after.get(at, [])


#: a command that changes which environment modules are loaded or can be: ``module purge`` unloads every module loaded
#: before it and ``module restore`` swaps them for a saved collection, ``module use`` and MODULEPATH add the folders a
#: later load looks in, a compiler's load opens the modules built with it (Lmod's hierarchy), and sourcing the module
#: system's set-up defines ``module`` itself
_MODULE_COMMAND = re.compile(
    r"\s*(?:(?:module|ml)(?:\s|$)|(?:export\s+)?MODULEPATH=|(?:source|\.)\s+\S*(?:lmod|modules)\b)")


def _module_anchor(layout: ScriptLayout, before_work: Sequence[str]) -> int | None:
    """The line as read after which a module load the renderer adds goes: the last line of the last of the lines
    ``before_work`` (the exports and set-up lines, as rendered, in order; a loop on its lines is one) holding a module
    command (:data:`_MODULE_COMMAND`), found among the lines as rendered before the edit; None when none of them does
    (the load then goes where the renderer writes modules, above them). The renderer loads modules before everything
    else; a load added above the script's own ``module purge``, ``module restore`` or ``module use`` would be undone
    by it or look in the wrong folders."""
    old, groups, source_groups = layout.canonical, layout.canonical_groups, layout.source_groups
    start = max(directive_rows(old), default=0) + 1
    anchor = None
    for entry in before_work:
        rows = entry.split("\n")
        at = next((j for j in range(start, len(old) - len(rows) + 1) if list(old[j:j + len(rows)]) == rows), None)
        if at is None:
            continue  # a line edited since it was read
        start = at + len(rows)
        if any(_MODULE_COMMAND.match(row) for row in rows):
            read = {groups[j] for j in range(at, start)} - {-1}
            anchor = max((k for k, group in enumerate(source_groups) if group in read), default=anchor)
    return anchor


def _module_loads(added: dict[int, list[str]], added_from: dict[int, int], new: list[str],
                  modules: str) -> dict[int, list[str]]:
    """The module loads among the lines ``added`` (before each index of the lines as rendered before; ``added_from``:
    the index in ``new``, the text now, of the first of them) that the prologue wrote (its ``modules``, the first run
    of those lines in ``new``), taken out of ``added``, and with them the blank lines around them when nothing else
    was added there."""
    rows = modules.rstrip("\n").split("\n") if modules else []
    start = next((j for j in range(len(new) - len(rows) + 1) if new[j:j + len(rows)] == rows), None) if rows else None
    if start is None:
        return {}
    prologue = range(start, start + len(rows))
    loads: dict[int, list[str]] = {}
    for i, lines in list(added.items()):
        load = [k in prologue and line.startswith("module load ") for k, line in enumerate(lines, added_from[i])]
        if not any(load):
            continue
        loads[i] = [line for line, taken in zip(lines, load) if taken]
        rest = [line for line, taken in zip(lines, load) if not taken]
        if any(line.strip() for line in rest):
            added[i] = rest
        else:
            del added[i]
    return loads


#: ``exit`` with a status written as a number or a variable (``exit``, ``exit 1``, ``exit $STATUS``, ``exit "${rc}"``)
_EXIT = re.compile(r"\s*exit(?:\s+(?:[0-9]+|(\"?)\$(?:\?|\w+|\{\w+\})\1))?\s*(?:;\s*)?(?:#.*)?")
#: the end of a line whose list or pipeline goes on into the next line (``srun a ||``)
_GOES_ON = re.compile(r"(?:&&|\|\||\|)\s*(?:#.*)?$")


def _trailing_exit(source: Sequence[str]) -> tuple[int, int] | None:
    """When the script as read ends in a top-level ``exit`` (its last line that is not blank or a comment, not part of
    a command begun on the lines above): that line's index, and the index of the line after which added lines go
    instead, its last line of code above it (the comments and blank lines right above the ``exit`` stay with it)."""
    code = [k for k, line in enumerate(source) if line.strip() and not line.lstrip().startswith("#")]
    if not code or not _EXIT.fullmatch(source[code[-1]]):
        return None
    exit_row = code[-1]
    if len(code) == 1:
        return exit_row, exit_row - 1
    above = code[-2]
    line = source[above]
    if _GOES_ON.search(line) or (above == exit_row - 1 and line.endswith("\\") and not _escaped(line)):
        return None
    return exit_row, above


def _escaped(line: str) -> bool:
    """Whether the backslash at the end of ``line`` is itself escaped (``echo \\\\``): then it continues nothing."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 0


def directive_rows(canonical: Sequence[str]) -> set[int]:
    """The rows of the #SBATCH lines sbatch reads in the rendered ``canonical``: those above its first line that is no
    comment (an #SBATCH line a script holds after its first command is written among its set-up lines)."""
    head = next((i for i, line in enumerate(canonical) if i and not line.startswith("#")), len(canonical))
    return {i for i in range(head) if canonical[i].startswith("#SBATCH ")}


def _word_changed(before: list[str], after: list[str], source: list[str]) -> list[str] | None:
    """``source`` (the lines as read of a group) with each line that changed from the group's rendered lines
    ``before`` to ``after`` changed the same way there: its one changed run of words (:func:`_run_changed`). None
    when the change is anything else (lines added or taken out, several runs in one line, a run written otherwise)."""
    if len(before) != len(after):
        return None
    text = "\n".join(source)
    for rendered, edited in ((b, a) for b, a in zip(before, after) if b != a):
        changed = _run_changed(rendered, edited, text)
        if changed is None:
            return None
        text = changed
    return text.split("\n")


def _run_changed(rendered: str, edited: str, text: str) -> str | None:
    """``text`` with the one run of words between the first and the last word that differ from the rendered line
    ``rendered`` to ``edited`` changed, where that run stands once, as whole words, in ``text`` (on an #SBATCH line,
    also an option's value in another spelling, see :func:`_value_changed`). None when words were only added or only
    taken out, or the run is not written once so. A run found whole keeps its own wrapping even when words moved
    within it (two options swapped on one line)."""
    old, new = rendered.split(" "), edited.split(" ")
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    was, now = " ".join(old[head:len(old) - tail]), " ".join(new[head:len(new) - tail])
    if not was or not now:
        return None
    found = re.compile(rf"(?<!\S){re.escape(was)}(?!\S)")
    if len(found.findall(text)) == 1:
        return found.sub(lambda _: now, text)
    return _value_changed(was, now, text) if rendered.startswith("#SBATCH ") else None


#: a shell word as the renderer writes it: quoted parts (which may hold blanks), escapes and other characters up to
#: a blank; else any run of characters that are not blank (a quote the line does not close)
_SHELL_WORD = re.compile(r"""(?:'[^']*'|"(?:[^"\\]|\\.)*"|\\.|[^\s'"\\])+|\S+""")
#: what separates two words of a command as read: blanks, or a line continuation and the next line's indentation
_GAP = r"(?:[ \t]+(?:\\\n[ \t]*)?|\\\n[ \t]+)"


def _command_words(lines: list[str]) -> list[str]:
    """The shell words of a command's rendered ``lines``, without the backslash that continues a line."""
    words: list[str] = []
    for line in lines:
        on_line = _SHELL_WORD.findall(line)
        words += on_line[:-1] if on_line[-1:] == ["\\"] else on_line
    return words


def _words_changed(before: list[str], after: list[str], source: list[str]) -> list[str] | None:
    """``source`` (a command's lines as read) with each run of words that differs between its rendered lines
    ``before`` and ``after`` (however the renderer wrapped them) changed where the words around it place it
    (:func:`_run_place`), so that the lines keep their own wrapping: words changed in place, words added after the
    word they follow (at the end of its line when it ends one), words taken out with the gap on their side of the
    line (:func:`_taken_out`). None when words moved (taken out in one place, added in another: the new order has no
    place in the old wrapping), when every word goes, or when a run has no one place in ``source``."""
    old, new = _command_words(before), _command_words(after)
    if not new:
        return None
    runs = [(i1, i2, new[j1:j2]) for tag, i1, i2, j1, j2
            in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes() if tag != "equal"]
    for k, (i1, i2, _) in enumerate(runs):
        if any(set(old[i1:i2]) & set(words) for m, (_, _, words) in enumerate(runs) if m != k):
            return None
    text = "\n".join(source)
    changes = []
    for i1, i2, words in runs:
        found = _run_place(old, i1, i2, text)
        if found is None and i1 < i2:
            found = _run_alone(old[i1:i2], text)
        if found is None:
            return None
        if i1 == i2:  # words added
            start = stop = found.start("run")
            # found by the word before them: after it; else by the word after them (found from the place): before it
            written = " ".join(words) + " " if start == found.start() else " " + " ".join(words)
        elif words:
            (start, stop), written = found.span("run"), _respaced(found, i2 - i1, words)
        else:
            (start, stop), written = _taken_out(found), ""
        changes.append((start, stop, written))
    end = len(text)
    for start, stop, written in sorted(changes, reverse=True):  # from the end: the places before stay where found
        if stop > end:
            return None
        text, end = text[:start] + written + text[stop:], start
    return text.split("\n")


def _run_place(old: list[str], i1: int, i2: int, text: str) -> re.Match[str] | None:
    """Where in ``text`` the rendered words ``old[i1:i2]`` stand, as the group ``run`` (for ``i1 == i2``: the empty
    place where words are added, right after ``old[i1 - 1]``, else right before ``old[i1]``) with the gaps around it
    (``before``, ``after``) and each of its words (``w0``, ``w1``, …), found by the words around it: as few of them as
    make it one place, on both sides or, where a word on one side is written otherwise in ``text`` (the renderer
    quotes it, the script does not), on the other alone. None when no number of them does."""
    run = _run_pattern(old[i1:i2])
    sides = [(True, True), (True, False), (False, True)]  # which sides' words to look for; a side found nowhere goes
    for reach in range(1, len(old) + 1):
        for side in list(sides):
            left = _GAP.join(map(_spelled, old[max(0, i1 - reach):i1])) if side[0] else ""
            right = _GAP.join(map(_spelled, old[i2:i2 + reach])) if side[1] else ""
            if not left and not right:  # no word on the sides looked at (the run begins or ends the command)
                sides.remove(side)
                continue
            if run:
                body = (f"{left}(?P<before>{_GAP})" if left else "") + f"(?P<run>{run})" + \
                       (f"(?P<after>{_GAP}){right}" if right else "")
            else:
                body = f"{left}(?P<run>)" + (_GAP + right if left and right else right)
            found = list(re.finditer(rf"(?<!\S)(?={body}(?!\S))", text))
            if len(found) == 1:
                return found[0]
            if not found:
                sides.remove(side)
        if not sides or (i1 - reach <= 0 and i2 + reach >= len(old)):
            return None
    return None


def _run_alone(run: list[str], text: str) -> re.Match[str] | None:
    """Where the rendered words ``run``, to be replaced or taken out, stand in ``text`` when the words around them
    do not say (the script orders its options otherwise than the renderer: ``srun -c 4 -n 4`` for ``srun
    --ntasks=4 --cpus-per-task=4``, ``--nv --cleanenv`` for ``--cleanenv --nv``): the one place they are written,
    spelt as :func:`_spelled` allows, with the groups :func:`_run_place` gives (the gaps around it where there are
    some); None when they stand nowhere or in several places."""
    found = list(re.finditer(rf"(?P<before>{_GAP})?(?<!\S)(?P<run>{_run_pattern(run)})(?!\S)(?P<after>{_GAP})?", text))
    return found[0] if len(found) == 1 else None


def _run_pattern(run: list[str]) -> str:
    """A pattern of the rendered words ``run`` as a script may write them (:func:`_spelled`), a gap apart, each word
    its own group (``w0``, ``w1``, …)."""
    return _GAP.join(f"(?P<w{k}>{_spelled(word)})" for k, word in enumerate(run))


#: a word the renderer double-quotes for its expansion, whose text is one a script may also write bare or quote
#: only after the ``=`` of an option (``"$IN"``, ``"--nnodes=$SLURM_JOB_NUM_NODES"``)
_QUOTED_PLAIN = re.compile(r'"(?P<name>-{0,2}[A-Za-z_][\w.-]*=)?(?P<value>[\w$.{}:/@%+,-]*)"')


#: an option word with its value after an ``=``, unquoted (``--nnodes=2``), whose value a script may also write as a
#: word of its own after the option's name (``--nnodes 2``): torchrun's and srun's option parsers read both alike
_OPTION_VALUE = re.compile(r"(?P<name>--?[A-Za-z][\w.-]*=)(?P<value>[^\s'\"\\#~][^\s'\"\\]*)")


def _spelled(word: str) -> str:
    """A pattern of the rendered ``word`` as a script may write it: itself, or for a word the renderer double-quotes
    only for its ``$`` (:data:`_QUOTED_PLAIN`), also bare (``$IN``) or quoted after its ``=`` (``--k="$X"``); for an
    option with its value after an ``=`` (:data:`_OPTION_VALUE`, or quoted so), also the value as a word of its own
    after the option's name (``--nnodes 2``, ``--rdzv-endpoint $head:29500``). Bash reads them alike as the reader
    took them; :func:`_reads_as` checks what is written."""
    plain = _QUOTED_PLAIN.fullmatch(word)
    if plain and "$" in word:
        name, value = plain.group("name") or "", plain.group("value")
        forms, values = [word, name + value, f'{name}"{value}"'], [value, f'"{value}"']
    else:
        option = _OPTION_VALUE.fullmatch(word)
        forms = [word]
        name, values = (option.group("name"), [option.group("value")]) if option else ("", [])
    alternatives = [re.escape(form) for form in forms]
    if name.startswith("-") and values and values[0]:
        alternatives.append(re.escape(name[:-1]) + _GAP + "(?:" + "|".join(map(re.escape, values)) + ")")
        short = _STEP_SHORT.get(name[:-1])
        if short:  # srun -n 4, -n4; ch-run -c /mnt/0
            alternatives.append(re.escape(short) + f"(?:{_GAP})?" + "(?:" + "|".join(map(re.escape, values)) + ")")
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


#: the one-letter form of a step's long options that take a value: srun's (as sbatch's) and Charliecloud's ch-run's
#: (--cd is -c there, --bind -b), by long name
_STEP_SHORT = {long: short for short, long in SBATCH_SHORT.items()} | {"--cd": "-c", "--bind": "-b"}
_STEP_SHORTS = frozenset(_STEP_SHORT.values())


def _taken_out(found: re.Match[str]) -> tuple[int, int]:
    """The text to take out for the words taken out that ``found`` placed: them and the gap before them, which
    ends the line when they were its last words; the gap after them instead when the gap before breaks the line
    and words follow on theirs (they were the first words of a continuation line), or when they begin the text."""
    gaps = found.groupdict()
    before, after = gaps.get("before"), gaps.get("after")
    if after is not None and (before is None or ("\n" in before and "\n" not in after)):
        return found.start("run"), found.end("after")
    return found.start("before"), found.end("run")


def _respaced(found: re.Match[str], count: int, words: list[str]) -> str:
    """The run of ``count`` words that ``found`` placed (each word a group ``w0``, ``w1``, …; the gaps between them
    may hold line continuations) with ``words`` in their place: a word for each word, in the same gaps, an option
    the script writes with its value as a word of its own kept so (:func:`_as_written`); more words go after the last,
    fewer leave out the gaps of those gone."""
    gaps = [found.string[found.end(f"w{k}"):found.start(f"w{k + 1}")] for k in range(count - 1)]
    n = min(len(words), count)
    words = [_as_written(found.group(f"w{k}"), word) if k < n else word for k, word in enumerate(words)]
    out = words[0] + "".join(gap + word for gap, word in zip(gaps[:n - 1], words[1:n]))
    return out + (" " + " ".join(words[n:]) if len(words) > n else "")


#: an option's name and the gap after it, as a script writes an option with its value as a word of its own
_OPTION_APART = re.compile(rf"(?P<name>--?[A-Za-z][\w.-]*)(?P<gap>{_GAP})\S")


def _as_written(was: str, word: str) -> str:
    """The rendered ``word`` that replaces the word written ``was``, spelt as ``was`` is where it is the same option
    written with its value apart (``--nnodes 2``, ``--nproc_per_node $X``): ``--nnodes 4`` for ``--nnodes=4``, the
    value quoted as the renderer quoted the whole word (``"$Y"`` for ``"--nproc_per_node=$Y"``). ``word`` itself for
    any other."""
    short = re.fullmatch(rf"(?P<name>-[A-Za-z])(?P<gap>{_GAP})?\S.*", was, re.S)
    if short is not None:  # -n1 or -n 1 for --ntasks=…: the new value in the same spelling
        option = _OPTION_VALUE.fullmatch(word)
        if option is not None and _STEP_SHORT.get(option.group("name")[:-1]) == short.group("name"):
            return short.group("name") + (short.group("gap") or "") + option.group("value")
        return word
    apart = _OPTION_APART.match(was)
    if apart is None:
        return word
    plain = _QUOTED_PLAIN.fullmatch(word)
    if plain and plain.group("name"):
        name, value = plain.group("name"), f'"{plain.group("value")}"'
    else:
        option = _OPTION_VALUE.fullmatch(word)
        if option is None:
            return word
        name, value = option.group("name"), option.group("value")
    if name[:-1] != apart.group("name") or value == '""':
        return word
    return name[:-1] + apart.group("gap") + value


#: an option with its value as the renderer writes it on an #SBATCH line (--time=02:00:00)
_LONG_VALUE = re.compile(r"(--[a-z][a-z-]*)=(\S+)")


def _value_changed(was: str, now: str, text: str) -> str | None:
    """The #SBATCH lines as read ``text`` with the value of one option changed from the rendered ``was``
    (``--time=60``) to ``now`` (``--time=02:00:00``) where the lines spell the option otherwise: ``-t 60``, ``-t60``,
    ``--time 60``, ``--tasks-per-node=2``. The person's spelling stays; None when the option with that value is not
    written once, as one of those spellings."""
    old, new = _LONG_VALUE.fullmatch(was), _LONG_VALUE.fullmatch(now)
    if not old or not new or old.group(1) != new.group(1):
        return None
    found = re.compile(rf"(?<!\S)({_spellings(old.group(1))}){re.escape(old.group(2))}(?!\S)")
    if len(found.findall(text)) != 1:
        return None
    return found.sub(lambda m: m.group(1) + new.group(2), text)


def _spellings(long: str, valued: bool = True) -> str:
    """A pattern of the ways an #SBATCH line spells the option ``long`` (``--time``): itself, an alias sbatch takes
    for it, its one-letter form; with ``valued``, up to where its value begins (``--time=``, ``--time ``, ``-t``)."""
    names = [long, *(alias for alias, meant in SBATCH_ALIASES.items() if meant == long)]
    shorts = [short for short, meant in SBATCH_SHORT.items() if meant == long]
    if not valued:
        return "|".join(map(re.escape, names + shorts))
    return "|".join([*(re.escape(name) + "(?:=| +)" for name in names), *(re.escape(short) + " *" for short in shorts)])


#: an #SBATCH option's value as sbatch's tokenizer reads it: quoted (it may hold blanks), else up to a blank
_DIRECTIVE_VALUE = r"(?:\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s\"']+)+"


def _options_taken_out(before: list[str], now: list[str], line: str) -> tuple[list[str], list[str]] | None:
    """For one #SBATCH line as read holding several options, rendered as ``before`` and now as ``now`` with fewer: the
    lines of ``before`` without the options no line of ``now`` has, and ``line`` without their words as written
    (``-p DGX``, ``--cpus-per-task=1``), the rest of it and its comment as they were (a value edited at the same time
    is for :func:`_word_changed`). None when an option of ``now`` is not one of ``before``, when an option gone is not
    written once on the line, or when the line would hold no option (it goes, as a line whose one option was emptied
    does)."""
    kept = {option_text(row).partition("=")[0] for row in now}
    gone = [row for row in before if option_text(row).partition("=")[0] not in kept]
    if len(before) - len(gone) != len(now):
        return None
    for row in gone:
        flag, valued, _ = option_text(row).partition("=")
        if not flag.startswith("--"):
            return None
        pattern = rf"(?:{_spellings(flag)}){_DIRECTIVE_VALUE}" if valued else f"(?:{_spellings(flag, False)})"
        found = re.compile(rf"\s*(?<!\S){pattern}(?!\S)")
        if len(found.findall(line)) != 1:
            return None
        line = found.sub("", line)
    if line[len("#SBATCH"):].strip().startswith("#") or not line[len("#SBATCH"):].strip():
        return None
    return [row for row in before if row not in gone], [line]


def option_text(row: str) -> str:
    """The options of a rendered #SBATCH line, without the comment the renderer writes after them (after two
    spaces)."""
    return row[len("#SBATCH "):].split("  #", 1)[0].strip()


def _one_directive_line(lines: list[str], before: list[str]) -> list[str]:
    """The #SBATCH ``lines`` of one #SBATCH line as read that held several options (``--nodes=2 --time=1:00:00``),
    again on one line, with the first comment after them. Its lines as rendered ``before`` the edit give the comment
    when none of ``lines`` has it: the option it was written after is gone (``--time=01:00:00 --nodes=2  # why``
    with the time emptied), the line and its comment are not."""
    if not lines or not all(line.startswith("#SBATCH ") for line in lines):
        return lines
    pieces = [line[len("#SBATCH "):].split("  #", 1) for line in lines]
    comments = [piece[1] for piece in pieces if len(piece) > 1] or \
               [line.split("  #", 1)[1] for line in before if "  #" in line]
    return ["#SBATCH " + " ".join(piece[0].strip() for piece in pieces) + ("  #" + comments[0] if comments else "")]
