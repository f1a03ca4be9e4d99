"""Safe file reads and writes shared by the CLI, the widgets and ``lint --fix``.

Writes are atomic (a temporary file in the same directory, then a rename), an existing file (or a
symbolic link, even a dangling one) is never replaced without an explicit ``force=True``, and a
replaced file can be kept as a backup under a name that was free (``job.sh.bak``, ``job.sh.bak.1`` …),
so a backup never replaces a file either. Writing through a symbolic link writes the file it points to
and keeps the link. Only regular files are ever replaced: a device (``/dev/null``), a named pipe or a
socket is refused even with ``force`` (the rename would put a file in its place, which, run as root,
destroys ``/dev/null`` for the whole machine). Replacing a file gives it a new inode, so other hard
links to it keep the old text.

Reads decode UTF-8 (a byte-order mark is dropped with a note) and turn every failure into a
:class:`~hpcwidgets.errors.FileError` whose message names the file and the fix. They take regular files of at
most :data:`MAX_READ_BYTES` (a device is refused, as Save refuses it), and a named pipe only when the caller
allows it (the command line's ``<(…)``) and something writes to it in time: a form never blocks its kernel.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import shlex
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import FileError, OverwriteError

#: how many ``.bak.N`` names are tried before giving up
MAX_BACKUPS = 1000
_MAX_LINKS = 40


# ----------------------------------------------------------------------------------------------
# reading

@dataclass(frozen=True)
class TextFile:
    """Text read from a file: the text (newlines normalized, as ``open()`` reads them, unless the
    reader asked to keep them) and notes about what was changed on the way (a UTF-8 byte-order mark
    that was dropped)."""

    text: str
    notes: tuple[str, ...] = ()
    bom: bool = False


def bom_note(name: str, subject: str = "") -> str:
    """Why a UTF-8 byte-order mark matters in a job script, and how to remove it (``subject`` replaces
    the file's name at the start of the sentence, e.g. "the file")."""
    return (f"{subject or name} starts with a UTF-8 byte-order mark (BOM, often added by Windows editors); it was ignored "
            "here, but bash and sbatch read it as part of the first line, so sbatch refuses the script "
            f"(the first line must start with #!). Remove it: sed -i '1s/^\\xEF\\xBB\\xBF//' {shlex.quote(name)}")


def decode_text(data: bytes, name: str, *, keep_newlines: bool = False) -> TextFile:
    """Bytes of a text file → :class:`TextFile`; FileError (naming the fix) when they are not UTF-8.

    ``keep_newlines`` keeps Windows (``\\r\\n``) and other line ends as they are in the file (the linter
    reports them: sbatch refuses a script with DOS line breaks); by default they become ``\\n``."""
    quoted = shlex.quote(name)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileError(f"{name} is UTF-16 text, not UTF-8; convert it: iconv -f utf-16 -t utf-8 {quoted} > "
                        f"{shlex.quote(name + '.utf8')}", name)
    bom = data.startswith(codecs.BOM_UTF8)
    body = data[len(codecs.BOM_UTF8):] if bom else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        if _binary(body):
            raise FileError(f"{name} is not a text file (it holds control bytes no text file has, as an image, an "
                            "archive or a program does); name the job script or build file to check instead", name) from None
        raise FileError(f"{name} is not UTF-8 text (byte 0x{body[exc.start]:02x} on line {line}); it was probably "
                        "saved in a Windows or Latin-1 encoding. Convert it and use the new file: "
                        f"iconv -f cp1252 -t utf-8 {quoted} > {shlex.quote(name + '.utf8')}", name) from None
    if not keep_newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, like open() in text mode
    return TextFile(text, (bom_note(name),) if bom else (), bom)


def _binary(data: bytes) -> bool:
    """Whether bytes that are not UTF-8 are no text at all: a NUL, or control characters other than tab, line
    ends, form feed and escape in more than 1 of 100 bytes (a Windows or Latin-1 text file has next to none)."""
    head = data[:8192]
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27) or b == 127)
    return b"\x00" in head or controls * 100 > len(head)


def strip_bom(text: str, name: str) -> TextFile:
    """Text already decoded (pasted into a form, read from a stream) with a leading BOM dropped."""
    if text.startswith("\ufeff"):
        return TextFile(text[1:], (bom_note(name),), True)
    return TextFile(text)


