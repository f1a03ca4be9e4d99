"""Value types shared by every model, and what a shell word read from a script passes on."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:
    from ._meta import FieldSpec


class Verbatim(str):
    """Shell text kept exactly as it was written in an existing script.

    Values a person types in a form or on the CLI are plain ``str`` and are always quoted by the
    contract in :mod:`hpcwidgets.render.quote`. The parser wraps words it cannot represent as plain
    values (``$(pwd)``, ``"${ARGS[@]}"``, globs) in ``Verbatim`` so a parsed script renders back as
    the user wrote it. Serialized as ``{"verbatim": "..."}``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Verbatim({str.__repr__(self)})"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: what may follow ``$`` as a parameter without braces: a name, a digit or a special parameter
_PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]")
_CLOSING = {"(": ")", "{": "}"}
#: a placeholder for an expansion in :func:`passed_text` (no shell word holds a NUL)
EXPANDED = "\x00"
#: the characters a backslash escapes inside double quotes (elsewhere it escapes any character)
_DQ_ESCAPED = '$`"\\\n'


def split_assignment(word: str) -> tuple[str, Verbatim] | None:
    """A shell word read from a script that sets a variable (``NAME=value``, however it is quoted:
    ``"NAME=${X:-d}"``, ``NAME="$(date +%s)"``, ``'NAME=…'``) as the name and a word that yields the same value:
    ``('NAME', Verbatim('"${X:-d}"'))``. A quote open at the ``=`` opens the value again, so ``NAME=`` and the value
    joined (:meth:`EnvVar.to_token`) give bash's value unchanged. None when the word does not start with a name
    and a ``=`` bash passes as such (``"$PAIR"``, ``"${X}=1"``)."""
    name: list[str] = []
    for end, kind, text, quote in word_pieces(word):
        if kind == "exp":
            return None
        if kind == "lit" and text == "=":
            break
        if kind == "lit":
            name.append(text)
    else:
        return None
    if not _NAME.fullmatch("".join(name)):
        return None
    return "".join(name), Verbatim(quote + word[end:])


def passed_text(word: str) -> str:
    """What bash passes on for the shell word ``word`` (quotes removed, escapes resolved), with each expansion,
    known only when the job runs, as :data:`EXPANDED`: ``'$A':${B%/*}`` gives ``$A:`` and the placeholder."""
    return "".join(EXPANDED if kind == "exp" else text for _, kind, text, _ in word_pieces(word) if kind != "quote")


def word_pieces(word: str) -> Iterator[tuple[int, str, str, str]]:
    """``(end, kind, text, quote)`` for each piece of the shell word ``word``, in order: ``lit`` a character
    bash passes on as it is, ``exp`` an expansion (``$X``, ``${X:-d}``, ``$(…)``, backticks), whose value only the
    job's shell knows, ``quote`` a quote character bash removes; ``end`` is the offset after the piece, ``quote``
    the quote open after it."""
    i, n, q = 0, len(word), ""
    while i < n:
        c, end = word[i], i + 1
        if q == "'" or (c == "'" and not q):
            q = ("" if q else "'") if c == "'" else q
            yield end, "quote" if c == "'" else "lit", c, q
        elif c == "\\" and end < n and (not q or word[end] in _DQ_ESCAPED):
            end += 1
            yield end, "lit", word[end - 1], q
        elif c == '"':
            q = "" if q else c
            yield end, "quote", c, q
        elif c == "$" and end < n and (word[end] in "({" or (word[end] == "'" and not q)
                                         or _PARAMETER.match(word, end)):
            end = expansion_end(word, i)
            yield end, "exp", word[i:end], q
        elif c == "`":
            end = word.find("`", end) + 1 or n
            yield end, "exp", word[i:end], q
        else:
            yield end, "lit", c, q
        i = end


