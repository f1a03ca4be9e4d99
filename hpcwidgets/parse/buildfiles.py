"""Read build recipes back into models: Dockerfiles and Apptainer definition files.

The inverse of :mod:`hpcwidgets.render.dockerfile`. Both readers are pure and raise
:class:`~hpcwidgets.errors.ParseError` with the line number for text the models cannot hold,
saying what to change. Comments are not kept.
"""

from __future__ import annotations

import re
import textwrap

from ..errors import ParseError
from ..spec._words import Verbatim
from ..spec.apptainer import DefFile
from ..spec.charliecloud import INSTRUCTIONS, Dockerfile, Instruction
from ..spec.common import EnvVar

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]")
_REF = re.compile(rf"\$(?:\{{{_NAME}\}}|{_NAME})")


# -- Dockerfile ------------------------------------------------------------------------------

def parse_dockerfile(text: str, source: str = "") -> Dockerfile:
    """A :class:`Dockerfile` from its text (one ``FROM``; continuation lines joined by newlines)."""
    base = ""
    items: list[Instruction] = []
    for lineno, op, body in _logical_lines(text, source):
        if op == "FROM":
            if base:
                raise ParseError("a second FROM (multi-stage build) is not supported by this model; "
                                 "split the stages into separate Dockerfiles", lineno, 1, source)
            if "\n" in body or not body:
                raise ParseError("FROM takes one image on one line, e.g. FROM almalinux:8", lineno, 1, source)
            base = body
            continue
        if not base:
            raise ParseError(f"{op} before FROM is not supported by this model; start the Dockerfile with "
                             "FROM and write ARG values into it directly", lineno, 1, source)
        if op not in INSTRUCTIONS:
            raise ParseError(f"unsupported instruction {op}; this model knows FROM, {', '.join(INSTRUCTIONS)}",
                             lineno, 1, source)
        items.append(Instruction(op, body))
    if not base:
        raise ParseError("no FROM line: a Dockerfile starts with FROM IMAGE:TAG", 1, 1, source)
    return Dockerfile(base, tuple(items))


def _logical_lines(text: str, source: str):
    """Yield ``(line number, KEYWORD, text)`` with continuation pieces joined by ``\\n``."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i].rstrip("\r")
        stripped = raw.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("#"):
            m = re.match(r"#\s*escape\s*=\s*(\S*)", stripped)
            if m and m.group(1) != "\\" and not any(x.strip() and not x.strip().startswith("#") for x in lines[:i]):
                raise ParseError("only the default escape character \\ is supported; remove the "
                                 "'# escape=' directive", i + 1, 1, source)
            i += 1
            continue
        start = i + 1
        m = re.match(r"([A-Za-z]+)(?:\s+|$)(.*)$", stripped)
        if not m:
            raise ParseError(f"expected an instruction keyword such as RUN, got {stripped[:20]!r}", start, 1, source)
        op = m.group(1).upper()
        pieces = []
        piece = m.group(2)
        while True:
            cont = piece.endswith("\\")
            piece = piece[:-1].rstrip() if cont else piece.rstrip()
            pieces.append(piece)
            if not cont:
                break
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                i += 1
            if i >= len(lines):
                raise ParseError(f"{op} ends with a backslash but no line follows; remove the trailing \\",
                                 start, 1, source)
            piece = lines[i].rstrip("\r").strip()
        i += 1
        if pieces and pieces[0] == "" and len(pieces) > 1:
            pieces = pieces[1:]
        yield start, op, "\n".join(pieces)


# -- definition file -------------------------------------------------------------------------

_SUPPORTED = ("files", "post", "test", "environment", "runscript", "labels", "help")
_HEADER_KEYS = {"bootstrap": "bootstrap", "from": "from_"}


def parse_deffile(text: str, source: str = "") -> DefFile:
    """A :class:`DefFile` from its text: ``Key: value`` header lines, then ``%section`` bodies."""
    lines = text.split("\n")
    header: dict[str, str] = {}
    sections: dict[str, tuple[int, list[str]]] = {}
    current: str | None = None
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if line.startswith("%"):
            m = re.fullmatch(r"%([A-Za-z]+)(.*)", line.rstrip())
            name = m.group(1).lower() if m else ""
            if not m or name not in _SUPPORTED:
                what = line.split()[0]
                raise ParseError(f"section {what} is not supported by this model; it knows "
                                 f"{', '.join('%' + s for s in _SUPPORTED)}", n, 1, source)
            if m.group(2).strip():
                raise ParseError(f"%{name} takes no arguments here; remove {m.group(2).strip()!r}", n, len(name) + 2, source)
            if name in sections:
                raise ParseError(f"%{name} appears twice; merge the two into one section", n, 1, source)
            sections[name] = (n + 1, [])
            current = name
            continue
        if current is not None:
            sections[current][1].append(line)
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition(":")
        field = _HEADER_KEYS.get(key.strip().lower())
        if not sep or field is None:
            raise ParseError(f"header line {stripped[:30]!r} is not supported; this model knows Bootstrap: and From:",
                             n, 1, source)
        if field in header:
            raise ParseError(f"{key.strip()}: appears twice in the header; keep one", n, 1, source)
        header[field] = value.strip()
    if "bootstrap" not in header:
        raise ParseError("the header needs a Bootstrap: line, e.g. Bootstrap: docker", 1, 1, source)
    values: dict[str, object] = dict(header)
    for name, (first, body) in sections.items():
        start, body = _trim(body, first)
        if name == "environment":
            values[name] = tuple(_env_line(line, start + k, source) for k, line in enumerate(body)
                                 if line.strip() and not line.strip().startswith("#"))
        elif name == "labels":
            values[name] = tuple(_label_line(line, start + k, source) for k, line in enumerate(body)
                                 if line.strip() and not line.strip().startswith("#"))
        elif name == "help":
            values[name] = "\n".join(body)
        else:
            values[name] = tuple(body)
    return DefFile(**values)  # type: ignore[arg-type]


def _trim(body: list[str], first: int) -> tuple[int, list[str]]:
    """Remove the common indentation and blank lines at both ends; return the first line's number."""
    lines = textwrap.dedent("\n".join(line.rstrip() for line in body)).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
        first += 1
    while lines and not lines[-1].strip():
        lines.pop()
    return first, lines


