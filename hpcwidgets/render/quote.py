"""The quoting contract: a value a person types is data, never code.

A *value* is the string a field holds. When rendered into a shell word and evaluated by bash,
the word yields exactly that string, except that parameter references ``$NAME`` and ``${NAME}``
expand (people expect ``$SCRATCH``, ``$USER``, ``$SLURM_JOB_ID`` to work). Everything else is
inert: command substitution, backticks, globs, ``;``, ``|``, quotes, newlines, ``~``.
``\\$`` in a value stands for a literal dollar sign before a name (``\\$HOME`` yields ``$HOME``).

A word stays on one line (a line break is written ``$'\\n'``): definition files read lines starting with ``%`` as
sections, and callers may indent a command line by line. :func:`quote_lines` writes several lines of text (the script
of ``bash -c``) over those lines instead, for a step a person reviews.

:func:`expand` is the reference semantics (what bash must produce); :func:`quote` produces the
word. Property tests execute rendered words with bash and compare the two.

A :class:`~hpcwidgets.spec.Verbatim` value is shell text read from an existing script
(``$(pwd)``, ``"${files[@]}"``); it is written back unchanged and is never produced by a form.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping

from ..spec._words import Verbatim

# a parameter name; a lone "_" is bash's special $_ (the last argument), never a reference
_NAME = r"(?:[A-Za-z][A-Za-z0-9_]*|_[A-Za-z0-9_]+)"
#: a parameter reference in a value, or the escaped literal dollar ``\$``
_TOKEN = re.compile(rf"\\\$|\$(?:\{{(?P<braced>{_NAME})\}}|(?P<bare>{_NAME}))")
_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
#: what a word spanning lines still writes as ``$'…'`` pieces: control characters other than the line break and the
#: tab (which lay the text out), and three or more line breaks in a row (render_script folds blank-line runs to one)
_UNREADABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]+|\n{3,}")
#: a line with text on it
_TEXT_LINE = re.compile(r"^[ \t]*[^\s]", re.MULTILINE)


def references(value: str) -> list[str]:
    """Names of the parameters a value refers to, in order (``$A/${B}`` → ``['A', 'B']``)."""
    if isinstance(value, Verbatim):
        return re.findall(rf"\$\{{?({_NAME})", value)
    return [m.group("braced") or m.group("bare") for m in _TOKEN.finditer(value) if m.group(0) != "\\$"]


def expand(value: str, env: Mapping[str, str]) -> str:
    """What bash must produce for ``quote(value)`` given the environment ``env``."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "\\$":
            return "$"
        return env.get(m.group("braced") or m.group("bare"), "")
    return _TOKEN.sub(sub, value)


class _Memo(dict[str, str]):
    """Quoted words by value: a script repeats its values (paths, flags) and a form re-renders them on every
    keystroke. A known word is one dict lookup in C (``_QUOTED[value]``, or ``map(_QUOTED.__getitem__, words)``
    for a list); only an unknown one costs a Python call. Bounded, and quote is a pure function of the text.

    Only plain ``str`` keys may be looked up: a :class:`Verbatim` equals the plain text it holds, so it would be
    served that text's quoting."""

    __slots__ = ()

    def __missing__(self, value: str) -> str:
        if len(self) >= _QUOTED_MAX:
            self.clear()
        word = self[value] = _quote(value)
        return word


_QUOTED = _Memo()
_QUOTED_MAX = 4096
#: the memo's lookup, bound once (the memo is cleared, never replaced)
_QUOTED_WORD = _QUOTED.__getitem__
_PLAIN = {str}


def quote(value: str) -> str:
    """Render one value as one bash word obeying the contract."""
    if value.__class__ is str:
        return _QUOTED[value]
    if isinstance(value, Verbatim):
        return str(value)
    return _quote(str(value))


def quote_words(words: Iterable[str]) -> list[str]:
    """``[quote(w) for w in words]``; a list of plain text only (the usual step) is looked up in C, word by word."""
    if words.__class__ is not list:
        words = list(words)
    if _PLAIN.issuperset(map(type, words)):
        return [*map(_QUOTED_WORD, words)]
    return [*map(quote, words)]


#: ``\$`` before what would be no reference unescaped (``\$``, ``\$1``, ``\${``): the same literal dollar as a bare
#: ``$`` (not after a backslash: ``\\$`` is a backslash and a dollar, which a bare ``\$`` would not say)
_NEEDLESS_ESCAPE = re.compile(rf"(?<!\\)\\\$(?!\{{{_NAME}\}}|{_NAME})")


