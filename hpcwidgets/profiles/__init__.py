"""Finding, loading and writing cluster profiles (TOML files).

A profile is selected by name or by path. Names are looked up, first match wins, in:

1. the directories in ``$HPCW_PROFILE_PATH`` (separated by ``os.pathsep``, i.e. ``:`` on Linux);
2. ``~/.config/hpcwidgets/profiles/`` (``$XDG_CONFIG_HOME/hpcwidgets/profiles/`` when that is set);
3. the profiles shipped in this package (``generic``, ``local``, ``midway3``).

A profile called ``NAME`` is the file ``NAME.toml`` in one of those directories (``$HPCW_PROFILE_PATH``
takes directories; an unknown name's error points out entries that are files or do not exist). A file there
whose ``name`` says otherwise is an error (it would be listed and selected under one name and called another).
A directory that cannot be read (no permission) is skipped, so the shipped profiles still load; an unknown
name's error and :func:`list_profiles` (``notes=``) say so. A profile file that cannot be read is a
:class:`~hpcwidgets.errors.ProfileError` naming the file and the fix. Stdlib only (``tomllib``; the ``tomli``
backport on Python 3.10).

Reading a file: every problem is listed at once, each with its line and, inside ``[[partitions]]`` or ``[[qos]]``, the
table's name: a misspelled key or table names the valid keys and the closest one ("did you mean"); a value
of the wrong type is reported with the problems of the other values (read without it); a choice written in
another case names the one meant. A file that sets ``scratch`` but leaves out ``image_dir`` or
``cache_dir`` gets ``<scratch>/images`` and ``<scratch>/.apptainer/cache`` (not the ``$SCRATCH/…``
field defaults, which assume the site sets ``$SCRATCH``).
"""

from __future__ import annotations

import codecs
import functools
import os
import re
import shlex
from pathlib import Path
from typing import Any

from ..errors import HpcWidgetsError, OverwriteError, ProfileError, UnknownFieldError, ValidationError
from ..spec._meta import Spec
from ..spec.profile import ClusterProfile, ExampleSettings, Module, Partition, Qos

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SHIPPED_DIR = Path(__file__).resolve().parent
ENV_VAR = "HPCW_PROFILE_PATH"

__all__ = ["SHIPPED_DIR", "ENV_VAR", "clear_cache", "list_profiles", "load_profile", "profile_fields_markdown",
           "profile_notes", "profile_to_toml", "save_profile", "search_path", "user_profile_dir"]


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


def list_profiles(*, notes: list[str] | None = None) -> dict[str, Path]:
    """Every profile name that can be loaded, with the file it comes from (the first on the search path).

    A directory on the search path that cannot be read is skipped; pass a list as ``notes`` to be told which."""
    found: dict[str, Path] = {}
    for directory in search_path():
        try:
            if not directory.is_dir():
                continue
            with os.scandir(directory) as entries:  # (Path.glob would skip an unreadable directory without a word)
                names = sorted(e.name for e in entries if e.name.endswith(".toml"))
        except OSError as exc:
            if notes is not None:
                notes.append(_skipped(directory, exc))
            continue
        for file_name in names:
            found.setdefault(file_name[:-len(".toml")], directory / file_name)
    return found


def _skipped(directory: Path, exc: OSError) -> str:
    """The note for a search-path directory that could not be read, with how to read it or stop searching it."""
    if directory in _env_dirs():
        other = f"take it out of ${ENV_VAR}"
    else:  # the user's folder: $HOME may be another user's (sudo -u keeps HOME)
        other = "set $XDG_CONFIG_HOME (or $HOME) to a folder you can read"
    return f"skipped {directory}: {_reason(exc)}; make it readable (chmod u+rx {directory}) or {other}"


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _is_file(path: Path) -> bool:
    """``path.is_file()``, passing on the :class:`PermissionError` of a folder that cannot be searched (Python 3.11's
    ``is_file`` raises it); other errors (a loop of links, a name too long) mean no file."""
    try:
        return path.is_file()
    except PermissionError:
        raise
    except OSError:
        return False


