"""Field metadata: the single source of truth for every model field.

Each model field is declared once with :func:`opt`, carrying its label, help text, the flag it
renders to, its choices and bounds. The renderer, the parser, the CLI options, the widget forms,
JSON/TOML serialization and the documentation are all generated from this metadata.

Stdlib only: this module is imported by ``import hpcwidgets`` and must stay cheap.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

from ..errors import Problem, UnknownFieldError, ValidationError
from ._words import Verbatim

#: How a field takes part in a command line.
#: ``program``    the executable (``apptainer`` or ``singularity``),
#: ``subcommand`` words after the program (``exec``, ``instance start``),
#: ``option``     a flag (``--bind``),
#: ``positional`` a required word after the options (the image),
#: ``rest``       the trailing argument vector (the program and its arguments),
#: ``internal``   not on the command line (settings, nested models, script lines).
ROLES = ("program", "subcommand", "option", "positional", "rest", "internal")


@dataclass(frozen=True)
class TextForm:
    """Text a whole-number field also takes because the program reads it (``--nodes=2-4``,
    ``--gpus=a100:4``, ``srun -c $SLURM_CPUS_PER_TASK``). The generic check accepts text that
    matches ``pattern`` in full; the model's own ``_check`` judges what such text means."""

    pattern: re.Pattern[str]
    hint: str                           # how to write it, with an example: "a range MIN-MAX (2-4)"
    #: only shell text read from a script (a :class:`Verbatim` such as ``$((N * 4))``); a form's value with the same
    #: text is written literally by the quoting contract, so it is not this form
    verbatim_only: bool = False


@dataclass(frozen=True)
class FieldInfo:
    label: str
    help: str
    role: str = "option"
    flag: str = ""                      # long spelling the renderer writes, e.g. "--bind"
    short: str = ""                     # short spelling the parser also accepts, e.g. "-B"
    aliases: tuple[str, ...] = ()       # other spellings the parser accepts (e.g. "--nproc_per_node", "--pwd")
    style: str = "eq"                   # "eq": --flag=value, "space": --flag value
    choices: tuple[str, ...] = ()       # allowed values for a str field ("" always allowed when default is "")
    minimum: int | None = None
    maximum: int | None = None
    placeholder: str = ""
    path: bool = False                  # a filesystem path (lint and widgets treat it so)
    env: str = ""                       # rendered as this environment variable instead of a flag
    cli: str = ""                       # the command-line option, when neither the flag nor the name fits
    advanced: bool = False              # shown folded away in forms
    text_forms: tuple[TextForm, ...] = ()  # text a whole-number field also takes (see TextForm)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {self.role!r}")
        if self.style not in ("eq", "space"):
            raise ValueError("style must be 'eq' or 'space'")

    @property
    def spellings(self) -> tuple[str, ...]:
        return tuple(s for s in (self.flag, self.short, *self.aliases) if s)

    def text_form(self, text: str) -> bool:
        """Whether ``text`` is one of the text forms this whole-number field also takes."""
        return any(form.pattern.fullmatch(text) and (not form.verbatim_only or isinstance(text, Verbatim))
                   for form in self.text_forms)

    def count_hint(self) -> str:
        """How to write a value of this whole-number field: "a whole number" and its text forms."""
        return " or ".join(("a whole number", *(form.hint for form in self.text_forms if not form.verbatim_only)))


def opt(default: Any = dataclasses.MISSING, label: str = "", help: str = "", **info: Any) -> Any:
    """Declare a model field with its metadata (see :class:`FieldInfo`)."""
    meta = {"hpcw": FieldInfo(label=label, help=help, **info)}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use an immutable default (a tuple), models are frozen")
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldSpec:
    """A field of a model class with its metadata and resolved type.

    ``base_type`` is ``int`` for ``int | None`` and the item type for ``tuple[X, ...]``; it,
    ``is_tuple`` and ``optional`` are computed once, when the class's specs are first built.
    """

    name: str
    info: FieldInfo
    type: Any
    default: Any
    base_type: Any = None
    is_tuple: bool = False
    optional: bool = False

    @classmethod
    def build(cls, name: str, info: FieldInfo, type_: Any, default: Any) -> "FieldSpec":
        t = _strip_optional(type_)
        is_tuple = typing.get_origin(t) is tuple
        if is_tuple:
            args = typing.get_args(t)
            base = args[0] if args else str
        else:
            base = t
        return cls(name, info, type_, default, base, is_tuple, _is_optional(type_))