def _quote(value: str) -> str:
    if "\\$" in value:
        value = _NEEDLESS_ESCAPE.sub("$", value)  # one word per meaning: "\$" and "$" both write '$'
    if value == "":
        return "''"
    if _SAFE.fullmatch(value):
        return value
    if _CONTROL.search(value):
        # keep scripts line-oriented: control characters become $'\n' pieces
        return _pieces(value, _CONTROL, quote)
    if not _TOKEN.search(value):
        return "'" + value.replace("'", "'\"'\"'") + "'"
    return _double_quoted(value)


def _pieces(value: str, control: re.Pattern[str], text: Callable[[str], str]) -> str:
    """``value`` as ``text`` pieces between ``$'…'`` pieces for what ``control`` matches."""
    pieces = []
    pos = 0
    for m in control.finditer(value):
        if m.start() > pos:
            pieces.append(text(value[pos:m.start()]))
        pieces.append("$'" + "".join(_c_escape(c) for c in m.group(0)) + "'")
        pos = m.end()
    if pos < len(value):
        pieces.append(text(value[pos:]))
    return "".join(pieces)


def quote_lines(value: str) -> str:
    """:func:`quote`, except that a value holding several lines of text (the script of ``bash -c``) is one word
    written over those lines, which a person can review (``$'\\n'`` pieces cannot be read).

    Only for a word of a bash script whose caller joins words with spaces and `` \\`` line breaks and never changes
    the text (the step): not in a definition file, nor in a command indented line by line. One line of text with a
    line break at an end keeps its ``$'\\n'``, which shows the break better than a quote closed on the next line."""
    if value.__class__ is not str or "\n" not in value or len(_TEXT_LINE.findall(value)) < 2:
        return quote(value)
    if "\\$" in value:
        value = _NEEDLESS_ESCAPE.sub("$", value)
    return _pieces(value, _UNREADABLE, _lines)


def _double_quoted(value: str) -> str:
    """``"…"``: references expand, ``\\ " $ ` `` are escaped (a line break inside is literal)."""
    out = ['"']
    pos = 0
    for m in _TOKEN.finditer(value):
        out.append(_dq_escape(value[pos:m.start()]))
        out.append("\\$" if m.group(0) == "\\$" else m.group(0))
        pos = m.end()
    out.append(_dq_escape(value[pos:]))
    out.append('"')
    return "".join(out)


_DQ_SPECIAL = re.compile(r'([\\"$`])')


def _lines(text: str) -> str:
    """Text over several lines (line breaks and tabs its only control characters) as one word that keeps its lines.

    Single quotes show the text as written, with each reference spliced in as ``'"$NAME"'`` and each quote as
    ``'"'"'``; double quotes need ``\\`` before every ``\\ " $ ` `` the text holds. The form with fewer such
    interruptions is the easier one to read (single quotes on a tie: a ``$`` inside them is text, as in the program
    the word is written for, e.g. a per-task ``$SLURM_PROCID`` in ``bash -c '…'``)."""
    if not _CONTROL.search(text):
        return quote(text)  # a piece between two $'…' pieces may be one line
    tokens = list(_TOKEN.finditer(text))
    refs = [m for m in tokens if m.group(0) != "\\$"]
    escapes = len(_DQ_SPECIAL.findall(_TOKEN.sub("", text))) + len(tokens) - len(refs)
    if escapes < text.count("'") + len(refs):
        return _double_quoted(text)
    out = []
    pos = 0
    for m in refs:
        out.append(_single_quoted(text[pos:m.start()]))
        out.append(f'"{m.group(0)}"')
        pos = m.end()
    out.append(_single_quoted(text[pos:]))
    return "".join(out)


def _single_quoted(text: str) -> str:
    """Literal text in single quotes (a ``\\$`` written as ``$``); nothing for no text."""
    text = text.replace("\\$", "$")
    return "'" + text.replace("'", "'\"'\"'") + "'" if text else ""


def _dq_escape(text: str) -> str:
    return _DQ_SPECIAL.sub(r"\\\1", text)


def _c_escape(c: str) -> str:
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c, f"\\x{ord(c):02x}")


def join(words: Iterable[str]) -> str:
    """Quote and join an argv list into one command line."""
    return " ".join(quote_words(words))


_NAME_ONLY = re.compile(_NAME)


def assignment(name: str, value: str) -> str:
    """``NAME=value`` with the value quoted by the contract."""
    if not _NAME_ONLY.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid environment variable name")
    return f"{name}={quote(value)}"


def is_name(text: str) -> bool:
    return _NAME_ONLY.fullmatch(text) is not None


def is_plain(text: str) -> bool:
    """Whether ``text`` is a shell word as it stands: :func:`quote` writes it unchanged, and it reads the same in
    double quotes."""
    return _SAFE.fullmatch(text) is not None