def _is_path(name_or_path: str | os.PathLike[str]) -> bool:
    if isinstance(name_or_path, os.PathLike):
        return True
    text = str(name_or_path)
    return "/" in text or os.sep in text or text.endswith(".toml")


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ProfileError(f"a profile is given by its name or the path of its .toml file, not "
                           f"{type(name_or_path).__name__} ({_short(name_or_path)}); available: "
                           f"{', '.join(list_profiles()) or 'none found'}")
    if _is_path(name_or_path):
        path = Path(os.fspath(name_or_path)).expanduser()
        try:
            found = _is_file(path)
        except PermissionError as exc:
            raise ProfileError(f"cannot read the profile {path}: {_reason(exc)} (a folder on the way cannot be "
                               "searched); fix the folders' permissions, or copy the file somewhere readable") from None
        if not found:
            raise ProfileError(f"no profile file at {path}; check the path, or give a profile name "
                               f"({', '.join(list_profiles()) or 'none found'})")
        return path
    name = str(name_or_path).strip()
    if not name:
        raise ProfileError(f"no profile name given; available: {', '.join(list_profiles()) or 'none found'}")
    notes: list[str] = []
    for directory in search_path():
        try:
            if _is_file(directory / f"{name}.toml"):
                return directory / f"{name}.toml"
        except PermissionError as exc:  # the next directories (the shipped profiles) may still have it
            notes.append(_skipped(directory, exc))
    import difflib
    names = list_profiles()
    available = ", ".join(names) or "none found"
    near = difflib.get_close_matches(name, names, n=1)
    dirs = ", ".join(str(d) for d in search_path())
    notes += _env_path_notes() + _named_in(name)
    raise ProfileError(f"unknown profile {name!r}{f' (did you mean {near[0]!r}?)' if near else ''}; available: "
                       f"{available} (searched {dirs}; "
                       f"add {name}.toml to one of them or set ${ENV_VAR})" + "".join(f"\nnote: {n}" for n in notes))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _named_in(name: str) -> list[str]:
    """Notes on profile files whose ``name`` is ``name`` though their file is called otherwise (a profile is found
    by its file's name): read only when the name was not found."""
    out = []
    for path in list_profiles().values():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # -sig: without a BOM, as loading reads it
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if data.get("name") == name:
            out.append(f"{path} has name = {name!r}, but a profile is found by its file's name: rename the file "
                       f"to {name}.toml")
    return out


def _env_path_notes() -> list[str]:
    """Notes on ``$HPCW_PROFILE_PATH`` entries that cannot hold profiles (a file, a missing directory)."""
    notes = []
    for entry in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if not entry.strip():
            continue
        path = Path(entry).expanduser()
        try:
            if path.is_file():
                notes.append(f"${ENV_VAR} lists the file {path}, but it takes directories: use {path.parent}, or "
                             f"give the file's path instead of a name")
            elif not path.exists():
                notes.append(f"${ENV_VAR} lists {path}, which does not exist")
        except OSError:
            continue  # a folder on the way cannot be searched: said by the note on skipped directories
    return notes


# ------------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------------
def load_profile(name_or_path: str | os.PathLike[str], *, validate: bool = True) -> ClusterProfile:
    """Load a profile by name (see the search path) or from a ``.toml`` path.

    Raises :class:`ProfileError` for an unknown name (listing the available ones), a file that is not
    valid TOML (with file, line and column), unknown keys, and, with ``validate`` (the default), any
    problem the profile has (all of them, listed). Loaded files are cached until they change on disk.
    """
    given = _resolve(name_or_path)
    try:
        path = given.resolve()
        stat = path.stat()
        profile = _load_cached(str(path), stat.st_mtime_ns, stat.st_size, validate)
    except OSError as exc:
        raise ProfileError(f"cannot read the profile {given}: {_reason(exc)}; {_read_fix(given)}") from None
    _check_name(profile, given)
    return profile


def _read_fix(path: Path) -> str:
    """How to get past a profile file that cannot be read: its permissions, or (on the search path) moving it."""
    fix = f"make it readable (chmod u+r {path})"
    if _in_search_path(path):
        fix += (f", or take {path.parent} out of ${ENV_VAR}" if path.parent in _env_dirs()
                else f", or move it out of {path.parent}")
    return fix


def _env_dirs() -> list[Path]:
    return [Path(d).expanduser() for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d.strip()]


def _in_search_path(path: Path) -> bool:
    """Whether ``path`` is a profile file the search path finds by its name (its folder is on the path)."""
    folders = set()
    for directory in search_path():
        folders.add(directory)
        try:
            folders.add(directory.resolve())
        except OSError:
            continue
    try:
        return path.parent in folders or path.resolve().parent in folders
    except OSError:
        return path.parent in folders


