"""Slurm's time and memory notations, read into numbers (pure, stdlib only)."""

from __future__ import annotations

import functools
import re

_TIME_FORMS = "M, M:S, H:M:S, D-H, D-H:M or D-H:M:S (e.g. 90, 01:30:00, 2-00:00:00)"
UNLIMITED = -1
_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
_MEM = re.compile(r"(\d+(?:\.\d+)?)([KMGTkmgt]?)")


def parse_time(text: str) -> int:
    """Seconds for a Slurm ``--time`` value; ``UNLIMITED`` (-1) for ``0``/``infinite``/``UNLIMITED``.

    Raises ``ValueError`` with the accepted forms when the text is not one of them.
    """
    return _parse_time_text(text) if text.__class__ is str else _parse_time(text)


def _parse_time(text: str) -> int:
    s = str(text).strip()
    if s.lower() in ("infinite", "unlimited"):
        return UNLIMITED
    m = _TIME.fullmatch(s)
    if not m:
        raise ValueError(f"{text!r} is not a Slurm time; use {_TIME_FORMS}")
    days, a, b, c = m.groups()
    if days is not None:  # D-H, D-H:M, D-H:M:S
        h, mnt, sec = int(a), int(b or 0), int(c or 0)
        total = int(days) * 86400 + h * 3600 + mnt * 60 + sec
    elif c is not None:   # H:M:S
        total = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:   # M:S
        total = int(a) * 60 + int(b)
    else:                 # M
        total = int(a) * 60
    if s == "0":
        return UNLIMITED
    return total


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


_MEM_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_mem(text: str) -> int:
    """MiB for a Slurm memory value (``16G``, ``4000``, ``512M``); a bare number is MiB, ``0`` means the whole node.

    Raises ``ValueError`` naming the accepted units (a frequent slip is ``16GB`` or ``16 G``).
    """
    return _parse_mem_text(text) if text.__class__ is str else _parse_mem(text)


def _parse_mem(text: str) -> int:
    s = str(text).strip()
    m = _MEM.fullmatch(s)
    if not m:
        hint = ""
        m2 = re.fullmatch(r"(\d+)\s*([KMGT])i?[Bb]", s, re.IGNORECASE)
        if m2:
            hint = f" (write {m2.group(1)}{m2.group(2).upper()})"
        raise ValueError(f"{text!r} is not a Slurm memory size; use a whole number with K, M, G or T, e.g. 16G{hint}")
    number, unit = m.groups()
    if "." in number:
        raise ValueError(f"{text!r}: Slurm takes whole numbers only; write {int(float(number) * 1024)}M instead")
    return int(int(number) * _MEM_UNITS[(unit or "M").upper()])


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
