"""Slurm's time and memory notations, read into numbers (pure, stdlib only)."""

from __future__ import annotations

import functools
import re
import unicodedata
from fractions import Fraction

_TIME_FORMS = "M, M:S, H:M:S, D-H, D-H:M or D-H:M:S (e.g. 90, 01:30:00, 2-00:00:00)"
UNLIMITED = -1
#: the forms time_str2secs reads: after ``D-`` the hours (and what follows them) may be left out, so ``1-`` is a day
_TIME = re.compile(r"(?:([0-9]+)-)?(?:([0-9]+)(?::([0-9]+))?(?::([0-9]+))?)?")
#: what sbatch's str_to_mbytes reads: a whole number (strtoll: leading blanks and a + allowed), then K, M, G or T,
#: which may be followed by B or b (16G, 16GB, 16gb); no unit means MiB. Slurm 22.05 has no P and no binary
#: "Gi"/"GiB", and refuses anything after the unit (a trailing blank too).
_MEM = re.compile(r"\+?([0-9]+)(?:([KMGTkmgt])[Bb]?)?")
_MEM_LEADING = " \t\n\v\f\r"
#: near misses, read to name the fix: a fraction, a space before the unit, "Gi"/"GiB", a P unit
_MEM_NEAR = re.compile(r"\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:([KMGTPkmgtp])\s*[iI]?\s*[Bb]?)?")
#: strtoll's range: a larger number is refused
_MEM_MAX = 2**63 - 1


def is_number(text: str) -> bool:
    """Whether ``text`` is a whole number as Slurm, MPI and ssh read one: ASCII digits only. ``str.isdigit()`` also
    takes ``²``, which ``int()`` refuses, and ``１`` or ``٣``, which no C parser reads (see :func:`non_ascii_digits`)."""
    return text.isascii() and text.isdigit()


def non_ascii_digits(text: str) -> str:
    """Why Slurm refuses ``text`` when it holds digits other than ASCII 0-9, with the text to type instead; "" when
    it holds none.

    An input method types full-width digits (``１:００:００``) and an Arabic keyboard its own (``٠١:٠٠:٠٠``); Python's
    ``int()``, ``str.isdigit()`` and ``\\d`` take them as digits, but Slurm's parsers (``_is_valid_timespec`` in
    ``src/common/parse_time.c``, ``strtol``) read only ``'0'`` to ``'9'``, so sbatch refuses the job."""
    if text.isascii() or not any(c.isdigit() for c in text):
        return ""
    # NFKC turns full-width digits, colons, dashes and % into ASCII; the digits of other scripts keep their value
    typed = "".join(c if c.isascii() or not c.isdigit() else str(unicodedata.digit(c))
                    for c in unicodedata.normalize("NFKC", text))
    return f"Slurm reads only the ASCII digits 0-9, not full-width or other scripts' digits; type {typed}"


def parse_time(text: str) -> int:
    """Seconds for a Slurm ``--time`` value; ``UNLIMITED`` (-1) for no limit.

    As Slurm reads it (``time_str2secs`` in ``src/common/parse_time.c``, and sbatch's ``--time``): ``-1``,
    ``INFINITE`` and ``UNLIMITED`` (any case) mean no limit, and so does a time of zero (``0``, ``00:00:00``).
    Raises ``ValueError`` with the accepted forms when the text is not one of them.
    """
    return _parse_time_text(text) if text.__class__ is str else _parse_time(text)


def _parse_time(text: str) -> int:
    s = str(text).strip()
    if s.lower() in ("infinite", "unlimited", "-1"):
        return UNLIMITED
    m = _TIME.fullmatch(s)
    if not m or (m.group(1) is None and m.group(2) is None):  # the empty text matches too
        foreign = non_ascii_digits(s)
        raise ValueError(f"{text!r}: {foreign}" if foreign else f"{text!r} is not a Slurm time; use {_TIME_FORMS}")
    days, a, b, c = m.groups()
    if days is not None:  # D-, D-H, D-H:M, D-H:M:S
        h, mnt, sec = int(a or 0), int(b or 0), int(c or 0)
        total = int(days) * 86400 + h * 3600 + mnt * 60 + sec
    elif c is not None:   # H:M:S
        total = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:   # M:S
        total = int(a) * 60 + int(b)
    else:                 # M
        total = int(a) * 60
    if total > _LONGEST:
        raise ValueError(f"{text!r} is longer than Slurm can count ({format_time(_LONGEST)} at most: it holds a "
                         "time in seconds as a 32-bit number, so sbatch misreads a longer one, 71582789:00 as one "
                         "minute); use UNLIMITED for no limit, or the partition's limit")
    return UNLIMITED if total == 0 else total  # sbatch: a limit of 0 is none


