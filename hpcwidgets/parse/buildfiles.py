"""Read build recipes back into models: Dockerfiles and Apptainer definition files.

The inverse of :mod:`hpcwidgets.render.dockerfile`. Both readers are pure and raise
:class:`~hpcwidgets.errors.ParseError` with the line number for text the models cannot hold,
saying what to change. What a model holds only as a whole is kept verbatim so it is written back
unchanged: earlier stages of a multi-stage build and lines before ``FROM`` / ``Bootstrap:``,
heredocs (``RUN <<EOF``), and definition-file sections the model does not break down (app
sections, sections with options, repeated sections, an ``%environment`` with shell logic).
Comments between Dockerfile instructions, in a definition file's header and in its ``%environment``
and ``%labels`` sections are not kept (they mean nothing to the builders).
"""

from __future__ import annotations

import itertools
import re
import shlex
import textwrap

from ..errors import ParseError
from ..spec._words import Verbatim
from ..spec.apptainer import ALL_DEF_SECTIONS, APP_SECTIONS, DEF_SECTIONS, DefFile
from ..spec.charliecloud import INSTRUCTIONS, Dockerfile, Instruction
from ..spec.common import EnvVar

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]")
_REF = re.compile(rf"\$(?:\{{{_NAME}\}}|{_NAME})")


# -- which kind of file ----------------------------------------------------------------------

#: names a Dockerfile goes by: Dockerfile, Dockerfile.gpu, Containerfile, gpu.Dockerfile
_DOCKERFILE_NAME = re.compile(r"(?i)^(?:docker|container)file(?:[._-].*)?$|^.+\.(?:docker|container)file$")
#: the Singularity Hub naming of definition files: Singularity, Singularity.gpu (not a script like Singularity.sh)
_SINGULARITY_NAME = re.compile(r"^Singularity(?:\.(?!(?:sh|bash|sbatch|slurm)$)[^.].*)?$")
_DOCKER_START = re.compile(r"(?i)(?:from|arg)[ \t]+\S")


def build_file_name(path: str) -> str:
    """``"apptainer"`` for a ``*.def``, ``Singularity`` or ``Singularity.<tag>`` name, ``"docker"`` for a
    Dockerfile or Containerfile name, else ``""``."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    if name.lower().endswith(".def") or _SINGULARITY_NAME.match(name):
        return "apptainer"
    return "docker" if _DOCKERFILE_NAME.match(name) else ""


def build_file_format(text: str, path: str = "") -> str:
    """Whether ``text`` is a build recipe: ``"apptainer"`` (a definition file), ``"docker"`` (a Dockerfile or
    Containerfile) or ``""`` (anything else, e.g. a job script).

    The file name decides when it is one of those names; otherwise the first line that is not blank or a
    comment does: a ``Bootstrap:`` header (or header lines leading to one), or ``FROM`` (``ARG`` lines may come
    first). Leading blanks do not matter (Apptainer and Docker both read past them). A ``#!`` first line makes
    it a script."""
    by_name = build_file_name(path) if path else ""
    if by_name:
        return by_name
    lines = [line.rstrip("\r") for line in text.lstrip("\ufeff").split("\n")]
    if lines and lines[0].startswith("#!"):
        return ""
    meaningful = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not meaningful:
        return ""
    for line in meaningful:  # header keywords may come before Bootstrap: (its own line decides)
        if _STAGE.match(line):
            return "apptainer"
        if not _HEADER_LINE.match(line):
            break
    for line in meaningful:
        if not _DOCKER_START.match(line):
            return ""
        if line[:4].upper() == "FROM":
            return "docker"
    return ""


def dockerfile_instructions(text: str, source: str = "") -> list[tuple[int, str, str]]:
    """Every instruction of a Dockerfile, all stages: ``(line number, KEYWORD, text)``.

    What :func:`parse_dockerfile` reads, without a model: the linter needs each instruction's line, and
    the keywords it does not model. Continuation pieces are joined by newlines; a heredoc or a word broken
    across lines comes as :class:`Verbatim`. :class:`ParseError` for text Docker could not read either."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    return list(_logical_lines(lines, source))


