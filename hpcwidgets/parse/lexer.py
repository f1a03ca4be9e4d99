"""A bash-subset lexer: whole job scripts → logical commands, words → values.

The lexer is the ground floor of :mod:`hpcwidgets.parse` and of the linter. It reads the kind of
script researchers copy from wikis and slides and keeps enough detail to map commands onto models
and to report exact lines:

* :func:`lex_script` splits a script into :class:`Command` records, in order. Every source
  character belongs to exactly one command, so ``"".join(c.text for c in script.commands)`` is the
  original text. Blank lines, comment lines, ``#SBATCH`` directives and the shebang are commands
  of their own kind; so is every compound command (``if``/``for``/``while``/``until``/``case``/
  ``select``, ``{ … }``, ``( … )``, ``(( … ))``, ``[[ … ]]``, function definitions), kept as one
  opaque unit spanning its lines.
* Commands joined on one line by ``;``, ``&``, ``&&``, ``||``, ``|`` or ``|&`` are split into
  separate commands; each records the operator that *follows* it in :attr:`Command.joined_by`
  (the last command of a list has ``""``). A pipeline is therefore a run of commands whose
  ``joined_by`` is ``"|"``, ending with the first one that is not.
* :func:`lex_word` / :class:`Word` decode one shell word into the project's *value language*
  (see :mod:`hpcwidgets.render.quote`): the string bash would produce, except that ``$NAME`` and
  ``${NAME}`` stay as text and a literal dollar that would otherwise read as a reference is
  written ``\\$``. Words the value language cannot express (``$(…)``, globs, ``$1``, ``${X:-d}``,
  brace expansion, a leading ``~`` …) are flagged ``verbatim`` and carry
  :class:`~hpcwidgets.spec.Verbatim` text instead.

Only :class:`~hpcwidgets.errors.ParseError` is raised, for text bash would reject as well
(unterminated quotes, ``$(``, ``${``, backticks, here-documents and compound commands, a stray
operator or reserved word, a redirection without a target; a backslash at the very end of the file
is dropped, as bash does). Everything is a single pass of a hand-written scanner over the string; regular
expressions are only used to skip runs of ordinary characters.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Callable, Optional, TypeVar

from ..errors import ParseError
from ..spec._words import Verbatim

__all__ = [
    "Command", "KINDS", "Redirect", "Script", "Word", "compound_body", "directive_words", "first_command_line",
    "lex_command", "lex_script", "lex_word", "literal_value", "remember_last",
]

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def remember_last(build: Callable[[_In], _Out]) -> Callable[[_In], _Out]:
    """``build`` that keeps its result for the last argument it was given, by identity.

    For what a reader derives from a command list and then asks about once per command (the commands' offsets,
    first lines, compounds): a script of thousands of steps builds it once instead of once per step. The argument
    and its result are held as one tuple, read and replaced whole, so threads reading scripts side by side never
    pair one list with another's result; holding the argument also keeps its identity from being reused."""
    held: list[tuple[object, object]] = [(_NOTHING, None)]

    def remembered(arg: _In) -> _Out:
        key, value = held[0]
        if key is not arg:
            value = build(arg)
            held[0] = (arg, value)
        return value  # type: ignore[return-value]
    remembered.__name__ = build.__name__
    remembered.__doc__ = build.__doc__
    return remembered


_NOTHING = object()

#: the kinds a :class:`Command` can have
KINDS = ("simple", "compound", "comment", "blank", "directive", "shebang")

#: builtins whose ``NAME=value`` arguments are assignments (listed in :attr:`Command.assignments`)
DECLARATION_BUILTINS = frozenset({"export", "local", "readonly", "declare", "typeset"})

_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_SPECIAL_PARAMS = frozenset("@*#?$!-0123456789")
#: characters that end an unquoted word
_METACHARS = frozenset(" \t\n;&|<>()")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\+?=")
_BRACED_NAME = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
# runs of characters with no special meaning in each context (no backtracking: one class, one +)
_UNQUOTED_RUN = re.compile(r"[^ \t\n;&|<>()'\"\\$`*?\[{]+")
_DQ_RUN = re.compile(r'[^"\\$`]+')
_ANSI_RUN = re.compile(r"[^'\\]+")
_SUBST_RUN = re.compile(r"[^()\\'\"`$#]+")
_BRACE_RUN = re.compile(r"[^}\\'\"`$]+")
_BLANK_RUN = re.compile(r"[ \t]+")
_BRACE_EXPANSION = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")
_DIGITS = re.compile(r"[0-9]+")

_OPERATORS = (  # longest first within each leading character
    ";;&", ";;", ";&", ";", "&&", "&>>", "&>", "&", "||", "|&", "|",
    "<<<", "<<-", "<<", "<&", "<>", "<", ">>", ">&", ">|", ">", "(", ")",
)
_OPS_BY_CHAR: dict[str, tuple[str, ...]] = {}
for _op in _OPERATORS:
    _OPS_BY_CHAR.setdefault(_op[0], ())
    _OPS_BY_CHAR[_op[0]] += (_op,)
_REDIRECTS = frozenset({"<<<", "<<-", "<<", "<&", "<>", "<", ">>", ">&", ">|", ">", "&>>", "&>"})
_SEPARATORS = frozenset({";", "&", "&&", "||", "|", "|&"})
#: operators that need a command after them: a list goes on past the end of their line (a && ⏎ b)
LIST_OPERATORS = frozenset({"&&", "||", "|", "|&"})
_OPENERS = {"if": "fi", "case": "esac", "for": "done", "while": "done", "until": "done",
            "select": "done", "{": "}", "[[": "]]"}
_CLOSERS = frozenset({"fi", "esac", "done", "}"})
_STRAY = frozenset({"fi", "esac", "done", "}", "then", "do", "else", "elif"})
_KEEP_COMMAND_POSITION = frozenset({"then", "do", "else", "elif", "if", "while", "until", "!", "time", "{"})
_ANSI_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b",
                "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}
_HEX = frozenset("0123456789abcdefABCDEF")
_OCT = frozenset("01234567")
#: how deep ``$(…)``, ``${…}`` and compound commands may nest (bash allows more; scripts never need it)
MAX_NESTING = 200


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Word:
    """One shell word.

    ``raw`` is the exact source text (line continuations included), ``line``/``col`` its 1-based
    start. ``value`` is the decoded value (see the module docstring); for a ``verbatim`` word it is
    ``Verbatim(raw)``. ``quoted`` tells whether any quoting (``'…'``, ``"…"``, ``\\x``, ``$'…'``) was
    used.
    """

    raw: str
    value: str
    line: int
    col: int
    quoted: bool = False
    verbatim: bool = False


@dataclass(frozen=True)
class Redirect:
    """A redirection: ``[fd]op target``, e.g. ``2>&1`` is ``fd=2, op='>&'``, target ``1``.

    For a here-document (``<<`` / ``<<-``) ``target`` is the delimiter word, ``heredoc`` the body
    exactly as written (up to, not including, the delimiter line) and ``expands`` tells whether
    bash expands ``$…`` in it (an unquoted delimiter).
    """

    op: str
    target: Word
    line: int
    col: int
    raw: str
    fd: Optional[int] = None
    heredoc: Optional[str] = None
    expands: bool = True


