"""A command model's argument vector, from its field metadata (pure: no quoting, no I/O).

A command model's fields say how they appear on the command line (``role``, ``flag``, ``style``).
:func:`argv` walks them in declaration order: program, subcommand words, options, positionals,
then the trailing argument vector. Models whose words cannot be derived field by field (for
example a nested launch) provide ``_argv_tail(command)`` returning the words before that command.

The renderer quotes and lays out these words; the linter rebuilds steps from them for its fixes.
"""

from __future__ import annotations

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


def _writes_mount(flag: str, style: str) -> bool:
    """Whether a bind that ``SRC:DST`` cannot say is written as ``--mount`` under this option: Apptainer's
    ``--bind SRC:DST`` (space style) falls back to it; ch-run's ``--bind=SRC:DST`` has no --mount."""
    return style == "space" and flag in ("--bind", "-B")


def _item_words(flag: str, style: str, item: Any) -> list[str]:
    if isinstance(item, Bind) and item.needs_mount_syntax() and _writes_mount(flag, style):
        return ["--mount", mount_text(item)]
    if isinstance(item, _TOKENS):
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


class _ListOption:
    """How a list option's items are written, read once from its metadata for :func:`_put_items`."""

    __slots__ = ("flag", "prefix", "space", "tokens", "item", "mounts")

    def __init__(self, f: FieldSpec) -> None:
        info, base = f.info, f.base_type
        self.flag, self.prefix, self.space = info.flag, info.flag + "=", info.style == "space"
        #: binds and variables after a flag are written by their tokens (which must be plain text too), items of
        #: this class only; any other list holds plain text
        self.tokens = base in _TOKENS and bool(info.flag)
        self.item = base if self.tokens else str
        self.mounts = base is Bind and _writes_mount(info.flag, info.style)


def _put_items(o: _ListOption, items: Any, w: list[str], starts: list[int]) -> bool:
    """A list option's words when every item is plain text, or a bind or variable whose token is: per item
    ``--flag=token``, ``--flag token``, or the item itself for free-form options (as :func:`option_words`
    writes them), each starting a group. False, having written nothing, when unsure: verbatim words, a bind
    written as ``--mount``, an empty free-form word (left out), anything else. (A loop, not ``map``: with a
    few items, calling the methods directly costs less than building iterators.)"""
    if items.__class__ is not tuple:
        return False
    words = []
    for item in items:
        if item.__class__ is not o.item:
            return False
        if o.tokens:
            if o.mounts and item.needs_mount_syntax():
                return False
            item = item.to_token()
            if item.__class__ is not str:
                return False
        if not o.flag:
            if not item:
                return False  # an empty free-form word is left out
            words.append(item)
        elif o.space:
            words += (o.flag, item)
        else:
            words.append(o.prefix + item)
    n = len(w)
    if not o.flag:  # free-form words: each option starts a group, its value stays with it
        starts += [n + k for k, word in enumerate(words) if word.startswith("-")]
    else:
        starts += range(n, n + len(words), 2 if o.space else 1)
    w += words
    return True


_PLAIN = frozenset({str})
_TOKENS = (Bind, EnvVar)


def _option_code(k: int, f: FieldSpec, general: bool, ns: dict[str, Any]) -> list[str]:
    """The lines writing option ``k``. Each first asks whether the value is its default object (an unset option,
    the usual case: one identity test, no words); a value of the field's own plain type is written inline, a list
    by :func:`_put_items`, and anything else (verbatim words, wrong types, a value equal to the default but
    another object) by :func:`_generic_option`. ``general``: every set option by that, with the model's own flag
    spellings."""
    info, base, default, name = f.info, f.base_type, f.default, f.name
    unset = repr(default) if default is None or default is False else f"_D{k}"  # (an `is` test on '' warns)
    generic = f"_generic(F{k}, m.{name}, w, starts{f', sp.get({info.flag!r}, {info.flag!r})' if general else ''})"
    fast: list[str] = []  # (none: a free-form word or another default goes to the general path)
    if general:
        pass
    elif f.is_tuple:
        ns[f"L{k}"] = _ListOption(f)
        fast = [f"        if not _items(L{k}, m.{name}, w, starts):"]
    elif not info.flag:
        pass
    elif base is bool and default is False:
        fast = [f"        if m.{name} is True:", f"            w.append({info.flag!r})", "        else:"]
    elif (base is str or base is int) and (default is None or default == ""):
        value, plain = ("v", "v.__class__ is _str and v") if base is str else ("_str(v)", "v.__class__ is _int")
        add = f"w.append({info.flag + '=' !r} + {value})" if info.style == "eq" else f"w += ({info.flag!r}, {value})"
        fast = [f"        v = m.{name}", f"        if {plain}:", "            starts.append(len(w))",
                f"            {add}", "        else:"]
    return [f"    if m.{name} is not {unset}:", *fast, ("            " if fast else "        ") + generic]


