"""Finding, loading and writing cluster profiles (TOML files).

A profile is selected by name or by path. Names are looked up, first match wins, in:

1. the directories in ``$HPCW_PROFILE_PATH`` (separated by ``os.pathsep``, i.e. ``:`` on Linux);
2. ``~/.config/hpcwidgets/profiles/`` (``$XDG_CONFIG_HOME/hpcwidgets/profiles/`` when that is set);
3. the profiles shipped in this package (``generic``, ``local``, ``midway3``).

A profile called ``NAME`` is the file ``NAME.toml`` in one of those directories (``$HPCW_PROFILE_PATH``
takes directories; an unknown name's error points out entries that are files or do not exist). Stdlib
only (``tomllib``; the ``tomli`` backport on Python 3.10).

Reading a file: a misspelled key is an error naming its line, the valid keys and the closest one
("did you mean"); every other problem is listed at once, each with its line and, inside
``[[partitions]]``, the partition's name. A file that sets ``scratch`` but leaves out ``image_dir`` or
``cache_dir`` gets ``<scratch>/images`` and ``<scratch>/.apptainer/cache`` (not the ``$SCRATCH/…``
field defaults, which assume the site sets ``$SCRATCH``).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from pathlib import Path
from typing import Any

from ..errors import HpcWidgetsError, OverwriteError, ProfileError, UnknownFieldError, ValidationError
from ..spec._meta import Spec
from ..spec.profile import ClusterProfile, ExampleSettings, Module, Partition

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SHIPPED_DIR = Path(__file__).resolve().parent
ENV_VAR = "HPCW_PROFILE_PATH"

__all__ = ["SHIPPED_DIR", "ENV_VAR", "clear_cache", "list_profiles", "load_profile", "profile_fields_markdown",
           "profile_to_toml", "save_profile", "search_path", "user_profile_dir"]


# ------------------------------------------------------------------------------------------------
# search path
# ------------------------------------------------------------------------------------------------
def user_profile_dir() -> Path:
    """``$XDG_CONFIG_HOME/hpcwidgets/profiles`` or ``~/.config/hpcwidgets/profiles``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hpcwidgets" / "profiles"


def search_path() -> list[Path]:
    """The directories searched for ``NAME.toml``, highest precedence first (read from the environment each call)."""
    dirs = [Path(d).expanduser() for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d.strip()]
    dirs.append(user_profile_dir())
    dirs.append(SHIPPED_DIR)
    return dirs


def list_profiles() -> dict[str, Path]:
    """Every profile name that can be loaded, with the file it comes from (the first on the search path)."""
    found: dict[str, Path] = {}
    for directory in search_path():
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def _is_path(name_or_path: str | os.PathLike[str]) -> bool:
    if isinstance(name_or_path, os.PathLike):
        return True
    text = str(name_or_path)
    return "/" in text or os.sep in text or text.endswith(".toml")


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    if _is_path(name_or_path):
        path = Path(os.fspath(name_or_path)).expanduser()
        if not path.is_file():
            raise ProfileError(f"no profile file at {path}; check the path, or give a profile name "
                               f"({', '.join(list_profiles()) or 'none found'})")
        return path
    name = str(name_or_path).strip()
    if not name:
        raise ProfileError(f"no profile name given; available: {', '.join(list_profiles()) or 'none found'}")
    for directory in search_path():
        candidate = directory / f"{name}.toml"
        if candidate.is_file():
            return candidate
    available = ", ".join(list_profiles()) or "none found"
    dirs = ", ".join(str(d) for d in search_path())
    raise ProfileError(f"unknown profile {name!r}; available: {available} (searched {dirs}; "
                       f"add {name}.toml to one of them or set ${ENV_VAR}){_env_path_hint()}")


def _env_path_hint() -> str:
    """A note on ``$HPCW_PROFILE_PATH`` entries that cannot hold profiles (a file, a missing directory)."""
    notes = []
    for entry in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if not entry.strip():
            continue
        path = Path(entry).expanduser()
        if path.is_file():
            notes.append(f"${ENV_VAR} lists the file {path}, but it takes directories: use {path.parent}, or "
                         f"give the file's path instead of a name")
        elif not path.exists():
            notes.append(f"${ENV_VAR} lists {path}, which does not exist")
    return "".join(f"\nnote: {n}" for n in notes)