@dataclass(frozen=True)
class Command:
    """One logical command of a script (see :data:`KINDS`).

    * ``text``: the exact source slice this command owns: from the end of the previous command
      (so leading indentation is included) through its separator and, for the last command on a
      line, its trailing comment, the newline and any here-document bodies.
    * ``line``/``col``: where the command's first token starts; ``end_line``: the last line of
      ``text``.
    * ``words``: for a simple command the words after the leading assignments, without
      redirections; for a compound command every word inside it, flattened (use ``text`` for
      the structure); empty for comments, directives, the shebang and blank lines.
    * ``assignments``: ``(name, value word)`` pairs: the leading ``NAME=value`` words, plus the
      ``NAME=value`` arguments of ``export``/``local``/``readonly``/``declare``/``typeset``
      (``NAME+=value`` appends are listed under ``NAME`` too).
    * ``redirects``: the command's redirections, here-documents included.
    * ``comment``: the trailing ``# comment`` (for comment/directive/shebang lines the line's
      comment itself), ``""`` if none.
    * ``joined_by``: the operator after this command that joins it to the next one on the same
      logical line (``;`` ``&`` ``&&`` ``||`` ``|`` ``|&``), ``""`` when a newline or the end of
      the text ends it.
    * ``offset``: where ``text`` starts in the script (``script.source[offset:offset + len(text)]``).
    """

    kind: str
    text: str
    line: int
    end_line: int
    col: int = 1
    words: tuple[Word, ...] = ()
    assignments: tuple[tuple[str, Word], ...] = ()
    redirects: tuple[Redirect, ...] = ()
    comment: str = ""
    joined_by: str = ""
    offset: int = 0

    @property
    def name(self) -> str:
        """The command name (first word's value) of a simple command, ``""`` if there is none."""
        return self.words[0].value if self.kind == "simple" and self.words else ""

    @property
    def argv(self) -> tuple[str, ...]:
        """The decoded values of :attr:`words`."""
        return tuple(w.value for w in self.words)

    @property
    def is_code(self) -> bool:
        """True for commands bash executes (``simple`` and ``compound``)."""
        return self.kind in ("simple", "compound")


@dataclass(frozen=True)
class Script:
    """A lexed script: its commands in source order and the text they came from."""

    commands: tuple[Command, ...]
    source: str

    @property
    def text(self) -> str:
        """The source reassembled from the commands (always equal to :attr:`source`)."""
        return "".join(c.text for c in self.commands)

    @cached_property
    def directives(self) -> tuple[Command, ...]:
        """Every ``#SBATCH`` line, including ones after the first command (sbatch ignores those)."""
        return tuple(c for c in self.commands if c.kind == "directive")

    @cached_property
    def code(self) -> tuple[Command, ...]:
        """The simple and compound commands (worked out once: the readers ask for them once per command)."""
        return tuple(c for c in self.commands if c.is_code)

    def at_line(self, line: int) -> Optional[Command]:
        """The first command whose text spans ``line``, or None."""
        for c in self.commands:
            if c.line <= line <= c.end_line:
                return c
        return None


# --------------------------------------------------------------------------------------------
# public functions


