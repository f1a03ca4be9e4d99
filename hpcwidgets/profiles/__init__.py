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
table's name: a misspelled key or table names the closest one ("did you mean"), else the valid keys; a value
of the wrong type is reported with the problems of the other values (read without it); a choice written in
another case names the one meant. A value reported as wrong, or left unset by a misspelt key, is judged by no other
check (``gpus_per_nod = 4`` is one problem, not also "GPU types are listed but GPUs per node is 0"). A file that is not
TOML is said in TOML's terms, with the fix (an unclosed string, a word without quotes, a table declared twice). A file that sets ``scratch`` but leaves out ``image_dir`` or
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

from ..errors import OverwriteError, ProfileError, UnknownFieldError, ValidationError
from ..spec._meta import Spec
from ..spec._toml import scalar
from ..spec.common import _VARIABLE as _ENV_NAME  # a variable's name, as [job_env] keys are read
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
    notes += _text_for_list_notes(data, raw.decode("utf-8-sig"))
    from ..spec.profile import whole_node_default_note
    try:
        whole = whole_node_default_note(load_profile(path))
    except (ProfileError, ValidationError):
        whole = ""  # load_profile reports it
    return notes + [whole] if whole else notes


def _text_for_list_notes(data: dict[str, Any], text: str) -> list[str]:
    """Notes on list keys written as one text (``runtimes = "apptainer"``): read as a list of that one item, which is
    what is meant, but the file reads better (and as other TOML readers take it) written as the list."""
    notes = []
    tables: list[tuple[str, type[Spec], Any, int, int]] = [("", ClusterProfile, data, 0, len(text))]
    for group, (pattern, cls, noun) in _LISTED_TABLES.items():
        headers = list(pattern.finditer(text))
        for i, part in enumerate(data.get(group) if isinstance(data.get(group), list) else []):
            if isinstance(part, dict):
                start = headers[i].end() if i < len(headers) else 0
                name = part.get("name") if isinstance(part.get("name"), str) else f"#{i + 1}"
                tables.append((f"{noun} {name!r}", cls, part, start, _table_end(text, start)))
    first = _TABLE.search(text)
    for label, cls, table, start, end in tables:
        end = (first.start() if first else len(text)) if cls is ClusterProfile else end
        for f in cls.field_specs():
            value = table.get(f.name)
            if f.is_tuple and f.base_type is str and isinstance(value, str) and value:
                line = _line_of(text, f.name, start, end)
                where = ", ".join(w for w in (f"line {line}" if line else "", label) if w)
                notes.append(f"{where + ': ' if where else ''}{f.name} = {scalar(value)} is text, read as a list "
                             f"of one; write it as the list: {f.name} = [{scalar(value)}]")
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
    """``(line, column, message)`` of a TOML reader's error in ``text``: the message says in TOML's terms what is
    wrong there and how to write it (:func:`_toml_explained`). An error "at end of document" (a table or a list
    left open) is placed after the last line, where the reader ran out of text."""
    message = str(exc)
    where = _TOML_WHERE.search(message)
    line = int(getattr(exc, "lineno", 0) or (where.group(1) or 0 if where else 0))
    column = int(getattr(exc, "colno", 0) or (where.group(2) or 0 if where else 0))
    at_end = not line and where is not None and where.group(1) is None
    if at_end:
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    plain = _TOML_WHERE.sub("", message).strip()
    return line, column, _toml_explained(plain, text, line, column, at_end)


#: a line that sets a key (``key = …``, ``"a b" = …``, ``a.b = …``): the key, and the value as written
_KEY_PART = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEY_LINE = re.compile(rf"[ \t]*(?P<key>{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*)[ \t]*=[ \t]*(?P<value>.*)")
#: a table header: ``[name]`` or ``[[name]]``
_HEADER_LINE = re.compile(r"[ \t]*(\[\[?)[ \t]*([^\]]*?)[ \t]*\]?\]?[ \t]*(?:#.*)?")