# ------------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------------
def load_profile(name_or_path: str | os.PathLike[str], *, validate: bool = True) -> ClusterProfile:
    """Load a profile by name (see the search path) or from a ``.toml`` path.

    Raises :class:`ProfileError` for an unknown name (listing the available ones), a file that is not
    valid TOML (with file, line and column), unknown keys, and, with ``validate`` (the default), any
    problem the profile has (all of them, listed). Loaded files are cached until they change on disk.
    """
    path = _resolve(name_or_path).resolve()
    stat = path.stat()
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size, validate)


def clear_cache() -> None:
    """Forget every loaded profile (files edited in place are re-read anyway when their mtime changes)."""
    _load_cached.cache_clear()


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, size: int, validate: bool) -> ClusterProfile:
    del mtime_ns, size  # part of the cache key only
    return profile_from_toml(Path(path).read_bytes(), source=path, default_name=Path(path).stem, validate=validate)


_TOML_WHERE = re.compile(r"\(at line (\d+), column (\d+)\)")


def profile_from_toml(text: str | bytes, *, source: str = "<profile>", default_name: str = "",
                      validate: bool = True) -> ClusterProfile:
    """Read profile TOML text (``source`` names the file in error messages)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProfileError(f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_WHERE.search(message)
        line = int(getattr(exc, "lineno", 0) or (where.group(1) if where else 0))
        column = int(getattr(exc, "colno", 0) or (where.group(2) if where else 0))
        plain = _TOML_WHERE.sub("", message).strip()
        raise ProfileError(f"{source}:{line}:{column}: not valid TOML: {plain}") from None
    tag = data.pop("kind", ClusterProfile.kind)
    if tag != ClusterProfile.kind:
        raise ProfileError(f"{source}: kind = {tag!r}, but a cluster profile has kind = \"profile\" (or no kind)")
    if default_name and not data.get("name"):
        data["name"] = default_name
    _derive_from_scratch(data)
    unknown = _unknown_keys(data, text)  # reported together with every other problem, not instead of them
    try:
        profile = ClusterProfile.from_dict(data)
    except UnknownFieldError as exc:
        line = _line_of(text, exc.name)
        near = difflib.get_close_matches(exc.name, exc.valid, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ProfileError(f"{source}:{line}: {exc}{hint}" if line else f"{source}: {exc}{hint}") from None
    except ValidationError as exc:
        raise ProfileError("\n".join([*(f"{source}:{line}: {m}" if line else f"{source}: {m}" for line, m in unknown),
                                      f"{source}: {exc}"])) from None
    problems = profile.problems() if validate else []
    if len(unknown) == 1 and not problems:
        line, message = unknown[0]
        raise ProfileError(f"{source}:{line}: {message}" if line else f"{source}: {message}")
    if unknown or problems:
        count = len(unknown) + len(problems)
        lines = [f"{source}: profile {profile.name!r} is not valid ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  - line {line}: {m}" if line else f"  - {m}" for line, m in unknown]
        lines += [f"  - {where}{p}" for where, p in _located(problems, profile, text)]
        error = ProfileError("\n".join(lines))
        error.problems = tuple(problems)  # type: ignore[attr-defined]
        raise error
    return profile


def _unknown_keys(data: dict[str, Any], text: str) -> list[tuple[int, str]]:
    """Remove the keys no model has (top level, ``[examples]``, each ``[[partitions]]``) from ``data`` and
    return ``(line, message)`` for each (the valid keys and the closest one; line 0 when not found), so the
    rest of the file is still read and checked."""
    out: list[tuple[int, str]] = []
    headers = list(_PARTITION_TABLE.finditer(text))
    examples = re.search(r"^[ \t]*\[[ \t]*\"?examples\"?[ \t]*\]", text, re.MULTILINE)
    first = _TABLE.search(text)
    tables: list[tuple[type[Spec], Any, int, int]] = [(ClusterProfile, data, 0, first.start() if first else len(text))]
    if isinstance(data.get("examples"), dict):
        start = examples.end() if examples else 0
        tables.append((ExampleSettings, data["examples"], start, _table_end(text, start) if examples else len(text)))
    parts = data.get("partitions")
    for i, part in enumerate(parts if isinstance(parts, list) else []):
        if isinstance(part, dict):
            start = headers[i].end() if i < len(headers) else 0
            tables.append((Partition, part, start, _table_end(text, start) if i < len(headers) else len(text)))
    for cls, table, start, end in tables:
        valid = sorted(f.name for f in cls.field_specs())
        for key in [k for k in table if k not in valid and k != "kind"]:
            del table[key]
            near = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            line = _line_of(text, key, start, end) or _line_of(text, key)
            out.append((line, f"{UnknownFieldError(cls.__name__, key, valid)}"
                              + (f"; did you mean {near[0]!r}?" if near else "")))
    return out


def _line_of(text: str, key: str, start: int = 0, end: int | None = None) -> int:
    pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=", re.MULTILINE)
    m = pattern.search(text, start, len(text) if end is None else end)
    return text.count("\n", 0, m.start()) + 1 if m else 0


def _derive_from_scratch(data: dict[str, Any]) -> None:
    """``image_dir`` and ``cache_dir`` left out of a file follow the file's ``scratch``.

    A site that writes ``scratch = "/scratch4/$USER"`` and nothing else means its images to live there,
    not under ``$SCRATCH`` (which that site may not even set: the rendered script then stops on an
    unbound variable). Only TOML files get this; models built in Python keep the field defaults.
    """
    scratch = data.get("scratch")
    if not isinstance(scratch, str) or not scratch.startswith(("/", "$")) or scratch == ClusterProfile.field_spec("scratch").default:
        return  # the default, or a value the checks reject anyway (reported once, under scratch)
    base = scratch.rstrip("/") or "/"
    data.setdefault("image_dir", f"{base}/images")
    data.setdefault("cache_dir", f"{base}/.apptainer/cache")


_TABLE = re.compile(r"^[ \t]*\[", re.MULTILINE)
_PARTITION_TABLE = re.compile(r"^[ \t]*\[\[[ \t]*\"?partitions\"?[ \t]*\]\]", re.MULTILINE)
_MODULES_TABLE = re.compile(r"^[ \t]*\[[ \t]*\"?modules\"?[ \t]*\]", re.MULTILINE)


def _table_end(text: str, after: int) -> int:
    nxt = _TABLE.search(text, after)
    return nxt.start() if nxt else len(text)


def _located(problems: list[Any], profile: ClusterProfile, text: str) -> list[tuple[str, Any]]:
    """Each problem with where it is: ``line N`` and, for a partition's or module's problem, which one.

    The problems keep their model field names (``partitions.max_time``); the prefix only helps a
    person find the line when several partitions have the same key.
    """
    first_table = _TABLE.search(text)
    top_end = first_table.start() if first_table else len(text)
    # (model, label, start, end of its part of the text) for each partition and module
    items: list[tuple[str, Any, str, int, int]] = []
    headers = list(_PARTITION_TABLE.finditer(text))
    for i, part in enumerate(p for p in profile.partitions if isinstance(p, Partition)):
        name = part.name if isinstance(part.name, str) and part.name else f"#{i + 1} (no name)"
        start = headers[i].end() if i < len(headers) else -1
        items.append(("partitions", part, f"partition {name!r}", start, _table_end(text, start) if start >= 0 else -1))
    modules = _MODULES_TABLE.search(text)
    for module in (m for m in profile.modules if isinstance(m, Module)):
        start = modules.end() if modules else -1
        items.append(("modules", module, f"module {module.purpose!r}", start, _table_end(text, start) if start >= 0 else -1))
    pending = [list(model.problems()) for _, model, _, _, _ in items]
    out: list[tuple[str, Any]] = []
    for problem in problems:
        field = problem.field or ""
        where = ""
        group, _, key = field.partition(".")
        if key and group in ("partitions", "modules"):
            for (kind, model, label, start, end), todo in zip(items, pending):
                match = next((q for q in todo if kind == group and q.field == key and q.message == problem.message), None)
                if match is None:
                    continue
                todo.remove(match)
                line = 0
                if start >= 0:
                    look = model.purpose if kind == "modules" and isinstance(model.purpose, str) else key.split(".")[0]
                    line = _line_of(text, look, start, end) or text.count("\n", 0, start) + 1
                where = (f"line {line}, " if line else "") + f"{label}: "
                break
        elif field and "." not in field and "[" not in field:
            line = _line_of(text, field, 0, top_end)
            where = f"line {line}: " if line else ""
        out.append((where, problem))
    return out


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_str(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise HpcWidgetsError(f"cannot write {value!r} ({type(value).__name__}) as a TOML value")


def _comment(help_text: str) -> list[str]:
    words, lines, line = help_text.split(), [], "#"
    for word in words:
        if len(line) + 1 + len(word) > 100 and line != "#":
            lines.append(line)
            line = "#"
        line += " " + word
    if line != "#":
        lines.append(line)
    return lines


def _scalars(model: Any, comments: bool) -> list[str]:
    """``key = value`` lines for every field that is not a nested model (those become tables)."""
    lines: list[str] = []
    for f in model.field_specs():
        value = getattr(model, f.name)
        base = f.base_type
        if value is None or (isinstance(base, type) and issubclass(base, Spec)):
            continue
        if comments:
            lines += _comment(f.info.help)
        lines.append(f"{f.name} = {_toml_value(value)}")
    return lines


def profile_to_toml(profile: ClusterProfile, *, comments: bool = True) -> str:
    """The profile as TOML text that :func:`load_profile` reads back to an equal model.

    With ``comments`` every key is preceded by its help text (the first partition's keys too), which
    makes the output a good starting point for a site's own file.
    """
    lines = [f"# hpcwidgets cluster profile {profile.name!r}.",
             "# Every key is explained in docs/profiles.md; values with $NAME expand in job scripts.", ""]
    lines += _scalars(profile, comments)
    lines += ["", "[modules]"]
    if comments:
        lines += _comment(ClusterProfile.field_spec("modules").info.help)
    for m in profile.modules:
        lines.append(f"{_toml_key(m.purpose)} = {_toml_str(m.name)}")
    lines += ["", "[examples]"]
    lines += _scalars(profile.examples, comments)
    for i, part in enumerate(profile.partitions):
        lines += ["", "[[partitions]]"]
        lines += _scalars(part, comments and i == 0)
    return "\n".join(lines) + "\n"


def save_profile(profile: ClusterProfile, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``profile`` as TOML to ``path`` atomically; refuses to replace an existing file unless ``overwrite``."""
    from ..files import write_atomic
    target = Path(os.fspath(path)).expanduser()
    if target.exists() and not overwrite:
        raise OverwriteError(f"{target} exists; pass overwrite=True (or choose another file) to replace it")
    return write_atomic(target, profile_to_toml(profile), force=overwrite)


# ------------------------------------------------------------------------------------------------
# documentation
# ------------------------------------------------------------------------------------------------
def _type_name(f: Any) -> str:
    base = f.base_type
    names = {str: "text", int: "whole number", bool: "true/false"}
    if isinstance(base, type) and base in names:
        text = names[base]
    else:
        text = {Partition: "[[partitions]] tables", Module: "table of purpose = module", ExampleSettings: "table"}.get(base, str(base))
    if f.is_tuple and base is str:
        text = f"list of {text}"
    if f.info.choices:
        text += ": " + " \\| ".join(f"`{c}`" for c in f.info.choices)
    return text


def _default_text(f: Any) -> str:
    if f.default is None or isinstance(f.default, ExampleSettings):
        return ""
    if f.default == () or f.default == "":
        return ""
    return f"`{_toml_value(f.default)}`"


def profile_fields_markdown() -> str:
    """Markdown tables of every profile key (top level, ``[examples]``, ``[[partitions]]``) from the field metadata."""
    out: list[str] = []
    for title, cls, prefix in (("Top level", ClusterProfile, ""), ("`[examples]`", ExampleSettings, "examples."),
                               ("`[[partitions]]` (one table per partition)", Partition, "partitions.")):
        out += [f"#### {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for f in cls.field_specs():
            help_text = f.info.help.replace("|", "\\|")
            out.append(f"| `{prefix}{f.name}` | {_type_name(f)} | {_default_text(f)} | {help_text} |")
        out.append("")
    return "\n".join(out)