# -- Dockerfile ------------------------------------------------------------------------------

def parse_dockerfile(text: str, source: str = "") -> Dockerfile:
    """A :class:`Dockerfile` from its text: the last stage is modelled, what precedes its ``FROM``
    (parser directives, global ``ARG`` lines, earlier stages) is kept verbatim in ``before``.
    Continuation lines are joined by newlines; an instruction with a heredoc is kept verbatim."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    logical = list(_logical_lines(lines, source))
    froms = [k for k, item in enumerate(logical) if item[1] == "FROM"]
    for lineno, op, _body in logical[:froms[0] if froms else len(logical)]:
        if op != "ARG":
            raise ParseError(f"{op} before FROM: only ARG (and parser directives) may come before the first FROM; "
                             "move it below FROM", lineno, 1, source)
    if not froms:
        raise ParseError("no FROM line: a Dockerfile starts with FROM IMAGE:TAG", 1, 1, source)
    lineno, _op, base = logical[froms[-1]]
    if "\n" in base or not base:
        raise ParseError("FROM takes one image on one line, e.g. FROM almalinux:8", lineno, 1, source)
    items: list[Instruction] = []
    for n, op, body in logical[froms[-1] + 1:]:
        if op not in INSTRUCTIONS:
            raise ParseError(f"unsupported instruction {op}; this model knows FROM, {', '.join(INSTRUCTIONS)}",
                             n, 1, source)
        items.append(Instruction(op, body))
    return Dockerfile(base, tuple(items), before=tuple(_strip_blank(lines[:lineno - 1], rstrip=False)))


def _strip_blank(lines: list[str], rstrip: bool = True) -> list[str]:
    """The lines without blank lines at both ends (and without trailing whitespace)."""
    out = [line.rstrip() if rstrip else line for line in lines]
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def _same_words(a: str, b: str) -> bool:
    """Whether two shell texts split into the same words."""
    try:
        return shlex.split(a) == shlex.split(b)
    except ValueError:
        return " ".join(a.split()) == " ".join(b.split())


#: a heredoc opener in RUN/COPY/ADD: <<EOF, <<-EOF, <<"EOF", <<'EOF' (not the here-string <<<)
_HEREDOC = re.compile(r"(?<!<)<<(?!<)(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\2")


def _logical_lines(lines: list[str], source: str):
    """Yield ``(line number, KEYWORD, text)`` with continuation pieces joined by ``\\n``.

    An instruction that opens heredocs takes the lines up to each delimiter; its text is then a
    :class:`Verbatim` of everything after the keyword, exactly as written.
    """
    i = 0
    while i < len(lines):
        raw = lines[i]
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
        joined = ""  # the text the builder sees: each line without its backslash, joined as written
        piece = raw = m.group(2)
        while True:
            cont = piece.endswith("\\")
            joined += raw.rstrip()[:-1] if cont else raw
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
            raw = lines[i]
            piece = raw.strip()
        if pieces and pieces[0] == "" and len(pieces) > 1:
            pieces = pieces[1:]
        body = "\n".join(pieces)
        docs = _HEREDOC.findall(body) if op in ("RUN", "COPY", "ADD") else []
        if len(pieces) > 1 and not docs and not _same_words(joined, " ".join(pieces)):
            # a line break inside a word (foo\<newline>bar) or a quoted string: written back as it was
            first = lines[start - 1].strip()[len(m.group(1)):].strip()
            body = Verbatim("\n".join([first, *lines[start:i + 1]]))
        if docs:
            for strip_tabs, _quote, word in docs:
                i += 1
                while i < len(lines) and (lines[i].lstrip("\t") if strip_tabs else lines[i]) != word:
                    i += 1
                if i >= len(lines):
                    raise ParseError(f"the heredoc <<{word} of this {op} has no closing {word} line; add one",
                                     start, 1, source)
            first = lines[start - 1].strip()[len(m.group(1)):].strip()
            body = Verbatim("\n".join([first, *lines[start:i + 1]]))
        i += 1
        yield start, op, body


# -- definition file -------------------------------------------------------------------------

_HEADER_KEYS = {"bootstrap": "bootstrap", "from": "from_"}
_STAGE = re.compile(r"bootstrap[ \t]*:", re.IGNORECASE)
#: a header line that may come before Bootstrap: in a stage's header
_HEADER_LINE = re.compile(r"(from|stage|includecmd|fingerprints|osversion|mirrorurl|updateurl|include|library|"
                          r"registry|namespace)[ \t]*:", re.IGNORECASE)
#: how the renderer indents section bodies
_INDENT = "    "
def section_line(line: str) -> tuple[str, str, bool] | None:
    """``(name, options, indented)`` when Apptainer ends the header or the section above at ``line``, else None.

    Apptainer (``scanDefinitionFile`` in its ``deffile.go``) starts a section at any line whose first word begins
    with ``%``, indented or not, but reads the section's name only from a line that starts with the ``%``: an
    indented one names no section, and the build stops with "invalid section(s) specified". ``name`` is in lower
    case, as Apptainer compares it."""
    stripped = line.strip()
    if not stripped.startswith("%"):
        return None
    parts = stripped.lstrip("%").split(None, 1)
    return (parts[0].lower() if parts else ""), (parts[1] if len(parts) > 1 else ""), not line.startswith("%")


def header_text(line: str) -> str:
    """A header line as Apptainer reads it (``doHeader``): without blanks around it and without a ``#`` comment."""
    return line.split("#", 1)[0].strip()


