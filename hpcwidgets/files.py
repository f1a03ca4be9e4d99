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
:class:`~hpcwidgets.errors.FileError` whose message names the file and the fix.
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
from typing import Iterator

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


def read_text(path: str | os.PathLike[str], *, keep_newlines: bool = False) -> TextFile:
    """Read a UTF-8 text file; FileError (with the reason and the fix) when it cannot be read.
    ``keep_newlines``: see :func:`decode_text`."""
    return decode_text(read_bytes(path), os.fspath(path), keep_newlines=keep_newlines)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """A file's bytes; FileError (with the reason and the fix) when it cannot be read."""
    name = os.fspath(path)
    if not name.strip():
        raise FileError("no file name given; type the name of the file to read, e.g. job.sh", name)
    try:
        return Path(name).expanduser().read_bytes()
    except IsADirectoryError:
        raise FileError(f"cannot read {name}: it is a directory; give the name of a file in it", name) from None
    except FileNotFoundError as exc:
        raise FileError(f"cannot read {name}: {_missing(Path(name).expanduser(), exc)}", name) from None
    except PermissionError as exc:
        raise FileError(f"cannot read {name}: {exc.strerror or exc}; ask its owner to make it readable "
                        f"(chmod a+r {shlex.quote(name)}) or copy it somewhere you can read it", name) from None
    except OSError as exc:
        raise FileError(f"cannot read {name}: {exc.strerror or exc}", name) from None


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


def read_stdin(name: str = "<stdin>", *, keep_newlines: bool = False) -> TextFile:
    """Standard input as text (UTF-8, BOM dropped with a note; ``keep_newlines``: see :func:`decode_text`)."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return decode_text(buffer.read(), name, keep_newlines=keep_newlines)
    return strip_bom(sys.stdin.read(), name)


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


def write_atomic(path: str | os.PathLike[str], text: str, *, force: bool = False, backup: bool = False,
                 executable: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically and return the absolute path written.

    Raises :class:`OverwriteError` when the file (or a symbolic link of that name) exists and
    ``force`` is false; the message names the way to replace it. With ``backup`` the previous content
    is kept under a fresh name (see :func:`write_file`). A replaced file keeps its permission bits;
    a new script can be made executable. Every other failure is a :class:`FileError` ("cannot write …").
    """
    return write_file(path, text, force=force, backup=backup, executable=executable).path


def write_file(path: str | os.PathLike[str], text: str, *, force: bool = False, backup: bool = False,
               executable: bool = False) -> Written:
    """:func:`write_atomic`, also returning the backup's name.

    A symbolic link is written through: its target gets the new text and the link stays. A dangling
    link counts as an existing file (replaced only with ``force``; then its target is created).
    The backup is ``<name>.bak``, or ``<name>.bak.1``, ``.bak.2`` … when that name is taken: it is
    created with a hard link (or an exclusive create), so an existing file is never replaced.
    """
    name = os.fspath(path)
    if not name.strip():
        raise FileError("no file name given; type a file name, e.g. job.sh", name)
    if "\0" in name:
        raise FileError(f"the file name {name!r} holds a NUL character, which no file name can hold; retype the name",
                        name)
    given = Path(name).expanduser().absolute()
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
                                 "name, or allow replacing it to create its target (--force on the command "
                                 "line; in a form, click Replace?)")
        raise OverwriteError(f"{given} already exists; choose another name or allow replacing it "
                             "(--force on the command line; in a form, click Replace?)")
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
            _link_new(tmp, target, given)
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


#: the kinds of file that are not regular files, and what to call them
_SPECIAL = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))
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


def _file_in_the_way(folder: Path) -> Path | None:
    """The first existing component of ``folder`` (from the root down) that is not a directory, or None:
    the folders a write would create cannot go inside a file (mkdir would only say "File exists")."""
    for part in reversed((folder, *folder.parents)):
        if not os.path.lexists(part):
            return None
        if not part.is_dir():
            return part
    return None


def _link_new(tmp: str, target: Path, given: Path) -> None:
    """Move ``tmp`` to a ``target`` that must not exist (a file made meanwhile is not replaced)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OverwriteError(f"{given} was created while saving; choose another name or allow replacing it "
                             "(--force on the command line; in a form, click Replace?)") from None
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
