"""Small value models shared by several layers: bind mounts and environment variables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import Problem
from ._meta import Spec, opt
from ._words import Verbatim

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def stray_words(extra: Any, takes_value: frozenset[str] = frozenset()) -> list[Any]:
    """Words of an "other options" list that are neither an option nor the value of the option before
    them (``--redirects 3`` is one option with its value when ``--redirects`` is in ``takes_value``)."""
    out = []
    items = list(extra) if isinstance(extra, (tuple, list)) else []
    i = 0
    while i < len(items):
        word = str(items[i])
        if not word.startswith("-"):
            out.append(items[i])
        elif "=" not in word and (word in takes_value or word.replace("_", "-") in takes_value):
            i += 1  # its value
        i += 1
    return out


@dataclass(frozen=True)
class Bind(Spec):
    """A host path made visible inside the container."""

    kind = "bind"

    src: str = opt(label="Host path", help="Directory or file on the host, e.g. $SCRATCH/data.", path=True,
                   role="internal", placeholder="$SCRATCH/data")
    dst: str = opt("", label="Container path",
                   help="Where it appears inside the container; empty means the same path as on the host.",
                   path=True, role="internal", placeholder="/data")
    mode: str = opt("", label="Mode", help="ro: read-only (use for input data); rw: read-write; empty: the runtime's default (rw).",
                    choices=("ro", "rw"), role="internal")

    def __post_init__(self) -> None:
        if self.dst and self.dst == self.src:  # one spelling for "same path inside"
            object.__setattr__(self, "dst", "")

    def needs_mount_syntax(self) -> bool:
        """Values with ':' or ',' cannot be written as -B src:dst[:mode]; Apptainer needs --mount.

        A bind read from shell text it cannot split (``-B "$(pwd)":/work``) is written back as it was."""
        if isinstance(self.src, Verbatim):
            return False
        text = f"{self.src}{self.dst}{self.mode}"
        return ":" in text or "," in text

    def to_token(self) -> str:
        """The ``src[:dst[:mode]]`` form (callers check :meth:`needs_mount_syntax` first)."""
        if isinstance(self.src, Verbatim) and not self.dst and not self.mode:
            return self.src  # shell text read from a script: written back unchanged
        parts = [self.src]
        if self.dst or self.mode:
            parts.append(self.dst or self.src)
        if self.mode:
            parts.append(self.mode)
        return ":".join(parts)

    @classmethod
    def from_token(cls, token: str) -> "Bind":
        """Read ``src[:dst[:ro|rw]]``."""
        parts = token.split(":")
        if len(parts) == 1:
            return cls(parts[0])
        if len(parts) == 2:
            if parts[1] in ("ro", "rw"):
                return cls(parts[0], "", parts[1])
            return cls(parts[0], parts[1])
        dst = "" if parts[1] == parts[0] else parts[1]  # src:src:ro is the same as src with mode ro
        return cls(parts[0], dst, ":".join(parts[2:]))

    def _check(self) -> list[Problem]:
        out = []
        if not self.src:
            out.append(Problem("src", "a bind needs a host path"))
        # (a leading ~ in either path is reported by the generic check of path fields)
        if self.dst and not (self.dst.startswith("/") or self.dst.startswith("$") or self.dst.startswith("~")):
            out.append(Problem("dst", f"container path {self.dst!r} must be absolute (start with /)"))
        return out


@dataclass(frozen=True)
class EnvVar(Spec):
    """An environment variable set for the program inside the container."""

    kind = "env"

    name: str = opt(label="Name", help="Variable name, e.g. OMP_NUM_THREADS.", role="internal")
    value: str = opt("", label="Value", help="Its value; $NAME references expand on the host.", role="internal")

    def to_token(self) -> str:
        return f"{self.name}={self.value}"

    @classmethod
    def from_token(cls, token: str) -> "EnvVar":
        name, _, value = token.partition("=")
        return cls(name, value)

    def _check(self) -> list[Problem]:
        if not _VARIABLE.fullmatch(self.name):
            return [Problem("name", f"{self.name!r} is not a valid variable name (letters, digits, _; not starting with a digit)")]
        return []