def read_text(path: str | os.PathLike[str], *, keep_newlines: bool = False, pipes: bool = True) -> TextFile:
    """Read a UTF-8 text file; FileError (with the reason and the fix) when it cannot be read.
    ``keep_newlines``: see :func:`decode_text`; ``pipes``: see :func:`read_bytes`."""
    return decode_text(read_bytes(path, pipes=pipes), os.fspath(path), keep_newlines=keep_newlines)


#: the most a reader takes: a job script, a build file or a saved model is a few kB, and a bigger file (or a
#: device that never ends, /dev/zero) would only fill the memory of a notebook's kernel
MAX_READ_BYTES = 10 * 1024 * 1024
#: how long, in seconds, a named pipe is waited for before the read is refused (``hpcwidgets lint <(…)`` has
#: its writer running at once; a pipe nothing writes to would otherwise block for ever)
PIPE_WAIT = 30.0
#: how long, in seconds, a named pipe is waited for before standard error says so (``<(…)``'s writer is already
#: running, and is not worth a note)
PIPE_QUIET = 1.0


def expand_user(name: str) -> Path:
    """``name`` with a leading ``~`` or ``~user`` expanded; FileError naming the fix when that user does not
    exist (``Path.expanduser`` raises a bare RuntimeError, which would read as a bug)."""
    try:
        return Path(name).expanduser()
    except RuntimeError:
        user = name[1:].split("/", 1)[0].split(os.sep, 1)[0]
        what = f"there is no user {user!r}" if user else "your home folder is not known here (HOME is not set)"
        raise FileError(f"{name}: {what}, so ~{user} cannot be expanded; write the path without ~ "
                        "or start it with your own ~/", name) from None


def _no_nul(name: str) -> None:
    """FileError for a name holding NUL (the system calls would raise a bare ValueError)."""
    if "\0" in name:
        raise FileError(f"the file name {name!r} holds a NUL character, which no file name can hold; retype the name",
                        name)


def too_big_message(name: str) -> str:
    """Why a file over :data:`MAX_READ_BYTES` is not read, and what to give instead."""
    return (f"{name} is larger than {MAX_READ_BYTES // (1024 * 1024)} MB, which no job script, build file or saved "
            "model is (they are a few kB); give the name of the script or model file to read instead")


def read_bytes(path: str | os.PathLike[str], *, pipes: bool = True) -> bytes:
    """A file's bytes; FileError (with the reason and the fix) when it cannot be read.

    Only regular files are read, and at most :data:`MAX_READ_BYTES`: a device (``/dev/zero`` never ends, a
    terminal waits for typing) or a socket is refused with the wording Save uses. A named pipe is read when
    ``pipes`` is true (the command line's ``<(…)``) once something writes to it within :data:`PIPE_WAIT`
    seconds, and refused when false (a notebook's kernel must never block on one)."""
    name = os.fspath(path)
    if not name.strip():
        raise FileError("no file name given; type the name of the file to read, e.g. job.sh", name)
    _no_nul(name)
    full = expand_user(name)
    kind = special_kind(full)
    if kind and not (pipes and kind == _FIFO):
        raise FileError(_not_readable_message(name, kind), name)
    try:
        return _read_capped(full, name, fifo=bool(kind))
    except IsADirectoryError:
        raise FileError(f"cannot read {name}: it is a directory; give the name of a file in it", name) from None
    except FileNotFoundError as exc:
        raise FileError(f"cannot read {name}: {_missing(full, exc)}", name) from None
    except PermissionError as exc:
        raise FileError(f"cannot read {name}: {exc.strerror or exc}; ask its owner to make it readable "
                        f"(chmod a+r {shlex.quote(name)}) or copy it somewhere you can read it", name) from None
    except FileError:
        raise
    except OSError as exc:
        raise FileError(f"cannot read {name}: {exc.strerror or exc}", name) from None