def _label_line(line: str, n: int, source: str) -> EnvVar:
    parts = line.strip().split(None, 1)
    return EnvVar(parts[0], parts[1].strip() if len(parts) > 1 else "")


def _env_line(line: str, n: int, source: str) -> EnvVar:
    m = re.fullmatch(rf"\s*(?:export\s+)?({_NAME})=(.*)", line)
    if not m:
        raise ParseError(f"this model keeps %environment as 'export NAME=value' lines; rewrite {line.strip()[:40]!r} "
                         "that way (or move shell logic to %runscript)", n, 1, source)
    return EnvVar(m.group(1), shell_value(m.group(2).strip()))


def shell_value(word: str) -> str:
    """The contract value of one shell word (the inverse of :func:`hpcwidgets.render.quote.quote`).

    Words the contract cannot express (command substitution, several words, ``$1``) come back as
    :class:`~hpcwidgets.spec.Verbatim`, so they are written back exactly as they were.
    """
    value = _read_word(word)
    return Verbatim(word) if value is None else value


_TOKEN = re.compile(rf"\\\$|\$(?:\{{(?P<braced>{_NAME})\}}|(?P<bare>{_NAME}))")


def _literal(text: str) -> str:
    """Literal text as a contract value: a ``$`` that would start a reference is escaped."""
    return re.sub(rf"\$(?=\{{{_NAME}\}}|[A-Za-z_])", r"\\$", text)


def _compose(tokens: list[tuple[str, str]]) -> str | None:
    """Join literal pieces and ``$NAME`` references into one contract value.

    Returns None when the joined value would mean something else (a literal backslash right
    before a reference reads as an escaped dollar): the caller keeps the word verbatim.
    """
    merged: list[tuple[str, str]] = []
    for kind, t in tokens:
        if kind == "lit" and merged and merged[-1][0] == "lit":
            merged[-1] = ("lit", merged[-1][1] + t)
        else:
            merged.append((kind, t))
    tokens = merged
    value = "".join(_literal(t) if kind == "lit" else t for kind, t in tokens)
    probe: dict[str, str] = {}
    intended = []
    for kind, t in tokens:
        if kind == "lit":
            intended.append(t)
        else:
            name = t.strip("${}")
            intended.append(probe.setdefault(name, f"\x00{len(probe)}\x00"))

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "\\$":
            return "$"
        return probe.get(m.group("braced") or m.group("bare"), "\x01")

    return value if _TOKEN.sub(sub, value) == "".join(intended) else None


_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "e": "\x1b"}


def _read_word(word: str) -> str | None:
    tokens: list[tuple[str, str]] = []
    lit = tokens.append
    i = 0
    n = len(word)
    while i < n:
        c = word[i]
        if c == "'":
            end = word.find("'", i + 1)
            if end < 0:
                return None
            lit(("lit", word[i + 1:end]))
            i = end + 1
        elif word.startswith("$'", i):
            j = i + 2
            while j < n and word[j] != "'":
                if word[j] == "\\" and j + 1 < n:
                    esc = word[j + 1]
                    if esc in _C_ESCAPES:
                        lit(("lit", _C_ESCAPES[esc]))
                        j += 2
                    elif esc == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", word[j + 2:j + 4]):
                        lit(("lit", chr(int(word[j + 2:j + 4], 16))))
                        j += 4
                    else:
                        return None
                else:
                    lit(("lit", word[j]))
                    j += 1
            if j >= n:
                return None
            i = j + 1
        elif c == '"':
            j = i + 1
            while j < n and word[j] != '"':
                ch = word[j]
                if ch == "\\" and j + 1 < n and word[j + 1] in '$`"\\':
                    lit(("lit", word[j + 1]))
                    j += 2
                elif ch == "$":
                    m = _REF.match(word, j)
                    if not m:
                        return None
                    tokens.append(("ref", m.group(0)))
                    j = m.end()
                elif ch == "`":
                    return None
                else:
                    lit(("lit", ch))
                    j += 1
            if j >= n:
                return None
            i = j + 1
        elif c == "$":
            m = _REF.match(word, i)
            if not m:
                return None
            tokens.append(("ref", m.group(0)))
            i = m.end()
        elif c == "\\" and i + 1 < n and word[i + 1] != "\n":
            lit(("lit", word[i + 1]))
            i += 2
        elif _SAFE.fullmatch(c) or ord(c) > 127:
            lit(("lit", c))
            i += 1
        else:
            return None
    return _compose(tokens)