def _is_optional(t: Any) -> bool:
    origin = typing.get_origin(t)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(t)


def _strip_optional(t: Any) -> Any:
    if _is_optional(t):
        rest = [a for a in typing.get_args(t) if a is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    return t


_REGISTRY: dict[str, type["Spec"]] = {}


class Spec:
    """Mixin for every model: metadata access, validation and (de)serialization.

    Subclasses are ``@dataclass(frozen=True)`` and set ``kind`` (a stable tag used in JSON/TOML).
    Constructing a model never raises for bad values: call :meth:`problems` or :meth:`validate`.
    That lets a form hold a half-typed model and the parser read a broken script.
    """

    kind: ClassVar[str] = ""
    #: how a file that holds this model names one, for a message about a value of another kind in its place
    #: (``a [[partitions]] table``); empty: by the class name (``a SlurmJob (an object)``)
    file_noun: ClassVar[str] = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "problems" not in cls.__dict__:
            cls.problems = Spec.problems  # type: ignore[method-assign]  # replaced by its compiled checks, see problems
        tag = cls.__dict__.get("kind")
        if tag:
            if tag in _REGISTRY and _REGISTRY[tag].__qualname__ != cls.__qualname__:
                raise TypeError(f"kind {tag!r} is already used by {_REGISTRY[tag].__qualname__}")
            _REGISTRY[tag] = cls

    def __post_init__(self) -> None:
        """A list given for a list field becomes a tuple, as ``replace`` and ``from_dict`` make it (models are
        frozen, so their lists are tuples); every other value is kept for :meth:`problems` to judge."""
        for name in _tuple_fields(type(self)):
            value = getattr(self, name)
            if value.__class__ is list:
                object.__setattr__(self, name, tuple(value))

    # -- metadata ---------------------------------------------------------------------------
    @classmethod
    def field_specs(cls) -> tuple[FieldSpec, ...]:
        return _field_specs(cls)

    @classmethod
    def field_spec(cls, name: str) -> FieldSpec:
        for f in cls.field_specs():
            if f.name == name:
                return f
        raise UnknownFieldError(cls.__name__, name, [f.name for f in cls.field_specs()])

    # -- validation ---------------------------------------------------------------------------
    def problems(self) -> list[Problem]:
        """Every problem with this model: generic checks from metadata, then the nested models',
        then the model's own cross-field checks (:meth:`_check`)."""
        try:
            # reached only from a class's first check and from an override's super().problems(): every other call
            # goes straight to the compiled checks (see _compile_checks)
            check = type(self).__dict__["_hpcw_problems"]
        except KeyError:
            check = _compile_checks(type(self))
        return check(self)  # type: ignore[no-any-return]

    def _check(self) -> list[Problem]:
        """Cross-field checks; subclasses override."""
        return []

    def validate(self) -> "Spec":
        problems = self.problems()
        if problems:
            raise ValidationError(problems, subject=self.describe())
        return self

    def describe(self) -> str:
        return self.kind or type(self).__name__

    def env_name(self, name: str) -> str:
        """The environment variable a field declared with ``env=name`` is written as for this model (a model
        whose program reads other names, such as ``singularity``, overrides this)."""
        return name

    # -- convenience -------------------------------------------------------------------------
    def replace(self, **changes: Any) -> Any:
        names = {f.name for f in self.field_specs()}
        for key in changes:
            if key not in names:
                raise UnknownFieldError(type(self).__name__, key, sorted(names))
        return dataclasses.replace(self, **{k: coerce(self.field_spec(k), v) for k, v in changes.items()})

    def changed_fields(self) -> dict[str, Any]:
        """Fields whose value differs from the default (what JSON needs to carry)."""
        return {f.name: getattr(self, f.name) for f in self.field_specs()
                if getattr(self, f.name) != f.default}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for name, value in self.changed_fields().items():
            out[name] = _dump(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """A model from loaded JSON/TOML data. Values of the wrong type (``job_name = 5``, a list for a
        text field, an object without ``kind`` for a layer) and fields the model cannot do without (a bind's
        ``src``) raise :class:`ValidationError` naming every such field by its path (``container.binds[0].src``)
        and what it takes; values of the right type are kept for :meth:`problems`. A count written as text
        (``"nodes": "2"``) is the number, as ``"2-4"`` there is the range."""
        if not isinstance(data, dict):
            raise ValidationError([Problem("", f"expected an object (a table) describing a {cls.kind or cls.__name__}, "
                                               f"got {_shown(data)}")])
        data = dict(data)
        tag = data.pop("kind", None)
        target: type[Spec] = cls
        if tag is not None and not isinstance(tag, str):
            raise ValidationError([Problem("kind", f"expected the model's kind as text, got {_shown(tag)}")])
        if tag and tag != cls.kind:
            target = spec_class(tag)
            if not issubclass(target, cls):
                raise ValidationError([Problem("kind", f"expected {cls.kind or cls.__name__}, got {tag!r}")])
        names = {f.name: f for f in target.field_specs()}
        unknown = [k for k in data if k not in names]
        if unknown:
            raise UnknownFieldError(target.__name__, str(unknown[0]), sorted(names))
        values: dict[str, Any] = {}
        problems: list[Problem] = []
        for k, v in data.items():
            try:
                values[k] = coerce(names[k], v, strict=True)
            except ValidationError as exc:
                problems += exc.problems
        problems += [_missing(target, f) for f in names.values()
                     if f.default is dataclasses.MISSING and f.name not in data]
        if problems:
            raise ValidationError(problems, subject=target.kind or target.__name__)
        return target(**values)

    def to_json(self, indent: int | None = 2) -> str:
        import json
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Any:
        data = load_json(text)
        if not isinstance(data, dict):
            raise ValidationError([Problem("", "expected a JSON object describing a model")])
        return cls.from_dict(data)


def _compile_checks(cls: type[Spec]) -> Any:
    """Compile the checks of ``cls`` (once: they are kept on the class itself, not inherited)."""
    from ._compiled import compile_problems
    check = compile_problems(cls)
    cls._hpcw_problems = check  # type: ignore[attr-defined]
    if cls.__dict__.get("problems") is Spec.problems:
        # later calls go straight to the compiled checks; each subclass holds this method again (see
        # __init_subclass__), so it never inherits checks compiled for another class's fields
        cls.problems = check  # type: ignore[method-assign]
    return check


def spec_class(tag: str) -> type[Spec]:
    try:
        return _REGISTRY[tag]
    except KeyError:
        raise ValidationError([Problem("kind", f"unknown model kind {tag!r}; known: {', '.join(sorted(_REGISTRY))}")]) from None


def all_kinds() -> dict[str, type[Spec]]:
    return dict(_REGISTRY)


@functools.cache
def _field_specs(cls: type) -> tuple[FieldSpec, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        info = f.metadata.get("hpcw")
        if info is None:
            raise TypeError(f"{cls.__name__}.{f.name} was declared without opt(): every field needs metadata")
        default = f.default if f.default is not dataclasses.MISSING else dataclasses.MISSING
        out.append(FieldSpec.build(f.name, info, hints[f.name], default))
    return tuple(out)


@functools.cache
def _tuple_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in _field_specs(cls) if f.is_tuple)


def _dump(value: Any) -> Any:
    if isinstance(value, Verbatim):
        return {"verbatim": str(value)}
    if isinstance(value, Spec):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    return value


def load_json(text: str, source: str = "") -> Any:
    """``json.loads`` with every failure as a :class:`ParseError` (bad syntax, nesting too deep, a key given twice in
    one object)."""
    import json
    from ..errors import ParseError

    def once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # a key given twice: json keeps the last without a word, and the other value is lost unseen
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ParseError(f"the key {key!r} is given twice in one object ({json.dumps(out[key])[:40]}, then "
                                 f"{json.dumps(value)[:40]}); keep the one you mean", source=source)
            out[key] = value
        return out
    try:
        return json.loads(text, object_pairs_hook=once)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON: {exc.msg}", exc.lineno, exc.colno, source=source) from None
    except RecursionError:
        where = f"{source}: " if source else ""
        raise ParseError(f"{where}not valid JSON for a model: it is nested too deeply "
                         "(a model is a few levels deep); check the brackets") from None


def coerce(f: FieldSpec, value: Any, *, strict: bool = False) -> Any:
    """Bring a loaded value (lists from JSON, dicts for nested models) to the field's type.

    With ``strict`` (loading JSON/TOML) a value of the wrong type raises :class:`ValidationError`
    naming the field and the type it takes. Without it (``replace``, the parsers) any value is kept
    and :meth:`Spec.problems` reports it, so a form can hold half-typed input.
    """
    if value is None:
        if strict and not f.optional and f.default is not None:
            wanted = f"a {f.base_type.kind} (an object)" if isinstance(f.base_type, type) and issubclass(
                f.base_type, Spec) else "a list" if f.is_tuple else "a value"
            raise ValidationError([Problem(f.name, f"expected {wanted}, got null; leave {f.name} out to keep its "
                                                   "default")])
        return None
    base = f.base_type
    if f.is_tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            value = (value,)
            return (_coerce_one(base, value[0], f.name, strict),)
        problems: list[Problem] = []
        out = []
        for i, v in enumerate(value):
            try:
                out.append(_coerce_one(base, v, f"{f.name}[{i}]", strict))
            except ValidationError as exc:
                problems += exc.problems
        if problems:
            raise ValidationError(problems)
        return tuple(out)
    return _coerce_one(_strip_optional(f.type), value, f.name, strict)


def _shown(value: Any) -> str:
    """A loaded value for a message: short, and saying what kind of value it is."""
    if isinstance(value, dict):
        return "an object (a table)"
    if isinstance(value, (list, tuple)):
        text = repr(list(value))
        return f"a list {text if len(text) <= 40 else text[:37] + '…]'}"
    if _is_date(value):
        return f"the date or time {value.isoformat()}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _is_date(value: Any) -> bool:
    """Whether ``value`` is a date or time (what TOML makes of 12:00:00 or 2024-05-01 written without quotes)."""
    return type(value).__module__ == "datetime" and hasattr(value, "isoformat")


def _missing(cls: type[Spec], f: FieldSpec) -> Problem:
    """A field without a default left out of loaded data: what the model needs there, from its metadata."""
    article = "an" if cls.__name__[:1] in "AEIOU" else "a"
    help_text = f.info.help.rstrip(".")
    what = ": ".join(t for t in (f.info.label, help_text[:1].lower() + help_text[1:]) if t)
    return Problem(f.name, f"missing: {article} {cls.__name__} needs {f.name}" + (f" ({what})" if what else ""))


def _nested(name: str, exc: ValidationError) -> ValidationError:
    """The problems of a nested model, with their fields named from the outer model (``container.image``)."""
    return ValidationError([Problem(f"{name}.{p.field}" if p.field else name, p.message) for p in exc.problems])


def _coerce_one(t: Any, value: Any, name: str, strict: bool = False) -> Any:
    if isinstance(value, dict) and set(value) == {"verbatim"}:
        if strict and not isinstance(value["verbatim"], str):
            raise ValidationError([Problem(name, f"expected the verbatim text as text, got {_shown(value['verbatim'])}")])
        return Verbatim(value["verbatim"])
    origin = typing.get_origin(t)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in typing.get_args(t) if a is not type(None)]
        kinds = ", ".join(getattr(a, "kind", "") or a.__name__ for a in options)
        if isinstance(value, dict):
            tag = value.get("kind")
            if tag and isinstance(tag, str):
                try:
                    target = spec_class(tag)
                    # the kind is checked first: another model's own problems would hide that it is the wrong one
                    if strict and not issubclass(target, tuple(o for o in options if isinstance(o, type))):
                        raise ValidationError([Problem("", f"expected one of {kinds}, got kind {tag!r}")])
                    return target.from_dict(value)
                except ValidationError as exc:
                    raise _nested(name, exc) from None
            if strict:
                raise ValidationError([Problem(name, f"say which model this is: add \"kind\" (one of {kinds})")])
        elif strict and not any(isinstance(o, type) and isinstance(value, o) for o in options):
            raise ValidationError([Problem(name, f"expected an object with a \"kind\" ({kinds}), got {_shown(value)}")])
        return value
    if isinstance(t, type) and issubclass(t, Spec):
        if isinstance(value, t):
            return value
        if isinstance(value, dict):
            try:
                return t.from_dict(value)
            except ValidationError as exc:
                raise _nested(name, exc) from None
        if isinstance(value, str) and hasattr(t, "from_token"):
            return t.from_token(value)  # type: ignore[attr-defined]
        article = "an" if t.__name__[:1] in "AEIOU" else "a"
        wanted = t.file_noun or f"{article} {t.__name__} (an object)"
        raise ValidationError([Problem(name, f"expected {wanted}, got {_shown(value)}")])
    if t is tuple and isinstance(value, list):
        return tuple(value)
    if t is bool and isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    if strict:
        if t is int and value.__class__ is str and _COUNT_TEXT.fullmatch(value):
            return int(value)  # "nodes": "2" in a saved file means 2, as "2-4" there means the range
        _check_type(t, value, name)
    return value


def _check_type(t: Any, value: Any, name: str) -> None:
    """Raise ValidationError when a loaded scalar cannot be a value of type ``t``.

    Text is kept in whole-number fields (a parsed script may hold ``"1-2"`` or ``"$N"`` there, and
    :meth:`Spec.problems` explains it); numbers, lists and objects in text fields are refused.
    """
    if t is str and not isinstance(value, str):
        fix = f"; write it in quotes: \"{value}\"" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        if _is_date(value):  # TOML reads 12:00:00 or 2024-05-01 written without quotes as a time or date
            fix = f"; write it in quotes: \"{value.isoformat()}\""
        raise ValidationError([Problem(name, f"expected text, got {_shown(value)}{fix}")])
    if t is int and (isinstance(value, bool) or not isinstance(value, (int, str))):
        raise ValidationError([Problem(name, f"expected a whole number, got {_shown(value)}")])
    if t is bool and not isinstance(value, bool):
        raise ValidationError([Problem(name, f"expected true or false, got {_shown(value)}")])


def _fits(f: FieldSpec, item: Any) -> bool:
    """Whether one item (a tuple field's element, or the value) is of the type its field declares; a count field
    also takes text when it has text forms (``2-4`` nodes), which are checked apart."""
    base = f.base_type
    if base is bool:
        return isinstance(item, bool)
    if base is int:
        text = isinstance(item, str) and bool(f.info.text_forms)
        return not isinstance(item, bool) and (isinstance(item, int) or text)
    if base is str:
        return isinstance(item, str)
    if isinstance(base, type) and issubclass(base, Spec):
        return isinstance(item, base)
    return True


def _expected(f: FieldSpec) -> str:
    """What one item of a field holds, as its type problems say it: text, a whole number, true or false, a Bind …"""
    base = f.base_type
    if base is bool:
        return "true or false"
    if base is int:
        return "a whole number"
    if isinstance(base, type) and issubclass(base, Spec):
        return f"{'an' if base.__name__[:1] in 'AEIOU' else 'a'} {base.__name__}"
    return "text"


def mistyped(model: Any) -> bool:
    """Whether a field of ``model`` holds a value of another type than it declares (``nnodes=4`` for ``"4"``,
    None where None is not allowed): cross-field checks, which read fields as their types say, cannot judge it."""
    for f in model.field_specs():
        value = getattr(model, f.name)
        if value is None:
            if not f.optional:
                return True
        elif f.is_tuple and not isinstance(value, tuple):
            return True
        elif not all(_fits(f, item) for item in (value if f.is_tuple else (value,))):
            return True
    return False


def _check_value(f: FieldSpec, value: Any) -> list[Problem]:
    info = f.info
    label = info.label or f.name
    if value is None:
        if f.optional:
            return []
        default = f"the default ({f.default!r})" if isinstance(f.default, (str, int, tuple)) else "its default"
        expected = "a list of values" if f.is_tuple else _expected(f)
        return [Problem(f.name, f"{label}: expected {expected}, got None; leave it out for {default}")]
    items = value if f.is_tuple else (value,)
    if f.is_tuple and not isinstance(value, tuple):
        return [Problem(f.name, f"{label}: expected a list of values, got {_shown(value)}")]
    out = []
    base = f.base_type
    for item in items:
        if not _fits(f, item):
            hint = ""
            model = isinstance(base, type) and issubclass(base, Spec)
            if model and isinstance(item, str) and hasattr(base, "from_token"):
                hint = f"; write {base.__name__}.from_token({item!r})"
            elif base is str and isinstance(item, (int, float)) and not isinstance(item, bool):
                hint = f"; write it as text: {str(item)!r}"
            elif base is int and isinstance(item, float) and item.is_integer():
                hint = f"; write it without a decimal point: {int(item)}"
            elif base is int and isinstance(item, str) and _COUNT_TEXT.fullmatch(item):
                hint = f"; write the number without quotes: {int(item)}"
            out.append(Problem(f.name, f"{label}: expected {_expected(f)}, got {item!r}{hint}"))
        elif base is int and isinstance(item, str):
            if _COUNT_TEXT.fullmatch(item) and not isinstance(item, Verbatim):
                out.append(Problem(f.name, f"{label}: {item!r} is text; write the number without quotes: {int(item)}"))
            elif not info.text_form(item):
                out.append(Problem(f.name, f"{label}: {item!r} is not a count; write {info.count_hint()}"))
        elif base is int:
            if info.minimum is not None and item < info.minimum:
                out.append(Problem(f.name, f"{label} must be at least {info.minimum}, got {item}"))
            if info.maximum is not None and item > info.maximum:
                out.append(Problem(f.name, f"{label} must be at most {info.maximum}, got {item}"))
        elif base is str and info.choices and item not in info.choices and not (item == "" and f.default == ""):
            out.append(Problem(f.name, f"{label} must be one of {', '.join(info.choices)}; got {item!r}"))
        if isinstance(item, str) and "\x00" in item:
            out.append(Problem(f.name, f"{label} contains a NUL character, which no shell word can hold; remove it"))
        if info.path and isinstance(item, str) and item[:1] == "~" and not isinstance(item, Verbatim):
            out.append(Problem(f.name, f"{label}: {item!r}: '~' is not expanded in a quoted word; "
                                       f"write $HOME{item[1:]} instead"))
    return out


def count_from_text(f: FieldSpec, text: str) -> int | str | None:
    """A whole-number field's value from what a person typed (a form, a command-line option):
    digits give the number, a text form (``2-4`` for nodes) is kept as text, "" is None.
    Anything else raises :class:`ValueError` with a message that says how to write it."""
    s = text.strip()
    if not s:
        return None
    if _DIGITS.fullmatch(s):
        return int(s)
    if f.info.text_form(s):
        return s
    label = f.info.label or f.name
    if f.info.text_forms:
        raise ValueError(f"{label}: {s!r} is not a count; write {f.info.count_hint()}")
    example = next((str(v) for v in (f.info.placeholder, f.default) if _DIGITS.fullmatch(str(v))), "4")
    raise ValueError(f"{label}: {s!r} is not a whole number; type digits only, e.g. {example}")


_DIGITS = re.compile(r"[+-]?[0-9]+")
#: a count written as text, which a saved file may hold (``"nodes": "2"``) and which means the number (bounded:
#: ``int()`` refuses thousands of digits, and no count has a hundred)
_COUNT_TEXT = re.compile(r"[0-9]{1,100}")


def iter_fields(model: Spec) -> Iterator[tuple[FieldSpec, Any]]:
    for f in model.field_specs():
        yield f, getattr(model, f.name)