def _compile_words(cls: type, general: bool = False) -> Callable[..., tuple[list[str], list[int], int]]:
    """Generate ``words(model, rest=None) -> (argv, group starts, lead)`` for one command class.

    The walk the metadata describes (program and subcommand words, options in declaration order,
    positionals, the trailing argv), written out once per class as straight-line code, the way
    :mod:`dataclasses` writes ``__init__`` (see :func:`_option_code` for an option). ``rest`` replaces
    the model's trailing argv (a workflow puts its launcher there); ``lead`` is how many words the
    program and subcommand take. A class whose flags depend on a field (torchrun written for PyTorch
    1.x: ``--nproc_per_node``) defines ``_spelled(self) -> {flag: spelling}``; when that says anything,
    the words come from the ``general`` variant, which writes every option by :func:`_generic_option`.
    """
    ns: dict[str, Any] = {"_str": str, "_int": int, "_generic": _generic_option, "_items": _put_items}
    body = ["def words(m, rest=None):"]
    spelled = getattr(cls, "_spelled", None) is not None
    if spelled and not general:
        ns["_general"] = _compile_words(cls, general=True)
        body += ["    if m._spelled():", "        return _general(m, rest)"]
    elif spelled:
        body.append("    sp = m._spelled()")
    head: list[tuple[int, str]] = []
    positionals: list[str] = []
    rest_field = ""
    options: list[str] = []
    for k, f in enumerate(cls.field_specs()):
        ns[f"F{k}"], ns[f"_D{k}"], role = f, f.default, f.info.role
        if role in ("program", "subcommand"):
            if options:
                raise TypeError(f"{cls.__qualname__}.{f.name}: declare the {role} before the options")
            head.append((k, f.name))
        elif role == "option" and not f.info.env:
            options += _option_code(k, f, general, ns)
        elif role == "positional":
            positionals.append(f.name)
        elif role == "rest":
            rest_field = f.name
    if head:  # the program's words are known when it holds its default (the usual case)
        known = [word for k, _ in head for word in str(ns[f"_D{k}"]).split()]
        body += ["    if " + " and ".join(f"m.{name} is _D{k}" for k, name in head) + ":",
                 f"        w = {known!r}",
                 "    else:",
                 "        w = " + " + ".join(f"_str(m.{name}).split()" for _, name in head),
                 "    lead = len(w)"]
    else:
        body += ["    w = []", "    lead = 0"]
    body += ["    starts = []", *options]
    body.append(f"    r = list(m.{rest_field}) if rest is None else list(rest)" if rest_field
                else "    r = [] if rest is None else list(rest)")
    if getattr(cls, "_argv_tail", None) is not None:
        body.append("    r = list(m._argv_tail(r)) + r")
    if positionals:
        # an empty positional is left out, unless words follow it: then '' keeps its place (torchrun '' ARGS)
        body += ["    pos = [" + ", ".join(f"m.{name}" for name in positionals) + "]",
                 "    if r:",
                 "        if None in pos:",
                 "            pos = [x if x is not None else '' for x in pos]",
                 "    elif '' in pos or None in pos:",
                 "        pos = [x for x in pos if x != '' and x is not None]",
                 "    if pos:", "        starts.append(len(w))", "        w += pos"]
    body += ["    w += r", "    return w, starts, lead"]
    exec(compile("\n".join(body) + "\n", f"<hpcwidgets argv of {cls.__qualname__}>", "exec"), ns)
    return ns["words"]  # type: ignore[no-any-return]


def _compile_env(cls: type) -> Callable[[Spec], list[tuple[str, str]]]:
    """Generate ``env(model) -> [(NAME, value)]`` for one class: each environment field (``env=``) holding a value,
    under the name the model gives it (``env_name``), then what the model's ``_env_tail()`` adds."""
    body = ["def env(m):", "    out = []"]
    for f in cls.field_specs():
        if f.info.env:
            body += [f"    v = m.{f.name}", "    if v not in ('', None, False, ()):",
                     f"        out.append((m.env_name({f.info.env!r}), '1' if v is True else _str(v)))"]
    if getattr(cls, "_env_tail", None) is not None:
        body.append("    out += list(m._env_tail())")
    body.append("    return out")
    ns: dict[str, Any] = {"_str": str}
    exec(compile("\n".join(body) + "\n", f"<hpcwidgets environment of {cls.__qualname__}>", "exec"), ns)
    return ns["env"]  # type: ignore[no-any-return]


class _PerClass(dict[type, Callable[..., Any]]):
    """Functions compiled for each class on its first use, by class: a subclass never uses its parent's (it has
    fields of its own), and a known class is one dict lookup in C."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[type], Callable[..., Any]]) -> None:
        super().__init__()
        self.build = build

    def __missing__(self, cls: type) -> Callable[..., Any]:
        fn = self[cls] = self.build(cls)
        return fn


_WORDS = _PerClass(_compile_words)
_ENV = _PerClass(_compile_env)


def model_words(model: Spec, rest: Iterable[str] | None = None) -> tuple[list[str], list[int], int]:
    """``(argv, group starts, lead)`` of a command model; ``rest`` replaces its trailing argv.

    Group starts are indexes of words where a continuation line may begin (each option with a
    value, and the first positional); ``lead`` counts the program and subcommand words.
    """
    return _WORDS[model.__class__](model, rest)  # type: ignore[no-any-return]


def argv(model: Spec) -> list[str]:
    """The argument vector of a command model (values unquoted; ``$NAME`` still unexpanded)."""
    return model_words(model)[0]


def env_assignments(model: Spec) -> list[tuple[str, str]]:
    """Fields rendered as environment variables (``APPTAINER_CACHEDIR``) with their values."""
    return _ENV[model.__class__](model)  # type: ignore[no-any-return]