# The TOML reader's messages that are explained the same way wherever they occur, as str.format templates: {of} is
# "the value of KEY" ("a value" on a line that sets no key), {last} the message's last word (the character or key
# it names). Messages that need the line itself are explained in _toml_explained.
_QUOTE_NOT_CLOSED = ("{of} starts a quoted string that is not closed on its line: add the closing quote (\" or ', as "
                     "it opens) at the end of the text; text over several lines goes in triple quotes (\"\"\"…\"\"\")")
_TRIPLE_NOT_CLOSED = ("a string in triple quotes (\"\"\" or ''') is not closed before the end of the file: add the "
                      "closing quotes where the text ends")
#: the reader's whole message → its explanation
_TOML_MESSAGES = {
    "Unterminated string": _TRIPLE_NOT_CLOSED,
    "Expected \"'''\"": _TRIPLE_NOT_CLOSED,
    "Invalid statement": ("this line is not a TOML statement: write key = value, a [table] or [[table]] header, or a "
                          "comment starting with #"),
    "Expected ']' at the end of a table declaration":
        "the table header is not closed: write it as [name] with the closing ] on the same line",
    "Expected ']]' at the end of an array declaration":
        "the header is not closed: write it as [[name]] with both closing brackets on the same line",
    "Unclosed array": ("the list in {of} is not closed where the reader expected: separate its items with commas and "
                       "end it with ], e.g. [\"a\", \"b\"]"),
    "Unclosed inline table": ("the inline table {{ … }} in {of} is not closed: separate its entries with commas and "
                              "end it with }} on the same line"),
    "Unescaped '\\' in a string": ("a backslash in a \"…\" string starts an escape (\\n, \\t, \\\\): write \\\\ for "
                                   "one backslash, or use single quotes ('C:\\path'), where a backslash is itself"),
    **dict.fromkeys(("Invalid hex value", "Escaped character is not a Unicode scalar value"),
                    "the \\u or \\U escape is not a character code: write \\u with 4 hex digits or \\U with 8"),
    "Invalid date or datetime": "{of} reads as a date but is not one: put it in quotes if it is text",
    "Invalid initial character for a key part": (
        "a key is missing here, or starts with a character a bare key cannot have: bare keys are letters, digits, _ "
        "and -; put any other key in quotes (\"my key\" = …)"),
}
_CONTROL_CHARACTER = ("the control character {last} is not allowed here (TOML refuses control characters in strings "
                      "and comments): delete it; in a \"…\" string it may be written as an escape such as \\u0007")
#: the start of the reader's message → its explanation, first match wins (a line break is a character the reader
#: refuses too, but there it means the string goes on past its line)
_TOML_MESSAGE_STARTS = (
    ("Illegal character '\\n'", _QUOTE_NOT_CLOSED),
    ("Illegal character '\\r'", _QUOTE_NOT_CLOSED),
    ("Found invalid character '\\n'", _QUOTE_NOT_CLOSED),
    ("Expected \"'\"", _QUOTE_NOT_CLOSED),
    ("Illegal character", _CONTROL_CHARACTER),
    ("Found invalid character", _CONTROL_CHARACTER),
    ("Cannot mutate immutable namespace", (
        "this adds to a table or list written inline above ({{ … }} or [ … ]), which TOML closes where it is "
        "written: add the value there, or write the table as a [table] of its own")),
    ("Duplicate inline table key", "the inline table {{ … }} sets {last} twice: keep one"),
)