def expansion_end(word: str, start: int) -> int:
    """Where the expansion starting with the ``$`` at ``start`` ends: after the bracket that closes ``$(``/``${``
    (nested brackets and quoted text inside skipped), the closing quote of ``$'…'``, or the parameter's name."""
    opener = word[start + 1]
    if opener == "'":
        k = start + 2
        while k < len(word) and word[k] != "'":
            k += 2 if word[k] == "\\" else 1
        return min(k + 1, len(word))
    if opener not in _CLOSING:
        return _PARAMETER.match(word, start + 1).end()  # type: ignore[union-attr]
    depth, k, quote = 0, start + 1, ""
    while k < len(word):
        c = word[k]
        if quote:
            quote = "" if c == quote else quote
            k += 2 if c == "\\" and quote == '"' else 1
            continue
        if c in "'\"":
            quote = c
        elif c == "\\":
            k += 1
        elif c == opener:
            depth += 1
        elif c == _CLOSING[opener]:
            depth -= 1
            if depth == 0:
                return k + 1
        k += 1
    return len(word)


# ----------------------------------------------------------------------------------------------
# a field of shell words, as a form's box or a CLI option takes it typed

#: tuple[str] fields that hold one argument vector (typed like a shell command), besides a model's trailing words
WORD_FIELDS = ("command", "args", "program", "sweep_values")

#: how a field of shell words reads what is typed, said in its help (one rule for the forms and the CLI)
WORDS_RULE = ("Shell words: quote a word that holds spaces ('my run'). What you type is passed as text, except $NAME "
              "and ${NAME}, which expand when the job runs. Words kept from a loaded script ($(…), $((…)), globs) are "
              "shown as the script wrote them and keep their meaning while you leave them as they are.")


def holds_words(f: "FieldSpec") -> bool:
    """Whether the field ``f`` holds one argument vector that a person types as shell words (:data:`WORD_FIELDS`,
    or a model's trailing words): the forms show it in a words box, the CLI splits its option like a command line."""
    return bool(f.is_tuple and f.base_type is str and (f.info.role == "rest" or f.name in WORD_FIELDS))


def words_from_text(text: str, kept: Iterable[str] = ()) -> tuple[str, ...]:
    """The words of ``text`` typed into a field of shell words (:data:`WORDS_RULE`); ValueError saying how to write
    it for a quote left open.

    A word written exactly as one of the ``kept`` :class:`Verbatim` words (what a script read back holds, and how
    the field shows it) comes back as that word, so changing another word leaves a script's ``$(( $N * 4 ))``
    working; any other word is split as the shell splits a command line and, its quotes removed, is text."""
    shown = sorted({str(w): w for w in kept if isinstance(w, Verbatim)}.items(), key=lambda item: -len(item[0]))
    out: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return tuple(out)
        same = next((word for said, word in shown if text.startswith(said, i)
                     and (i + len(said) == n or text[i + len(said)].isspace())), None)
        if same is not None:
            out.append(same)
            i += len(same)
            continue
        end = _typed_word_end(text, i)
        try:
            out.append(_unquoted(text[i:end]))
        except ValueError as exc:
            raise ValueError(f"cannot split {text!r} into words ({exc}); close the quote or write the value "
                             "without it") from None
        i = end


def _unquoted(word: str) -> str:
    """The text of one typed shell word, its quotes removed and escapes resolved as :func:`shlex.split` does (a
    blank inside ``$(…)`` stays in the word, which the shell reads as one)."""
    import shlex  # only a typed words field needs it
    lexer = shlex.shlex(word, posix=True)
    lexer.whitespace, lexer.whitespace_split, lexer.commenters = "", True, ""
    return next(iter(lexer), "")


def _typed_word_end(text: str, start: int) -> int:
    """Where the shell word starting at ``start`` ends: at a blank outside quotes, ``$(…)``, ``${…}`` and backticks
    (the end of the text when one is left open)."""
    i, n, quote = start, len(text), ""
    while i < n:
        c = text[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            i += 1
        elif c == "$" and text[i + 1:i + 2] in ("(", "{"):
            i = expansion_end(text, i)
            continue
        elif c == "`":
            i = text.find("`", i + 1) + 1 or n
            continue
        elif c == '"' or (c == "'" and not quote):
            quote = "" if quote == c else c
        elif c.isspace() and not quote:
            return i
        i += 1
    return n