def _not_readable_message(name: str, kind: str) -> str:
    """Why a device, a pipe or a socket is not read as a file, in the words Save uses for them."""
    if kind == _FIFO:
        why = "reading it waits, for as long as it takes, for a program to write to it"
    elif kind == "a socket":
        why = "it cannot be opened as a file"
    else:
        why = "a device is no file to read (a terminal waits for typing, /dev/zero never ends, /dev/null is empty)"
    stdin = " (for standard input, give -)" if _OWN_INPUT.fullmatch(name) else ""
    return (f"{name} is {kind}, not a regular file: {why}; give the name of a job script, build file or saved "
            f"model instead{stdin}")


def _read_capped(path: Path, name: str, *, fifo: bool) -> bytes:
    """At most :data:`MAX_READ_BYTES` of ``path`` (FileError beyond); a FIFO is first waited for
    (:data:`PIPE_WAIT` seconds), so a pipe nothing writes to is refused instead of blocking for ever."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) if fifo else os.O_RDONLY
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb", buffering=0) as fh:
        if fifo:
            _wait_for_writer(fd, name)
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size > MAX_READ_BYTES:
            raise FileError(too_big_message(name), name)
        return _capped(fh, name)


def _wait_for_writer(fd: int, name: str) -> None:
    """Wait until the FIFO ``fd`` (opened without blocking) has data or its writer closed it, then make it
    blocking; FileError after :data:`PIPE_WAIT` seconds of nothing (no program writes to it). Past
    :data:`PIPE_QUIET` seconds, standard error says what is waited for: a command reading a pipe that nothing
    writes to yet must not look as if it hung."""
    import select
    if not hasattr(select, "poll"):  # no poll(): read it as cat would
        os.set_blocking(fd, True)
        return
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    quiet = min(PIPE_QUIET, PIPE_WAIT)
    if not poller.poll(quiet * 1000):
        print(f"hpcwidgets: note: {name} is {_FIFO}: waiting up to {PIPE_WAIT:g} s for a program to write to it "
              "(start that program now, or press Ctrl-C)", file=sys.stderr, flush=True)
        if not poller.poll((PIPE_WAIT - quiet) * 1000):
            raise FileError(f"{name} is {_FIFO}, and nothing wrote to it within {PIPE_WAIT:g} s; start the program "
                            "that writes to it first, or save its output to a file and give that file's name", name)
    os.set_blocking(fd, True)


def _capped(stream: Any, name: str) -> bytes:
    """Everything ``stream`` holds, up to :data:`MAX_READ_BYTES` (FileError when there is more)."""
    chunks, size = [], 0
    while True:
        chunk = stream.read(min(1 << 20, MAX_READ_BYTES + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_READ_BYTES:
            raise FileError(too_big_message(name), name)


def _missing(path: Path, exc: OSError) -> str:
    """Why a file that could not be opened is missing, and what to do: a dangling symbolic link names its
    target; otherwise the folder it was looked for in, and a close name in it when there is one."""
    if os.path.islink(path):
        return (f"it is a symbolic link to {os.readlink(path)}, which does not exist; point the link at the file "
                f"(ln -sfn TARGET {shlex.quote(str(path))}) or give the file's own name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f"{exc.strerror or exc} (there is no folder {folder}); check the path"
    import difflib
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    here = str(folder) == "."
    listing = "ls lists the files here" if here else f"ls {shlex.quote(str(folder))} lists the files there"
    hint = f"did you mean {close[0] if here else folder / close[0]}?" if close else f"check the name ({listing})"
    return f"{exc.strerror or exc}; {hint}"


#: a definition file's header or one of its sections; a Dockerfile's first instruction
_DEFFILE_HEAD = re.compile(r"(?i)bootstrap\s*:")
_DEFFILE_SECTION = re.compile(r"(?m)^%(post|environment|runscript)\b")
_DOCKERFILE_HEAD = re.compile(r"(?i)(FROM|ARG)\s")


def build_file_kind(text: str) -> str:
    """What ``text`` is when it is a build file rather than a job script or a saved model: "an Apptainer
    definition file", "a Dockerfile", or "". Judged by the first line that is not a comment, as a person would;
    the command line's ``--from`` and the forms' Load both refuse such a text with :func:`build_it`."""
    first = next((line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    if _DEFFILE_HEAD.match(first) or _DEFFILE_SECTION.search(text):
        return "an Apptainer definition file"
    if _DOCKERFILE_HEAD.match(first):
        return "a Dockerfile"
    return ""


def only_a_shebang(text: str) -> str:
    """What a job script holds when it is nothing but its ``#!`` line and comments ("its #! line", "its #! line and
    comments"), or "" when it holds a ``#SBATCH`` line or a command. Read, it would become the default job, and written
    back, a script the person never wrote: the command line's ``--from`` and the forms' Load both refuse it."""
    if not text.startswith("#!"):
        return ""
    lines = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    if all(line.startswith("#") and not line.startswith("#SBATCH") for line in lines):
        return "its #! line and comments" if lines else "its #! line"
    return ""


def build_it(kind: str, name: str) -> str:
    """How to build the file ``name`` of ``kind`` (from :func:`build_file_kind`) instead of loading it."""
    if kind == "a Dockerfile":
        return f"build it with ch-image build -f {name} ."
    return f"build it with apptainer build IMAGE.sif {name}"


def read_stdin(name: str = "<stdin>", *, keep_newlines: bool = False) -> TextFile:
    """Standard input as text (UTF-8, BOM dropped with a note; ``keep_newlines``: see :func:`decode_text`)."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return decode_text(_capped(buffer, name), name, keep_newlines=keep_newlines)
    text = sys.stdin.read(MAX_READ_BYTES + 1)
    if len(text) > MAX_READ_BYTES:
        raise FileError(too_big_message(name), name)
    return strip_bom(text, name)