def _toml_explained(plain: str, text: str, line: int, column: int, at_end: bool = False) -> str:
    """The TOML reader's message ``plain`` for the error at ``line``/``column`` of ``text``, said in TOML's terms with
    how to write it (the reader's words are kept for an error it does not know)."""
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    keyed = _KEY_LINE.match(here)
    key = keyed.group("key") if keyed else ""
    rest = here[column - 1:] if column else ""
    of = f"the value of {key}" if key else "a value"
    if plain == "Unterminated string" and not at_end:   # a "…" string: only one in triple quotes reaches the end
        return _QUOTE_NOT_CLOSED.format(of=of)
    template = _TOML_MESSAGES.get(plain)
    if template is None:
        template = next((t for start, t in _TOML_MESSAGE_STARTS if plain.startswith(start)), None)
    if template is not None:
        return template.format(of=of, last=plain.rsplit(" ", 1)[-1])
    if plain == "Invalid value":
        return _invalid_value(of, key, rest, at_end)
    if plain == "Expected newline or end of document after a statement":
        return _text_after_value(of, key, keyed.group("value") if keyed else "")
    if plain == "Expected '=' after a key in a key/value pair":
        word = here.strip().split()[0] if here.strip() else ""
        word = word if re.fullmatch(r"[A-Za-z0-9_-]+", word) else "name"
        return (f"this line has no '=' after its key: write key = value (e.g. {word} = \"…\"); a table's name "
                f"goes in brackets ([{word}]), a comment starts with #")
    if plain.startswith("Cannot declare"):
        header = _HEADER_LINE.fullmatch(here)
        name = header.group(2) if header else plain.split("(", 1)[-1].split(")", 1)[0]
        return (f"table [{name}] is declared twice: merge the two into one [{name}] table (a table of which there are "
                f"several, such as partitions, is written [[{name}]] each time)")
    if plain == "Cannot overwrite a value":
        header = _HEADER_LINE.fullmatch(here) if here.lstrip().startswith("[") else None
        if header:
            return (f"{header.group(1)}{header.group(2)}{']' * len(header.group(1))} uses a name already given to a "
                    "key or table above (a table written [name] cannot also be [[name]]): keep one of the two")
        return f"{key or 'this key'} is already set above in the same table: keep one of the two lines"
    return f"{plain} (check the TOML syntax at this place)"


def _invalid_value(of: str, key: str, rest: str, at_end: bool) -> str:
    """The message for a value the TOML reader cannot read (a word without quotes, nothing after '=', a list left
    open at the end of the file)."""
    if at_end:
        return ("a list [ … or inline table { … is not closed before the end of the file: add the closing ] or } "
                "after its last item")
    word = re.match(r"[^\s,\]}#]+", rest)
    if not word:
        if rest.strip()[:1] in ("", "#"):
            return f"{of} is missing: write one after '=' (text in quotes, a number, true or false, a list [ … ])"
        return f"{of} cannot be read here: an item is missing between two commas"
    token = word.group(0)
    if token.lower() in ("true", "false"):
        return f"TOML writes true and false in lower case: write {token.lower()}"
    return f"{token} is not a TOML value: text goes in quotes (\"{token}\"); numbers, true and false do not"


def _text_after_value(of: str, key: str, value: str) -> str:
    """The message for a value followed by more text on its line (an unquoted time or size, two values, a comment
    without #)."""
    written = value.split(" #", 1)[0].strip()
    if written and written[:1] not in "\"'[{":
        return (f"{of} is read as a number or date up to a character it cannot hold: {written} is text, so put it in "
                f"quotes: {key or 'key'} = \"{written}\"")
    return f"{of} is followed by more text on its line: write one key = value per line, and start a comment with #"


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
    unknown, meant = _unknown_keys(data, text)  # reported together with every other problem, not instead of them
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
    # without the mistyped values the rest is checked too. A value reported as wrong (gpus_per_node = "four"), or
    # left unset by a misspelt key (gpus_per_nod = 4), is not its default in what the file says: the checks judge
    # it as unknown (None), so no second problem follows from the first (GPU types "listed but GPUs per node is 0")
    unread = _unread_fields([p.field for _, p in typed], meant)
    checked = _with_unread(profile, unread)
    located = _located(checked.problems(), checked, text, unread) if validate else []
    if len(unknown) == 1 and not located and not typed:
        line, label, message = unknown[0]
        raise ProfileError(f"{source}:{line}: {_labelled(label, message)}" if line
                           else f"{source}: {_labelled(label, message)}")
    if unknown or located or typed:
        located = typed + located
        raise _invalid(source, profile.name, unknown, located, [p for _, p in located])
    return profile


def _labelled(label: str, message: str) -> str:
    return f"{label}: {message}" if label else message


