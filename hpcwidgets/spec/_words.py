"""Value types shared by every model, and what a shell word read from a script passes on."""

from __future__ import annotations

import re
from typing import Iterator


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