#: the longest time Slurm reads right: seconds in a signed 32-bit number (longer ones wrap round)
_LONGEST = 2**31 - 1


#: the same values are read again and again (every check of a job, every keystroke in a form)
_parse_time_text = functools.lru_cache(maxsize=512)(_parse_time)


def format_time(seconds: int) -> str:
    """``H:MM:SS`` (or ``D-HH:MM:SS`` past a day) for a number of seconds."""
    if seconds == UNLIMITED:
        return "UNLIMITED"
    days, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}" if days else f"{h:02d}:{m:02d}:{s:02d}"


_MEM_UNITS = {"M": 1, "G": 1024, "T": 1024 * 1024}
_KIB = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3, "P": 1024**4}


def parse_mem(text: str) -> int:
    """MiB for a Slurm memory value (``16G``, ``16GB``, ``4000``, ``512M``); a bare number is MiB, ``0`` means
    the whole node. K rounds up to whole MiB, as sbatch does.

    Raises ``ValueError`` naming the accepted units (frequent slips are ``16GiB``, ``16 G`` and ``1.5G``).
    """
    return _parse_mem_text(text) if text.__class__ is str else _parse_mem(text)


def _parse_mem(text: str) -> int:
    s = str(text).lstrip(_MEM_LEADING)
    m = _MEM.fullmatch(s)
    if not m:
        raise ValueError(_mem_error(text, s.strip()))
    digits, unit = m.group(1).lstrip("0") or "0", (m.group(2) or "M").upper()
    if len(digits) > 19 or int(digits) > _MEM_MAX:
        raise ValueError(f"{text!r}: sbatch reads numbers up to {_MEM_MAX}; write a smaller number with a bigger unit")
    number = int(digits)
    if unit == "K":
        return (number + 1023) // 1024  # sbatch rounds kilobytes up to whole MiB
    return number * _MEM_UNITS[unit]


def _mem_error(text: str, s: str) -> str:
    """The message for a value sbatch rejects, with the spelling to write instead when it is a near miss."""
    foreign = non_ascii_digits(s)
    if foreign:
        return f"{text!r}: {foreign}"
    hint = ""
    near = _MEM_NEAR.fullmatch(s) if len(s) < 40 else None
    if near:
        number, unit = near.group(1), (near.group(2) or "M").upper()
        kib = round(Fraction(number) * _KIB[unit])
        if "." in number:
            return f"{text!r}: Slurm takes whole numbers only; write {_exact_mem(kib)} instead"
        hint = f" (write {_exact_mem(kib)})"
    return f"{text!r} is not a Slurm memory size; use a whole number with K, M, G or T, e.g. 16G{hint}"


def _exact_mem(kib: int) -> str:
    """The shortest exact spelling of a number of KiB with a unit sbatch reads (``16G``, ``1536M``, ``1536K``)."""
    for unit in ("T", "G", "M"):
        if kib and kib % _KIB[unit] == 0:
            return f"{kib // _KIB[unit]}{unit}"
    return f"{kib}K"


_parse_mem_text = functools.lru_cache(maxsize=512)(_parse_mem)


def format_mem(mib: int) -> str:
    """The shortest exact spelling: ``16G`` for 16384, ``1500M`` otherwise."""
    if mib and mib % (1024 * 1024) == 0:
        return f"{mib // (1024 * 1024)}T"
    if mib and mib % 1024 == 0:
        return f"{mib // 1024}G"
    return f"{mib}M"


def time_equal(a: str, b: str) -> bool:
    """Two time values mean the same duration (``90`` == ``1:30:00``)."""
    try:
        return parse_time(a) == parse_time(b)
    except ValueError:
        return a == b