# ----------------------------------------------------------------------------------------------
# writing

@dataclass(frozen=True)
class Written:
    """Where :func:`write_file` wrote (the link's target when ``path`` was a symbolic link) and the
    backup of the previous content (None when there was none)."""

    path: Path
    backup: Path | None = None


def follow_links(path: Path) -> Path:
    """``path`` with its last component's symbolic links followed (the target may not exist).

    Only the file itself is followed, not the directories above it, so the result stays close to
    what the person typed.
    """
    seen = 0
    while os.path.islink(path):
        seen += 1
        if seen > _MAX_LINKS:
            raise FileError(f"{path}: too many levels of symbolic links (a loop?); point the link at a file", str(path))
        path = Path(os.path.join(os.path.dirname(path), os.readlink(path)))
    return path


#: how a refusal to replace a file says to allow it, where the caller does not say (:func:`write_file`'s
#: ``allow_with``): the command line and the forms each pass their own way
ALLOW_EITHER_WAY = "--force on the command line; in a form, click Replace?"


def write_atomic(path: str | os.PathLike[str], text: str, *, force: bool = False, backup: bool = False,
                 executable: bool = False, make_folders: bool = True, allow_with: str = ALLOW_EITHER_WAY) -> Path:
    """Write ``text`` to ``path`` atomically and return the absolute path written.

    Raises :class:`OverwriteError` when the file (or a symbolic link of that name) exists and
    ``force`` is false; the message names the way to replace it. With ``backup`` the previous content
    is kept under a fresh name (see :func:`write_file`). A replaced file keeps its permission bits;
    a new script can be made executable. Missing folders on the way are created, unless ``make_folders``
    is false: then a path whose folder does not exist is refused (:func:`missing_folder_message`), so a
    mistyped folder name typed by a person makes no new folders (the folder of a symbolic link's target,
    which the link names, is still created when replacing the link is allowed). Every other failure is a
    :class:`FileError` ("cannot write …").
    """
    return write_file(path, text, force=force, backup=backup, executable=executable, make_folders=make_folders,
                      allow_with=allow_with).path