def _check_name(profile: ClusterProfile, path: Path) -> None:
    """A profile in a search-path directory is listed and selected by its file's name (``typo4.toml``: ``--profile
    typo4``): a ``name`` inside that says otherwise would make ``--profile NAME`` fail and the profile call itself
    something else everywhere, so it is an error naming both fixes."""
    if profile.name == path.stem or not isinstance(profile.name, str) or not _in_search_path(path):
        return
    raise ProfileError(f"{path}: name = {profile.name!r}, but the file is called {path.name}, and a profile is "
                       f"selected by its file's name; rename the file to {profile.name}.toml, or set "
                       f"name = \"{path.stem}\" (or leave name out)")


def profile_notes(name_or_path: str | os.PathLike[str]) -> list[str]:
    """What a profile file leaves to defaults that its other keys suggest are wrong for the site, as sentences for
    ``hpcwidgets profile check`` (none is an error: the file may mean it). Meant for a file :func:`load_profile`
    accepted; one that cannot be read has no notes."""
    path = _resolve(name_or_path)
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []  # load_profile reports these
    notes = []
    if raw.startswith(codecs.BOM_UTF8):
        notes.append(f"{path} starts with a UTF-8 byte-order mark (BOM, often added by Windows editors); it was "
                     "ignored here, but other TOML readers (Python's tomllib among them) refuse the file. Save it as "
                     f"UTF-8 without a BOM, or remove it: sed -i '1s/^\\xEF\\xBB\\xBF//' {shlex.quote(str(path))}")
    modules = data.get("modules")
    if isinstance(modules, dict) and "singularity" in modules and "runtimes" not in data:
        notes.append("[modules] names a singularity module, but runtimes is left at its default (apptainer): on a "
                     "site with SingularityCE only, set runtimes = [\"singularity\"] and apptainer_binary = "
                     "\"singularity\"; where Apptainer is there too, write runtimes = [\"apptainer\"]")
    return notes


def clear_cache() -> None:
    """Forget every loaded profile (files edited in place are re-read anyway when their mtime changes)."""
    _load_cached.cache_clear()


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, size: int, validate: bool) -> ClusterProfile:
    del mtime_ns, size  # part of the cache key only
    return profile_from_toml(Path(path).read_bytes(), source=path, default_name=Path(path).stem, validate=validate)


_TOML_WHERE = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)")


def toml_error_place(exc: ValueError, text: str) -> tuple[int, int, str]:
    """``(line, column, message without the place)`` of a TOML reader's error in ``text``. An error "at end of
    document" (a table or a list left open) is placed after the last line, where the reader ran out of text."""
    message = str(exc)
    where = _TOML_WHERE.search(message)
    line = int(getattr(exc, "lineno", 0) or (where.group(1) or 0 if where else 0))
    column = int(getattr(exc, "colno", 0) or (where.group(2) or 0 if where else 0))
    if not line and where is not None and where.group(1) is None:
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    return line, column, _TOML_WHERE.sub("", message).strip()