def lex_script(text: str, source: str = "") -> Script:
    """Split a whole script into :class:`Command` records (see the module docstring).

    ``source`` names the text in error messages (a file name). Raises
    :class:`~hpcwidgets.errors.ParseError` for text bash could not parse either.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected the script as str, got {type(text).__name__}: decode bytes first",
                         source=source)
    lexer = _Lexer(text, source)
    return Script(tuple(_Grouper(lexer, lexer.tokenize()).commands()), text)


def lex_command(text: str, source: str = "") -> Command:
    """Lex exactly one command (it may span continuation lines or be a compound command).

    Blank lines and comments around it are allowed; anything else is a ParseError that says
    how many commands were found.
    """
    script = lex_script(text, source)
    code = script.code
    if len(code) != 1:
        first = code[1] if len(code) > 1 else None
        what = "no command" if not code else f"{len(code)} commands"
        raise ParseError(f"expected one command, found {what}"
                         + (": pass a single command, or use lex_script for several" if code else ""),
                         first.line if first else 0, first.col if first else 0, source)
    return code[0]


def lex_word(text: str) -> Word:
    """Lex exactly one shell word (``"$SCRATCH"'/my dir'`` → value ``$SCRATCH/my dir``).

    No assignment or reserved-word interpretation is applied. Raises ParseError when the text is
    empty or holds more than one word.
    """
    lexer = _Lexer(text, "")
    pos = 0
    if not text or text[0] == "#" or (text[0] in _METACHARS and not (text[0] in "<>" and text[1:2] == "(")):
        raise ParseError("expected one shell word: the text is empty or starts with an operator or a blank "
                         "(quote it)", 1, 1)
    word, end = lexer.word(pos)
    if end != len(text):
        line, col = lexer.line_col(end)
        raise ParseError(f"expected one shell word, but it ends at {text[end]!r}: quote the whole value",
                         line, col)
    return word


def literal_value(text: str) -> str:
    """The value-language form of a literal string (no expansion at all, e.g. an ``#SBATCH`` option).

    Only the dollars that would otherwise read as references are escaped: ``$HOME`` →
    ``\\$HOME``, ``5$`` stays ``5$``.
    """
    return _escape_dollars(text) if "$" in text else text


def directive_words(command: Command) -> tuple[Word, ...]:
    """The options of an ``#SBATCH`` line, split the way sbatch splits them.

    sbatch's rules (not bash's): blanks separate words, ``'`` and ``"`` quote (the quotes are
    removed), a backslash makes the next character literal even inside quotes, an unquoted ``#``
    anywhere ends the line, and nothing is expanded (``$HOME`` stays literal, so its value is
    ``\\$HOME``). A quote left open is a ParseError, as it is a fatal error for sbatch.
    """
    if command.kind != "directive":
        raise ParseError(f"line {command.line} is a {command.kind} line, not an #SBATCH directive",
                         command.line, command.col)
    line_text = command.text.split("\n", 1)[0]
    n = len(line_text)
    i = len("#SBATCH")
    words: list[Word] = []
    space = " \t\n\v\f\r"
    while True:
        while i < n and line_text[i] in space:
            i += 1
        if i >= n or line_text[i] == "#":
            break
        start = i
        chars: list[str] = []
        quote_char = ""
        quoted = False
        while i < n and (quote_char or line_text[i] not in space):
            c = line_text[i]
            if c == "\\":
                quoted = True
                if i + 1 < n:
                    chars.append(line_text[i + 1])
                i += 2
                continue
            if quote_char:
                if c == quote_char:
                    quote_char = ""
                else:
                    chars.append(c)
            elif c == '"' or c == "'":
                quote_char = c
                quoted = True
            elif c == "#":
                break
            else:
                chars.append(c)
            i += 1
        if quote_char:
            raise ParseError(f"unmatched {quote_char} in #SBATCH line: close the quote (sbatch stops with an error)",
                             command.line, start + 1)
        if chars or quoted:
            raw = line_text[start:min(i, n)]
            words.append(Word(raw, literal_value("".join(chars)), command.line, start + 1, quoted, False))
        if i < n and line_text[i] == "#":
            break
    return tuple(words)


def first_command_line(script: Script) -> int:
    """Line of the first command bash executes (``#SBATCH`` lines after it are ignored); 0 if none."""
    for c in script.commands:
        if c.is_code:
            return c.line
    return 0


def compound_body(command: Command) -> tuple[Command, ...]:
    """The commands a compound command holds, one level down, with their own lines.

    Loops, ifs, ``case`` items, ``{ … }``, ``( … )`` and function definitions keep their commands
    inside one opaque :class:`Command`; launches there run as well (a function's when it is called),
    so a reader that checks them needs them on their own. The compound's own syntax (keywords, a
    ``for`` or ``case`` header, ``case`` patterns, the function header, redirections after the
    closing keyword) is blanked out and the rest lexed again: line, column and offset of every
    command, word and redirection are those in the script ``command`` came from; ``text`` is its slice
    of the script with that syntax blanked. A nested compound comes back as one compound command:
    call this again for its body.
    ``[[ … ]]`` and ``(( … ))`` hold no commands (empty result).
    """
    if command.kind != "compound":
        return ()
    text = command.text
    toks = _Lexer(text, "").tokenize()
    blanked = _blanked_body(text, toks)
    if blanked is None:
        return ()
    try:
        inner = lex_script(blanked)
    except ParseError:
        return ()  # the whole script lexed, so this is a body form the blanking does not know: no commands
    # where the text starts in the script, from where its first token is (the command's line and column)
    first = next(t.start for t in toks if t.kind not in ("nl", "com"))
    before = text.count("\n", 0, first)
    line, col = command.line - 1 - before, 0 if before else command.col - 1 - first
    return tuple(_moved(c, line, col, command.offset) for c in inner.commands)


def _blanked_body(text: str, toks: list[Any]) -> str | None:
    """A compound command's text with its own syntax blanked out (see :func:`compound_body`), None when it has
    a form the blanking does not know."""
    spans = _syntax_spans(toks)
    if spans is None:
        return None
    chars = list(text)
    for start, end in spans:
        for k in range(start, end):
            if chars[k] != "\n":
                chars[k] = " "
    return "".join(chars)


def if_branches(command: Command) -> tuple[tuple[str, int, int], ...]:
    """The branches of an ``if`` compound, outermost level only: for each ``if``/``elif`` its condition and then
    the ``else`` (when written), as ``(condition, start, end)``, where ``start``/``end`` are the offsets in the
    script of the commands the branch runs and ``condition`` is the text between the keyword and its ``then``
    ("" for the ``else``). () for any other compound, or an ``if`` this reader cannot walk."""
    if command.kind != "compound" or command.text.lstrip()[:2] != "if":
        return ()
    text = command.text
    spans = _syntax_spans(_Lexer(text, "").tokenize())
    if not spans or text[spans[0][0]:spans[0][1]] != "if":
        return ()
    keywords = [(text[a:b].split(None, 1)[0] if text[a:b].strip() else "", a, b) for a, b in spans]
    out: list[tuple[str, int, int]] = []
    base = command.offset
    for k in range(len(keywords) - 1):
        word, _, end = keywords[k]
        following = keywords[k + 1][1]
        if word in ("if", "elif"):
            if keywords[k + 1][0] != "then" or k + 2 >= len(keywords):
                return ()
            condition = text[end:following]
            body_start, body_end = keywords[k + 1][2], keywords[k + 2][1]
            out.append((condition, base + body_start, base + body_end))
        elif word == "else":
            out.append(("", base + end, base + following))
    return tuple(out)


def case_branches(command: Command) -> tuple[tuple[str, int, int], ...]:
    """The items of a ``case`` compound, as :func:`if_branches` gives an ``if``'s branches: for each item
    ``("case SUBJECT in PATTERNS", start, end)``, where SUBJECT is the word between ``case`` and ``in``, PATTERNS
    the item's patterns as written (``2|3``, ``*``, ``1``) and ``start``/``end`` the offsets in the script of the
    commands it runs. An item runs when its patterns match and no earlier item's do. () for any other compound,
    or a ``case`` whose items may run on into the next (``;&``, ``;;&``): each item's condition is then not its
    own."""
    if command.kind != "compound" or command.text.lstrip()[:4] != "case":
        return ()
    text = command.text
    spans = _syntax_spans(_Lexer(text, "").tokenize())
    if not spans or len(spans) < 3 or text[spans[0][0]:spans[0][1]] != "case":
        return ()
    header = text[spans[1][0]:spans[1][1]].split()
    if len(header) != 2 or header[1] != "in":
        return ()
    subject = header[0]
    out: list[tuple[str, int, int]] = []
    base = command.offset
    rest = spans[2:]
    for k, (start, end) in enumerate(rest[:-1]):
        piece = text[start:end].strip()
        if piece in (";&", ";;&"):
            return ()
        if piece == ";;":
            continue
        patterns = piece[1:] if piece.startswith("(") else piece
        out.append((f"case {subject} in {patterns[:-1].strip()}", base + end, base + rest[k + 1][0]))
    return tuple(out)


def _moved(cmd: Command, line: int, col: int, offset: int) -> Command:
    """``cmd``, lexed from a text on its own, placed where that text starts in the script: ``line`` lines
    and (on the text's first line) ``col`` columns further, at ``offset``."""
    def word(w: Word) -> Word:
        return replace(w, line=w.line + line, col=w.col + (col if w.line == 1 else 0))
    return replace(cmd, line=cmd.line + line, end_line=cmd.end_line + line, col=cmd.col + (col if cmd.line == 1 else 0),
                   words=tuple(word(w) for w in cmd.words),
                   assignments=tuple((name, word(w)) for name, w in cmd.assignments),
                   redirects=tuple(replace(r, target=word(r.target), line=r.line + line,
                                           col=r.col + (col if r.line == 1 else 0)) for r in cmd.redirects),
                   offset=cmd.offset + offset)


# --------------------------------------------------------------------------------------------
# value assembly


def _escape_dollars(lit: str) -> str:
    """Escape the literal dollars that the value language would otherwise read as ``$NAME``/``${NAME}``/``\\$``."""
    out: list[str] = []
    pos = 0
    k = lit.find("$")
    n = len(lit)
    while k >= 0:
        nxt = lit[k + 1] if k + 1 < n else ""
        lone_underscore = nxt == "_" and (k + 2 >= n or lit[k + 2] not in _NAME_CHARS)
        braced = nxt == "{" and _BRACED_NAME.match(lit, k + 1) and not lit.startswith("{_}", k + 1)
        if (k > 0 and lit[k - 1] == "\\") or (nxt in _NAME_START and not lone_underscore) or braced:
            out.append(lit[pos:k])
            out.append("\\$")
            pos = k + 1
        k = lit.find("$", k + 1)
    out.append(lit[pos:])
    return "".join(out)


def _assemble(segs: list) -> Optional[str]:
    """Join decoded segments into a value; None when the value language cannot express them.

    A segment is literal text (``str``) or a parameter reference ``(name, braced)``.
    """
    if len(segs) == 1 and type(segs[0]) is str:
        s = segs[0]
        return _escape_dollars(s) if "$" in s else s
    items: list = []
    buf: list[str] = []
    for s in segs:
        if type(s) is str:
            buf.append(s)
        else:
            if buf:
                items.append("".join(buf))
                buf = []
            items.append(s)
    if buf:
        items.append("".join(buf))
    out: list[str] = []
    last = len(items) - 1
    for idx, it in enumerate(items):
        if type(it) is str:
            out.append(_escape_dollars(it) if "$" in it else it)
            continue
        name, braced = it
        if idx > 0 and type(items[idx - 1]) is str and items[idx - 1].endswith("\\"):
            return None  # a literal backslash right before a reference would read as "\$"
        if not braced and idx < last and type(items[idx + 1]) is str and items[idx + 1][:1] in _NAME_CHARS:
            braced = True  # "$A"B: keep the name from running on
        out.append("${" + name + "}" if braced else "$" + name)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# tokens


class _Tok:
    __slots__ = ("kind", "start", "end", "text", "word", "body", "expands", "delim")

    def __init__(self, kind: str, start: int, end: int, text: str = "", word: Optional[Word] = None):
        self.kind = kind  # "w" word, "op", "nl" newline, "com" comment, "eof"
        self.start = start
        self.end = end
        self.text = text
        self.word = word
        self.body: Optional[str] = None
        self.expands = True
        self.delim = ""

    def __repr__(self) -> str:  # debugging aid
        return f"_Tok({self.kind}, {self.start}, {self.end}, {self.text!r})"


class _Lexer:
    """Character-level scanning: tokens, words, substitutions, here-documents."""

    def __init__(self, src: str, source: str):
        self.src = src
        self.n = len(src)
        self.source = source
        starts = [0]
        find = src.find
        k = find("\n")
        while k >= 0:
            starts.append(k + 1)
            k = find("\n", k + 1)
        self.starts = starts
        self.depth = 0

    # ---- positions and errors
    def line_col(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def error(self, message: str, offset: int) -> ParseError:
        line, col = self.line_col(min(offset, self.n))
        return ParseError(message, line, col, self.source)

    # ---- token stream
    def tokenize(self) -> list[_Tok]:
        src, n = self.src, self.n
        toks: list[_Tok] = []
        append = toks.append
        pending: list[_Tok] = []  # here-document operators waiting for their body
        want_delim: Optional[_Tok] = None
        i = 0
        while True:
            # blanks and line continuations between tokens
            while i < n:
                c = src[i]
                if c == " " or c == "\t":
                    m = _BLANK_RUN.match(src, i)
                    i = m.end()  # type: ignore[union-attr]
                elif c == "\\" and (i + 1 == n or src[i + 1] == "\n"):
                    # on the last line too: bash removes the pair, and the command ends at the end of the file; a
                    # backslash that is the file's last byte (no final line break) it drops as well
                    i = min(i + 2, n)
                else:
                    break
            if i >= n:
                if want_delim is not None:
                    raise self.error(f"`{want_delim.text}` needs a delimiter word after it", want_delim.start)
                if pending:
                    raise self._unterminated_heredoc(pending[0])
                append(_Tok("eof", n, n))
                return toks
            c = src[i]
            if c == "\n":
                if want_delim is not None:
                    raise self.error(f"`{want_delim.text}` needs a delimiter word after it", want_delim.start)
                tok = _Tok("nl", i, i + 1)
                i += 1
                if pending:
                    i = self._heredoc_bodies(pending, i)
                    pending = []
                    tok.end = i
                append(tok)
                continue
            if c == "#":
                k = src.find("\n", i)
                if k < 0:
                    k = n
                append(_Tok("com", i, k, src[i:k]))
                i = k
                continue
            if c in _OPS_BY_CHAR and not ((c == "<" or c == ">") and i + 1 < n and src[i + 1] == "("):
                if c == "(" and i + 1 < n and src[i + 1] == "(":
                    # (( arithmetic )) is one opaque word
                    end = self.balanced(i, "((")
                    line, col = self.line_col(i)
                    raw = src[i:end]
                    append(_Tok("w", i, end, raw, Word(raw, Verbatim(raw), line, col, False, True)))
                    i = end
                    continue
                for op in _OPS_BY_CHAR[c]:
                    if src.startswith(op, i):
                        break
                if want_delim is not None:
                    raise self.error(f"`{want_delim.text}` needs a delimiter word after it, not `{op}`", i)
                tok = _Tok("op", i, i + len(op), op)
                if op == "<<" or op == "<<-":
                    want_delim = tok
                append(tok)
                i += len(op)
                continue
            word, end = self.word(i)
            # reserved words are recognised after line continuations are removed ("fi\<newline>")
            text = word.value if "\\\n" in word.raw and not (word.quoted or word.verbatim) else word.raw
            tok = _Tok("w", i, end, text, word)
            append(tok)
            if want_delim is not None:
                want_delim.delim, want_delim.expands = _heredoc_delimiter(word.raw)
                pending.append(want_delim)
                want_delim = None
            i = end

    def _unterminated_heredoc(self, tok: _Tok) -> ParseError:
        return self.error(f"here-document `{tok.text}{tok.delim}` has no closing line `{tok.delim}`: "
                          f"add a line holding exactly {tok.delim!r}"
                          + (" (with <<- leading tabs are allowed)" if tok.text == "<<-" else ""), tok.start)

    def _heredoc_bodies(self, pending: list[_Tok], i: int) -> int:
        src, n = self.src, self.n
        for tok in pending:
            body_start = i
            strip = tok.text == "<<-"
            while True:
                if i >= n:
                    raise self._unterminated_heredoc(tok)
                k = src.find("\n", i)
                line_end = n if k < 0 else k
                line = src[i:line_end]
                if (line.lstrip("\t") if strip else line) == tok.delim:
                    tok.body = src[body_start:i]
                    i = n if k < 0 else k + 1
                    break
                i = n if k < 0 else k + 1
        return i

    # ---- words
    def word(self, i: int) -> tuple[Word, int]:
        """Scan one word starting at ``i``; returns it and the offset after it."""
        src, n = self.src, self.n
        start = i
        m = _UNQUOTED_RUN.match(src, i)
        if m is not None:  # fast path: a word of ordinary characters only
            end = m.end()
            if (end >= n or (src[end] in _METACHARS and src[end] != "(")) and src[i] != "~":
                raw = m.group()
                line = bisect_right(self.starts, i)
                return Word(raw, raw, line, i - self.starts[line - 1] + 1, False, False), end
        segs: list = []
        skel: list[str] = []  # unquoted text, quoted parts as "\0": for glob/brace detection
        quoted = False
        verbatim = src[i] == "~"
        special = False
        if (src[i] == "<" or src[i] == ">") and i + 1 < n and src[i + 1] == "(":
            i = self.balanced(i + 1, src[i] + "(")  # process substitution
            verbatim = True
        while i < n:
            m = _UNQUOTED_RUN.match(src, i)
            if m is not None:
                t = m.group()
                segs.append(t)
                skel.append(t)
                i = m.end()
                if i >= n:
                    break
            c = src[i]
            if c in _METACHARS:
                if c == "(" and i > start and src[i - 1] == "=" and _ASSIGN.fullmatch(src, start, i):
                    i = self.balanced(i, "(")  # NAME=( array elements )
                    verbatim = True
                    continue
                break
            if c == "'":
                k = src.find("'", i + 1)
                if k < 0:
                    raise self.error("unterminated single quote: add the closing '", i)
                segs.append(src[i + 1:k])
                skel.append("\0")
                quoted = True
                i = k + 1
            elif c == '"':
                i, v = self.double_quoted(i, segs)
                verbatim = verbatim or v
                skel.append("\0")
                quoted = True
            elif c == "\\":
                if i + 1 >= n:
                    i += 1  # the file's last byte: bash drops it, as it does a continuation on the last line
                    continue
                d = src[i + 1]
                if d == "\n":
                    i += 2  # a continuation on the last line ends the word (and the command) at the end of the file
                    continue
                segs.append(d)
                skel.append("\0")
                quoted = True
                i += 2
            elif c == "$":
                i, v, q = self.dollar(i, segs, False)
                verbatim = verbatim or v
                quoted = quoted or q
                skel.append("\0")
            elif c == "`":
                i = self.backtick(i)
                verbatim = True
                skel.append("\0")
            elif c == "*" or c == "?":
                verbatim = True
                segs.append(c)
                skel.append(c)
                i += 1
            else:  # "[" or "{"
                special = True
                segs.append(c)
                skel.append(c)
                i += 1
        if special and not verbatim:
            sk = "".join(skel)
            b = sk.find("[")
            if (b >= 0 and sk.find("]", b + 2) > 0) or ("{" in sk and _BRACE_EXPANSION.search(sk)):
                verbatim = True
        raw = src[start:i]
        value: Optional[str] = None
        if not verbatim:
            value = _assemble(segs) if segs else ""
            if value is None:
                verbatim = True
        line, col = self.line_col(start)
        return Word(raw, Verbatim(raw) if verbatim else value, line, col, quoted, verbatim), i  # type: ignore[arg-type]

    def double_quoted(self, i: int, segs: list) -> tuple[int, bool]:
        """Scan ``"…"`` starting at the quote; returns (offset after it, verbatim)."""
        src, n = self.src, self.n
        j = i + 1
        verbatim = False
        while True:
            m = _DQ_RUN.match(src, j)
            if m is not None:
                segs.append(m.group())
                j = m.end()
            if j >= n:
                raise self.error('unterminated double quote: add the closing "', i)
            c = src[j]
            if c == '"':
                return j + 1, verbatim
            if c == "\\":
                if j + 1 >= n:
                    raise self.error('unterminated double quote: add the closing "', i)
                d = src[j + 1]
                if d == "\n":
                    j += 2
                elif d in '$`"\\':
                    segs.append(d)
                    j += 2
                else:
                    segs.append("\\")
                    j += 1
            elif c == "$":
                j, v, _ = self.dollar(j, segs, True)
                verbatim = verbatim or v
            else:  # backtick
                j = self.backtick(j)
                verbatim = True

    def dollar(self, i: int, segs: list, in_dq: bool) -> tuple[int, bool, bool]:
        """Scan what follows a ``$``; returns (offset after it, verbatim, quoted)."""
        src, n = self.src, self.n
        if i + 1 >= n:
            segs.append("$")
            return i + 1, False, False
        c = src[i + 1]
        if c in _NAME_START:
            m = _NAME.match(src, i + 1)
            if m.group() == "_":  # type: ignore[union-attr]  # $_ is bash's special "last argument"
                return m.end(), True, False  # type: ignore[union-attr]
            if src.startswith("\\\n", m.end()):  # type: ignore[union-attr]
                # "$A\<newline>0": bash removes the continuation first and reads $A0; kept as written
                return m.end(), True, False  # type: ignore[union-attr]
            segs.append((m.group(), False))  # type: ignore[union-attr]
            return m.end(), False, False  # type: ignore[union-attr]
        if c == "{":
            end = self.braced(i + 1)
            inner = src[i + 2:end - 1]
            if _NAME.fullmatch(inner) and inner != "_":
                segs.append((inner, True))
                return end, False, False
            return end, True, False
        if c == "(":
            return self.balanced(i + 1, "$("), True, False
        if c in _SPECIAL_PARAMS:
            return i + 2, True, False
        if not in_dq:
            if c == "'":
                return self.ansi_c(i, segs), False, True
            if c == '"':  # $"…" (translated string): read as an ordinary double-quoted string
                end, v = self.double_quoted(i + 1, segs)
                return end, v, True
        segs.append("$")
        return i + 1, False, False

    def ansi_c(self, i: int, segs: list) -> int:
        """Decode ``$'…'`` starting at the dollar; returns the offset after the closing quote."""
        src, n = self.src, self.n
        j = i + 2
        out: list[str] = []
        cut = False  # bash ends the string at a NUL
        while True:
            m = _ANSI_RUN.match(src, j)
            if m is not None:
                if not cut:
                    out.append(m.group())
                j = m.end()
            if j >= n:
                raise self.error("unterminated $'…' string: add the closing '", i)
            if src[j] == "'":
                segs.append("".join(out))
                return j + 1
            if j + 1 >= n:
                raise self.error("unterminated $'…' string: add the closing '", i)
            d = src[j + 1]
            j += 2
            ch: Optional[str]
            if d in _ANSI_SIMPLE:
                ch = _ANSI_SIMPLE[d]
            elif d in _OCT:
                k = j
                while k < n and k < j + 2 and src[k] in _OCT:
                    k += 1
                ch = chr(int(src[j - 1:k], 8) & 0xFF)
                j = k
            elif d in "xuU":
                limit = {"x": 2, "u": 4, "U": 8}[d]
                k = j
                while k < n and k < j + limit and src[k] in _HEX:
                    k += 1
                if k == j:
                    ch = "\\" + d
                else:
                    code = int(src[j:k], 16)
                    ch = chr(code) if code <= 0x10FFFF and not (0xD800 <= code <= 0xDFFF) else src[j - 2:k]
                    j = k
            elif d == "c" and j < n and src[j] != "'":
                ch = chr(ord(src[j]) & 0x1F) if ord(src[j]) < 128 else src[j]
                j += 1
            else:
                ch = "\\" + d
            if ch == "\0":
                cut = True
            elif not cut:
                out.append(ch)

    def backtick(self, i: int) -> int:
        """Skip a ```…``` command substitution starting at the backtick."""
        src, n = self.src, self.n
        j = i + 1
        while j < n:
            c = src[j]
            if c == "\\":
                j += 2
                continue
            if c == "`":
                return j + 1
            j += 1
        raise self.error("unterminated backtick command substitution: add the closing ` (or use $(…))", i)

    def balanced(self, i: int, what: str) -> int:
        """Skip from the ``(`` at ``i`` to after its matching ``)``, honouring quotes and nesting."""
        src, n = self.src, self.n
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nesting deeper than {MAX_NESTING} levels: simplify the command", i)
        depth = 0
        j = i
        try:
            while j < n:
                c = src[j]
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        return j + 1
                elif c == "\\":
                    j += 2
                    continue
                elif c == "'":
                    k = src.find("'", j + 1)
                    if k < 0:
                        raise self.error("unterminated single quote: add the closing '", j)
                    j = k + 1
                    continue
                elif c == '"':
                    j, _ = self.double_quoted(j, [])
                    continue
                elif c == "`":
                    j = self.backtick(j)
                    continue
                elif c == "$":
                    if j + 1 < n and src[j + 1] == "{":
                        j = self.braced(j + 1)
                        continue
                    if j + 1 < n and src[j + 1] == "'":
                        j = self.ansi_c(j, [])
                        continue
                    j += 2 if j + 1 < n and src[j + 1] == "#" else 1
                    continue
                elif c == "#" and (j == 0 or src[j - 1] in " \t\n"):
                    k = src.find("\n", j)
                    j = n if k < 0 else k
                    continue
                j += 1
                m = _SUBST_RUN.match(src, j)
                if m is not None:
                    j = m.end()
        finally:
            self.depth -= 1
        close = "))" if what == "((" else ")"
        raise self.error(f"unterminated `{what}`: add the closing `{close}`", i - (1 if what == "$(" else 0))

    def braced(self, i: int) -> int:
        """Skip from the ``{`` of ``${`` to after its matching ``}``."""
        src, n = self.src, self.n
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nesting deeper than {MAX_NESTING} levels: simplify the command", i)
        depth = 1  # only "${" nests; a bare "{" inside is literal, as in bash
        j = i + 1
        try:
            while j < n:
                c = src[j]
                if c == "$" and j + 1 < n and src[j + 1] == "{":
                    depth += 1
                    j += 2
                    continue
                if c == "}":
                    depth -= 1
                    if depth == 0:
                        return j + 1
                elif c == "\\":
                    j += 2
                    continue
                elif c == "'":
                    k = src.find("'", j + 1)
                    if k < 0:
                        raise self.error("unterminated single quote: add the closing '", j)
                    j = k + 1
                    continue
                elif c == '"':
                    j, _ = self.double_quoted(j, [])
                    continue
                elif c == "`":
                    j = self.backtick(j)
                    continue
                elif c == "$" and j + 1 < n and src[j + 1] == "(":
                    j = self.balanced(j + 1, "$(")
                    continue
                j += 1
                m = _BRACE_RUN.match(src, j)
                if m is not None:
                    j = m.end()
        finally:
            self.depth -= 1
        raise self.error("unterminated `${`: add the closing `}`", i - 1)


def _heredoc_delimiter(raw: str) -> tuple[str, bool]:
    """The delimiter of ``<<raw`` after quote removal, and whether the body expands."""
    raw = raw.replace("\\\n", "")  # line continuations are not part of the word
    if not any(c in raw for c in "'\"\\"):
        return raw, True
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            k = raw.find("'", i + 1)
            k = n if k < 0 else k
            out.append(raw[i + 1:k])
            i = k + 1
        elif c == '"':
            i += 1
            while i < n and raw[i] != '"':
                if raw[i] == "\\" and i + 1 < n and raw[i + 1] in '$`"\\\n':
                    i += 1
                out.append(raw[i])
                i += 1
            i += 1
        elif c == "\\" and i + 1 < n:
            out.append(raw[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out), False


# --------------------------------------------------------------------------------------------
# tokens → commands


#: a template's placeholder ending where a redirection without a target does (``myprog.py <options>``, ``<further
#: options>``): bash reads ``<options`` as input from a file and the ``>`` as a redirection with nothing after it
_PLACEHOLDER = re.compile(r"(?<![<\w])<[A-Za-z][\w .,/:-]*>$")


#: a template's placeholder for a path (``path/to/data.csv``, ``/path/to/``, ``your/project``, ``DATA_DIR/train.csv``):
#: parts joined by ``/``, one of which is a describing word (path, to, your) or a name in capitals. ``sort
#: <data/in.txt> out.txt``, a real redirection, has none, so it is left alone
PATH_PLACEHOLDER = r"/?(?=(?:[\w.\-]+/)*(?:(?i:path|to|your)|[A-Z][A-Z0-9_]+)(?:/|[>\]]))(?:[\w.\-]+/)*[\w.\-]*"


def template_placeholder(doubled: bool = False) -> re.Pattern[str]:
    """The pattern of a template's placeholder: ``<`` and ``>`` around a name-like word (letters, digits, ``_ - .``
    and blanks inside, ``<DATA_DIR>``, ``<your project>``) or a path that names what to fill in
    (:data:`PATH_PLACEHOLDER`: ``<path/to/data.csv>``), with no blank just inside either bracket; not a redirection
    such as ``< in.txt``, ``<<EOF``, ``<(cmd)``, ``2>&1``, ``<in>out`` or ``<data/in.txt> out.txt``. ``doubled`` also
    takes one in doubled brackets (``<<PROJECT>>``), for the lines where ``<<`` cannot start a here-document
    (``#SBATCH``)."""
    left, right = ("<<?", ">>?") if doubled else ("<", ">")
    return re.compile(rf"(?<![<\w]){left}(?:[A-Za-z_][\w.\- ]*(?<! )|{PATH_PLACEHOLDER}){right}(?![\w>&|])")


#: a template's placeholder anywhere in a command (:func:`template_placeholder`)
TEMPLATE_PLACEHOLDER = template_placeholder()


def template_placeholders(text: str) -> list[tuple[int, str]]:
    """The template placeholders (:data:`TEMPLATE_PLACEHOLDER`) on the lines of ``text`` that bash reads as code
    (not comments), as ``(line, placeholder)`` in order: a template usually holds several, and the parse
    error names them all, not only the one where reading stopped."""
    found = []
    for number, line in enumerate(text.split("\n"), 1):
        code = _TRAILING_COMMENT.sub("", line)   # a # after a blank starts a comment (one in quotes is rare here)
        found += [(number, m.group(0)) for m in TEMPLATE_PLACEHOLDER.finditer(code)]
    return found


_TRAILING_COMMENT = re.compile(r"(?:^|[ \t])#.*")


def _placeholders_message(text: str, stopped_at: str, line: int) -> str:
    """The parse error for a placeholder where reading stopped, naming every placeholder of the script (the first
    few by line, then how many more), since the first one to fix is often not the one bash stumbled on."""
    found = template_placeholders(text)
    if (line, stopped_at) not in found:
        found = sorted([*found, (line, stopped_at)])
    if len(found) == 1:
        return (f"`{stopped_at}` looks like a placeholder from a template: replace it with the value it stands for, "
                "without the angle brackets (bash reads `<` and `>` as redirections)")
    by_line: dict[int, list[str]] = {}
    for number, name in found[:_PLACEHOLDERS_NAMED]:
        by_line.setdefault(number, []).append(f"`{name}`")
    shown = "; ".join(f"{', '.join(names)} (line {number})" for number, names in by_line.items())
    more = f" and {len(found) - _PLACEHOLDERS_NAMED} more" if len(found) > _PLACEHOLDERS_NAMED else ""
    return (f"{shown}{more} look like placeholders from a template: replace each with the value it stands for, "
            "without the angle brackets (bash reads `<` and `>` as redirections)")


#: how many placeholders the parse error names before it only counts the rest
_PLACEHOLDERS_NAMED = 6


class _Grouper:
    def __init__(self, lexer: _Lexer, toks: list[_Tok]):
        self.lx = lexer
        self.src = lexer.src
        self.toks = toks

    def _word_after_redirect(self, j: int, op: _Tok) -> Word:
        nxt = self.toks[j]
        if nxt.kind != "w":
            placeholder = _PLACEHOLDER.search(self.src, 0, op.end)
            if placeholder is not None:
                line, _ = self.lx.line_col(placeholder.start())
                raise self.lx.error(_placeholders_message(self.src, placeholder.group(0), line), placeholder.start())
            raise self.lx.error(f"redirection `{op.text}` needs a target after it (a file name, or a descriptor "
                                f"like 1 for `>&`)", op.start)
        return nxt.word  # type: ignore[return-value]

    def _redirect(self, fd_tok: Optional[_Tok], op: _Tok, target: _Tok) -> Redirect:
        start = fd_tok.start if fd_tok is not None else op.start
        line, col = self.lx.line_col(start)
        return Redirect(op.text, target.word, line, col, self.src[start:target.end],  # type: ignore[arg-type]
                        int(fd_tok.text) if fd_tok is not None else None,
                        op.body if op.text in ("<<", "<<-") else None,
                        op.expands if op.text in ("<<", "<<-") else True)

    def commands(self) -> list[Command]:
        toks, src, lx = self.toks, self.src, self.lx
        out: list[Command] = []
        pos = 0  # where the next command's text starts
        i = 0
        after_joiner: Optional[_Tok] = None  # a trailing && / || / | waiting for its command
        while True:
            t = toks[i]
            if t.kind == "eof":
                if after_joiner is not None:
                    raise lx.error(f"`{after_joiner.text}` at the end of the script: the command it joins is "
                                   "missing", after_joiner.start)
                if pos < lx.n:
                    line, col = lx.line_col(pos)
                    out.append(Command("blank", src[pos:], line, line, col, offset=pos))
                return out
            if t.kind == "nl":
                line, _ = lx.line_col(t.start)
                out.append(Command("blank", src[pos:t.end], line, lx.line_col(t.end - 1)[0], 1, offset=pos))
                pos = t.end
                i += 1
                continue
            if t.kind == "com":
                nxt = toks[i + 1]
                end = nxt.end if nxt.kind == "nl" else lx.n
                line, col = lx.line_col(t.start)
                if t.start == 0 and t.text.startswith("#!"):
                    kind = "shebang"
                elif col == 1 and t.text.startswith("#SBATCH"):
                    kind = "directive"
                else:
                    kind = "comment"
                out.append(Command(kind, src[pos:end], line, lx.line_col(end - 1)[0] if end > pos else line, col,
                                   comment=t.text, offset=pos))
                pos = end
                i += 2 if nxt.kind == "nl" else 1
                continue
            if t.kind == "op" and t.text not in _REDIRECTS and t.text != "(":
                raise lx.error(f"unexpected `{t.text}`: a command is missing before it", t.start)
            if t.kind == "w" and t.text in _STRAY:
                raise lx.error(f"unexpected `{t.text}` outside the block it closes or continues: check the matching "
                               f"`if`/`for`/`while`/`case`/`{{`", t.start)
            after_joiner = None
            first = t
            if self._is_compound(i):
                j, words, redirects = self._compound(i)
                kind = "compound"
                assignments: tuple = ()
            else:
                j, words, assignments, redirects = self._simple(i)
                kind = "simple"
            last_own = toks[j - 1]
            joined = ""
            comment = ""
            nt = toks[j]
            if nt.kind == "op" and nt.text in _SEPARATORS:
                joined = nt.text
                if joined in LIST_OPERATORS:
                    after_joiner = nt
                j += 1
                nt = toks[j]
            elif nt.kind not in ("nl", "com", "eof"):
                raise lx.error(f"unexpected `{nt.text}` after the command: separate commands with `;` or a newline",
                               nt.start)
            if nt.kind == "com":
                comment = nt.text
                j += 1
                nt = toks[j]
            if nt.kind == "nl":
                end = nt.end
                j += 1
            elif nt.kind == "eof":
                end = lx.n
            else:
                end = nt.start
            line, col = lx.line_col(first.start)
            text = src[pos:end]
            end_line = lx.line_col(max(end - 1, last_own.start))[0]
            out.append(Command(kind, text, line, end_line, col, tuple(words), assignments, tuple(redirects),
                               comment, joined, pos))
            pos = end
            i = j

    def _is_compound(self, i: int) -> bool:
        t = self.toks[i]
        if t.kind == "op":
            return t.text == "("
        if t.kind != "w":
            return False
        raw = t.text
        if raw in _OPENERS or raw == "function" or raw.startswith("(("):
            return True
        nxt = self.toks[i + 1]
        return (_NAME.fullmatch(raw) is not None and nxt.kind == "op" and nxt.text == "("
                and self.toks[i + 2].kind == "op" and self.toks[i + 2].text == ")")

    def _simple(self, i: int):
        toks = self.toks
        words: list[Word] = []
        assignments: list[tuple[str, Word]] = []
        redirects: list[Redirect] = []
        j = i
        declaration = False
        while True:
            t = toks[j]
            if t.kind == "w":
                nxt = toks[j + 1]
                if (nxt.kind == "op" and nxt.text in _REDIRECTS and nxt.start == t.end
                        and _DIGITS.fullmatch(t.text)):
                    self._word_after_redirect(j + 2, nxt)
                    redirects.append(self._redirect(t, nxt, toks[j + 2]))
                    j += 3
                    continue
                w = t.word
                m = _ASSIGN.match(w.raw)  # type: ignore[union-attr]
                if m is not None and (not words or declaration):
                    assignments.append((m.group(1), self._assignment_value(t, m.end())))
                    if not words:
                        j += 1
                        continue
                if not words and not w.quoted and w.raw in DECLARATION_BUILTINS:  # type: ignore[union-attr]
                    declaration = True
                words.append(w)  # type: ignore[arg-type]
                j += 1
            elif t.kind == "op" and t.text in _REDIRECTS:
                self._word_after_redirect(j + 1, t)
                redirects.append(self._redirect(None, t, toks[j + 1]))
                j += 2
            else:
                return j, words, tuple(assignments), redirects

    def _assignment_value(self, t: _Tok, eq_end: int) -> Word:
        start = t.start + eq_end
        lx = self.lx
        if start >= t.end:
            line, col = lx.line_col(start)
            return Word("", "", line, col, False, False)
        if self.src[start] == "(" or ":~" in t.text:
            line, col = lx.line_col(start)
            raw = self.src[start:t.end]
            return Word(raw, Verbatim(raw), line, col, False, True)
        word, _ = lx.word(start)
        return word

    def _compound(self, i: int):
        """Consume one compound command; returns (index after it, words, redirects)."""
        toks, lx = self.toks, self.lx
        words: list[Word] = []
        redirects: list[Redirect] = []
        j = i
        t = toks[j]
        # function headers: "function NAME [()]" or "NAME ()", then newlines before the body
        if t.kind == "w" and (t.text == "function" or not (t.text in _OPENERS or t.text.startswith("(("))):
            if t.text == "function":
                words.append(t.word)  # type: ignore[arg-type]
                j += 1
                if toks[j].kind == "w":
                    words.append(toks[j].word)  # type: ignore[arg-type]
                    j += 1
            else:
                words.append(t.word)  # type: ignore[arg-type]
                j += 1
            if toks[j].kind == "op" and toks[j].text == "(" and toks[j + 1].kind == "op" and toks[j + 1].text == ")":
                j += 2
            while toks[j].kind in ("nl", "com"):
                j += 1
            body = toks[j]
            if not ((body.kind == "w" and (body.text in _OPENERS or body.text.startswith("(("))) or
                    (body.kind == "op" and body.text == "(")):
                raise lx.error("a function body must be a compound command such as `{ …; }`", body.start)
        stack: list[tuple[str, _Tok]] = []
        cmdpos = True
        first = True
        named = False   # "function NAME" inside the block: the NAME comes next, then the body in command position
        while True:
            t = toks[j]
            kind = t.kind
            if kind == "eof":
                closer, opener = stack[-1]
                raise lx.error(f"`{opener.text}` is never closed: add the matching `{closer}`", opener.start)
            if kind == "w":
                raw = t.text
                nxt = toks[j + 1]
                if nxt.kind == "op" and nxt.text in _REDIRECTS and nxt.start == t.end and _DIGITS.fullmatch(raw):
                    j += 1  # the descriptor of "2>file": the redirection is handled with its operator
                    continue
                words.append(t.word)  # type: ignore[arg-type]
                if first and raw.startswith("(("):
                    j += 1
                    break
                if cmdpos and raw in _OPENERS:
                    stack.append((_OPENERS[raw], t))
                    cmdpos = raw in _KEEP_COMMAND_POSITION
                elif raw == "]]" and stack and stack[-1][0] == "]]":
                    stack.pop()
                    cmdpos = False
                elif cmdpos and raw in _CLOSERS and any(c == raw for c, _ in stack):
                    while stack[-1][0] != raw:
                        stack.pop()
                    stack.pop()
                    cmdpos = False
                elif named:
                    named, cmdpos = False, True  # the function's name: its body (`{`, after an optional ()) follows
                else:
                    named = cmdpos and raw == "function" and not first
                    cmdpos = raw in _KEEP_COMMAND_POSITION and cmdpos
            elif kind == "op":
                op = t.text
                if op == "(":
                    stack.append((")", t))
                    cmdpos = True
                elif op == ")":
                    if stack and stack[-1][0] == ")":
                        stack.pop()
                        # "name() { …; }" inside a block: an empty () is a function header; its body follows
                        cmdpos = toks[j - 1].kind == "op" and toks[j - 1].text == "("
                    else:
                        cmdpos = True  # a case pattern: a command follows
                elif op in _REDIRECTS:
                    nxt = toks[j + 1]
                    if nxt.kind == "w":
                        redirects.append(self._redirect(None, t, nxt))
                        j += 1
                else:
                    cmdpos = True
            elif kind == "nl":
                cmdpos = True
            if len(stack) > MAX_NESTING:  # (a reader that walks the bodies re-reads each level)
                raise lx.error(f"nesting deeper than {MAX_NESTING} levels: simplify the command", t.start)
            first = False
            j += 1
            if not stack:
                break
        # redirections after the closing keyword: "done < list", "} > log 2>&1"
        while True:
            t = toks[j]
            if t.kind == "op" and t.text in _REDIRECTS:
                self._word_after_redirect(j + 1, t)
                redirects.append(self._redirect(None, t, toks[j + 1]))
                j += 2
            elif (t.kind == "w" and _DIGITS.fullmatch(t.text) and toks[j + 1].kind == "op"
                  and toks[j + 1].text in _REDIRECTS and toks[j + 1].start == t.end):
                self._word_after_redirect(j + 2, toks[j + 1])
                redirects.append(self._redirect(t, toks[j + 1], toks[j + 2]))
                j += 3
            else:
                return j, words, redirects


#: keywords that continue the compound they belong to (blanked at the outermost level only)
_CONTINUERS = {"if": ("then", "elif", "else"), "while": ("do",), "until": ("do",)}


def _syntax_spans(toks: list[_Tok]) -> Optional[list[tuple[int, int]]]:
    """Where a compound command's own syntax sits, as (start, end) offsets; None when it runs nothing
    (``[[ … ]]``, ``(( … ))``) or is not a form this reader walks.

    The walk mirrors :meth:`_Grouper._compound` (a stack of open blocks, command position): only the
    outermost block's keywords are collected, so a nested compound stays whole for the next call.
    """
    i = 0
    while toks[i].kind in ("nl", "com"):
        i += 1
    first = toks[i]
    if first.kind == "w" and (first.text == "function" or
                              (first.text not in _OPENERS and not first.text.startswith("(("))):
        # a function definition: the header goes; the body is one compound command left whole
        j = i + 1
        if first.text == "function" and toks[j].kind == "w":
            j += 1
        if toks[j].kind == "op" and toks[j].text == "(" and toks[j + 1].kind == "op" and toks[j + 1].text == ")":
            j += 2
        spans = [(first.start, toks[j - 1].end)]
        last = next(t for t in reversed(toks) if t.kind not in ("eof", "nl", "com"))
        if last.kind == "op" and last.text in LIST_OPERATORS:
            spans.append((last.start, last.end))  # f() { …; } && f: the && (its command follows) is no part of the body
        return spans
    opener = first.text
    if first.kind != ("op" if opener == "(" else "w") or opener not in (*_OPENERS, "(") or opener == "[[":
        return None
    spans = [(first.start, first.end)]
    j = i + 1
    if opener in ("for", "select"):
        # the header "for NAME in WORDS;" runs nothing: blank it up to and including its "do"
        while toks[j].kind != "eof" and not (toks[j].kind == "w" and toks[j].text == "do" and
                                             (toks[j - 1].kind in ("nl", "com") or toks[j - 1].text in (";", "&")
                                              or toks[j - 1].text.startswith("(("))):
            j += 1
        if toks[j].kind == "eof":
            return None
        spans.append((first.end, toks[j].end))
        j += 1
    elif opener == "case":
        while toks[j].kind != "eof" and not (toks[j].kind == "w" and toks[j].text == "in" and j > i + 1):
            j += 1
        if toks[j].kind == "eof":
            return None
        spans.append((first.end, toks[j].end))
        j = _case_pattern(toks, j + 1, spans)
    stack: list[str] = [_OPENERS.get(opener, ")")]
    cmdpos = True
    named = False  # "function NAME" inside: the body follows NAME in command position (as in _Grouper._compound)
    while j < len(toks):
        t = toks[j]
        if t.kind == "eof":
            return None
        outer = len(stack) == 1
        if t.kind == "w":
            raw = t.text
            if cmdpos and raw in _OPENERS:
                stack.append(_OPENERS[raw])
                cmdpos = raw in _KEEP_COMMAND_POSITION
            elif raw == "]]" and stack[-1] == "]]":
                stack.pop()
                cmdpos = False
            elif cmdpos and raw in _CLOSERS and raw in stack:
                while stack[-1] != raw:
                    stack.pop()
                stack.pop()
                cmdpos = False
                if not stack:
                    spans.append((t.start, toks[-1].end))  # with its redirections, separator and comment
                    return spans
            elif outer and cmdpos and raw in _CONTINUERS.get(opener, ()):
                spans.append((t.start, t.end))
            elif named:
                named, cmdpos = False, True
            else:
                named = cmdpos and raw == "function"
                cmdpos = raw in _KEEP_COMMAND_POSITION and cmdpos
        elif t.kind == "op":
            op = t.text
            if op == "(":
                stack.append(")")
                cmdpos = True
            elif op == ")" and stack[-1] == ")":
                stack.pop()
                if not stack:
                    spans.append((t.start, toks[-1].end))
                    return spans
                cmdpos = toks[j - 1].kind == "op" and toks[j - 1].text == "("  # "name() { …; }": a body follows
            elif op in (";;", ";&", ";;&") and outer and opener == "case":
                spans.append((t.start, t.end))
                j = _case_pattern(toks, j + 1, spans)
                cmdpos = True
                continue
            elif op in _REDIRECTS:
                j += 1  # its target is a word, not a command
            else:
                cmdpos = True  # ";", "&&", "|" …, or the ")" ending a nested case pattern
        elif t.kind == "nl":
            cmdpos = True
        j += 1
    return None


def _case_pattern(toks: list[_Tok], j: int, spans: list[tuple[int, int]]) -> int:
    """Blank the pattern of the ``case`` item starting at ``j`` (``a|b)``, ``(c)``); the index after it.
    At ``esac`` nothing is blanked: the walk closes the block there."""
    while toks[j].kind in ("nl", "com"):
        j += 1
    if toks[j].kind == "eof" or (toks[j].kind == "w" and toks[j].text == "esac"):
        return j
    start = toks[j].start
    if toks[j].kind == "op" and toks[j].text == "(":
        j += 1
    while toks[j].kind != "eof" and not (toks[j].kind == "op" and toks[j].text == ")"):
        j += 1
    spans.append((start, toks[j].end))
    return j + 1
