"""Model ↔ form state for the widget builders, without ipywidgets.

A form is a list of :class:`Section` objects, each showing the fields of one model layer (the whole
model, or one attribute of it such as a workflow's ``job``). Every field becomes a :class:`Field`
with a control *kind* chosen from its metadata, a *key* (``time``, or ``slurm.time`` in a layered
form) and a control value in the simple types a widget holds (``bool``, ``str``).

:meth:`Form.read` turns control values back into a model. Only fields whose control differs from
what the base model would show are replaced, so values a person did not touch (for example the
``Verbatim`` words of a loaded script) survive exactly. Text that cannot become a value (``1.5`` in
a whole-number field, an unterminated quote in a command) is reported per key and never raises.

Everything here is pure and testable without a kernel; the views in :mod:`hpcwidgets.widgets.builder`
only move these values in and out of controls.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import shlex
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ParseError, Problem
from ..spec._meta import FieldSpec, count_from_text
# the rule of a field of shell words lives beside Verbatim, for the CLI too; WORD_FIELDS and WORDS_RULE stay importable
# from here, where the forms' builder takes them
from ..spec._words import WORD_FIELDS, WORDS_RULE, Verbatim, holds_words, words_from_text  # noqa: F401
from ..spec.common import Bind, EnvVar, bind_from_mount_text, mount_text
from ..spec.apptainer import ApptainerRun
from ..spec.slurm import SlurmJob
from ..spec.torchrun import Torchrun
from ..spec.workflow import SweepAxis, follow as follow_job

#: control kinds, from field metadata
KINDS = ("bool", "int", "choice", "partition", "text", "words", "lines", "binds", "env", "sweeps")

#: tuple[str] fields of shell code, written into the script line by line as typed
SHELL_LINE_FIELDS = ("setup", "commands", "after")

_SAFE_WORD = re.compile(r"[^\s'\"\\]+")


@dataclass(frozen=True)
class FormFinding:
    """A finding produced by the form itself (bad input or a model problem), shaped like a lint finding.

    ``field`` is the key of the control it belongs to ("" when it is about the whole model); ``path`` names
    that field as the model, its validation errors and ``--set`` do (``job.nodes`` for the control
    ``slurm.nodes``); ``line`` is 0 because the problem is in the form, not in a line of the preview.
    """

    code: str
    severity: str
    line: int
    message: str
    fix: Any = None
    field: str = ""
    path: str = ""

    def format(self) -> str:
        name = self.path or self.field
        where = f" [{name}]" if name else ""
        return f"{self.severity} {self.code}{where} {self.message}"


def control_kind(f: FieldSpec, owner: type | None = None) -> str | None:
    """The kind of control for a field, or None when a form does not show it (nested models)."""
    base = f.base_type
    if f.is_tuple:
        if base is Bind:
            return "binds"
        if base is EnvVar:
            return "env"
        if base is SweepAxis:
            return "sweeps"
        if base is str:
            return "words" if holds_words(f) else "lines"
        return None
    if base is bool:
        return "bool"
    if base is int:
        return "int"
    if base is str:
        if f.name == "partition" and owner is not None and getattr(owner, "kind", "") == "slurm.job":
            return "partition"
        if f.info.choices:
            return "choice" if len(f.info.choices) > 1 or f.default == "" else None
        return "text"
    return None


def choice_options(f: FieldSpec, value: Any = "") -> tuple[str, ...]:
    """The options of a choice control: the field's choices, "" first when empty is allowed, and the
    current value when it is none of them (so a loaded value round-trips and the model reports it)."""
    options = tuple(f.info.choices)
    if f.default == "" or f.optional:
        options = ("",) + options
    if isinstance(value, str) and value not in options:
        options = options + (value,)
    return options


def show_words(words: Iterable[str]) -> str:
    """Words as a person would type them (:func:`show_word`), separated by spaces."""
    return " ".join(show_word(w) for w in words)


def show_word(word: str) -> str:
    """One word of a words field: a :class:`Verbatim` word as the script wrote it (shell code that the field keeps
    while it is left as it is); a typed value bare when the shell would read it back as that same text (``$NAME``
    included), else in single quotes, which :func:`from_control` takes as text."""
    if isinstance(word, Verbatim):
        return str(word)
    word = str(word)
    return word if _reads_as_itself(word) else shlex.quote(word)


@functools.lru_cache(maxsize=4096)
def _reads_as_itself(word: str) -> bool:
    """Whether bash reads ``word`` unquoted as the value ``word``: no blank or quote, and nothing the shell would
    take as code (``$(…)``, a glob, a leading ``~``), which the field would otherwise show like a kept script word."""
    if not _SAFE_WORD.fullmatch(word):
        return False
    from ..parse.lexer import lex_word
    try:
        read = lex_word(word)
    except ParseError:
        return False
    return not read.verbatim and read.value == word


def read_words(label: str, text: str, kept: Iterable[str] = ()) -> tuple[Any, str]:
    """``(words, "")`` for the text of a words field, or ``(None, message)`` for a quote left open: the rule of
    :func:`hpcwidgets.spec._words.words_from_text` (a word shown for one of the ``kept`` :class:`Verbatim` words and
    left as it is comes back as that word; any other word is text), the message naming the field."""
    try:
        return words_from_text(text, kept), ""
    except ValueError as exc:
        return None, f"{label}: {exc}"


def to_control(kind: str, value: Any, owner: type | None = None) -> Any:
    """A model value as the control of ``kind`` holds it (``owner``: the model class the field belongs to)."""
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return "" if value is None else str(value)
    if kind in ("choice", "partition", "text"):
        return "" if value is None else str(value)
    items = tuple(value or ())
    if kind == "words":
        return show_words(items)
    return "\n".join(item_text(kind, v, owner) for v in items)


def item_text(kind: str, item: Any, owner: type | None = None) -> str:
    """One item of a list control of ``kind`` (one per line) as the control shows it."""
    if kind == "lines":
        return str(item)
    if kind == "binds":
        return bind_text(item, owner)
    if kind in ("env", "sweeps"):
        return item.to_token() if hasattr(item, "to_token") else str(item)
    raise ValueError(f"unknown control kind {kind!r}; use one of {', '.join(KINDS)}")


def from_control(kind: str, f: FieldSpec, raw: Any, current: Any = (), owner: type | None = None) -> tuple[Any, str]:
    """``(value, "")`` for a control value, or ``(None, message)`` when the text is not a value.

    ``current`` is the field's value the control was filled from (``owner``: the model class it belongs to): in a
    list control, each item still shown as it was comes back as that item (a script's shell code stays code, an
    entry over several lines stays one entry), and only what was typed is read afresh.
    Never raises for what a person can type; the message says what is wrong and how to write it.
    """
    label = f.info.label or f.name
    if kind == "bool":
        return bool(raw), ""
    text = "" if raw is None else str(raw)
    if kind == "int":
        try:
            value = count_from_text(f, text)
        except ValueError as exc:
            return None, str(exc)
        if value is None and not f.optional:
            return None, f"{label}: a whole number is required"
        return value, ""
    if kind in ("choice", "partition", "text"):
        return text.strip(), ""
    kept = tuple(current or ()) if isinstance(current, (tuple, list)) else ()
    if kind == "words":
        return read_words(label, text, kept)
    if kind not in KINDS:
        raise ValueError(f"unknown control kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "lines" and f.name in SHELL_LINE_FIELDS:
        broken = shell_problem(label, text)
        if broken:
            return None, broken
    out = []
    shell = kind == "lines" and f.name in SHELL_LINE_FIELDS
    for item, typed in kept_items(text, [(v, item_text(kind, v, owner)) for v in kept], shell=shell):
        if not typed:
            out.append(item)
            continue
        value, error = _item_from_line(kind, label, item)
        if error:
            return None, error
        out.append(value)
    return tuple(out), ""


def kept_items(text: str, shown: Sequence[tuple[Any, str]], *, shell: bool = False) -> list[tuple[Any, bool]]:
    """The items of a list control's ``text``, in order: ``(item, False)`` for a run of lines that still shows one
    of the ``shown`` ``(item, text)`` pairs (indentation aside), ``(line, True)`` for each other line with text.

    With ``shell`` (a box of shell lines) typed lines that make one command stay one item, their lines as typed (a
    here-document's indentation is its text): the lines of an entry shown over several lines that the person edited
    in place (:func:`_edited_entries`: a paragraph read from a script, such as a loop, stays one command after one of
    its lines changes), and a typed line that bash cannot read on its own (it ends in a continuation backslash, opens
    a here-document or a quote) with the lines after it until it can, as does an entry shown as it was whose last
    line ends in a continuation backslash when a line with text is typed below it (bash reads it on into that line).
    The lines of such a command keep their ends as typed (:func:`_as_typed`): a blank after a backslash, or inside a
    quoted string over several lines, is part of what runs."""
    candidates: dict[str, list[tuple[Any, list[str]]]] = {}
    for item, said in sorted(shown, key=lambda pair: -pair[1].count("\n")):  # the longest entry first
        lines = [ln.strip() for ln in said.split("\n")]
        candidates.setdefault(lines[0], []).append((item, lines))
    typed = text.split("\n")
    edited = _edited_entries(shown, typed) if shell else {}
    out: list[tuple[Any, bool]] = []
    i = 0
    while i < len(typed):
        line = typed[i].strip()
        same = None if i in edited else next(
            (item_lines for item_lines in candidates.get(line, ())
             if [ln.strip() for ln in typed[i:i + len(item_lines[1])]] == item_lines[1]), None)
        below = i + len(same[1]) if same is not None else 0
        if shell and below and _goes_on(_as_typed(typed[below - 1])) and below < len(typed) and typed[below].strip():
            same = None  # the entry's last line goes on into the line typed below it
        if same is not None:
            out.append((same[0], False))
            i += len(same[1])
            continue
        if line and shell and (i in edited or _may_go_on(line)):
            end = max(edited.get(i, 0), _command_end(typed, i))
            out.append(("\n".join([_as_typed(typed[i].lstrip()), *map(_as_typed, typed[i + 1:end])]), True))
            i = end
            continue
        if line:
            out.append((line, True))
        i += 1
    return out


def _as_typed(line: str) -> str:
    """A typed line of a shell box as bash reads it: as typed, without the carriage return a line pasted from a
    Windows file ends in (bash would keep it as a character of the last word)."""
    return line[:-1] if line.endswith("\r") else line


def _goes_on(line: str) -> bool:
    """Whether ``line`` ends in a continuation backslash (an odd number of them), which bash reads on into the next
    line; a backslash followed by a blank quotes the blank instead."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _edited_entries(shown: Sequence[tuple[Any, str]], typed: Sequence[str]) -> dict[int, int]:
    """The typed lines of each entry shown over several lines that the person edited in place (changed, added or
    took out some of its lines): the index of the first with text → the index after the last. Found by comparing the
    box as it was filled (the entries' lines, in order) with its lines now, indentation aside: a line now takes the
    entry of the line it stands for, a line added between two lines of one entry joins it, and lines added between
    two entries (a new command) or in place of lines of several belong to none.

    This runs on every keystroke in a box of shell lines. The comparison (:mod:`difflib`) is skipped when the box
    shows what it was filled with, or when :func:`_untouched_entries` proves it would find every line of the entries
    over several lines where it stands (the usual keystroke: in a line of its own, away from those entries)."""
    owner, before, several = _filled_lines(tuple(said for _, said in shown))
    if not any(several):
        return {}
    now = tuple([ln.strip() for ln in typed])
    if now == before or _untouched_entries(owner, several, before, now):
        return {}
    return _compared_entries(shown, owner, before, now)


@functools.lru_cache(maxsize=64)
def _filled_lines(said: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[str, ...], tuple[bool, ...]]:
    """The lines of a box filled with the entries shown as ``said`` (indentation aside), the entry each line belongs
    to, and whether each entry is shown over several lines (the same for every keystroke until the box is filled
    again)."""
    owner = tuple(k for k, text in enumerate(said) for _ in text.split("\n"))
    return owner, tuple([ln.strip() for text in said for ln in text.split("\n")]), tuple("\n" in text for text in said)


def _compared_entries(shown: Sequence[tuple[Any, str]], owner: Sequence[int], before: Sequence[str],
                      now: Sequence[str]) -> dict[int, int]:
    """:func:`_edited_entries` found by comparing the lines ``before`` (of the entries ``owner`` names) with the lines
    ``now`` (:mod:`difflib`)."""
    rows: dict[int, list[int]] = {}  # the typed lines of each entry
    touched: set[int] = set()  # the entries with a line changed, added or taken out
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, now, autojunk=False).get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                rows.setdefault(owner[i], []).append(j)
            continue
        within = {owner[i] for i in range(i1, i2)}
        if i1 == i2 and 0 < i1 < len(before) and owner[i1 - 1] == owner[i1]:
            within = {owner[i1]}  # lines added inside an entry
        touched |= within
        if len(within) == 1:
            rows.setdefault(next(iter(within)), []).extend(range(j1, j2))
    out: dict[int, int] = {}
    for k in touched:
        with_text = [j for j in rows.get(k, ()) if now[j]]
        if "\n" in shown[k][1] and with_text:
            out[min(with_text)] = max(rows[k]) + 1
    return out