def indented_section(word: str) -> str:
    """Why an indented section line stops an Apptainer build, and the fix."""
    return (f"{word} is indented: Apptainer starts a new section at this line but reads no name from an indented "
            f"one, so the build stops with 'invalid section(s) specified'; start {word} at the beginning of its line")


def parse_deffile(text: str, source: str = "") -> DefFile:
    """A :class:`DefFile` from its text: ``Key: value`` header lines, then ``%section`` bodies.

    In a multi-stage build the last stage is modelled and the earlier ones are kept verbatim in
    ``before``. Sections the model does not break down are kept verbatim in ``extra``.
    """
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    # Apptainer starts a stage only at a Bootstrap: line that is not indented; a one-stage file may indent it
    starts = [k for k, line in enumerate(lines) if _STAGE.match(line)] or [
        0 for line in itertools.takewhile(lambda x: not section_line(x), lines) if _STAGE.match(line.strip())][:1]
    if not starts:
        raise ParseError("the header needs a Bootstrap: line, e.g. Bootstrap: docker", 1, 1, source)
    first_line = starts[-1]
    while first_line and _HEADER_LINE.match(lines[first_line - 1]):
        first_line -= 1  # header keywords written above Bootstrap: (From: first) belong to this stage
    before = _strip_blank(lines[:first_line], rstrip=False)
    header: dict[str, str] = {}
    others: list[EnvVar] = []
    blocks: list[tuple[int, str, str, list[str]]] = []  # (line number, name, arguments, body lines)
    for n, line in enumerate(lines[first_line:], start=first_line + 1):
        found = section_line(line)
        if found:
            name, options, indented = found
            what = line.split()[0]
            if indented:
                raise ParseError(indented_section(what), n, 1, source)
            if name not in ALL_DEF_SECTIONS:
                raise ParseError(f"section {what} is not an Apptainer section; the sections are "
                                 f"{', '.join('%' + s for s in DEF_SECTIONS + APP_SECTIONS)}", n, 1, source)
            blocks.append((n, name, options, [line.rstrip()]))
            continue
        if blocks:
            blocks[-1][3].append(line)
            continue
        stripped = header_text(line)
        if not stripped:
            continue  # blank, or a comment (Apptainer drops a # and what follows on a header line)
        key, sep, value = stripped.partition(":")
        key = key.strip()
        if not sep or not re.fullmatch(_NAME, key):
            raise ParseError(f"header line {stripped[:30]!r} is not a 'Keyword: value' line; put it in a %section",
                             n, 1, source)
        field = _HEADER_KEYS.get(key.lower())
        if field is None:
            others.append(EnvVar(key, value.strip()))
            continue
        if field in header:
            raise ParseError(f"{key}: appears twice in the header; keep one", n, 1, source)
        header[field] = value.strip()
    values: dict[str, object] = dict(header)
    seen: set[str] = set()
    extra: list[str] = []
    for n, name, args, body in blocks:
        kept = _section_value(name, args, body[1:], n + 1, source) if name not in seen else None
        if kept is None:
            extra += ([""] if extra else []) + _strip_blank_end(body)
        elif kept in ((), ""):
            continue  # an empty section (or only comments where they are dropped) adds nothing
        else:
            values[name] = kept
        seen.add(name)
    return DefFile(**values, header=tuple(others), extra=tuple(extra), before=tuple(before))  # type: ignore[arg-type]