def _unread_fields(dropped: list[str], meant: _Unread) -> _Unread:
    """The fields whose values the file does not give as the model holds them, by table (see :func:`_unknown_keys`):
    those dropped for their type (``login_host``, ``partitions[0].gpus_per_node``, ``examples.image``) and those a
    misspelt key meant."""
    out = {place: set(keys) for place, keys in meant.items()}
    for field in dropped:
        head, _, key = field.partition(".")
        item = _ITEM.fullmatch(head)
        if not key and "[" not in head:
            out.setdefault(("", 0), set()).add(head)
        elif item and item.group(1) in _LISTED_TABLES and key and "." not in key:
            out.setdefault((item.group(1), int(item.group(2))), set()).add(key)
        elif head == "examples" and key and "." not in key:
            out.setdefault(("examples", 0), set()).add(key)
    return out


def _with_unread(profile: ClusterProfile, unread: _Unread) -> ClusterProfile:
    """``profile`` with None in the fields of ``unread``: what the checks take for a value they do not know (each
    such field's own problem is reported already, and left out by :func:`_located`)."""
    import dataclasses
    if not unread:
        return profile
    changes: dict[str, Any] = {}
    for group in _LISTED_TABLES:
        items = list(getattr(profile, group))
        for i, item in enumerate(items):
            keys = unread.get((group, i), set()) & {f.name for f in type(item).field_specs()}
            if keys and isinstance(item, Spec):
                items[i] = dataclasses.replace(item, **dict.fromkeys(keys))
        changes[group] = tuple(items)
    keys = unread.get(("examples", 0), set()) & {f.name for f in ExampleSettings.field_specs()}
    if keys and isinstance(profile.examples, ExampleSettings):
        changes["examples"] = dataclasses.replace(profile.examples, **dict.fromkeys(keys))
    changes.update(dict.fromkeys(unread.get(("", 0), set()) & {f.name for f in ClusterProfile.field_specs()}))
    return dataclasses.replace(profile, **changes)


def _drop_values(data: dict[str, Any], fields: list[str]) -> bool:
    """Remove the values of ``fields`` (``login_host``, ``partitions[0].mem_per_node``, ``examples.image``,
    ``modules[1].name``) from the file's ``data`` so the rest can be read; False when one is not a plain value of
    such a place (``partitions[1]`` is not a table), which leaves nothing sensible to read."""
    modules = data.get("modules")
    purposes = list(modules) if isinstance(modules, dict) else []
    job_env = data.get("job_env")
    variables = list(job_env) if isinstance(job_env, dict) else []
    for field in fields:
        head, _, key = field.partition(".")
        item = _ITEM.fullmatch(head)
        if item and item.group(1) == "job_env" and not key and int(item.group(2)) < len(variables):
            job_env.pop(variables[int(item.group(2))], None)  # the other variables are still read
            continue
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
    lines += [f"  - line {line}, {label}: {m}" if line and label else f"  - line {line}: {m}" if line
              else f"  - {_labelled(label, m)}" for line, label, m in unknown]
    lines += [f"  - {where}{_shown_problem(p)}" for where, p in located]
    error = ProfileError("\n".join(lines))
    error.problems = tuple(problems)  # type: ignore[attr-defined]
    return error


_ITEM = re.compile(r"(partitions|qos|modules|job_env)\[(\d+)\]")
#: fields whose values a file does not give as the model holds them, by table: ``("", 0)`` the top level,
#: ``("partitions", I)``, ``("qos", I)``, ``("examples", 0)``
_Unread = dict[tuple[str, int], set[str]]


