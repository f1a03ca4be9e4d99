"""Model → argv → shell text, driven entirely by field metadata.

A command model's fields say how they appear on the command line (``role``, ``flag``, ``style``).
:func:`argv` walks them in declaration order: program, subcommand words, options, positionals,
then the trailing argument vector. Models whose words cannot be derived field by field (for
example a nested launch) provide ``_argv_tail()`` returning the words after their own.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable

from ..spec._meta import FieldSpec, Spec
from ..spec._words import Verbatim
from ..spec.common import Bind, EnvVar
from .quote import assignment, quote

#: lines longer than this are broken into continuation lines
WIDTH = 88


def option_words(f: FieldSpec, value: Any) -> list[str]:
    """The words one option field contributes (nothing when unset)."""
    info = f.info
    if value is None or value == "" or value is False or value == ():
        return []
    if value is True:
        return [info.flag]
    items = value if f.is_tuple else (value,)
    if not info.flag:  # free-form options ("--exclusive", "--signal=USR1@90"), one word each; never an empty word
        return [i if isinstance(i, Verbatim) else str(i) for i in items if str(i)]
    out: list[str] = []
    for item in items:
        out += _item_words(info.flag, info.style, item)
    return out


def _item_words(flag: str, style: str, item: Any) -> list[str]:
    # Apptainer's "--bind SRC:DST" (space style) falls back to --mount; ch-run's --bind=SRC:DST has no --mount
    if isinstance(item, Bind) and item.needs_mount_syntax() and flag in ("--bind", "-B") and style == "space":
        fields = ["type=bind", _csv(f"src={item.src}"), _csv(f"dst={item.dst or item.src}")]
        if item.mode == "ro":
            fields.append("ro")
        return ["--mount", ",".join(fields)]
    if isinstance(item, (Bind, EnvVar)):
        token = item.to_token()
    elif isinstance(item, Verbatim):
        token = item
    else:
        token = str(item)
    if style == "space":
        return [flag, token]
    if isinstance(token, Verbatim):
        return [Verbatim(f"{flag}={token}")]
    return [f"{flag}={token}"]


def _csv(field: str) -> str:
    """Quote one field of a --mount spec the way its CSV reader expects."""
    if any(c in field for c in ',"'):
        return '"' + field.replace('"', '""') + '"'
    return field


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, FieldSpec], ...]:
    """The fields that reach the command line, with their role, in declaration order (once per class)."""
    return tuple((f.info.role, f) for f in cls.field_specs()
                 if f.info.role in ("program", "subcommand", "positional", "rest")
                 or (f.info.role == "option" and not f.info.env))


def argv(model: Spec) -> list[str]:
    """The argument vector of a command model (values unquoted; ``$NAME`` still unexpanded)."""
    words: list[str] = []
    positional: list[str] = []
    rest: list[str] = []
    for role, f in _plan(type(model)):
        value = getattr(model, f.name)
        if role == "option":
            if value is not None and value != f.default:
                words += option_words(f, value)
        elif role == "positional":
            if value not in ("", None):
                positional.append(value)
        elif role == "rest":
            rest += list(value)
        else:  # program, subcommand: "python -m torch.distributed.run", "instance start"
            words += str(value).split()
    tail = getattr(model, "_argv_tail", None)
    if tail is not None:
        rest = list(tail()) + rest
    return words + positional + rest


def env_assignments(model: Spec) -> list[tuple[str, str]]:
    """Fields rendered as environment variables (``APPTAINER_CACHEDIR``) with their values."""
    out = []
    for f in model.field_specs():
        value = getattr(model, f.name)
        if f.info.env and value not in ("", None, False, ()):
            out.append((f.info.env, "1" if value is True else str(value)))
    extra = getattr(model, "_env_tail", None)
    if extra is not None:
        out += list(extra())
    return out


def command_line(model: Spec, *, env_prefix: bool = True, width: int = WIDTH, indent: str = "  ") -> str:
    """One shell command, broken over continuation lines when long.

    Environment fields become a ``NAME=value`` prefix (for a standalone command); in a script the
    caller exports them instead (``env_prefix=False``).
    """
    words = argv(model)
    prefix = [assignment(k, v) for k, v in env_assignments(model)] if env_prefix else []
    return wrap(prefix + [quote(w) for w in words], group_starts=_group_starts(model, len(prefix)),
                width=width, indent=indent)


def _group_starts(model: Spec, offset: int) -> set[int]:
    """Indexes of words where a continuation line may begin: each option and the positionals."""
    starts: set[int] = set()
    i = offset
    seen_rest = False
    for f in model.field_specs():
        value = getattr(model, f.name)
        role = f.info.role
        if role in ("program", "subcommand"):
            i += len(str(value).split())
        elif role == "option" and not f.info.env:
            n = option_words(f, value)
            if not n:
                continue
            if value is True:  # short switches stay on the line before them
                i += 1
                continue
            items = value if f.is_tuple else (value,)
            per = len(n) // max(len(items), 1) if value is not True else 1
            for k in range(0, len(n), per or 1):
                starts.add(i + k)
            i += len(n)
        elif role == "positional" and value not in ("", None) and not seen_rest:
            starts.add(i)
            seen_rest = True
            i += 1
        elif role == "positional" and value not in ("", None):
            i += 1
    return starts


def wrap(quoted: list[str], group_starts: Iterable[int] = (), width: int = WIDTH, indent: str = "  ") -> str:
    """Join quoted words; when longer than ``width``, break before group starts with `` \\``."""
    line = " ".join(quoted)
    if len(line) <= width or not group_starts:
        return line
    starts = sorted(s for s in set(group_starts) if 0 < s < len(quoted))
    if not starts:
        return line
    chunks = []
    prev = 0
    for s in starts:
        chunks.append(" ".join(quoted[prev:s]))
        prev = s
    chunks.append(" ".join(quoted[prev:]))
    return (" \\\n" + indent).join(c for c in chunks if c)
