"""Field checks compiled once per model class from the field metadata.

``Spec.problems()`` runs on every keystroke in a form and before every render. Walking the
metadata generically costs several calls per field, so, the way :mod:`dataclasses` writes
``__init__``, each class gets one generated function with a straight-line test per field. The
test only decides "certainly fine"; a field that fails it is handed to the generic
:func:`~hpcwidgets.spec._meta._check_value`, so every message still has one source. The
generated code is an optimisation of the metadata, never a second description of it: it is
built from :class:`~hpcwidgets.spec._meta.FieldSpec` alone.

Stdlib only, and nothing is compiled until a class is first checked (import stays cheap).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Callable

from ..errors import Problem


def _nest(name: str, item: Any) -> list[Problem]:
    """A nested model's problems with the field path prefixed (``container.image``)."""
    return _prefix(name, item.problems())


def _prefix(name: str, problems: list[Problem]) -> list[Problem]:
    return [Problem(f"{name}.{p.field}" if p.field else name, p.message) for p in problems]


def _slow(f: Any, value: Any, out: list[Problem], nested: list[Problem]) -> None:
    """The generic path for a value the compiled test did not accept."""
    from ._meta import Spec, _check_value
    out += _check_value(f, value)
    if f.is_tuple:
        items = value if isinstance(value, (tuple, list)) else ()
    else:
        items = (value,)
    for item in items:
        if isinstance(item, Spec):
            nested += _nest(f.name, item)


def _is_union(t: Any) -> bool:
    return typing.get_origin(t) in (typing.Union, types.UnionType)


def _item_test(f: Any, var: str, ns: dict[str, Any], k: int) -> str | None:
    """A Python expression true when one item ``var`` is certainly fine (None: always ask the generic check)."""
    from ._meta import Spec
    base, info = f.base_type, f.info
    if base is bool:
        return f"({var} is True or {var} is False)"
    if base is int:
        parts = [f"{var}.__class__ is int"]
        if info.minimum is not None:
            parts.append(f"{var} >= {info.minimum!r}")
        if info.maximum is not None:
            parts.append(f"{var} <= {info.maximum!r}")
        return "(" + " and ".join(parts) + ")"
    if base is str:
        test = f"({var}.__class__ is str and '\\x00' not in {var}"
        if info.path:
            test += f" and {var}[:1] != '~'"
        if info.choices:
            allowed = set(info.choices) | ({""} if f.default == "" else set())
            ns[f"C{k}"] = frozenset(allowed)
            test += f" and {var} in C{k}"
        return test + ")"
    if isinstance(base, type) and issubclass(base, Spec):
        ns[f"B{k}"] = base
        return f"isinstance({var}, B{k})"
    if _is_union(base):
        # the generic check only refuses text with a NUL for a union; any model is left to its own checks
        return f"not isinstance({var}, str)"
    return None


def _holds_models(f: Any) -> bool:
    from ._meta import Spec
    base = f.base_type
    if _is_union(base):
        return any(isinstance(a, type) and issubclass(a, Spec) for a in typing.get_args(base))
    return isinstance(base, type) and issubclass(base, Spec)


def compile_problems(cls: type) -> Callable[[Any], list[Problem]]:
    """The generic field checks of ``cls`` plus its nested models' problems and its own ``_check``."""
    from ._meta import Spec, mistyped
    ns: dict[str, Any] = {"_slow": _slow, "_prefix": _prefix, "Spec": Spec, "_EMPTY": ()}
    body = ["def problems(self):", "    out = []", "    nested = []"]
    for k, f in enumerate(cls.field_specs()):
        ns[f"F{k}"] = f
        slow = f"_slow(F{k}, v, out, nested)"
        models = _holds_models(f)
        body.append(f"    v = self.{f.name}")
        if f.is_tuple:
            test = _item_test(f, "i", ns, k)
            if test is None:
                body.append(f"    {slow}")
                continue
            lines = ["if v.__class__ is tuple:",
                     "    for i in v:",
                     f"        if not {test}:",
                     f"            {slow}",
                     "            break"]
            if models:
                lines += ["    else:",
                          "        for i in v:",
                          "            if isinstance(i, Spec):",
                          "                ps = i.problems()",
                          "                if ps:",
                          f"                    nested += _prefix({f.name!r}, ps)"]
            lines += ["else:", f"    {slow}"]
            indent = "    "
            if f.default.__class__ is tuple and not f.default:
                # a list left at its empty default (most lists of most models) has no item to check: one identity test
                body.append("    if v is not _EMPTY:")
                indent += "    "
            body += [indent + line for line in lines]
            continue
        test = _item_test(f, "v", ns, k)
        if test is None:
            body.append(f"    {slow}")
            continue
        if models:
            body += ["    if v is None:", "        pass" if f.optional else f"        {slow}",
                     "    elif isinstance(v, Spec) and " + test + ":",
                     "        ps = v.problems()",
                     "        if ps:",
                     f"            nested += _prefix({f.name!r}, ps)",
                     "    else:", f"        {slow}"]
        else:
            guard = f"v is None or {test}" if f.optional else test
            body += [f"    if not ({guard}):", f"        {slow}"]
    # cross-field checks read the fields as their types say; when one is of another type (nnodes=4 for "4"), its own
    # problem says so, and a check that cannot read it adds nothing rather than raising (any other crash is a bug)
    ns["_mistyped"] = mistyped
    body += ["    if nested:", "        out += nested",
             "    if not out:", "        return self._check()",
             "    try:", "        out += self._check()",
             "    except (TypeError, AttributeError, ValueError):",
             "        if not _mistyped(self):", "            raise",
             "    return out"]
    exec(compile("\n".join(body) + "\n", f"<hpcwidgets problems of {cls.__qualname__}>", "exec"), ns)
    fn = ns["problems"]
    fn.__qualname__, fn.__doc__ = f"{cls.__qualname__}.problems", Spec.problems.__doc__  # it becomes the method
    return fn  # type: ignore[no-any-return]