def _shown_problem(problem: Any) -> str:
    """A problem as the list of a file's problems shows it: with its field (``partitions[0].max_time: …``), except a
    module's, whose message names its key in the file's own words (``cuda = ["cuda", "cudnn"] is a list …``)."""
    field = getattr(problem, "field", "") or ""
    if field.startswith("job_env[") and problem.message.startswith("[job_env]"):
        return problem.message  # a [job_env] key's problem names the key already
    return problem.message if field.startswith(("modules[", "modules.")) else str(problem)


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
        else:  # partitions = [ … ] written as a value, not as [[partitions]] tables
            line = _line_of(text, group, 0, first.start() if first else len(text))
        return (f"line {line}, " if line else "") + f"{_LISTED_TABLES[group][2]} {label!r}: "
    if item and item.group(1) == "job_env":  # the I-th key of the file's [job_env] table
        table = data.get("job_env")
        keys = list(table) if isinstance(table, dict) else []
        i = int(item.group(2))
        line = _job_env_line(text, keys[i]) if i < len(keys) else 0
        return f"line {line}: " if line else ""
    if item:  # a module: its purpose is the key of its line in [modules]
        modules = data.get("modules")
        purposes = list(modules) if isinstance(modules, dict) else []
        i = int(item.group(2))
        line = _module_line(text, purposes[i]) if i < len(purposes) else 0
        return (f"line {line}, " if line else "") + (f"module {purposes[i]!r}: " if i < len(purposes) else "")
    if head == "examples" and key:
        table = _EXAMPLES_TABLE.search(text)
        line = _line_of(text, key, table.end(), _table_end(text, table.end())) if table else 0
        return f"line {line}: " if line else ""
    line = _line_of(text, head, 0, first.start() if first else len(text)) if head and not rest else 0
    return f"line {line}: " if line else ""


def _job_env_line(text: str, name: Any, nth: int = 0) -> int:
    """The line that sets the variable ``name`` of ``job_env``: its key in a ``[job_env]`` table, else a dotted
    ``job_env.NAME = …``, else the ``nth`` item ``"NAME=…"`` (0: the first) of a ``job_env = [ … ]`` list;
    else the line of ``job_env`` itself (an inline table), 0 when not found."""
    first = _TABLE.search(text)
    top = _line_of(text, "job_env", 0, first.start() if first else len(text))
    if not isinstance(name, str):
        return top
    table = _JOB_ENV_TABLE.search(text)
    if table:
        line = _line_of(text, name, table.end(), _table_end(text, table.end()))
        if line:
            return line
    key = rf"(?:\"{re.escape(name)}\"|'{re.escape(name)}'|{re.escape(name)})"
    m = re.compile(rf"^[ \t]*\"?job_env\"?[ \t]*\.[ \t]*{key}[ \t]*=", re.MULTILINE).search(text)
    if m:
        return text.count("\n", 0, m.start()) + 1
    if top:  # a list (the top level ends at the first table): the line of its item, as a list may span lines
        found = list(re.compile(rf"[\"']{re.escape(name)}=").finditer(text, _offset_of_line(text, top),
                                                                       first.start() if first else len(text)))
        if found:
            return text.count("\n", 0, found[min(nth, len(found) - 1)].start()) + 1
    return top


def _offset_of_line(text: str, line: int) -> int:
    """Where line ``line`` (1-based) of ``text`` starts."""
    offset = 0
    for _ in range(line - 1):
        offset = text.find("\n", offset) + 1
    return offset


def _module_line(text: str, purpose: Any) -> int:
    """The line of ``purpose`` in the file's modules: its key in ``[modules]``, else a ``[modules.PURPOSE]`` table of
    its own, else a dotted ``modules.PURPOSE = …``; 0 when not found."""
    if not isinstance(purpose, str):
        return 0
    table = _MODULES_TABLE.search(text)
    if table:
        line = _line_of(text, purpose, table.end(), _table_end(text, table.end()))
        if line:
            return line
    name = rf"(?:\"{re.escape(purpose)}\"|'{re.escape(purpose)}'|{re.escape(purpose)})"
    dotted = rf"\"?modules\"?[ \t]*\.[ \t]*{name}[ \t]*"
    m = re.compile(rf"^[ \t]*(?:\[[ \t]*{dotted}\]|{dotted}=)", re.MULTILINE).search(text)
    if m:
        return text.count("\n", 0, m.start()) + 1
    first = _TABLE.search(text)
    return _line_of(text, "modules", 0, first.start() if first else len(text))  # modules = { … } written inline