def _untouched_entries(owner: Sequence[int], several: Sequence[bool], a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether :class:`difflib.SequenceMatcher` (``autojunk=False``) would match every line of ``a`` that belongs to
    an entry over several lines (``several[owner[i]]``) to its line in ``b``, and add no line inside such an entry:
    then :func:`_edited_entries` finds none edited. False when that is not certain (the comparison then runs).

    The lines the two have alike at the start (``p``) and the end (``s``) lie on two runs of matches; every other
    pair of equal lines is a stray match, and ``q`` the longest run of stray matches that one block could take. The
    matcher takes the longest block of its range first and goes on left and right of it: when the run at one end is
    longer than the other run and than ``q`` (or as long: see below), it takes that run; then, in what is left beside
    it, the other run (clipped to that range) when it is longer than ``q``. The lines between the two runs are then
    all it can touch: when they hold no line of an entry over several lines, and no entry spans them, none was edited.
    """
    na, nb = len(a), len(b)
    p = 0
    while p < na and p < nb and a[p] == b[p]:
        p += 1
    s = 0
    while s < na and s < nb and a[na - 1 - s] == b[nb - 1 - s]:
        s += 1
    d = nb - na
    # a stray match is of a line repeated in a or b, or of a line between the runs (a line met once in each, on the
    # runs, is on them)
    in_a, in_b = set(a), set(b)
    stray = set(a[p:na - s])
    stray.update(b[p:nb - s])
    for lines, distinct in ((a, in_a), (b, in_b)):
        if len(distinct) < len(lines):
            seen: set[str] = set()
            for line in lines:
                (stray if line in seen else seen).add(line)
    stray &= in_a
    stray &= in_b
    q = 0
    if stray:
        at: dict[str, list[int]] = {}
        for j, line in enumerate(b):
            if line in stray:
                at.setdefault(line, []).append(j)
        run: dict[tuple[int, int], int] = {}  # stray matches: the run ending at each
        for i, line in enumerate(a):
            for j in at.get(line, ()):
                if (j == i and i < p) or (j == i + d and i >= na - s):
                    continue  # on the run at the start or at the end
                length = run[(i, j)] = run.get((i - 1, j - 1), 0) + 1
                q = max(q, length)
    # of blocks as long, the matcher takes the one that starts first in a, then in b: the run at the start, at (0, 0),
    # wins every tie
    if p and p >= s and p >= q:  # the start first, then the end within what is left after it
        s = min(s, na - p, nb - p)
        if s and s <= q:
            return False
    elif s > p and s > q:  # the end first, then the start within what is left before it
        p = min(p, na - s, nb - s)
        if p and p < q:
            return False
    else:
        return False
    middle = range(p, na - s)
    if any(several[owner[i]] for i in middle):
        return False  # a line of such an entry among the lines between the runs
    edge = p if not middle else -1  # lines only added, or only taken out, at one place: inside an entry?
    return not (0 < edge < na and owner[edge - 1] == owner[edge])


#: a word that opens a compound command, which bash reads up to its closing word (``for … done``, ``if … fi``,
#: ``case … esac``), or an opening brace or parenthesis (a function's body, a subshell, ``$(``)
_OPENS_COMPOUND = re.compile(r"\b(?:for|while|until|if|case|select)\b|[{(]")


def _may_go_on(line: str) -> bool:
    """Whether bash may read ``line`` as the start of a command that goes on into the next lines: it ends in a
    backslash, opens a here-document (``<<``) or a compound command (:data:`_OPENS_COMPOUND`), or holds a quote of
    either kind an odd number of times. Most typed lines do none of these, and are read on their own without lexing
    them (this runs on every keystroke in a box)."""
    return line.endswith("\\") or "<<" in line or line.count("'") % 2 == 1 or line.count('"') % 2 == 1 \
        or _OPENS_COMPOUND.search(line) is not None


def _command_end(lines: Sequence[str], start: int) -> int:
    """The index after the last of ``lines`` that the shell command starting at ``start`` takes: the first run of
    lines bash reads as complete, and whose last line does not go on into the next with a continuation backslash
    (only ``start`` itself when there is none, which the box's check then reports)."""
    from ..parse.lexer import lex_script
    for end in range(start + 1, len(lines) + 1):
        if end < len(lines) and _goes_on(_as_typed(lines[end - 1])):
            continue
        try:
            lex_script("\n".join(map(_as_typed, lines[start:end])).strip() + "\n")
        except ParseError:
            continue
        return end
    return start + 1


def _item_from_line(kind: str, label: str, line: str) -> tuple[Any, str]:
    """``(item, "")`` for one typed line of a list control, or ``(None, message)`` naming how to write it."""
    if kind == "lines":
        return line, ""
    if kind == "binds":
        binds, error = read_binds(label, [line])
        return (binds[0] if binds else None), error
    if kind == "env":
        if "=" not in line:
            return None, f"{label}: {line!r} has no '='; write one NAME=value per line"
        return EnvVar.from_token(line), ""
    if ":" not in line:
        return None, f"{label}: {line!r} has no ':'; write one variable per line: NAME: value value …"
    return SweepAxis.from_token(line), ""


#: how the bind field writes a path holding ':' or ',' (Apptainer's own --mount form)
MOUNT_FORM = "type=bind,src=HOST PATH,dst=CONTAINER PATH[,ro]"


def bind_text(bind: Any, owner: type | None = None) -> str:
    """A bind as its line in the form: ``src:dst:mode``, or, when a path holds ':' or ',' (which that form
    cannot say), the ``--mount`` spec the preview writes, so the form reads its own text back. A program that
    reads each bind option as one bind (``owner.one_bind_per_option``: ch-run) takes ',' in a path as it is,
    so only ':' needs the --mount spec there (and the model reports that ch-run cannot bind such a path)."""
    if isinstance(bind, Bind) and bind.needs_mount_syntax():
        if not getattr(owner, "one_bind_per_option", False) or ":" in f"{bind.src}{bind.dst}":
            return mount_text(bind)
    return bind.to_token() if hasattr(bind, "to_token") else str(bind)


def read_binds(label: str, lines: Sequence[str]) -> tuple[Any, str]:
    """``(binds, "")`` for the bind field's lines (``src[:dst[:mode]]`` or a ``--mount`` spec), or ``(None,
    message)`` for a line that is neither. A ``src:dst`` line whose split leaves no absolute container path or
    no mode is a path holding ':': the message shows the --mount form, which can hold it."""
    out = []
    for line in lines:
        if line.startswith(("type=", "src=", "source=")):
            bind = bind_from_mount_text(line)
            if bind is None:
                return None, (f"{label}: {line!r} is not a bind mount Apptainer's --mount reads; write {MOUNT_FORM} "
                              "(a field holding ',' in double quotes: \"src=/a,b\")")
        else:
            bind = Bind.from_token(line)
            split = [p.message for p in bind.problems() if p.field in ("dst", "mode")]
            if split and ":" in line:
                return None, (f"{label}: {line!r} cannot be read as HOST:CONTAINER[:ro]: {split[0]}. A path "
                              f"holding ':' or ',' is written as Apptainer's --mount takes it: {_mount_guess(line)}")
        out.append(bind)
    return tuple(out), ""


def _mount_guess(line: str) -> str:
    """The --mount spec ``line`` most likely means (its last part that starts with / is the container path,
    what follows it the mode), or the general form when no part fits."""
    parts = line.split(":")
    for i in range(len(parts) - 1, 0, -1):
        mode = ":".join(parts[i + 1:])
        if parts[i].startswith("/") and not Bind("/", "/", mode).problems():
            return mount_text(Bind(":".join(parts[:i]), parts[i], mode))
    return MOUNT_FORM


def shell_problem(label: str, text: str) -> str:
    """What stops bash from reading the shell lines ``text`` on their own ("" when nothing), naming the
    field and the line as the person sees it in the box.

    Each field must be complete by itself: an unclosed quote would pair with a quote in the lines the
    script puts after it, so the script as a whole, and any message about it, would be wrong.
    Read as typed but for each line's indentation, blank lines included: a blank after a backslash quotes it, and a
    blank line ends the command a backslash continues, so stripping either would join lines bash reads apart.
    """
    from ..parse.lexer import lex_script
    lines = [_as_typed(ln).lstrip() for ln in text.split("\n")]
    try:
        lex_script("\n".join(lines) + "\n")
    except ParseError as exc:
        where = f"{label}, line {exc.line}" if 0 < exc.line <= len(lines) else label
        hint = (" (an apostrophe inside a word needs the word in double quotes: \"don't\")"
                if exc.message.startswith("unterminated single quote") else "")
        return f"{where}: bash cannot read this: {exc.message}{hint}"
    return ""


@dataclass(frozen=True)
class Field:
    """One control of a form: where its value lives and how it is shown."""

    key: str
    spec: FieldSpec
    kind: str
    section: "Section"

    @property
    def label(self) -> str:
        return self.spec.info.label or self.spec.name

    @property
    def help(self) -> str:
        return self.spec.info.help

    @property
    def advanced(self) -> bool:
        return self.spec.info.advanced

    @property
    def path(self) -> str:
        """The field as the model names it (``job.nodes``, ``launcher.node_rank``, ``program``): the name its
        validation errors use and ``hpcwidgets workflow --set`` takes."""
        return f"{self.section.attr}.{self.spec.name}" if self.section.attr else self.spec.name


@dataclass(frozen=True)
class Section:
    """The fields of one model layer shown in a form.

    ``attr`` names the root model's attribute holding the layer ("" for the root itself); ``prefix``
    is prepended to the keys (``slurm`` → ``slurm.time``). ``exclude`` hides fields the builder fills
    in itself (a workflow composes the container's command from the launcher).
    """

    title: str
    cls: type
    attr: str = ""
    prefix: str = ""
    exclude: tuple[str, ...] = ()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    @property
    def fields(self) -> tuple[Field, ...]:
        out = []
        for f in self.cls.field_specs():
            if f.name in self.exclude:
                continue
            kind = control_kind(f, self.cls)
            if kind is not None:
                out.append(Field(self.key(f.name), f, kind, self))
        return tuple(out)

    def layer(self, root: Any) -> Any:
        """The layer's model in ``root`` (None when the layer is off)."""
        return getattr(root, self.attr) if self.attr else root


class Form:
    """Control values ↔ model for a list of sections (pure: no widgets)."""

    def __init__(self, sections: Sequence[Section]):
        self.sections = tuple(sections)
        self.fields: dict[str, Field] = {}
        for s in self.sections:
            for fld in s.fields:
                if fld.key in self.fields:
                    raise ValueError(f"two fields share the key {fld.key!r}; give the sections different prefixes")
                self.fields[fld.key] = fld

    def values(self, model: Any) -> dict[str, Any]:
        """The control value of every field for ``model`` (defaults for a layer that is off)."""
        out: dict[str, Any] = {}
        for s in self.sections:
            layer = s.layer(model)
            if layer is None or not isinstance(layer, s.cls):
                layer = s.cls()
            for fld in s.fields:
                out[fld.key] = to_control(fld.kind, getattr(layer, fld.spec.name), s.cls)
        return out

    def read(self, base: Any, values: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        """The model the controls describe, and the keys whose text is not a value (with why).

        Fields whose control still shows the base model's value keep that value as it is; a field
        with bad text keeps the base value too, so the rest of the model stays usable.
        """
        errors: dict[str, str] = {}
        root = base
        for s in self.sections:
            layer = s.layer(root)
            if layer is None or not isinstance(layer, s.cls):
                continue  # the layer is off (or another class): nothing of this section applies
            changes: dict[str, Any] = {}
            for fld in s.fields:
                if fld.key not in values:
                    continue
                raw = values[fld.key]
                current = getattr(layer, fld.spec.name)
                if raw == to_control(fld.kind, current, s.cls):
                    continue
                value, error = from_control(fld.kind, fld.spec, raw, current, s.cls)
                if error:
                    errors[fld.key] = error
                    continue
                if value != current:
                    changes[fld.spec.name] = value
            if changes:
                layer = dataclasses.replace(layer, **changes)
                root = dataclasses.replace(root, **{s.attr: layer}) if s.attr else layer
        return root, errors

    def key_for(self, problem_field: str) -> str:
        """The control key a model problem belongs to (``job.time`` → ``slurm.time``), "" when none."""
        parts = problem_field.split(".") if problem_field else []
        if not parts:
            return ""
        for s in self.sections:
            if s.attr and parts[0] == s.attr and len(parts) > 1:
                key = s.key(parts[1])
                return key if key in self.fields else ""
        for s in self.sections:
            if not s.attr:
                key = s.key(parts[0])
                if key in self.fields:
                    return key
        return ""


def problem_findings(form: Form, problems: Iterable[Problem], code: str = "FORM",
                     severity: str = "error") -> list[FormFinding]:
    """Model problems as findings attached to the control they name."""
    out = []
    for p in problems:
        key = form.key_for(p.field)
        label = form.fields[key].label if key else ""
        message = p.message if (not label or p.message.startswith(label)) else f"{label}: {p.message}"
        out.append(FormFinding(code, severity, 0, message, None, key))
    return out


#: shell code typed into a field of values: a command substitution or arithmetic ($(…), $((…)), `…`), which the form
#: writes as text by the quoting contract (a ``\$`` before it asks for the text on purpose)
_TYPED_CODE = re.compile(r"(?<!\\)\$\(|`")


def typed_code_findings(form: Form, model: Any) -> list[FormFinding]:
    """A warning at each field of values (not a field of shell lines) holding shell code the person typed: the
    program gets the text ``$(hostname)``, not its output, as the form writes what is typed as data. Words kept from
    a loaded script (:class:`Verbatim`) are its own code and run as they did."""
    out = []
    for s in form.sections:
        layer = s.layer(model)
        if layer is None or not isinstance(layer, s.cls):
            continue
        for fld in s.fields:
            if fld.kind not in ("words", "text") or fld.spec.name in SHELL_LINE_FIELDS:
                continue
            value = getattr(layer, fld.spec.name)
            items = value if isinstance(value, (tuple, list)) else (value,)
            typed = next((w for w in items if w.__class__ is str and _TYPED_CODE.search(w)), None)
            if typed is not None:
                out.append(FormFinding("FORM", "warning", 0, (
                    f"{fld.label}: {typed!r} reaches the program as that text, not run: the form writes what you "
                    "type as text (only $NAME and ${NAME} expand); compute it in a set-up line (n=$(( … )), "
                    "host=$(hostname)) and write $n or $host here"), None, fld.key))
    return out


# ----------------------------------------------------------------------------------------------
# the workflow's layers and the values that flow between them

#: the layers of the workflow form as its controls name them (WorkflowBuilder's sections), for :func:`follow` called
#: without the form
_WORKFLOW_FORM = Form((Section("Slurm job", SlurmJob, attr="job", prefix="slurm"),
                       Section("Container", ApptainerRun, attr="container", prefix="container"),
                       Section("torchrun", Torchrun, attr="launcher", prefix="torchrun")))


def follow(before: Any, after: Any, user_set: set[str] | frozenset[str], gpu_vendor: str = "nvidia",
           form: Form | None = None) -> dict[str, Any]:
    """Control updates that keep a workflow's layers in step after a change (keys → control values).

    The rule of what follows what is the model's (:func:`hpcwidgets.spec.workflow.follow`, which ``--set`` applies
    too); this names its paths as ``form``'s controls (the workflow form's ``torchrun.nnodes`` for
    ``launcher.nnodes`` when no form is given). A key in ``user_set`` (a value typed by hand) is never overwritten.
    """
    form = form if form is not None else _WORKFLOW_FORM
    given = [form.fields[key].path for key in user_set if key in form.fields]
    out: dict[str, Any] = {}
    for path, value in follow_job(before, after, given, gpu_vendor).items():
        if path == "srun":  # the step layer added: the form's switch for it (the builder turns it on)
            out["srun.enabled"] = True
            continue
        key = form.key_for(path)
        if key:
            out[key] = to_control(form.fields[key].kind, value)
    return out


#: how to make a profile for a cluster none of the known profiles fits
DETECT_PROFILE = "hpcwidgets profile detect --name mysite -o ~/.config/hpcwidgets/profiles/mysite.toml"


def missing_partition(job: Any, profile_name: str, here: frozenset[str], fitting: Sequence[str]) -> str:
    """What to change when ``job`` names a partition the reachable Slurm (partitions ``here``) does not have, ""
    when it has them all or the job names none (Slurm's default partition takes it). ``fitting`` are the
    profiles made for this cluster: the form's profile not among them is the usual cause, a form made for
    another site."""
    wanted = [p.strip() for p in str(getattr(job, "partition", "") or "").split(",") if p.strip()]
    missing = [p for p in wanted if p not in here]
    if not missing:
        return ""
    said = (f"the Slurm here has no partition {', '.join(missing)} (it has: {', '.join(sorted(here)) or 'none'}), "
            "so sbatch would refuse the job; ")
    if profile_name in fitting:
        return said + "choose one of its partitions in Partition"
    form = f"the form uses cluster profile {profile_name}" if profile_name else "the form has no cluster profile"
    if fitting:
        return said + (f"{form}, which is for another cluster: choose this cluster's profile, "
                       f"{' or '.join(fitting)}, in Cluster profile, then one of its partitions")
    return said + (f"{form}, and no profile is made for this cluster: choose one of its partitions in Partition, "
                   f"or make a profile for it with: {DETECT_PROFILE}")


def limits_note(profile: Any, job: Any, key: str) -> str:
    """The profile's limit for a Slurm field, as a sentence for its help line ("" when none applies)."""
    if profile is None or job is None:
        return ""
    part = None
    name = getattr(job, "partition", "") or ""
    if name:
        part = next((p for p in profile.partitions if getattr(p, "name", None) == name
                     and p.is_slurm_partition), None)
    else:  # the entry the job's --qos/--constraint select (sites without user partitions), else the default
        part = profile.selected_by(job)
        if part is None:
            gpus = getattr(job, "gpus_per_node", None)
            part = profile.default(gpu=bool(isinstance(gpus, int) and gpus > 0))
    if part is None:
        return ""
    where = part.where()
    if key == "gpus_per_node":
        return f"{where}: at most {part.gpus_per_node} per node" if part.has_gpus else f"{where} has no GPUs"
    if key == "time" and part.max_time:
        return f"{where}: at most {part.max_time}"
    if key == "nodes" and part.max_nodes:
        return f"{where}: at most {part.max_nodes} nodes"
    gpu = bool(getattr(job, "gpus_on_each_node", 0))  # a GPU job gets only the GPU nodes, maybe smaller ones
    cpus, mem = part.cpus_for(gpu), part.mem_for(gpu)
    if key == "cpus_per_task" and cpus:
        return f"{where}: {cpus} CPUs per {'GPU node' if cpus != part.cpus_per_node else 'node'}"
    if key == "mem" and mem:
        return f"{where}: {mem} per {'GPU node' if mem != part.mem_per_node else 'node'}"
    return ""

