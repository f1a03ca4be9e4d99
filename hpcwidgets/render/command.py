"""Model → shell text: a command's words (:mod:`hpcwidgets.spec.argv`) quoted by the contract and
broken over continuation lines when long."""

from __future__ import annotations

from typing import Iterable

from ..spec._meta import Spec
from ..spec.argv import argv, env_assignments, model_words, option_words
from .quote import assignment, quote_words

__all__ = ["WIDTH", "argv", "command_line", "env_assignments", "model_words", "option_words", "wrap"]

#: lines longer than this are broken into continuation lines
WIDTH = 88


def command_line(model: Spec, *, env_prefix: bool = True, width: int = WIDTH, indent: str = "  ") -> str:
    """One shell command, broken over continuation lines when long.

    Environment fields become a ``NAME=value`` prefix (for a standalone command); in a script the
    caller exports them instead (``env_prefix=False``).
    """
    words, starts, _ = model_words(model)
    quoted = quote_words(words)
    prefix = [assignment(k, v) for k, v in env_assignments(model)] if env_prefix else None
    if prefix:
        quoted = prefix + quoted
        starts = [s + len(prefix) for s in starts]
    return wrap(quoted, starts, width, indent)


def wrap(quoted: list[str], group_starts: Iterable[int] = (), width: int = WIDTH, indent: str = "  ") -> str:
    """Join quoted words; when longer than ``width``, break before group starts with `` \\``."""
    line = " ".join(quoted)
    if len(line) <= width or not group_starts:
        return line
    # never leave the program's name alone on its line ("srun \\" then the command it launches)
    starts = sorted(set(group_starts).intersection(range(2, len(quoted))))
    if not starts:
        return line
    chunks = []
    prev = 0
    for s in starts:
        chunks.append(" ".join(quoted[prev:s]))
        prev = s
    chunks.append(" ".join(quoted[prev:]))
    return (" \\\n" + indent).join(filter(None, chunks))