def _unknown_keys(data: dict[str, Any], text: str) -> tuple[list[tuple[int, str, str]], _Unread]:
    """Remove the keys no model has (top level, ``[examples]``, each ``[[partitions]]`` and ``[[qos]]``) from ``data``,
    so the rest of the file is still read and checked. Returns ``(line, table, message)`` for each (line 0 when not
    found; ``table`` is "partition 'gpu'" inside a partition's table, else ""), and, for each table (``("", 0)`` the
    top level, ``("partitions", I)``, ``("qos", I)``, ``("examples", 0)``), the keys a misspelt one most likely meant
    that the table leaves unset: their defaults are not what the file says, so nothing is judged from them."""
    out: list[tuple[int, str, str]] = []
    meant: _Unread = {}
    examples = _EXAMPLES_TABLE.search(text)
    first = _TABLE.search(text)
    tables: list[tuple[tuple[str, int], type[Spec], Any, int, int, str]] = [
        (("", 0), ClusterProfile, data, 0, first.start() if first else len(text), "")]
    if isinstance(data.get("examples"), dict):
        start = examples.end() if examples else 0
        tables.append((("examples", 0), ExampleSettings, data["examples"], start,
                       _table_end(text, start) if examples else len(text), ""))
    for group, (pattern, cls, noun) in _LISTED_TABLES.items():
        headers = list(pattern.finditer(text))
        parts = data.get(group)
        for i, part in enumerate(parts if isinstance(parts, list) else []):
            if isinstance(part, dict):
                start = headers[i].end() if i < len(headers) else 0
                name = part.get("name") if isinstance(part.get("name"), str) and part.get("name") else f"#{i + 1}"
                tables.append(((group, i), cls, part, start, _table_end(text, start) if i < len(headers) else len(text),
                               f"{noun} {name!r}"))
    for place, cls, table, start, end, label in tables:
        valid = sorted(f.name for f in cls.field_specs())
        for key in [k for k in table if k not in valid and k != "kind"]:
            value = table.pop(key)
            line = _line_of(text, key, start, end) or _line_of(text, key)
            message, near = _no_such_key(cls, str(key), value, valid)
            if near and near not in table:
                meant.setdefault(place, set()).add(near)
            out.append((line, label, message))
    return out, meant


#: how a message names the owner of a key in a profile file
_KEY_OWNERS = {ClusterProfile: "a profile", ExampleSettings: "the [examples] table", Partition: "a partition",
               Qos: "a QOS"}


def _no_such_key(cls: type[Spec], key: str, value: Any, valid: list[str]) -> tuple[str, str]:
    """``(message, the key most likely meant or "")`` for ``key = value`` in a table of ``cls`` that has no such key:
    a table (``[x]``) or list of tables (``[[partition]]``) is named as it is written."""
    import difflib
    near = difflib.get_close_matches(key, valid, n=1)
    if isinstance(value, dict):
        shown = f"[{key}] table"
        meant = f"[{near[0]}]" if near else ""
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        shown = f"[[{key}]] tables"
        meant = f"[[{near[0]}]]" if near else ""
    else:
        shown, meant = f"key {key!r}", repr(near[0]) if near else ""
    owner = _KEY_OWNERS.get(cls, cls.__name__)
    if meant:
        return f"{owner} has no {shown} (did you mean {meant}?); correct the name", near[0]
    return f"{owner} has no {shown}; remove it, or use one of its keys: {', '.join(valid)}", ""


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
_JOB_ENV_TABLE = re.compile(r"^[ \t]*\[[ \t]*\"?job_env\"?[ \t]*\]", re.MULTILINE)


def _table_end(text: str, after: int) -> int:
    nxt = _TABLE.search(text, after)
    return nxt.start() if nxt else len(text)