def write_file(path: str | os.PathLike[str], text: str, *, force: bool = False, backup: bool = False,
               executable: bool = False, make_folders: bool = True, allow_with: str = ALLOW_EITHER_WAY) -> Written:
    """:func:`write_atomic`, also returning the backup's name. ``allow_with`` is how a refusal to replace a file
    says to allow it (``add --force`` on the command line, ``click Replace?`` in a form).

    A symbolic link is written through: its target gets the new text and the link stays. A dangling
    link counts as an existing file (replaced only with ``force``; then its target is created).
    The backup is ``<name>.bak``, or ``<name>.bak.1``, ``.bak.2`` … when that name is taken: it is
    created with a hard link (or an exclusive create), so an existing file is never replaced.
    """
    name = os.fspath(path)
    if not name.strip():
        raise FileError("no file name given; type a file name, e.g. job.sh", name)
    _no_nul(name)
    if name.endswith(("/", os.sep)):
        raise FileError(f"{name} ends with '/', so it names a folder, not a file; give a file name in it, e.g. "
                        f"{name}job.sh", name)
    given = expand_user(name).absolute()
    kind = special_kind(given)
    if kind:
        raise FileError(not_a_file_message(given, kind), str(given))
    target = follow_links(given)
    linked = target != given
    if target.is_dir():
        raise FileError(f"{given} is a directory; give a file name, e.g. {given / 'job.sh'}", str(given))
    exists = target.exists()
    locked = _not_replaceable(target) if exists or linked else ""
    if locked:  # allowing the replacement would not help: say so instead of offering it
        raise FileError(f"cannot replace {given}: {locked}", str(given))
    if (exists or linked) and not force:
        if linked and not exists:
            raise OverwriteError(f"{given} is a symbolic link to {target}, which does not exist; choose another "
                                 f"name, or allow replacing it to create its target ({allow_with})")
        raise OverwriteError(f"{given} already exists; choose another name or allow replacing it ({allow_with})")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        before = text[:exc.start]
        line, column = before.count("\n") + 1, exc.start - (before.rfind("\n") + 1) + 1
        raise FileError(f"cannot write {given}: the text holds {text[exc.start]!r} (line {line}, column {column}), "
                        "which is not a character and cannot be saved as UTF-8; delete it and retype that part "
                        "(it usually comes from pasting binary data)", str(given)) from None
    blocker = _file_in_the_way(target.parent)
    if blocker is not None:
        raise FileError(f"cannot write {given}: {blocker} is a file, not a folder, so nothing can be saved inside it; "
                        f"choose a name outside it, e.g. {blocker.parent / target.name}", str(given))
    if not make_folders and not given.parent.is_dir():  # the folder typed (a link's target folder is the link's)
        raise FileError(f"cannot write {given}: {missing_folder_message(given.parent)}", str(given))
    tmp = ""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(target.stat().st_mode) if exists else None
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = (0o777 if executable else 0o666) & ~umask
        os.chmod(tmp, mode)
        saved = _backup(target) if exists and backup else None
        if exists or force:
            os.replace(tmp, target)
        else:
            _link_new(tmp, target, given, allow_with)
        tmp = ""
    except OSError as exc:
        if isinstance(exc, (OverwriteError, FileError)):
            raise
        if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
            folder = next((p for p in (target.parent, *target.parent.parents) if p.exists()), target.parent)
            raise FileError(f"cannot write {given}: {exc.strerror or exc}: the folder {folder} is not writable for "
                            f"you; choose a folder you can write to, e.g. {Path.home() / target.name}",
                            str(given)) from exc
        raise FileError(f"cannot write {given}: {exc.strerror or exc}", str(given)) from exc
    finally:
        if tmp and os.path.lexists(tmp):
            os.unlink(tmp)
    return Written(target, saved)


_FIFO = "a named pipe (FIFO)"
#: the kinds of file that are not regular files, and what to call them
_SPECIAL = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISFIFO, _FIFO), (stat.S_ISSOCK, "a socket"))
#: names that stand for this process's own input (where - says the same)
_OWN_INPUT = re.compile(r"/dev/(stdin|tty|fd/0)|/proc/self/fd/0")
#: names that stand for this process's own output (where -o would only repeat printing)
_OWN_OUTPUT = re.compile(r"/dev/(stdout|stderr|tty|fd/\d+)|/proc/(self|\d+)/fd/\d+")