def profile_from_toml(text: str | bytes, *, source: str = "<profile>", default_name: str = "",
                      validate: bool = True) -> ClusterProfile:
    """Read profile TOML text (``source`` names the file in error messages)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProfileError(f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    # a byte-order mark (Windows editors write one) means nothing in TOML, whose reader refuses it: dropped, as a
    # job script's is (``hpcwidgets profile check`` notes it)
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column, plain = toml_error_place(exc, text)
        raise ProfileError(f"{source}:{line}:{column}: not valid TOML: {plain}") from None
    tag = data.pop("kind", ClusterProfile.kind)
    if tag != ClusterProfile.kind:
        raise ProfileError(f"{source}: kind = {tag!r}, but a cluster profile has kind = \"profile\" (or no kind)")
    if default_name and not data.get("name"):
        data["name"] = default_name
    _derive_from_scratch(data)
    unknown = _unknown_keys(data, text)  # reported together with every other problem, not instead of them
    name = data.get("name") if isinstance(data.get("name"), str) else ""
    typed: list[tuple[str, Any]] = []  # values of the wrong type (login_host = 5), each with where it is
    profile = None
    while profile is None:
        try:
            profile = ClusterProfile.from_dict(data)
        except UnknownFieldError as exc:
            line = _line_of(text, exc.name)
            raise ProfileError(f"{source}:{line}: {exc}" if line else f"{source}: {exc}") from None
        except ValidationError as exc:
            typed += [(_where_typed(p.field, data, text), p) for p in exc.problems]
            if not _drop_values(data, [p.field for p in exc.problems]):
                break  # a whole table of the wrong kind: the other values cannot be read without it
    if profile is None:
        raise _invalid(source, name, unknown, typed, [p for _, p in typed])
    # without the mistyped values the rest is checked too; a top-level check of a dropped key would judge its
    # default, not what the file says (gpu_vendor = 5 is not "none"), so those are left out
    dropped = {p.field for _, p in typed}
    problems = [p for p in profile.problems() if p.field not in dropped] if validate else []
    if len(unknown) == 1 and not problems and not typed:
        line, message = unknown[0]
        raise ProfileError(f"{source}:{line}: {message}" if line else f"{source}: {message}")
    if unknown or problems or typed:
        located = typed + _located(problems, profile, text)
        raise _invalid(source, profile.name, unknown, located, [p for _, p in located])
    return profile


def _drop_values(data: dict[str, Any], fields: list[str]) -> bool:
    """Remove the values of ``fields`` (``login_host``, ``partitions[0].mem_per_node``, ``examples.image``,
    ``modules[1].name``) from the file's ``data`` so the rest can be read; False when one is not a plain value of
    such a place (``partitions[1]`` is not a table), which leaves nothing sensible to read."""
    modules = data.get("modules")
    purposes = list(modules) if isinstance(modules, dict) else []
    for field in fields:
        head, _, key = field.partition(".")
        item = _ITEM.fullmatch(head)
        if not key and "[" not in head and head in data:
            del data[head]
        elif item and item.group(1) in _LISTED_TABLES and key and "." not in key:
            parts = data.get(item.group(1))
            i = int(item.group(2))
            if not (isinstance(parts, list) and i < len(parts) and isinstance(parts[i], dict)):
                return False
            parts[i].pop(key, None)
        elif item and item.group(1) == "modules" and int(item.group(2)) < len(purposes):
            modules.pop(purposes[int(item.group(2))], None)
        elif head == "examples" and key and "." not in key and isinstance(data.get("examples"), dict):
            data["examples"].pop(key, None)
        else:
            return False
    return True


def _invalid(source: str, name: Any, unknown: list[tuple[int, str]], located: list[tuple[str, Any]],
             problems: Any) -> ProfileError:
    """One error listing every problem of a profile file, each with where it is (``problems`` are kept on it)."""
    count = len(unknown) + len(located)
    subject = f"profile {name!r}" if isinstance(name, str) and name else "the profile"
    lines = [f"{source}: {subject} is not valid ({count} problem{'s' if count != 1 else ''}):"]
    lines += [f"  - line {line}: {m}" if line else f"  - {m}" for line, m in unknown]
    lines += [f"  - {where}{p}" for where, p in located]
    error = ProfileError("\n".join(lines))
    error.problems = tuple(problems)  # type: ignore[attr-defined]
    return error


_ITEM = re.compile(r"(partitions|qos|modules)\[(\d+)\]")


def _where_typed(field: str, data: dict[str, Any], text: str) -> str:
    """Where a value of the wrong type is in the file (``line 5, partition 'gpu': ``) from its problem's field
    (``login_host``, ``partitions[0].max_time``, ``examples.nodes``, ``modules[1].name``); "" when not found."""
    head, _, rest = field.partition(".")
    key = re.split(r"[.\[]", rest, maxsplit=1)[0]
    item = _ITEM.fullmatch(head)
    first = _TABLE.search(text)
    if item and item.group(1) in _LISTED_TABLES:
        group, i = item.group(1), int(item.group(2))
        parts = data.get(group)
        part = parts[i] if isinstance(parts, list) and i < len(parts) else None
        label = part.get("name") if isinstance(part, dict) and isinstance(part.get("name"), str) else f"#{i + 1}"
        headers = list(_LISTED_TABLES[group][0].finditer(text))
        line = 0
        if i < len(headers):
            start = headers[i].end()
            line = _line_of(text, key, start, _table_end(text, start)) or text.count("\n", 0, start) + 1
        return (f"line {line}, " if line else "") + f"{_LISTED_TABLES[group][2]} {label!r}: "
    if item:  # a module: its purpose is the key of its line in [modules]
        modules = data.get("modules")
        purposes = list(modules) if isinstance(modules, dict) else []
        i = int(item.group(2))
        table = _MODULES_TABLE.search(text)
        line = 0
        if table and i < len(purposes):
            line = _line_of(text, purposes[i], table.end(), _table_end(text, table.end()))
        return (f"line {line}, " if line else "") + (f"module {purposes[i]!r}: " if i < len(purposes) else "")
    if head == "examples" and key:
        table = _EXAMPLES_TABLE.search(text)
        line = _line_of(text, key, table.end(), _table_end(text, table.end())) if table else 0
        return f"line {line}: " if line else ""
    line = _line_of(text, head, 0, first.start() if first else len(text)) if head and not rest else 0
    return f"line {line}: " if line else ""


def _unknown_keys(data: dict[str, Any], text: str) -> list[tuple[int, str]]:
    """Remove the keys no model has (top level, ``[examples]``, each ``[[partitions]]`` and ``[[qos]]``) from ``data`` and
    return ``(line, message)`` for each (the valid keys and the closest one; line 0 when not found), so the
    rest of the file is still read and checked."""
    out: list[tuple[int, str]] = []
    examples = _EXAMPLES_TABLE.search(text)
    first = _TABLE.search(text)
    tables: list[tuple[type[Spec], Any, int, int]] = [(ClusterProfile, data, 0, first.start() if first else len(text))]
    if isinstance(data.get("examples"), dict):
        start = examples.end() if examples else 0
        tables.append((ExampleSettings, data["examples"], start, _table_end(text, start) if examples else len(text)))
    for group, (pattern, cls, _) in _LISTED_TABLES.items():
        headers = list(pattern.finditer(text))
        parts = data.get(group)
        for i, part in enumerate(parts if isinstance(parts, list) else []):
            if isinstance(part, dict):
                start = headers[i].end() if i < len(headers) else 0
                tables.append((cls, part, start, _table_end(text, start) if i < len(headers) else len(text)))
    for cls, table, start, end in tables:
        valid = sorted(f.name for f in cls.field_specs())
        for key in [k for k in table if k not in valid and k != "kind"]:
            del table[key]
            line = _line_of(text, key, start, end) or _line_of(text, key)
            out.append((line, str(UnknownFieldError(cls.__name__, key, valid))))  # its message has the did-you-mean
    return out


def _line_of(text: str, key: str, start: int = 0, end: int | None = None) -> int:
    """The line where ``key`` is set (``key = …``) or opens a table (``[key]``, ``[[key]]``), 0 when not found."""
    name = rf"\"?{re.escape(key)}\"?"
    pattern = re.compile(rf"^[ \t]*(?:{name}[ \t]*=|\[\[?[ \t]*{name}[ \t]*\]\]?)", re.MULTILINE)
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
_QOS_TABLE = re.compile(r"^[ \t]*\[\[[ \t]*\"?qos\"?[ \t]*\]\]", re.MULTILINE)
#: the arrays of tables a profile file has: (its header, the model of each table, how messages name one)
_LISTED_TABLES: dict[str, tuple[re.Pattern[str], type[Spec], str]] = {
    "partitions": (_PARTITION_TABLE, Partition, "partition"), "qos": (_QOS_TABLE, Qos, "QOS")}
_MODULES_TABLE = re.compile(r"^[ \t]*\[[ \t]*\"?modules\"?[ \t]*\]", re.MULTILINE)
_EXAMPLES_TABLE = re.compile(r"^[ \t]*\[[ \t]*\"?examples\"?[ \t]*\]", re.MULTILINE)


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
    for group, (pattern, cls, noun) in _LISTED_TABLES.items():
        headers = list(pattern.finditer(text))
        for i, part in enumerate(p for p in getattr(profile, group) if isinstance(p, cls)):
            name = part.name if isinstance(part.name, str) and part.name else f"#{i + 1} (no name)"
            start = headers[i].end() if i < len(headers) else -1
            items.append((group, part, f"{noun} {name!r}", start, _table_end(text, start) if start >= 0 else -1))
    modules = _MODULES_TABLE.search(text)
    for module in (m for m in profile.modules if isinstance(m, Module)):
        start = modules.end() if modules else -1
        items.append(("modules", module, f"module {module.purpose!r}", start, _table_end(text, start) if start >= 0 else -1))
    pending = [list(model.problems()) for _, model, _, _, _ in items]
    examples = _EXAMPLES_TABLE.search(text)
    out: list[tuple[str, Any]] = []
    for problem in problems:
        field = problem.field or ""
        where, owner = "", None
        group, _, key = field.partition(".")
        if key and group in ("partitions", "qos", "modules"):
            for (kind, model, label, start, end), todo in zip(items, pending):
                match = next((q for q in todo if kind == group and q.field == key and q.message == problem.message), None)
                if match is None:
                    continue
                todo.remove(match)
                owner = model
                line = 0
                if start >= 0:
                    look = model.purpose if kind == "modules" and isinstance(model.purpose, str) else key.split(".")[0]
                    line = _line_of(text, look, start, end) or text.count("\n", 0, start) + 1
                where = (f"line {line}, " if line else "") + f"{label}: "
                break
        elif key and group == "examples":
            owner = profile.examples
            line = _line_of(text, key, examples.end(), _table_end(text, examples.end())) if examples else 0
            where = f"line {line}: " if line else ""
        elif field and "." not in field and "[" not in field:
            owner, key = profile, field
            line = _line_of(text, field, 0, top_end)
            where = f"line {line}: " if line else ""
        out.append((where, _with_fix(problem, owner, key)))
    return out


def _with_fix(problem: Any, model: Any, name: str) -> Any:
    """``problem`` with the fix its field's metadata names where the generic check does not: the choice meant by a
    value in another case (``gpu_vendor = "NVIDIA"``: write "nvidia"), and, for a number below the field's minimum
    that may be left out, what leaving it out means (``max_nodes = 0``: leave it out for no limit)."""
    if model is None or not isinstance(model, Spec) or name not in {f.name for f in model.field_specs()}:
        return problem
    spec, value = model.field_spec(name), getattr(model, name)
    fix = ""
    if isinstance(value, str) and spec.info.choices and value not in spec.info.choices:
        meant = [c for c in spec.info.choices if c.casefold() == value.casefold()]
        fix = f"; write {meant[0]!r}" if meant else ""
    elif (isinstance(value, int) and not isinstance(value, bool) and spec.optional
          and spec.info.minimum is not None and value < spec.info.minimum):
        said = re.search(r"leave it out[^.;]*", spec.info.help, re.IGNORECASE)
        fix = f"; {said.group(0)[0].lower()}{said.group(0)[1:]}" if said else "; leave it out for none"
    return type(problem)(problem.field, problem.message + fix) if fix else problem


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
    for i, qos in enumerate(profile.qos):
        lines += ["", "[[qos]]"]
        lines += _scalars(qos, comments and i == 0)
    return "\n".join(lines) + "\n"


def save_profile(profile: ClusterProfile, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``profile`` as TOML to ``path`` atomically; refuses to replace an existing file unless ``overwrite``,
    and to write it on the search path under another name than its own (it could not be loaded from there)."""
    from ..files import write_atomic
    target = Path(os.fspath(path)).expanduser()
    if target.suffix == ".toml" and target.stem != profile.name and _in_search_path(target):
        raise ProfileError(f"{target} would be found as profile {target.stem!r}, but the profile is called "
                           f"{profile.name!r}; save it as {target.with_name(f'{profile.name}.toml')}, or rename the "
                           f"profile first (profile.replace(name={target.stem!r}))")
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
        text = {Partition: "[[partitions]] tables", Qos: "[[qos]] tables", Module: "table of purpose = module",
                ExampleSettings: "table"}.get(base, str(base))
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
    """Markdown tables of every profile key (top level, ``[examples]``, ``[[partitions]]``, ``[[qos]]``) from the
    field metadata."""
    out: list[str] = []
    for title, cls, prefix in (("Top level", ClusterProfile, ""), ("`[examples]`", ExampleSettings, "examples."),
                               ("`[[partitions]]` (one table per partition)", Partition, "partitions."),
                               ("`[[qos]]` (one table per QOS)", Qos, "qos.")):
        out += [f"#### {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for f in cls.field_specs():
            help_text = f.info.help.replace("|", "\\|")
            out.append(f"| `{prefix}{f.name}` | {_type_name(f)} | {_default_text(f)} | {help_text} |")
        out.append("")
    return "\n".join(out)
