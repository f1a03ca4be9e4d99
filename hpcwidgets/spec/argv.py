"""A command model's argument vector, from its field metadata (pure: no quoting, no I/O).

A command model's fields say how they appear on the command line (``role``, ``flag``, ``style``).
:func:`argv` walks them in declaration order: program, subcommand words, options, positionals,
then the trailing argument vector. Models whose words cannot be derived field by field (for
example a nested launch) provide ``_argv_tail(command)`` returning the words before that command.

The renderer quotes and lays out these words; the linter rebuilds steps from them for its fixes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

from ._meta import FieldSpec, Spec
from ._words import Verbatim
from .common import Bind, EnvVar, mount_text


def option_words(f: FieldSpec, value: Any, flag: str = "") -> list[str]:
    """The words one option field contributes (nothing when unset); ``flag`` replaces the field's own spelling
    (a model that writes its flags another way, see :func:`_compile_words`)."""
    info = f.info
    flag = flag or info.flag
    if value is None or value == "" or value is False or value == ():
        return []
    if value is True:
        return [flag]
    items = value if f.is_tuple else (value,)
    if not flag:  # free-form options ("--exclusive", "--signal=USR1@90"), one word each; never an empty word
        return [i if isinstance(i, Verbatim) else str(i) for i in items if str(i)]
    out: list[str] = []
    for item in items:
        out += _item_words(flag, info.style, item)
    return out


def _item_words(flag: str, style: str, item: Any) -> list[str]:
    # Apptainer's "--bind SRC:DST" (space style) falls back to --mount; ch-run's --bind=SRC:DST has no --mount
    if isinstance(item, Bind) and item.needs_mount_syntax() and flag in ("--bind", "-B") and style == "space":
        return ["--mount", mount_text(item)]
    if isinstance(item, (Bind, EnvVar)):
        token = item.to_token()
    elif isinstance(item, Verbatim):
        token = item
    else:
        token = str(item)
    if style == "space":
        return [flag, token]
    if isinstance(token, Verbatim):
        if token == "~" or token.startswith("~/"):
            # bash expands ~ only at the start of a word, never after --flag=: say $HOME instead
            token = Verbatim('"$HOME"' + token[1:])
        return [Verbatim(f"{flag}={token}")]
    return [f"{flag}={token}"]


def _generic_option(f: FieldSpec, value: Any, words: list[str], starts: list[int], flag: str = "") -> None:
    """Append one option's words and where its group starts, for any value (the general path)."""
    if value is None or value == f.default:
        return
    n = option_words(f, value, flag)
    if not n:
        return
    if value is not True and not f.info.flag:  # other options: each starts a group, its value stays with it
        starts.extend(len(words) + k for k, word in enumerate(n) if str(word).startswith("-"))
    elif value is not True:  # short switches stay on the line before them; values start a group
        items = value if f.is_tuple else (value,)
        per = len(n) // max(len(items), 1) or 1
        starts.extend(len(words) + k for k in range(0, len(n), per))
    words += n