def special_kind(path: str | os.PathLike[str]) -> str:
    """What ``path`` is when it exists and is neither a regular file nor a directory ("a character device",
    "a named pipe (FIFO)" …), else "". Every symbolic link is followed: ``/dev/stdout`` is the terminal, pipe
    or file behind it."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return ""
    return next((kind for test, kind in _SPECIAL if test(mode)), "")


def not_a_file_message(path: Path, kind: str) -> str:
    """Why ``path`` (a device, a pipe, a socket) is never saved over, and what to do instead."""
    if _OWN_OUTPUT.fullmatch(str(path)):
        instead = "to print the text, leave -o out (and redirect the output with > or | if it should go elsewhere)"
    else:
        instead = (f"choose a file name, e.g. {Path.cwd() / 'job.sh'}; to print the text instead, leave -o out "
                   "(on the command line)")
    return (f"{path} is {kind}, not a regular file: saving never puts a file in its place, even when replacing "
            f"is allowed (--force), since that would destroy it for every program that uses it; {instead}")


def _not_replaceable(target: Path) -> str:
    """Why an existing ``target`` cannot be replaced whatever the caller allows, or "": its folder is not
    writable (or on a read-only file system), or it sits in a sticky folder (/tmp) and belongs to someone else."""
    folder = target.parent
    if not os.path.isdir(folder):
        return ""
    if not os.access(folder, os.W_OK | os.X_OK):
        return (f"the folder {folder} is not writable for you (or is on a read-only file system), so no file in it "
                f"can be replaced; save under another name in a folder you can write to, e.g. "
                f"{Path.home() / target.name}")
    try:
        info, folder_info = os.lstat(target), os.stat(folder)
    except OSError:
        return ""
    me = os.geteuid() if hasattr(os, "geteuid") else -1
    if folder_info.st_mode & stat.S_ISVTX and me not in (0, info.st_uid, folder_info.st_uid):
        return (f"it belongs to another user and {folder} only lets a file's owner replace it; choose another "
                "name")
    return ""


def missing_folder_message(folder: Path) -> str:
    """Why nothing is saved into ``folder``, which does not exist, and what to do: create it first, or check the
    path (the first missing folder's closest existing name is suggested: a typo should make no new folders)."""
    import difflib
    first = next((p for p in reversed((folder, *folder.parents)) if not os.path.lexists(p)), folder)
    try:
        names = [p.name for p in first.parent.iterdir() if p.is_dir()]
    except OSError:
        names = []
    close = difflib.get_close_matches(first.name, names, n=1, cutoff=0.75)
    meant = f"did you mean {first.parent / close[0]}? " if close else ""
    return (f"the folder {first} does not exist; {meant}check the path, or create the folder first "
            f"(mkdir -p {shlex.quote(str(folder))}) and save again")


def _file_in_the_way(folder: Path) -> Path | None:
    """The first existing component of ``folder`` (from the root down) that is not a directory, or None:
    the folders a write would create cannot go inside a file (mkdir would only say "File exists")."""
    for part in reversed((folder, *folder.parents)):
        if not os.path.lexists(part):
            return None
        if not part.is_dir():
            return part
    return None


def _link_new(tmp: str, target: Path, given: Path, allow_with: str = ALLOW_EITHER_WAY) -> None:
    """Move ``tmp`` to a ``target`` that must not exist (a file made meanwhile is not replaced)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OverwriteError(f"{given} was created while saving; choose another name or allow replacing it "
                             f"({allow_with})") from None
    except OSError:  # no hard links on this file system: the existence check above has to do
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def backup_names(target: Path) -> Iterator[Path]:
    """``job.sh.bak``, ``job.sh.bak.1``, ``job.sh.bak.2`` … (the names a backup may take)."""
    yield target.with_name(target.name + ".bak")
    for n in range(1, MAX_BACKUPS):
        yield target.with_name(f"{target.name}.bak.{n}")


def _backup(target: Path) -> Path:
    """Keep the current content of ``target`` under the first free backup name and return it."""
    for bak in backup_names(target):
        try:
            os.link(target, bak)  # the same file under a second name: atomic, and fails if the name is taken
            return bak
        except FileExistsError:
            continue
        except OSError:
            pass  # no hard links here (or not allowed): copy into a file created exclusively
        try:
            fd = os.open(bak, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(target.stat().st_mode))
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as dst, open(target, "rb") as src:
            dst.write(src.read())
            dst.flush()
            os.fsync(dst.fileno())
        return bak
    raise FileError(f"cannot keep a backup of {target}: {target.name}.bak … .bak.{MAX_BACKUPS - 1} all exist; "
                    "delete old backups", str(target))
