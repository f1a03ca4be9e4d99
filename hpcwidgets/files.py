"""Safe file writes shared by the CLI, the widgets and ``lint --fix``.

Writes are atomic (a temporary file in the same directory, then ``os.replace``), an existing file
is never replaced without an explicit ``force=True``, and a replaced file can be kept as a backup.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import OverwriteError


def write_atomic(path: str | os.PathLike[str], text: str, *, force: bool = False, backup: bool = False,
                 executable: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically and return the absolute path.

    Raises :class:`OverwriteError` when the file exists and ``force`` is false; the message names
    the way to replace it. With ``backup`` the previous content is kept as ``<name>.bak``.
    A replaced file keeps its permission bits; a new script can be made executable.
    """
    target = Path(path).expanduser().absolute()
    exists = target.exists()
    if exists and not force:
        raise OverwriteError(f"{target} already exists; choose another name or allow replacing it "
                             "(--force on the command line, the 'replace' confirmation in a form)")
    if exists and target.is_dir():
        raise OverwriteError(f"{target} is a directory; give a file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(target.stat().st_mode) if exists else None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = (0o777 if executable else 0o666) & ~umask
        os.chmod(tmp, mode)
        if exists and backup:
            bak = target.with_name(target.name + ".bak")
            with open(target, "rb") as src, open(bak, "wb") as dst:
                dst.write(src.read())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target