def _located(problems: list[Any], profile: ClusterProfile, text: str,
             unread: _Unread | None = None) -> list[tuple[str, Any]]:
    """Each problem with where it is: ``line N`` and, for a partition's or module's problem, which one.

    The problems keep their model field names (``partitions.max_time``); the prefix only helps a
    person find the line when several partitions have the same key. A problem of a field in ``unread`` (by table,
    see :func:`_unread_fields`) is left out: that value's own problem is reported already.
    """
    unread = unread or {}
    first_table = _TABLE.search(text)
    top_end = first_table.start() if first_table else len(text)
    # (model, label, start, end of its part of the text) for each partition and module
    items: list[tuple[str, Any, str, int, int]] = []
    skipped: list[set[str]] = []  # for each item, the fields whose problems are left out
    for group, (pattern, cls, noun) in _LISTED_TABLES.items():
        headers = list(pattern.finditer(text))
        for i, part in enumerate(p for p in getattr(profile, group) or () if isinstance(p, cls)):
            name = part.name if isinstance(part.name, str) and part.name else f"#{i + 1} (no name)"
            start = headers[i].end() if i < len(headers) else -1
            items.append((group, part, f"{noun} {name!r}", start, _table_end(text, start) if start >= 0 else -1))
            skipped.append(unread.get((group, i), set()))
    modules = _MODULES_TABLE.search(text)
    for module in (m for m in profile.modules or () if isinstance(m, Module)):
        start = modules.end() if modules else -1
        items.append(("modules", module, f"module {module.purpose!r}", start, _table_end(text, start) if start >= 0 else -1))
        skipped.append(set())
    pending = [list(model.problems()) for _, model, _, _, _ in items]
    examples = _EXAMPLES_TABLE.search(text)
    out: list[tuple[str, Any]] = []
    for problem in problems:
        field = problem.field or ""
        where, owner = "", None
        group, _, key = field.partition(".")
        if key and group in ("partitions", "qos", "modules"):
            for (kind, model, label, start, end), todo, left_out in zip(items, pending, skipped):
                match = next((q for q in todo if kind == group and q.field == key and q.message == problem.message), None)
                if match is None:
                    continue
                todo.remove(match)
                if key.split(".")[0] in left_out:
                    owner = _LEFT_OUT
                    break
                owner = model
                line = 0
                if start >= 0:
                    look = model.purpose if kind == "modules" and isinstance(model.purpose, str) else key.split(".")[0]
                    line = _line_of(text, look, start, end) or text.count("\n", 0, start) + 1
                where = (f"line {line}, " if line else "") + f"{label}: "
                break
        elif key and group == "examples":
            if key.split(".")[0] in unread.get(("examples", 0), ()):
                continue
            owner = profile.examples
            line = _line_of(text, key, examples.end(), _table_end(text, examples.end())) if examples else 0
            where = f"line {line}: " if line else ""
        elif _ITEM.fullmatch(field) and field.startswith("job_env["):
            # the I-th item of job_env: the line of its variable (a [job_env] key, or an item of the list)
            items = profile.job_env if isinstance(profile.job_env, tuple) else ()
            i = int(_ITEM.fullmatch(field).group(2))
            name = items[i].partition("=")[0] if i < len(items) and isinstance(items[i], str) else None
            before = sum(1 for item in items[:i] if isinstance(item, str) and item.partition("=")[0] == name)
            line = _job_env_line(text, name, before)
            where = f"line {line}: " if line else ""
        elif field and "." not in field and "[" not in field:
            if field in unread.get(("", 0), ()):
                continue
            owner, key = profile, field
            line = _line_of(text, field, 0, top_end)
            where = f"line {line}: " if line else ""
        if owner is not _LEFT_OUT:
            out.append((where, _with_fix(problem, owner, key)))
    return out


_LEFT_OUT = object()  # :func:`_located`'s owner of a problem it leaves out


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
    elif spec.base_type is int and not spec.is_tuple and isinstance(value, str) and not value.strip().isdigit() \
            and not spec.info.text_forms:
        example = spec.info.placeholder if spec.info.placeholder.isdigit() else "4"
        fix = f"; write a whole number without quotes, e.g. {name} = {example}"
    elif spec.is_tuple and spec.info.choices and isinstance(value, tuple):
        # runtimes = "apptainer, singularity": one text read as a list of one, where a list was meant
        for item in value:
            words = re.split(r"[\s,]+", item.strip()) if isinstance(item, str) else []
            if len(words) > 1 and all(w in spec.info.choices for w in words):
                fix = f"; write a list: {name} = [{', '.join(scalar(w) for w in words)}]"
                break
    return type(problem)(problem.field, problem.message + fix) if fix else problem


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else scalar(key)


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