def _section_value(name: str, args: str, body: list[str], first: int, source: str) -> object | None:
    """The field value of a section, or None when the section is kept verbatim."""
    if args.strip() or name not in DEF_SECTIONS:
        return None
    if name == "help":
        return "\n".join(_strip_blank(body))  # as written: apptainer run-help shows it with its indentation
    start, trimmed = _trim(body, first)
    if _spans_lines(body) and [_INDENT + x if x else "" for x in trimmed] != _strip_blank(body, rstrip=False):
        return None  # a heredoc or a multi-line string: its lines must stay exactly as they are
    # comment lines of %environment and %labels are not kept (they mean nothing to apptainer)
    content = [line for line in trimmed if line.strip() and not line.strip().startswith("#")]
    if name == "environment":
        if not all(_EXPORT.fullmatch(x) for x in content):
            return None  # shell logic (. conda.sh, NAME=value without export, if …): keep it as written
        return tuple(_env_line(line, start + k, source) for k, line in enumerate(content))
    if name == "labels":
        return tuple(_label_line(line, start, source) for line in content)
    return tuple(trimmed)


_EXPORT = re.compile(rf"\s*export\s+{_NAME}=.*")
#: a here-document opener in a shell script (not the here-string <<<)
_SH_HEREDOC = re.compile(r"(?<!<)<<(?!<)-?\s*([\"']?)[A-Za-z_][A-Za-z0-9_]*\1")


def _spans_lines(body: list[str]) -> bool:
    """Whether shell text in ``body`` runs across lines: a heredoc or a quoted string left open at a line end."""
    quote = ""
    for line in body:
        if not quote and _SH_HEREDOC.search(line):
            return True
        i = 0
        while i < len(line):
            c = line[i]
            if quote == "'":
                quote = "" if c == "'" else quote
            elif quote == '"':
                if c == "\\":
                    i += 1
                elif c == '"':
                    quote = ""
            elif c == "\\":
                i += 1
            elif c in "'\"":
                quote = c
            elif c == "#" and (i == 0 or line[i - 1] in " \t;"):
                break
            i += 1
        if quote:
            return True
    return False


def _strip_blank_end(lines: list[str]) -> list[str]:
    out = list(lines)
    while out and not out[-1].strip():
        out.pop()
    return out


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
    """Literal text as a contract value: a ``$`` that would start a reference is escaped, and so is one right after a
    backslash (in a value ``\\$`` means a dollar sign, so a literal backslash-dollar is written ``\\\\$``)."""
    return re.sub(rf"\$(?=\{{{_NAME}\}}|[A-Za-z_])|(?<=\\)\$", r"\\$", text)


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