def _compile_words(cls: type) -> Callable[..., tuple[list[str], list[int], int]]:
    """Generate ``words(model, rest=None) -> (argv, group starts, lead)`` for one command class.

    The same walk as the metadata describes (program and subcommand words, options in declaration
    order, positionals, the trailing argv), written out once per class as straight-line code, the
    way :mod:`dataclasses` writes ``__init__``. Plain ``str``/``int``/``bool`` values take the
    inline path; anything else (tuples, binds, verbatim words) goes through :func:`option_words`.
    ``rest`` replaces the model's trailing argv (a workflow puts its launcher there); ``lead`` is
    how many words the program and subcommand take. A class whose flags depend on a field (torchrun
    written for PyTorch 1.x: ``--nproc_per_node``) defines ``_spelled(self) -> {flag: spelling}``.
    """
    ns: dict[str, Any] = {"_generic": _generic_option, "_str": str}
    body = ["def words(m, rest=None):", "    w = []", "    starts = []", "    pos = []", "    lead = 0"]
    spelled = getattr(cls, "_spelled", None) is not None
    if spelled:
        body.append("    sp = m._spelled()")
    rest_field = ""
    for k, f in enumerate(cls.field_specs()):
        info, role = f.info, f.info.role
        ns[f"F{k}"] = f
        flag = f"sp.get({info.flag!r}, {info.flag!r})" if spelled else repr(info.flag)
        generic = f"_generic(F{k}, v, w, starts{', ' + flag if spelled else ''})"
        get = f"    v = m.{f.name}"
        if role in ("program", "subcommand"):
            body += [get, "    p = _str(v).split()", "    w += p", "    lead += len(p)"]
        elif role == "positional":
            body += [get, "    pos.append(v)"]
        elif role == "rest":
            rest_field = f.name
        elif role != "option" or info.env:
            continue
        elif f.is_tuple or not info.flag or f.base_type not in (str, int, bool) or f.default not in ("", None, False):
            body += [get, "    if v:", f"        {generic}"]
        elif f.base_type is bool:
            body += [get, "    if v is True:", f"        w.append({flag})",
                     "    elif v is not False and v is not None:", f"        {generic}"]
        else:
            plain = "str" if f.base_type is str else "int"
            value = "v" if plain == "str" else "_str(v)"
            add = f"w.append({flag} + '=' + {value})" if info.style == "eq" else f"w += ({flag}, {value})"
            body += [get, "    if v is not None and v != '':", f"        if v.__class__ is {plain}:",
                     "            starts.append(len(w))", f"            {add}",
                     "        else:", f"            {generic}"]
    body.append(f"    r = list(m.{rest_field}) if rest is None else list(rest)" if rest_field
                else "    r = [] if rest is None else list(rest)")
    if getattr(cls, "_argv_tail", None) is not None:
        body.append("    r = list(m._argv_tail(r)) + r")
    # an empty positional is left out, unless words follow it: then '' keeps its place (torchrun '' ARGS)
    body += ["    pos = [x if x is not None else '' for x in pos] if r else [x for x in pos if x != '' and x is not None]",
             "    if pos:", "        starts.append(len(w))", "        w += pos",
             "    w += r", "    return w, starts, lead"]
    exec(compile("\n".join(body) + "\n", f"<hpcwidgets argv of {cls.__qualname__}>", "exec"), ns)
    return ns["words"]  # type: ignore[no-any-return]


def model_words(model: Spec, rest: Iterable[str] | None = None) -> tuple[list[str], list[int], int]:
    """``(argv, group starts, lead)`` of a command model; ``rest`` replaces its trailing argv.

    Group starts are indexes of words where a continuation line may begin (each option with a
    value, and the first positional); ``lead`` counts the program and subcommand words.
    """
    fn = _WORDS.get(model.__class__)
    if fn is None:
        fn = _WORDS[model.__class__] = _compile_words(model.__class__)
    return fn(model, rest)


#: the compiled words function of each class, by class: a subclass never uses its parent's (it has fields of its
#: own), and a dict lookup costs less than reading the class's ``__dict__`` (a new mapping proxy each time)
_WORDS: dict[type, Callable[..., tuple[list[str], list[int], int]]] = {}


def argv(model: Spec) -> list[str]:
    """The argument vector of a command model (values unquoted; ``$NAME`` still unexpanded)."""
    return model_words(model)[0]


@functools.cache
def _env_fields(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, f.info.env) for f in cls.field_specs() if f.info.env)


def env_assignments(model: Spec) -> list[tuple[str, str]]:
    """Fields rendered as environment variables (``APPTAINER_CACHEDIR``) with their values."""
    out = []
    for name, env in _env_fields(type(model)):
        value = getattr(model, name)
        if value not in ("", None, False, ()):
            out.append((model.env_name(env), "1" if value is True else str(value)))
    extra = getattr(model, "_env_tail", None)
    if extra is not None:
        out += list(extra())
    return out