def _scalars(model: Any, comments: bool, skip: tuple[str, ...] = ()) -> list[str]:
    """``key = value`` lines for every field that is not a nested model (those become tables) nor in ``skip``."""
    lines: list[str] = []
    for f in model.field_specs():
        value = getattr(model, f.name)
        base = f.base_type
        if value is None or f.name in skip or (isinstance(base, type) and issubclass(base, Spec)):
            continue
        if comments:
            lines += _comment(f.info.help)
        lines.append(f"{f.name} = {scalar(value)}")
    return lines


#: what the template says of [modules]: which keys anything loads (RUNTIME_PURPOSES), and what the others are for
_MODULES_COMMENT = [
    "# purpose = \"the name module load takes\", one module per key. Only the container runtimes' keys are",
    "# loaded: apptainer, singularity (a job running singularity falls back to the apptainer key) and",
    "# charliecloud. Jobs built for this site (the examples, the Jupyter job, the forms) load the module of",
    "# the runtime they use, and lint (HPC409) reports a script that runs it without loading it first.",
    "# Any other key (cuda = \"cuda/12.1\", mpi = …) is loaded by nothing: it only records a module the",
    "# site has, so that `python -m hpcwidgets.slides check --profile NAME` accepts a deck that loads it",
    "# by hand. Load such modules in your own job scripts.",
]


def _job_env_table(items: Any) -> dict[str, str] | None:
    """``job_env`` as the ``[job_env]`` table a profile file holds (``NAME = "value"`` for each ``NAME=value``
    item); None when the items cannot be one (an item that is not text, has no ``=`` or no variable's name before
    it, a name twice: a profile the check reports), which is then written as the list it is."""
    if not isinstance(items, tuple):
        return None
    table: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str):
            return None
        name, eq, value = item.partition("=")
        if not eq or not _ENV_NAME.fullmatch(name) or name in table:
            return None
        table[name] = value
    return table


def profile_to_toml(profile: ClusterProfile, *, comments: bool = True) -> str:
    """The profile as TOML text that :func:`load_profile` reads back to an equal model.

    With ``comments`` every key is preceded by its help text (the first partition's keys too), which
    makes the output a good starting point for a site's own file. ``job_env`` is written as the ``[job_env]``
    table a site writes (a list only for items no table can hold, which the profile check reports).
    """
    lines = [f"# hpcwidgets cluster profile {profile.name!r}.",
             "# Every key is explained in docs/profiles.md; values with $NAME expand in job scripts.", ""]
    table = _job_env_table(profile.job_env)
    lines += _scalars(profile, comments, skip=("job_env",) if table is not None else ())
    if table or (table is not None and comments):
        lines += ["", "[job_env]"]
        if comments:
            lines += _comment(ClusterProfile.field_spec("job_env").info.help)
        lines += [f"{_toml_key(name)} = {scalar(value)}" for name, value in table.items()]
    lines += ["", "[modules]"]
    if comments:
        lines += _MODULES_COMMENT
    for m in profile.modules:
        lines.append(f"{_toml_key(m.purpose)} = {scalar(m.name)}")
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
    if f.name == "job_env":  # read from a table, written as one (a list is read too)
        text = "[job_env] table of NAME = text (or a list of \"NAME=value\" texts)"
    elif f.is_tuple and base is str:
        text = f"list of {text}"
    if f.info.choices:
        text += ": " + " \\| ".join(f"`{c}`" for c in f.info.choices)
    return text


def _default_text(f: Any) -> str:
    if f.default is None or isinstance(f.default, ExampleSettings):
        return ""
    if f.default == () or f.default == "":
        return ""
    return f"`{scalar(f.default)}`"


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
